"""What makes a run survive pre-emption, crashes and bad numbers, and come back to the same weights.

- :class:`ResumeState` stores the RNG states (torch, CUDA, numpy, Python) and the position in the training
  order in every checkpoint, and puts them back on resume, so a resumed run continues bit for bit (Lightning's
  checkpoints hold weights, optimiser, scheduler and loop counters, but neither RNG states nor the position
  inside an epoch).
- :class:`SaveOnSignal` turns SIGTERM (cluster pre-emption) and SIGINT (Ctrl+C) into "finish this batch,
  write ``last.ckpt``, stop"; the runner then raises :class:`TrainingInterrupted` and the CLI exits 143 / 130.
  A second Ctrl+C aborts at once. In a SLURM batch job SIGUSR1 does the same and then requeues the job
  (``scontrol requeue``, as Lightning's ``SLURMEnvironment(auto_requeue=True)`` does, but at a batch boundary
  so that the resumed run is bitwise the uninterrupted one); the CLI exits 138.
- :class:`AtomicCheckpointIO` writes a checkpoint to a temporary file, flushes it to disk and renames it over
  the old one, so a process killed while writing leaves the previous checkpoint intact.
- :func:`guard_nonfinite_loss` stops a run at the first NaN/inf loss, naming the step and the batch, before
  the bad gradients reach the weights (or skips such batches and counts them).
- :class:`Provenance` records the versions and the git commit a checkpoint was made with.

Everything stored in a checkpoint is tensors and primitives, so ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import SIGTERMException

from vltk.errors import VltkError

logger = logging.getLogger(__name__)
RESUME_KEY = "vltk_resume"
PROVENANCE_KEY = "vltk_provenance"


class TrainingInterrupted(VltkError):
    """Training stopped on a signal after writing a checkpoint that resumes."""

    def __init__(self, signum: int, checkpoint: Path | None, run_dir: Path, requeued: str | None = None):
        self.signum = signum
        self.checkpoint = checkpoint
        self.requeued = requeued
        self.exit_code = 128 + signum  # the shell's convention: 143 SIGTERM, 130 SIGINT, 138 SIGUSR1
        name = signal.Signals(signum).name
        saved = f"checkpoint written to {checkpoint}" if checkpoint else "no checkpoint written"
        then = (
            f"SLURM job {requeued} requeued: it continues with --resume auto"
            if requeued
            else f"continue with --run-dir {run_dir} --resume last"
        )
        super().__init__(f"interrupted by {name}; {saved}; {then}")


# ------------------------------------------------------------------------------------------------ SLURM
def slurm_batch_job() -> bool:
    """This process is a task of a SLURM batch job (Lightning's test: ``SLURM_NTASKS`` is set and the job is
    not an interactive ``bash``/``interactive`` allocation)."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return SLURMEnvironment.detect()


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes: ``<array job>_<array task>`` for an array task, else the job id."""
    if not slurm_batch_job():
        return None
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{os.environ.get('SLURM_ARRAY_TASK_ID', '0')}"
    return os.environ.get("SLURM_JOB_ID")


def slurm_plugins() -> list[Any]:
    """Under SLURM, Lightning's SLURM environment with its own requeue handler off: its handler writes a
    checkpoint inside the signal handler, in the middle of a step; :class:`SaveOnSignal` requeues at the
    next batch boundary instead."""
    if not slurm_batch_job():
        return []
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)]


def requeue_slurm_job(job_id: str) -> bool:
    """``scontrol requeue JOB``: SLURM puts the job back in the queue; it restarts with the same id (hence
    the same run directory). True when scontrol succeeded."""
    if not re.fullmatch(r"[0-9]+(_[0-9]+)?", job_id):
        logger.warning("not requeueing: %r is not a SLURM job id", job_id)
        return False
    try:
        done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        logger.warning("could not requeue SLURM job %s: %s", job_id, error)
        return False
    if done.returncode != 0:
        reason = done.stderr.strip()
        logger.warning("scontrol requeue %s failed (exit %d): %s", job_id, done.returncode, reason)
        return False
    logger.warning("requeued SLURM job %s", job_id)
    return True


class NonFiniteLossError(VltkError):
    """The loss became NaN or infinite."""


# ------------------------------------------------------------------------------------------- RNG states
def capture_rng_states() -> dict[str, Any]:
    """Every global RNG a training step may draw from, as tensors and primitives."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gauss": float(cached_gauss),
        },
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gauss"],
        )
    )
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss_next"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


