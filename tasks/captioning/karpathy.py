"""Karpathy-split caption annotations (COCO, Flickr8k/30k, ``shapes``) and the caption datasets over them.

The format is the one released with Karpathy & Fei-Fei 2015, *Deep Visual-Semantic Alignments for
Generating Image Descriptions* (``dataset_coco.json``, ``dataset_flickr8k.json``)::

    {"images": [{"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg",
                 "split": "test", "cocoid": 391895, "imgid": 0,
                 "sentences": [{"tokens": ["a", "man", ...], "raw": "A man ...", ...}, ...]}, ...],
     "dataset": "coco"}

``split`` is one of ``train``, ``restval`` (the rest of COCO val2014, usually trained on), ``val`` and
``test``; ``filepath`` is absent for Flickr. :func:`read_karpathy_table` streams the file into a
:class:`vltk.tasks.captioning.caption_table.CaptionTable` (made once, in the vltk cache) and
:func:`read_karpathy` into :class:`CaptionRecord` lists; :class:`CaptionTrainDataset` yields one item per
(image, caption) pair and :class:`CaptionEvalDataset` one item per image with all of its references.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vltk.data.feature_cache import FeatureStore
from vltk.data.images import ImageTransform, default_image_transform
from vltk.data.json_file import iter_json_array, read_json
from vltk.errors import DataError
from vltk.tasks.captioning.batch import CaptionItem
from vltk.tasks.captioning.caption_table import (
    CaptionEncoder,
    CaptionRecord,
    CaptionTable,
    TableItem,
    cached_table,
)
from vltk.text.vocab import Vocabulary, tokenize

logger = logging.getLogger(__name__)


def parse_karpathy_entry(entry: Any, where: str, image_root: Path) -> tuple[str, CaptionRecord]:
    """One entry of a Karpathy JSON as ``(split, record)``; ``DataError`` naming ``where`` and the key."""
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected an object, got {type(entry).__name__}")
    for key in ("filename", "split"):
        if not isinstance(entry.get(key), str):
            raise DataError(f"{where}: missing or non-string key '{key}'")
    filepath = entry.get("filepath", "")
    if not isinstance(filepath, str):
        raise DataError(f"{where}: key 'filepath' must be a string, got {filepath!r}")
    image_id = entry.get("cocoid", entry.get("imgid"))
    if not isinstance(image_id, int) or isinstance(image_id, bool):
        raise DataError(f"{where}: needs an integer 'cocoid' or 'imgid', got {image_id!r}")
    sentences = entry.get("sentences")
    if not isinstance(sentences, list) or not sentences:
        raise DataError(f"{where}: key 'sentences' must be a non-empty list")
    tokens, raws = [], []
    for number, sentence in enumerate(sentences):
        if not isinstance(sentence, dict) or not isinstance(sentence.get("raw"), str):
            raise DataError(f"{where}.sentences[{number}]: expected an object with a string 'raw'")
        words = sentence.get("tokens")
        if words is None:
            words = tokenize(sentence["raw"])
        elif not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise DataError(f"{where}.sentences[{number}].tokens: expected a list of strings")
        tokens.append(words)
        raws.append(sentence["raw"])
    path = image_root / filepath / entry["filename"]
    return entry["split"], CaptionRecord(image_id=image_id, path=path, tokens=tokens, raws=raws)


KARPATHY_SHAPE = "a Karpathy-split JSON object with an 'images' list"


def read_karpathy_entries(path: Path) -> list:
    """The raw ``images`` list of a Karpathy-split JSON, parsed at once (``DataError`` naming the file if
    unreadable); :func:`karpathy_items` streams it instead."""
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise DataError(f"{path}: expected {KARPATHY_SHAPE}")
    return document["images"]


def karpathy_items(path: Path) -> Iterator[TableItem]:
    """The entries of a Karpathy-split JSON as table items (paths relative to the JSON's folder), streamed
    (:func:`vltk.data.json_file.iter_json_array`); ``DataError`` naming the file, the entry and the key."""
    entries = iter_json_array(path, "images", expected=KARPATHY_SHAPE)
    for index, entry in enumerate(entries):
        split, record = parse_karpathy_entry(entry, f"{path}: images[{index}]", Path(""))
        yield split, record.image_id, str(record.path), record.tokens, record.raws


def read_karpathy_table(
    annotations: str | Path, image_root: str | Path | None = None, cache_dir: Path | None = None
) -> CaptionTable:
    """Every image of a Karpathy-split JSON as a :class:`CaptionTable` (file order), written into the vltk
    cache on first use (:func:`vltk.tasks.captioning.caption_table.cached_table`).

    Args:
        annotations: the JSON file (``dataset_coco.json``, ``dataset_flickr8k.json``, ...).
        image_root: folder that ``filepath/filename`` are relative to (default: the JSON's folder).
        cache_dir: the cache root (default: ``$VLTK_CACHE/datasets``).

    Raises:
        DataError: the file is missing or not JSON, or an entry is malformed (the message names the file
            and the entry index and key), or two entries share an image id.
    """
    path = Path(annotations)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    table = cached_table(path, lambda: karpathy_items(path), cache_dir)
    if image_root is not None:
        table.image_root = Path(image_root).expanduser()
    logger.info(
        "read %s: %s",
        path,
        ", ".join(f"{name}={len(part)}" for name, part in table.splits().items()) or "no images",
    )
    return table


def read_karpathy(
    annotations: str | Path,
    image_root: str | Path | None = None,
    splits: Iterable[str] | None = None,
) -> dict[str, list[CaptionRecord]]:
    """Read a Karpathy-split JSON into records grouped by split (file order kept).

    Args:
        annotations: the JSON file (``dataset_coco.json``, ``dataset_flickr8k.json``, ...).
        image_root: folder that ``filepath/filename`` are relative to (default: the JSON's folder).
        splits: the splits to return (default: every split in the file); every entry is validated.

    Raises:
        DataError: as :func:`read_karpathy_table`.
    """
    table = read_karpathy_table(annotations, image_root)
    names = table.split_names if splits is None else list(splits)
    return {name: list(table.split(name)) for name in names}


class _CaptionDataset(Dataset[CaptionItem]):
    """Shared image loading, caching and caption encoding of the two caption datasets.

    Args:
        records: the split's images and captions: a :class:`CaptionTable` (read as it is: nothing per image
            is held but the table's rows) or a sequence of records (put into an in-memory table).
        vocab: encodes the captions (``<start> ... <end>``, unknown words -> ``<unk>``).
        transform: PIL image -> ``[3, H, W]`` tensor (default: :func:`default_image_transform`).
        max_length: captions longer than this many words are cut (``<end>`` kept).
        in_memory: keep transformed image tensors after the first read (small datasets).
        on_bad_sample: ``raise`` (default) or ``skip``: an unreadable image gives ``None``, which
            :func:`vltk.tasks.captioning.batch.collate_captions` drops and counts.

    A subclass says which image and caption an item shows (:meth:`_locate`); captions are encoded per item
    from the table's word ids (:class:`CaptionEncoder`: one lookup, each distinct word encoded once).
    """

    def __init__(
        self,
        records: Sequence[CaptionRecord],
        vocab: Vocabulary,
        transform: ImageTransform | None = None,
        max_length: int = 20,
        in_memory: bool = False,
        on_bad_sample: str = "raise",
    ) -> None:
        self.records = records if isinstance(records, CaptionTable) else CaptionTable.from_records(records)
        self.on_bad_sample = on_bad_sample
        self.vocab = vocab
        self.max_length = max_length
        self.in_memory = in_memory
        self._transform = transform if transform is not None else default_image_transform()
        self._cache: dict[int, Tensor] = {}
        self._encoder = CaptionEncoder(self.records.lexicon, vocab, max_length)

    def _locate(self, index: int) -> tuple[int, int]:
        """``(record index, caption row)`` of item ``index``."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> CaptionItem | None:
        record_index, caption_row = self._locate(index)
        image = self.readable_image(record_index)
        if image is None:
            return None
        caption = self._encoder(self.records.word_ids(caption_row))  # [T]
        return CaptionItem(
            image=image,
            caption=torch.from_numpy(caption),
            image_id=self.records.image_id(record_index),
            references=self.records.raws(record_index),
        )

    @property
    def transform(self) -> ImageTransform:
        return self._transform

    @transform.setter
    def transform(self, transform: ImageTransform) -> None:
        if transform is not self._transform:
            self._cache.clear()  # cached tensors were made by the old transform
        self._transform = transform

    def image(self, record_index: int) -> Tensor:
        """The transformed image ``[3, H, W]`` of record ``record_index`` (cached when ``in_memory``), or its
        cached grid ``[N, D]`` when the transform is a :class:`FeatureStore`."""
        if isinstance(self._transform, FeatureStore):  # a feature cache replaces decoding + the CNN
            return self._transform.lookup(self.records.image_id(record_index))  # [N, D]
        cached = self._cache.get(record_index)
        if cached is not None:
            return cached
        image = self._transform(self.records.load_image(record_index))  # [3, H, W]
        if self.in_memory:
            self._cache[record_index] = image
        return image

    def readable_image(self, record_index: int) -> Tensor | None:
        """:meth:`image`, or ``None`` for an unreadable image when ``on_bad_sample`` is ``skip``."""
        try:
            return self.image(record_index)
        except DataError as error:
            if self.on_bad_sample != "skip":
                raise DataError(f"{error} (data.on_bad_sample=skip skips unreadable samples)") from None
            logger.warning("skipping an unreadable sample (data.on_bad_sample=skip): %s", error)
            return None


class CaptionTrainDataset(_CaptionDataset):
    """One item per (image, caption) pair, for teacher-forced training (arguments: see the base class)."""

    @functools.cached_property
    def _first_item(self) -> np.ndarray:
        """``[records + 1]``: the first item of every record (its captions are consecutive items)."""
        return np.concatenate([[0], np.cumsum(self.records.caption_counts())]).astype(np.int64)

    def __len__(self) -> int:
        return int(self._first_item[-1])

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} of {len(self)}")
        record_index = int(np.searchsorted(self._first_item, index, side="right")) - 1
        return record_index, self.records.caption_row(
            record_index, index - int(self._first_item[record_index])
        )


class CaptionEvalDataset(_CaptionDataset):
    """One item per image: its first caption (for a validation loss) and all raws as references (arguments:
    :class:`_CaptionDataset`)."""

    def __len__(self) -> int:
        return len(self.records)

    def _locate(self, index: int) -> tuple[int, int]:
        return index, self.records.caption_row(index, 0)
