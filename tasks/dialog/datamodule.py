"""The Lightning DataModules of visual dialog: the built-in ``shapes_dialog`` and VisDial v1.0 files.

The constructor is the ``data:`` section of a dialog config (``{name: shapes_dialog, batch_size: 32}``).
``setup()`` reads the train / val / test splits with :func:`vltk.tasks.dialog.visdial.read_visdial` (bad
dialogs are skipped, explained and counted: :attr:`DialogDataModule.skipped`) and builds the vocabulary from
the training captions, questions and answers, unless one restored from a checkpoint was assigned first
(``dm.vocab = ...``). It is built deterministically, so every DDP rank builds the same one.
``image_transform`` is assigned by the task (the image encoder's ``transforms()``; a
:class:`~vltk.data.feature_cache.FeatureStore` with ``model.encoder.name: cached``, whose grids then replace
the images).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from vltk.data.datamodule import (
    ROLES,
    ImageDataModule,
    ImageLoaderOptions,
    check_at_least,
    check_optional_positive,
)
from vltk.data.feature_cache import FeatureStore
from vltk.data.images import ImageTransform, default_image_transform
from vltk.errors import ConfigError, DataError
from vltk.tasks.dialog.dataset import DialogDataset, collate_dialogs
from vltk.tasks.dialog.shapes_dialog import ensure_shapes_dialog, split_paths
from vltk.tasks.dialog.visdial import NUM_ROUNDS, VisDialSplit, index_images, read_visdial
from vltk.text.vocab import Vocabulary, tokenize

logger = logging.getLogger(__name__)


def vocabulary_texts(train: VisDialSplit) -> list[str]:
    """What the vocabulary is counted over: every training caption, question and right answer, plus each
    distinct candidate answer of the training dialogs once (so paraphrases and near misses that are never
    the right answer in training still have their words)."""
    texts = [t for record in train.dialogs for r in record.rounds for t in (r.question, r.answer) if t]
    texts += [record.caption for record in train.dialogs]
    used = sorted({o for record in train.dialogs for r in record.rounds for o in r.options})
    return texts + [train.answers[o] for o in used]


@dataclass(frozen=True)
class DialogOptions(ImageLoaderOptions):
    """The ``data:`` keys every dialog dataset has.

    Attributes:
        batch_size: dialogs per training batch.
        eval_batch_size: dialogs per evaluation batch (``None``: ``batch_size``).
        num_workers: dataloader worker processes (0: load in the main process).
        min_word_count: words seen fewer times in training map to ``<unk>``.
        max_question_length: questions are cut to this many words.
        max_answer_length: candidate answers are cut to this many words.
        max_history_length: the history (caption + earlier rounds) keeps its last this many words.
        in_memory: keep every transformed image in memory after its first read (decode once).
        max_dialogs: debugging: keep at most this many dialogs of each split.
        on_bad_dialog: ``skip`` drops a bad dialog with a warning naming it; ``raise`` stops at it.
    """

    eval_batch_size: int | None = None
    min_word_count: int = 1
    max_question_length: int = 20
    max_answer_length: int = 12
    max_history_length: int = 100
    max_dialogs: int | None = None
    on_bad_dialog: str = "skip"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(
            min_word_count=(self.min_word_count, 1),
            max_question_length=(self.max_question_length, 1),
            max_answer_length=(self.max_answer_length, 1),
            max_history_length=(self.max_history_length, 1),
        )
        check_optional_positive(eval_batch_size=self.eval_batch_size, max_dialogs=self.max_dialogs)
        if self.on_bad_dialog not in ("skip", "raise"):
            raise ConfigError(f"data.on_bad_dialog must be 'skip' or 'raise', got '{self.on_bad_dialog}'")


class DialogDataModule(ImageDataModule):
    """Shared behaviour of the dialog DataModules; subclasses only say how to read the splits.

    Args:
        options: the fields of :class:`DialogOptions`.
    """

    options_type = DialogOptions
    options: DialogOptions
    items_name = "dialogs"

    # ---- what subclasses provide ----------------------------------------------------------------------

    def read_dialogs(self) -> dict[str, VisDialSplit]:
        """The read splits, keyed ``train`` / ``val`` / ``test`` (a missing one is treated as empty)."""
        raise NotImplementedError

    # ---- the DataModule hooks -------------------------------------------------------------------------

    def read_splits(self) -> dict[str, VisDialSplit]:
        splits = self.read_dialogs()
        for role in ROLES:
            splits.setdefault(role, VisDialSplit(source=Path("<none>"), split=role, answers=[], dialogs=[]))
        for split in splits.values():
            if self.options.max_dialogs is not None:
                split.dialogs = split.dialogs[: self.options.max_dialogs]
        return splits

    def check_splits(self, splits: dict[str, VisDialSplit]) -> None:
        for role, split in splits.items():
            if not split.dialogs:
                logger.warning("the %s split has no dialogs", role)

    def build_vocab(self, splits: dict[str, VisDialSplit]) -> Vocabulary:
        train = splits.get("train")
        if train is None or not train.dialogs:
            raise DataError("no training dialogs: cannot build the vocabulary")
        texts = (tokenize(text) for text in vocabulary_texts(train))
        return Vocabulary.build(texts, min_count=self.options.min_word_count)

    def describe(self, splits: dict[str, VisDialSplit]) -> str:
        sizes = ", ".join(
            f"{role}={len(s.dialogs)} dialogs" + (f" ({s.skipped} skipped)" if s.skipped else "")
            for role, s in splits.items()
        )
        return f"{sizes}; {len(self.vocab)} words"

    def loader(self, split: str, training: bool) -> DataLoader:
        dataset = self.dataset(split)
        batch_size = self.options.batch_size if training else self.options.eval_batch_size
        collate = functools.partial(collate_dialogs, pad_id=self.vocab.pad_id)
        return self.batches(dataset, training=training, collate_fn=collate, batch_size=batch_size)

    # ---- data facts -----------------------------------------------------------------------------------

    @property
    def skipped(self) -> dict[str, int]:
        """Bad dialogs dropped per split (by the reader, and missing from a feature cache)."""
        self.setup()
        assert self._splits is not None
        return {role: split.skipped for role, split in self._splits.items()}

    def dataset(self, name: str) -> DialogDataset:
        """The (cached) dataset of a split, with the current vocabulary and image transform."""
        split = self.split(name)
        transform = self.transform()
        dataset = self._datasets.get(name)
        if dataset is None:
            if isinstance(transform, FeatureStore):
                self._drop_uncached(name, split, transform)
            dataset = DialogDataset(
                split.dialogs,
                split.answers,
                self.vocab,
                transform=transform,
                max_question_length=self.options.max_question_length,
                max_answer_length=self.options.max_answer_length,
                max_history_length=self.options.max_history_length,
                in_memory=self.options.in_memory,
                skipped=split.skipped,
            )
            self._datasets[name] = dataset
        dataset.transform = transform
        return dataset

    def _drop_uncached(self, name: str, split: VisDialSplit, store: FeatureStore) -> None:
        missing = store.missing(record.image_id for record in split.dialogs)
        if not missing:
            return
        for image_id in missing:
            message = (
                f"{split.source}: dialog image_id={image_id}: not in the feature cache {store.directory} "
                f"(made from {store.manifest.dataset})"
            )
            logger.warning("skipping a dialog: %s", message)
            split.problems.append(message)
        lost = set(missing)
        split.dialogs = [record for record in split.dialogs if record.image_id not in lost]
        split.skipped += len(lost)
        logger.warning(
            "%d dialogs of split '%s' are not in the feature cache %s and are skipped",
            len(lost),
            name,
            store.directory,
        )


@dataclass(frozen=True)
class ShapesDialogOptions(DialogOptions):
    """The built-in shapes images are small: they are kept in memory by default."""

    in_memory: bool = True


class ShapesDialogDataModule(DialogDataModule):
    """The built-in ``shapes_dialog`` dataset, generated on first use (see
    :mod:`vltk.tasks.dialog.shapes_dialog`).

    Args:
        num_dialogs: dialogs to generate (3000 train, 500 val, 500 test by default).
        image_size: width and height of the images in pixels.
        seed: generator seed (same seed, same dataset).
        val_fraction: share of dialogs in ``val``.
        test_fraction: share of dialogs in ``test``.
        cache_dir: parent folder of the generated data (default: ``$VLTK_CACHE/datasets`` or
            ``~/.cache/vltk/datasets``).
        options: the fields of :class:`ShapesDialogOptions` (``in_memory`` defaults to true).
    """

    options_type = ShapesDialogOptions

    def __init__(
        self,
        *,
        num_dialogs: int = 4000,
        image_size: int = 64,
        seed: int = 0,
        val_fraction: float = 0.125,
        test_fraction: float = 0.125,
        cache_dir: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.generator_args = {
            "num_dialogs": num_dialogs,
            "image_size": image_size,
            "seed": seed,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
        }
        self.cache_dir = cache_dir
        self.image_size = image_size

    def prepare_data(self) -> None:
        ensure_shapes_dialog(self.cache_dir, **self.generator_args)

    def read_dialogs(self) -> dict[str, VisDialSplit]:
        root = ensure_shapes_dialog(self.cache_dir, **self.generator_args)
        images = index_images([root / "images"])
        splits = {}
        for role in ROLES:
            dialogs, dense = split_paths(root, role)
            splits[role] = read_visdial(
                dialogs, dense, root / "images", images=images, on_bad_dialog=self.options.on_bad_dialog
            )
        return splits

    def default_transform(self) -> ImageTransform:
        return default_image_transform(self.image_size)


class VisDialDataModule(DialogDataModule):
    """VisDial v1.0 files (or any data in that layout).

    Args:
        train_json: the training dialogs (``visdial_1.0_train.json``).
        val_json: the validation dialogs (``visdial_1.0_val.json``), if any.
        test_json: the test dialogs (``visdial_1.0_test.json``), if any.
        train_dense, val_dense, test_dense: dense relevance annotations per split (NDCG), if any.
        image_dir: directory (or list of directories) holding the images of every split, found by the id
            at the end of the file name; ``null`` with a feature cache (``model.encoder.name: cached``).
        min_rounds: train and val dialogs with fewer rounds are bad (skipped).
        test_min_rounds: the same for test (VisDial test dialogs stop at a random round: 1).
        options: the fields of :class:`DialogOptions` (``batch_size``, ``eval_batch_size``, ...).
    """

    def __init__(
        self,
        train_json: str,
        *,
        val_json: str | None = None,
        test_json: str | None = None,
        train_dense: str | None = None,
        val_dense: str | None = None,
        test_dense: str | None = None,
        image_dir: str | list[str] | None = None,
        min_rounds: int = NUM_ROUNDS,
        test_min_rounds: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        check_at_least(min_rounds=(min_rounds, 1), test_min_rounds=(test_min_rounds, 1))
        self.files = {
            "train": (train_json, train_dense),
            "val": (val_json, val_dense),
            "test": (test_json, test_dense),
        }
        self.image_dir = image_dir
        self.min_rounds = min_rounds
        self.test_min_rounds = test_min_rounds

    def read_dialogs(self) -> dict[str, VisDialSplit]:
        directories = None
        images = None
        if self.image_dir is not None:
            directories = [self.image_dir] if isinstance(self.image_dir, str) else list(self.image_dir)
            images = index_images(directories)
        splits = {}
        for role, (dialogs, dense) in self.files.items():
            if dialogs is None:
                continue
            splits[role] = read_visdial(
                dialogs,
                dense,
                directories,
                images=images,
                min_rounds=self.test_min_rounds if role == "test" else self.min_rounds,
                on_bad_dialog=self.options.on_bad_dialog,
            )
        return splits
