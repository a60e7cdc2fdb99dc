"""The VQA inference object: a trained VQA model, its question and answer vocabularies.

:class:`QuestionAnswerer` is the one place an answer is read off the model's logits: evaluation
(``VqaTask.answer``: the arg-max answer of each question), :func:`vltk.from_pretrained` and
``vltk predict`` (the ``top_k`` answers with their probabilities) go through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import Tensor

from vltk.errors import VltkError
from vltk.export import evaluating, hyper_parameter, load_network
from vltk.tasks.vqa.model import VqaModel, VqaOutput, build_vqa_model
from vltk.text import Vocabulary


@dataclass
class QuestionAnswerer:
    """A VQA model ready to answer questions about images (:mod:`vltk.tasks.vqa.model`).

    Attributes:
        model: the network (image encoder, question encoder, answer head).
        vocab: the question vocabulary.
        answers: the answer vocabulary, in class order.
        max_question_length: questions are cut to this many words, as in training.
    """

    task: ClassVar[str] = "vqa"

    model: VqaModel
    vocab: Vocabulary
    answers: list[str]
    max_question_length: int = 20

    @classmethod
    def from_checkpoint(
        cls, config: Any, hyper_parameters: Mapping[str, Any], state_dict: Mapping[str, Tensor], source: Path
    ) -> QuestionAnswerer:
        """The answerer of a checkpoint or export: ``config`` is its parsed ``VqaConfig``; the vocabularies
        come from ``hyper_parameters``, the ``model.*`` weights from ``state_dict``."""
        vocab = Vocabulary.from_json(hyper_parameter(hyper_parameters, "vocab", source))
        answers = list(hyper_parameter(hyper_parameters, "answers", source))
        network = build_vqa_model(
            config.model, vocab_size=len(vocab), num_answers=len(answers), pad_id=vocab.pad_id
        )
        network = load_network(network, state_dict, source, cls.task)
        return cls(network, vocab, answers, int(config.data.get("max_question_length", 20)))

    # ---------------------------------------------------------------------------------------- answers
    def best_answers(self, logits: Tensor) -> list[str]:
        """The arg-max answer of each row of ``[B, A]`` logits: what evaluation scores."""
        return [self.answers[i] for i in logits.argmax(dim=-1).tolist()]

    def rank(self, logits: Tensor, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` answers of one question's ``[A]`` logits with their probabilities, best first."""
        probabilities = logits.softmax(dim=-1)  # [A]
        top = probabilities.topk(min(top_k, len(probabilities)))
        return [(self.answers[int(i)], float(p)) for p, i in zip(top.values, top.indices)]

    # ------------------------------------------------------------------------------ questions, images
    def question_ids(self, question: str) -> tuple[list[int], list[str]]:
        """The question's token ids (cut to ``max_question_length``) and its words outside the vocabulary
        (read as ``<unk>``). An empty question, or one without a known word, is an error."""
        words = self.vocab.tokenize(question)
        if not words:
            raise VltkError(
                "the question is empty: ask something, e.g. --question 'what color is the shape?'"
            )
        unknown = [w for w in words if w not in self.vocab]
        if len(unknown) == len(words):
            raise VltkError(
                f"none of the question's words ({', '.join(words)}) is in the model's vocabulary of "
                f"{len(self.vocab)} words; rephrase it with words seen in training"
            )
        return self.vocab.encode(words, add_special=False)[: self.max_question_length], unknown

    def forward(self, image: Image.Image, ids: Sequence[int]) -> VqaOutput:
        """The model's :class:`~vltk.tasks.vqa.model.VqaOutput` for one PIL image and one encoded question."""
        device = next(self.model.parameters()).device
        batch = self.model.encoder.transforms()(image.convert("RGB")).unsqueeze(0).to(device)  # [1, 3, H, W]
        tokens = torch.tensor([list(ids)], dtype=torch.long, device=device)  # [1, T]
        lengths = torch.tensor([len(ids)])  # [1]
        with evaluating(self.model):
            return self.model(batch, torch.zeros(1, dtype=torch.long, device=device), tokens, lengths)

    def answer(
        self, images: Sequence[Image.Image], question: str, *, top_k: int = 5
    ) -> list[list[tuple[str, float]]]:
        """The ``top_k`` answers (with probabilities) to ``question`` about each PIL image."""
        ids, _ = self.question_ids(question)
        return [self.rank(self.forward(image, ids).logits[0], top_k) for image in images]
