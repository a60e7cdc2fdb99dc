"""User-facing errors.

Anything a user can fix (a bad config key, a missing file, an unreadable image) raises a subclass of
:class:`VltkError` with a message that names the file, key or choice. The CLI prints the message on one
line and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class VltkError(Exception):
    """Base class of errors caused by user input; the message is meant to be read by a person."""


class ConfigError(VltkError):
    """A config file or override is invalid (unknown key, wrong type, unknown choice)."""


class DataError(VltkError):
    """A dataset file, annotation or image is missing or malformed."""


def user_message(error: VltkError) -> str:
    """The one line of ``error``, also when a DataLoader worker raised it.

    PyTorch re-raises a worker's exception in the main process as the same type with a message of several
    lines (``Caught DataError in DataLoader worker process 0.`` and the worker's traceback, whose last line
    is ``vltk.errors.DataError: <the message>``); this returns ``<the message>`` for those.
    """
    text = str(error)
    if not (text.startswith("Caught ") and "worker process" in text.split("\n", 1)[0]):
        return text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    name, _, message = lines[-1].partition(": ")
    return message if message and name.split(".")[-1] == type(error).__name__ else text


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The valid choice nearest to a misspelt ``word``, or ``None`` when nothing is close."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_choice_message(what: str, word: str, choices: Iterable[str]) -> str:
    """``unknown attention 'addtive'; did you mean 'additive'? (choices: additive, dot, general)``."""
    choices = sorted(choices)
    hint = closest(word, choices)
    did_you_mean = f"; did you mean '{hint}'?" if hint else ""
    return f"unknown {what} '{word}'{did_you_mean} (choices: {', '.join(choices)})"


def check_output_path(path: Path, what: str, *, directory: bool = False) -> None:
    """Fail before any work when ``path`` cannot be written: a file where a directory is wanted (or the
    other way round), or below a file."""
    if directory and path.exists() and not path.is_dir():
        raise VltkError(f"{what} {path} exists and is not a directory")
    if not directory and path.is_dir():
        raise VltkError(f"{what} {path} is a directory; name a file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise VltkError(f"cannot write {what} {path}: {parent} is a file, not a directory")
            break
