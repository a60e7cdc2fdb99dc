"""Two CPU processes (DDP over gloo) through the real CLI: training works, and evaluation gives exactly the
metrics of one process on a split whose size is odd (the distributed sampler pads it with a duplicate, which
the metrics drop by image id)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_CAPTIONING


def _vltk(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "VLTK_RUN_DIR"}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "vltk.cli.main", *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.skipif(sys.platform == "win32", reason="gloo DDP via the subprocess launcher")
def test_two_process_training_and_evaluation_match_one_process(tmp_path: Path):
    run_dir = tmp_path / "run"
    overrides = [arg for value in TINY_CAPTIONING if "devices" not in value for arg in ("--set", value)]
    _vltk("train", "captioning", "--run-dir", str(run_dir), "--accelerator", "cpu", "--devices", "2",
          "--strategy", "ddp", *overrides, cwd=tmp_path)  # fmt: skip
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    assert checkpoint.is_file() and (run_dir / "metrics.json").is_file()

    outputs = {}
    for devices in ("1", "2"):
        output, predictions = tmp_path / f"metrics-{devices}.json", tmp_path / f"predictions-{devices}.json"
        device_flags = ["--accelerator", "cpu", "--devices", devices]
        _vltk("evaluate", str(checkpoint), *device_flags, "--output", str(output),
              "--predictions", str(predictions), cwd=tmp_path)  # fmt: skip
        outputs[devices] = (json.loads(output.read_text()), json.loads(predictions.read_text()))
    (one, one_predictions), (two, two_predictions) = outputs["1"], outputs["2"]
    assert len(one_predictions) % 2 == 1, "the test split should be odd, so DDP pads it"
    assert two["metrics"] == one["metrics"]  # exactly, not approximately
    assert two_predictions == one_predictions


def _tiny_text(tmp_path: Path) -> Path:
    import json as json_module

    path = tmp_path / "code.txt"
    path.write_text(Path(json_module.__file__).with_name("decoder.py").read_text()[:20000], encoding="utf-8")
    return path


@pytest.mark.parametrize("task", ["vqa", "lm", "navigation", "dialog"])
def test_two_process_training_of_every_other_task(task: str, tmp_path: Path):
    from test_dialog_task import TINY_DIALOG
    from test_navigation_task import TINY_NAVIGATION
    from test_vqa_task import TINY as TINY_VQA

    tiny = {
        "vqa": TINY_VQA,
        "navigation": TINY_NAVIGATION,
        "dialog": TINY_DIALOG,
        "lm": ["data.name=text", f"data.files=[{_tiny_text(tmp_path)}]", "data.seq_len=16",
               "data.batch_size=4", "model.hidden_dim=16", "model.embed_dim=8", "trainer.max_epochs=1",
               "trainer.max_steps=6", "trainer.val_check_interval=3", "trainer.enable_progress_bar=false"],
    }[task]  # fmt: skip
    overrides = [arg for value in tiny if "devices" not in value for arg in ("--set", value)]
    run_dir = tmp_path / "run"
    devices = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
    _vltk("train", task, "--run-dir", str(run_dir), *devices, *overrides, cwd=tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert metrics and (run_dir / "checkpoints" / "last.ckpt").is_file()
