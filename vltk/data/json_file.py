"""Reading a dataset's JSON file with errors that name the file, the problem and where it is."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

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
        raise _invalid(path, error.lineno, error.colno, error.msg) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read {what} file ({error})") from None


def _invalid(path: Path, line: int, column: int, message: str) -> DataError:
    return DataError(f"{path}: not valid JSON (line {line}, column {column}: {message})")


def iter_json_array(
    path: str | Path, key: str, what: str = "annotation", expected: str | None = None
) -> Iterator[Any]:
    """The items of the array ``document[key]`` of the JSON object in ``path``, parsed one at a time.

    A 300,000-image Karpathy JSON parses into about 2 GB of Python objects at once (``json.loads``); read
    this way, only the item being parsed and a 1 MiB window of the text are held. The object's other values
    are parsed and dropped. Each item is parsed by ``json.JSONDecoder.raw_decode``, so items equal what
    :func:`read_json` gives.

    Raises:
        DataError: as :func:`read_json` (not found, not valid JSON with the line and column, unreadable),
            or ``PATH: expected EXPECTED`` (default: ``a JSON object whose 'KEY' is a list``) when the
            document is not an object or ``KEY`` is missing or not an array. Items before the error have
            been yielded already.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    shape_error = DataError(f"{path}: expected {expected or f'a JSON object whose {key!r} is a list'}")
    try:
        with path.open(encoding="utf-8") as handle:
            text = _StreamedJson(path, handle)
            if text.peek() != "{":
                raise shape_error
            text.advance()
            found = False
            while text.peek() != "}":
                if text.peek() != '"':
                    raise text.error("Expecting property name enclosed in double quotes")
                name = text.value()
                text.expect(":")
                if name == key:
                    if text.peek() != "[":
                        raise shape_error
                    found = True
                    yield from text.array_items()
                else:
                    text.value()
                if text.peek() == ",":
                    text.advance()
                    if text.peek() != '"':  # no trailing comma before "}"
                        raise text.error("Expecting property name enclosed in double quotes")
                elif text.peek() != "}":
                    raise text.error("Expecting ',' delimiter")
            text.advance()
            if text.peek():
                raise text.error("Extra data")
            if not found:
                raise shape_error
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read {what} file ({error})") from None


class _StreamedJson:
    """A window onto a JSON text read in chunks: skip whitespace, look at the next character, parse the next
    value (reading on when the value runs past the window), and say where an error is (line, column)."""

    CHUNK = 1 << 20  # characters read at a time
    _SPACE = re.compile(r"[ \t\n\r]*")

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self.handle = handle
        self.buffer = ""
        self.pos = 0  # into buffer
        self.lines_before = 0  # newlines in the text dropped from the front of the buffer
        self.column_before = 0  # characters after the last dropped newline
        self.eof = False
        self.decoder = json.JSONDecoder()

    def _read_more(self) -> bool:
        """Append the next chunk (dropping what was parsed already); ``False`` at the end of the file."""
        if self.eof:
            return False
        # At least as much as is held: a value longer than the window is read in doubling steps (linear).
        chunk = self.handle.read(max(self.CHUNK, len(self.buffer) - self.pos))
        if not chunk:
            self.eof = True
            return False
        dropped = self.buffer[: self.pos]
        newlines = dropped.count("\n")
        if newlines:
            self.lines_before += newlines
            self.column_before = len(dropped) - dropped.rfind("\n") - 1
        else:
            self.column_before += len(dropped)
        self.buffer = self.buffer[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character after whitespace (``""`` at the end of the file)."""
        while True:
            self.pos = self._SPACE.match(self.buffer, self.pos).end()
            if self.pos < len(self.buffer) or not self._read_more():
                return self.buffer[self.pos : self.pos + 1]

    def advance(self) -> None:
        self.pos += 1

    def expect(self, character: str) -> None:
        if self.peek() != character:
            raise self.error(f"Expecting '{character}' delimiter")
        self.advance()

    def value(self) -> Any:
        """The next JSON value."""
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as error:
                if self._read_more():
                    continue
                raise self.error(error.msg, error.pos) from None
            if end == len(self.buffer) and self._read_more():
                continue  # a number at the window's end may go on in the next chunk
            self.pos = end
            return value

    def array_items(self) -> Iterator[Any]:
        """The items of the array that starts at the next ``[``, one at a time."""
        self.expect("[")
        if self.peek() == "]":
            self.advance()
            return
        while True:
            yield self.value()
            if self.peek() == "]":
                self.advance()
                return
            self.expect(",")

    def error(self, message: str, pos: int | None = None) -> DataError:
        """``PATH: not valid JSON (line L, column C: MESSAGE)`` for ``pos`` in the window (default: here)."""
        pos = self.pos if pos is None else pos
        newlines = self.buffer.count("\n", 0, pos)
        line = self.lines_before + newlines + 1
        if newlines:
            column = pos - self.buffer.rfind("\n", 0, pos)
        else:
            column = self.column_before + pos + 1
        return _invalid(self.path, line, column, message)


def shown_entry(entry: Any, limit: int = 120) -> str:
    """``repr(entry)`` cut to ``limit`` characters: a file's entry as an error message quotes it."""
    text = repr(entry)
    return text if len(text) <= limit else text[: limit - 3] + "..."
