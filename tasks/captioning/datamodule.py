"""Lightning DataModules for image captioning: built-in ``shapes``, Karpathy-split JSON, local HF datasets.

Every caption DataModule shares one behaviour (:class:`CaptionsDataModule`, on the base
:class:`vltk.data.datamodule.ImageDataModule`): its constructor is the ``data:`` section of a captioning
config (``{name: shapes, batch_size: 64}``; the keys all datasets share are :class:`CaptionOptions`),
``setup()`` reads the records of the train / val / test splits and builds the vocabulary from the training
captions (unless a vocabulary restored from a checkpoint was assigned to ``dm.vocab`` first), and the
dataloaders yield :class:`vltk.types.CaptionBatch` es. Two attributes are set by code, not by the config:

* ``vocab`` -- a :class:`vltk.text.Vocabulary` restored from a checkpoint (``None``: build it);
* ``image_transform`` -- the image encoder's ``transforms()``, assigned by the runner before the
  dataloaders are made (``None``: resize to 224, ``ToTensor``, ImageNet normalisation).

The vocabulary is built identically on every DDP rank (deterministic order), so no broadcast is needed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from vltk.data.datamodule import (
    ImageDataModule,
    ImageLoaderOptions,
    check_at_least,
    check_optional_positive,
)
from vltk.data.feature_cache import FeatureStore
from vltk.errors import ConfigError, DataError
from vltk.tasks.captioning.batch import collate_captions
from vltk.tasks.captioning.caption_table import CaptionTable
from vltk.tasks.captioning.hf_captions import read_hf_captions
from vltk.tasks.captioning.karpathy import (
    CaptionEvalDataset,
    CaptionRecord,
    CaptionTrainDataset,
    read_karpathy_table,
)
from vltk.tasks.captioning.shape_regions import ensure_shapes_region_store
from vltk.tasks.captioning.shapes import ensure_shapes
from vltk.text.vocab import Vocabulary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptionOptions(ImageLoaderOptions):
    """The ``data:`` keys every caption dataset has.

    Attributes:
        batch_size: images (train: image-caption pairs) per batch.
        num_workers: dataloader worker processes (0: load in the main process).
        min_word_count: words seen fewer times in the training captions map to ``<unk>``.
        max_caption_length: captions are cut to this many words (``<end>`` kept).
        in_memory: keep transformed image tensors in memory after the first read (per worker process).
        max_images: debugging: keep at most this many images of each of train / val / test.
        on_bad_sample: ``raise`` stops at an unreadable image, naming its path; ``skip`` drops it from its
            batch with a warning and counts it (``train/skipped_samples`` in the logs).
    """

    batch_size: int = 64
    min_word_count: int = 1
    max_caption_length: int = 20
    max_images: int | None = None
    on_bad_sample: str = "raise"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(
            min_word_count=(self.min_word_count, 1), max_caption_length=(self.max_caption_length, 1)
        )
        if self.on_bad_sample not in ("raise", "skip"):
            raise ConfigError(f"data.on_bad_sample must be 'raise' or 'skip', got '{self.on_bad_sample}'")
        check_optional_positive(max_images=self.max_images)


def _as_table(records: Sequence[CaptionRecord]) -> CaptionTable:
    return records if isinstance(records, CaptionTable) else CaptionTable.from_records(records)


def _joined(tables: list[CaptionTable]) -> CaptionTable:
    """The rows of ``tables`` in turn: a view when they share one table, else a new in-memory table."""
    if len(tables) == 1:
        return tables[0]
    if tables and all(t.folder is not None and t.folder == tables[0].folder for t in tables):
        return CaptionTable.concat(tables)
    return CaptionTable.from_records([record for table in tables for record in table])


class CaptionsDataModule(ImageDataModule):
    """Shared behaviour of the caption DataModules; subclasses only say how to read records.

    :meth:`split` (and :meth:`records`) accept a role (``train``/``val``/``test``) or any split name of the
    dataset (``restval``, ``validation``, ...); a role may gather several named splits (COCO trains on
    ``train`` + ``restval``).

    Args:
        options: the fields of :class:`CaptionOptions`.
    """

    options_type = CaptionOptions
    options: CaptionOptions
    items_name = "images"
    train_items = "captions"
    """What one training item is: ``captions`` (an image with one of its captions, for cross-entropy) or
    ``images`` (an image with all its references, for self-critical training); set by the system."""

    # ---- what subclasses provide ----------------------------------------------------------------------

    def split_names(self) -> dict[str, list[str]]:
        """The dataset's split names behind each role: ``{"train": [...], "val": [...], "test": [...]}``."""
        raise NotImplementedError

    def read_records(self) -> dict[str, list[CaptionRecord]]:
        """Records of every split named in :meth:`split_names`, keyed by split name."""
        raise NotImplementedError

    # ---- the DataModule hooks -------------------------------------------------------------------------

    def read_splits(self) -> dict[str, CaptionTable]:
        """Every split by name and every role (its named splits joined), each a :class:`CaptionTable` cut
        to ``max_images``."""
        limit = self.options.max_images
        by_name = {name: _as_table(records) for name, records in self.read_records().items()}
        splits = {name: table[:limit] if limit else table for name, table in by_name.items()}
        for role, names in self.split_names().items():
            table = _joined([by_name[name] for name in names if name in by_name])
            splits[role] = table[:limit] if limit else table
        return splits

    def check_splits(self, splits: dict[str, CaptionTable]) -> None:
        for role, names in self.split_names().items():
            if not splits[role]:
                logger.warning("the %s split (%s) has no images", role, ", ".join(names))

    def build_vocab(self, splits: dict[str, CaptionTable]) -> Vocabulary:
        if not splits["train"]:
            raise DataError(
                f"no training images in split(s) {', '.join(self.split_names()['train'])}: "
                "cannot build a vocabulary"
            )
        counts = splits["train"].word_counts()  # what Vocabulary.build counts, from the table's word ids
        return Vocabulary.from_counts(counts, min_count=self.options.min_word_count)

    def describe(self, splits: dict[str, CaptionTable]) -> str:
        return f"{super().describe(splits)}; vocabulary of {len(self.vocab)} tokens"

    def loader(self, split: str, training: bool) -> DataLoader:
        dataset = self.dataset(split, training)
        if isinstance(dataset.transform, FeatureStore):
            self._check_cached(split, dataset.transform)
        collate = functools.partial(collate_captions, pad_id=self.vocab.pad_id)
        return self.batches(dataset, training=training, collate_fn=collate)

    # ---- data facts -----------------------------------------------------------------------------------

    def records(self, split: str) -> CaptionTable:
        """The records of a role (``train``/``val``/``test``) or a split name, after ``setup()``: a
        sequence of :class:`CaptionRecord` (a :class:`CaptionTable`, built one record at a time)."""
        return self.split(split)

    def record_for(self, image_id: int, split: str | None = None) -> CaptionRecord:
        """The record of ``image_id`` (searching every split unless ``split`` is given), e.g. to show
        the image next to a prediction."""
        self.setup()
        assert self._splits is not None
        for name in [split] if split is not None else list(self._splits):
            table = self.records(name)
            found = np.flatnonzero(table.image_ids() == image_id)
            if len(found):
                return table[int(found[0])]
        raise DataError(f"no image with id {image_id} in split(s) {split or ', '.join(sorted(self._splits))}")

    def dataset(self, split: str, training: bool) -> CaptionTrainDataset | CaptionEvalDataset:
        """The (cached) dataset of a split: one item per caption when ``training`` (unless ``train_items``
        is ``images``), else per image."""
        records = self.split(split)
        per_caption = training and self.train_items == "captions"
        dataset = self._datasets.get((split, per_caption))
        if dataset is None:
            kind = CaptionTrainDataset if per_caption else CaptionEvalDataset
            dataset = kind(
                records,
                self.vocab,
                transform=self.transform(),
                max_length=self.options.max_caption_length,
                in_memory=self.options.in_memory,
                on_bad_sample=self.options.on_bad_sample,
            )
            self._datasets[(split, per_caption)] = dataset
        dataset.transform = self.transform()
        return dataset

    def _check_cached(self, split: str, store: FeatureStore) -> None:
        missing = store.missing(self.split(split).image_ids())
        if missing:
            examples = ", ".join(map(str, missing[:5]))
            raise DataError(
                f"{len(missing)} image(s) of split '{split}' are not in the feature cache {store.directory} "
                f"(e.g. ids {examples}); it was made from {store.manifest.dataset}: cache this dataset "
                f"with `{getattr(store, 'make_command', 'vltk data cache-features')}`"
            )


