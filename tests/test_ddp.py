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


@pytest.mark.skipif(sys.platform == "win32", reason="gloo DDP via the subprocess launcher")
def test_two_process_self_critical_training(trained_run: Path, tmp_path: Path):
    """SCST under DDP: each rank samples and scores its own images (the reward tables are built on every
    rank from the same training split), DDP averages the gradients."""
    checkpoint = trained_run / "checkpoints" / "best.ckpt"
    tiny = [*TINY_CAPTIONING, f"model.init_from={checkpoint}", "scst.num_samples=2", "scst.max_length=6",
            "trainer.log_every_n_steps=1"]  # fmt: skip
    overrides = [arg for value in tiny if "devices" not in value for arg in ("--set", value)]
    run_dir = tmp_path / "run"
    devices = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
    _vltk(
        "train",
        "captioning",
        "--config",
        "scst",
        "--run-dir",
        str(run_dir),
        *devices,
        *overrides,
        cwd=tmp_path,
    )
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"]["CIDEr"] >= 0
    assert "train/reward" in (run_dir / "logs" / "metrics.csv").read_text().splitlines()[0]


def test_ranks_of_a_torchrun_or_srun_launch_agree_on_the_run_directory(monkeypatch):
    from vltk.errors import VltkError
    from vltk.tasks.runner import choose_run_dir, launcher_run_name

    for variable in ("WORLD_SIZE", "SLURM_NTASKS", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "VLTK_RUN_DIR"):
        monkeypatch.setenv(variable, "")  # recorded, so that the end of the test restores the original
        monkeypatch.delenv(variable)
    assert launcher_run_name() is None  # one process: a timestamped directory as always
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # a static torchrun launch without --rdzv-id
    with pytest.raises(VltkError, match="one of 4 processes .* pass --run-dir"):
        launcher_run_name()
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "exp7")
    assert launcher_run_name() == "torchrun-exp7"
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert launcher_run_name() == "slurm-4242"  # a requeued job keeps its id, so --resume last finds it
    assert choose_run_dir("vqa", None) == Path("runs/vqa/slurm-4242")
    monkeypatch.delenv("VLTK_RUN_DIR")
    assert choose_run_dir("vqa", "mine") == Path("mine")  # an explicit --run-dir wins


def test_processes_sharing_a_cache_generate_a_dataset_once(tmp_path: Path):
    import threading
    import time

    from vltk.data.generate_once import generate_once

    calls = []

    def generate(folder: Path) -> None:
        calls.append(folder)
        time.sleep(0.3)  # long enough for the others to arrive while this one works
        (folder / "done").write_text("complete")

    ranks = [threading.Thread(target=generate_once, args=(tmp_path, "data", "done", generate),
                              kwargs={"what": "test"}) for _ in range(3)]  # fmt: skip
    for rank in ranks:
        rank.start()
    for rank in ranks:
        rank.join()
    assert len(calls) == 1 and (tmp_path / "data" / "done").read_text() == "complete"


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo")
def test_two_torchrun_nodes_train_one_run_and_evaluate_as_one_process(tmp_path: Path):
    """``torchrun --nnodes 2 --node-rank 0|1 --master-addr 127.0.0.1 -m vltk train ...``, one process per
    "node" on this machine: one run directory (derived from the rendezvous id by both), one writer, and the
    test metrics the 2-process run reports equal ``vltk evaluate`` of its checkpoint in one process."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if key != "VLTK_RUN_DIR"}
    env.update(OMP_NUM_THREADS="1", VLTK_CACHE=os.environ.get("VLTK_CACHE", str(tmp_path / "cache")))
    overrides = [arg for value in TINY_CAPTIONING if "devices" not in value for arg in ("--set", value)]
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(rank),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(port),
                "--rdzv-id",
                "twonodes",
                "-m",
                "vltk",
                "train",
                "captioning",
                "--accelerator",
                "cpu",
                "--devices",
                "1",
                "--num-nodes",
                "2",
                "--strategy",
                "ddp",
                *overrides,
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(outputs)
    runs = sorted((tmp_path / "runs" / "captioning").iterdir())
    assert [run.name for run in runs] == ["torchrun-twonodes"]
    run = runs[0]
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    assert sum("test metrics" in output for output in outputs) == 1  # rank 0 prints, rank 1 does not
    reported = json.loads((run / "metrics.json").read_text())["metrics"]
    alone = tmp_path / "alone.json"
    _vltk("evaluate", str(run / "checkpoints" / "best.ckpt"), "--accelerator", "cpu", "--devices", "1",
          "--output", str(alone), cwd=tmp_path)  # fmt: skip
    assert json.loads(alone.read_text())["metrics"] == reported
