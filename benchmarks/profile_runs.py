"""Where the wall time of each task's default run goes (issue 19, "Time to a good model").

Runs ``vltk train TASK`` (the task's default config on its built-in data, plus any ``--set``) for each task,
each in a fresh process and a fresh, empty dataset cache, and charges every moment of the process, from
its start to its exit, to exactly one bucket with plain ``time.perf_counter`` timers (no profiler
overhead in the figures):

    python benchmarks/profile_runs.py                                   # the five default runs as they are
    python benchmarks/profile_runs.py --tasks captioning vqa --set trainer.max_epochs=1
    python benchmarks/profile_runs.py --set captioning:data.num_images=200   # TASK:KEY=VALUE: that task only
    python benchmarks/profile_runs.py --tasks lm --set lm:data.max_chars=60000 --torch-profiler

How each bucket is measured (all from outside vltk: wrappers around methods and autograd hooks, installed
in the child process only; nothing in vltk changes):

- *start-up, imports and config*: the interpreter's start (the parent's clock from ``Popen`` to the child's
  first line), then the imports and the CLI's config loading, until ``vltk.tasks.runner.train`` is called.
- *data preparation*: the DataModule's ``prepare_data`` and ``setup`` (built-in data generated into the
  fresh cache: cold; Lightning calls ``setup`` again in fit and test, counted too). The same two calls in a
  second process with the filled cache give the warm figure, reported beside the run, not in its total.
- *loading and collation*: building the loaders, and every ``next()`` on a DataLoader iterator (dataset
  reads, transforms, collation: what the loops wait for), in training, validation and test.
- *image encoder / decoder / loss, forward*: wrappers around the task's parts (:data:`TASK_PARTS`) during
  training steps; a part's time excludes the parts nested in it (the decoder's excludes the encoder's).
- *... backward*: ``LightningModule.backward`` is split by hooks on the tensors each part returned: on one
  CPU thread the autograd engine runs ready nodes newest first, so the loss's nodes run first, then the
  decoder's, then the encoder's (each part's nodes were made in one stretch of the forward); a hook fires
  when the first node of its part runs, and the time from there on is charged to that part. (Off the
  CPU the backward runs on the device's thread: one unsplit bucket, and the run is flagged.)
- *optimiser*: the precision plugin's ``optimizer_step`` (the update, gradient clipping and the
  ``on_before_optimizer_step`` hooks) minus the closure it runs (the training step, zero_grad and
  backward, charged to their own buckets), plus ``optimizer_zero_grad`` and ``lr_scheduler_step``.
- *validation and test decoding*: the system's ``_eval_step`` (the model forward, the generation or the
  rollouts, and the per-batch metric update), and the samples and predictions read after training. The
  network's parts called in there count here, not as training time.
- *metrics*: the system's ``_end_eval`` (the metric computation over the split, e.g. the caption scorers).
- *logging*: ``self.log`` / ``log_dict``, Lightning's logger connector (its metric reductions and
  writes) and every logger's ``log_metrics``/``save``/``finalize``.
- *checkpoints*: ``Trainer.save_checkpoint`` (dumping the state and the atomic write) and restoring a
  checkpoint (the best one, before the test).
- *other (Lightning loop, callbacks)*: the rest (the loops, the progress bar, the callbacks' own logic,
  model construction, the Trainer's set-up, printing the results).
- *process exit*: from the child's clock stopping to the parent seeing the process end (the ``atexit``
  handlers and ``os._exit``, as the installed command ends: ``vltk.cli.main.exit_process``), so that the
  buckets sum to the wall time the parent measured from ``Popen`` to the exit.

``--torch-profiler`` adds an op-level table per task (``torch.profiler``, CPU) in ``--profiler-dir``; its
bucket figures then include the profiler's overhead and say so.
"""

from __future__ import annotations

import time

_STARTED_MONOTONIC = time.monotonic()  # the child's start, read before any other import
_STARTED = time.perf_counter()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, load, machine, mode, publish  # noqa: E402

TASKS = ("captioning", "vqa", "dialog", "navigation", "lm")

# ------------------------------------------------------------------------------------------------ buckets
STARTUP = "startup"
DATA = "data_preparation"
LOADING = "loading"
ENCODER_FORWARD = "encoder_forward"
ENCODER_BACKWARD = "encoder_backward"
DECODER_FORWARD = "decoder_forward"
DECODER_BACKWARD = "decoder_backward"
LOSS_FORWARD = "loss_forward"
LOSS_BACKWARD = "loss_backward"
BACKWARD = "backward_unsplit"
OPTIMISER = "optimiser"
VALIDATION = "validation_decoding"
METRICS = "metrics"
LOGGING = "logging"
CHECKPOINTS = "checkpoints"
OTHER = "other"
EXIT = "exit"

