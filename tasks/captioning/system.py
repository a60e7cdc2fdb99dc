"""The image-captioning system: teacher-forced training, decoding for evaluation, caption metrics.

Loss: token cross-entropy (optional label smoothing) plus, for attention decoders, the doubly stochastic
attention regulariser of Xu et al. 2015 (Show, Attend and Tell, eq. 14), ``alpha_c * (1 - sum_t
alpha_ti)^2`` averaged over regions i and images (the paper sums over regions; the mean keeps alpha_c
independent of the grid size), which pushes the model to look at every region over a caption. Optionally
with scheduled sampling (Bengio et al. 2015; ``scheduled_sampling:``), or, after cross-entropy, self-critical
sequence training on CIDEr-D (Rennie et al. 2017; ``scst:``, :mod:`vltk.tasks.captioning.scst`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from vltk.config import from_dict, spec_field, to_dict
from vltk.errors import ConfigError, DataError, VltkError
from vltk.export import read_model, weights_summary
from vltk.metrics import CaptionMetrics
from vltk.metrics.caption import METRIC_NAMES, score_records
from vltk.metrics.cider_reward import CiderDReward
from vltk.tasks.captioning.batch import CaptionBatch
from vltk.tasks.captioning.datasets import CAPTION_DATASETS
from vltk.tasks.captioning.inference import ImageCaptioner
from vltk.tasks.captioning.model import CaptionerConfig, build_captioner
from vltk.tasks.captioning.scst import SelfCriticalConfig, reward_references, self_critical_step
from vltk.tasks.training import (
    DecodingConfig,
    EvaluatingSystem,
    OptimConfig,
    TrainerConfig,
)
from vltk.text import Vocabulary

logger = logging.getLogger(__name__)


@dataclass
class CaptionLossConfig:
    """``attention_regularization`` is alpha_c of Show, Attend and Tell (0 disables it)."""

    label_smoothing: float = 0.0
    attention_regularization: float = 1.0


@dataclass
class ScheduledSamplingConfig:
    """Scheduled sampling (Bengio et al. 2015) with the schedule of ruotianluo/ImageCaptioning.pytorch
    (``--scheduled_sampling_start``, ``_increase_every``, ``_increase_prob``, ``_max_prob``): from epoch
    ``start_epoch`` on, each input word is the model's own sample with probability
    ``min(increase_by * floor((epoch - start_epoch) / increase_every), max_probability)``.

    Attributes:
        start_epoch: the first epoch (0-based) of the schedule; ``null`` switches scheduled sampling off.
        increase_every: epochs between increases.
        increase_by: the step added to the probability at each increase.
        max_probability: the ceiling.
    """

    start_epoch: int | None = None
    increase_every: int = 5
    increase_by: float = 0.05
    max_probability: float = 0.25

    def __post_init__(self) -> None:
        if self.start_epoch is not None and self.start_epoch < 0:
            raise ConfigError(
                f"scheduled_sampling.start_epoch must be >= 0 (null: off), got {self.start_epoch}"
            )
        if self.increase_every < 1:
            raise ConfigError(f"scheduled_sampling.increase_every must be >= 1, got {self.increase_every}")
        for key in ("increase_by", "max_probability"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"scheduled_sampling.{key} must lie in [0, 1], got {getattr(self, key)}")

    def probability(self, epoch: int) -> float:
        """The sampling probability of 0-based ``epoch``."""
        if self.start_epoch is None or epoch < self.start_epoch:
            return 0.0
        increases = (epoch - self.start_epoch) // self.increase_every
        return min(self.increase_by * increases, self.max_probability)


@dataclass
class CaptionEvalMetricsConfig:
    """Optional caption metrics of the final test (``vltk train``'s test and ``vltk evaluate``).

    ``meteor``: ``auto`` adds METEOR when Java and pycocoevalcap are installed (a note otherwise),
    ``true`` asks for it (a warning when it cannot run), ``false`` skips it. Validation epochs never
    compute METEOR: its Java scorer takes seconds to start.
    """

    meteor: bool | Literal["auto"] = "auto"


@dataclass
class CaptioningConfig:
    """A captioning run: ``model`` is a :class:`~vltk.tasks.captioning.model.CaptionerConfig`, ``data`` a
    caption dataset spec."""

    task: str = "captioning"
    seed: int = 42
    data: dict = spec_field(CAPTION_DATASETS, {"name": "shapes"})
    model: CaptionerConfig = field(default_factory=CaptionerConfig)
    loss: CaptionLossConfig = field(default_factory=CaptionLossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    metrics: CaptionEvalMetricsConfig = field(default_factory=CaptionEvalMetricsConfig)
    scheduled_sampling: ScheduledSamplingConfig = field(default_factory=ScheduledSamplingConfig)
    scst: SelfCriticalConfig = field(default_factory=SelfCriticalConfig)
    monitor: str = "CIDEr"
    num_samples: int = 5

    def __post_init__(self) -> None:
        if self.task != "captioning":
            from vltk.errors import ConfigError

            raise ConfigError(f"task: this is a captioning config, got task '{self.task}'")


@dataclass
class CaptionSample:
    image_id: int
    caption: str
    references: list[str]


class CaptioningTask(EvaluatingSystem):
    """Lightning system around :class:`vltk.tasks.captioning.model.Captioner`.

    Args:
        config: the resolved :class:`CaptioningConfig` as a plain dict (stored in checkpoints).
        vocab: the vocabulary as ``tokenizer.json`` text (stored in checkpoints).
    """

    def __init__(self, config: dict[str, Any], vocab: str):
        super().__init__()
        self.save_hyperparameters()
        self.config = from_dict(CaptioningConfig, config, old_keys=True)
        self.vocab = Vocabulary.from_json(vocab)
        self.model = build_captioner(
            self.config.model,
            vocab_size=len(self.vocab),
            start_id=self.vocab.start_id,
            end_id=self.vocab.end_id,
            pad_id=self.vocab.pad_id,
        )
        self.metrics = {"val": CaptionMetrics(), "test": CaptionMetrics()}
        self.samples: list[CaptionSample] = []
        self.predictions: dict[int, str] = {}
        self.results: dict[str, dict[str, float]] = {}
        self.reward: CiderDReward | None = None  # SCST's reward, prepared at the start of fit
        self.step_seconds = 0.0  # SCST: wall time of training steps and of their rewards, this epoch
        self.reward_seconds = 0.0
        self._step_started: float | None = None

    @classmethod
    def from_data(cls, cfg: CaptioningConfig, datamodule: Any) -> CaptioningTask:
        """The system for training on ``datamodule`` (set up for ``fit``): its vocabulary goes in, and the
        encoder's preprocessing goes back to the datamodule. With ``model.init_from``, the network, weights
        and vocabulary come from that checkpoint (``cfg.model`` is rewritten to its network, so the run's
        ``config.yaml`` says what was trained); with ``scst.enabled``, training batches hold images."""
        source = None
        if cfg.scst.enabled and cfg.model.init_from is None:
            raise ConfigError(
                "scst.enabled: self-critical training starts from a cross-entropy model; set "
                "model.init_from to its checkpoint (e.g. --set "
                "model.init_from=runs/captioning/RUN/checkpoints/best.ckpt)"
            )
        if cfg.model.init_from is not None:
            source = read_initial_model(cfg.model.init_from)
            network = {**source.hyper_parameters["config"]["model"], "init_from": cfg.model.init_from}
            cfg.model = from_dict(CaptionerConfig, network, "model", old_keys=True)
            datamodule.vocab = Vocabulary.from_json(source.hyper_parameters["vocab"])
        system = cls(config=to_dict(cfg), vocab=datamodule.vocab.to_json())
        if source is not None:
            try:
                system.load_state_dict(source.state_dict)
            except RuntimeError as error:
                raise VltkError(
                    f"model.init_from: {cfg.model.init_from}: the weights do not fit the model "
                    f"({weights_summary(error)})"
                ) from None
        datamodule.image_transform = system.model.encoder.transforms()
        if cfg.scst.enabled:
            datamodule.train_items = "images"  # K samples per image and step, not one item per caption
        return system

    def attach_data(self, datamodule: Any) -> None:
        """Evaluate with the checkpoint's vocabulary and the encoder's preprocessing."""
        datamodule.vocab = self.vocab
        datamodule.image_transform = self.model.encoder.transforms()

    def sample_rows(self) -> list[dict[str, str]]:
        return [
            {"image": str(s.image_id), "generated": s.caption, "references": "\n".join(s.references[:3])}
            for s in self.samples
        ]

    def prediction_rows(self) -> list[dict[str, Any]]:
        """The last evaluation's captions in the COCO results format, every rank's, one per image."""
        return [
            {"image_id": image_id, "caption": caption}
            for image_id, caption in sorted(self.predictions.items())
        ]

    # ----------------------------------------------------------------------------------------------- loss
    def _loss(self, batch: CaptionBatch, training: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        features = self.model.encode(batch.images)  # grid [B, N, D]
        probability = self.config.scheduled_sampling.probability(self.current_epoch) if training else 0.0
        output = self.model.teacher_forcing(
            features, batch.captions, sample_probability=probability
        )  # logits [B, T-1, V]
        targets = batch.captions[:, 1:]  # [B, T-1]
        target_mask = batch.caption_mask[:, 1:]  # [B, T-1]
        cross_entropy = F.cross_entropy(
            output.logits.reshape(-1, output.logits.shape[-1]),  # [B*(T-1), V]
            targets.reshape(-1),
            ignore_index=self.vocab.pad_id,
            label_smoothing=self.config.loss.label_smoothing,
        )
        regulariser = cross_entropy.new_zeros(())
        alpha_c = self.config.loss.attention_regularization
        if output.attention is not None and alpha_c > 0:
            attention = output.attention * target_mask.unsqueeze(-1)  # [B, T-1, N]
            regulariser = alpha_c * ((1.0 - attention.sum(dim=1)) ** 2).mean()
        return cross_entropy + regulariser, cross_entropy, regulariser

    def on_fit_start(self) -> None:
        """SCST: the reward's reference tables, from the training split, once per run (on every rank)."""
        if not self.config.scst.enabled:
            return
        datamodule = self.trainer.datamodule
        records = getattr(datamodule, "records", None)
        if records is None:
            raise DataError(
                f"scst: data.name '{self.config.data.get('name')}' cannot list its training images, which "
                "the CIDEr-D reward needs; train SCST on a dataset with records (shapes, karpathy, hf)"
            )
        references = reward_references(records("train"), self.vocab, self.config.scst.max_length)
        self.reward = CiderDReward(references, vocab_size=len(self.vocab))
        logger.info("SCST reward: CIDEr-D against %d training images", len(self.reward))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._step_started = time.perf_counter()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._step_started is not None:  # the whole step: forward, reward, backward, optimiser
            self.step_seconds += time.perf_counter() - self._step_started

    def on_train_epoch_end(self) -> None:
        if self.config.scst.enabled and self.step_seconds > 0:
            self.log("train/reward_time_share", self.reward_seconds / self.step_seconds)
        self.step_seconds = self.reward_seconds = 0.0

    def training_step(self, batch: CaptionBatch, batch_idx: int) -> Tensor:
        if self.config.scst.enabled:
            return self._self_critical_step(batch)
        loss, cross_entropy, regulariser = self._loss(batch, training=True)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        if probability := self.config.scheduled_sampling.probability(self.current_epoch):
            self.log("train/sample_probability", probability, batch_size=len(batch))
        self.log("train/cross_entropy", cross_entropy, batch_size=len(batch))
        if regulariser.item() != 0.0:
            self.log("train/attention_reg", regulariser, batch_size=len(batch))
        if batch.skipped:  # unreadable samples dropped by the dataset (data.on_bad_sample=skip)
            self.log(
                "train/skipped_samples", float(batch.skipped), reduce_fx="sum", on_step=False, on_epoch=True
            )
        return loss

    def _self_critical_step(self, batch: CaptionBatch) -> Tensor:
        if self.reward is None:
            raise VltkError("scst: the reward is prepared in on_fit_start; train through the Trainer")
        step = self_critical_step(
            self.model, batch.images, batch.image_ids.tolist(), self.reward, self.config.scst
        )
        self.reward_seconds += step.reward_seconds
        self.log("train/loss", step.loss, prog_bar=True, batch_size=len(batch))
        self.log("train/reward", step.reward, prog_bar=True, batch_size=len(batch))
        self.log("train/baseline_reward", step.baseline, batch_size=len(batch))
        return step.loss

    # ----------------------------------------------------------------------------------------- evaluation
    def _eval_step(self, batch: CaptionBatch, stage: str) -> None:
        loss, _, _ = self._loss(batch)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", batch_size=len(batch), sync_dist=True)
        captions = self.caption(batch.images)
        ids = batch.image_ids.tolist()
        self.metrics[stage].update(ids, captions, batch.references)
        for image_id, caption, refs in zip(ids, captions, batch.references):
            if len(self.samples) < self.config.num_samples:
                self.samples.append(CaptionSample(image_id, caption, list(refs)))

    def inference(self) -> ImageCaptioner:
        """The inference object around this system's network (shared, not copied), its vocabulary and its
        config's ``decoding``: what ``vltk.from_pretrained`` gives for its checkpoint."""
        return ImageCaptioner(self.model, self.vocab, self.config.decoding)

    def caption(self, images: Tensor) -> list[str]:
        """Captions for a batch of preprocessed images, decoded as the config's ``decoding`` says
        (:meth:`vltk.tasks.captioning.inference.ImageCaptioner.caption_batch`)."""
        return self.inference().caption_batch(images)

    def _start_eval(self, stage: str) -> None:
        self.metrics[stage].reset()
        self.samples = []
        self.predictions = {}

    def _end_eval(self, stage: str) -> None:
        records = self.metrics[stage].records()  # the whole split, gathered over ranks, de-duplicated
        self.predictions = {record.image_id: record.hypothesis for record in records}
        scores = self._score(records, meteor=self.config.metrics.meteor if stage == "test" else False)
        self.results[stage] = scores
        for name, value in scores.items():  # identical on every rank: compute() gathered the whole split,
            # so sync_dist averages equal values; it keeps Lightning's epoch-level bookkeeping consistent.
            self.log(
                f"{stage}/{name}",
                value,
                prog_bar=stage == "val" and name == self.config.monitor,
                sync_dist=True,
            )

    def _score(self, records: list, meteor: bool | str) -> dict[str, float]:
        """COCO metrics of the whole split; METEOR (Java) runs once, on rank 0, and is broadcast."""
        if not records:
            return {name: 0.0 for name in METRIC_NAMES}
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if meteor is False or not distributed:
            return self._score_local(records, meteor)
        payload = [self._score_local(records, meteor) if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(payload, src=0)
        return payload[0]

    def _score_local(self, records: list, meteor: bool | str) -> dict[str, float]:
        scores = score_records(records, meteor=meteor)
        for note in scores.notes:
            logger.warning("%s (captioning config: metrics.meteor=false skips it)", note)
        return scores.metrics


def read_initial_model(path: str) -> Any:
    """The captioning checkpoint or export of ``model.init_from``, or one line naming it."""
    try:
        source = read_model(path)
    except VltkError as error:
        raise VltkError(f"model.init_from: {error}") from None
    except OSError as error:
        raise VltkError(f"model.init_from: cannot read {path} ({error.strerror or error})") from None
    if source.task != "captioning":
        raise ConfigError(f"model.init_from: {path} is a {source.task} model, not a captioning one")
    return source
