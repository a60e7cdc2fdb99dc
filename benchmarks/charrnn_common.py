"""Shared plumbing of the char-RNN benchmarks: the text, a vltk lm system from a shipped config, and a
Lightning fit that records per-update losses and held-out checks with their wall time."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import pytorch_lightning as pl
import torch

from vltk.tasks.lm.data import PythonSourceDataModule, TextFilesDataModule
from vltk.tasks.lm.system import LmTask
from vltk.tasks.runner import load_task_config


def python_text(max_chars: int, seq_len: int = 25, batch_size: int = 1) -> TextFilesDataModule:
    """The built-in text (the running Python's stdlib source), split 90/5/5."""
    dm = PythonSourceDataModule(
        max_chars=max_chars, seq_len=seq_len, batch_size=batch_size, eval_batch_size=16
    )
    dm.setup("fit")
    return dm


def lm_system(config: str, overrides: list[str], dm: TextFilesDataModule, seed: int) -> LmTask:
    """A fresh :class:`LmTask` for ``configs/lm/<config>.yaml`` + overrides on ``dm``'s vocabulary."""
    cfg = load_task_config("lm", config, overrides + [f"seed={seed}"])
    pl.seed_everything(seed, verbose=False)
    dm.options = dataclasses.replace(
        dm.options,
        seq_len=cfg.data["seq_len"],
        batch_size=cfg.data["batch_size"],
        eval_batch_size=cfg.data["eval_batch_size"] or cfg.data["batch_size"],
    )
    return LmTask.from_data(cfg, dm)


@dataclass
class Record:
    losses: list[float] = field(default_factory=list)  # per update, as the training step returned it
    checks: list[tuple[int, float, float, float]] = field(default_factory=list)  # step, train s, total s, nll
    check_times: list[float] = field(default_factory=list)  # time.monotonic() at the end of each check
    started_at: float = 0.0  # time.monotonic() at on_train_start
    train_seconds: float = 0.0
    total_seconds: float = 0.0


class Recorder(pl.Callback):
    """Losses per update; at every validation the held-out nll with the training time so far (validation
    time excluded) and the total time; stops once the held-out nll reaches ``target``."""

    def __init__(self, target: float | None = None):
        self.record = Record()
        self.target = target
        self._eval_seconds = 0.0

    def on_train_start(self, trainer, pl_module):
        self._start = time.perf_counter()
        self.record.started_at = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.record.losses.append(float(outputs["loss"]))

    def on_validation_start(self, trainer, pl_module):
        self._eval_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        now = time.perf_counter()
        self._eval_seconds += now - self._eval_start
        total = now - self._start
        nll = pl_module.results["val"]["nll"]
        self.record.checks.append((trainer.global_step, total - self._eval_seconds, total, nll))
        self.record.check_times.append(time.monotonic())
        if self.target is not None and nll <= self.target:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module):
        self.record.total_seconds = time.perf_counter() - self._start
        self.record.train_seconds = self.record.total_seconds - self._eval_seconds


def fit(
    system: LmTask,
    dm,
    *,
    max_steps: int,
    val_every: int | None = None,
    target: float | None = None,
    max_epochs: int = 1,
    precision: str = "32-true",
) -> Record:
    recorder = Recorder(target)
    trainer = pl.Trainer(
        max_steps=max_steps,
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if val_every else 0,
        val_check_interval=val_every,
        check_val_every_n_epoch=1 if val_every else None,
        callbacks=[recorder],
        precision=precision,
    )
    trainer.fit(system, datamodule=dm)
    return recorder.record


def smooth(losses: list[float], vocab_size: int, seq_len: int) -> list[float]:
    """min-char-rnn's smoothing of per-update losses (summed over the chunk), from ``-log(1/V) * T``."""
    value = -torch.log(torch.tensor(1.0 / vocab_size)).item() * seq_len
    out = []
    for loss in losses:
        value = value * 0.999 + loss * 0.001
        out.append(value)
    return out
