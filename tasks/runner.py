"""Importable entry points behind the CLI: train, evaluate, predict (the CLI only parses and prints).

Everything done before the Lightning Trainer exists is either identical on every DDP rank (the config, the
vocabulary, which is built deterministically from the training captions) or guarded to rank 0 (writing
files). The run directory is chosen once and passed to re-launched ranks through ``VLTK_RUN_DIR``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from vltk.config import apply_overrides, dump_yaml, from_dict, read_config, to_dict
from vltk.errors import ConfigError, VltkError, check_output_path, unknown_choice_message
from vltk.export import load_checkpoint, read_export, weights_summary
from vltk.registry import build, resolve
from vltk.tasks import TASKS, TaskEntry
from vltk.tasks.loggers import build_loggers, check_loggers, finish_loggers
from vltk.tasks.reliability import (
    AtomicCheckpointIO,
    Provenance,
    ResumeState,
    SaveOnSignal,
    TrainingInterrupted,
    check_provenance,
    guard_nonfinite_loss,
    slurm_job_id,
    slurm_plugins,
)

logger = logging.getLogger(__name__)
RUN_DIR_ENV = "VLTK_RUN_DIR"


@dataclass
class RunResult:
    """What a train/evaluate call produced."""

    run_dir: Path | None
    split: str
    metrics: dict[str, float]
    samples: list[dict[str, str]] = field(default_factory=list)
    predictions: list[dict[str, Any]] = field(default_factory=list)


def task_entry(task: str) -> TaskEntry:
    return resolve(TASKS, task)


def named_config_path(task: str, name: str = "default") -> Path:
    """The path of a config shipped with vltk (``configs/<task>/<name>.yaml``)."""
    return Path(str(resources.files("vltk.configs") / task / f"{name}.yaml"))


def available_configs(task: str) -> list[str]:
    folder = Path(str(resources.files("vltk.configs") / task))
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def shipped_config(task: str, name: str) -> Path:
    """``configs/<task>/<name>.yaml``, or a ConfigError naming the shipped configs of ``task``."""
    if name not in available_configs(task):
        raise ConfigError(unknown_choice_message(f"shipped {task} config", name, available_configs(task)))
    return named_config_path(task, name)


def load_task_config(
    task: str, config: str | Path | None = None, overrides: list[str] | tuple = (), *, old_keys: bool = False
) -> Any:
    """Read a config file (a path, or the name of a shipped config), apply overrides, validate (``old_keys``:
    translate renamed keys, for a config vltk wrote itself)."""
    entry = task_entry(task)
    if config is None:
        path = named_config_path(task)
    elif Path(config).is_file():
        path = Path(config)
    elif str(config) in available_configs(task):
        path = named_config_path(task, str(config))
    else:
        choices = ", ".join(available_configs(task))
        raise ConfigError(
            f"config '{config}' is neither a file nor a shipped {task} config (shipped: {choices})"
        )
    data = read_config(path, functools.partial(shipped_config, task))
    apply_overrides(data, list(overrides))
    if data.get("task", task) != task:  # before a family is picked by a data.name of another task
        raise ConfigError(f"{path}: task is '{data['task']}' but you asked to train '{task}'")
    cfg = from_dict(entry.for_config(data).config, data, old_keys=old_keys)
    if cfg.task != task:
        raise ConfigError(f"{path}: task is '{cfg.task}' but you asked to train '{task}'")
    return cfg


def global_rank() -> int:
    for variable in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if variable in os.environ:
            return int(os.environ[variable])
    return 0


def launcher_run_name() -> str | None:
    """The run directory's name every rank of a torchrun or srun launch derives alike, or None when this
    process is not one of several started by such a launcher.

    torchrun: ``torchrun-<rdzv id>`` (``TORCHELASTIC_RUN_ID``; ``--standalone`` makes a random one, a static
    launch needs ``--rdzv-id``); a SLURM batch job, of one task or many: ``slurm-<job id>``, so a requeued
    job resumes in the same directory. Several ranks with neither are one line asking for ``--run-dir``.
    """
    job = slurm_job_id()
    if job is not None:
        return f"slurm-{job}"
    world = max(int(os.environ.get("WORLD_SIZE", "1") or 1), int(os.environ.get("SLURM_NTASKS", "1") or 1))
    if world <= 1:
        return None
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    if "TORCHELASTIC_RUN_ID" in os.environ and run_id != "none":
        return f"torchrun-{run_id}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm-{os.environ['SLURM_JOB_ID']}"
    raise VltkError(
        f"this is one of {world} processes started without a run id every rank shares: pass --run-dir (the "
        "same on every node), or launch with torchrun --rdzv-id ID or srun"
    )


def choose_run_dir(task: str, run_dir: str | Path | None) -> Path:
    """The explicit run dir, the one chosen by rank 0 (env), the one every rank of a torchrun/srun launch
    derives from its job's id (:func:`launcher_run_name`), or a new ``runs/<task>/<timestamp>``."""
    if run_dir is None:
        run_dir = os.environ.get(RUN_DIR_ENV)
    if run_dir is None:
        shared = launcher_run_name()
        run_dir = Path("runs") / task / (shared or time.strftime("%Y%m%d-%H%M%S"))
    check_output_path(Path(run_dir), "the run directory", directory=True)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    return Path(run_dir)


