"""The visual dialog system: late fusion with a discriminative or a generative decoder (Das et al. 2017,
*Visual Dialog*), evaluated by ranking every round's 100 candidate answers.

Training: the discriminative decoder is trained with cross-entropy over the options of each round (the
right one is the target); the generative decoder with teacher forcing on the right answer (token NLL).
Evaluation ranks every round's options (dot products, or log-likelihoods for the generative decoder) and
reports R@1/5/10, MRR, mean rank and NDCG with the VisDial definitions (:mod:`vltk.metrics.retrieval`),
overall and per question type where the data names types (``shapes_dialog``: count, colour, ...,
``coreference``), gathered over DDP ranks and de-duplicated by ``(image_id, round_id)``.

The system also stores the most frequent right answers of the training split (``answers``): a
discriminative model answers free questions (``vltk chat``, ``vltk predict``) by ranking them, since it
cannot generate text; the generative model generates with beam search.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from vltk.config import from_dict, spec_field, to_dict
from vltk.errors import ConfigError
from vltk.metrics.retrieval import DialogRankingMetrics, scores_to_ranks
from vltk.tasks.dialog.batch import DialogBatch
from vltk.tasks.dialog.datasets import DIALOG_DATASETS
from vltk.tasks.dialog.decoders import discriminative_loss
from vltk.tasks.dialog.inference import DialogAnswerer, DialogLengths
from vltk.tasks.dialog.model import DialogModelConfig, build_dialog_model
from vltk.tasks.dialog.session import DIALOG_DECODING
from vltk.tasks.training import DecodingConfig, EvaluatingSystem, OptimConfig, TrainerConfig, build_optimizer
from vltk.text import Vocabulary

logger = logging.getLogger(__name__)


@dataclass
class DialogConfig:
    """A visual dialog run: ``model`` is a :class:`~vltk.tasks.dialog.model.DialogModelConfig`, ``data`` a
    dataset spec. ``decoding`` is how the generative decoder writes free answers (``vltk chat``/``predict``);
    ``answer_bank_size`` caps the training answers a discriminative model ranks for free questions;
    ``length_normalise`` ranks the generative decoder's options by mean instead of summed log-probability."""

    task: str = "dialog"
    seed: int = 42
    data: dict = spec_field(DIALOG_DATASETS, {"name": "shapes_dialog"})
    model: DialogModelConfig = field(default_factory=DialogModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    decoding: DecodingConfig = field(default_factory=lambda: dataclasses.replace(DIALOG_DECODING))
    length_normalise: bool = False
    answer_bank_size: int = 10_000
    monitor: str = "MRR"
    num_samples: int = 5

    def __post_init__(self) -> None:
        if self.task != "dialog":
            raise ConfigError(f"task: this is a dialog config, got task '{self.task}'")
        if self.answer_bank_size < 1:
            raise ConfigError(f"answer_bank_size: must be >= 1, got {self.answer_bank_size}")


def answer_bank(datamodule: Any, size: int) -> list[str]:
    """The ``size`` most frequent right answers of the training split (ties in order of first use)."""
    counts: Counter[str] = Counter()
    for dialog in datamodule.split("train").dialogs:
        counts.update(r.answer for r in dialog.rounds if r.answer)
    return [answer for answer, _ in counts.most_common(size)]


class DialogTask(EvaluatingSystem):
    """Lightning system around :class:`vltk.tasks.dialog.model.DialogModel`.

    Args:
        config: the resolved :class:`DialogConfig` as a plain dict (stored in checkpoints).
        vocab: the vocabulary as ``tokenizer.json`` text (stored in checkpoints).
        answers: the training answers a discriminative model ranks for free questions (stored in checkpoints).
    """

    def __init__(self, config: dict[str, Any], vocab: str, answers: list[str]):
        super().__init__()
        self.save_hyperparameters()
        self.config = from_dict(DialogConfig, config, old_keys=True)
        self.vocab = Vocabulary.from_json(vocab)
        self.answers = list(answers)
        self.model = build_dialog_model(
            self.config.model,
            vocab_size=len(self.vocab),
            pad_id=self.vocab.pad_id,
            start_id=self.vocab.start_id,
            end_id=self.vocab.end_id,
            length_normalise=self.config.length_normalise,
        )
        self.metrics = {"val": DialogRankingMetrics(), "test": DialogRankingMetrics()}
        self.samples: list[dict[str, str]] = []
        self.ranks_rows: list[dict[str, Any]] = []
        self.results: dict[str, dict[str, float]] = {}

    @classmethod
    def from_data(cls, cfg: DialogConfig, datamodule: Any) -> DialogTask:
        """The system for training on ``datamodule`` (set up for ``fit``): its vocabulary and answers go in,
        the image encoder's preprocessing goes back to the datamodule."""
        system = cls(
            config=to_dict(cfg),
            vocab=datamodule.vocab.to_json(),
            answers=answer_bank(datamodule, cfg.answer_bank_size),
        )
        datamodule.image_transform = system.model.transforms()
        return system

    def attach_data(self, datamodule: Any) -> None:
        """Evaluate with the checkpoint's vocabulary and the encoder's preprocessing."""
        datamodule.vocab = self.vocab
        datamodule.image_transform = self.model.transforms()

    def sample_rows(self) -> list[dict[str, str]]:
        return list(self.samples)

    def prediction_rows(self) -> list[dict[str, Any]]:
        """The last evaluation's ranks in EvalAI's layout: ``[{"image_id", "round_id", "ranks": [100]}]``."""
        return list(self.ranks_rows)

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The image encoder gets its own group (``optim.encoder_lr``); the late fusion encoder does not."""
        return build_optimizer(self.config.optim, self.model, self.model.image_encoder)

    # ----------------------------------------------------------------------------------------------- loss
    def training_step(self, batch: DialogBatch, batch_idx: int) -> Tensor:
        loss = self.model.loss_batch(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        return loss

    # ----------------------------------------------------------------------------------------- evaluation
    def inference(self) -> DialogAnswerer:
        """The inference object around this system's network (shared, not copied), its vocabulary, answer
        bank, trained lengths and ``decoding``: what ``vltk.from_pretrained`` gives for its checkpoint."""
        lengths = DialogLengths.of(self.config.data)
        return DialogAnswerer(self.model, self.vocab, self.answers, lengths, self.config.decoding)

    def _eval_step(self, batch: DialogBatch, stage: str) -> None:
        scores = self.model.forward_batch(batch).scores  # [B, R, O]
        if not self.model.generative:
            loss = discriminative_loss(scores, batch.gt_index, batch.round_mask)
            self.log(f"{stage}/loss", loss, batch_size=len(batch), sync_dist=True)
        ranks = scores_to_ranks(scores)  # [B, R, O], 1 = best
        real = batch.round_mask  # [B, R]
        dialogs, rounds = real.nonzero(as_tuple=True)  # [M], [M]
        image_ids = batch.image_ids.tolist()
        self.metrics[stage].update(
            [image_ids[b] for b in dialogs.tolist()],
            (rounds + 1).tolist(),  # VisDial's round_id is 1-based
            ranks[dialogs, rounds],  # [M, O]
            batch.gt_index[dialogs, rounds],  # [M]
            batch.relevance[dialogs, rounds],  # [M, O]
            batch.relevance_mask[dialogs, rounds],  # [M]
            [batch.round_types[b][r] for b, r in zip(dialogs.tolist(), rounds.tolist())],
        )
        self._keep_samples(batch, ranks)

    def _keep_samples(self, batch: DialogBatch, ranks: Tensor) -> None:
        """The first dialog's rounds: the question, the best-ranked option and the right answer."""
        best = ranks.argmin(dim=-1)  # [B, R] position of the option ranked 1
        for r in range(batch.num_rounds):
            if len(self.samples) >= self.config.num_samples:
                return
            if not bool(batch.round_mask[0, r]):
                continue
            gt = int(batch.gt_index[0, r])
            row = {
                "caption": batch.captions[0] if r == 0 else "",
                "question": batch.question_texts[0][r],
                "answer": batch.option_texts[int(batch.options[0, r, best[0, r]])],
                "truth": batch.option_texts[int(batch.options[0, r, gt])] if gt >= 0 else "",
            }
            self.samples.append(row)

    def _start_eval(self, stage: str) -> None:
        self.metrics[stage].reset()
        self.samples = []
        self.ranks_rows = []

    def _end_eval(self, stage: str) -> None:
        metric = self.metrics[stage]
        scores = metric.compute_detailed()  # the whole split, gathered over ranks, de-duplicated
        self.ranks_rows = metric.ranks_rows()
        self.results[stage] = scores.metrics(types=True)
        for name, value in scores.metrics().items():  # equal on every rank (gathered)
            self.log(f"{stage}/{name}", value, prog_bar=stage == "val" and name == self.config.monitor,
                     sync_dist=True)  # fmt: skip
