"""The Lightning DataModule shared by the VQA sources (built-in easy-VQA, VQA v2 JSON).

Its constructor is the ``data:`` section of a vqa config (``{name: easy_vqa, batch_size: 32}``).
``setup()`` reads the train / val / test examples and builds, from the training split only, the question
vocabulary (a :class:`vltk.text.Vocabulary`) and the answer vocabulary (the ``top_k`` most frequent
answers, :class:`~vltk.tasks.vqa.records.AnswerVocabulary`) unless vocabularies restored from a checkpoint
were assigned first (``dm.vocab = ...``, ``dm.answer_vocab = ...``). Both are built deterministically, so
every DDP rank builds the same ones. ``image_transform`` is assigned by the task (the image encoder's
``transforms()``).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from vltk.data.images import ImageTransform, default_image_transform
from vltk.data.resumable import ResumableOrderMixin
from vltk.errors import ConfigError, DataError
from vltk.tasks.vqa.dataset import VqaDataset, collate_vqa
from vltk.tasks.vqa.records import AnswerVocabulary, VqaExample
from vltk.text.vocab import Vocabulary, tokenize

logger = logging.getLogger(__name__)

ROLES = ("train", "val", "test")


class VqaDataModule(ResumableOrderMixin, pl.LightningDataModule):
    """Shared behaviour of the VQA DataModules; subclasses only say how to read examples.

    Args:
        batch_size: questions per training batch; with ``group_by_image``, images per batch (each with all
            of its questions). Evaluation batches always hold ``batch_size`` images with all their questions.
        num_workers: dataloader worker processes (0: load in the main process).
        min_word_count: question words seen fewer times in training map to ``<unk>``.
        top_k_answers: size of the answer vocabulary (the most frequent training answers).
        max_question_length: questions are cut to this many words.
        in_memory: keep transformed images in memory after the first read.
        max_questions: debugging: keep at most this many questions of each split.
        group_by_image: train on batches of images with all their questions (see
            :mod:`vltk.tasks.vqa.dataset`) instead of batches of questions.
    """

    def __init__(
        self,
        *,
        batch_size: int = 32,
        num_workers: int = 0,
        min_word_count: int = 1,
        top_k_answers: int = 3000,
        max_question_length: int = 20,
        in_memory: bool = False,
        max_questions: int | None = None,
        group_by_image: bool = False,
    ) -> None:
        super().__init__()
        for key, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0),
                                ("min_word_count", min_word_count, 1), ("top_k_answers", top_k_answers, 1),
                                ("max_question_length", max_question_length, 1)):  # fmt: skip
            if value < low:
                raise ConfigError(f"data.{key} must be >= {low}, got {value}")
        if max_questions is not None and max_questions < 1:
            raise ConfigError(f"data.max_questions must be >= 1 or null, got {max_questions}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.min_word_count = min_word_count
        self.top_k_answers = top_k_answers
        self.max_question_length = max_question_length
        self.in_memory = in_memory
        self.max_questions = max_questions
        self.group_by_image = group_by_image
        self.image_transform: ImageTransform | None = None
        self._vocab: Vocabulary | None = None
        self._answer_vocab: AnswerVocabulary | None = None
        self._splits: dict[str, list[VqaExample]] | None = None
        self._datasets: dict[tuple[str, bool], VqaDataset] = {}

    # ---- what subclasses provide ----------------------------------------------------------------------

    def read_examples(self) -> dict[str, list[VqaExample]]:
        """The examples of ``train``, ``val`` and ``test`` (and any other split name the source has)."""
        raise NotImplementedError

    # ---- Lightning hooks ------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Read the splits and build the vocabularies (once; later calls return at once)."""
        if self._splits is not None:
            return
        splits = {name: examples[: self.max_questions] if self.max_questions else examples
                  for name, examples in self.read_examples().items()}  # fmt: skip
        for role in ROLES:
            splits.setdefault(role, [])
            if not splits[role]:
                logger.warning("the %s split has no questions", role)
        if self._vocab is None or self._answer_vocab is None:
            if not splits["train"]:
                raise DataError("no training questions: cannot build the question and answer vocabularies")
        if self._vocab is None:
            self._vocab = Vocabulary.build(
                (tokenize(e.question) for e in splits["train"]), min_count=self.min_word_count
            )
        if self._answer_vocab is None:
            self._answer_vocab = AnswerVocabulary.build(splits["train"], top_k=self.top_k_answers)
        self._splits = splits
        logger.info(
            "vqa data: %s; %d question words, %d answers",
            ", ".join(f"{role}={len(splits[role])} questions" for role in ROLES),
            len(self._vocab),
            len(self._answer_vocab),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", training=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", training=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", training=False)

    def dataloader_for(self, split: str) -> DataLoader:
        """An evaluation loader over ``train``, ``val``, ``test`` (``vltk evaluate --split``)."""
        self.setup()
        assert self._splits is not None
        if split not in self._splits:
            raise DataError(f"unknown split '{split}' (available: {', '.join(sorted(self._splits))})")
        return self._loader(split, training=False)

    def state_dict(self) -> dict[str, Any]:
        if self._vocab is None or self._answer_vocab is None:
            return {}
        return {"vocab": self._vocab.to_json(), "answers": self._answer_vocab.answers}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "vocab" in state_dict:
            self.vocab = Vocabulary.from_json(state_dict["vocab"])
        if "answers" in state_dict:
            self.answer_vocab = AnswerVocabulary(state_dict["answers"])

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
    def answer_vocab(self) -> AnswerVocabulary:
        if self._answer_vocab is None:
            raise RuntimeError(f"{type(self).__name__}.answer_vocab is not available yet: call setup() first")
        return self._answer_vocab

    @answer_vocab.setter
    def answer_vocab(self, answers: AnswerVocabulary | None) -> None:
        if answers != self._answer_vocab:
            self._answer_vocab = answers
            self._datasets.clear()

    @property
    def num_answers(self) -> int:
        return len(self.answer_vocab)

    def examples(self, split: str) -> list[VqaExample]:
        self.setup()
        assert self._splits is not None
        if split not in self._splits:
            raise DataError(f"unknown split '{split}' (available: {', '.join(sorted(self._splits))})")
        return self._splits[split]

    def dataset(self, split: str, grouped: bool = True) -> VqaDataset:
        """The (cached) dataset of a split; its ``issues`` count the bad input it found."""
        dataset = self._datasets.get((split, grouped))
        if dataset is None:
            dataset = VqaDataset(
                self.examples(split),
                self.vocab,
                self.answer_vocab,
                transform=self.image_transform or default_image_transform(),
                max_question_length=self.max_question_length,
                in_memory=self.in_memory,
                group_by_image=grouped,
            )
            self._datasets[(split, grouped)] = dataset
        if self.image_transform is not None and dataset.transform is not self.image_transform:
            dataset.transform = self.image_transform
            dataset._cache.clear()
        return dataset

    def _loader(self, split: str, training: bool) -> DataLoader:
        dataset = self.dataset(split, grouped=self.group_by_image or not training)
        sampler = self.training_sampler(len(dataset)) if training else None  # resumable mid-epoch
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            generator=torch.Generator().manual_seed(self.shuffle_seed),
            drop_last=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=functools.partial(
                collate_vqa, num_answers=len(self.answer_vocab), pad_id=self.vocab.pad_id
            ),
        )
