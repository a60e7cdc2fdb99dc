"""The DataModule base every task's data builds on, and the loader options its ``data:`` section shares.

A task's DataModule (``KarpathyCaptionsDataModule``, ``VqaV2DataModule``, ...) is the ``data:`` section of
its config: ``{name: shapes, batch_size: 64}`` builds ``registry["shapes"](batch_size=64)``. What every one
of them does is written here once (:class:`DataModule`):

* ``setup()`` reads the splits once (:meth:`DataModule.read_splits`) and builds the vocabulary from the
  training split (:meth:`DataModule.build_vocab`) unless one restored from a checkpoint was assigned to
  ``dm.vocab`` first; a vocabulary is built deterministically, so every DDP rank builds the same one;
* ``train_dataloader`` / ``val_dataloader`` / ``test_dataloader`` and ``dataloader_for(split)`` (``vltk
  evaluate --split``, which rejects an unknown split naming the valid ones) all go through
  :meth:`DataModule.loader`;
* ``state_dict`` / ``load_state_dict`` carry the vocabulary in Lightning checkpoints;
* the training order is resumable mid-epoch (:class:`~vltk.data.resumable.ResumableOrderMixin`;
  ``shuffle_seed`` is set by the runner to the run's seed).

:class:`ImageDataModule` adds what the image tasks share: ``image_transform`` (the image encoder's
``transforms()``, assigned by the task before the loaders are made) and the one DataLoader recipe.

**Options.** The keys a task's datasets share are one frozen dataclass (:class:`LoaderOptions` and its
subclasses, validated in ``__post_init__``), named by the class attribute ``options_type`` and held in
``dm.options``. A constructor lists only its own keys and gathers the shared ones in
``**options`` (passed on to the dataclass, which refuses unknown keys);
:func:`vltk.registry.check_spec` reads the dataclass's fields as keyword parameters of the constructor, so
the flat ``data:`` section, ``--set data.batch_size=8``, the type checks and the did-you-mean errors see one
schema. A dataset whose defaults differ says so in a dataclass subclass (``in_memory: bool = True``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from vltk.data.images import ImageTransform, default_image_transform
from vltk.data.resumable import ResumableOrderMixin
from vltk.errors import ConfigError, DataError
from vltk.text.vocab import Vocabulary

logger = logging.getLogger(__name__)

ROLES = ("train", "val", "test")


def check_at_least(**values: tuple[int, int]) -> None:
    """``ConfigError("data.KEY must be >= LOW, got VALUE")`` for the first ``KEY=(VALUE, LOW)`` below LOW."""
    for key, (value, low) in values.items():
        if value < low:
            raise ConfigError(f"data.{key} must be >= {low}, got {value}")


def check_optional_positive(**values: int | None) -> None:
    """``ConfigError("data.KEY must be >= 1 or null, got VALUE")`` for the first value below 1."""
    for key, value in values.items():
        if value is not None and value < 1:
            raise ConfigError(f"data.{key} must be >= 1 or null, got {value}")


@dataclass(frozen=True)
class LoaderOptions:
    """How batches are made: the ``data:`` keys every DataModule has.

    Attributes:
        batch_size: examples per training batch (``ResumeState`` turns the batches a resumed run already
            trained on into examples with it).
    """

    batch_size: int = 32

    def __post_init__(self) -> None:
        check_at_least(batch_size=(self.batch_size, 1))


@dataclass(frozen=True)
class ImageLoaderOptions(LoaderOptions):
    """The loader options of datasets that read image files.

    Attributes:
        num_workers: dataloader worker processes (0: load in the main process).
        in_memory: keep transformed images in memory after their first read (per worker process).
    """

    num_workers: int = 0
    in_memory: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(num_workers=(self.num_workers, 0))


class DataModule(ResumableOrderMixin, pl.LightningDataModule):
    """Splits, a vocabulary, the loaders, ``dataloader_for`` and the checkpointed state of a task's data.

    A subclass says what differs: ``options_type`` (its options dataclass), :meth:`read_splits`,
    :meth:`build_vocab` and :meth:`loader`; optionally :meth:`describe` (the log line after ``setup()``),
    :meth:`check_splits`, :meth:`evaluation_splits` and ``vocab_type`` (what ``load_state_dict`` restores).

    Args:
        options: the fields of ``options_type`` (the shared keys of the ``data:`` section).
    """

    options_type: ClassVar[type[LoaderOptions]] = LoaderOptions
    vocab_type: ClassVar[Any] = Vocabulary  # what load_state_dict restores (``from_json``)
    items_name: ClassVar[str] = "examples"  # what a split holds, for messages

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = self.options_type(**options)
        self._vocab: Any = None
        self._splits: dict[str, Any] | None = None  # by split name, after setup()
        self._datasets: dict[Any, Any] = {}  # made with the current vocabulary; cleared when it changes

    # ---- what subclasses provide ----------------------------------------------------------------------

    def read_splits(self) -> dict[str, Any]:
        """Every split by name, ``train``, ``val`` and ``test`` included (empty when the data has none)."""
        raise NotImplementedError

    def build_vocab(self, splits: dict[str, Any]) -> Any:
        """The vocabulary, from ``splits["train"]`` (a :class:`DataError` when it is empty)."""
        raise NotImplementedError

    def loader(self, split: str, training: bool) -> DataLoader:
        """The loader of a split read by :meth:`read_splits`; ``training``: the resumable shuffled order."""
        raise NotImplementedError

    def describe(self, splits: dict[str, Any]) -> str:
        """The log line after ``setup()``: the size of each role."""
        return ", ".join(f"{role}={len(splits[role])} {self.items_name}" for role in ROLES)

    def check_splits(self, splits: dict[str, Any]) -> None:
        """Called on the splits just read: warns about an empty role (an error is the subclass's call)."""
        for role in ROLES:
            if not len(splits[role]):
                logger.warning("the %s split has no %s", role, self.items_name)

    def evaluation_splits(self) -> list[str]:
        """The split names :meth:`dataloader_for` accepts (default: every split read)."""
        self.setup()
        assert self._splits is not None
        return list(self._splits)

    # ---- Lightning hooks ------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Read the splits and build the vocabulary (once; later calls return at once)."""
        if self._splits is not None:
            return
        splits = self.read_splits()
        self.check_splits(splits)
        self.build_vocabularies(splits)
        self._splits = splits
        logger.info("%s: %s", type(self).__name__, self.describe(splits))

    def build_vocabularies(self, splits: dict[str, Any]) -> None:
        """Build what no checkpoint restored (a subclass with a second vocabulary extends this)."""
        if self._vocab is None:
            self._vocab = self.build_vocab(splits)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", training=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", training=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", training=False)

    def dataloader_for(self, split: str) -> DataLoader:
        """An evaluation loader over ``split`` (``vltk evaluate --split``); an unknown split is a
        :class:`DataError` naming the valid ones, raised before any Trainer starts."""
        self.check_split_name(split, self.evaluation_splits())
        return self.loader(split, training=False)

    def state_dict(self) -> dict[str, Any]:
        """Saved in Lightning checkpoints: the vocabulary as JSON (nothing before ``setup()``)."""
        return {} if self._vocab is None else {"vocab": self._vocab.to_json()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "vocab" in state_dict:
            self.vocab = self.vocab_type.from_json(state_dict["vocab"])

    # ---- data facts -----------------------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        """Examples per training batch (``options.batch_size``)."""
        return self.options.batch_size

    @property
    def vocab(self) -> Any:
        """The vocabulary (built by ``setup()`` or assigned from a checkpoint)."""
        if self._vocab is None:
            raise DataError(
                f"{type(self).__name__}.vocab is not available yet: call setup() first or assign a "
                "vocabulary restored from a checkpoint"
            )
        return self._vocab

    @vocab.setter
    def vocab(self, vocab: Any) -> None:
        if vocab is not None and vocab == self._vocab:
            return
        self._vocab = vocab
        self._datasets.clear()  # encoded with the old vocabulary
        if vocab is None:
            self._splits = None  # the next setup() builds a new vocabulary

    @property
    def has_vocab(self) -> bool:
        """Whether :attr:`vocab` can be read (after ``setup()`` or an assignment)."""
        return self._vocab is not None

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def split(self, name: str) -> Any:
        """What :meth:`read_splits` read for ``name`` (after ``setup()``)."""
        self.setup()
        assert self._splits is not None
        self.check_split_name(name, list(self._splits))
        return self._splits[name]

    @staticmethod
    def check_split_name(name: str, valid: list[str]) -> None:
        if name not in valid:
            raise DataError(f"unknown split '{name}' (available: {', '.join(sorted(valid))})")


class ImageDataModule(DataModule):
    """A :class:`DataModule` over image files: ``image_transform`` and the DataLoader recipe they share.

    ``image_transform`` is assigned by the task (the image encoder's ``transforms()``, or a feature store
    whose grids replace the images) before the loaders are made; until then :meth:`default_transform`.
    """

    options_type: ClassVar[type[LoaderOptions]] = ImageLoaderOptions
    options: ImageLoaderOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.image_transform: Any = None
        self._default_transform: ImageTransform | None = None

    def default_transform(self) -> ImageTransform:
        """Preprocessing used until the task assigns the encoder's ``transforms()`` (resize to 224,
        ``ToTensor``, ImageNet normalisation)."""
        return default_image_transform()

    def transform(self) -> Any:
        """``image_transform``, or the (one) default transform while none is assigned."""
        if self.image_transform is not None:
            return self.image_transform
        if self._default_transform is None:
            self._default_transform = self.default_transform()
        return self._default_transform

    def batches(
        self,
        dataset: Dataset,
        *,
        training: bool,
        collate_fn: Callable[[list[Any]], Any],
        batch_size: int | None = None,
    ) -> DataLoader:
        """The DataLoader over ``dataset``: training draws the resumable shuffled order
        (:meth:`training_sampler`), evaluation keeps the dataset's order; ``batch_size`` defaults to
        ``options.batch_size``."""
        sampler = self.training_sampler(len(dataset)) if training else None  # resumable mid-epoch
        workers = self.options.num_workers
        return DataLoader(
            dataset,
            batch_size=batch_size or self.options.batch_size,
            sampler=sampler,
            # worker seeds come from this generator, not from the global RNG the model's dropout uses
            generator=torch.Generator().manual_seed(self.shuffle_seed),
            drop_last=False,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=collate_fn,
        )
