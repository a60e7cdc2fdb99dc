"""The language-modelling system: truncated BPTT over contiguous streams, bits per character on held-out text.

Training follows Karpathy's min-char-rnn and Zaremba et al. 2014: the data arrive as chunks of ``B``
parallel streams in order (:mod:`vltk.tasks.lm.data`); the recurrent state left by one chunk is the initial
state of the next, *detached* so gradients stop at the chunk edge (truncated backpropagation through time),
and reset to zeros at the start of every pass over the split. Gradients can be clipped element-wise (by
value, min-char-rnn's ``np.clip(d, -5, 5)``) and/or by global norm; optimisers include Adagrad
(min-char-rnn) and Adam. Validation and test carry their own state the same way and report exact
``bpc``/``perplexity`` over the whole split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from vltk.config import from_dict, spec_field, to_dict
from vltk.errors import ConfigError
from vltk.metrics.lm import LanguageModelMetrics, bits_per_symbol
from vltk.registry import build
from vltk.rnn import StackState
from vltk.tasks.lm.data import LmBatch
from vltk.tasks.lm.datasets import LM_DATASETS
from vltk.tasks.lm.inference import TextSampler
from vltk.tasks.lm.model import LANGUAGE_MODELS, LM_WIRED
from vltk.tasks.lm.vocab import SymbolVocabulary
from vltk.tasks.training import EvaluatingSystem, TrainerConfig

logger = logging.getLogger(__name__)
CARRIED_STATE_KEY = "vltk_lm_carried_state"  # the training streams' hidden state, in checkpoints


@dataclass
class LmOptimConfig:
    """Optimiser, gradient clipping and schedule of a language model.

    ``clip_value`` clips every gradient element to ``[-clip_value, clip_value]`` (min-char-rnn: 5);
    ``clip_norm`` rescales the gradients to a global L2 norm of at most ``clip_norm``; both may be set
    (value first). ``eps`` is the optimiser's epsilon (``None``: torch's default). ``eps_inside_sqrt``
    (Adagrad only) adds ``eps`` under the square root as min-char-rnn does, ``lr * g / sqrt(G + eps)``,
    instead of torch's ``lr * g / (sqrt(G) + eps)``, which takes full-size steps on tiny gradients.
    """

    name: Literal["adam", "adamw", "adagrad", "rmsprop", "sgd"] = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    eps: float | None = None
    eps_inside_sqrt: bool = False
    clip_value: float | None = None
    clip_norm: float | None = 5.0
    scheduler: Literal["none", "cosine", "step"] = "none"
    warmup_steps: int = 0
    step_size_epochs: int = 10
    step_gamma: float = 0.5


@dataclass
class LmLossConfig:
    """``reduction``: ``mean`` averages the cross-entropy over every symbol of a chunk; ``sum_over_time``
    sums it over the chunk's steps and averages over streams (min-char-rnn's loss, which matters when
    gradients are clipped by value)."""

    reduction: Literal["mean", "sum_over_time"] = "mean"


@dataclass
class LmSampleConfig:
    """Defaults of ``vltk predict`` and of the sample shown after training."""

    prime: str = "\n"
    length: int = 300
    temperature: float = 0.8


@dataclass
class LmConfig:
    """A language-modelling run: ``data`` a text dataset spec, ``model`` a language-model spec."""

    task: str = "lm"
    seed: int = 42
    data: dict = spec_field(LM_DATASETS, {"name": "python_source"})
    model: dict = spec_field(LANGUAGE_MODELS, {"name": "rnn_lm"}, wired=LM_WIRED)
    loss: LmLossConfig = field(default_factory=LmLossConfig)
    optim: LmOptimConfig = field(default_factory=LmOptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    sample: LmSampleConfig = field(default_factory=LmSampleConfig)
    monitor: Literal["bpc", "perplexity", "nll"] = "bpc"
    monitor_mode: Literal["min", "max"] = "min"

    def __post_init__(self) -> None:
        if self.task != "lm":
            raise ConfigError(f"task: this is an lm config, got task '{self.task}'")


class SqrtEpsAdagrad(torch.optim.Optimizer):
    """Adagrad as min-char-rnn writes it (Duchi et al. 2011): ``G += g * g; p -= lr * g / sqrt(G + eps)``.

    Args:
        params: the parameters (or groups).
        lr: the learning rate.
        eps: added to the accumulated squares under the square root.
    """

    def __init__(self, params: Any, lr: float = 0.1, eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "sum" not in state:
                    state["sum"] = torch.zeros_like(p)
                state["sum"].addcmul_(p.grad, p.grad)
                p.addcdiv_(p.grad, (state["sum"] + group["eps"]).sqrt(), value=-group["lr"])
        return loss


def build_lm_optimizer(config: LmOptimConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimiser named in ``config`` over the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    eps = {} if config.eps is None else {"eps": config.eps}
    if config.eps_inside_sqrt and config.name != "adagrad":
        raise ConfigError(f"optim.eps_inside_sqrt applies to optim.name=adagrad only, not '{config.name}'")
    if config.name == "adagrad" and config.eps_inside_sqrt:
        if config.weight_decay:
            raise ConfigError("optim.eps_inside_sqrt does not support optim.weight_decay")
        return SqrtEpsAdagrad(params, lr=config.lr, **eps)
    if config.name == "adagrad":
        return torch.optim.Adagrad(params, lr=config.lr, weight_decay=config.weight_decay, **eps)
    if config.name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=config.lr, weight_decay=config.weight_decay, momentum=config.momentum, **eps
        )
    if config.name == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    cls = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay, **eps)


class LmTask(EvaluatingSystem):
    """Lightning system around :class:`vltk.tasks.lm.model.RNNLanguageModel`.

    Args:
        config: the resolved :class:`LmConfig` as a plain dict (stored in checkpoints).
        vocab: the :class:`vltk.tasks.lm.vocab.SymbolVocabulary` as JSON (stored in checkpoints).
    """

    def __init__(self, config: dict[str, Any], vocab: str):
        super().__init__()
        self.save_hyperparameters()
        self.config = from_dict(LmConfig, config, old_keys=True)
        self.vocab = SymbolVocabulary.from_json(vocab)
        self.model = build(
            LANGUAGE_MODELS,
            self.config.model,
            path="model",
            vocab_size=len(self.vocab),
        )
        self.metrics = {"val": LanguageModelMetrics(), "test": LanguageModelMetrics()}
        self.results: dict[str, dict[str, float]] = {}
        self._states: dict[str, StackState | None] = {}

    @classmethod
    def from_data(cls, cfg: LmConfig, datamodule: Any) -> LmTask:
        """The system for ``datamodule``'s vocabulary. With validation counted within an epoch
        (``trainer.check_val_every_n_epoch`` set), an interval (in updates) longer than one pass over a short
        text is shortened to one pass, where Lightning would refuse to start; with it ``null`` (the default
        config's budget in updates) the interval counts updates across passes and stands."""
        interval = cfg.trainer.val_check_interval
        per_pass = cfg.trainer.check_val_every_n_epoch is not None
        if per_pass and isinstance(interval, int) and not isinstance(interval, bool):
            per_epoch = len(datamodule.train_dataloader().dataset)
            if interval > per_epoch:
                logger.warning(
                    "trainer.val_check_interval=%d is longer than one pass over the text (%d updates); "
                    "validating once per pass instead",
                    interval,
                    per_epoch,
                )
                cfg.trainer.val_check_interval = per_epoch
        return cls(config=to_dict(cfg), vocab=datamodule.vocab.to_json())

    def attach_data(self, datamodule: Any) -> None:
        """Evaluate with the checkpoint's vocabulary (symbols it never saw count as ``<unk>``)."""
        datamodule.vocab = self.vocab

    def inference(self) -> TextSampler:
        """The inference object around this system's network (shared, not copied), its symbols and its
        config's ``sample`` section: what ``vltk.from_pretrained`` gives for its checkpoint."""
        s = self.config.sample
        return TextSampler(self.model, self.vocab, s.prime, s.length, s.temperature)

    def sample_rows(self) -> list[dict[str, str]]:
        """One sample from the model, primed and tempered as the config's ``sample`` section says."""
        s = self.config.sample
        try:
            text = self.inference().sample(seed=self.config.seed)
        except Exception as error:  # a sample is a courtesy; never fail a finished run over it
            logger.warning("could not sample from the model: %s", error)
            return []
        return [{"prime": repr(s.prime), "sample": text}]

    def prediction_rows(self) -> list[dict[str, Any]]:
        """Language models have no per-example predictions to write; the metrics say everything."""
        return []

    # ----------------------------------------------------------------------------------------------- loss
    def _carried_state(self, stage: str, batch: LmBatch) -> StackState | None:
        """The state left by the previous chunk of the same streams, detached (truncated BPTT)."""
        state = None if batch.first else self._states.get(stage)
        if state is not None and state[0].shape[1] != batch.inputs.shape[0]:
            state = None  # a different number of streams: a new pass
        return None if state is None else tuple(s.detach().to(batch.inputs.device) for s in state)

    def _nll(self, batch: LmBatch, stage: str) -> Tensor:
        """Summed cross-entropy (nats) of every target in the chunk; the state is carried for the next one."""
        logits, state = self.model(batch.inputs, self._carried_state(stage, batch))  # [B, T, V]
        self._states[stage] = tuple(s.detach() for s in state)
        dtype = torch.promote_types(logits.dtype, torch.float32)  # float32 at least, float64 kept
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).to(dtype),  # [B*T, V]
            batch.targets.reshape(-1),
            reduction="sum",
        )

    def training_step(self, batch: LmBatch, batch_idx: int) -> Tensor:
        nll = self._nll(batch, "train")
        count = batch.targets.numel()
        if self.config.loss.reduction == "sum_over_time":
            loss = nll / batch.targets.shape[0]
        else:
            loss = nll / count
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        self.log("train/bpc", bits_per_symbol(float(nll.detach()), count), batch_size=len(batch))
        return loss

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: Any = None,
        gradient_clip_algorithm: Any = None,
    ) -> None:
        """Clip by value (element-wise), then by global norm, as ``optim.clip_value``/``clip_norm`` say."""
        optim = self.config.optim
        if optim.clip_value is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=optim.clip_value, gradient_clip_algorithm="value"
            )
        if optim.clip_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=optim.clip_norm, gradient_clip_algorithm="norm")

    # ----------------------------------------------------------------------------------------- evaluation
    def _start_eval(self, stage: str) -> None:
        self.metrics[stage].reset()
        self._states.pop(stage, None)

    def _eval_step(self, batch: LmBatch, stage: str) -> None:
        nll = self._nll(batch, stage)
        self.metrics[stage].update(nll, batch.targets.numel())

    def _end_eval(self, stage: str) -> None:
        scores = self.metrics[stage].compute()  # summed over every rank's streams
        self.results[stage] = scores
        for name, value in scores.items():
            self.log(
                f"{stage}/{name}",
                value,
                prog_bar=stage == "val" and name == self.config.monitor,
                sync_dist=True,
            )
        self._states.pop(stage, None)

    # ------------------------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the hidden state the last training chunk left: a run resumed in the middle of a pass starts
        its next chunk from it, as the uninterrupted run does (a new pass starts from zero anyway)."""
        state = self._states.get("train")
        checkpoint[CARRIED_STATE_KEY] = None if state is None else [s.detach().cpu() for s in state]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(CARRIED_STATE_KEY)
        self._states["train"] = None if state is None else tuple(state)

    # ---------------------------------------------------------------------------------------- optimisation
    def make_optimizer(self) -> torch.optim.Optimizer:
        return build_lm_optimizer(self.config.optim, self.model)
