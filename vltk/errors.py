"""User-facing errors.

Anything a user can fix (a bad config key, a missing file, an unreadable image) raises a subclass of
:class:`VltkError` with a message that names the file, key or choice. The CLI prints the message on one
line and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VltkError(Exception):
    """Base class of errors caused by user input; the message is meant to be read by a person."""


class ConfigError(VltkError):
    """A config file or override is invalid (unknown key, wrong type, unknown choice)."""


class DataError(VltkError):
    """A dataset file, annotation or image is missing or malformed."""


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