LABELS = {
    STARTUP: "start-up, imports and config",
    DATA: "data preparation (cold cache)",
    LOADING: "loading and collation",
    ENCODER_FORWARD: "image encoder forward",
    ENCODER_BACKWARD: "image encoder backward",
    DECODER_FORWARD: "decoder forward",
    DECODER_BACKWARD: "decoder backward",
    LOSS_FORWARD: "loss forward",
    LOSS_BACKWARD: "loss backward",
    BACKWARD: "backward, not split (not on the CPU)",
    OPTIMISER: "optimiser (update, clipping, zero_grad, schedule)",
    VALIDATION: "validation and test decoding",
    METRICS: "metrics",
    LOGGING: "logging",
    CHECKPOINTS: "checkpoints (save and load)",
    OTHER: "other (Lightning loop, callbacks)",
    EXIT: "process exit (after the run)",
}
BUCKETS = tuple(LABELS)
PART_BUCKETS = (
    ENCODER_FORWARD,
    ENCODER_BACKWARD,
    DECODER_FORWARD,
    DECODER_BACKWARD,
    LOSS_FORWARD,
    LOSS_BACKWARD,
)
_TRAINING_STEP = {
    LOSS_FORWARD,
    ENCODER_FORWARD,
    DECODER_FORWARD,
    LOSS_BACKWARD,
    BACKWARD,
    OPTIMISER,
    LOGGING,
    OTHER,
}
NESTS: dict[str, frozenset[str]] = {
    # A section of bucket B opened inside one of bucket A counts as B only when B is in NESTS[A]; otherwise
    # it is A's (absorbed): the decoder run by a validation step is validation decoding, a DataLoader read
    # inside prepare_data is data preparation. ``other`` and ``startup`` hold anything.
    STARTUP: frozenset(BUCKETS),
    OTHER: frozenset(BUCKETS),
    OPTIMISER: frozenset(_TRAINING_STEP),
    LOSS_FORWARD: frozenset({ENCODER_FORWARD, DECODER_FORWARD, LOGGING}),
    DECODER_FORWARD: frozenset({ENCODER_FORWARD, DECODER_FORWARD}),
    LOADING: frozenset({DATA}),  # a loader that sets its DataModule up on first use
    VALIDATION: frozenset({LOGGING}),
    METRICS: frozenset({LOGGING}),
}


@dataclasses.dataclass
class Frame:
    """One open section: the bucket its time goes to (its own, or the enclosing one's when absorbed)."""

    bucket: str
    stage: str
    own: bool
    backward: bool = False


