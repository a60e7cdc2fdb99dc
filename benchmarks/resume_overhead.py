"""What exact resume and the other run safeguards cost per training step (target: under 5%).

Trains the default captioning model for a fixed number of steps twice per round, once with the safeguards
vltk's runner adds (RNG + data-order state in checkpoints, the signal handler, the NaN/inf loss check,
provenance, atomic checkpoint writes, a checkpoint every ``--save-every`` steps so their cost shows) and once
with plain Lightning (RandomSampler, Lightning's own checkpoint writer, same checkpoint schedule), alternating
A/B so that machine noise hits both alike. Reports the mean step time of each run (checkpoint writes
included), the median over rounds, and their ratio.

    python benchmarks/resume_overhead.py [--rounds 3] [--steps 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, publish, verdict  # noqa: E402

from vltk.tasks.reliability import (  # noqa: E402
    AtomicCheckpointIO,
    Provenance,
    ResumeState,
    SaveOnSignal,
    guard_nonfinite_loss,
)
from vltk.tasks.runner import build_datamodule, load_task_config, task_entry  # noqa: E402


class StepTimer(pl.Callback):
    """Wall time and CPU time (this process, all threads) of each optimiser step, data loading included.

    CPU time is what to compare on a machine shared with other work: other processes stretch the wall time
    of both arms unevenly, but hardly the CPU seconds this process spends per step. (Waiting for the disk
    to flush a checkpoint is wall time only; it shows in the wall-time column.)
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._last: tuple[float, float] | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = (time.perf_counter(), time.process_time())
        if self._last is not None:
            self.wall.append(now[0] - self._last[0])
            self.cpu.append(now[1] - self._last[1])
        self._last = now


def one_run(cfg, safeguards: bool, steps: int, save_every: int, directory: Path) -> tuple[float, float]:
    """Mean wall and CPU time (s) per step over ``steps`` optimiser steps (means: checkpoint writes count)."""
    pl.seed_everything(cfg.seed, verbose=False)
    entry = task_entry(cfg.task)
    datamodule = build_datamodule(entry, cfg)
    datamodule.shuffle_seed = cfg.seed
    datamodule.prepare_data()
    datamodule.setup("fit")
    system = entry.system.from_data(cfg, datamodule)
    timer = StepTimer()
    checkpoints = ModelCheckpoint(dirpath=str(directory), filename="last", every_n_train_steps=save_every)
    callbacks: list[pl.Callback] = [timer, checkpoints]
    plugins = []
    if safeguards:
        guard_nonfinite_loss(system, "raise")
        callbacks = [ResumeState(), Provenance(), SaveOnSignal(directory / "last.ckpt"), *callbacks]
        plugins = [AtomicCheckpointIO()]
        loader = datamodule.train_dataloader()
    else:  # what the spine did before: torch's RandomSampler over the same dataset and collate
        resumable = datamodule.train_dataloader()
        loader = DataLoader(resumable.dataset, batch_size=resumable.batch_size, shuffle=True,
                            collate_fn=resumable.collate_fn)  # fmt: skip
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=callbacks,
        plugins=plugins,
        gradient_clip_val=cfg.optim.grad_clip,
    )
    trainer.fit(system, train_dataloaders=loader)
    return statistics.fmean(timer.wall), statistics.fmean(timer.cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--save-every", type=int, default=20)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)"
    )
    parser.add_argument("--num-images", type=int, default=1000)
    add_json_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_task_config("captioning", None, [f"data.num_images={args.num_images}"])
    timings: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            for safeguards in (False, True) if round_index % 2 == 0 else (True, False):
                directory = Path(scratch) / f"r{round_index}-{int(safeguards)}"
                timings[safeguards].append(one_run(cfg, safeguards, args.steps, args.save_every, directory))
                wall, cpu = timings[safeguards][-1]
                print(f"round {round_index}: safeguards={safeguards}: {wall * 1000:.1f} ms/step wall, "
                      f"{cpu * 1000:.1f} ms/step CPU")  # fmt: skip

    def median(safeguards: bool, column: int) -> float:
        return statistics.median(t[column] for t in timings[safeguards])

    def best(safeguards: bool, column: int) -> float:
        return min(t[column] for t in timings[safeguards])

    def row(name: str, safeguards: bool) -> str:
        each = ", ".join(f"{w * 1000:.0f} / {c * 1000:.0f}" for w, c in timings[safeguards])
        return (
            f"| {name} | {median(safeguards, 1) * 1000:.1f} | {median(safeguards, 0) * 1000:.1f} | "
            f"{best(safeguards, 0) * 1000:.1f} | {each} |\n"
        )

    cpu_overhead = (median(True, 1) / median(False, 1) - 1) * 100
    wall_overhead = (median(True, 0) / median(False, 0) - 1) * 100
    best_wall_overhead = (best(True, 0) / best(False, 0) - 1) * 100
    text = (
        f"Default captioning model on {args.num_images} shapes images, batch {cfg.data['batch_size']}, "
        f"{args.steps} steps per run, a checkpoint every {args.save_every} steps, {args.rounds} rounds "
        f"alternating A B, B A, ... in one process, {args.threads} torch thread(s); mean time per step "
        "(data loading and checkpoint writes included); median over rounds (best round for wall time "
        "too).\n"
        "\n"
        "| run | CPU ms/step, median | wall ms/step, median | wall ms/step, best | each round (wall / CPU "
        "ms) |\n"
        "|---|---|---|---|---|\n"
        + row("plain Lightning (RandomSampler, Lightning's checkpoint writer)", False)
        + row("vltk safeguards (resume state, signals, NaN check, provenance, atomic writes)", True)
        + "\n"
        f"Overhead per step: **{wall_overhead:+.1f}% wall time** (median; {best_wall_overhead:+.1f}% by "
        f"the best rounds), {cpu_overhead:+.1f}% CPU time. Target (issue 6): under 5%: "
        f"{verdict(wall_overhead, 5.0, higher=False, fmt='.1f', unit='%')}.\n"
    )
    data = {"plain": timings[False], "safeguards": timings[True], "wall_overhead_pct": wall_overhead,
            "cpu_overhead_pct": cpu_overhead}  # fmt: skip
    publish(text, data, args.json)


if __name__ == "__main__":
    main()
