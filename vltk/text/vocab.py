"""Word vocabulary for captions, questions and dialogs, stored as a Hugging Face ``tokenizer.json``.

The tokenisation follows the convention of the Karpathy-split caption files and NeuralTalk
(Karpathy & Fei-Fei 2015, *Deep Visual-Semantic Alignments for Generating Image Descriptions*): text is
lower-cased, punctuation is deleted (``"man's"`` -> ``"mans"``, ``"t-shirt"`` -> ``"tshirt"``) and the
rest is split on white space. Words are mapped to ids by a ``tokenizers`` ``WordLevel`` model whose
first four ids are fixed::

    <pad> = 0    <start> = 1    <end> = 2    <unk> = 3

so that padding is always id 0 and a vocabulary restored from a checkpoint keeps the same special ids.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel

from vltk.errors import DataError

logger = logging.getLogger(__name__)

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, START, END, UNK)

# Punctuation (anything that is neither a word character nor white space) and underscores are deleted,
# as Python's ``str.translate(None, string.punctuation)`` does in the NeuralTalk preprocessing.
_PUNCTUATION = r"[^\w\s]|_"


def _normalizer() -> normalizers.Normalizer:
    return normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Lowercase(), normalizers.Replace(Regex(_PUNCTUATION), "")]
    )


def _new_tokenizer(words: Sequence[str]) -> Tokenizer:
    """A ``WordLevel`` tokenizer over the special tokens followed by ``words`` (ids in that order)."""
    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *words))}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tokenizer.normalizer = _normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{START} $A {END}", special_tokens=[(START, 1), (END, 2)]
    )
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return tokenizer


_DEFAULT_PIPELINE = _new_tokenizer(())


def tokenize(text: str) -> list[str]:
    """Lower-cased words of ``text`` with punctuation removed (the pipeline every new vocabulary uses).

    Readers call this before a vocabulary exists (for example to fill ``CaptionRecord.tokens`` from raw
    captions); :meth:`Vocabulary.tokenize` applies the pipeline stored in a loaded ``tokenizer.json``.
    """
    return _split(_DEFAULT_PIPELINE, text)


def _split(tokenizer: Tokenizer, text: str) -> list[str]:
    normalized = tokenizer.normalizer.normalize_str(text)
    return [word for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalized)]


class Vocabulary:
    """Word-level vocabulary with fixed special ids, backed by a ``tokenizers.Tokenizer``.

    Build one from training captions with :meth:`build`, restore one with :meth:`from_json` or
    :meth:`load`. Instances are immutable.

    Args:
        tokenizer: a ``WordLevel`` tokenizer whose ids 0..3 are ``<pad> <start> <end> <unk>``.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        model = tokenizer.model
        if not isinstance(model, WordLevel):
            raise DataError(f"expected a WordLevel tokenizer, got a {type(model).__name__} model")
        for expected_id, token in enumerate(SPECIAL_TOKENS):
            actual = tokenizer.token_to_id(token)
            if actual != expected_id:
                raise DataError(
                    f"tokenizer has special token {token!r} at id {actual}, expected id {expected_id} "
                    f"(special ids must be {', '.join(f'{t}={i}' for i, t in enumerate(SPECIAL_TOKENS))})"
                )
        self._tokenizer = tokenizer
        self._size = tokenizer.get_vocab_size(with_added_tokens=True)
        self._itos: list[str] = [tokenizer.id_to_token(i) for i in range(self._size)]
        self._special_ids = frozenset(range(len(SPECIAL_TOKENS)))

    # ---- construction -------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        *,
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Count words and keep the frequent ones, in a deterministic order.

        Words are ordered by count (descending), then alphabetically, so every process (every DDP rank)
        that sees the same captions builds the same vocabulary.

        Args:
            token_lists: one sequence of words per caption (they pass through the same normalisation as
                :meth:`tokenize`, so ``["A", "Dog."]`` counts as ``["a", "dog"]``).
            min_count: words seen fewer times are mapped to ``<unk>``.
            max_size: keep at most this many words, special tokens not counted (``None``: no limit).
        """
        return cls.from_counts(cls.count_words(token_lists), min_count=min_count, max_size=max_size)

    @staticmethod
    def count_words(token_lists: Iterable[Sequence[str]]) -> Counter[str]:
        """Word counts of the captions after normalisation (what :meth:`build` counts), special tokens
        left out; one pass, so ``token_lists`` may be a stream (e.g. the captions of sharded data)."""
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(_split(_DEFAULT_PIPELINE, " ".join(tokens)))
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        return counts

    @classmethod
    def from_counts(
        cls, counts: dict[str, int], *, min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """The vocabulary :meth:`build` makes from captions with these word counts (of
        :meth:`count_words`): ``build(captions) == from_counts(count_words(captions))``."""
        if min_count < 1:
            raise DataError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < 0:
            raise DataError(f"max_size must be >= 0 or None, got {max_size}")
        counts = {word: count for word, count in counts.items() if word not in SPECIAL_TOKENS}
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[:max_size]
        logger.info(
            "built a vocabulary of %d words (+%d special) from %d distinct words (min_count=%d)",
            len(kept),
            len(SPECIAL_TOKENS),
            len(counts),
            min_count,
        )
        return cls(_new_tokenizer(kept))

    @classmethod
    def from_words(cls, words: Sequence[str]) -> Vocabulary:
        """A vocabulary whose ids follow ``words`` after the four special tokens (no counting)."""
        return cls(_new_tokenizer([w for w in words if w not in SPECIAL_TOKENS]))

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        """Restore a vocabulary from a ``tokenizer.json`` string (see :meth:`to_json`)."""
        try:
            tokenizer = Tokenizer.from_str(text)
        except Exception as error:  # tokenizers raises a plain Exception on bad input
            raise DataError(f"not a valid tokenizer.json string: {error}") from error
        return cls(tokenizer)

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a ``tokenizer.json`` file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: vocabulary file not found (expected a tokenizer.json file)")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"{path}: cannot read vocabulary file: {error}") from error
        try:
            return cls.from_json(text)
        except DataError as error:
            raise DataError(f"{path}: {error}") from error

    def to_json(self) -> str:
        """The standard ``tokenizer.json`` string (loadable with ``tokenizers.Tokenizer.from_str``)."""
        return self._tokenizer.to_str()

    def save(self, path: str | Path) -> Path:
        """Write ``tokenizer.json`` to ``path`` (a file name, or a directory to put it in)."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    # ---- facts ----------------------------------------------------------------------------------------

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def start_id(self) -> int:
        return 1

    @property
    def end_id(self) -> int:
        return 2

    @property
    def unk_id(self) -> int:
        return 3

    @property
    def tokenizer(self) -> Tokenizer:
        """The underlying ``tokenizers.Tokenizer`` (do not modify it)."""
        return self._tokenizer

    @property
    def words(self) -> list[str]:
        """Every token in id order, special tokens first."""
        return list(self._itos)

    def __len__(self) -> int:
        return self._size

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._tokenizer.token_to_id(word) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._itos == other._itos

    def __hash__(self) -> int:
        return hash(tuple(self._itos))

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)})"

    def token_to_id(self, word: str) -> int:
        """The id of an already normalised ``word``; ``unk_id`` when it is not in the vocabulary."""
        index = self._tokenizer.token_to_id(word)
        return self.unk_id if index is None else index

    def id_to_token(self, index: int) -> str:
        if not 0 <= index < self._size:
            raise IndexError(f"token id {index} is outside the vocabulary (size {self._size})")
        return self._itos[index]

    # ---- text <-> ids ---------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """Lower-cased words of ``text`` with punctuation removed."""
        return _split(self._tokenizer, text)

    def encode(self, text_or_tokens: str | Sequence[str], add_special: bool = True) -> list[int]:
        """Ids of a sentence (``str``) or of already split words; unknown words become ``<unk>``.

        Args:
            text_or_tokens: raw text, or a sequence of words (normalised like :meth:`tokenize`).
            add_special: wrap the ids as ``<start> ... <end>``.
        """
        return self.encode_batch([text_or_tokens], add_special=add_special)[0]

    def encode_batch(
        self, texts_or_tokens: Sequence[str | Sequence[str]], add_special: bool = True
    ) -> list[list[int]]:
        """:meth:`encode` for many sentences at once (runs in the Rust tokenizer, in parallel)."""
        texts = [t for t in texts_or_tokens if isinstance(t, str)]
        if texts and len(texts) != len(texts_or_tokens):
            return [self.encode(t, add_special=add_special) for t in texts_or_tokens]
        is_pretokenized = not texts and len(texts_or_tokens) > 0
        items = [list(t) for t in texts_or_tokens] if is_pretokenized else list(texts_or_tokens)
        encodings = self._tokenizer.encode_batch(
            items, is_pretokenized=is_pretokenized, add_special_tokens=add_special
        )
        return [encoding.ids for encoding in encodings]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Words of ``ids`` joined by spaces.

        With ``skip_special`` (the default) decoding stops at the first ``<end>`` and ``<pad>`` /
        ``<start>`` are dropped; ``<unk>`` is kept so a reader sees that a word was unknown.
        """
        words: list[str] = []
        for raw in ids:
            index = int(raw)
            if skip_special:
                if index == self.end_id:
                    break
                if index in (self.pad_id, self.start_id):
                    continue
            words.append(self.id_to_token(index))
        return " ".join(words)