class BucketClock:
    """Charges every moment between its start and :meth:`finish` to exactly one bucket: the innermost open
    section's (a stack of :class:`Frame`), so nested sections are subtracted from the enclosing one and
    the buckets sum to the span.

    Each section also carries a *stage* (``outside``, ``train``, ``val``, ``test``): the same bucket is
    reported per stage too. Sections opened on another thread (a loader's pin-memory thread, an autograd
    worker) are ignored and counted in ``ignored``.

    Args:
        base: the bucket of time outside every section.
        stage: the stage outside every section.
        started: the start (``now()``'s clock); ``None``: now.
        now: the clock (``time.perf_counter``; tests pass a fake one).
    """

    def __init__(
        self,
        base: str = OTHER,
        stage: str = "outside",
        *,
        started: float | None = None,
        now: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._now = now
        self.started = now() if started is None else started
        self.finished: float | None = None
        self._last = self.started
        self._stack = [Frame(base, stage, own=True)]
        self._thread = threading.get_ident()
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.absorbed: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()

    def _advance(self) -> None:
        now = self._now()
        top = self._stack[-1]
        self.seconds[(top.bucket, top.stage)] += now - self._last
        self._last = now

    def _usable(self, what: str) -> bool:
        if self.finished is not None:
            self.ignored[f"{what} after finish"] += 1
            return False
        if threading.get_ident() != self._thread:
            self.ignored[f"{what} on another thread"] += 1
            return False
        return True

    def enter(
        self, bucket: str | None = None, stage: str | None = None, *, backward: bool = False
    ) -> Frame | None:
        """Open a section (``bucket=None``: the enclosing bucket, e.g. to change only the stage)."""
        if not self._usable("section"):
            return None
        self._advance()
        top = self._stack[-1]
        target, own = top.bucket, False
        if bucket is not None:
            if bucket == top.bucket or bucket in NESTS.get(top.bucket, ()):
                target, own = bucket, True
                self.calls[bucket] += 1
            else:
                self.absorbed[f"{bucket} in {top.bucket}"] += 1
        frame = Frame(target, stage or top.stage, own=own, backward=backward and own)
        self._stack.append(frame)
        return frame

    def exit(self, frame: Frame | None) -> None:
        if frame is None:
            return
        if self._stack[-1] is not frame or len(self._stack) == 1:
            raise RuntimeError("BucketClock: sections closed out of order")
        self._advance()
        self._stack.pop()

    @contextlib.contextmanager
    def section(self, bucket: str | None = None, stage: str | None = None) -> Iterator[Frame | None]:
        frame = self.enter(bucket, stage)
        try:
            yield frame
        finally:
            self.exit(frame)

    def switch(self, bucket: str) -> None:
        """Inside a backward section: what ran so far stays where it was; from now on, ``bucket``."""
        if not self._usable("backward hook"):
            return
        top = self._stack[-1]
        if not top.backward:
            self.ignored["backward hook outside a backward section"] += 1
            return
        self._advance()
        top.bucket = bucket

    def rebase(self, bucket: str, stage: str | None = None) -> None:
        """Change the bucket (and stage) of the time outside every section, from now on."""
        if not self._usable("rebase"):
            return
        self._advance()
        base = self._stack[0]
        base.bucket, base.stage = bucket, stage or base.stage

    def finish(self) -> float:
        """Stop the clock; the span from the start (equal to the sum of the buckets)."""
        if self.finished is None:
            self._advance()
            self.finished = self._last
        return self.finished - self.started

    def by_bucket(self) -> dict[str, float]:
        totals = dict.fromkeys(BUCKETS, 0.0)
        for (bucket, _), seconds in self.seconds.items():
            totals[bucket] = totals.get(bucket, 0.0) + seconds
        return totals

    def by_stage(self) -> dict[str, dict[str, float]]:
        table: dict[str, dict[str, float]] = {}
        for (bucket, stage), seconds in sorted(self.seconds.items()):
            table.setdefault(bucket, {})[stage] = seconds
        return table

    def record(self) -> dict[str, Any]:
        """What the clock measured, as plain data (``seconds`` per bucket sums to ``total_s``)."""
        total = self.finish()
        return {
            "total_s": total,
            "seconds": self.by_bucket(),
            "by_stage": self.by_stage(),
            "calls": dict(self.calls),
            "absorbed": dict(self.absorbed),
            "ignored": dict(self.ignored),
        }


# ------------------------------------------------------------------------------------ the parts of a task
@dataclasses.dataclass(frozen=True)
class TaskParts:
    """Where a task's network parts are, as attribute paths from its Lightning system
    (``model.encoder.forward``): ``encoder`` and ``decoder`` are timed in training steps (forward, and
    their share of the backward), ``loss`` is the call that computes the loss around them (its own time
    less theirs is the loss's forward)."""

    encoder: tuple[str, ...]
    decoder: tuple[str, ...]
    loss: tuple[str, ...]
    meaning: str


TASK_PARTS = {
    "captioning": TaskParts(
        ("model.encoder.forward",),
        ("model.decoder.teacher_forcing",),
        ("_loss",),
        "image encoder: the CNN; decoder: teacher forcing of the attention LSTM (attention, LSTM, vocabulary "
        "projection); loss: cross-entropy and the attention regulariser",
    ),
    "vqa": TaskParts(
        ("model.encoder.forward",),
        ("model.forward",),
        ("_loss",),
        "image encoder: the CNN; decoder: the rest of the VQA model (question GRU, attention glimpses, "
        "answer MLP); loss: soft cross-entropy",
    ),
    "dialog": TaskParts(
        ("model.image_encoder.forward",),
        ("model.encoder.forward", "model.decoder.forward"),
        ("model.loss",),
        "image encoder: the CNN; decoder: the late fusion encoder (question and history LSTMs, attention, "
        "fusion) and the discriminative decoder (the options' LSTM, dot products); loss: cross-entropy over "
        "the options",
    ),
    "navigation": TaskParts(
        ("model.encode_views",),
        ("model.forward_episodes", "model.begin"),
        ("_loss",),
        "image encoder: the view CNN over the symbolic 7x7 grids (all steps at once); decoder: the rest of "
        "the agent (instruction GRU, attention, FiLM, memory LSTM per step, action head); loss: "
        "cross-entropy against the bot's actions",
    ),
    "lm": TaskParts(
        (),
        ("model.forward",),
        ("_nll",),
        "no image encoder; decoder: the character LSTM (embedding, LSTM, projection); loss: cross-entropy",
    ),
}


def _resolve(root: Any, path: str) -> tuple[Any, str] | None:
    """``(owner, name)`` of ``path`` (``a.b.name``) under ``root``, or None when it is not there."""
    *owners, name = path.split(".")
    owner = root
    for part in owners:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    return (owner, name) if callable(getattr(owner, name, None)) else None


def _tensors(value: Any, depth: int = 0) -> Iterator[Any]:
    """The tensors in a part's output (tensors, dataclasses, tuples, lists, dicts; four levels deep)."""
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif depth > 4:
        return
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _tensors(getattr(value, f.name, None), depth + 1)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item, depth + 1)


class _FirstGradient:
    """A tensor hook: the first time any output of one part call gets its gradient, switch the backward
    section to that part's bucket."""

    def __init__(self, clock: BucketClock, bucket: str) -> None:
        self.clock, self.bucket, self.fired = clock, bucket, False

    def __call__(self, grad: Any) -> None:
        if not self.fired:
            self.fired = True
            self.clock.switch(self.bucket)


