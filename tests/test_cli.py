"""The `vltk` command line end to end on tiny data: train, evaluate, predict, list, data synth, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from vltk.cli.main import app

runner = CliRunner()


def test_train_leaves_a_complete_run_directory(trained_run: Path):
    for name in (
        "config.yaml",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "logs/metrics.csv",
        "metrics.json",
    ):
        assert (trained_run / name).is_file(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["split"] == "test"
    assert set(metrics["metrics"]) >= {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"}
    assert "seed: 3" in (trained_run / "config.yaml").read_text()


def test_evaluate_reproduces_the_training_test_metrics(trained_run: Path, tmp_path: Path):
    output, predictions = tmp_path / "m.json", tmp_path / "p.json"
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(trained_run / "checkpoints/best.ckpt"),
            "--split",
            "test",
            "--output",
            str(output),
            "--predictions",
            str(predictions),
        ],
    )
    assert result.exit_code == 0, result.output
    expected = json.loads((trained_run / "metrics.json").read_text())["metrics"]
    got = json.loads(output.read_text())["metrics"]
    assert got == pytest.approx(expected, abs=1e-9)
    rows = json.loads(predictions.read_text())
    assert rows and set(rows[0]) == {"image_id", "caption"}


def test_predict_prints_a_caption_and_writes_attention_maps(trained_run: Path, tmp_path: Path):
    images = []
    for i, mode in enumerate(["RGB", "L", "RGBA", "P"]):
        path = tmp_path / f"img{i}.png"
        Image.new(mode, (50, 40)).save(path)
        images.append(str(path))
    att = tmp_path / "att.png"
    result = runner.invoke(
        app,
        [
            "predict",
            str(trained_run / "checkpoints/best.ckpt"),
            *images,
            "--beam-size",
            "2",
            "--attention-map",
            str(att),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("img") >= 4
    assert all((tmp_path / f"att-{i}.png").is_file() for i in range(4))


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d: d / "missing.png", "missing.png"),
        (lambda d: (d / "notes.png").write_text("not an image") and d / "notes.png", "notes.png"),
    ],
)
def test_predict_bad_image_is_one_clear_line(trained_run: Path, tmp_path: Path, make_input, message):
    path = make_input(tmp_path)
    result = runner.invoke(app, ["predict", str(trained_run / "checkpoints/best.ckpt"), str(path)])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_bad_config_key_and_task_are_one_clear_line():
    result = runner.invoke(app, ["train", "captioning", "--set", "trainer.max_epoch=1"])
    assert result.exit_code == 2 and "did you mean 'trainer.max_epochs'" in result.output
    result = runner.invoke(app, ["train", "captionin"])
    assert result.exit_code == 2 and "did you mean 'captioning'" in result.output
    result = runner.invoke(app, ["evaluate", "no/such.ckpt"])
    assert result.exit_code == 2 and "checkpoint not found" in result.output


def test_list_shows_the_registries():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for name in (
        "captioning",
        "shapes",
        "resnet50",
        "small_cnn",
        "additive",
        "show_attend_tell",
        "show_tell",
    ):
        assert name in result.output


def test_data_synth_writes_the_karpathy_layout(tmp_path: Path):
    result = runner.invoke(
        app, ["data", "synth", "shapes", "--out", str(tmp_path / "shapes"), "--num-images", "20"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "shapes" / "dataset_shapes.json").read_text())
    assert len(data["images"]) == 20
    result = runner.invoke(app, ["data", "synth", "shapez", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "did you mean 'shapes'" in result.output


def test_resume_last_continues_the_run(trained_run: Path, tmp_path: Path):
    import shutil

    run_dir = tmp_path / "resumed"
    shutil.copytree(trained_run, run_dir)
    result = runner.invoke(
        app,
        [
            "train",
            "captioning",
            "--run-dir",
            str(run_dir),
            "--resume",
            "last",
            "--set",
            "trainer.max_epochs=2",
        ],
    )
    assert result.exit_code == 0, result.output

    def epochs(name: str) -> set[str]:
        return {line.split(",")[0] for line in (run_dir / "logs" / name).read_text().splitlines()[1:]}

    # The resumed process trained only the second epoch (a fresh start would log epoch 0 again); the
    # first process's rows are kept beside the new log.
    assert "1" in epochs("metrics.csv") and "0" not in epochs("metrics.csv")
    assert "0" in epochs("metrics.part-1.csv")
    result = runner.invoke(
        app, ["train", "captioning", "--run-dir", str(tmp_path / "none"), "--resume", "last"]
    )
    assert result.exit_code == 2 and "checkpoint not found" in result.output


def test_evaluate_refuses_model_overrides(trained_run: Path):
    result = runner.invoke(
        app, ["evaluate", str(trained_run / "checkpoints/best.ckpt"), "--set", "model.decoder.hidden_dim=8"]
    )
    assert result.exit_code == 2 and "cannot override model.decoder.hidden_dim" in result.output


def test_predict_refuses_options_of_other_tasks_by_name(trained_run: Path, tmp_path: Path):
    image = tmp_path / "img.png"
    Image.new("RGB", (32, 32)).save(image)
    checkpoint = str(trained_run / "checkpoints/best.ckpt")
    result = runner.invoke(app, ["predict", checkpoint, str(image), "--question", "what?", "--prime", "a"])
    assert result.exit_code == 2
    assert "--question" in result.output and "--prime" in result.output and "captioning" in result.output
    result = runner.invoke(app, ["predict", checkpoint])
    assert result.exit_code == 2 and "image" in result.output
