"""Caption records, and the same records as flat arrays memory-mapped from disk (a :class:`CaptionTable`):
what a split costs in memory stays flat as the data grows.

A list of :class:`CaptionRecord` (one image with its references, from any caption format) costs about 7.7 KB
of Python objects per image (its path, five captions as word lists and as raw strings): 2.3 GB for 300,000
images, in every DataLoader worker. A :class:`CaptionTable` holds the same records as nine flat arrays (one
file each, memory-mapped: the pages read are shared file cache, not the process's own memory) and a ``rows``
selection (a split, a role, a ``max_images`` cut): 8 bytes an image of private memory. It is a
``Sequence[CaptionRecord]`` (``table[i]`` builds the record on demand) and offers what the caption datasets
need without building records: the image id, the number of captions, a caption's word ids and the raws.

The layout of a table folder (``table.json``, with the split names and the lexicon, is written last and
marks it complete)::

    image_ids.bin       int64 [I]       the dataset's image ids, file order
    split_codes.bin     int16 [I]       index into table.json's "splits"
    path_offsets.bin    int64 [I + 1]   image i's path is path_bytes[path_offsets[i]:path_offsets[i + 1]]
    path_bytes.bin      uint8           UTF-8 paths relative to the image root
    caption_offsets.bin int64 [I + 1]   image i's captions are caption rows caption_offsets[i]:[i + 1]
    word_offsets.bin    int64 [C + 1]   caption c's words are word_ids[word_offsets[c]:[c + 1]]
    word_ids.bin        int32 [W]       indices into table.json's "lexicon" (distinct words, first seen first)
    raw_offsets.bin     int64 [C + 1]   caption c's raw text is raw_bytes[raw_offsets[c]:[c + 1]]
    raw_bytes.bin       uint8           UTF-8

:func:`write_table` streams items into a folder (only the lexicon and 64k-item buffers are held while
writing); :func:`cached_table` does it once per annotation file into the vltk cache, safely from several
processes (:func:`vltk.data.generate_once.generate_once`).
"""

from __future__ import annotations

import array
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, overload

import numpy as np
from PIL import Image

from vltk.data.cache import default_cache_dir
from vltk.data.feature_cache import file_sha256
from vltk.data.generate_once import generate_once, params_digest
from vltk.data.images import load_image, to_rgb
from vltk.errors import DataError
from vltk.text.vocab import Vocabulary

TABLE_VERSION = 1
TABLE_MARKER = "table.json"
ARRAYS = {
    "image_ids": np.int64,
    "split_codes": np.int16,
    "path_offsets": np.int64,
    "path_bytes": np.uint8,
    "caption_offsets": np.int64,
    "word_offsets": np.int64,
    "word_ids": np.int32,
    "raw_offsets": np.int64,
    "raw_bytes": np.uint8,
}
_TYPECODES = {np.int64: "q", np.int16: "h", np.int32: "i"}
FLUSH_ITEMS = 65_536  # array items buffered per file before they are written
ROWS_PER_PASS = 4_096  # images whose words are gathered at a time when counting


ImageSource = Callable[[], Image.Image]


@dataclass
class CaptionRecord:
    """One image with its reference captions, read from any caption format.

    Attributes:
        image_id: the dataset's id of the image (``cocoid``, ``imgid`` or a row index).
        path: the image file, or ``None`` for images held by a dataset in memory.
        tokens: per reference caption, its words (lower case, no punctuation).
        raws: per reference caption, the raw text (used as references by the metrics).
        source: for in-memory images, a callable returning the ``PIL`` image (``path`` is then unused).
    """

    image_id: int
    path: Path | None
    tokens: list[list[str]]
    raws: list[str]
    source: ImageSource | None = None

    def __post_init__(self) -> None:
        if not self.raws or len(self.tokens) != len(self.raws):
            raise DataError(
                f"image {self.image_id}: needs at least one caption and as many token lists as raw "
                f"captions (got {len(self.tokens)} token lists, {len(self.raws)} raws)"
            )

    def load_image(self) -> Image.Image:
        """The image as an RGB ``PIL`` image (from ``source`` when set, else from ``path``)."""
        return load_caption_image(self.image_id, self.path, self.source)


