"""The loggers of a training run, as the ``trainer.loggers`` section chooses them.

``RUN/logs/metrics.csv`` (Lightning's ``CSVLogger``) is always written; TensorBoard (``RUN/tensorboard``),
Weights & Biases (Lightning's ``WandbLogger``, offline by default: ``RUN/wandb``) and MLflow (Lightning's
``MLFlowLogger``, a local file store ``RUN/mlruns`` by default) are added on request. A resumed run logs into
the same W&B and MLflow runs: their ids are kept in ``RUN/logs/loggers.json``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, Logger

from vltk.errors import ConfigError

logger = logging.getLogger(__name__)

RUN_IDS_FILE = "loggers.json"  # in RUN/logs: the W&B and MLflow run ids a resumed run continues

_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "vltk[wandb]"),
             "mlflow": ("mlflow", "vltk[mlflow]")}  # fmt: skip
"""logger -> (the module it needs, what to install)."""


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_loggers(config: Any) -> None:
    """Every logger the section asks for can be made here (before anything is written).

    Raises:
        ConfigError: one line naming the key and what to install.
    """
    asked = {
        "tensorboard": config.tensorboard is True,
        "wandb": config.wandb.enabled,
        "mlflow": config.mlflow.enabled,
    }
    for name, wanted in asked.items():
        module, package = _PACKAGES[name]
        if wanted and not _installed(module):
            key = f"trainer.loggers.{name}" + ("" if name == "tensorboard" else ".enabled")
            raise ConfigError(f"{key} is true but {module} is not installed: pip install '{package}'")


def _read_run_ids(run_dir: Path) -> dict[str, str]:
    path = run_dir / "logs" / RUN_IDS_FILE
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {key: value for key, value in found.items() if isinstance(value, str)}


def _write_run_ids(run_dir: Path, ids: dict[str, str]) -> None:
    path = run_dir / "logs" / RUN_IDS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ids, indent=2) + "\n", encoding="utf-8")


def _wandb_logger(config: Any, run_dir: Path, run_id: str | None) -> Logger:
    from pytorch_lightning.loggers import WandbLogger

    return WandbLogger(
        name=config.name or run_dir.name,
        save_dir=str(run_dir),
        offline=config.mode == "offline",
        mode=config.mode,  # for wandb.init (Lightning's offline flag only sets WANDB_MODE, at the start)
        id=run_id or secrets.token_hex(4),  # W&B's own ids are 8 characters of [a-z0-9] too
        project=config.project,
        entity=config.entity,
        tags=list(config.tags) or None,
        resume="allow",  # a resumed vltk run continues its W&B run
    )


def _mlflow_logger(config: Any, run_dir: Path, run_id: str | None) -> Logger:
    from pytorch_lightning.loggers import MLFlowLogger

    tracking_uri = config.tracking_uri
    if tracking_uri is None:  # the local file store: MLflow 3 keeps it (in maintenance mode) behind a switch
        tracking_uri = (run_dir / "mlruns").resolve().as_uri()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLFlowLogger(
        experiment_name=config.experiment,
        run_name=config.run_name or run_dir.name,
        tracking_uri=tracking_uri,
        tags=dict(config.tags) or None,
        run_id=run_id,
    )


def build_loggers(config: Any, run_dir: Path, *, resuming: bool, is_global_zero: bool) -> list[Logger]:
    """The CSV logger and those ``config`` (a ``LoggersConfig``) turns on, writing into ``run_dir``.

    A resumed run (``resuming``) reuses the W&B and MLflow run ids recorded by the run it continues; rank
    0 records them (``RUN/logs/loggers.json``).
    """
    check_loggers(config)
    loggers: list[Logger] = [CSVLogger(str(run_dir), name="logs", version="")]
    if config.tensorboard is True or (config.tensorboard == "auto" and _installed("tensorboard")):
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(str(run_dir), name="tensorboard", version=""))
    if not (config.wandb.enabled or config.mlflow.enabled):
        return loggers
    ids = _read_run_ids(run_dir) if resuming else {}
    if config.wandb.enabled:
        wandb_logger = _wandb_logger(config.wandb, run_dir, ids.get("wandb"))
        ids["wandb"] = wandb_logger.version
        loggers.append(wandb_logger)
    if config.mlflow.enabled:
        mlflow_logger = _mlflow_logger(config.mlflow, run_dir, ids.get("mlflow"))
        if is_global_zero:  # only rank 0 logs; reading run_id creates the MLflow run (in the file store)
            ids["mlflow"] = mlflow_logger.run_id
        loggers.append(mlflow_logger)
    if is_global_zero:
        _write_run_ids(run_dir, ids)
    return loggers


def finish_loggers(loggers: list[Logger]) -> None:
    """End the W&B run of this process (Lightning's ``WandbLogger`` leaves it open, and the next
    ``WandbLogger`` in the same process would log into it); the other loggers close themselves."""
    for each in loggers:
        if type(each).__name__ == "WandbLogger" and getattr(each, "_experiment", None) is not None:
            each.experiment.finish()