class Instrumentation:
    """Wraps the parts of a training run so that a :class:`BucketClock` sees them; everything is undone on
    exit (``with Instrumentation(clock, task): runner.train(cfg)``).

    Installed from outside vltk: ``vltk.tasks.runner``'s ``build_datamodule`` and ``build_trainer`` are
    wrapped to reach the DataModule and the Trainer, ``Trainer.fit`` to reach the system, and
    ``torch.utils.data``'s iterators to time the loaders. ``rebase_on_train`` ends the start-up bucket when
    ``runner.train`` is called (the child process; a test starts its clock at the call).
    """

    def __init__(self, clock: BucketClock, task: str | None = None, *, rebase_on_train: bool = False) -> None:
        self.clock = clock
        self.parts = TASK_PARTS.get(task or "")
        self.rebase_on_train = rebase_on_train
        self.found: list[str] = []
        self.missing: list[str] = []
        self.settings: dict[str, Any] = {}
        self.trainer: Any = None
        self.system: Any = None
        self._undo: list[tuple[Any, str, bool, Any]] = []
        self._done: list[Any] = []  # the objects already instrumented

    # ------------------------------------------------------------------------------------ wrapping
    def _patch(self, owner: Any, name: str, make: Callable[[Any], Callable]) -> None:
        own = vars(owner) if hasattr(owner, "__dict__") else {}
        had, before = name in own, own.get(name)
        setattr(owner, name, make(getattr(owner, name)))
        self._undo.append((owner, name, had, before))

    def _timed(self, bucket: str | None, stage: str | None = None) -> Callable[[Any], Callable]:
        clock = self.clock

        def make(original: Callable) -> Callable:
            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                frame = clock.enter(bucket, stage)
                try:
                    return original(*args, **kwargs)
                finally:
                    clock.exit(frame)

            return wrapper

        return make

    def _part(self, forward: str, backward: str) -> Callable[[Any], Callable]:
        """A network part: its forward time, and hooks on its outputs that hand the backward to it."""
        import torch

        clock = self.clock

        def make(original: Callable) -> Callable:
            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                frame = clock.enter(forward)
                try:
                    result = original(*args, **kwargs)
                    if frame is not None and frame.own and torch.is_grad_enabled():
                        given = {id(t) for t in _tensors((args, kwargs))}
                        hook = _FirstGradient(clock, backward)
                        for tensor in _tensors(result):
                            if (
                                tensor.requires_grad
                                and tensor.grad_fn is not None
                                and id(tensor) not in given
                            ):
                                tensor.register_hook(hook)
                    return result
                finally:
                    clock.exit(frame)

            return wrapper

        return make

    def _backward(self, system: Any) -> Callable[[Any], Callable]:
        """``LightningModule.backward``, split by the parts' hooks on the CPU. Elsewhere the engine runs the
        backward on the device's own thread, where the hooks cannot be read in order: one bucket."""
        clock = self.clock

        def make(original: Callable) -> Callable:
            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if getattr(system.device, "type", "cpu") == "cpu":
                    frame = clock.enter(LOSS_BACKWARD, backward=True)  # the loss's nodes run first
                else:
                    frame = clock.enter(BACKWARD)
                try:
                    return original(*args, **kwargs)
                finally:
                    clock.exit(frame)

            return wrapper

        return make

    def _optimizer_step(self) -> Callable[[Any], Callable]:
        """The precision plugin's ``optimizer_step(optimizer, model, closure, ...)``: the optimiser's, but
        the closure it runs (training step, zero_grad, backward) is timed as its own."""
        clock, timed = self.clock, self._timed(OTHER)

        def make(original: Callable) -> Callable:
            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if "closure" in kwargs and kwargs["closure"] is not None:
                    kwargs["closure"] = timed(kwargs["closure"])
                elif len(args) >= 3 and callable(args[2]):
                    args = (*args[:2], timed(args[2]), *args[3:])
                frame = clock.enter(OPTIMISER)
                try:
                    return original(*args, **kwargs)
                finally:
                    clock.exit(frame)

            return wrapper

        return make

    def _patch_all(self, owner: Any, names: Sequence[str], make: Callable[[Any], Callable]) -> None:
        for name in names:
            if callable(getattr(owner, name, None)):
                self._patch(owner, name, make)

    # ------------------------------------------------------------------------------ what is wrapped
    def instrument_datamodule(self, datamodule: Any) -> Any:
        if any(done is datamodule for done in self._done):
            return datamodule
        self._done.append(datamodule)
        self._patch_all(datamodule, ("prepare_data", "setup"), self._timed(DATA))
        self._patch_all(
            datamodule, ("train_dataloader", "val_dataloader", "test_dataloader"), self._timed(LOADING)
        )
        return datamodule

    def instrument_system(self, system: Any) -> None:
        if any(done is system for done in self._done):
            return
        self._done.append(system)
        self.system = system
        if self.parts is not None:
            groups = (
                (self.parts.encoder, ENCODER_FORWARD, ENCODER_BACKWARD),
                (self.parts.decoder, DECODER_FORWARD, DECODER_BACKWARD),
                (self.parts.loss, LOSS_FORWARD, None),
            )
            for paths, forward, backward in groups:
                for path in paths:
                    where = _resolve(system, path)
                    if where is None:
                        self.missing.append(path)
                        continue
                    self.found.append(path)
                    make = self._part(forward, backward) if backward else self._timed(forward)
                    self._patch(*where, make)
        self._patch_all(system, ("training_step",), self._timed(OTHER))
        self._patch_all(system, ("backward",), self._backward(system))
        self._patch_all(
            system,
            ("optimizer_zero_grad", "lr_scheduler_step", "configure_gradient_clipping"),
            self._timed(OPTIMISER),
        )
        self._patch_all(system, ("log", "log_dict"), self._timed(LOGGING))
        self._patch_all(system, ("_eval_step", "sample_rows", "prediction_rows"), self._timed(VALIDATION))
        self._patch_all(system, ("_end_eval",), self._timed(METRICS))

    def instrument_trainer(self, trainer: Any) -> Any:
        self.trainer = trainer
        instrumentation = self

        def fit(original: Callable) -> Callable:
            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                model = kwargs.get("model", args[0] if args else None)
                if model is not None:
                    instrumentation.instrument_system(model)
                if kwargs.get("datamodule") is not None:
                    instrumentation.instrument_datamodule(kwargs["datamodule"])
                frame = instrumentation.clock.enter(OTHER, "train")
                try:
                    return original(*args, **kwargs)
                finally:
                    instrumentation.clock.exit(frame)

            return wrapper

        self._patch(trainer, "fit", fit)
        self._patch(trainer, "test", self._timed(OTHER, "test"))
        val_loop = getattr(getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None), "val_loop", None)
        if val_loop is not None:
            self._patch(val_loop, "run", self._timed(None, "val"))
        self._patch(trainer, "save_checkpoint", self._timed(CHECKPOINTS))
        connector = getattr(trainer, "_checkpoint_connector", None)
        if connector is not None:  # restoring (private names: wrapped only where this Lightning has them)
            self._patch_all(
                connector,
                ("_restore_modules_and_callbacks", "restore_training_state"),
                self._timed(CHECKPOINTS),
            )
        strategy = trainer.strategy
        self._patch_all(
            strategy.checkpoint_io, ("save_checkpoint", "load_checkpoint"), self._timed(CHECKPOINTS)
        )
        self._patch_all(strategy.precision_plugin, ("optimizer_step",), self._optimizer_step())
        logging_connector = getattr(trainer, "_logger_connector", None)
        if logging_connector is not None:
            self._patch_all(
                logging_connector,
                (
                    "log_metrics",
                    "update_train_step_metrics",
                    "update_train_epoch_metrics",
                    "update_eval_step_metrics",
                    "update_eval_epoch_metrics",
                    "log_eval_end_metrics",
                    "on_batch_end",
                    "on_epoch_end",
                ),
                self._timed(LOGGING),
            )
        for logger in trainer.loggers:
            self._patch_all(
                logger,
                ("log_metrics", "log_hyperparams", "log_graph", "save", "finalize"),
                self._timed(LOGGING),
            )
        return trainer

    def _record_settings(self, cfg: Any) -> None:
        trainer = getattr(cfg, "trainer", None)
        data = getattr(cfg, "data", None)
        self.settings = {
            "task": getattr(cfg, "task", None),
            "seed": getattr(cfg, "seed", None),
            "max_epochs": getattr(trainer, "max_epochs", None),
            "data": dict(data) if isinstance(data, dict) else None,
            "enable_progress_bar": getattr(trainer, "enable_progress_bar", None),
        }

    # ------------------------------------------------------------------------------------- context
    def __enter__(self) -> Instrumentation:
        from torch.utils.data import DataLoader
        from torch.utils.data.dataloader import _BaseDataLoaderIter

        from vltk.tasks import runner

        instrumentation = self

        def datamodule(original: Callable) -> Callable:
            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return instrumentation.instrument_datamodule(original(*args, **kwargs))

            return wrapper

        def trainer(original: Callable) -> Callable:
            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return instrumentation.instrument_trainer(original(*args, **kwargs))

            return wrapper

        def train(original: Callable) -> Callable:
            @functools.wraps(original)
            def wrapper(cfg: Any, *args: Any, **kwargs: Any) -> Any:
                if instrumentation.rebase_on_train:
                    instrumentation.clock.rebase(OTHER)  # start-up ends where the training path begins
                instrumentation._record_settings(cfg)
                return original(cfg, *args, **kwargs)

            return wrapper

        self._patch(runner, "build_datamodule", datamodule)
        self._patch(runner, "build_trainer", trainer)
        self._patch(runner, "train", train)
        self._patch(_BaseDataLoaderIter, "__next__", self._timed(LOADING))
        self._patch(DataLoader, "__iter__", self._timed(LOADING))
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, name, had, before in reversed(self._undo):
            if had:
                setattr(owner, name, before)
            else:
                with contextlib.suppress(AttributeError):
                    delattr(owner, name)
        self._undo.clear()

    def record(self) -> dict[str, Any]:
        """The clock's record plus what was instrumented and the run's optimiser steps."""
        record = self.clock.record()
        record["parts_found"], record["parts_missing"] = list(self.found), list(self.missing)
        record["settings"] = dict(self.settings)
        if self.trainer is not None:
            record["optimizer_steps"] = int(self.trainer.global_step)
        if self.system is not None:
            record["device"] = str(self.system.device)
            record["test_metrics"] = {
                k: float(v) for k, v in getattr(self.system, "results", {}).get("test", {}).items()
            }
        return record


