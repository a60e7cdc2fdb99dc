"""User errors of every CLI command are one line and exit status 2, never a traceback (issue 14).

Each test gives the command the input a careless or hostile user would: a file where a directory is
wanted, a device this machine lacks, a misspelt Lightning strategy or precision, a beam of size 0, a file
that is not a checkpoint. Device settings are checked before anything is written (no run directory).
"""

from __future__ import annotations

import fractions
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from pytorch_lightning.accelerators import CUDAAccelerator, MPSAccelerator
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.errors import VltkError

runner = CliRunner()


def assert_one_line_error(result, *needles: str) -> str:
    """Exit status 2, one line of output, no traceback, every needle in it; the line."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine has no GPU, whatever it really has (the device machine of CI has one)."""
    monkeypatch.setattr(CUDAAccelerator, "is_available", staticmethod(lambda: False))
    monkeypatch.setattr(MPSAccelerator, "is_available", staticmethod(lambda: False))


@pytest.fixture
def checkpoint(trained_run: Path) -> Path:
    return trained_run / "checkpoints" / "best.ckpt"


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(path)
    return path


# ----------------------------------------------------------------------------------- device settings

DEVICE_ERRORS = [
    (["--accelerator", "gpu"], "no GPU on this machine (torch.cuda.is_available() is False"),
    (["--accelerator", "cuda"], "--accelerator cuda (trainer.accelerator): not available on this machine"),
    (["--accelerator", "gpx"], "unknown trainer.accelerator (--accelerator) 'gpx'; did you mean 'gpu'?"),
    (["--strategy", "ddpp"], "unknown trainer.strategy (--strategy) 'ddpp'; did you mean 'ddp'?"),
    (["--precision", "bf17"], "unknown trainer.precision (--precision) 'bf17'; did you mean 'bf16'?"),
    (["--set", "trainer.precision=bf17"], "did you mean 'bf16'?"),
    (["--set", "trainer.accelerator=gpu"], "no GPU on this machine"),
    (["--devices", "0"], "invalid device settings (trainer.accelerator=auto, trainer.devices=0"),
    (["--num-nodes", "0"], "`num_nodes` must be a positive integer"),
]


@pytest.mark.parametrize(("args", "message"), DEVICE_ERRORS)
def test_train_checks_device_settings_before_writing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_gpu: None, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "captioning", "--run-dir", str(run_dir), *args])
    assert_one_line_error(result, message)
    assert not run_dir.exists() and not (tmp_path / "runs").exists()
    assert list(tmp_path.iterdir()) == []


def test_device_errors_list_lightnings_own_choices(no_gpu: None) -> None:
    from pytorch_lightning.strategies import StrategyRegistry

    result = runner.invoke(app, ["train", "captioning", "--strategy", "ddpp"])
    line = assert_one_line_error(result)
    assert all(name in line for name in StrategyRegistry.available_strategies())
    line = assert_one_line_error(runner.invoke(app, ["train", "captioning", "--precision", "bf17"]))
    assert "(choices: 16, 16-mixed, 16-true, 32, 32-true, 64, 64-true, bf16, bf16-mixed, bf16-true" in line
    line = assert_one_line_error(runner.invoke(app, ["train", "captioning", "--accelerator", "gpu"]))
    assert line.endswith("available here: cpu (or auto)")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--accelerator", "gpu"], "no GPU on this machine"),
        (["--strategy", "ddpp"], "did you mean 'ddp'?"),
        (["--set", "trainer.precision=bf17"], "did you mean 'bf16'?"),
        (["--devices", "abc"], "trainer.devices=abc"),
    ],
)
def test_evaluate_checks_device_settings(
    checkpoint: Path, tmp_path: Path, no_gpu: None, args: list[str], message: str
) -> None:
    output = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", str(checkpoint), "--output", str(output), *args])
    assert_one_line_error(result, message)
    assert not output.exists()


