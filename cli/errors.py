"""How every ``vltk`` command reports a user error: :func:`user_errors`.

A :class:`vltk.errors.VltkError` (a bad config key, a missing file, an unreadable image, a misspelt task) is
printed as one line on stderr and exits with status 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import functools

import typer
from rich.console import Console
from rich.markup import escape

from vltk.errors import VltkError, user_message

err_console = Console(stderr=True)


def user_errors(command):
    """Turn a :class:`VltkError` into one red line and exit status 2 (a run stopped by SIGTERM/SIGINT after
    saving its checkpoint exits 143/130, the shell's convention for those signals)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except VltkError as error:
            exit_code = getattr(error, "exit_code", 2)  # TrainingInterrupted: 128 + the signal's number
            label = "[bold yellow]stopped:[/]" if exit_code != 2 else "[bold red]error:[/]"
            # user_message: an error raised in a DataLoader worker is its one line, not the worker's traceback
            err_console.print(f"{label} {escape(user_message(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exit_code) from None

    return wrapper
