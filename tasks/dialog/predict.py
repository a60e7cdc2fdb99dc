"""Talking to a dialog model about one image: ``vltk chat CKPT image.png`` and ``vltk predict``.

The conversation itself is :class:`vltk.tasks.dialog.session.DialogSession` (plain torch), opened by the
inference object :class:`vltk.tasks.dialog.inference.DialogAnswerer` (the lengths the model was trained
with, the checkpoint's ``decoding``, its answer bank); this module opens it about an image file and runs the
chat loop over lines of input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.markup import escape

from vltk.data.images import load_image
from vltk.errors import VltkError
from vltk.tasks.dialog.inference import DialogAnswerer
from vltk.tasks.dialog.session import DialogAnswer, DialogSession

QUIT_WORDS = frozenset({"quit", "exit", "/quit", "/exit", ":q"})
RESET_WORD = "/reset"


@dataclass
class DialogRequest:
    """What ``vltk predict`` takes for a dialog model (its options; the CLI refuses the others).

    Attributes:
        inputs: the image files (the INPUT arguments); one round is played about each.
        question: the question asked about each image.
        caption: the caption the history starts with.
        beam_size: beam search of this width for a generative model; ``None``: the checkpoint's decoding.
        max_length: the longest generated answer; ``None``: the checkpoint's ``decoding.max_length``.
    """

    inputs: list[Path] = field(default_factory=list)
    question: str | None = None
    caption: str | None = None
    beam_size: int | None = None
    max_length: int | None = None


def open_session(
    answerer: DialogAnswerer,
    image: str | Path,
    caption: str = "",
    *,
    beam_size: int | None = None,
    max_length: int | None = None,
) -> DialogSession:
    """A :class:`DialogSession` about an image file.

    Args:
        answerer: the inference object (``vltk.from_pretrained(PATH)`` or ``system.inference()``).
        image: the image file (an unreadable one is named in the error).
        caption: the caption the history starts with (the dataset gives one per image; here the user does).
        beam_size: beam search of this width for a generative model (``None``: the checkpoint's decoding).
        max_length: longest generated answer (``None``: the checkpoint's ``decoding.max_length``).
    """
    return answerer.chat(load_image(image), caption, beam_size=beam_size, max_length=max_length)


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


def predict_dialog_lines(answerer: DialogAnswerer, request: DialogRequest) -> list[str]:
    """``vltk predict CKPT image.png --question Q [--caption C]``: one round per image (Rich markup)."""
    if not request.inputs:
        raise VltkError("dialog: name at least one image file to ask about")
    if request.question is None:
        raise VltkError("dialog: ask a question with --question, e.g. --question 'what colour is it?'")
    lines = []
    for path in request.inputs:
        session = open_session(
            answerer, path, request.caption or "", beam_size=request.beam_size, max_length=request.max_length
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
