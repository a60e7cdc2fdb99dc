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
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from vltk.data.feature_cache import FeatureStore
from vltk.data.images import ImageTransform, default_image_transform
from vltk.data.resumable import ResumableOrderMixin
from vltk.errors import ConfigError, DataError
from vltk.tasks.dialog.dataset import DialogDataset, collate_dialogs
from vltk.tasks.dialog.shapes_dialog import ensure_shapes_dialog, split_paths
from vltk.tasks.dialog.visdial import NUM_ROUNDS, VisDialSplit, index_images, read_visdial
from vltk.text.vocab import Vocabulary, tokenize

logger = logging.getLogger(__name__)

ROLES = ("train", "val", "test")


def vocabulary_texts(train: VisDialSplit) -> list[str]:
    """What the vocabulary is counted over: every training caption, question and right answer, plus each
    distinct candidate answer of the training dialogs once (so paraphrases and near misses that are never
    the right answer in training still have their words)."""
    texts = [t for record in train.dialogs for r in record.rounds for t in (r.question, r.answer) if t]
    texts += [record.caption for record in train.dialogs]
    used = sorted({o for record in train.dialogs for r in record.rounds for o in r.options})
    return texts + [train.answers[o] for o in used]


class DialogDataModule(ResumableOrderMixin, pl.LightningDataModule):
    """Shared behaviour of the dialog DataModules; subclasses only say how to read the splits.

    Args:
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

    def __init__(
        self,
        *,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        min_word_count: int = 1,
        max_question_length: int = 20,
        max_answer_length: int = 12,
        max_history_length: int = 100,
        in_memory: bool = False,
        max_dialogs: int | None = None,
        on_bad_dialog: str = "skip",
    ) -> None:
        super().__init__()
        for key, value, low in (
            ("batch_size", batch_size, 1),
            ("num_workers", num_workers, 0),
            ("min_word_count", min_word_count, 1),
            ("max_question_length", max_question_length, 1),
            ("max_answer_length", max_answer_length, 1),
            ("max_history_length", max_history_length, 1),
        ):
            if value < low:
                raise ConfigError(f"data.{key} must be >= {low}, got {value}")
        for key, value in (("eval_batch_size", eval_batch_size), ("max_dialogs", max_dialogs)):
            if value is not None and value < 1:
                raise ConfigError(f"data.{key} must be >= 1 or null, got {value}")
        if on_bad_dialog not in ("skip", "raise"):
            raise ConfigError(f"data.on_bad_dialog must be 'skip' or 'raise', got '{on_bad_dialog}'")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.min_word_count = min_word_count
        self.max_question_length = max_question_length
        self.max_answer_length = max_answer_length
        self.max_history_length = max_history_length
        self.in_memory = in_memory
        self.max_dialogs = max_dialogs
        self.on_bad_dialog = on_bad_dialog
        self.image_transform: ImageTransform | FeatureStore | None = None
        self._vocab: Vocabulary | None = None
        self._splits: dict[str, VisDialSplit] | None = None
        self._datasets: dict[str, DialogDataset] = {}

    # ---- what subclasses provide ----------------------------------------------------------------------

    def read_splits(self) -> dict[str, VisDialSplit]:
        """The read splits, keyed ``train`` / ``val`` / ``test`` (a missing one is treated as empty)."""
        raise NotImplementedError

    def default_transform(self) -> ImageTransform:
        """Preprocessing used until the task assigns the encoder's ``transforms()``."""
        return default_image_transform()

    # ---- Lightning hooks ------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Read the splits and build the vocabulary (once; later calls return at once)."""
        if self._splits is not None:
            return
        splits = self.read_splits()
        for role in ROLES:
            splits.setdefault(role, VisDialSplit(source=Path("<none>"), split=role, answers=[], dialogs=[]))
        for role, split in splits.items():
            if self.max_dialogs is not None:
                split.dialogs = split.dialogs[: self.max_dialogs]
            if not split.dialogs:
                logger.warning("the %s split has no dialogs", role)
        if self._vocab is None:
            train = splits.get("train")
            if train is None or not train.dialogs:
                raise DataError("no training dialogs: cannot build the vocabulary")
            self._vocab = Vocabulary.build(
                (tokenize(text) for text in vocabulary_texts(train)), min_count=self.min_word_count
            )
        self._splits = splits
        logger.info(
            "dialog data: %s; %d words",
            ", ".join(
                f"{role}={len(s.dialogs)} dialogs" + (f" ({s.skipped} skipped)" if s.skipped else "")
                for role, s in splits.items()
            ),
            len(self._vocab),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", training=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", training=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", training=False)

    def dataloader_for(self, split: str) -> DataLoader:
        """An evaluation loader over ``train``, ``val`` or ``test`` (``vltk evaluate --split``)."""
        return self._loader(split, training=False)

    def state_dict(self) -> dict[str, Any]:
        return {} if self._vocab is None else {"vocab": self._vocab.to_json()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "vocab" in state_dict:
            self.vocab = Vocabulary.from_json(state_dict["vocab"])

    # ---- data facts -----------------------------------------------------------------------------------

    @property
    def vocab(self) -> Vocabulary:
        if self._vocab is None:
            raise RuntimeError(f"{type(self).__name__}.vocab is not available yet: call setup() first")
        return self._vocab

    @vocab.setter
    def vocab(self, vocab: Vocabulary | None) -> None:
        if vocab != self._vocab:
            self._vocab = vocab
            self._datasets.clear()

    @property
    def skipped(self) -> dict[str, int]:
        """Bad dialogs dropped per split (by the reader, and missing from a feature cache)."""
        self.setup()
        assert self._splits is not None
        return {role: split.skipped for role, split in self._splits.items()}

    def split(self, name: str) -> VisDialSplit:
        """The read split ``name`` (its dialogs, answers, skipped count and problem messages)."""
        self.setup()
        assert self._splits is not None
        if name not in self._splits:
            raise DataError(f"unknown split '{name}' (available: {', '.join(sorted(self._splits))})")
        return self._splits[name]

    def dataset(self, name: str) -> DialogDataset:
        """The (cached) dataset of a split, with the current vocabulary and image transform."""
        split = self.split(name)
        transform = self.image_transform or self.default_transform()
        dataset = self._datasets.get(name)
        if dataset is None:
            if isinstance(transform, FeatureStore):
                self._drop_uncached(name, split, transform)
            dataset = DialogDataset(
                split.dialogs,
                split.answers,
                self.vocab,
                transform=transform,
                max_question_length=self.max_question_length,
                max_answer_length=self.max_answer_length,
                max_history_length=self.max_history_length,
                in_memory=self.in_memory,
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

    def _loader(self, name: str, training: bool) -> DataLoader:
        dataset = self.dataset(name)
        sampler = self.training_sampler(len(dataset)) if training else None  # resumable mid-epoch
        return DataLoader(
            dataset,
            batch_size=self.batch_size if training else self.eval_batch_size,
            sampler=sampler,
            generator=torch.Generator().manual_seed(self.shuffle_seed),
            drop_last=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=functools.partial(collate_dialogs, pad_id=self.vocab.pad_id),
        )


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
        batch_size, eval_batch_size, num_workers, min_word_count, max_question_length, max_answer_length,
            max_history_length, in_memory, max_dialogs, on_bad_dialog: see :class:`DialogDataModule`.
    """

    def __init__(
        self,
        *,
        num_dialogs: int = 4000,
        image_size: int = 64,
        seed: int = 0,
        val_fraction: float = 0.125,
        test_fraction: float = 0.125,
        cache_dir: str | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        min_word_count: int = 1,
        max_question_length: int = 20,
        max_answer_length: int = 12,
        max_history_length: int = 100,
        in_memory: bool = True,
        max_dialogs: int | None = None,
        on_bad_dialog: str = "skip",
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            min_word_count=min_word_count,
            max_question_length=max_question_length,
            max_answer_length=max_answer_length,
            max_history_length=max_history_length,
            in_memory=in_memory,
            max_dialogs=max_dialogs,
            on_bad_dialog=on_bad_dialog,
        )
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

    def read_splits(self) -> dict[str, VisDialSplit]:
        root = ensure_shapes_dialog(self.cache_dir, **self.generator_args)
        images = index_images([root / "images"])
        splits = {}
        for role in ROLES:
            dialogs, dense = split_paths(root, role)
            splits[role] = read_visdial(
                dialogs, dense, root / "images", images=images, on_bad_dialog=self.on_bad_dialog
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
        batch_size, eval_batch_size, num_workers, min_word_count, max_question_length, max_answer_length,
            max_history_length, in_memory, max_dialogs, on_bad_dialog: see :class:`DialogDataModule`.
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
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        min_word_count: int = 1,
        max_question_length: int = 20,
        max_answer_length: int = 12,
        max_history_length: int = 100,
        in_memory: bool = False,
        max_dialogs: int | None = None,
        on_bad_dialog: str = "skip",
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            min_word_count=min_word_count,
            max_question_length=max_question_length,
            max_answer_length=max_answer_length,
            max_history_length=max_history_length,
            in_memory=in_memory,
            max_dialogs=max_dialogs,
            on_bad_dialog=on_bad_dialog,
        )
        for key, value in (("min_rounds", min_rounds), ("test_min_rounds", test_min_rounds)):
            if value < 1:
                raise ConfigError(f"data.{key} must be >= 1, got {value}")
        self.files = {
            "train": (train_json, train_dense),
            "val": (val_json, val_dense),
            "test": (test_json, test_dense),
        }
        self.image_dir = image_dir
        self.min_rounds = min_rounds
        self.test_min_rounds = test_min_rounds

    def read_splits(self) -> dict[str, VisDialSplit]:
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
                on_bad_dialog=self.on_bad_dialog,
            )
        return splits
