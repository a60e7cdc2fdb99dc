"""VQA examples in one shape for every source (easy-VQA, VQA v2), and the answer vocabulary.

A :class:`VqaExample` is one question about one image with its human answers. Sources differ in how many
answers a question has (VQA v2: 10 from different annotators; easy-VQA: 1), so soft targets follow the
VQA accuracy: an answer given by ``c`` of ``n`` annotators scores ``min(1, c / min(3, n))`` (``min(1,
c/3)`` for VQA's 10 answers, Teney et al. 2018, *Tips and Tricks for Visual Question Answering*; 1 for
easy-VQA's single answer).

:class:`AnswerVocabulary` holds the top-K answers of the training split (normalised as the official
evaluation does, :func:`vltk.metrics.vqa.normalize_answer`): the classifier's output classes.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vltk.errors import DataError
from vltk.metrics.vqa import normalize_answer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VqaExample:
    """One question about one image.

    Attributes:
        question_id: unique within its split (VQA v2's ``question_id``; easy-VQA: the line number).
        image_id: the image's id in its source (COCO id for VQA v2).
        question: the raw question text.
        answers: the human answers (raw strings; empty for test-dev style splits without answers).
        image_path: the image file.
        answer_type: ``yes/no``, ``number``, ``other`` (VQA v2); ``yes/no``, ``color``, ``shape`` (easy-VQA).
        question_type: VQA v2's question prefix (``what color is the``); easy-VQA: its first words.
    """

    question_id: int
    image_id: int
    question: str
    answers: tuple[str, ...]
    image_path: Path
    answer_type: str = "other"
    question_type: str = "other"


def soft_scores(answers: Sequence[str]) -> dict[str, float]:
    """``{normalised answer: min(1, count / min(3, n))}`` for the ``n`` answers of one question."""
    if not answers:
        return {}
    counts = Counter(normalize_answer(a) for a in answers)
    needed = min(3, len(answers))
    return {answer: min(1.0, count / needed) for answer, count in counts.items()}


class AnswerVocabulary:
    """The answers a classifier can give, most frequent first.

    Args:
        answers: the answer strings in class order (already normalised).
    """

    def __init__(self, answers: Sequence[str]) -> None:
        answers = list(answers)
        if not answers:
            raise DataError("an answer vocabulary needs at least one answer")
        if len(set(answers)) != len(answers):
            raise DataError("answer vocabulary has duplicate answers")
        self._answers = answers
        self._index = {answer: index for index, answer in enumerate(answers)}

    @classmethod
    def build(cls, examples: Iterable[VqaExample], *, top_k: int | None = 3000) -> AnswerVocabulary:
        """The ``top_k`` most frequent normalised answers of ``examples`` (ties broken alphabetically, so
        every DDP rank builds the same list); every annotator's answer counts once."""
        counts: Counter[str] = Counter()
        for example in examples:
            counts.update(normalize_answer(a) for a in example.answers)
        counts.pop("", None)
        ranked = sorted(counts, key=lambda a: (-counts[a], a))
        kept = ranked[:top_k] if top_k is not None else ranked
        if not kept:
            raise DataError("no answers in the training questions: cannot build an answer vocabulary")
        covered = sum(counts[a] for a in kept) / max(sum(counts.values()), 1)
        logger.info("answer vocabulary: %d of %d answers (%.1f%% of answers)", len(kept), len(counts),
                    100 * covered)  # fmt: skip
        return cls(kept)

    @classmethod
    def load(cls, path: str | Path) -> AnswerVocabulary:
        """Read a JSON list of answers (as :meth:`save` writes)."""
        path = Path(path)
        try:
            answers = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise DataError(f"{path}: cannot read the answer vocabulary ({error})") from None
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise DataError(f"{path}: expected a JSON list of answer strings")
        return cls(answers)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self._answers, indent=0) + "\n", encoding="utf-8")
        return path

    @property
    def answers(self) -> list[str]:
        return list(self._answers)

    def __len__(self) -> int:
        return len(self._answers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnswerVocabulary) and self._answers == other._answers

    def __hash__(self) -> int:
        return hash(tuple(self._answers))

    def __repr__(self) -> str:
        return f"AnswerVocabulary(size={len(self)})"

    def index(self, answer: str) -> int | None:
        """The class of a (raw or normalised) answer, ``None`` when it is outside the vocabulary."""
        found = self._index.get(answer)
        return found if found is not None else self._index.get(normalize_answer(answer))

    def answer(self, index: int) -> str:
        if not 0 <= index < len(self._answers):
            raise IndexError(f"answer class {index} is outside the vocabulary (size {len(self)})")
        return self._answers[index]

    def targets(self, answers: Sequence[str]) -> tuple[list[int], list[float]]:
        """Sparse soft target of one question: the classes of its in-vocabulary answers and their scores
        (:func:`soft_scores`); both lists are empty when no answer is in the vocabulary."""
        classes, scores = [], []
        for answer, score in soft_scores(answers).items():
            index = self._index.get(answer)
            if index is not None:
                classes.append(index)
                scores.append(score)
        return classes, scores
