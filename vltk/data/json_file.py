"""Reading a dataset's JSON file with errors that name the file, the problem and where it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vltk.errors import DataError


def read_json(path: str | Path, what: str = "annotation") -> Any:
    """The parsed contents of ``path``.

    Raises:
        DataError: ``PATH: <what> file not found``, ``PATH: not valid JSON (line L, column C: ...)`` or
            ``PATH: cannot read <what> file (...)``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read {what} file ({error})") from None


def shown_entry(entry: Any, limit: int = 120) -> str:
    """``repr(entry)`` cut to ``limit`` characters: a file's entry as an error message quotes it."""
    text = repr(entry)
    return text if len(text) <= limit else text[: limit - 3] + "..."