def _lightning_choices() -> tuple[list[str], list[str], list[Any]]:
    """Lightning's valid accelerator, strategy and precision names, from its own registries."""
    from lightning_fabric.plugins.precision.precision import (
        _PRECISION_INPUT_INT,
        _PRECISION_INPUT_STR,
        _PRECISION_INPUT_STR_ALIAS,
    )
    from pytorch_lightning.accelerators import AcceleratorRegistry
    from pytorch_lightning.strategies import StrategyRegistry

    accelerators = ["auto", "gpu", *AcceleratorRegistry.available_accelerators()]
    strategies = ["auto", *StrategyRegistry.available_strategies()]
    precisions = [
        *get_args(_PRECISION_INPUT_STR),
        *get_args(_PRECISION_INPUT_INT),
        *get_args(_PRECISION_INPUT_STR_ALIAS),
    ]
    return accelerators, strategies, precisions


def _available_accelerators() -> list[str]:
    from pytorch_lightning.accelerators import AcceleratorRegistry

    names = AcceleratorRegistry.available_accelerators()
    return sorted(name for name in names if AcceleratorRegistry[name]["accelerator"].is_available())


def check_trainer_settings(trainer: Any) -> None:
    """Check the resolved device settings (``trainer.accelerator``, ``devices``, ``strategy``, ``num_nodes``,
    ``precision``, from the config, ``--set`` or the CLI's device flags) before anything is written.

    The valid names come from Lightning's own registries (accelerators, strategies, precision values), and
    the combination is then given to Lightning's accelerator connector, which the Trainer would run later.

    Raises:
        ConfigError: one line naming the setting, the valid choices (with a did-you-mean), or what the
            machine lacks (``--accelerator gpu`` without a GPU).
    """
    from pytorch_lightning.accelerators import CUDAAccelerator, MPSAccelerator

    accelerators, strategies, precisions = _lightning_choices()
    accelerator, strategy, precision = trainer.accelerator, trainer.strategy, trainer.precision
    if not isinstance(accelerator, str) or accelerator not in accelerators:
        raise ConfigError(
            unknown_choice_message("trainer.accelerator (--accelerator)", str(accelerator), accelerators)
        )
    if not isinstance(strategy, str) or strategy.lower() not in strategies:
        raise ConfigError(unknown_choice_message("trainer.strategy (--strategy)", str(strategy), strategies))
    if precision not in precisions:
        choices = list(dict.fromkeys(str(value) for value in precisions))
        raise ConfigError(unknown_choice_message("trainer.precision (--precision)", str(precision), choices))
    available = _available_accelerators()
    if accelerator == "gpu" and not (CUDAAccelerator.is_available() or MPSAccelerator.is_available()):
        raise ConfigError(
            f"--accelerator gpu (trainer.accelerator): no GPU on this machine (torch.cuda.is_available() is "
            f"False, no Apple MPS); available here: {', '.join(available)} (or auto)"
        )
    if accelerator not in ("auto", "gpu") and accelerator not in available:
        raise ConfigError(
            f"--accelerator {accelerator} (trainer.accelerator): not available on this machine; available "
            f"here: {', '.join(available)} (or auto)"
        )
    _check_with_lightning(trainer)