def profile_training(cfg: Any, run_dir: Path, *, clock: BucketClock | None = None) -> dict[str, Any]:
    """``vltk.tasks.runner.train(cfg)`` under :class:`Instrumentation`, in this process: the record of
    where its time went, from the call to its return (no start-up; the child process adds that)."""
    from vltk.tasks import runner

    clock = clock or BucketClock(OTHER)
    with Instrumentation(clock, cfg.task) as instrumentation:
        runner.train(cfg, run_dir=run_dir)
    return instrumentation.record()


# ------------------------------------------------------------------------------------------- the child
def child_run(spec: dict[str, Any]) -> dict[str, Any]:
    """In the child process: ``vltk train TASK --run-dir D --set ...`` through the CLI's own entry point,
    instrumented; the clock started at this file's first line."""
    clock = BucketClock(STARTUP, started=_STARTED)
    import torch

    from vltk.tasks import runner  # noqa: F401 (imported here so that its import counts as start-up)

    argv = ["vltk", "train", spec["task"], "--run-dir", spec["run_dir"]]
    argv += ["--config", spec["config"]] if spec.get("config") else []
    argv += [arg for value in spec["overrides"] for arg in ("--set", value)]
    code: int = 0
    profiler = None
    with Instrumentation(clock, spec["task"], rebase_on_train=True) as instrumentation:
        from vltk.cli.main import exit_status
        from vltk.cli.main import main as vltk_main

        sys.argv = argv
        context: Any = contextlib.nullcontext()
        if spec.get("torch_profiler"):
            profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            context = profiler
        try:
            with context:
                vltk_main()
        except SystemExit as stop:
            code = exit_status(stop.code)
        record = instrumentation.record()
    record["finished_monotonic"] = time.monotonic()
    record["started_monotonic"] = _STARTED_MONOTONIC
    record["exit_code"] = code
    record["command"] = shlex.join([*argv[:4], "RUN", *argv[5:]])  # the run directory was a temporary one
    record["torch_threads"] = torch.get_num_threads()
    record["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS", "unset")
    if profiler is not None and spec.get("profiler_out"):
        table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
        Path(spec["profiler_out"]).write_text(table + "\n", encoding="utf-8")
    return record


