"""Bad data: `vltk data validate` lists every problem by path/entry; training raises (naming the path) or
skips and counts unreadable samples (`data.on_bad_sample`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_CAPTIONING
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.tasks.captioning.shapes import generate_shapes
from vltk.tasks.captioning.validate import validate_karpathy

runner = CliRunner()


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[Path, Path]:
    """A small shapes dataset with one corrupt and one missing training image, one malformed entry and one
    duplicated id; returns (annotations, corrupt image path)."""
    annotations = generate_shapes(tmp_path / "data", num_images=40, image_size=32, seed=1)
    document = json.loads(annotations.read_text())
    train = [entry for entry in document["images"] if entry["split"] == "train"]
    corrupt = annotations.parent / train[0]["filepath"] / train[0]["filename"]
    corrupt.write_bytes(b"\x89PNG truncated")
    (annotations.parent / train[1]["filepath"] / train[1]["filename"]).unlink()
    document["images"].append({"filename": "x.png", "sentences": []})  # no split
    document["images"].append(dict(train[2]))  # duplicate id
    annotations.write_text(json.dumps(document))
    return annotations, corrupt


def test_validate_lists_every_problem_by_entry_and_path(damaged):
    annotations, corrupt = damaged
    report = validate_karpathy(annotations)
    assert report.entries == 42 and not report.ok
    assert len(report.bad_entries) == 2 and len(report.bad_images) == 2
    assert any("images[40]" in line and "split" in line for line in report.bad_entries)
    assert any("images[41]: duplicate image id" in line for line in report.bad_entries)
    assert any(str(corrupt) in line for line in report.bad_images)
    assert any("not found" in line for line in report.bad_images)

    result = runner.invoke(app, ["data", "validate", str(annotations)])
    assert result.exit_code == 1
    assert "2 malformed entries" in result.output and "2 unreadable images" in result.output
    assert corrupt.name in result.output


def test_validate_a_clean_dataset_and_a_missing_file(tmp_path: Path):
    annotations = generate_shapes(tmp_path / "data", num_images=10, image_size=32, seed=2)
    result = runner.invoke(app, ["data", "validate", str(annotations)])
    assert result.exit_code == 0 and "no problems found" in result.output
    result = runner.invoke(app, ["data", "validate", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "nope.json" in result.output


def _train_args(annotations: Path, run_dir: Path, *extra: str) -> list[str]:
    overrides = [o for o in TINY_CAPTIONING if not o.startswith("data.num_images")]
    overrides += ["data.name=karpathy", f"data.annotations={annotations}", "data.batch_size=16", *extra]
    return ["train", "captioning", "--run-dir", str(run_dir)] + [a for o in overrides for a in ("--set", o)]


def _without_bad_entries(annotations: Path) -> Path:
    document = json.loads(annotations.read_text())
    document["images"] = document["images"][:40]  # keep the bad images, drop the malformed entries
    annotations.write_text(json.dumps(document))
    return annotations


def test_training_raises_naming_the_unreadable_image_by_default(damaged, tmp_path: Path):
    annotations, corrupt = damaged
    result = runner.invoke(app, _train_args(_without_bad_entries(annotations), tmp_path / "run"))
    assert result.exit_code == 2
    output = " ".join(result.output.split())  # undo the terminal's line wrapping
    assert str(annotations.parent / "images") in output and "data.on_bad_sample=skip" in output


def test_training_can_skip_unreadable_samples_and_counts_them(damaged, tmp_path: Path):
    annotations, _ = damaged
    run_dir = tmp_path / "run"
    args = _train_args(_without_bad_entries(annotations), run_dir, "data.on_bad_sample=skip")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    header, *rows = (run_dir / "logs" / "metrics.csv").read_text().splitlines()
    column = header.split(",").index("train/skipped_samples")
    skipped = sum(float(row.split(",")[column]) for row in rows if row.split(",")[column])
    assert skipped == 10  # two bad images x 5 captions each, once per epoch
