"""Caption records from a local Hugging Face ``datasets`` image dataset.

Two layouts are read, both offline:

* a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (read with
  ``datasets.load_from_disk``; a single ``Dataset`` counts as the ``train`` split);
* an ``imagefolder`` directory: images plus a ``metadata.jsonl`` (or ``metadata.csv``) whose rows name the
  image in ``file_name`` and carry the caption column (read with
  ``datasets.load_dataset("imagefolder", data_dir=...)``; ``train/``, ``validation/``, ``test/``
  sub-folders become splits).

Each row becomes a :class:`vltk.tasks.captioning.karpathy.CaptionRecord` whose image is fetched from the
dataset on demand (``record.source``), so the datasets and collation of the Karpathy path apply unchanged. The
caption column holds a string or a list of strings per row; the image id is the ``image_id`` column when
present, else the row index.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from vltk.data.images import load_image
from vltk.errors import DataError
from vltk.tasks.captioning.karpathy import CaptionRecord
from vltk.text.vocab import tokenize

logger = logging.getLogger(__name__)


class HFImageSource:
    """A picklable ``() -> PIL.Image`` that reads row ``row`` of an image column (for worker processes).

    Args:
        dataset: a ``datasets.Dataset`` holding (at least) the image column.
        column: the image column name.
        row: the row index.
        where: a description of the dataset for error messages.
    """

    def __init__(self, dataset: Any, column: str, row: int, where: str) -> None:
        self.dataset, self.column, self.row, self.where = dataset, column, row, where

    def __call__(self) -> Image.Image:
        value = self.dataset[self.row][self.column]
        name = f"{self.where} row {self.row} column '{self.column}'"
        try:
            if isinstance(value, Image.Image):
                value.load()
                return value
            if isinstance(value, dict) and value.get("bytes"):
                image = Image.open(io.BytesIO(value["bytes"]))
                image.load()
                return image
            if isinstance(value, dict) and value.get("path"):
                return load_image(value["path"])
            if isinstance(value, str):
                return load_image(value)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DataError(f"{name}: cannot decode image ({error})") from error
        raise DataError(f"{name}: expected an image, a path or image bytes, got {type(value).__name__}")


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def load_hf_splits(path: str | Path, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Open a ``save_to_disk`` folder or an ``imagefolder`` directory as ``{split: datasets.Dataset}``.

    Args:
        path: the dataset folder.
        cache_dir: where ``datasets`` caches the Arrow files it builds for an ``imagefolder``
            (default: the ``datasets`` cache, ``~/.cache/huggingface/datasets``).
    """
    import datasets  # imported here: it takes seconds and only this reader needs it

    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: Hugging Face dataset folder not found")
    if _is_saved_dataset(path):
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as error:  # datasets raises many types for a damaged folder
            raise DataError(f"{path}: cannot load the saved dataset ({error})") from error
        return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    if not any(path.rglob("metadata.jsonl")) and not any(path.rglob("metadata.csv")):
        raise DataError(
            f"{path}: neither a folder written by save_to_disk (no dataset_dict.json / state.json) nor an "
            "imagefolder with a metadata.jsonl or metadata.csv"
        )
    try:
        loaded = datasets.load_dataset(
            "imagefolder", data_dir=str(path), cache_dir=None if cache_dir is None else str(cache_dir)
        )
    except Exception as error:
        raise DataError(f"{path}: cannot read the imagefolder dataset ({error})") from error
    return dict(loaded)


def _captions_of(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        captions = [value]
    elif isinstance(value, (list, tuple)) and all(isinstance(c, str) for c in value):
        captions = list(value)
    else:
        raise DataError(f"{where}: expected a caption string or a list of strings, got {value!r}")
    captions = [c for c in captions if c.strip()]
    if not captions:
        raise DataError(f"{where}: no non-empty caption")
    return captions


def records_from_hf(
    dataset: Any,
    *,
    image_column: str = "image",
    caption_column: str = "caption",
    where: str = "dataset",
) -> list[CaptionRecord]:
    """One :class:`CaptionRecord` per row of a ``datasets.Dataset`` (images read lazily from it).

    Args:
        dataset: a ``datasets.Dataset``.
        image_column: the column holding images (``datasets.Image`` feature, paths or bytes).
        caption_column: the column holding a caption string or a list of caption strings.
        where: a description of the dataset and split for error messages.
    """
    columns = list(dataset.column_names)
    for key, column in (("image_column", image_column), ("caption_column", caption_column)):
        if column not in columns:
            raise DataError(f"{where}: no column '{column}' ({key}); columns: {', '.join(columns)}")
    ids = list(dataset["image_id"]) if "image_id" in columns else list(range(len(dataset)))
    images = dataset.select_columns([image_column])
    records = []
    for row, (image_id, value) in enumerate(zip(ids, dataset[caption_column], strict=True)):
        raws = _captions_of(value, f"{where} row {row} column '{caption_column}'")
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            raise DataError(f"{where} row {row}: column 'image_id' must hold integers, got {image_id!r}")
        records.append(
            CaptionRecord(
                image_id=image_id,
                path=None,
                tokens=[tokenize(raw) for raw in raws],
                raws=raws,
                source=HFImageSource(images, image_column, row, where),
            )
        )
    return records


def read_hf_captions(
    path: str | Path,
    *,
    image_column: str = "image",
    caption_column: str = "caption",
    splits: Iterable[str] | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, list[CaptionRecord]]:
    """Read the requested splits of a local HF dataset into caption records.

    Args:
        path: a ``save_to_disk`` folder or an ``imagefolder`` directory.
        image_column: the image column.
        caption_column: the caption column (string or list of strings per row).
        splits: split names to read (default: all); names missing from the dataset are left out.
        cache_dir: the ``datasets`` cache for ``imagefolder`` builds.
    """
    available = load_hf_splits(path, cache_dir=cache_dir)
    names = list(available) if splits is None else [s for s in splits if s in available]
    missing = [] if splits is None else [s for s in splits if s not in available]
    if missing:
        logger.warning("%s has no split(s) %s (splits: %s)", path, missing, ", ".join(available))
    grouped = {
        name: records_from_hf(
            available[name],
            image_column=image_column,
            caption_column=caption_column,
            where=f"{path} [{name}]",
        )
        for name in names
    }
    logger.info("read %s: %s", path, ", ".join(f"{n}={len(r)}" for n, r in grouped.items()) or "no rows")
    return grouped
