"""Faults and bad numbers: exact resume, signals, atomic checkpoints, non-finite losses, provenance.

Each test here is a row of docs/RELIABILITY.md.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import TINY_CAPTIONING

from vltk.data.resumable import ResumableRandomSampler
from vltk.errors import ConfigError
from vltk.tasks.reliability import NonFiniteLossError, TrainingInterrupted
from vltk.tasks.runner import load_system, load_task_config, train

TWO_EPOCHS = ["trainer.max_epochs=2", "trainer.log_every_n_steps=1"]


def _config(overrides: list[str], seed: int = 5):
    return load_task_config("captioning", None, [*overrides, *TWO_EPOCHS, f"seed={seed}"])


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


class SignalAtStep(pl.Callback):
    """Sends ``signum`` to this process after the optimiser step ``step`` (as a cluster would)."""

    def __init__(self, step: int, signum: int = signal.SIGTERM) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, _isolated_cache) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    train(_config(TINY_CAPTIONING), run_dir=run_dir)
    return run_dir


def test_same_seed_twice_gives_identical_weights(uninterrupted: Path, tmp_path: Path):
    train(_config(TINY_CAPTIONING), run_dir=tmp_path)
    _assert_bitwise_equal(_weights(uninterrupted), _weights(tmp_path))


def _steps_per_epoch(run_dir: Path) -> int:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] // 2


@pytest.mark.parametrize("where", ["mid-epoch-0", "epoch-boundary", "mid-epoch-1"])
def test_resume_after_sigterm_is_bitwise_identical(uninterrupted: Path, tmp_path: Path, where: str):
    steps_per_epoch = _steps_per_epoch(uninterrupted)
    stop_after_step = {
        "mid-epoch-0": 2,
        "epoch-boundary": steps_per_epoch,
        "mid-epoch-1": steps_per_epoch + 3,
    }
    cfg = _config(TINY_CAPTIONING)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(cfg, run_dir=tmp_path, extra_callbacks=[SignalAtStep(stop_after_step[where])])
    assert stopped.value.exit_code == 143
    assert stopped.value.checkpoint == tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(stopped.value.checkpoint, weights_only=True)["global_step"] == stop_after_step[where]
    train(cfg, run_dir=tmp_path, resume="last")
    _assert_bitwise_equal(_weights(uninterrupted), _weights(tmp_path))


def test_sigint_saves_and_reports_130(tmp_path: Path):
    with pytest.raises(TrainingInterrupted) as stopped:
        train(_config(TINY_CAPTIONING), run_dir=tmp_path, extra_callbacks=[SignalAtStep(1, signal.SIGINT)])
    assert stopped.value.exit_code == 130 and "SIGINT" in str(stopped.value)
    assert "--resume last" in str(stopped.value)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_cli_exits_143_on_sigterm_and_the_checkpoint_resumes(tmp_path: Path):
    run_dir = tmp_path / "run"
    overrides = [*TINY_CAPTIONING, "trainer.max_epochs=1000", "data.num_images=200"]
    command = [sys.executable, "-m", "vltk.cli.main", "train", "captioning", "--run-dir", str(run_dir)]
    command += [arg for value in overrides for arg in ("--set", value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    deadline = time.time() + 120
    while not (run_dir / "logs" / "metrics.csv").is_file() and time.time() < deadline:  # training started
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 143, output
    assert "SIGTERM" in output and "--resume last" in output
    assert load_system(run_dir / "checkpoints" / "last.ckpt") is not None


KILLED_WHILE_WRITING = textwrap.dedent(
    """
    import os, signal, sys, torch
    from vltk.tasks.reliability import AtomicCheckpointIO
    target = sys.argv[1]
    os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # dies after writing, before the rename
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(1000)}}, target)
    """
)


def test_a_kill_while_writing_a_checkpoint_leaves_the_previous_one_loadable(tmp_path: Path):
    from vltk.tasks.reliability import AtomicCheckpointIO

    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)
    result = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(target)], capture_output=True)
    assert result.returncode == -signal.SIGKILL
    assert list(tmp_path.glob(".last.ckpt.tmp-*"))  # the half-done write is beside it, not over it
    assert torch.equal(torch.load(target, weights_only=True)["state_dict"]["w"], torch.ones(3))
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)
    assert not list(tmp_path.glob(".last.ckpt.tmp-*"))  # the next save cleans up


def _nan_after(monkeypatch, step: int) -> None:
    from vltk.tasks.captioning.system import CaptioningTask

    original = CaptioningTask._loss

    def loss(self, batch, training=False):
        total, cross_entropy, regulariser = original(self, batch, training)
        if self.training and self.trainer.global_step >= step:
            total = total * float("nan")
        return total, cross_entropy, regulariser

    monkeypatch.setattr(CaptioningTask, "_loss", loss)


def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(
    uninterrupted: Path, monkeypatch, tmp_path
):
    steps_per_epoch = _steps_per_epoch(uninterrupted)
    _nan_after(monkeypatch, step=steps_per_epoch + 1)  # epoch 1's second batch; epoch 0 saved a checkpoint
    expected = rf"step {steps_per_epoch + 1}, epoch 1, batch 1 \(image_ids: "
    with pytest.raises(NonFiniteLossError, match=expected):
        train(_config(TINY_CAPTIONING), run_dir=tmp_path)
    weights = _weights(tmp_path)
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == steps_per_epoch


def test_skip_policy_skips_and_counts_nan_batches(monkeypatch, tmp_path):
    _nan_after(monkeypatch, step=4)  # every batch from step 4 on is skipped
    cfg = _config([*TINY_CAPTIONING, "trainer.on_nonfinite_loss=skip"])
    result = train(cfg, run_dir=tmp_path)
    assert result.metrics  # the run finished and was tested
    weights = _weights(tmp_path)
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
    log = (tmp_path / "logs" / "metrics.csv").read_text()
    assert "train/skipped_nonfinite" in log.splitlines()[0]


def test_checkpoints_carry_provenance_and_a_version_change_warns(uninterrupted: Path, tmp_path, caplog):
    import vltk

    payload = torch.load(uninterrupted / "checkpoints" / "last.ckpt", weights_only=True)
    record = payload["vltk_provenance"]
    assert record["vltk"] == vltk.__version__ and record["torch"] == str(torch.__version__)
    assert {"pytorch_lightning", "git_commit", "python"} <= set(record)
    payload["vltk_provenance"]["vltk"] = "0.0.1"
    older = tmp_path / "older.ckpt"
    torch.save(payload, older)
    with caplog.at_level(logging.WARNING):
        load_system(older)
    assert "written by vltk 0.0.1" in caplog.text


def test_the_resumable_order_depends_on_seed_and_epoch_only_and_resumes_mid_epoch():
    sampler = ResumableRandomSampler(10, seed=1)
    first = list(sampler)
    assert sorted(first) == list(range(10)) and list(ResumableRandomSampler(10, seed=1)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first and list(ResumableRandomSampler(10, seed=2)) != first
    sampler.resume_at(1, 4)
    assert list(sampler) == sampler.permutation(1)[4:] and list(sampler) == sampler.permutation(1)[4:]
    assert len(sampler) == 10  # Lightning counts the batches already done itself
    sampler.set_epoch(2)
    assert list(sampler) == sampler.permutation(2)


def test_export_round_trip_gives_identical_outputs(uninterrupted: Path, tmp_path: Path):
    from PIL import Image
    from typer.testing import CliRunner

    import vltk
    from vltk.cli.main import app
    from vltk.tasks.pretrained import load_captioner

    checkpoint = uninterrupted / "checkpoints" / "last.ckpt"
    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", str(checkpoint), str(out)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "README.md",  # the model card
    }
    images = [Image.new("RGB", (40, 30), color) for color in ("red", "navy", "white")]
    exported, original = vltk.from_pretrained(out), load_captioner(checkpoint)
    assert exported.caption(images, beam_size=2) == original.caption(images, beam_size=2)
    batch = torch.stack([original.model.encoder.transforms()(image) for image in images])
    with torch.no_grad():
        a = original.model.encode(batch).grid
        b = exported.model.encode(batch).grid
    assert torch.equal(a, b)
    # the CLI's predict takes the directory wherever it takes a checkpoint
    image = tmp_path / "red.png"
    images[0].save(image)
    predicted = [CliRunner().invoke(app, ["predict", str(path), str(image)]) for path in (checkpoint, out)]
    assert predicted[0].exit_code == 0 and predicted[0].output == predicted[1].output


def test_exported_tokenizer_loads_in_transformers(uninterrupted: Path, tmp_path: Path):
    transformers = pytest.importorskip("transformers", reason="transformers is a test extra")
    from vltk.export import export_checkpoint
    from vltk.text import Vocabulary

    out = export_checkpoint(uninterrupted / "checkpoints" / "last.ckpt", tmp_path / "export")
    tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(str(out))
    vocab = Vocabulary.load(out / "tokenizer.json")
    sentence = vocab.decode(list(range(4, 10)))
    assert tokenizer(sentence)["input_ids"] == vocab.encode(sentence)
    assert tokenizer.pad_token == "<pad>" and tokenizer.eos_token == "<end>"


def test_export_errors_name_the_problem(tmp_path: Path):
    from vltk.errors import VltkError
    from vltk.export import export_checkpoint, read_export

    with pytest.raises(VltkError, match="checkpoint not found"):
        export_checkpoint(tmp_path / "missing.ckpt", tmp_path / "out")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(VltkError, match="junk.ckpt is not a vltk checkpoint"):
        export_checkpoint(tmp_path / "junk.ckpt", tmp_path / "out")
    with pytest.raises(VltkError, match="config.json is missing"):
        read_export(tmp_path)


def test_deterministic_flag_reaches_lightning(tmp_path: Path):
    from typer.testing import CliRunner

    from vltk.cli.main import app, device_overrides
    from vltk.tasks.runner import build_trainer

    assert "trainer.deterministic=true" in device_overrides(None, None, None, None, None, None, True)
    cfg = load_task_config("captioning", None, [*TINY_CAPTIONING, "trainer.deterministic=true"])
    try:
        build_trainer(cfg, tmp_path)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    result = CliRunner().invoke(app, ["train", "--help"])
    assert "--deterministic" in result.output


def _tiny_overrides(task: str, tmp_path: Path) -> list[str]:
    if task == "lm":
        from test_lm_task import CODE, tiny_overrides

        text = tmp_path / "code.py"
        text.write_text(CODE, encoding="utf-8")
        return [*tiny_overrides(text), "trainer.max_steps=-1", "model.dropout=0.2"]
    if task == "dialog":
        from test_dialog_task import TINY_DIALOG

        return [*TINY_DIALOG, "model.fusion.dropout=0.3"]
    if task == "vqa":
        from test_vqa_task import TINY as TINY_VQA

        return [*TINY_VQA, "data.max_questions=60", "data.batch_size=8"]
    from test_navigation_task import TINY_NAVIGATION

    return [*TINY_NAVIGATION, "data.batch_size=4"]


@pytest.mark.parametrize("task", ["vqa", "navigation", "lm", "dialog"])
def test_other_tasks_resume_mid_epoch_bitwise_identical(task: str, tmp_path: Path):
    cfg = load_task_config(task, None, [*_tiny_overrides(task, tmp_path), *TWO_EPOCHS, "seed=4"])
    train(cfg, run_dir=tmp_path / "straight")
    steps_per_epoch = _steps_per_epoch(tmp_path / "straight")
    with pytest.raises(TrainingInterrupted):
        train(cfg, run_dir=tmp_path / "stopped", extra_callbacks=[SignalAtStep(steps_per_epoch + 2)])
    train(cfg, run_dir=tmp_path / "stopped", resume="last")
    _assert_bitwise_equal(_weights(tmp_path / "straight"), _weights(tmp_path / "stopped"))


def test_lightning_reads_the_checkpoints_weights_only(uninterrupted: Path, tmp_path, monkeypatch):
    seen = []
    for method in ("fit", "test"):
        original = getattr(pl.Trainer, method)

        def recording(self, *args, _original=original, _method=method, **kwargs):
            seen.append((_method, kwargs.get("ckpt_path") is not None, kwargs.get("weights_only")))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(pl.Trainer, method, recording)
    finished = str(uninterrupted / "checkpoints" / "last.ckpt")  # both epochs done: fit loads it and stops
    train(_config(TINY_CAPTIONING), run_dir=tmp_path / "resumed", resume=finished)
    assert seen == [("fit", True, True), ("test", True, True)]


def _git(directory: Path, *args: str) -> str:
    command = ["git", "-C", str(directory), "-c", "user.email=t@t", "-c", "user.name=t", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def _repository(root: Path, project: str, tracked: str) -> Path:
    """A git repository at ``root`` whose pyproject names ``project``, with the file ``tracked`` committed."""
    (root / tracked).parent.mkdir(parents=True)
    (root / tracked).write_text("# a module\n")
    (root / "pyproject.toml").write_text(f'[project]\nname = "{project}"\nversion = "1"\n')
    _git(root.parent, "init", "-q", root.name)
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "first")
    return root


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
def test_the_recorded_commit_is_vltks_own_checkout_only(tmp_path):
    from vltk.tasks.reliability import git_commit

    own = _repository(tmp_path / "vltk", "vltk", "tasks/reliability.py")
    assert git_commit(own / "tasks" / "reliability.py") == _git(own, "rev-parse", "HEAD")
    installed = own / ".venv" / "lib" / "vltk" / "tasks" / "reliability.py"  # in the folder, untracked
    installed.parent.mkdir(parents=True)
    installed.write_text("# installed\n")
    assert git_commit(installed) is None
    other = _repository(tmp_path / "someone-else", "their-project", "vendor/vltk/tasks/reliability.py")
    assert git_commit(other / "vendor" / "vltk" / "tasks" / "reliability.py") is None  # theirs, not vltk's
    outside = tmp_path / "no-repository" / "reliability.py"
    outside.parent.mkdir()
    outside.write_text("# loose\n")
    assert git_commit(outside) is None


def test_an_export_is_not_overwritten_unless_asked_and_its_files_are_readable(uninterrupted: Path, tmp_path):
    from typer.testing import CliRunner

    from vltk.cli.main import app
    from vltk.errors import VltkError
    from vltk.export import export_checkpoint

    checkpoint = uninterrupted / "checkpoints" / "last.ckpt"
    out = export_checkpoint(checkpoint, tmp_path / "export")
    from safetensors.torch import load_file

    weights = load_file(out / "model.safetensors")  # (not the bytes: safetensors orders its header freely)
    with pytest.raises(VltkError, match=r"already holds an export \(model.safetensors, config.json, token"):
        export_checkpoint(checkpoint, out)
    result = CliRunner().invoke(app, ["export", str(checkpoint), str(out)])
    assert result.exit_code == 2 and "--overwrite" in result.output
    (out / "vocab.json").write_text("{}")  # a file of an earlier (lm) export: gone after the overwrite
    result = CliRunner().invoke(app, ["export", str(checkpoint), str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    again = load_file(out / "model.safetensors")
    assert again.keys() == weights.keys() and all(torch.equal(again[k], weights[k]) for k in weights)
    assert not (out / "vocab.json").exists()
    umask = os.umask(0o022)
    os.umask(umask)
    for path in out.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path  # what any new file gets, not 0600


def test_early_stopping_lr_monitor_and_extra_checkpoints_are_config_choices(tmp_path):
    overrides = [
        *TINY_CAPTIONING, "trainer.max_epochs=5", "trainer.log_every_n_steps=1",
        "trainer.early_stopping.enabled=true", "trainer.early_stopping.patience=1",
        "trainer.early_stopping.min_delta=1e9",  # nothing after the first validation counts as better
        "trainer.lr_monitor=true", "trainer.checkpoints.keep_top_k=2", "trainer.checkpoints.every_n_epochs=1",
    ]  # fmt: skip
    config = load_task_config("captioning", None, [*overrides, "seed=5"])
    train(config, run_dir=tmp_path)
    assert (
        torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    )  # stopped: 2 of 5
    names = sorted(path.name for path in (tmp_path / "checkpoints").glob("*.ckpt"))
    assert names == [
        "best.ckpt",
        "epoch=0.ckpt",
        "epoch=1.ckpt",
        "last.ckpt",
        "top-epoch=0.ckpt",
        "top-epoch=1.ckpt",
    ]
    assert "lr-Adam" in (tmp_path / "logs" / "metrics.csv").read_text().splitlines()[0]
    with pytest.raises(ConfigError, match="trainer.early_stopping.patience must be >= 1"):
        load_task_config("captioning", None, ["trainer.early_stopping.patience=0"])


FAKE_SLURM = {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "vltk-test", "SLURM_PROCID": "0",
              "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}  # fmt: skip
"""A SLURM batch job of one task, as srun sets it up (Lightning's ``SLURMEnvironment.detect()`` is true)."""


def _fake_scontrol(directory: Path) -> Path:
    """An ``scontrol`` that records its arguments in ``directory/scontrol.log`` (as SLURM would requeue)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$@" >> {directory / "scontrol.log"}\n')
    script.chmod(0o755)
    return directory / "scontrol.log"


def _slurm_job(monkeypatch, tmp_path: Path) -> Path:
    for name, value in FAKE_SLURM.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("VLTK_RUN_DIR", raising=False)  # train() sets it; gone again after the test
    log = _fake_scontrol(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    return log


def test_sigusr1_in_a_slurm_job_saves_requeues_and_the_requeued_job_resumes_bitwise(
    uninterrupted: Path, tmp_path: Path, monkeypatch
):
    scontrol_log = _slurm_job(monkeypatch, tmp_path)
    cfg = _config(TINY_CAPTIONING)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(cfg, resume="auto", extra_callbacks=[SignalAtStep(3, signal.SIGUSR1)])
    run_dir = Path("runs/captioning/slurm-4242")  # the job's own directory, found again after the requeue
    assert stopped.value.exit_code == 138 and stopped.value.requeued == "4242"
    assert "SLURM job 4242 requeued" in str(stopped.value) and "--resume auto" in str(stopped.value)
    assert scontrol_log.read_text().split() == ["requeue", "4242"]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers restored
    train(cfg, resume="auto")  # the requeued job: the same command
    _assert_bitwise_equal(_weights(uninterrupted), _weights(run_dir))
    assert scontrol_log.read_text().split() == ["requeue", "4242"]  # requeued once


def test_slurm_requeue_can_be_turned_off(tmp_path: Path, monkeypatch):
    scontrol_log = _slurm_job(monkeypatch, tmp_path)
    cfg = _config([*TINY_CAPTIONING, "trainer.slurm_requeue=false"])
    received = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    try:
        result = train(cfg, extra_callbacks=[SignalAtStep(2, signal.SIGUSR1)])
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert received == [signal.SIGUSR1] and result.metrics  # not vltk's: the run went on to the test
    assert not scontrol_log.exists()


def test_the_cli_requeues_on_sigusr1_and_the_same_command_continues(tmp_path: Path):
    overrides = [*TINY_CAPTIONING, "trainer.max_epochs=1000", "data.num_images=200"]
    command = [sys.executable, "-m", "vltk", "train", "captioning", "--resume", "auto"]
    command += [arg for value in overrides for arg in ("--set", value)]
    scontrol_log = _fake_scontrol(tmp_path / "bin")
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, **FAKE_SLURM, "OMP_NUM_THREADS": "1", "PATH": path}
    env.pop("VLTK_RUN_DIR", None)
    run_dir = tmp_path / "runs" / "captioning" / "slurm-4242"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                               cwd=tmp_path)  # fmt: skip
    deadline = time.time() + 120
    while not (run_dir / "logs" / "metrics.csv").is_file() and time.time() < deadline:  # training started
        time.sleep(0.2)
    process.send_signal(signal.SIGUSR1)  # what sbatch --signal=USR1@120 sends before the time limit
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 138, output
    assert "SLURM job 4242 requeued" in output and scontrol_log.read_text().split() == ["requeue", "4242"]
    stopped = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    finish = command + ["--set", f"trainer.max_epochs={stopped['epoch'] + 1}"]  # the requeued job, shortened
    done = subprocess.run(finish, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] > stopped["global_step"] and (run_dir / "metrics.json").is_file()
