"""Symbol vocabularies for language modelling: every character (char level) or word/punctuation (word level).

Unlike the caption :class:`vltk.text.Vocabulary`, nothing is normalised: a char-level model must see and
reproduce case, spaces, tabs and newlines exactly, so the vocabulary is the sorted set of characters in the
training text (Karpathy's min-char-rnn does the same). Word level splits into words, punctuation marks and
newlines and decodes by joining with spaces (newlines kept). Symbols never seen in training map to ``<unk>``.
Saved in checkpoints as a small JSON document.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Literal

from vltk.errors import DataError

UNK = "<unk>"
_WORDS = re.compile(r"\w+|[^\w\s]|\n")
Level = Literal["char", "word"]


def split_symbols(text: str, level: Level) -> list[str]:
    """``list(text)`` at char level; words, punctuation marks and newlines at word level."""
    return list(text) if level == "char" else _WORDS.findall(text)


class SymbolVocabulary:
    """A fixed list of symbols, ``<unk>`` first.

    Args:
        symbols: the symbols (without ``<unk>``), in id order starting at 1.
        level: ``char`` or ``word``.
    """

    def __init__(self, symbols: Sequence[str], level: Level = "char"):
        if level not in ("char", "word"):
            raise DataError(f"vocabulary level must be 'char' or 'word', got {level!r}")
        self.level = level
        self.symbols = [UNK, *[s for s in symbols if s != UNK]]
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def build(
        cls, text: str, level: Level = "char", *, max_size: int | None = None, min_count: int = 1
    ) -> SymbolVocabulary:
        """The vocabulary of ``text``: symbols seen ``min_count`` times, the ``max_size`` most frequent."""
        counts = Counter(split_symbols(text, level))
        kept = [(s, n) for s, n in counts.items() if n >= min_count]
        if max_size is not None:
            kept = sorted(kept, key=lambda item: (-item[1], item[0]))[:max_size]
        return cls(sorted(s for s, _ in kept), level)

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def unk_id(self) -> int:
        return 0

    def encode(self, text: str) -> list[int]:
        return [self.index.get(s, 0) for s in split_symbols(text, self.level)]

    def unknown(self, text: str) -> list[str]:
        """The symbols of ``text`` that are not in the vocabulary (in order of first appearance)."""
        seen = dict.fromkeys(s for s in split_symbols(text, self.level) if s not in self.index)
        return list(seen)

    def decode(self, ids: Iterable[int]) -> str:
        symbols = [self.symbols[i] for i in ids]
        if self.level == "char":
            return "".join(symbols)
        return " ".join(symbols).replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n")

    def to_json(self) -> str:
        return json.dumps({"level": self.level, "symbols": self.symbols[1:]}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> SymbolVocabulary:
        data = json.loads(text)
        return cls(data["symbols"], data["level"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SymbolVocabulary) and (self.level, self.symbols) == (
            other.level,
            other.symbols,
        )

    def __hash__(self) -> int:
        return hash((self.level, tuple(self.symbols)))

    def __repr__(self) -> str:
        return f"SymbolVocabulary(level={self.level!r}, size={len(self)})"