def _check_with_lightning(trainer: Any) -> None:
    """Lightning's own check of the whole combination (e.g. ``devices=0``, ``fsdp`` on CPU, a strategy whose
    package is missing), as one line. Skipped if this Lightning version moved its private connector."""
    try:
        from pytorch_lightning.trainer.connectors.accelerator_connector import _AcceleratorConnector
        from pytorch_lightning.utilities.exceptions import MisconfigurationException
    except ImportError:  # pragma: no cover - a Lightning version without it; the Trainer checks later
        return
    settings = {
        "accelerator": trainer.accelerator,
        "devices": trainer.devices,
        "strategy": trainer.strategy,
        "num_nodes": trainer.num_nodes,
        "precision": trainer.precision,
    }
    lightning_log = logging.getLogger("pytorch_lightning")
    level = lightning_log.level
    lightning_log.setLevel(logging.ERROR)  # its notes ("Using bfloat16 AMP") come again from the Trainer
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _AcceleratorConnector(**settings)
    except (MisconfigurationException, ValueError, TypeError, RuntimeError, ImportError) as error:
        given = ", ".join(f"trainer.{name}={value}" for name, value in settings.items())
        raise ConfigError(f"invalid device settings ({given}): {' '.join(str(error).split())}") from None
    finally:
        lightning_log.setLevel(level)


def build_trainer(
    cfg: Any, run_dir: Path | None, callbacks: list | None = None, *, resuming: bool = False
) -> pl.Trainer:
    """Lightning's Trainer from the ``trainer`` section (every argument of its signature that the section
    holds) and what vltk sets itself (``TrainerConfig.MANAGED``: loggers from ``trainer.loggers``, callbacks,
    the checkpoint writer, the SLURM environment, the run directory, gradient clipping from
    ``optim.grad_clip``). Without a ``run_dir`` (evaluation) nothing is logged."""
    grad_clip = getattr(getattr(cfg, "optim", None), "grad_clip", None)
    loggers = (
        build_loggers(cfg.trainer.loggers, run_dir, resuming=resuming, is_global_zero=global_rank() == 0)
        if run_dir is not None
        else False
    )
    return pl.Trainer(
        **cfg.trainer.lightning_arguments(),
        gradient_clip_val=grad_clip,
        callbacks=callbacks or [],
        plugins=[AtomicCheckpointIO(), *slurm_plugins()],
        logger=loggers,
        default_root_dir=str(run_dir) if run_dir is not None else None,
        enable_checkpointing=bool(callbacks),
    )


class ExtraCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint whose saved state is keyed by its file name too, so that it can sit beside
    ``best.ckpt``'s and ``last.ckpt``'s callbacks (Lightning keys a checkpoint callback's state by its
    monitor and schedule, which the top-k and every-n callbacks share with those)."""

    @property
    def state_key(self) -> str:
        return f"{super().state_key}[{self.filename}]"


def configured_callbacks(cfg: Any, checkpoints: Path) -> list[pl.Callback]:
    """The callbacks the ``trainer`` section asks for: early stopping on the config's ``monitor``, a
    learning-rate monitor, and the extra checkpoints (the k best epochs, one every n epochs)."""
    t, monitor, mode = cfg.trainer, f"val/{cfg.monitor}", getattr(cfg, "monitor_mode", "max")
    chosen: list[pl.Callback] = []
    if t.early_stopping.enabled:
        chosen.append(EarlyStopping(monitor=monitor, mode=mode, patience=t.early_stopping.patience,
                                    min_delta=t.early_stopping.min_delta, check_finite=True))  # fmt: skip
    if t.lr_monitor:
        chosen.append(LearningRateMonitor(logging_interval="step"))
    if t.checkpoints.keep_top_k:
        chosen.append(ExtraCheckpoint(dirpath=str(checkpoints), filename="top-epoch={epoch}", monitor=monitor,
                                      mode=mode, save_top_k=t.checkpoints.keep_top_k,
                                      auto_insert_metric_name=False))  # fmt: skip
    if t.checkpoints.every_n_epochs:
        chosen.append(ExtraCheckpoint(dirpath=str(checkpoints), filename="epoch={epoch}", save_top_k=-1,
                                      every_n_epochs=t.checkpoints.every_n_epochs,
                                      auto_insert_metric_name=False))  # fmt: skip
    return chosen


def build_datamodule(entry: TaskEntry, cfg: Any) -> Any:
    return build(entry.datasets, cfg.data, path="data")


def write_metrics(
    path: Path, split: str, metrics: dict[str, float], *, partial: dict[str, Any] | None = None
) -> None:
    """``{"split": ..., "metrics": {...}}`` (plus ``"partial": {...}`` when only part was scored)."""
    document: dict[str, Any] = {"split": split, "metrics": metrics}
    if partial is not None:
        document["partial"] = partial
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def launcher_run_dir(task: str) -> Path | None:
    """``runs/<task>/<name>`` when a launcher names the run (:func:`launcher_run_name`), else None."""
    name = launcher_run_name()
    return Path("runs") / task / name if name else None


def resolve_resume(task: str, resume: str | None, run_dir: Path) -> str | None:
    """The checkpoint to resume from: ``last`` (the run directory's ``last.ckpt``, which must exist),
    ``auto`` (that file when it exists, else a fresh start: what a requeued job runs) or a path."""
    if resume is None:
        return None
    if resume == "auto":
        resume = "last" if (run_dir / "checkpoints" / "last.ckpt").is_file() else None
        if resume is None:
            return None
    path = run_dir / "checkpoints" / "last.ckpt" if resume == "last" else Path(resume)
    if not path.is_file():
        raise VltkError(f"cannot resume: checkpoint not found: {path}")
    try:  # a readable vltk checkpoint of this task, checked before the run directory is touched
        found = load_checkpoint(path)["hyper_parameters"]["config"]["task"]
    except VltkError as error:
        raise VltkError(f"cannot resume: {error}") from None
    if found != task:
        raise VltkError(f"cannot resume a {task} run from {path}: it is a {found} checkpoint")
    return str(path)


def keep_earlier_csv_log(path: Path) -> Path | None:
    """Lightning's CSVLogger rewrites ``metrics.csv`` when a run resumes; keep the earlier rows beside it
    as ``metrics.part-1.csv``, ``metrics.part-2.csv``, ... (oldest first)."""
    if not path.is_file():
        return None
    part = 1
    while (target := path.with_name(f"{path.stem}.part-{part}{path.suffix}")).exists():
        part += 1
    path.rename(target)
    return target


def train(
    cfg: Any,
    *,
    run_dir: str | Path | None = None,
    resume: str | None = None,
    extra_callbacks: list[pl.Callback] | tuple = (),
) -> RunResult:
    """Train ``cfg.task`` as configured, then test the best checkpoint; everything lands in the run dir.

    Raises:
        TrainingInterrupted: on SIGTERM/SIGINT (and SIGUSR1 in a SLURM job, which is then requeued), after
            writing ``checkpoints/last.ckpt`` (resume with ``resume="last"`` or ``"auto"``).
        NonFiniteLossError: on a NaN/inf loss when ``trainer.on_nonfinite_loss`` is ``raise``.
    """
    entry = task_entry(cfg.task).for_config(cfg)
    check_trainer_settings(cfg.trainer)  # before the run directory or any data is written
    check_loggers(cfg.trainer.loggers)
    run_path = choose_run_dir(cfg.task, run_dir)
    ckpt_path = resolve_resume(cfg.task, resume, run_path)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(entry, cfg)
    if hasattr(datamodule, "shuffle_seed"):
        datamodule.shuffle_seed = cfg.seed
    datamodule.prepare_data()
    datamodule.setup("fit")
    system = entry.system.from_data(cfg, datamodule)
    if global_rank() == 0:
        dump_yaml(cfg, run_path / "config.yaml")
        if ckpt_path is not None:
            keep_earlier_csv_log(run_path / "logs" / "metrics.csv")
    guard_nonfinite_loss(system, cfg.trainer.on_nonfinite_loss)
    checkpoint = ModelCheckpoint(  # best.ckpt: the best validation score so far
        dirpath=str(run_path / "checkpoints"),
        filename="best",
        monitor=f"val/{cfg.monitor}",
        mode=getattr(cfg, "monitor_mode", "max"),
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    # last.ckpt: after every epoch. (A separate callback: Lightning's save_last only refreshes last.ckpt when
    # the monitored score improved, which would make `--resume last` go back to the best epoch.)
    latest = ModelCheckpoint(
        dirpath=str(run_path / "checkpoints"), filename="last", save_top_k=1, enable_version_counter=False
    )
    requeue = slurm_job_id() if cfg.trainer.slurm_requeue else None
    on_signal = SaveOnSignal(run_path / "checkpoints" / "last.ckpt", requeue_job=requeue)
    chosen = configured_callbacks(cfg, run_path / "checkpoints")
    callbacks = [ResumeState(), Provenance(), on_signal, checkpoint, latest, *chosen, *extra_callbacks]
    if hasattr(datamodule, "resume_train_order"):  # ResumeState restores the order; Lightning can't tell
        warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
    trainer = build_trainer(cfg, run_path, callbacks=callbacks, resuming=ckpt_path is not None)
    try:
        try:
            # weights_only: a checkpoint to resume is read as tensors and plain containers, no code runs
            trainer.fit(system, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except SIGTERMException:
            signum, requeued = on_signal.signum or signal.SIGTERM, on_signal.requeued
            raise TrainingInterrupted(signum, on_signal.saved, run_path, requeued=requeued) from None
        best = checkpoint.best_model_path or None
        trainer.test(system, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
    finally:
        finish_loggers(trainer.loggers)
    metrics = system.results.get("test", {})
    if trainer.is_global_zero:
        write_metrics(run_path / "metrics.json", "test", metrics)
    return RunResult(run_path, "test", metrics, system.sample_rows(), system.prediction_rows())


def end_process_group() -> None:
    """Destroy ``torch.distributed``'s process group once a finished command needs it no more (a no-op
    in one process). A process that exits with the group alive may abort while Gloo's threads are torn
    down at interpreter exit (SIGABRT, "terminate called without an active exception";
    pytorch/pytorch#190489), and torchrun then reports the node as failed although the run succeeded. Called
    after success only: a rank that failed must not wait for the others in a collective shutdown."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def load_system(checkpoint: str | Path) -> Any:
    """The Lightning system stored in ``checkpoint`` (its config and vocabulary come with it), or in a
    ``vltk export`` directory."""
    path = Path(checkpoint)
    if path.is_dir():  # a `vltk export` directory
        exported = read_export(path)
        if exported.task not in TASKS:
            raise VltkError(f"{path}: {unknown_choice_message('task', exported.task, TASKS)} in the export")
        hparams = dict(exported.hyper_parameters)
        system = _build_system(task_entry(exported.task).for_config(hparams.get("config", {})), hparams, path)
        try:
            system.load_state_dict(exported.state_dict)
        except RuntimeError as error:
            raise VltkError(f"{path}: the weights do not fit the model ({weights_summary(error)})") from None
        return system.eval()
    payload = load_checkpoint(path)  # one line naming the file when it is not a vltk checkpoint
    hparams = payload["hyper_parameters"]
    task = hparams["config"]["task"]
    if task not in TASKS:
        raise VltkError(f"{path}: {unknown_choice_message('task', task, TASKS)} in the checkpoint")
    check_provenance(payload, path)
    system = _build_system(task_entry(task).for_config(hparams["config"]), hparams, path)
    try:
        system.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        raise VltkError(
            f"{path}: the weights do not fit the {task} model ({weights_summary(error)})"
        ) from None
    system.eval()
    return system


def _build_system(entry: TaskEntry, hparams: dict[str, Any], path: Path) -> Any:
    """``entry.system(**hparams)``, with constructor arguments that do not fit as one line naming ``path``."""
    try:
        return entry.system(**hparams)
    except VltkError as error:
        raise VltkError(f"{path}: the checkpoint's config is not valid here ({error})") from None
    except TypeError as error:  # constructor arguments of another vltk version, or not vltk's at all
        raise VltkError(
            f"{path}: its hyper_parameters do not build a model ({type(error).__name__}: {error})"
        ) from None


def evaluate(
    checkpoint: str | Path,
    *,
    split: str = "test",
    overrides: list[str] | tuple = (),
) -> RunResult:
    """Evaluate a checkpoint on a split of its dataset (``overrides`` may point ``data`` elsewhere)."""
    system = load_system(checkpoint)
    entry = task_entry(system.config.task).for_config(system.config)
    data = to_dict(system.config)
    fixed = [o for o in overrides if o.split("=", 1)[0].strip().split(".")[0] in ("model", "task")]
    if fixed:
        raise ConfigError(
            f"cannot override {', '.join(fixed)} when evaluating: the checkpoint's model is used"
        )
    # The run's nodes are not this evaluation's: a checkpoint trained on 2 nodes would otherwise wait for a
    # second machine forever (``--set trainer.num_nodes=N`` evaluates across nodes on purpose).
    data.setdefault("trainer", {})["num_nodes"] = 1
    apply_overrides(data, list(overrides))
    cfg = from_dict(entry.config, data)
    check_trainer_settings(cfg.trainer)
    system.config = cfg
    datamodule = build_datamodule(entry, cfg)
    system.attach_data(datamodule)
    datamodule.prepare_data()
    datamodule.setup("test")
    loader = datamodule.dataloader_for(split)  # an unknown split fails before the Trainer starts
    trainer = build_trainer(cfg, None)
    system.results = {}
    trainer.test(system, dataloaders=loader, verbose=False)
    metrics = system.results.get("test", {})
    return RunResult(None, split, metrics, system.sample_rows(), system.prediction_rows())