def test_a_device_error_is_one_line_from_the_real_command(tmp_path: Path) -> None:
    # The console script in a fresh process: nothing from Lightning (its INFO lines, its traceback) shows.
    run_dir = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, "-c", "from vltk.cli.main import main; main()", "train", "captioning"]
        + ["--run-dir", str(run_dir), "--strategy", "ddpp"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert output.strip().splitlines() == [output.strip()], output
    assert output.startswith("error: unknown trainer.strategy (--strategy) 'ddpp'; did you mean 'ddp'?")
    assert not run_dir.exists()


# ------------------------------------------------------------------------------------- predict options


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--beam-size", "0"], "--beam-size must be >= 1 (1 = greedy), got 0"),
        (["--beam-size", "-3"], "--beam-size must be >= 1 (1 = greedy), got -3"),
        (["--max-length", "0"], "--max-length must be >= 1 (words), got 0"),
        (["--max-length", "-1"], "--max-length must be >= 1 (words), got -1"),
    ],
)
def test_predict_rejects_out_of_range_decoding(checkpoint: Path, image: Path, args: list[str], message: str):
    assert_one_line_error(runner.invoke(app, ["predict", str(checkpoint), str(image), *args]), message)


def test_predict_caption_library_rejects_beam_size_zero(checkpoint: Path, image: Path) -> None:
    from vltk import from_pretrained
    from vltk.tasks.captioning.predict import predict_captions

    with pytest.raises(VltkError, match="--beam-size must be >= 1"):
        predict_captions(from_pretrained(checkpoint), [image], beam_size=0)


# --------------------------------------------------------------------------------- not a checkpoint


def _not_checkpoints(folder: Path, good: Path) -> dict[str, Path]:
    files = {
        "text": ("notes.txt", b"a caption model, I promise\n"),
        "empty": ("empty.ckpt", b""),
        "truncated": ("truncated.ckpt", good.read_bytes()[:4000]),
        "random": ("random.ckpt", os.urandom(3000)),
        "json": ("config.ckpt", b'{"task": "captioning"}'),
    }
    paths = {}
    for kind, (name, data) in files.items():
        paths[kind] = folder / name
        paths[kind].write_bytes(data)
    paths["tensor"] = folder / "tensor.ckpt"
    torch.save({"weights": torch.zeros(2)}, paths["tensor"])  # PyTorch, but not from `vltk train`
    paths["objects"] = folder / "objects.ckpt"
    torch.save({"hyper_parameters": fractions.Fraction(1, 3)}, paths["objects"])  # refused weights-only
    return paths


NOT_CHECKPOINT_MESSAGES = {
    "text": "is not a vltk checkpoint: not a PyTorch checkpoint file",
    "empty": "is not a vltk checkpoint: the file is empty or cut short",
    "truncated": "is not a vltk checkpoint: not a readable PyTorch file (truncated or corrupted zip archive)",
    "random": "is not a vltk checkpoint: not a PyTorch checkpoint file",
    "json": "is not a vltk checkpoint: not a PyTorch checkpoint file",
    "tensor": "is not a vltk checkpoint: a PyTorch file without the hyper_parameters (config.task)",
    "objects": "is not a vltk checkpoint: it holds Python objects other than tensors and plain containers",
}


@pytest.mark.parametrize("kind", sorted(NOT_CHECKPOINT_MESSAGES))
def test_a_file_that_is_not_a_checkpoint_is_one_line(
    checkpoint: Path, image: Path, tmp_path: Path, kind: str
) -> None:
    from vltk import from_pretrained

    path = _not_checkpoints(tmp_path, checkpoint)[kind]
    commands = [
        ["evaluate", str(path)],
        ["predict", str(path), str(image)],
        ["export", str(path), str(tmp_path / "export")],
        ["train", "captioning", "--run-dir", str(tmp_path / "run"), "--resume", str(path)],
    ]
    for command in commands:
        line = assert_one_line_error(runner.invoke(app, command), f"{path} {NOT_CHECKPOINT_MESSAGES[kind]}")
        assert "weights_only" not in line  # torch's advice to load unsafely is not repeated
    assert not (tmp_path / "export").exists() and not (tmp_path / "run").exists()
    with pytest.raises(
        VltkError, match=NOT_CHECKPOINT_MESSAGES[kind].replace("(", r"\(").replace(")", r"\)")
    ):
        from_pretrained(path)


