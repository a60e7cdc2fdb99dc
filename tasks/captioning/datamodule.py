"""Lightning DataModules for image captioning: built-in ``shapes``, Karpathy-split JSON, local HF datasets.

Every caption DataModule shares one behaviour (:class:`CaptionsDataModule`): its constructor is the
``data:`` section of a captioning config (``{name: shapes, batch_size: 64}``), ``setup()`` reads the
records of the train / val / test splits and builds the vocabulary from the training captions (unless a
vocabulary restored from a checkpoint was assigned to ``dm.vocab`` first), and the dataloaders yield
:class:`vltk.types.CaptionBatch` es. Two attributes are set by code, not by the config:

* ``vocab`` -- a :class:`vltk.text.Vocabulary` restored from a checkpoint (``None``: build it);
* ``image_transform`` -- the image encoder's ``transforms()``, assigned by the runner before the
  dataloaders are made (``None``: resize to 224, ``ToTensor``, ImageNet normalisation).

The vocabulary is built identically on every DDP rank (deterministic order), so no broadcast is needed.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from vltk.data.feature_cache import FeatureStore
from vltk.data.images import ImageTransform, default_image_transform
from vltk.data.resumable import ResumableOrderMixin
from vltk.errors import ConfigError, DataError
from vltk.tasks.captioning.batch import collate_captions
from vltk.tasks.captioning.hf_captions import read_hf_captions
from vltk.tasks.captioning.karpathy import (
    CaptionEvalDataset,
    CaptionRecord,
    CaptionTrainDataset,
    read_karpathy,
)
from vltk.tasks.captioning.shapes import ensure_shapes
from vltk.text.vocab import Vocabulary

logger = logging.getLogger(__name__)

ROLES = ("train", "val", "test")


class CaptionsDataModule(ResumableOrderMixin, pl.LightningDataModule):
    """Shared behaviour of the caption DataModules; subclasses only say how to read records.

    Args:
        batch_size: images (train: image-caption pairs) per batch.
        num_workers: dataloader worker processes (0: load in the main process).
        min_word_count: words seen fewer times in the training captions map to ``<unk>``.
        max_caption_length: captions are cut to this many words (``<end>`` kept).
        in_memory: keep transformed image tensors in memory after the first read (per worker process).
        max_images: debugging: keep at most this many images of each of train / val / test.
        on_bad_sample: ``raise`` stops at an unreadable image, naming its path; ``skip`` drops it from its
            batch with a warning and counts it (``train/skipped_samples`` in the logs).
    """

    def __init__(
        self,
        *,
        batch_size: int = 64,
        num_workers: int = 0,
        min_word_count: int = 1,
        max_caption_length: int = 20,
        in_memory: bool = False,
        max_images: int | None = None,
        on_bad_sample: str = "raise",
    ) -> None:
        super().__init__()
        for key, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0),
                                ("min_word_count", min_word_count, 1),
                                ("max_caption_length", max_caption_length, 1)):  # fmt: skip
            if value < low:
                raise ConfigError(f"data.{key} must be >= {low}, got {value}")
        if on_bad_sample not in ("raise", "skip"):
            raise ConfigError(f"data.on_bad_sample must be 'raise' or 'skip', got '{on_bad_sample}'")
        if max_images is not None and max_images < 1:
            raise ConfigError(f"data.max_images must be >= 1 or null, got {max_images}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.min_word_count = min_word_count
        self.max_caption_length = max_caption_length
        self.in_memory = in_memory
        self.max_images = max_images
        self.on_bad_sample = on_bad_sample
        self.image_transform: ImageTransform | None = None
        self._vocab: Vocabulary | None = None
        self._splits: dict[str, list[CaptionRecord]] | None = None  # by split name, and by role
        self._datasets: dict[tuple[str, bool], CaptionTrainDataset | CaptionEvalDataset] = {}
        self._default_transform: ImageTransform | None = None

    # ---- what subclasses provide ----------------------------------------------------------------------

    def split_names(self) -> dict[str, list[str]]:
        """The dataset's split names behind each role: ``{"train": [...], "val": [...], "test": [...]}``."""
        raise NotImplementedError

    def read_records(self) -> dict[str, list[CaptionRecord]]:
        """Records of every split named in :meth:`split_names`, keyed by split name."""
        raise NotImplementedError

    # ---- Lightning hooks ------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Read the splits and build the vocabulary (once; later calls return at once)."""
        if self._splits is not None:
            return
        by_name = self.read_records()
        splits: dict[str, list[CaptionRecord]] = {}
        for name, records in by_name.items():
            splits[name] = records[: self.max_images] if self.max_images else records
        for role, names in self.split_names().items():
            records = [r for name in names for r in by_name.get(name, [])]
            splits[role] = records[: self.max_images] if self.max_images else records
            if not splits[role]:
                logger.warning("the %s split (%s) has no images", role, ", ".join(names))
        if self._vocab is None:
            if not splits["train"]:
                raise DataError(
                    f"no training images in split(s) {', '.join(self.split_names()['train'])}: "
                    "cannot build a vocabulary"
                )
            self._vocab = Vocabulary.build(
                (tokens for r in splits["train"] for tokens in r.tokens), min_count=self.min_word_count
            )
        self._splits = splits
        logger.info(
            "caption data: %s; vocabulary of %d tokens",
            ", ".join(f"{role}={len(splits[role])} images" for role in ROLES),
            len(self._vocab),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", training=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", training=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", training=False)

    def dataloader_for(self, split: str) -> DataLoader:
        """An evaluation loader (one item per image) over ``train``, ``val``, ``test`` or any split name
        of the dataset (``restval``, ``validation``, ...); used by ``vltk evaluate --split``."""
        self.setup()
        assert self._splits is not None
        if split not in self._splits:
            raise DataError(f"unknown split '{split}' (available: {', '.join(sorted(self._splits))})")
        return self._loader(split, training=False)

    def state_dict(self) -> dict[str, Any]:
        """Saved in Lightning checkpoints: the vocabulary as a ``tokenizer.json`` string."""
        return {} if self._vocab is None else {"vocab": self._vocab.to_json()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "vocab" in state_dict:
            self.vocab = Vocabulary.from_json(state_dict["vocab"])

    # ---- data facts -----------------------------------------------------------------------------------

    @property
    def vocab(self) -> Vocabulary:
        """The vocabulary (built by :meth:`setup` or assigned from a checkpoint)."""
        if self._vocab is None:
            raise RuntimeError(
                f"{type(self).__name__}.vocab is not available yet: call setup() first or assign a "
                "vocabulary restored from a checkpoint"
            )
        return self._vocab

    @vocab.setter
    def vocab(self, vocab: Vocabulary | None) -> None:
        if vocab is not None and vocab == self._vocab:
            return
        self._vocab = vocab
        self._datasets.clear()  # captions were encoded with the old vocabulary
        if vocab is None:
            self._splits = None  # the next setup() builds a new vocabulary

    @property
    def has_vocab(self) -> bool:
        """Whether :attr:`vocab` can be read (after ``setup()`` or an assignment)."""
        return self._vocab is not None

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def records(self, split: str) -> list[CaptionRecord]:
        """The records of a role (``train``/``val``/``test``) or a split name, after ``setup()``."""
        self.setup()
        assert self._splits is not None
        if split not in self._splits:
            raise DataError(f"unknown split '{split}' (available: {', '.join(sorted(self._splits))})")
        return self._splits[split]

    def record_for(self, image_id: int, split: str | None = None) -> CaptionRecord:
        """The record of ``image_id`` (searching every split unless ``split`` is given), e.g. to show
        the image next to a prediction."""
        self.setup()
        assert self._splits is not None
        for name in [split] if split is not None else list(self._splits):
            for record in self.records(name):
                if record.image_id == image_id:
                    return record
        raise DataError(f"no image with id {image_id} in split(s) {split or ', '.join(sorted(self._splits))}")

    # ---- plumbing -------------------------------------------------------------------------------------

    def _transform(self) -> ImageTransform:
        if self.image_transform is not None:
            return self.image_transform
        if self._default_transform is None:
            self._default_transform = default_image_transform()
        return self._default_transform

    def _loader(self, split: str, training: bool) -> DataLoader:
        self.setup()
        assert self._splits is not None
        key = (split, training)
        dataset = self._datasets.get(key)
        if dataset is None:
            kind = CaptionTrainDataset if training else CaptionEvalDataset
            dataset = kind(
                self._splits[split],
                self.vocab,
                transform=self._transform(),
                max_length=self.max_caption_length,
                in_memory=self.in_memory,
                on_bad_sample=self.on_bad_sample,
            )
            self._datasets[key] = dataset
        dataset.transform = self._transform()
        if isinstance(dataset.transform, FeatureStore):
            store = dataset.transform
            missing = store.missing(record.image_id for record in self._splits[split])
            if missing:
                examples = ", ".join(map(str, missing[:5]))
                raise DataError(
                    f"{len(missing)} image(s) of split '{split}' are not in the feature cache "
                    f"{store.directory} "
                    f"(e.g. ids {examples}); it was made from {store.manifest.dataset}: cache this dataset "
                    "with `vltk data cache-features`"
                )
        sampler = self.training_sampler(len(dataset)) if training else None  # resumable mid-epoch
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            # worker seeds come from this generator, not from the global RNG the model's dropout uses
            generator=torch.Generator().manual_seed(self.shuffle_seed),
            drop_last=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=functools.partial(collate_captions, pad_id=self.vocab.pad_id),
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
        batch_size, num_workers, min_word_count, max_caption_length, in_memory, max_images, on_bad_sample: see
            :class:`CaptionsDataModule`.
    """

    def __init__(
        self,
        annotations: str,
        image_root: str | None = None,
        *,
        batch_size: int = 64,
        num_workers: int = 0,
        min_word_count: int = 1,
        max_caption_length: int = 20,
        train_splits: list[str] = ["train", "restval"],  # noqa: B006 (copied below, never mutated)
        val_split: str = "val",
        test_split: str = "test",
        in_memory: bool = False,
        max_images: int | None = None,
        on_bad_sample: str = "raise",
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, min_word_count=min_word_count,
                         max_caption_length=max_caption_length, in_memory=in_memory,
                         max_images=max_images, on_bad_sample=on_bad_sample)  # fmt: skip
        if not train_splits:
            raise ConfigError("data.train_splits must name at least one split")
        self.annotations = annotations
        self.image_root = image_root
        self.train_splits = list(train_splits)
        self.val_split = val_split
        self.test_split = test_split

    def split_names(self) -> dict[str, list[str]]:
        return {"train": self.train_splits, "val": [self.val_split], "test": [self.test_split]}

    def read_records(self) -> dict[str, list[CaptionRecord]]:
        splits = read_karpathy(self.annotations, image_root=self.image_root)
        root = Path(self.image_root) if self.image_root is not None else Path(self.annotations).parent
        for name in (*self.train_splits, self.val_split, self.test_split):
            first = splits.get(name, [None])[0]
            if first is not None and first.path is not None and not first.path.is_file():
                raise DataError(
                    f"{first.path}: image of the first '{name}' entry in {self.annotations} not found; "
                    f"images are looked up under data.image_root = {root} (set it to the folder that "
                    "holds the entries' filepath/filename)"
                )
        return splits


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
        batch_size, num_workers, min_word_count, max_caption_length, in_memory, max_images, on_bad_sample: see
            :class:`CaptionsDataModule`.
    """

    def __init__(
        self,
        *,
        num_images: int = 3000,
        image_size: int = 64,
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        cache_dir: str | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        min_word_count: int = 1,
        max_caption_length: int = 20,
        in_memory: bool = True,
        max_images: int | None = None,
        on_bad_sample: str = "raise",
    ) -> None:
        super().__init__("", batch_size=batch_size, num_workers=num_workers, min_word_count=min_word_count,
                         max_caption_length=max_caption_length, train_splits=["train"], in_memory=in_memory,
                         max_images=max_images, on_bad_sample=on_bad_sample)  # fmt: skip
        self.generator_params = {"num_images": num_images, "image_size": image_size, "seed": seed,
                                 "val_fraction": val_fraction, "test_fraction": test_fraction}  # fmt: skip
        self.cache_dir = cache_dir

    def prepare_data(self) -> None:
        """Generate the images and captions once (Lightning calls this on one process per node)."""
        self.annotations = str(ensure_shapes(self.cache_dir, **self.generator_params))

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
        batch_size, num_workers, min_word_count, max_caption_length, in_memory, max_images, on_bad_sample: see
            :class:`CaptionsDataModule`.
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
        batch_size: int = 64,
        num_workers: int = 0,
        min_word_count: int = 1,
        max_caption_length: int = 20,
        in_memory: bool = False,
        max_images: int | None = None,
        on_bad_sample: str = "raise",
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, min_word_count=min_word_count,
                         max_caption_length=max_caption_length, in_memory=in_memory,
                         max_images=max_images, on_bad_sample=on_bad_sample)  # fmt: skip
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