class KarpathyCaptionsDataModule(CaptionsDataModule):
    """Captions from a Karpathy-split JSON (COCO, Flickr8k/30k) and an image folder.

    Args:
        annotations: the JSON file (``dataset_coco.json``, ``dataset_flickr8k.json``, ...).
        image_root: folder that each entry's ``filepath/filename`` is relative to (default: the JSON's
            folder).
        train_splits: splits trained on (COCO: ``train`` and ``restval``).
        val_split: split for validation.
        test_split: split for the final test.
        options: the fields of :class:`CaptionOptions` (``batch_size``, ``num_workers``, ...).
    """

    def __init__(
        self,
        annotations: str,
        image_root: str | None = None,
        *,
        train_splits: list[str] = ["train", "restval"],  # noqa: B006 (copied below, never mutated)
        val_split: str = "val",
        test_split: str = "test",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not train_splits:
            raise ConfigError("data.train_splits must name at least one split")
        self.annotations = annotations
        self.image_root = image_root
        self.train_splits = list(train_splits)
        self.val_split = val_split
        self.test_split = test_split

    def split_names(self) -> dict[str, list[str]]:
        return {"train": self.train_splits, "val": [self.val_split], "test": [self.test_split]}

    def read_records(self) -> dict[str, CaptionTable]:
        splits = read_karpathy_table(self.annotations, image_root=self.image_root).splits()
        root = Path(self.image_root) if self.image_root is not None else Path(self.annotations).parent
        for name in (*self.train_splits, self.val_split, self.test_split):
            first = splits[name].path(0) if name in splits and len(splits[name]) else None
            if first is not None and not first.is_file():
                raise DataError(
                    f"{first}: image of the first '{name}' entry in {self.annotations} not found; "
                    f"images are looked up under data.image_root = {root} (set it to the folder that "
                    "holds the entries' filepath/filename)"
                )
        return splits


@dataclass(frozen=True)
class ShapesCaptionOptions(CaptionOptions):
    """The built-in shapes images are small: they are kept in memory by default."""

    in_memory: bool = True


class ShapesCaptionsDataModule(KarpathyCaptionsDataModule):
    """The built-in procedural ``shapes`` captions, generated on first use (see
    :mod:`vltk.tasks.captioning.shapes`).

    Args:
        num_images: images to generate (80% train, 10% val, 10% test by default).
        image_size: width and height of the images in pixels.
        seed: generator seed (same seed, same dataset).
        val_fraction: share of images in ``val``.
        test_fraction: share of images in ``test``.
        cache_dir: parent folder of the generated data (default: ``$VLTK_CACHE/datasets`` or
            ``~/.cache/vltk/datasets``).
        region_store: also make a region-feature store of the objects' boxes on first use, at this
            directory or ``cache:NAME`` (under the vltk cache); train from it with ``model.encoder: {name:
            regions, path: <the same>}`` (see :mod:`vltk.tasks.captioning.shape_regions`).
        options: the fields of :class:`ShapesCaptionOptions` (``in_memory`` defaults to true).
    """

    options_type = ShapesCaptionOptions

    def __init__(
        self,
        *,
        num_images: int = 3000,
        image_size: int = 64,
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        cache_dir: str | None = None,
        region_store: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__("", train_splits=["train"], **options)
        self.generator_params = {"num_images": num_images, "image_size": image_size, "seed": seed,
                                 "val_fraction": val_fraction, "test_fraction": test_fraction}  # fmt: skip
        self.cache_dir = cache_dir
        self.region_store = region_store

    def prepare_data(self) -> None:
        """Generate the images and captions once (Lightning calls this on one process per node), and the
        region store of ``region_store``."""
        self.annotations = str(ensure_shapes(self.cache_dir, **self.generator_params))
        if self.region_store is not None:
            ensure_shapes_region_store(self.annotations, self.region_store)

    def read_records(self) -> dict[str, list[CaptionRecord]]:
        # ensure_shapes only looks when prepare_data() already ran; it generates when setup() comes first.
        self.prepare_data()
        return super().read_records()


class HFCaptionsDataModule(CaptionsDataModule):
    """Captions from a local Hugging Face dataset (``save_to_disk`` folder or ``imagefolder``).

    Args:
        path: the dataset folder (see :mod:`vltk.tasks.captioning.hf_captions`).
        image_column: column with the images.
        caption_column: column with a caption string or a list of captions per row.
        train_split: split trained on.
        val_split: split for validation.
        test_split: split for the final test.
        cache_dir: the ``datasets`` cache used when building an ``imagefolder`` (default: HF's).
        options: the fields of :class:`CaptionOptions` (``batch_size``, ``num_workers``, ...).
    """

    def __init__(
        self,
        path: str,
        *,
        image_column: str = "image",
        caption_column: str = "caption",
        train_split: str = "train",
        val_split: str = "validation",
        test_split: str = "test",
        cache_dir: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.path = path
        self.image_column = image_column
        self.caption_column = caption_column
        self.train_split = train_split
        self.val_split = val_split
        self.test_split = test_split
        self.cache_dir = cache_dir

    def split_names(self) -> dict[str, list[str]]:
        return {"train": [self.train_split], "val": [self.val_split], "test": [self.test_split]}

    def read_records(self) -> dict[str, list[CaptionRecord]]:
        return read_hf_captions(self.path, image_column=self.image_column, caption_column=self.caption_column,
                                cache_dir=self.cache_dir)  # fmt: skip