def child_warm(spec: dict[str, Any]) -> dict[str, Any]:
    """In a second child, after the run filled the cache: the run's first ``prepare_data`` and
    ``setup("fit")`` again (the warm figure)."""
    from vltk.tasks import runner

    cfg = runner.load_task_config(spec["task"], spec.get("config"), spec["overrides"])
    entry = runner.task_entry(cfg.task).for_config(cfg)
    datamodule = runner.build_datamodule(entry, cfg)
    if hasattr(datamodule, "shuffle_seed"):
        datamodule.shuffle_seed = cfg.seed
    start = time.perf_counter()
    datamodule.prepare_data()
    datamodule.setup("fit")
    return {"warm_data_preparation_s": time.perf_counter() - start}


# ------------------------------------------------------------------------------------------ the parent
def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _child(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[int, float, float]:
    """Run this script as a child; ``(exit code, spawn time, exit time)`` on the monotonic clock."""
    with open(log, "w", encoding="utf-8") as out:
        spawned = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), *args],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        exited = time.monotonic()
    return done.returncode, spawned, exited


def profile_task(
    task: str,
    overrides: list[str],
    *,
    warm: bool,
    torch_profiler: Path | None,
    logs: Path | None,
    config: str | None = None,
) -> dict[str, Any]:
    """One task's run (its default config, or ``config``) in a fresh process and a fresh cache; its
    buckets, start to exit."""
    with tempfile.TemporaryDirectory(prefix=f"vltk-profile-{task}-") as scratch:
        work = Path(scratch)
        cache = work / "cache"
        cache.mkdir()
        log_dir = logs or work
        log_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "task": task,
            "config": config,
            "overrides": overrides,
            "run_dir": str(work / "run"),
            "torch_profiler": torch_profiler is not None,
            "profiler_out": str(torch_profiler / f"{task}.txt") if torch_profiler else None,
        }
        if torch_profiler is not None:
            torch_profiler.mkdir(parents=True, exist_ok=True)
        spec_path, result_path = work / "spec.json", work / "result.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        env = dict(os.environ, VLTK_CACHE=str(cache), PYTHONUNBUFFERED="1")
        log = log_dir / f"{task}.log"
        code, spawned, exited = _child(["--child", str(spec_path), str(result_path)], env, work, log)
        if code != 0 or not result_path.is_file():
            return {"task": task, "status": f"failed (exit code {code})", "log_tail": _tail(log)}
        record = json.loads(result_path.read_text())
        if record.get("exit_code"):
            return {
                "task": task,
                "status": f"failed (vltk exit code {record['exit_code']})",
                "log_tail": _tail(log),
            }
        wall = exited - spawned
        interpreter = record["started_monotonic"] - spawned
        exit_time = wall - interpreter - record["total_s"]  # the child's clock stopped to the parent's exit
        seconds = dict(record["seconds"])
        seconds[STARTUP] += interpreter
        seconds[EXIT] += exit_time
        record.update(
            task=task,
            status="ok",
            wall_s=wall,
            interpreter_start_s=interpreter,
            exit_s=exit_time,
            seconds=seconds,
            total_s=sum(seconds.values()),
            cache="cold (a fresh, empty VLTK_CACHE)",
            cache_written=_folder_size(cache),
        )
        if warm:
            code, _, _ = _child(
                ["--child-warm", str(spec_path), str(work / "warm.json")],
                env,
                work,
                log_dir / f"{task}-warm.log",
            )
            if code == 0:
                record.update(json.loads((work / "warm.json").read_text()))
        return record


