"""Config sections shared by every task: the optimiser, the Lightning Trainer, and decoding for evaluation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import pytorch_lightning as pl
import torch
from torch import nn

from vltk.errors import ConfigError, VltkError, unknown_choice_message

RUN_KEY_HELP = {
    "task": "the task this config is for (vltk train TASK refuses another task's config)",
    "seed": "seeds the weights, the data order, dropout and sampling (--seed overrides it)",
    "monitor": "the validation metric that picks checkpoints/best.ckpt",
    "monitor_mode": "min or max: whether a smaller monitored metric is better",
    "num_samples": "evaluated examples kept to show (vltk train prints the test ones with references)",
}
"""The help of the top-level keys every task's config shares (``vltk config show``)."""


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Attributes:
        name: the optimiser (``torch.optim.Adam``, ``AdamW`` or ``SGD``).
        lr: the peak learning rate (after the warm-up).
        encoder_lr: the rate of the image encoder's trainable parameters (fine-tuning a pretrained CNN wants
            a smaller rate than the decoder); ``null`` uses ``lr``.
        weight_decay: L2 penalty (decoupled for ``adamw``).
        momentum: SGD's momentum (``sgd`` only).
        scheduler: ``cosine`` anneals to 0 over the run, ``step`` multiplies by ``step_gamma`` every
            ``step_size_epochs``, ``none`` keeps ``lr``.
        warmup_steps: optimiser steps of linear warm-up from 0 to ``lr``.
        step_size_epochs: epochs between the ``step`` scheduler's decays.
        step_gamma: the ``step`` scheduler's factor.
        grad_clip: the global gradient norm is clipped to this (``null``: no clipping).
    """

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    encoder_lr: float | None = None
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: Literal["none", "cosine", "step"] = "cosine"
    warmup_steps: int = 0
    step_size_epochs: int = 10
    step_gamma: float = 0.5
    grad_clip: float | None = 5.0


@dataclass
class EarlyStoppingConfig:
    """Stop training when the config's ``monitor`` stops improving (Lightning's ``EarlyStopping``).

    Attributes:
        enabled: watch the monitored validation metric and stop when it stalls.
        patience: validations in a row without an improvement before stopping.
        min_delta: the smallest change of the metric that counts as an improvement.
    """

    enabled: bool = False
    patience: int = 3
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ConfigError(f"trainer.early_stopping.patience must be >= 1, got {self.patience}")


@dataclass
class CheckpointsConfig:
    """Which checkpoints a run keeps besides ``best.ckpt`` (the best validation score) and ``last.ckpt``.

    Attributes:
        keep_top_k: also keep the k best epochs as ``top-epoch=E.ckpt`` (0: only ``best.ckpt``).
        every_n_epochs: also keep a checkpoint every this many epochs as ``epoch=E.ckpt`` (``null``: none).
    """

    keep_top_k: int = 0
    every_n_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.keep_top_k < 0:
            raise ConfigError(f"trainer.checkpoints.keep_top_k must be >= 0, got {self.keep_top_k}")
        if self.every_n_epochs is not None and self.every_n_epochs < 1:
            raise ConfigError(
                f"trainer.checkpoints.every_n_epochs must be >= 1 or null, got {self.every_n_epochs}"
            )


@dataclass
class WandbConfig:
    """Weights & Biases (Lightning's ``WandbLogger``; ``pip install 'vltk[wandb]'``).

    Offline by default: the run is written under ``RUN/wandb/`` and nothing leaves the machine;
    ``wandb sync RUN/wandb/offline-run-*`` uploads it later.

    Attributes:
        enabled: log to W&B as well as to ``logs/metrics.csv``.
        mode: ``offline`` (write locally only) or ``online`` (send to the W&B server as the run goes).
        project: the W&B project.
        entity: the W&B team or user (``null``: your default).
        name: the run's name (``null``: the run directory's name).
        tags: tags for the run.
    """

    enabled: bool = False
    mode: Literal["offline", "online"] = "offline"
    project: str = "vltk"
    entity: str | None = None
    name: str | None = None
    tags: list[str] = dataclass_field(default_factory=list)


@dataclass
class MLflowConfig:
    """MLflow tracking (Lightning's ``MLFlowLogger``; ``pip install 'vltk[mlflow]'``).

    Attributes:
        enabled: log to MLflow as well as to ``logs/metrics.csv``.
        experiment: the MLflow experiment the run belongs to.
        tracking_uri: where runs are stored (``null``: a local file store in ``RUN/mlruns``; view it with
            ``mlflow ui --backend-store-uri RUN/mlruns``); a server's ``http://...`` sends them there.
        run_name: the run's name (``null``: the run directory's name).
        tags: tags for the run.
    """

    enabled: bool = False
    experiment: str = "vltk"
    tracking_uri: str | None = None
    run_name: str | None = None
    tags: dict[str, str] = dataclass_field(default_factory=dict)


@dataclass
class LoggersConfig:
    """Where a run's metrics go besides ``RUN/logs/metrics.csv`` (always written).

    Attributes:
        tensorboard: also TensorBoard event files in ``RUN/tensorboard`` (``auto``: when ``tensorboard`` is
            installed; ``true`` asks for it and fails if it is not).
        wandb: Weights & Biases, offline by default.
        mlflow: MLflow, a local file store by default.
    """

    tensorboard: bool | Literal["auto"] = "auto"
    wandb: WandbConfig = dataclass_field(default_factory=WandbConfig)
    mlflow: MLflowConfig = dataclass_field(default_factory=MLflowConfig)


@dataclass
class TrainerConfig:
    """Arguments passed to ``pytorch_lightning.Trainer`` (the CLI's device flags override these): every
    argument of its signature, with Lightning's defaults unless vltk chose another (``max_epochs``,
    ``log_every_n_steps``, ``num_sanity_val_steps``, ``precision``; ``deterministic`` and
    ``enable_progress_bar`` spell out what Lightning's ``None`` means), except those vltk sets itself
    (``MANAGED``, refused with where to set them instead). ``on_nonfinite_loss``, ``early_stopping``,
    ``lr_monitor``, ``checkpoints``, ``loggers`` and ``slurm_requeue`` are vltk's own (:data:`VLTK_ONLY`).
    ``tests/test_config.py`` checks the fields against the installed Lightning's signature.

    Attributes:
        max_epochs: passes over the training split (-1: no limit, ``max_steps`` decides).
        max_steps: stop after this many optimiser steps (-1: ``max_epochs`` decides); the run ends at
            whichever of the two comes first.
        accelerator: ``cpu``, ``gpu``, ``mps`` or ``auto`` (``--accelerator``).
        devices: how many devices (or which, a list), or ``auto`` (``--devices``).
        strategy: ``auto``, ``ddp``, ... (``--strategy``).
        num_nodes: machines of a multi-node run (``--num-nodes``).
        precision: ``32-true``, ``bf16-mixed``, ``16-mixed`` (``--precision``).
        log_every_n_steps: training steps between logged rows of ``logs/metrics.csv``.
        check_val_every_n_epoch: epochs between validations; ``null``: an int ``val_check_interval``
            counts training batches across epochs (a budget in updates, as the ``lm`` default sets it).
        val_check_interval: validate within an epoch, every this many batches (int) or this fraction of
            it (float); ``null``: at the end of the epoch.
        limit_train_batches: use only this many training batches (int) or this fraction (float) per epoch.
        limit_val_batches: the same for validation.
        limit_test_batches: the same for the test.
        num_sanity_val_steps: validation batches run before training, to fail early.
        deterministic: Lightning's deterministic mode (``torch.use_deterministic_algorithms``).
        enable_progress_bar: show the progress bar.
        on_nonfinite_loss: ``raise`` stops at the first NaN/inf loss naming the step and batch; ``skip``
            skips such batches and counts them (single process only).
        min_epochs: train at least this many epochs.
        min_steps: train at least this many optimiser steps.
        max_time: stop after this long: ``"DD:HH:MM:SS"`` or ``{hours: 1, minutes: 30}``.
        limit_predict_batches: the same as ``limit_test_batches`` for Lightning's predict loop.
        overfit_batches: train and validate on this many training batches (int) or this fraction (float),
            to check that the model can fit them.
        fast_dev_run: run this many batches (``true``: 1) of training, validation and test, then stop.
        accumulate_grad_batches: optimiser steps every this many batches (gradients summed in between).
        gradient_clip_algorithm: ``norm`` (the default) or ``value``: how ``optim.grad_clip`` clips.
        benchmark: ``torch.backends.cudnn.benchmark`` (``null``: Lightning's choice).
        inference_mode: evaluate under ``torch.inference_mode`` (``false``: ``torch.no_grad``).
        use_distributed_sampler: Lightning wraps the loaders in a distributed sampler under DDP.
        profiler: ``simple``, ``advanced`` or ``pytorch``: Lightning's profiler report at the end.
        detect_anomaly: ``torch.autograd.set_detect_anomaly`` (slow; finds the op that made a NaN).
        barebones: Lightning's minimal-overhead mode (no logging, checkpoints, progress bar).
        sync_batchnorm: BatchNorm statistics synchronised across processes under DDP.
        reload_dataloaders_every_n_epochs: rebuild the loaders every this many epochs (0: never).
        enable_model_summary: print the model summary at the start (``null``: Lightning's default).
        enable_autolog_hparams: log the hyper-parameters to the loggers.
        model_registry: Lightning's model-registry name (Lightning cloud; unused offline).
        early_stopping: stop when the monitored validation metric stalls (vltk's; Lightning's callback).
        lr_monitor: log each parameter group's learning rate every step (``lr-Adam`` ... in the logs).
        checkpoints: extra checkpoints to keep (the k best epochs, one every n epochs).
        loggers: TensorBoard, Weights & Biases (offline) and MLflow (local files) besides the CSV log.
        slurm_requeue: under a SLURM batch job, SIGUSR1 (``sbatch --signal=USR1@120``) finishes the batch,
            writes ``last.ckpt``, requeues the job (``scontrol requeue``) and stops; the requeued job
            continues with ``--resume auto`` (see docs/clusters.md).
    """

    max_epochs: int = 10
    max_steps: int = -1
    accelerator: str = "auto"
    devices: int | str | list[int] = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str | int = "32-true"
    log_every_n_steps: int = 20
    check_val_every_n_epoch: int | None = 1
    val_check_interval: float | int | str | dict[str, int] | None = None
    limit_train_batches: float | int | None = None
    limit_val_batches: float | int | None = None
    limit_test_batches: float | int | None = None
    num_sanity_val_steps: int = 0
    deterministic: bool | Literal["warn"] = False
    enable_progress_bar: bool = True
    on_nonfinite_loss: Literal["raise", "skip"] = "raise"
    min_epochs: int | None = None
    min_steps: int | None = None
    max_time: str | dict[str, int] | None = None
    limit_predict_batches: float | int | None = None
    overfit_batches: float | int = 0.0
    fast_dev_run: bool | int = False
    accumulate_grad_batches: int = 1
    gradient_clip_algorithm: Literal["norm", "value"] | None = None
    benchmark: bool | None = None
    inference_mode: bool = True
    use_distributed_sampler: bool = True
    profiler: Literal["simple", "advanced", "pytorch"] | None = None
    detect_anomaly: bool = False
    barebones: bool = False
    sync_batchnorm: bool = False
    reload_dataloaders_every_n_epochs: int = 0
    enable_model_summary: bool | None = None
    enable_autolog_hparams: bool = True
    model_registry: str | None = None
    early_stopping: EarlyStoppingConfig = dataclass_field(default_factory=EarlyStoppingConfig)
    lr_monitor: bool = False
    checkpoints: CheckpointsConfig = dataclass_field(default_factory=CheckpointsConfig)
    loggers: LoggersConfig = dataclass_field(default_factory=LoggersConfig)
    slurm_requeue: bool = True

    MANAGED: ClassVar[dict[str, str]] = {
        "logger": "set trainer.loggers (tensorboard, wandb, mlflow; RUN/logs/metrics.csv is always written)",
        "callbacks": "vltk adds its checkpoint, resume and signal callbacks itself",
        "plugins": "vltk installs its atomic checkpoint writer",
        "default_root_dir": "the run directory is --run-dir",
        "enable_checkpointing": "vltk always writes checkpoints/best.ckpt and last.ckpt",
        "gradient_clip_val": "set optim.grad_clip",
    }
    """Arguments of ``pytorch_lightning.Trainer`` that vltk sets itself, and where a user sets them."""

    def lightning_arguments(self) -> dict[str, Any]:
        """Every field Lightning's ``Trainer`` takes (all but :data:`VLTK_ONLY`), by name."""
        return {f.name: getattr(self, f.name) for f in dataclass_fields(self) if f.name not in VLTK_ONLY}


VLTK_ONLY = frozenset(
    {"on_nonfinite_loss", "early_stopping", "lr_monitor", "checkpoints", "loggers", "slurm_requeue"}
)
"""Fields of the trainer section that are vltk's, not Lightning's."""


@dataclass
class DecodingConfig:
    """How captions/answers are generated at evaluation (see ``vltk.decoding``).

    Attributes:
        method: ``beam`` search, ``greedy`` decoding or ``sample`` (with ``temperature`` and ``top_k``).
        beam_size: hypotheses kept per step by beam search.
        max_length: words generated at most (the end token not counted).
        min_length: the end token is forbidden before this many words.
        length_penalty: GNMT's alpha: beams rank by ``sum log p / ((5 + n) / 6) ** alpha`` (0: the sum).
        block_trigrams: beam search never repeats a trigram within a hypothesis.
        temperature: sampling temperature (``sample`` only).
        top_k: sample among the k most probable words (0: all; ``sample`` only).
    """

    method: Literal["beam", "greedy", "sample"] = "beam"
    beam_size: int = 3
    max_length: int = 20
    min_length: int = 0
    length_penalty: float = 0.0
    block_trigrams: bool = False
    temperature: float = 1.0
    top_k: int = 0

    def search_options(self) -> dict[str, Any]:
        """``method`` and the options of greedy and beam search, as keyword arguments of ``generate``."""
        return {
            "method": self.method,
            "beam_size": self.beam_size,
            "max_length": self.max_length,
            "min_length": self.min_length,
            "length_penalty": self.length_penalty,
            "block_trigrams": self.block_trigrams,
        }


DECODING_METHODS = ("beam", "greedy", "sample")


def check_decoding_options(beam_size: int | None, max_length: int | None) -> None:
    """A beam size and a maximum length, when given, are at least 1 (0 used to mean 'the default')."""
    if beam_size is not None and beam_size < 1:
        raise VltkError(f"--beam-size must be >= 1 (1 = greedy), got {beam_size}")
    if max_length is not None and max_length < 1:
        raise VltkError(f"--max-length must be >= 1 (words), got {max_length}")


def override_decoding(decoding: DecodingConfig, overrides: Mapping[str, Any]) -> DecodingConfig:
    """``decoding`` (a checkpoint's) with the given options replaced; ``None`` values are ignored.

    A ``beam_size`` without a ``method`` asks for beam search of that width (``--beam-size 1`` is greedy in
    effect), whatever the checkpoint's method; every other option replaces its own field only.
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    options = [f.name for f in dataclass_fields(DecodingConfig)]
    unknown = sorted(set(given) - set(options))
    if unknown:
        raise VltkError(unknown_choice_message("decoding option", unknown[0], options))
    check_decoding_options(given.get("beam_size"), given.get("max_length"))
    if "beam_size" in given and "method" not in given:
        given["method"] = "beam"
    if given.get("method", decoding.method) not in DECODING_METHODS:
        raise VltkError(unknown_choice_message("decoding method", str(given["method"]), DECODING_METHODS))
    return replace(decoding, **given) if given else decoding


def check_num_threads(num_threads: int | None) -> None:
    """A config's ``num_threads`` (torch's intra-op threads for the run): ``>= 1``, or ``None`` for torch's
    default; a ConfigError otherwise."""
    if num_threads is not None and num_threads < 1:
        raise ConfigError(f"num_threads must be >= 1 or null, got {num_threads}")


def build_optimizer(
    config: OptimConfig, model: nn.Module, encoder: nn.Module | None
) -> torch.optim.Optimizer:
    """Adam/AdamW/SGD over the trainable parameters, with a separate group for the image encoder."""
    encoder_params = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    trainable = [p for p in model.parameters() if p.requires_grad]
    rest = [p for p in trainable if id(p) not in encoder_params]
    enc = [p for p in trainable if id(p) in encoder_params]
    groups = [{"params": rest, "lr": config.lr}]
    if enc:
        groups.append(
            {"params": enc, "lr": config.encoder_lr if config.encoder_lr is not None else config.lr}
        )
    if config.name == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    optimizer_cls = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    return optimizer_cls(groups, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(
    config: OptimConfig, optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int
) -> dict | None:
    """A per-step LambdaLR (linear warm-up, then cosine or step decay) in Lightning's scheduler format."""
    if config.scheduler == "none" and config.warmup_steps == 0:
        return None
    total_steps = max(int(total_steps), 1)
    steps_per_epoch = max(int(steps_per_epoch), 1)

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.scheduler == "cosine":
            progress = min((step - config.warmup_steps) / max(total_steps - config.warmup_steps, 1), 1.0)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if config.scheduler == "step":
            return config.step_gamma ** (step // (config.step_size_epochs * steps_per_epoch))
        return 1.0

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"scheduler": scheduler, "interval": "step"}


# ------------------------------------------------------------------------------------ the task contract
@dataclass
class ScoreRequest:
    """Everything ``vltk score TASK`` can be given (files only, no model)."""

    predictions: Path
    references: Path | None = None
    split: str | None = None
    questions: Path | None = None
    annotations: Path | None = None
    rule: str | None = None
    allow_partial: bool = False
    connectivity: Path | None = None


@dataclass
class ScoreResult:
    """Metrics from ``vltk score``, and lines worth telling the user (e.g. 'METEOR unavailable: ...').

    ``partial`` is set when only part of the references could be scored (``--allow-partial``): what was
    scored and what was left out, e.g. ``{"scored_dialogs": 4, "skipped_dialogs": 2, ...}``; the CLI says
    so in the table's title and writes it into ``metrics.json``.
    """

    metrics: dict[str, float]
    notes: list[str] = dataclass_field(default_factory=list)
    partial: dict[str, Any] | None = None


class TaskSystem(Protocol):
    """What ``vltk.tasks.runner`` needs from a task's LightningModule (besides Lightning's hooks).

    - ``from_data(cfg, datamodule)`` (classmethod): build the system for training once the datamodule is
      set up for ``fit``, wiring data facts in (vocabulary, number of answers) and system facts back into the
      datamodule (e.g. the image transform that matches the encoder's weights).
    - ``attach_data(datamodule)``: before evaluating a loaded checkpoint, give the datamodule what it must
      take from the model (vocabulary, transform) instead of rebuilding it.
    - ``results[stage]``: the metrics of the last ``val``/``test`` epoch, gathered over all ranks.
    - ``sample_rows()``: a few examples of the last evaluation as ``{column: text}`` for a table.
    - ``prediction_rows()``: every prediction of the last evaluation in the task's official results format
      (captioning: ``[{"image_id", "caption"}]``), gathered over ranks, one row per example id.
    - ``config``: the typed config.
    """

    results: dict[str, dict[str, float]]
    config: Any

    @classmethod
    def from_data(cls, cfg: Any, datamodule: Any) -> TaskSystem: ...

    def attach_data(self, datamodule: Any) -> None: ...

    def sample_rows(self) -> list[dict[str, str]]: ...

    def prediction_rows(self) -> list[dict[str, Any]]: ...


class EvaluatingSystem(pl.LightningModule):
    """The plumbing every task system shares (Lightning style guide: one shared step per stage).

    Validation and test epochs call the subclass's ``_start_eval(stage)``, ``_eval_step(batch, stage)`` and
    ``_end_eval(stage)``; ``configure_optimizers`` builds ``config.optim`` over :meth:`make_optimizer` with
    the per-step learning-rate schedule of :func:`build_scheduler`.
    """

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam/AdamW/SGD over ``self.model``, the image encoder (``self.model.encoder``) in its own group."""
        return build_optimizer(self.config.optim, self.model, getattr(self.model, "encoder", None))

    def configure_optimizers(self) -> Any:
        optimizer = self.make_optimizer()
        total_steps = self.trainer.estimated_stepping_batches  # max_steps, or max_epochs' worth of updates
        per_epoch = self._steps_per_epoch(total_steps)
        scheduler = build_scheduler(self.config.optim, optimizer, total_steps, per_epoch)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def _steps_per_epoch(self, total_steps: int) -> int:
        """Optimiser steps in one pass over the training split (for the ``step`` schedule's epochs)."""
        batches = self.trainer.num_training_batches
        if isinstance(batches, int) and batches > 0:  # set by estimated_stepping_batches; inf if unsized
            return max(math.ceil(batches / max(self.trainer.accumulate_grad_batches, 1)), 1)  # as Lightning
        return max(int(total_steps) // max(self.trainer.max_epochs or 1, 1), 1)

    def on_validation_epoch_start(self) -> None:
        self._start_eval("val")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._end_eval("val")

    def on_test_epoch_start(self) -> None:
        self._start_eval("test")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._end_eval("test")
