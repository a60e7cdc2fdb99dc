"""The Lightning DataModule shared by the VQA sources (built-in easy-VQA, VQA v2 JSON).

Its constructor is the ``data:`` section of a vqa config (``{name: easy_vqa, batch_size: 32}``; the keys all
sources share are :class:`VqaOptions`). ``setup()`` (of the base :class:`vltk.data.datamodule.DataModule`)
reads the train / val / test examples and builds, from the training split only, the question vocabulary (a
:class:`vltk.text.Vocabulary`) and the answer vocabulary (the ``top_k`` most frequent answers,
:class:`~vltk.tasks.vqa.records.AnswerVocabulary`) unless vocabularies restored from a checkpoint were
assigned first (``dm.vocab = ...``, ``dm.answer_vocab = ...``). Both are built deterministically, so every
DDP rank builds the same ones. ``image_transform`` is assigned by the task (the image encoder's
``transforms()``).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader

from vltk.data.datamodule import (
    ImageDataModule,
    ImageLoaderOptions,
    check_at_least,
    check_optional_positive,
)
from vltk.errors import DataError
from vltk.tasks.vqa.dataset import VqaDataset, collate_vqa
from vltk.tasks.vqa.records import AnswerVocabulary, VqaExample
from vltk.text.vocab import Vocabulary, tokenize

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VqaOptions(ImageLoaderOptions):
    """The ``data:`` keys every VQA source has.

    Attributes:
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

    min_word_count: int = 1
    top_k_answers: int = 3000
    max_question_length: int = 20
    max_questions: int | None = None
    group_by_image: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(
            min_word_count=(self.min_word_count, 1),
            top_k_answers=(self.top_k_answers, 1),
            max_question_length=(self.max_question_length, 1),
        )
        check_optional_positive(max_questions=self.max_questions)


class VqaDataModule(ImageDataModule):
    """Shared behaviour of the VQA DataModules; subclasses only say how to read examples.

    Args:
        options: the fields of :class:`VqaOptions`.
    """

    options_type = VqaOptions
    options: VqaOptions
    items_name = "questions"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._answer_vocab: AnswerVocabulary | None = None

    # ---- what subclasses provide ----------------------------------------------------------------------

    def read_examples(self) -> dict[str, list[VqaExample]]:
        """The examples of ``train``, ``val`` and ``test`` (and any other split name the source has)."""
        raise NotImplementedError

    # ---- the DataModule hooks -------------------------------------------------------------------------

    def read_splits(self) -> dict[str, list[VqaExample]]:
        limit = self.options.max_questions
        by_name = self.read_examples()
        splits = {name: examples[:limit] if limit else examples for name, examples in by_name.items()}
        for role in ("train", "val", "test"):
            splits.setdefault(role, [])
        return splits

    def build_vocabularies(self, splits: dict[str, list[VqaExample]]) -> None:
        if (self._vocab is None or self._answer_vocab is None) and not splits["train"]:
            raise DataError("no training questions: cannot build the question and answer vocabularies")
        super().build_vocabularies(splits)
        if self._answer_vocab is None:
            self._answer_vocab = AnswerVocabulary.build(splits["train"], top_k=self.options.top_k_answers)

    def build_vocab(self, splits: dict[str, list[VqaExample]]) -> Vocabulary:
        questions = (tokenize(e.question) for e in splits["train"])
        return Vocabulary.build(questions, min_count=self.options.min_word_count)

    def describe(self, splits: dict[str, list[VqaExample]]) -> str:
        words, answers = len(self.vocab), len(self.answer_vocab)
        return f"{super().describe(splits)}; {words} question words, {answers} answers"

    def loader(self, split: str, training: bool) -> DataLoader:
        dataset = self.dataset(split, grouped=self.options.group_by_image or not training)
        collate = functools.partial(collate_vqa, num_answers=len(self.answer_vocab), pad_id=self.vocab.pad_id)
        return self.batches(dataset, training=training, collate_fn=collate)

    def state_dict(self) -> dict[str, Any]:
        if self._vocab is None or self._answer_vocab is None:
            return {}
        return {"vocab": self._vocab.to_json(), "answers": self._answer_vocab.answers}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if "answers" in state_dict:
            self.answer_vocab = AnswerVocabulary(state_dict["answers"])

    # ---- data facts -----------------------------------------------------------------------------------

    @property
    def answer_vocab(self) -> AnswerVocabulary:
        if self._answer_vocab is None:
            raise DataError(f"{type(self).__name__}.answer_vocab is not available yet: call setup() first")
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
        return self.split(split)

    def dataset(self, split: str, grouped: bool = True) -> VqaDataset:
        """The (cached) dataset of a split; its ``issues`` count the bad input it found."""
        dataset = self._datasets.get((split, grouped))
        if dataset is None:
            dataset = VqaDataset(
                self.examples(split),
                self.vocab,
                self.answer_vocab,
                transform=self.transform(),
                max_question_length=self.options.max_question_length,
                in_memory=self.options.in_memory,
                group_by_image=grouped,
            )
            self._datasets[(split, grouped)] = dataset
        if dataset.transform is not self.transform():
            dataset.transform = self.transform()
            dataset._cache.clear()
        return dataset