def _folder_size(folder: Path) -> dict[str, float]:
    """How many files the run left in ``folder`` and their size (MB): what the cold cache made."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return {"files": len(files), "mb": sum(path.stat().st_size for path in files) / 1e6}


def _cache_cell(written: dict[str, float] | None) -> str:
    if not written:
        return "n/a"
    if not written["files"]:
        return "nothing (its data is not generated)"
    return f"{written['files']} files, {written['mb']:.1f} MB"


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value >= 10 else f"{value:.2f} s"


def _has_part(task: str, bucket: str) -> bool:
    parts = TASK_PARTS.get(task)
    if parts is None:
        return False
    if bucket in (ENCODER_FORWARD, ENCODER_BACKWARD):
        return bool(parts.encoder)
    if bucket in (DECODER_FORWARD, DECODER_BACKWARD):
        return bool(parts.decoder)
    return bool(parts.loss)


def markdown(results: list[dict[str, Any]], overrides: list[str], warm: bool, torch_profiler: bool) -> str:
    ok = [r for r in results if r["status"] == "ok"]
    names = [r["task"] for r in ok]
    head = "| bucket | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = []
    for bucket in BUCKETS:
        if bucket == BACKWARD and not any(r["seconds"].get(BACKWARD) for r in ok):
            continue  # every run was on the CPU, where the backward is split
        cells = []
        for r in ok:
            if bucket in PART_BUCKETS and not _has_part(r["task"], bucket):
                cells.append("–")
                continue
            value = r["seconds"].get(bucket, 0.0)
            cells.append(f"{_seconds(value)} ({100 * value / r['total_s']:.1f}%)")
        rows.append(f"| {LABELS[bucket]} | " + " | ".join(cells) + " |")
    rows.append(
        "| **total, process start to exit** | "
        + " | ".join(f"**{_seconds(r['total_s'])}**" for r in ok)
        + " |"
    )
    if warm:
        rows.append(
            "| data preparation, warm cache (another process; not in the total) | "
            + " | ".join(
                _seconds(r["warm_data_preparation_s"]) if "warm_data_preparation_s" in r else "n/a"
                for r in ok
            )
            + " |"
        )
    given = " ".join(f"`{o}`" for o in overrides) if overrides else "none"
    text = (
        "Each task's run, `vltk train TASK` (its default config unless a `--config` is given; given: "
        + given
        + "), in a fresh process with a fresh, empty dataset cache (`VLTK_CACHE`; the OS file cache is "
        "not flushed), the threads as the "
        "run sets them. Seconds per bucket (plain `perf_counter` timers; every moment of the process is in "
        "exactly one bucket, so each column sums to its total) and % of the run."
        + (
            " **These runs were under `torch.profiler`: the figures include its overhead.**"
            if torch_profiler
            else ""
        )
        + "\n\n"
        + head
        + "\n".join(rows)
        + "\n\n"
    )
    text += (
        "What the network rows are:\n\n"
        + "\n".join(f"- {t}: {TASK_PARTS[t].meaning}." for t in names if t in TASK_PARTS)
        + "\n\n"
    )
    text += (
        "| task | command (RUN: a temporary directory) | optimiser steps | torch threads | interpreter "
        "start (in start-up) | written to the cold cache |\n|---|---|---|---|---|---|\n"
    )
    for r in ok:
        text += (
            f"| {r['task']} | `{r['command']}` | {r.get('optimizer_steps', 'n/a')} | {r['torch_threads']} | "
            f"{_seconds(r['interpreter_start_s'])} | {_cache_cell(r.get('cache_written'))} |\n"
        )
    off_cpu = [f"{r['task']} ({r['device']})" for r in ok if r.get("device", "cpu") != "cpu"]
    if off_cpu:
        text += (
            f"\n**Not on the CPU: {', '.join(off_cpu)}.** Kernels there run asynchronously, so the network "
            "rows count their launches and the waits land wherever the host next synchronises.\n"
        )
    missing = {r["task"]: r["parts_missing"] for r in ok if r.get("parts_missing")}
    if missing:
        text += (
            "\nParts not found (their time is in the enclosing bucket): "
            + "; ".join(f"{task}: {', '.join(paths)}" for task, paths in missing.items())
            + "\n"
        )
    ignored = {r["task"]: r["ignored"] for r in ok if r.get("ignored")}
    if ignored:
        text += (
            "\nTimer events ignored (another thread, or a hook outside a backward): "
            + "; ".join(f"{task}: {events}" for task, events in ignored.items())
            + "\n"
        )
    for r in results:
        if r["status"] != "ok":
            text += f"\n**{r['task']}: {r['status']}.** Last lines of its log:\n\n```\n{r['log_tail']}\n```\n"
    return text


def parse_overrides(values: Sequence[str], tasks: Sequence[str]) -> dict[str, list[str]]:
    """``KEY=VALUE`` for every task, ``TASK:KEY=VALUE`` for one; per task, in the order given."""
    per_task: dict[str, list[str]] = {task: [] for task in tasks}
    for value in values:
        head, sep, rest = value.partition(":")
        if sep and "=" not in head:
            if head not in TASKS:
                raise SystemExit(f"--set {value}: '{head}' is not a task ({', '.join(TASKS)})")
            if head in per_task:
                per_task[head].append(rest)
        else:
            for task in tasks:
                per_task[task].append(value)
    return per_task


def parse_configs(values: Sequence[str], tasks: Sequence[str]) -> dict[str, str]:
    """``TASK:NAME`` (a shipped config's name or a file) per task; tasks not named run their default."""
    configs: dict[str, str] = {}
    for value in values:
        task, sep, name = value.partition(":")
        if not sep or not name or task not in TASKS:
            raise SystemExit(f"--config {value}: expected TASK:NAME with TASK one of {', '.join(TASKS)}")
        if task in tasks:
            configs[task] = name
    return configs


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--child"], ["--child-warm"]):
        spec = json.loads(Path(argv[1]).read_text())
        record = child_run(spec) if argv[0] == "--child" else child_warm(spec)
        Path(argv[2]).write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
        from vltk.cli.main import exit_process

        exit_process(0)  # the end the installed command has (vltk.cli.main.run), measured as process exit
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[TASK:]KEY=VALUE",
        help="a config override for every task, or for one (TASK:KEY=VALUE)",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="TASK:NAME",
        help="run TASK with this shipped config (or file) instead of its default, e.g. captioning:updown",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the measurements (JSON) here")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm-cache data preparation")
    parser.add_argument(
        "--torch-profiler",
        action="store_true",
        help="also run torch.profiler (op-level tables; the buckets then include its overhead)",
    )
    parser.add_argument(
        "--profiler-dir",
        type=Path,
        default=Path("runs/profile_runs"),
        help="where --torch-profiler writes TASK.txt",
    )
    parser.add_argument("--logs", type=Path, default=None, help="keep each run's output here")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    per_task = parse_overrides(args.set, args.tasks)
    configs = parse_configs(args.config, args.tasks)
    results = []
    for task in args.tasks:
        print(
            f"[profile_runs] {task}: vltk train {task}"
            + (f" --config {configs[task]}" if task in configs else "")
            + "".join(f" --set {o}" for o in per_task[task]),
            flush=True,
        )
        result = profile_task(
            task,
            per_task[task],
            warm=not args.no_warm,
            torch_profiler=args.profiler_dir if args.torch_profiler else None,
            logs=args.logs,
            config=configs.get(task),
        )
        results.append(result)
        total = f"{result['total_s']:.1f} s" if result["status"] == "ok" else ""
        print(f"[profile_runs] {task}: {result['status']} {total}", flush=True)
        if result["status"] != "ok":
            print(result["log_tail"], flush=True)
    data = {
        "mode": mode(),
        "machine": machine(),
        "load_after": load(),
        "overrides": per_task,
        "configs": configs,
        "buckets": LABELS,
        "tasks": {r["task"]: r for r in results},
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    given = [f"--config {t}:{n}" for t, n in configs.items()] + [f"--set {o}" for o in args.set]
    publish(markdown(results, given, not args.no_warm, args.torch_profiler), data, args.json)
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
