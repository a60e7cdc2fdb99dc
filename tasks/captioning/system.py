"""The image-captioning system: teacher-forced training, decoding for evaluation, caption metrics.

Loss: token cross-entropy (optional label smoothing) plus, for attention decoders, the doubly stochastic
attention regulariser of Xu et al. 2015 (Show, Attend and Tell, eq. 14), ``alpha_c * (1 - sum_t
alpha_ti)^2`` averaged over regions i and images (the paper sums over regions; the mean keeps alpha_c
independent of the grid size), which pushes the model to look at every region over a caption.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from vltk.config import from_dict, spec_field, to_dict
from vltk.metrics import CaptionMetrics
from vltk.metrics.caption import METRIC_NAMES, score_records
from vltk.tasks.captioning.batch import CaptionBatch
from vltk.tasks.captioning.datasets import CAPTION_DATASETS
from vltk.tasks.captioning.inference import ImageCaptioner
from vltk.tasks.captioning.model import CaptionerConfig, build_captioner
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

    @classmethod
    def from_data(cls, cfg: CaptioningConfig, datamodule: Any) -> CaptioningTask:
        """The system for training on ``datamodule`` (set up for ``fit``): its vocabulary goes in, and the
        encoder's preprocessing goes back to the datamodule."""
        system = cls(config=to_dict(cfg), vocab=datamodule.vocab.to_json())
        datamodule.image_transform = system.model.encoder.transforms()
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
    def _loss(self, batch: CaptionBatch) -> tuple[Tensor, Tensor, Tensor]:
        features = self.model.encode(batch.images)  # grid [B, N, D]
        output = self.model.teacher_forcing(features, batch.captions)  # logits [B, T-1, V]
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

    def training_step(self, batch: CaptionBatch, batch_idx: int) -> Tensor:
        loss, cross_entropy, regulariser = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        self.log("train/cross_entropy", cross_entropy, batch_size=len(batch))
        if regulariser.item() != 0.0:
            self.log("train/attention_reg", regulariser, batch_size=len(batch))
        if batch.skipped:  # unreadable samples dropped by the dataset (data.on_bad_sample=skip)
            self.log(
                "train/skipped_samples", float(batch.skipped), reduce_fx="sum", on_step=False, on_epoch=True
            )
        return loss

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