def test_weights_that_do_not_fit_are_one_line(checkpoint: Path, tmp_path: Path) -> None:
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    removed = sorted(payload["state_dict"])[0]
    del payload["state_dict"][removed]
    payload["state_dict"]["model.extra.weight"] = torch.zeros(1)
    broken = tmp_path / "broken.ckpt"
    torch.save(payload, broken)
    assert_one_line_error(
        runner.invoke(app, ["evaluate", str(broken)]),
        f"{broken}: the weights do not fit the captioning model (1 missing ({removed}); 1 unexpected "
        "(model.extra.weight))",
    )


def test_a_checkpoint_of_an_unknown_task_is_one_line(checkpoint: Path, tmp_path: Path) -> None:
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    payload["hyper_parameters"]["config"]["task"] = "captionning"
    odd = tmp_path / "odd.ckpt"
    torch.save(payload, odd)
    assert_one_line_error(
        runner.invoke(app, ["evaluate", str(odd)]), "unknown task 'captionning'; did you mean 'captioning'?"
    )


def test_directories_where_checkpoints_are_expected(tmp_path: Path, image: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    assert_one_line_error(runner.invoke(app, ["evaluate", str(folder)]), "is not a vltk export: config.json")
    assert_one_line_error(
        runner.invoke(app, ["export", str(folder), str(tmp_path / "out")]), "is a directory, not a checkpoint"
    )


# ------------------------------------------------------------------------- outputs and other input


def test_export_to_an_existing_file_is_one_line(checkpoint: Path, tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_text("keep me")
    assert_one_line_error(
        runner.invoke(app, ["export", str(checkpoint), str(target)]),
        f"{target} exists and is not a directory; `vltk export` writes a directory",
    )
    assert target.read_text() == "keep me"
    assert_one_line_error(
        runner.invoke(app, ["export", str(checkpoint), str(target / "sub")]),
        "cannot create the export directory",
    )


def test_output_paths_are_checked_before_the_work(checkpoint: Path, image: Path, tmp_path: Path) -> None:
    folder, file = tmp_path / "folder", tmp_path / "file.txt"
    folder.mkdir()
    file.write_text("x")
    cases = [
        (["evaluate", str(checkpoint), "--output", str(folder)], f"--output {folder} is a directory"),
        (["evaluate", str(checkpoint), "--predictions", str(file / "p.json")], f"{file} is a file"),
        (["predict", str(checkpoint), str(image), "--attention-map", str(folder)], "--attention-map"),
        (["train", "captioning", "--run-dir", str(file)], f"the run directory {file} exists and is not a"),
        (["data", "synth", "shapes", "--out", str(file), "--num-images", "4"], f"--out {file} exists"),
        (["data", "demos", "--out", str(file), "--episodes", "1"], f"--out {file} exists"),
        (["data", "cache-features", "--out", str(file)], f"--out {file} exists"),
        (["score", "captioning", "--predictions", str(file), "--output", str(folder)], "is a directory"),
        (
            ["predict", str(checkpoint), str(image), "--attention-map", str(file / "a.png")],
            f"{file} is a file",
        ),
        (["diagnose", "gradients", "--out", str(file), "--text", str(file)], f"--out {file} exists"),
        (
            ["diagnose", "gradients", "--out", str(folder / "g"), "--text", str(file), "--steps", "0"],
            "--steps",
        ),
    ]
    for args, message in cases:
        assert_one_line_error(runner.invoke(app, args), message)
    assert list(folder.iterdir()) == [] and file.read_text() == "x"


def test_resume_from_a_checkpoint_of_another_task(checkpoint: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "vqa", "--run-dir", str(run_dir), "--resume", str(checkpoint)])
    assert_one_line_error(result, "cannot resume a vqa run from", "it is a captioning checkpoint")
    assert not run_dir.exists()


def test_evaluate_an_unknown_split(checkpoint: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(checkpoint), "--split", "tset"])
    assert_one_line_error(result, "unknown split 'tset' (available: test, train, val)")
