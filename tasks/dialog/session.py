"""A conversation about one image with a trained dialog model (plain torch; ``vltk chat`` drives it).

The session keeps what the model's history encoder reads: the caption, then every question and answer so
far, encoded as the dataset encodes dialog history (:func:`vltk.tasks.dialog.history.history_ids`). A
generative model writes each answer as its ``decoding`` says (the checkpoint's ``decoding`` section: beam
search by default); a discriminative model cannot write text, so it ranks a bank of candidate answers (the
checkpoint keeps its training split's most frequent answers) and gives the best one. Sessions are opened by
:meth:`vltk.tasks.dialog.inference.DialogAnswerer.chat`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from vltk.decoding import BeamResult
from vltk.encoders.cached import CachedFeatureEncoder
from vltk.errors import VltkError
from vltk.tasks.dialog.history import history_ids
from vltk.tasks.dialog.model import DialogModel
from vltk.tasks.training import DecodingConfig
from vltk.text.vocab import Vocabulary

DIALOG_DECODING = DecodingConfig(max_length=10)  # the default of DialogConfig.decoding and of a session


@dataclass
class DialogAnswer:
    """One round: the question, the model's answer, the question's words the model does not know and, for a
    model that looks at the image, the question-guided attention ``[N]`` over the ``grid_size`` regions
    that the answer was read from."""

    question: str
    answer: str
    unknown_words: list[str]
    attention: torch.Tensor | None = None
    grid_size: tuple[int, int] | None = None


class DialogSession:
    """An image, its caption and the rounds so far.

    Args:
        model: a trained :class:`~vltk.tasks.dialog.model.DialogModel` (put in eval mode here).
        vocab: its vocabulary.
        image: the picture (any size/mode: the image encoder's ``transforms()`` converts it).
        caption: the caption the history starts with.
        answers: candidate answers a discriminative model ranks (ignored by a generative model).
        max_question_length, max_answer_length, max_history_length: the lengths the model was trained with.
        decoding: how a generative model writes answers (method ``beam`` or ``greedy``, beam size, maximum
            length, minimum length, length penalty, trigram blocking).
    """

    def __init__(
        self,
        model: DialogModel,
        vocab: Vocabulary,
        image: Image.Image,
        caption: str = "",
        *,
        answers: Sequence[str] = (),
        max_question_length: int = 20,
        max_answer_length: int = 12,
        max_history_length: int = 100,
        decoding: DecodingConfig = DIALOG_DECODING,
    ) -> None:
        if decoding.beam_size < 1 or decoding.max_length < 1:
            raise VltkError(
                f"beam size and max length must be >= 1, got {decoding.beam_size} and {decoding.max_length}"
            )
        if isinstance(model.image_encoder, CachedFeatureEncoder):
            raise VltkError(
                "this model was trained from cached CNN features (model.encoder: cached) and cannot read a "
                "new picture; talk to a model trained on images"
            )
        self.model = model.eval()
        self.vocab = vocab
        self.caption = caption
        self.answers = list(answers)
        self.max_question_length = max_question_length
        self.max_answer_length = max_answer_length
        self.max_history_length = max_history_length
        self.decoding = decoding
        self.device = next(model.parameters()).device  # every round runs where the model is
        self.image = model.transforms()(image.convert("RGB")).unsqueeze(0).to(self.device)  # [1, 3, H, W]
        self.turns: list[list[int]] = []  # per round: question ids + answer ids
        self._bank: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self) -> None:
        """Forget the rounds so far (the caption stays)."""
        self.turns = []

    def history(self) -> list[int]:
        """The history ids the next question is read with."""
        caption = self.vocab.encode(self.caption, add_special=False)
        return history_ids(caption, [*self.turns, []], self.max_history_length)[-1]

    @torch.no_grad()
    def ask(self, question: str) -> DialogAnswer:
        """Answer ``question`` and add the round to the history."""
        words = self.vocab.tokenize(question)
        if not words:
            raise VltkError("the question is empty: ask something, e.g. 'how many shapes are there?'")
        unknown = [w for w in words if w not in self.vocab]
        ids = self.vocab.encode(words, add_special=False)[: self.max_question_length]
        history = self.history()
        questions = torch.tensor([[ids]], dtype=torch.long, device=self.device)  # [1, 1, Tq]
        question_lengths = torch.tensor([[len(ids)]])  # [1, 1]
        histories = torch.tensor(
            [[history or [self.vocab.pad_id]]], dtype=torch.long, device=self.device
        )  # [1, 1, Th]
        history_lengths = torch.tensor([[len(history)]])  # [1, 1]
        fusion, features = self.model.encode(
            self.image, questions, question_lengths, histories, history_lengths
        )
        answer = self._generate(fusion.fused) if self.model.generative else self._rank(fusion.fused)
        self.turns.append(ids + self.vocab.encode(answer, add_special=False)[: self.max_answer_length])
        attention = fusion.attention[0] if fusion.attention is not None else None  # [N]
        grid_size = features.grid_size if features is not None else None
        return DialogAnswer(question, answer, unknown, attention, grid_size)

    def _generate(self, fused: torch.Tensor) -> str:
        result = self.model.generate(fused, **self.decoding.search_options())
        best = result.best() if isinstance(result, BeamResult) else result
        return self.vocab.decode(best.tokens[0, : int(best.lengths[0])].tolist())

    def _answer_bank(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The candidate answers as ``<start> .. <end>`` rows ``[U, Ta]`` and their lengths ``[U]``."""
        if self._bank is None:
            if not self.answers:
                raise VltkError("a discriminative model needs candidate answers to rank; none were given")
            rows = [
                [self.vocab.start_id, *ids[: self.max_answer_length], self.vocab.end_id]
                for ids in self.vocab.encode_batch(self.answers, add_special=False)
            ]
            tokens = torch.full((len(rows), max(map(len, rows))), self.vocab.pad_id, dtype=torch.long)
            for i, row in enumerate(rows):
                tokens[i, : len(row)] = torch.tensor(row)
            self._bank = tokens.to(self.device), torch.tensor([len(row) for row in rows])  # [U, Ta], [U]
        return self._bank

    def _rank(self, fused: torch.Tensor) -> str:
        tokens, lengths = self._answer_bank()
        options = torch.arange(len(tokens), device=self.device)[None, :]  # [1, U]: all are candidates
        scores = self.model.score(fused, tokens, lengths, options)  # [1, U]
        return self.answers[int(scores[0].argmax())]
