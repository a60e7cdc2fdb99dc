"""Talking to a dialog checkpoint about one image: ``vltk chat CKPT image.png`` and ``vltk predict``.

A :class:`DialogSession` keeps what the model's history encoder reads: the caption, then every question and
answer so far, encoded exactly as the dataset encodes dialog history (:func:`vltk.data.dialog_dataset.
history_ids`). A generative model writes its answer with beam search (the config's ``decoding`` section); a
discriminative model cannot write text, so it ranks the answers of its training split (the checkpoint's
``answers``) and gives the best one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.markup import escape

from vltk.data.dialog_dataset import history_ids
from vltk.data.feature_cache import FeatureStore
from vltk.data.images import load_image
from vltk.decoding import BeamResult
from vltk.errors import VltkError
from vltk.tasks.common import PredictRequest

QUIT_WORDS = frozenset({"quit", "exit", "/quit", "/exit", ":q"})
RESET_WORD = "/reset"


@dataclass
class DialogAnswer:
    """One round of a chat: the question, the model's answer and the question's words it does not know."""

    question: str
    answer: str
    unknown_words: list[str]


class DialogSession:
    """An image, its caption and the rounds so far, answered by a loaded :class:`vltk.tasks.dialog.DialogTask`.

    Args:
        system: the loaded system (``vltk.tasks.runner.load_system``).
        image: the image file.
        caption: the caption the history starts with (the dataset gives one per image; here the user does).
        beam_size: beam width for a generative model (``None``: the config's ``decoding.beam_size``).
        max_length: longest generated answer (``None``: the config's ``decoding.max_length``).
    """

    def __init__(
        self,
        system,
        image: str | Path,
        caption: str = "",
        *,
        beam_size: int | None = None,
        max_length: int | None = None,
    ) -> None:
        self.system = system
        self.model = system.model.eval()
        self.vocab = system.vocab
        data = system.config.data
        self.max_question_length = int(data.get("max_question_length", 20))
        self.max_answer_length = int(data.get("max_answer_length", 12))
        self.max_history_length = int(data.get("max_history_length", 100))
        decoding = system.config.decoding
        self.beam_size = beam_size if beam_size is not None else decoding.beam_size
        self.max_length = max_length if max_length is not None else decoding.max_length
        if self.beam_size < 1 or self.max_length < 1:
            raise VltkError(f"beam size and max length must be >= 1, got {self.beam_size}, {self.max_length}")
        transform = self.model.transforms()
        if isinstance(transform, FeatureStore):
            raise VltkError(
                "this model was trained from cached CNN features (model.encoder: cached); it cannot read a "
                "new image file. Chat with a model trained on images."
            )
        self.image = transform(load_image(image)).unsqueeze(0)  # [1, 3, H, W]; fails naming a bad file
        self.caption = caption
        self.turns: list[list[int]] = []
        self._bank: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self) -> None:
        """Forget the rounds so far (the caption stays)."""
        self.turns = []

    def _history(self) -> list[int]:
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
        history = self._history()
        questions = torch.tensor([[ids]], dtype=torch.long)  # [1, 1, Tq]
        question_lengths = torch.tensor([[len(ids)]])  # [1, 1]
        histories = torch.tensor([[history or [self.vocab.pad_id]]], dtype=torch.long)  # [1, 1, Th]
        history_lengths = torch.tensor([[len(history)]])  # [1, 1]
        fusion, _ = self.model.encode(self.image, questions, question_lengths, histories, history_lengths)
        answer = self._generate(fusion.fused) if self.model.generative else self._rank(fusion.fused)
        self.turns.append(ids + self.vocab.encode(answer, add_special=False)[: self.max_answer_length])
        return DialogAnswer(question, answer, unknown)

    def _generate(self, fused: torch.Tensor) -> str:
        result = self.model.generate(fused, method="beam", beam_size=self.beam_size, max_length=self.max_length)
        best = result.best() if isinstance(result, BeamResult) else result
        return self.vocab.decode(best.tokens[0, : int(best.lengths[0])].tolist())

    def _answer_bank(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The checkpoint's training answers as ``<start> .. <end>`` rows ``[U, Ta]`` and lengths ``[U]``."""
        if self._bank is None:
            answers = self.system.answers
            if not answers:
                raise VltkError("this checkpoint stores no training answers to rank; use a generative model")
            rows = [
                [self.vocab.start_id, *ids[: self.max_answer_length], self.vocab.end_id]
                for ids in self.vocab.encode_batch(answers, add_special=False)
            ]
            tokens = torch.full((len(rows), max(map(len, rows))), self.vocab.pad_id, dtype=torch.long)
            for i, row in enumerate(rows):
                tokens[i, : len(row)] = torch.tensor(row)
            self._bank = tokens, torch.tensor([len(row) for row in rows])  # [U, Ta], [U]
        return self._bank

    def _rank(self, fused: torch.Tensor) -> str:
        tokens, lengths = self._answer_bank()
        options = torch.arange(len(tokens))[None, :]  # [1, U]: every answer is a candidate
        scores = self.model.score(fused, tokens, lengths, options)  # [1, U]
        return self.system.answers[int(scores[0].argmax())]


def chat_rounds(session: DialogSession, lines: Iterable[str]) -> Iterator[DialogAnswer | str]:
    """Answer each line as a question; ``/reset`` forgets the history, ``quit``/``exit`` (or the end of the
    input) stops. Yields answers, or a message for lines that are not questions."""
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if text.lower() in QUIT_WORDS:
            return
        if text.lower() == RESET_WORD:
            session.reset()
            yield "history cleared (the caption stays)"
            continue
        try:
            yield session.ask(text)
        except VltkError as error:
            yield str(error)


def predict_dialog_lines(system, request: PredictRequest) -> list[str]:
    """``vltk predict CKPT image.png --question Q [--caption C]``: one round about each image (Rich markup)."""
    if not request.inputs:
        raise VltkError("dialog: name at least one image file to ask about")
    if request.question is None:
        raise VltkError("dialog: ask a question with --question, e.g. --question 'what colour is it?'")
    lines = []
    for path in request.inputs:
        session = DialogSession(
            system, path, request.caption or "", beam_size=request.beam_size, max_length=request.max_length
        )
        answer = session.ask(request.question)
        lines.append(f"[bold]{escape(str(path))}[/]")
        if request.caption:
            lines.append(f"  caption: {escape(request.caption)}")
        lines.append(f"  Q: {escape(answer.question)}")
        lines.append(f"  A: [green]{escape(answer.answer)}[/]")
        if answer.unknown_words:
            lines.append(f"  [yellow]words the model never saw: {escape(', '.join(answer.unknown_words))}[/]")
    return lines
