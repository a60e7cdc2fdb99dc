"""The visual question answering system: answer classification over a top-K answer vocabulary.

Loss (``loss.name``):

* ``soft_ce`` (default): cross-entropy against the distribution of the human answers that are in the
  vocabulary, i.e. the mean over annotators of ``-log p(answer)`` (Kazemi & Elqursh 2017, eq. 5);
* ``bce``: binary cross-entropy against the soft scores ``min(1, count/3)`` of every answer, summed over
  answers (Teney et al. 2018, *Tips and Tricks for Visual Question Answering*).

Questions with no answer in the vocabulary carry no soft-CE signal and are left out of that loss (the
dataset counts them). Evaluation predicts the arg-max answer and scores it with the official VQA accuracy
(:mod:`vltk.metrics.vqa`, the rule of ``metrics.rule``), overall, per answer type and per question type,
over the whole split gathered across DDP ranks and de-duplicated by question id. A split whose questions
have one human answer each (easy-VQA) is scored by exact match instead (``exact_match...``): the official
formula gives such questions 0. ``monitor: auto`` selects best checkpoints by whichever of ``accuracy`` and
``exact_match`` the validation split reports.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from vltk.config import from_dict, spec_field, to_dict
from vltk.errors import ConfigError
from vltk.metrics.vqa import ACCURACY, EXACT_MATCH, HEAD_RULE, VqaMetrics, VqaRule
from vltk.tasks.training import EvaluatingSystem, OptimConfig, TrainerConfig
from vltk.tasks.vqa.dataset import VqaBatch
from vltk.tasks.vqa.datasets import VQA_DATASETS
from vltk.tasks.vqa.inference import QuestionAnswerer
from vltk.tasks.vqa.model import VqaModelConfig, VqaOutput, build_vqa_model
from vltk.tasks.vqa.records import AnswerVocabulary, VqaExample
from vltk.text import Vocabulary

logger = logging.getLogger(__name__)


@dataclass
class VqaLossConfig:
    """``soft_ce`` (softmax over answers, soft targets) or ``bce`` (sigmoid per answer, VQA scores)."""

    name: Literal["soft_ce", "bce"] = "soft_ce"


@dataclass
class VqaMetricsConfig:
    """How answers are scored: ``rule`` is the official ``vqaEval.py`` rule
    (:data:`vltk.metrics.vqa.VQA_RULES`): ``a013f00`` (its head since 2021, default) or ``pre-a013f00``
    (the earlier rule, behind numbers published before 2021)."""

    rule: VqaRule = HEAD_RULE


@dataclass
class VqaConfig:
    """A VQA run: ``model`` is a :class:`~vltk.tasks.vqa.model.VqaModelConfig`, ``data`` a dataset spec."""

    task: str = "vqa"
    seed: int = 42
    data: dict = spec_field(VQA_DATASETS, {"name": "easy_vqa"})
    model: VqaModelConfig = field(default_factory=VqaModelConfig)
    loss: VqaLossConfig = field(default_factory=VqaLossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    metrics: VqaMetricsConfig = field(default_factory=VqaMetricsConfig)
    # "auto": `accuracy` for questions with several human answers (VQA v2), `exact_match` for one (easy-VQA)
    monitor: str = "auto"
    num_samples: int = 5

    def __post_init__(self) -> None:
        if self.task != "vqa":
            raise ConfigError(f"task: this is a vqa config, got task '{self.task}'")


def resolve_monitor(monitor: str, examples: Sequence[VqaExample]) -> str:
    """The metric that selects best checkpoints on ``examples`` (the validation split).

    ``auto`` -> ``exact_match`` when every answered question has one human answer, else ``accuracy``
    (as :func:`vltk.metrics.vqa.metric_name` names the split's scores). Any other name must be one the
    split reports: the headline or ``<headline>/<answer type>``.
    """
    answered = [e for e in examples if e.answers]
    headline = EXACT_MATCH if answered and all(len(e.answers) == 1 for e in answered) else ACCURACY
    if monitor == "auto":
        return headline
    reported = {headline} | {f"{headline}/{e.answer_type}" for e in answered}
    if monitor not in reported:
        why = "one human answer per question" if headline == EXACT_MATCH else "several human answers"
        raise ConfigError(
            f"monitor: '{monitor}' is not reported on this validation split ({why}: it reports "
            f"'{headline}' and '{headline}/<answer type>'); use monitor=auto or monitor={headline}"
        )
    return monitor


class VqaTask(EvaluatingSystem):
    """Lightning system around :class:`vltk.tasks.vqa.model.VqaModel`.

    Args:
        config: the resolved :class:`VqaConfig` as a plain dict (stored in checkpoints).
        vocab: the question vocabulary as ``tokenizer.json`` text (stored in checkpoints).
        answers: the answer vocabulary, in class order (stored in checkpoints).
    """

    def __init__(self, config: dict[str, Any], vocab: str, answers: list[str]):
        super().__init__()
        self.save_hyperparameters()
        self.config = from_dict(VqaConfig, config, old_keys=True)
        self.vocab = Vocabulary.from_json(vocab)
        self.answer_vocab = AnswerVocabulary(answers)
        self.model = build_vqa_model(
            self.config.model,
            vocab_size=len(self.vocab),
            num_answers=len(self.answer_vocab),
            pad_id=self.vocab.pad_id,
        )
        rule = self.config.metrics.rule
        self.metrics = {"val": VqaMetrics(rule=rule), "test": VqaMetrics(rule=rule)}
        self.samples: list[dict[str, str]] = []
        self.predictions: dict[int, str] = {}
        self.results: dict[str, dict[str, float]] = {}
        self.unscored = 0

    @classmethod
    def from_data(cls, cfg: VqaConfig, datamodule: Any) -> VqaTask:
        """The system for training on ``datamodule`` (set up for ``fit``): its vocabularies go in, the
        encoder's preprocessing goes back to the datamodule.

        ``cfg.monitor`` is resolved here against the validation split (``auto`` becomes ``accuracy`` or
        ``exact_match``; a name the split will not report is a ConfigError), before the runner builds its
        best-checkpoint callback from it.
        """
        cfg.monitor = resolve_monitor(cfg.monitor, datamodule.examples("val"))
        system = cls(
            config=to_dict(cfg), vocab=datamodule.vocab.to_json(), answers=datamodule.answer_vocab.answers
        )
        datamodule.image_transform = system.model.encoder.transforms()
        return system

    def attach_data(self, datamodule: Any) -> None:
        """Evaluate with the checkpoint's vocabularies and the encoder's preprocessing."""
        datamodule.vocab = self.vocab
        datamodule.answer_vocab = self.answer_vocab
        datamodule.image_transform = self.model.encoder.transforms()

    def sample_rows(self) -> list[dict[str, str]]:
        return list(self.samples)

    def prediction_rows(self) -> list[dict[str, Any]]:
        """The last evaluation's answers in the official results format, every rank's, one per question."""
        return [{"question_id": qid, "answer": answer} for qid, answer in sorted(self.predictions.items())]

    # ----------------------------------------------------------------------------------------------- loss
    def forward(self, batch: VqaBatch) -> VqaOutput:
        return self.model(batch.images, batch.image_index, batch.questions, batch.question_lengths)

    def _loss(self, output: VqaOutput, targets: Tensor) -> Tensor:
        logits = output.logits  # [B, A]
        if self.config.loss.name == "bce":
            return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / max(len(logits), 1)
        mass = targets.sum(dim=1)  # [B]
        answered = mass > 0  # [B]
        if not bool(answered.any()):
            return logits.sum() * 0.0  # keeps the graph (DDP) without a signal
        distribution = targets[answered] / mass[answered, None]  # [B', A]
        return -(distribution * logits[answered].log_softmax(dim=-1)).sum(dim=-1).mean()

    def training_step(self, batch: VqaBatch, batch_idx: int) -> Tensor:
        output = self(batch)
        loss = self._loss(output, batch.targets)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch))
        return loss

    # ----------------------------------------------------------------------------------------- evaluation
    def inference(self) -> QuestionAnswerer:
        """The inference object around this system's network (shared, not copied) and its vocabularies:
        what ``vltk.from_pretrained`` gives for its checkpoint."""
        max_question_length = int(self.config.data.get("max_question_length", 20))
        return QuestionAnswerer(self.model, self.vocab, self.answer_vocab.answers, max_question_length)

    def answer(self, output: VqaOutput) -> list[str]:
        """The arg-max answer of each question (:meth:`QuestionAnswerer.best_answers`)."""
        return self.inference().best_answers(output.logits)

    def _eval_step(self, batch: VqaBatch, stage: str) -> None:
        output = self(batch)
        self.log(f"{stage}/loss", self._loss(output, batch.targets), batch_size=len(batch), sync_dist=True)
        predicted = self.answer(output)
        ids = batch.question_ids.tolist()
        scored = [i for i, answers in enumerate(batch.answers) if answers]
        self.unscored += len(ids) - len(scored)
        self.metrics[stage].update(
            [ids[i] for i in scored],
            [predicted[i] for i in scored],
            [batch.answers[i] for i in scored],
            [batch.answer_types[i] for i in scored],
            [batch.question_types[i] for i in scored],
        )
        for qid, answer in zip(ids, predicted):
            self.predictions.setdefault(qid, answer)
        for i in range(len(ids)):
            if len(self.samples) >= self.config.num_samples:
                break
            self.samples.append(
                {"question": batch.texts[i], "answer": predicted[i], "truth": ", ".join(batch.answers[i][:3])}
            )

    def _start_eval(self, stage: str) -> None:
        self.metrics[stage].reset()
        self.samples = []
        self.predictions = {}
        self.unscored = 0

    def _end_eval(self, stage: str) -> None:
        metric = self.metrics[stage]
        scores = metric.compute_detailed()  # the whole split, gathered over ranks, de-duplicated
        if self.unscored:
            logger.warning("%d questions have no ground-truth answers: predicted, not scored", self.unscored)
        if (
            metric.sync_across_ranks
            and torch.distributed.is_available()
            and torch.distributed.is_initialized()
        ):
            gathered: list[dict[int, str] | None] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, self.predictions)
            merged: dict[int, str] = {}
            for part in gathered:
                for qid, answer in (part or {}).items():
                    merged.setdefault(qid, answer)
            self.predictions = merged
        logged = scores.metrics()
        self.results[stage] = scores.metrics(question_types=True)
        for name, value in logged.items():  # equal on every rank (gathered), sync_dist keeps Lightning happy
            self.log(f"{stage}/{name}", value, prog_bar=stage == "val" and name == self.config.monitor,
                     sync_dist=True)  # fmt: skip
