"""The VQA dataset over :class:`~vltk.tasks.vqa.records.VqaExample` s, and its batches.

With ``group_by_image`` an item is one image with *all* of its questions, so a batch encodes each image
once however many questions ask about it (easy-VQA has ~10 questions per image, VQA v2 ~5): the CNN runs
once per image instead of once per question. Evaluation always groups. Training may not: a batch of 64
questions about 64 different images gives the CNN 64 images' worth of gradient per step instead of ~6,
which a CNN trained from scratch needs (on easy-VQA, grouped training learns the images far more slowly).

Bad input is counted and explained when the dataset is built, never discovered mid-epoch:

* ``empty_questions``: questions with no word (encoded as length 0; the text encoder returns zeros);
* ``unknown_word_questions``: questions whose words are all outside the question vocabulary (``<unk>``);
* ``unanswerable``: questions none of whose answers is in the answer vocabulary (they train towards no
  class; at evaluation they can only score 0 and are still scored, as the official evaluation does);
* ``unreadable_images``: image files that fail to decode when read; a black image stands in and the
  file is named in a warning (readers already drop examples whose image file is missing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from vltk.data.images import ImageTransform, default_image_transform, load_image
from vltk.errors import DataError
from vltk.tasks.vqa.records import AnswerVocabulary, VqaExample
from vltk.text.vocab import Vocabulary

logger = logging.getLogger(__name__)

ISSUES = ("empty_questions", "unknown_word_questions", "unanswerable", "unreadable_images")


@dataclass
class VqaBatch:
    """Questions about a few images.

    Attributes:
        images: ``[U, 3, H, W]`` the distinct images of the batch (normalised by the encoder's transform).
        image_index: ``[B]`` long, the row of ``images`` each question is about.
        questions: ``[B, T]`` long question token ids (no ``<start>``/``<end>``), right-padded with 0.
        question_lengths: ``[B]`` long, real lengths (0 for an empty question).
        targets: ``[B, A]`` float soft targets over the answer vocabulary (``min(1, count/3)``).
        question_ids: ``[B]`` long.
        answers: per question, the human answers (raw strings) for the official accuracy.
        answer_types: per question, its answer type.
        question_types: per question, its question type.
        texts: per question, the raw question (for sample tables).
    """

    images: Tensor
    image_index: Tensor
    questions: Tensor
    question_lengths: Tensor
    targets: Tensor
    question_ids: Tensor
    answers: list[tuple[str, ...]]
    answer_types: list[str]
    question_types: list[str]
    texts: list[str]

    def to(self, device: torch.device | str) -> VqaBatch:
        moved = {
            f.name: (getattr(self, f.name).to(device) if isinstance(getattr(self, f.name), Tensor) else
                     getattr(self, f.name))
            for f in fields(self)
        }  # fmt: skip
        return VqaBatch(**moved)

    def __len__(self) -> int:
        return self.questions.shape[0]


@dataclass
class VqaImageItem:
    """One image and the questions about it (what the dataset yields)."""

    image: Tensor
    questions: list[list[int]]
    targets: list[tuple[list[int], list[float]]]
    examples: list[VqaExample]


def collate_vqa(items: Sequence[VqaImageItem], num_answers: int, pad_id: int = 0) -> VqaBatch:
    """Stack images, pad questions, densify soft targets into ``[B, A]``."""
    examples = [e for item in items for e in item.examples]
    questions = [q for item in items for q in item.questions]
    sparse = [t for item in items for t in item.targets]
    lengths = torch.tensor([len(q) for q in questions], dtype=torch.long)  # [B]
    steps = max(1, int(lengths.max())) if len(questions) else 1
    tokens = torch.full((len(questions), steps), pad_id, dtype=torch.long)  # [B, T]
    for row, question in enumerate(questions):
        if question:
            tokens[row, : len(question)] = torch.tensor(question, dtype=torch.long)
    targets = torch.zeros(len(questions), num_answers)  # [B, A]
    for row, (classes, scores) in enumerate(sparse):
        if classes:
            targets[row, classes] = torch.tensor(scores)
    image_index = torch.tensor(
        [index for index, item in enumerate(items) for _ in item.questions], dtype=torch.long
    )  # [B]
    return VqaBatch(
        images=torch.stack([item.image for item in items]),  # [U, 3, H, W]
        image_index=image_index,
        questions=tokens,
        question_lengths=lengths,
        targets=targets,
        question_ids=torch.tensor([e.question_id for e in examples], dtype=torch.long),
        answers=[e.answers for e in examples],
        answer_types=[e.answer_type for e in examples],
        question_types=[e.question_type for e in examples],
        texts=[e.question for e in examples],
    )


class VqaDataset(Dataset):
    """One item per image with every question about it, encoded.

    Args:
        examples: the split's questions.
        vocab: the question vocabulary (unknown words -> ``<unk>``).
        answers: the answer vocabulary (soft targets over its classes).
        transform: PIL image -> ``[3, H, W]`` tensor (default: :func:`default_image_transform`).
        max_question_length: questions are cut to this many words.
        in_memory: keep transformed images after the first read (small datasets such as easy-VQA).
        group_by_image: one item per image with all its questions (``True``) or one per question.
    """

    def __init__(
        self,
        examples: Sequence[VqaExample],
        vocab: Vocabulary,
        answers: AnswerVocabulary,
        transform: ImageTransform | None = None,
        max_question_length: int = 20,
        in_memory: bool = False,
        group_by_image: bool = True,
    ) -> None:
        if max_question_length < 1:
            raise DataError(f"max_question_length must be >= 1, got {max_question_length}")
        self.transform = transform or default_image_transform()
        self.in_memory = in_memory
        self.vocab = vocab
        self.answer_vocab = answers
        self._cache: dict[Path, Tensor] = {}
        groups: dict[Path | int, list[int]] = {}
        for index, example in enumerate(examples):
            groups.setdefault(example.image_path if group_by_image else index, []).append(index)
        self.image_paths = [examples[indices[0]].image_path for indices in groups.values()]
        self.examples = [[examples[i] for i in indices] for indices in groups.values()]
        self.issues = dict.fromkeys(ISSUES, 0)
        encoded = vocab.encode_batch([e.question for e in examples], add_special=False) if examples else []
        self.questions: list[list[list[int]]] = []
        self.targets: list[list[tuple[list[int], list[float]]]] = []
        for indices in groups.values():
            self.questions.append([encoded[i][:max_question_length] for i in indices])
            self.targets.append([answers.targets(examples[i].answers) for i in indices])
        for group_questions, group_targets, group in zip(self.questions, self.targets, self.examples):
            for ids, (classes, _), example in zip(group_questions, group_targets, group):
                if not ids:
                    self.issues["empty_questions"] += 1
                elif all(i == vocab.unk_id for i in ids):
                    self.issues["unknown_word_questions"] += 1
                if not classes and example.answers:
                    self.issues["unanswerable"] += 1
        self.num_questions = len(examples)
        self._explain()

    def _explain(self) -> None:
        notes = {
            "empty_questions": "have no words (answered from the image alone)",
            "unknown_word_questions": "have only words outside the question vocabulary (read as <unk>)",
            "unanswerable": "have no answer in the answer vocabulary (no training signal; score 0 at "
            "evaluation unless the prediction matches an out-of-vocabulary answer, which it cannot)",
        }
        for issue, note in notes.items():
            if self.issues[issue]:
                logger.warning("%d of %d questions %s", self.issues[issue], self.num_questions, note)

    def __len__(self) -> int:
        return len(self.image_paths)

    def image(self, index: int) -> Tensor:
        """The transformed image of group ``index`` (cached when ``in_memory``)."""
        path = self.image_paths[index]
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        try:
            picture = load_image(path)
        except DataError as error:
            self.issues["unreadable_images"] += 1
            logger.warning("%s; a black image stands in for it", error)
            picture = Image.new("RGB", (64, 64))
        tensor = self.transform(picture)  # [3, H, W]
        if self.in_memory:
            self._cache[path] = tensor
        return tensor

    def __getitem__(self, index: int) -> VqaImageItem:
        return VqaImageItem(
            image=self.image(index),
            questions=self.questions[index],
            targets=self.targets[index],
            examples=self.examples[index],
        )
