"""Karpathy-split caption annotations (COCO, Flickr8k/30k, ``shapes``) and the caption datasets over them.

The format is the one released with Karpathy & Fei-Fei 2015, *Deep Visual-Semantic Alignments for
Generating Image Descriptions* (``dataset_coco.json``, ``dataset_flickr8k.json``)::

    {"images": [{"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg",
                 "split": "test", "cocoid": 391895, "imgid": 0,
                 "sentences": [{"tokens": ["a", "man", ...], "raw": "A man ...", ...}, ...]}, ...],
     "dataset": "coco"}

``split`` is one of ``train``, ``restval`` (the rest of COCO val2014, usually trained on), ``val`` and
``test``; ``filepath`` is absent for Flickr. :func:`read_karpathy` turns the file into
:class:`CaptionRecord` lists; :class:`CaptionTrainDataset` yields one item per (image, caption) pair and
:class:`CaptionEvalDataset` one item per image with all of its references.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from vltk.data.feature_cache import FeatureStore
from vltk.data.images import ImageTransform, default_image_transform, load_image, to_rgb
from vltk.data.json_file import read_json
from vltk.errors import DataError
from vltk.tasks.captioning.batch import CaptionItem, truncate_caption
from vltk.text.vocab import Vocabulary, tokenize

logger = logging.getLogger(__name__)

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
        if self.source is not None:
            return to_rgb(self.source(), source=f"image {self.image_id}")
        if self.path is None:
            raise DataError(f"image {self.image_id}: the record has neither a path nor an in-memory image")
        return load_image(self.path)


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


def read_karpathy_entries(path: Path) -> list:
    """The raw ``images`` list of a Karpathy-split JSON (``DataError`` naming the file if unreadable)."""
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise DataError(f"{path}: expected a Karpathy-split JSON object with an 'images' list")
    return document["images"]


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
        DataError: the file is missing or not JSON, or an entry is malformed (the message names the file
            and the entry index and key), or two entries share an image id.
    """
    path = Path(annotations)
    entries = read_karpathy_entries(path)
    root = Path(image_root).expanduser() if image_root is not None else path.parent
    wanted = None if splits is None else set(splits)
    grouped: dict[str, list[CaptionRecord]] = {name: [] for name in wanted or ()}
    first_index: dict[int, int] = {}
    for index, entry in enumerate(entries):
        where = f"{path}: images[{index}]"
        split, record = parse_karpathy_entry(entry, where, root)
        if record.image_id in first_index:
            raise DataError(
                f"{where}: duplicate image id {record.image_id} (also images[{first_index[record.image_id]}])"
            )
        first_index[record.image_id] = index
        if wanted is None or split in wanted:
            grouped.setdefault(split, []).append(record)
    logger.info(
        "read %s: %s",
        path,
        ", ".join(f"{name}={len(items)}" for name, items in grouped.items()) or "no images",
    )
    return grouped


class _CaptionDataset(Dataset[CaptionItem]):
    """Shared image loading, caching and caption encoding of the two caption datasets.

    Args:
        records: the split's images and captions.
        vocab: encodes the captions (``<start> ... <end>``, unknown words -> ``<unk>``).
        transform: PIL image -> ``[3, H, W]`` tensor (default: :func:`default_image_transform`).
        max_length: captions longer than this many words are cut (``<end>`` kept).
        in_memory: keep transformed image tensors after the first read (small datasets).
        on_bad_sample: ``raise`` (default) or ``skip``: an unreadable image gives ``None``, which
            :func:`vltk.tasks.captioning.batch.collate_captions` drops and counts.

    A subclass says which captions it serves (:meth:`_captions`), encoded once into a flat id array.
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
        self.records = list(records)
        self.on_bad_sample = on_bad_sample
        self.vocab = vocab
        self.max_length = max_length
        self.in_memory = in_memory
        self._transform = transform if transform is not None else default_image_transform()
        self._cache: dict[int, Tensor] = {}
        self._flat, self._offsets = self._encode(self._captions())

    def _captions(self) -> list[list[str]]:
        """The tokenised captions this dataset serves, in item order."""
        raise NotImplementedError

    def _record_index(self, index: int) -> int:
        """The record that item ``index`` shows."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> CaptionItem | None:
        record_index = self._record_index(index)
        image = self.readable_image(record_index)
        if image is None:
            return None
        record = self.records[record_index]
        return CaptionItem(
            image=image,
            caption=self._caption(self._flat, self._offsets, index),
            image_id=record.image_id,
            references=record.raws,
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
            return self._transform.lookup(self.records[record_index].image_id)  # [N, D]
        cached = self._cache.get(record_index)
        if cached is not None:
            return cached
        image = self._transform(self.records[record_index].load_image())  # [3, H, W]
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

    def _encode(self, token_lists: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Encoded, truncated captions as one flat id array plus offsets (compact, fork-friendly)."""
        encoded = [
            truncate_caption(ids, self.max_length, self.vocab.end_id)
            for ids in self.vocab.encode_batch(token_lists, add_special=True)
        ]
        lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.fromiter((i for ids in encoded for i in ids), dtype=np.int64, count=int(lengths.sum()))
        return flat, offsets

    def _caption(self, flat: np.ndarray, offsets: np.ndarray, index: int) -> Tensor:
        return torch.from_numpy(flat[offsets[index] : offsets[index + 1]].copy())  # [T]


class CaptionTrainDataset(_CaptionDataset):
    """One item per (image, caption) pair, for teacher-forced training (arguments: see the base class)."""

    def _captions(self) -> list[list[str]]:
        return [t for r in self.records for t in r.tokens]

    @functools.cached_property
    def _record_of(self) -> np.ndarray:
        """``[pairs]``: the record index of every (image, caption) pair."""
        counts = np.array([len(r.tokens) for r in self.records], dtype=np.int64)
        return np.repeat(np.arange(len(self.records)), counts)

    def __len__(self) -> int:
        return len(self._record_of)

    def _record_index(self, index: int) -> int:
        return int(self._record_of[index])


class CaptionEvalDataset(_CaptionDataset):
    """One item per image: its first caption (for a validation loss) and all raws as references (arguments:
    :class:`_CaptionDataset`)."""

    def _captions(self) -> list[list[str]]:
        return [r.tokens[0] for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def _record_index(self, index: int) -> int:
        return index