# ------------------------------------------------------------------------------------------ exact resume
class ResumeState(pl.Callback):
    """Saves and restores the RNG states and the position in the training order.

    The datamodule takes part through ``resume_train_order(epoch, items_done)`` (see
    ``vltk.data.resumable.ResumableRandomSampler``) or, for data served in a fixed order of batches (the
    ``lm`` streams), ``resume_train_batches(epoch, batches_done)``; without either a mid-epoch resume
    restarts the epoch's order (Lightning warns) but the RNG states are still restored.
    """

    def __init__(self) -> None:
        self.batches_done = 0  # optimiser steps' batches finished in the current epoch
        self._pending_rng: dict[str, Any] | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.batches_done = 0  # not called when Lightning restarts in the middle of an epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._pending_rng is not None:  # first batch after a resume: continue the interrupted stream
            restore_rng_states(self._pending_rng)
            self._pending_rng = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches_done += 1

    def _position(self, trainer: pl.Trainer) -> tuple[int, int]:
        epoch = trainer.current_epoch
        if self.batches_done >= trainer.num_training_batches:
            return epoch + 1, 0
        return epoch, self.batches_done

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        epoch, batches = self._position(trainer)
        checkpoint[RESUME_KEY] = {
            "epoch": epoch,
            "batches_done": batches,
            "world_size": trainer.world_size,
            "rng": capture_rng_states(),
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(RESUME_KEY)
        if state is None:
            logger.warning(
                "this checkpoint has no RNG/data-order state (older vltk?): the resumed run will differ"
            )
            return
        self.batches_done = state["batches_done"]
        self._pending_rng = state["rng"]
        datamodule = trainer.datamodule
        if hasattr(datamodule, "resume_train_batches"):  # ordered streams (lm): skip whole batches
            datamodule.resume_train_batches(state["epoch"], state["batches_done"])
        elif hasattr(datamodule, "resume_train_order"):
            batch_size = int(getattr(datamodule, "batch_size", 1))
            items = state["batches_done"] * batch_size * state["world_size"]
            datamodule.resume_train_order(state["epoch"], items)


# --------------------------------------------------------------------------------------------- signals
class SaveOnSignal(pl.Callback):
    """SIGTERM/SIGINT: finish the current batch, write ``last.ckpt`` and stop (see module docstring).

    Lightning already turns SIGTERM into a stop after the current batch (``SIGTERMException``); this callback
    routes SIGINT the same way, remembers which signal came, and writes the checkpoint when the stop happens.
    With ``requeue_job`` (a SLURM job id) SIGUSR1 is routed the same way too, and after the checkpoint is
    written rank 0 requeues the job.
    """

    def __init__(self, checkpoint_path: Path, requeue_job: str | None = None) -> None:
        self.checkpoint_path = Path(checkpoint_path)
        self.requeue_job = requeue_job
        self.signum: int | None = None
        self.saved: Path | None = None
        self.requeued: str | None = None
        self._previous: dict[int, Any] = {}

    def _signals(self) -> tuple[int, ...]:
        if self.requeue_job is None:
            return (signal.SIGTERM, signal.SIGINT)
        return (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning has installed its SIGTERM handler by now (it sets trainer.received_sigterm; it is
        # registered after on_fit_start), so route both signals through it.
        lightning_sigterm = signal.getsignal(signal.SIGTERM)

        def handle(signum: int, frame: Any) -> None:
            if self.signum == signal.SIGINT and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl+C: stop now, without a checkpoint
            self.signum = signum
            logger.warning(
                "%s received: finishing this batch, then saving and stopping", signal.Signals(signum).name
            )
            if callable(lightning_sigterm):
                lightning_sigterm(signal.SIGTERM, frame)

        for signum in self._signals():
            try:
                self._previous[signum] = signal.signal(signum, handle)
            except ValueError:  # not the main thread: leave the handlers alone
                pass

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, SIGTERMException):
            self.signum = self.signum or int(signal.SIGTERM)
            trainer.save_checkpoint(str(self.checkpoint_path))
            self.saved = self.checkpoint_path
            if self.signum == signal.SIGUSR1 and self.requeue_job and trainer.is_global_zero:
                self.requeued = self.requeue_job if requeue_slurm_job(self.requeue_job) else None
        self._restore_handlers()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()


# ------------------------------------------------------------------------------------ atomic checkpoints
class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into ``.<name>.tmp-<pid>`` beside the target, fsync, then ``os.replace`` over it.

    A rename within one directory is atomic on POSIX file systems: a reader (or a resumed run) sees either
    the old checkpoint or the new one, never a half-written file, whenever the writer is killed.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            with open(temporary, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        finally:
            if temporary.exists():
                temporary.unlink()
        for stale in target.parent.glob(f".{target.name}.tmp-*"):  # left by writers that were killed
            stale.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------- bad numbers
def _example_ids(batch: Any) -> str:
    for name in ("image_ids", "question_ids", "example_ids", "ids"):
        ids = getattr(batch, name, None)
        if ids is not None:
            values = ids.tolist() if hasattr(ids, "tolist") else list(ids)
            shown = ", ".join(str(v) for v in values[:8])
            return f" ({name}: {shown}{', ...' if len(values) > 8 else ''})"
    return ""


def guard_nonfinite_loss(system: pl.LightningModule, policy: str) -> None:
    """Wrap ``system.training_step``: a NaN/inf loss stops the run (``raise``) or skips the batch (``skip``).

    The check runs before the backward pass, so the weights (and the checkpoints on disk) stay those of the
    last good step. Skipped batches are counted in ``system.skipped_nonfinite_batches`` and logged as
    ``train/skipped_nonfinite``. (Skipping returns ``None`` from the step, which Lightning supports on one
    process; under DDP use ``raise``.)
    """
    if policy not in ("raise", "skip"):
        raise VltkError(f"trainer.on_nonfinite_loss must be 'raise' or 'skip', got '{policy}'")
    step = system.training_step
    system.skipped_nonfinite_batches = 0

    def guarded(batch: Any, batch_idx: int, *args: Any, **kwargs: Any) -> Any:
        output = step(batch, batch_idx, *args, **kwargs)
        loss = output["loss"] if isinstance(output, dict) else output
        if loss is None or bool(torch.isfinite(loss.detach()).all()):
            return output
        where = f"step {system.trainer.global_step}, epoch {system.current_epoch}, batch {batch_idx}"
        if policy == "skip":
            system.skipped_nonfinite_batches += 1
            logger.warning(
                "non-finite loss (%s) at %s%s: batch skipped", loss.item(), where, _example_ids(batch)
            )
            system.log("train/skipped_nonfinite", float(system.skipped_nonfinite_batches), batch_size=1)
            return None
        raise NonFiniteLossError(
            f"the loss is {loss.item()} at {where}{_example_ids(batch)}; the weights are those of the last "
            "good step and the last checkpoint on disk is intact. Lower optim.lr, check the data, or set "
            "trainer.on_nonfinite_loss=skip to skip such batches."
        )

    system.training_step = guarded


# ------------------------------------------------------------------------------------------- provenance
def _git(directory: Path, *args: str) -> str | None:
    """``git -C directory ARGS``'s output, or None when git is missing or fails."""
    try:
        result = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _is_vltk_project(root: Path) -> bool:
    """Whether ``root/pyproject.toml`` declares the project named vltk."""
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r'^name\s*=\s*"vltk"\s*$', text, flags=re.MULTILINE) is not None


def git_commit(source: Path | None = None) -> str | None:
    """The commit of vltk's own git checkout, or None when vltk is not running from one.

    ``source`` (default: this file) must be tracked by the repository it sits in and that repository's
    ``pyproject.toml`` must name the vltk project: a vltk installed into a virtualenv inside some other
    project's repository (or copied into one) is not that project's commit.
    """
    source = (source or Path(__file__)).resolve()
    root = _git(source.parent, "rev-parse", "--show-toplevel")
    if not root or not _is_vltk_project(Path(root)):
        return None
    if _git(Path(root), "ls-files", "--error-unmatch", str(source.relative_to(Path(root).resolve()))) is None:
        return None  # inside the checkout's folder but not part of it (e.g. a virtualenv there)
    return _git(Path(root), "rev-parse", "HEAD")


def provenance() -> dict[str, Any]:
    import pytorch_lightning
    import torchvision

    import vltk

    return {
        "vltk": vltk.__version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "pytorch_lightning": str(pytorch_lightning.__version__),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


class Provenance(pl.Callback):
    """Stores :func:`provenance` in every checkpoint (``checkpoint["vltk_provenance"]``)."""

    def __init__(self) -> None:
        self.record = provenance()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[PROVENANCE_KEY] = dict(self.record)


def check_provenance(payload: dict[str, Any], path: Path) -> None:
    """Warn when a checkpoint was written by another vltk version (its behaviour may differ)."""
    import vltk

    record = payload.get(PROVENANCE_KEY)
    if record is None:
        logger.warning("%s carries no provenance (written before vltk recorded it)", path)
    elif record.get("vltk") != vltk.__version__:
        logger.warning(
            "%s was written by vltk %s (commit %s); this is vltk %s: results may differ",
            path,
            record.get("vltk"),
            record.get("git_commit"),
            vltk.__version__,
        )
