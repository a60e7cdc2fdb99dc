"""Config-chosen loggers: TensorBoard, Weights & Biases offline and MLflow in a local file store, each
written into the run directory, nothing sent anywhere, and a resumed run continuing the same W&B and MLflow
runs (``vltk.tasks.loggers``)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
from conftest import TINY_CAPTIONING
from typer.testing import CliRunner

from vltk.errors import ConfigError
from vltk.tasks.reliability import TrainingInterrupted
from vltk.tasks.runner import load_task_config, train

ALL_LOGGERS = [
    "trainer.loggers.tensorboard=true",
    "trainer.loggers.wandb.enabled=true",
    "trainer.loggers.wandb.project=vltk-tests",
    "trainer.loggers.mlflow.enabled=true",
    "trainer.loggers.mlflow.experiment=vltk-tests",
]


class SignalAtStep(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture
def offline(monkeypatch):
    """W&B may not reach a server or an account (a real key in the environment would not be used)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _mlflow_history(run_dir: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow import MlflowClient

    client = MlflowClient((run_dir / "mlruns").resolve().as_uri())
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def test_every_logger_writes_into_the_run_and_a_resume_continues_the_same_runs(tmp_path, offline):
    cfg = load_task_config("captioning", None, [*TINY_CAPTIONING, *ALL_LOGGERS, "trainer.max_epochs=2",
                                                "trainer.log_every_n_steps=1", "seed=3"])  # fmt: skip
    with pytest.raises(TrainingInterrupted):
        train(cfg, run_dir=tmp_path, extra_callbacks=[SignalAtStep(2)])
    ids = json.loads((tmp_path / "logs" / "loggers.json").read_text())
    # W&B names an offline run's folder by the second it started (offline-run-YYYYMMDD_HHMMSS-ID): a resumed
    # run of the same id within the same second would share the folder and overwrite the first one's
    # records (seen once on a fast machine). A restarted process takes seconds; this one waits for the next.
    time.sleep(1.1)
    train(cfg, run_dir=tmp_path, resume="last")
    assert json.loads((tmp_path / "logs" / "loggers.json").read_text()) == ids  # the same two runs

    monitored = f"val/{cfg.monitor}"
    history = _mlflow_history(tmp_path, ids["mlflow"], monitored)
    assert len(history) == 2  # one value per epoch, both in the one MLflow run
    losses = _mlflow_history(tmp_path, ids["mlflow"], "train/loss")
    assert [step for step, _ in losses][:3] == [0, 1, 2] and len(losses) > 3  # before and after the stop

    runs = sorted((tmp_path / "wandb").glob(f"offline-run-*-{ids['wandb']}"))
    assert len(runs) == 2, sorted(p.name for p in (tmp_path / "wandb").iterdir())  # offline, one per start
    written = b"".join(path.read_bytes() for run in runs for path in run.glob("*.wandb"))
    assert monitored.encode() in written and b"train/loss" in written
    assert sorted((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_the_csv_log_alone_by_default(tmp_path, monkeypatch):
    import vltk.tasks.loggers as loggers

    real = loggers._installed
    monkeypatch.setattr(loggers, "_installed", lambda module: module != "tensorboard" and real(module))
    train(load_task_config("captioning", None, TINY_CAPTIONING), run_dir=tmp_path)
    assert (tmp_path / "logs" / "metrics.csv").is_file()
    assert not any((tmp_path / name).exists() for name in ("tensorboard", "wandb", "mlruns"))
    assert not (tmp_path / "logs" / "loggers.json").exists()


@pytest.mark.parametrize(
    ("key", "module", "package"),
    [
        ("trainer.loggers.wandb.enabled", "wandb", "vltk[wandb]"),
        ("trainer.loggers.mlflow.enabled", "mlflow", "vltk[mlflow]"),
        ("trainer.loggers.tensorboard", "tensorboard", "tensorboard"),
    ],
)
def test_a_logger_that_is_not_installed_is_one_line_before_anything_is_written(
    tmp_path, monkeypatch, key, module, package
):
    import vltk.tasks.loggers as loggers
    from vltk.cli.main import app

    real = loggers._installed
    monkeypatch.setattr(loggers, "_installed", lambda name: name != module and real(name))
    with pytest.raises(ConfigError, match=rf"{key} is true but {module} is not installed: pip install"):
        train(load_task_config("captioning", None, [*TINY_CAPTIONING, f"{key}=true"]), run_dir=tmp_path / "a")
    result = CliRunner().invoke(app, ["train", "captioning", "--run-dir", str(tmp_path / "b"), "--set",
                                      f"{key}=true"])  # fmt: skip
    assert result.exit_code == 2 and f"pip install '{package}'" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_logger_argument_points_to_the_loggers_section():
    expected = r"trainer.logger' is not a setting: set trainer.loggers \(tensorboard, wandb, mlflow"
    with pytest.raises(ConfigError, match=expected):
        load_task_config("captioning", None, ["trainer.logger=false"])


def test_wandb_is_offline_unless_the_config_says_online(tmp_path):
    from vltk.tasks.loggers import _wandb_logger
    from vltk.tasks.training import WandbConfig

    offline = _wandb_logger(WandbConfig(), tmp_path, None)  # (no run starts until something is logged)
    online = _wandb_logger(WandbConfig(mode="online", name="mine"), tmp_path, "abc123")
    assert offline._wandb_init["mode"] == "offline" and offline._wandb_init["name"] == tmp_path.name
    assert online._wandb_init["mode"] == "online" and online._wandb_init["id"] == "abc123"