class _TableWriter:
    """Appends records to the nine arrays of a table (``sinks``: one binary file or buffer per array; the
    offset arrays start with their 0)."""

    def __init__(self, sinks: dict[str, BinaryIO]) -> None:
        self.files = sinks
        self.buffers = {
            name: array.array(_TYPECODES[dtype]) for name, dtype in ARRAYS.items() if dtype is not np.uint8
        }
        self.lexicon: dict[str, int] = {}
        self.splits: dict[str, int] = {}
        self.ends = {"path": 0, "caption": 0, "word": 0, "raw": 0}
        for name in ("path_offsets", "caption_offsets", "word_offsets", "raw_offsets"):
            self.buffers[name].append(0)

    def add(self, split: str, image_id: int, path: str, tokens: list[list[str]], raws: list[str]) -> None:
        code = self.splits.setdefault(split, len(self.splits))
        if code > np.iinfo(np.int16).max:
            raise DataError(f"more than {np.iinfo(np.int16).max + 1} split names (the last: '{split}')")
        self.buffers["image_ids"].append(image_id)
        self.buffers["split_codes"].append(code)
        self._bytes("path", path)
        for words, raw in zip(tokens, raws, strict=True):
            ids = self.buffers["word_ids"]
            for word in words:
                ids.append(self.lexicon.setdefault(word, len(self.lexicon)))
            self.ends["word"] += len(words)
            self.buffers["word_offsets"].append(self.ends["word"])
            self._bytes("raw", raw)
        self.ends["caption"] += len(raws)
        self.buffers["caption_offsets"].append(self.ends["caption"])
        if len(self.buffers["word_ids"]) >= FLUSH_ITEMS:
            self.flush()

    def _bytes(self, kind: str, text: str) -> None:
        data = text.encode("utf-8")
        self.files[f"{kind}_bytes"].write(data)
        self.ends[kind] += len(data)
        self.buffers[f"{kind}_offsets"].append(self.ends[kind])

    def flush(self) -> None:
        for name, buffer in self.buffers.items():
            self.files[name].write(buffer.tobytes())
            del buffer[:]

    def meta(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {"version": TABLE_VERSION, **extra, "splits": list(self.splits), "lexicon": list(self.lexicon)}


TableItem = tuple[str, int, str, list[list[str]], list[str]]
"""``(split, image_id, path relative to the image root, tokens, raws)``: one image as a table stores it."""


def write_table(folder: Path, items: Iterable[TableItem], meta: dict[str, Any]) -> None:
    """Stream ``items`` into the table ``folder`` (the nine files, then ``table.json``) after checking that
    no image id repeats (``DataError`` naming both positions in ``meta["source"]``, the file read)."""
    files = {name: (folder / f"{name}.bin").open("wb") for name in ARRAYS}
    try:
        writer = _write_items(files, items)  # type: ignore[arg-type]
    finally:
        for handle in files.values():
            handle.close()
    _check_unique_ids(_open_array(folder, "image_ids"), meta.get("source", folder))
    (folder / TABLE_MARKER).write_text(json.dumps(writer.meta(meta)), encoding="utf-8")


def _write_items(sinks: dict[str, BinaryIO], items: Iterable[TableItem]) -> _TableWriter:
    """Every item into ``sinks`` (flushed); the writer, for its lexicon and split names."""
    writer = _TableWriter(sinks)
    for item in items:
        writer.add(*item)
    writer.flush()
    return writer


def _check_unique_ids(ids: np.ndarray, source: Any) -> None:
    """``DataError`` at the first image (in file order) whose id an earlier image has, naming both."""
    order = np.argsort(ids, kind="stable")  # [I]: equal ids in file order
    in_order = ids[order]  # [I]
    repeats = np.flatnonzero(in_order[1:] == in_order[:-1]) + 1  # positions (sorted) of later copies
    if len(repeats):
        second = int(order[repeats].min())
        first = int(order[np.searchsorted(in_order, ids[second])])
        raise DataError(
            f"{source}: images[{second}]: duplicate image id {int(ids[second])} (also images[{first}])"
        )


def _open_array(folder: Path, name: str) -> np.ndarray:
    path = folder / f"{name}.bin"
    if path.stat().st_size == 0:
        return np.empty(0, dtype=ARRAYS[name])
    return np.memmap(path, dtype=ARRAYS[name], mode="r")


class CaptionTable(Sequence[CaptionRecord]):
    """The records of a table (see the module docstring), a selection ``rows`` of them.

    Args:
        folder: the table folder (``table.json`` and the nine arrays), memory-mapped.
        image_root: the folder the stored relative paths are under.
        rows: the image rows this table shows, in order (default: all, in file order).

    :meth:`from_records` makes one in memory instead (no folder). Pickling (to DataLoader workers) sends the
    folder, the root and the rows, and each process maps the files itself; an in-memory table sends its
    arrays.
    """

    def __init__(self, folder: str | Path, image_root: str | Path, rows: np.ndarray | None = None) -> None:
        self.folder: Path | None = Path(folder)
        meta = json.loads((self.folder / TABLE_MARKER).read_text(encoding="utf-8"))
        self._init(meta, image_root, {}, None, rows)

    def _init(self, meta: dict[str, Any], image_root: str | Path, arrays: dict[str, np.ndarray],
              sources: list[Any] | None, rows: np.ndarray | None) -> None:  # fmt: skip
        self.meta = meta
        self.lexicon: list[str] = meta["lexicon"]
        self.split_names: list[str] = meta["splits"]
        self.image_root = Path(image_root)
        self._arrays = arrays
        self.sources = sources  # per file row, the in-memory image source (or None)
        total = len(self._array("image_ids"))
        self.rows = np.arange(total, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)  # [len]

    @classmethod
    def from_records(cls, records: Sequence[CaptionRecord]) -> CaptionTable:
        """A table in memory of ``CaptionRecord`` s (an HF dataset's, a test's; ``source`` images kept)."""
        sinks = {name: io.BytesIO() for name in ARRAYS}
        items = (("all", r.image_id, str(r.path or ""), r.tokens, r.raws) for r in records)
        writer = _write_items(sinks, items)  # type: ignore[arg-type]
        arrays = {name: np.frombuffer(sinks[name].getvalue(), dtype=ARRAYS[name]) for name in ARRAYS}
        _check_unique_ids(arrays["image_ids"], "records")
        sources = [record.source for record in records]
        table = cls.__new__(cls)
        table.folder = None
        table._init(writer.meta({"source": "records"}), "", arrays, sources if any(sources) else None, None)
        return table

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self.folder is not None:
            state["_arrays"] = {}  # each process maps the files itself
        return state

    def _array(self, name: str) -> np.ndarray:
        values = self._arrays.get(name)
        if values is None:
            assert self.folder is not None
            values = self._arrays[name] = _open_array(self.folder, name)
        return values

    # ---- selections -------------------------------------------------------------------------------------

    def select(self, rows: np.ndarray) -> CaptionTable:
        """The same table showing ``rows`` (file rows)."""
        chosen = CaptionTable.__new__(CaptionTable)
        chosen.__dict__.update(self.__dict__, _arrays=dict(self._arrays), rows=np.asarray(rows, np.int64))
        return chosen

    def split(self, name: str) -> CaptionTable:
        """The images of split ``name`` in file order (empty when the table has no such split)."""
        if name not in self.split_names:
            return self.select(np.empty(0, dtype=np.int64))
        codes = self._array("split_codes")[self.rows]  # [len]
        return self.select(self.rows[codes == self.split_names.index(name)])

    def splits(self) -> dict[str, CaptionTable]:
        """Every split of the table by name, in the order first seen."""
        return {name: self.split(name) for name in self.split_names}

    @staticmethod
    def concat(tables: Sequence[CaptionTable]) -> CaptionTable:
        """One table showing the rows of ``tables`` (all of one folder) in turn."""
        if len({id(t._array("image_ids")) if t.folder is None else t.folder for t in tables}) != 1:
            raise ValueError("only tables of one folder can be joined")
        return tables[0].select(np.concatenate([table.rows for table in tables]))

    # ---- the Sequence of records ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> CaptionRecord: ...
    @overload
    def __getitem__(self, index: slice) -> CaptionTable: ...
    def __getitem__(self, index: int | slice) -> CaptionRecord | CaptionTable:  # type: ignore[override]
        if isinstance(index, slice):
            return self.select(self.rows[index])
        row = int(self.rows[index])
        captions = range(*self._caption_range(row))
        return CaptionRecord(
            image_id=int(self._array("image_ids")[row]),
            path=self.path(index),
            tokens=[[self.lexicon[i] for i in self.word_ids(c).tolist()] for c in captions],
            raws=[self._raw(c) for c in captions],
            source=None if self.sources is None else self.sources[row],
        )

    def __iter__(self) -> Iterator[CaptionRecord]:
        for index in range(len(self)):
            yield self[index]

    # ---- what the datasets read without building records ----------------------------------------------

    def image_ids(self) -> np.ndarray:
        """``[len]``: the image id of every row shown."""
        return np.asarray(self._array("image_ids")[self.rows])

    def image_id(self, index: int) -> int:
        return int(self._array("image_ids")[self.rows[index]])

    def path(self, index: int) -> Path | None:
        """The image file of the row at ``index`` (``None`` for an image held in memory)."""
        offsets = self._array("path_offsets")
        row = int(self.rows[index])
        text = bytes(self._array("path_bytes")[offsets[row] : offsets[row + 1]]).decode("utf-8")
        return self.image_root / text if text else None

    def load_image(self, index: int) -> Image.Image:
        """The RGB image of the row at ``index`` (see :func:`load_caption_image`)."""
        source = None if self.sources is None else self.sources[int(self.rows[index])]
        return load_caption_image(self.image_id(index), self.path(index), source)

    def caption_counts(self) -> np.ndarray:
        """``[len]``: the number of captions of every row shown."""
        offsets = self._array("caption_offsets")
        return np.asarray(offsets[self.rows + 1] - offsets[self.rows])

    def caption_row(self, index: int, caption: int = 0) -> int:
        """The caption row of the ``caption``-th caption of the image at ``index``."""
        return int(self._array("caption_offsets")[self.rows[index]]) + caption

    def word_ids(self, caption_row: int) -> np.ndarray:
        """``[n]`` int32: the lexicon indices of one caption's words."""
        offsets = self._array("word_offsets")
        return np.asarray(self._array("word_ids")[offsets[caption_row] : offsets[caption_row + 1]])

    def raws(self, index: int) -> list[str]:
        """The raw captions of the image at ``index`` (the metrics' references)."""
        return [self._raw(c) for c in range(*self._caption_range(int(self.rows[index])))]

    def _caption_range(self, row: int) -> tuple[int, int]:
        offsets = self._array("caption_offsets")
        return int(offsets[row]), int(offsets[row + 1])

    def _raw(self, caption_row: int) -> str:
        offsets = self._array("raw_offsets")
        return bytes(self._array("raw_bytes")[offsets[caption_row] : offsets[caption_row + 1]]).decode()

    def word_counts(self) -> Counter[str]:
        """What :meth:`Vocabulary.count_words` counts over every caption of the rows shown (counted per
        lexicon word, :data:`ROWS_PER_PASS` images at a time, so memory stays bounded)."""
        per_word = np.zeros(len(self.lexicon), dtype=np.int64)  # [lexicon]
        caption_offsets, word_offsets = self._array("caption_offsets"), self._array("word_offsets")
        word_ids = self._array("word_ids")
        for start in range(0, len(self.rows), ROWS_PER_PASS):
            rows = self.rows[start : start + ROWS_PER_PASS]
            first, last = word_offsets[caption_offsets[rows]], word_offsets[caption_offsets[rows + 1]]
            if np.all(rows[1:] == rows[:-1] + 1):  # consecutive rows: one slice
                chunk = word_ids[first[0] : last[-1]]
            else:
                chunk = np.concatenate([word_ids[a:b] for a, b in zip(first, last, strict=True)])
            per_word += np.bincount(chunk, minlength=len(self.lexicon))
        counts: Counter[str] = Counter()
        for word, count in zip(self.lexicon, per_word.tolist(), strict=True):
            if count:
                for normalized, times in Vocabulary.count_words([[word]]).items():
                    counts[normalized] += times * count
        return counts

    def __repr__(self) -> str:
        where = self.folder if self.folder is not None else "memory"
        return f"CaptionTable({where}, {len(self)} of {len(self._array('image_ids'))} images)"


class CaptionEncoder:
    """Caption rows of a table -> vocabulary ids ``<start> w1 .. wn <end>`` with at most ``max_length``
    words, equal to ``truncate_caption(vocab.encode(words), max_length, end_id)`` (each lexicon word is
    encoded once: a pre-tokenized caption is encoded word by word anyway)."""

    def __init__(self, lexicon: Sequence[str], vocab: Vocabulary, max_length: int) -> None:
        if max_length < 1:
            raise DataError(f"max_caption_length must be >= 1, got {max_length}")
        per_word = vocab.encode_batch([[word] for word in lexicon], add_special=False) if lexicon else []
        self.single = all(len(ids) == 1 for ids in per_word)
        self.lookup = np.array([ids[0] if len(ids) == 1 else -1 for ids in per_word], dtype=np.int64)
        self.per_word = None if self.single else per_word
        self.start, self.end, self.max_length = vocab.start_id, vocab.end_id, max_length

    def __call__(self, word_ids: np.ndarray) -> np.ndarray:
        """``[n]`` lexicon indices -> ``[T]`` int64 vocabulary ids."""
        if self.single:
            words = self.lookup[word_ids]  # [n]
        else:
            assert self.per_word is not None
            words = np.array([i for w in word_ids.tolist() for i in self.per_word[w]], dtype=np.int64)
        ids = np.empty(min(len(words), self.max_length) + 2, dtype=np.int64)  # [T]
        ids[0], ids[-1] = self.start, self.end
        ids[1:-1] = words[: self.max_length]
        return ids


def cached_table(
    source: Path, items: Callable[[], Iterable[TableItem]], cache_dir: Path | None = None
) -> CaptionTable:
    """The table of the annotation file ``source`` (all rows; paths relative to the file's folder until a
    caller gives another root), written once from ``items()`` into ``<cache>/caption-tables/<stem>-<digest>``
    (the digest of the file's SHA-256 and the table version: an edited file gets a new table, whatever its
    size and modification time; hashing reads the file once, about 0.4 s for 200 MB; ``cache_dir``
    default: :func:`vltk.data.cache.default_cache_dir`)."""
    try:
        key = {"sha256": file_sha256(source), "version": TABLE_VERSION}
    except OSError as error:
        raise DataError(f"{source}: cannot read annotation file ({error})") from None
    root = (cache_dir or default_cache_dir()) / "caption-tables"
    meta = {"source": str(source), **key}
    folder = generate_once(
        root,
        f"{source.stem}-{params_digest(key)}",
        TABLE_MARKER,
        lambda work: write_table(work, items(), meta),
        what=f"caption table of {source.name}",
    )
    return CaptionTable(folder, image_root=source.parent)


def load_caption_image(
    image_id: int, path: Path | None, source: Callable[[], Image.Image] | None
) -> Image.Image:
    """A caption record's image as an RGB ``PIL`` image: from ``source`` when set, else from ``path``."""
    if source is not None:
        return to_rgb(source(), source=f"image {image_id}")
    if path is None:
        raise DataError(f"image {image_id}: the record has neither a path nor an in-memory image")
    return load_image(path)
