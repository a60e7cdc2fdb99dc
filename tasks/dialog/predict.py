"""Talking to a dialog checkpoint about one image: ``vltk chat CKPT image.png`` and ``vltk predict``.

The conversation itself is :class:`vltk.tasks.dialog.session.DialogSession` (plain torch); this module
builds it from a loaded system (the lengths the model was trained with, the config's ``decoding``, the
checkpoint's answer bank) and runs the chat loop over lines of input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from rich.markup import escape

from vltk.config import to_dict
from vltk.data.images import load_image
from vltk.errors import VltkError
from vltk.tasks.dialog.session import DialogAnswer, DialogSession, session_settings
from vltk.tasks.training import PredictRequest

QUIT_WORDS = frozenset({"quit", "exit", "/quit", "/exit", ":q"})
RESET_WORD = "/reset"


def open_session(
    system,
    image: str | Path,
    caption: str = "",
    *,
    beam_size: int | None = None,
    max_length: int | None = None,
) -> DialogSession:
    """A :class:`DialogSession` with a loaded :class:`vltk.tasks.dialog.system.DialogTask` about an image
    file.

    Args:
        system: the loaded system (``vltk.tasks.runner.load_system``).
        image: the image file (an unreadable one is named in the error).
        caption: the caption the history starts with (the dataset gives one per image; here the user does).
        beam_size: beam width of a generative model (``None``: the config's ``decoding.beam_size``).
        max_length: longest generated answer (``None``: the config's ``decoding.max_length``).
    """
    settings = session_settings(to_dict(system.config))
    if beam_size is not None:
        settings["beam_size"] = beam_size
    if max_length is not None:
        settings["max_length"] = max_length
    return DialogSession(
        system.model, system.vocab, load_image(image), caption, answers=system.answers, **settings
    )


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
    """``vltk predict CKPT image.png --question Q [--caption C]``: one round per image (Rich markup)."""
    if not request.inputs:
        raise VltkError("dialog: name at least one image file to ask about")
    if request.question is None:
        raise VltkError("dialog: ask a question with --question, e.g. --question 'what colour is it?'")
    lines = []
    for path in request.inputs:
        session = open_session(
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
