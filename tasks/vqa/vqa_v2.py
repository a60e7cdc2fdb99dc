"""VQA v2 (Goyal et al. 2017, *Making the V in VQA Matter*) in its released JSON layout, read and written.

A split is a questions file and (except for test-dev/test-std) an annotations file::

    v2_OpenEnded_mscoco_train2014_questions.json
        {"data_subtype": "train2014", "questions": [{"image_id": 458752, "question": "What is this
         photo taken looking through?", "question_id": 458752000}, ...], ...}
    v2_mscoco_train2014_annotations.json
        {"annotations": [{"question_id": 458752000, "image_id": 458752, "question_type": "what is this",
          "answer_type": "other", "multiple_choice_answer": "net",
          "answers": [{"answer": "net", "answer_confidence": "maybe", "answer_id": 1}, ...]}, ...]}

Images are found by COCO id in an image directory, as ``COCO_<data_subtype>_<id:012d>.jpg`` (the COCO
2014 file names), ``<id:012d>.jpg`` (COCO 2017) or ``<id>.jpg`` / ``<id>.png``. A question whose image is
not there (an unknown image id) is dropped when the split is read, counted and reported with a few of the
ids, so training never meets it mid-epoch. The VQA v1 files (``OpenEnded_mscoco_...``) have the same
layout and read the same way.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vltk.data.json_file import read_json
from vltk.errors import ConfigError, DataError
from vltk.tasks.vqa.datamodule import VqaDataModule, VqaOptions
from vltk.tasks.vqa.records import VqaExample

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VAL_SEED = 0


def _read_json(path: Path, key: str, what: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    data = read_json(path, what)
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise DataError(f"{path}: expected a JSON object with a '{key}' list (VQA v2 {what} layout)")
    return data, data[key]


def image_index(image_dir: Path) -> dict[int, Path]:
    """``{COCO id: image path}`` for every image in ``image_dir`` named by one of the COCO conventions."""
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: image directory not found")
    found: dict[int, Path] = {}
    for name in os.listdir(image_dir):
        stem, suffix = os.path.splitext(name)
        if suffix.lower() not in IMAGE_SUFFIXES:
            continue
        digits = stem.rsplit("_", 1)[-1]  # COCO_train2014_000000458752 -> 000000458752
        if digits.isdigit():
            found.setdefault(int(digits), image_dir / name)
    return found


def _annotations_by_question(path: Path, rows: list[Any]) -> dict[int, dict[str, Any]]:
    """``{question_id: annotation}``; an entry that is not an object or whose id is not an integer is an
    error naming the file and the entry."""
    by_id: dict[int, dict[str, Any]] = {}
    for row in rows:
        if not isinstance(row, dict):
            raise DataError(f"{path}: malformed annotation entry {row!r} (expected a JSON object)")
        if "question_id" not in row:
            continue
        try:
            by_id[int(row["question_id"])] = row
        except (TypeError, ValueError):
            raise DataError(
                f"{path}: annotation entry has a non-integer question_id {row['question_id']!r}"
            ) from None
    return by_id


def read_vqa_v2(
    questions: str | Path,
    annotations: str | Path | None,
    image_dir: str | Path,
) -> list[VqaExample]:
    """The examples of one split.

    Args:
        questions: the questions JSON.
        annotations: the annotations JSON (``None`` for splits released without answers).
        image_dir: the directory holding the split's images.
    """
    questions, image_dir = Path(questions), Path(image_dir)
    _, question_rows = _read_json(questions, "questions", "questions")
    by_id: dict[int, dict[str, Any]] = {}
    if annotations is not None:
        _, annotation_rows = _read_json(Path(annotations), "annotations", "annotations")
        by_id = _annotations_by_question(Path(annotations), annotation_rows)
    images = image_index(image_dir)
    examples: list[VqaExample] = []
    unknown_images: list[int] = []
    unannotated = 0
    for row in question_rows:
        try:
            question_id, image_id, text = int(row["question_id"]), int(row["image_id"]), str(row["question"])
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{questions}: malformed question entry {row!r} ({error})") from None
        if image_id not in images:
            unknown_images.append(image_id)
            continue
        answers: tuple[str, ...] = ()
        answer_type = question_type = "other"
        if annotations is not None:
            annotation = by_id.get(question_id)
            if annotation is None:
                unannotated += 1
                continue
            entries = annotation.get("answers", [])
            answers = tuple(str(a["answer"]) for a in entries if isinstance(a, dict) and "answer" in a)
            answer_type = str(annotation.get("answer_type", "other"))
            question_type = str(annotation.get("question_type", "other"))
        examples.append(
            VqaExample(question_id, image_id, text, answers, images[image_id], answer_type, question_type)
        )
    if unknown_images:
        shown = ", ".join(str(i) for i in sorted(set(unknown_images))[:5])
        logger.warning(
            "%s: %d questions refer to %d image ids with no file in %s (e.g. %s); skipped",
            questions, len(unknown_images), len(set(unknown_images)), image_dir, shown,
        )  # fmt: skip
    if unannotated:
        logger.warning(
            "%s: %d questions have no annotation in %s; skipped", questions, unannotated, annotations
        )
    if question_rows and not examples:
        raise DataError(
            f"{questions}: none of the {len(question_rows)} questions has both an image in {image_dir} "
            "and an annotation"
        )
    return examples


def write_vqa_v2(
    examples: Sequence[VqaExample], questions: str | Path, annotations: str | Path, *, data_subtype: str
) -> tuple[Path, Path]:
    """Write ``examples`` as a VQA v2 questions file and annotations file (to score predictions with
    ``vltk score vqa``, or to read them back with :func:`read_vqa_v2`)."""
    questions, annotations = Path(questions), Path(annotations)
    for path in (questions, annotations):
        path.parent.mkdir(parents=True, exist_ok=True)
    question_rows = [
        {"image_id": e.image_id, "question": e.question, "question_id": e.question_id} for e in examples
    ]
    annotation_rows = [
        {
            "question_id": e.question_id,
            "image_id": e.image_id,
            "question_type": e.question_type,
            "answer_type": e.answer_type,
            "multiple_choice_answer": e.answers[0] if e.answers else "",
            "answers": [
                {"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(e.answers)
            ],
        }
        for e in examples
    ]
    common = {"data_type": "mscoco", "data_subtype": data_subtype, "license": {}, "info": {}}
    questions.write_text(json.dumps({**common, "task_type": "Open-Ended", "questions": question_rows}))
    annotations.write_text(json.dumps({**common, "annotations": annotation_rows}))
    return questions, annotations


@dataclass(frozen=True)
class VqaV2Options(VqaOptions):
    """VQA v2's defaults: COCO images are decoded by 4 workers; questions are cut to 14 words."""

    num_workers: int = 4
    max_question_length: int = 14


class VqaV2DataModule(VqaDataModule):
    """VQA v2 (or v1) JSON with COCO images from directories.

    The usual protocol trains on train2014 and evaluates on val2014: give ``train_*`` and ``test_*``, and
    a validation split is carved out of train by image (``val_images``) unless ``val_*`` are given.

    Args:
        train_questions, train_annotations, train_images: the training split's files and image directory.
        val_questions, val_annotations, val_images_dir: an explicit validation split (optional).
        test_questions, test_annotations, test_images: the test split (optional; default: validation).
        val_images: training images held out for validation when no ``val_*`` files are given.
        options: the fields of :class:`VqaV2Options` (``batch_size``, ``num_workers``, ...; see
            :class:`~vltk.tasks.vqa.datamodule.VqaOptions`).
    """

    options_type = VqaV2Options

    def __init__(
        self,
        *,
        train_questions: str,
        train_annotations: str,
        train_images: str,
        val_questions: str | None = None,
        val_annotations: str | None = None,
        val_images_dir: str | None = None,
        test_questions: str | None = None,
        test_annotations: str | None = None,
        test_images: str | None = None,
        val_images: int = 1000,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        for prefix, group in (("val", (val_questions, val_annotations, val_images_dir)),
                              ("test", (test_questions, test_annotations, test_images))):  # fmt: skip
            if group[0] is not None and group[2] is None:
                key = "val_images_dir" if prefix == "val" else "test_images"
                raise ConfigError(f"data.{prefix}_questions is set: data.{key} must name its image directory")
        self.train_files = (train_questions, train_annotations, train_images)
        self.val_files = (val_questions, val_annotations, val_images_dir)
        self.test_files = (test_questions, test_annotations, test_images)
        self.val_images = val_images

    def read_examples(self) -> dict[str, list[VqaExample]]:
        train = read_vqa_v2(*self.train_files)
        if self.val_files[0] is not None:
            val = read_vqa_v2(*self.val_files)
        else:
            image_ids = sorted({e.image_id for e in train})
            if not 0 <= self.val_images < len(image_ids):
                raise ConfigError(f"data.val_images must be in [0, {len(image_ids)}), got {self.val_images}")
            held_out = set(random.Random(VAL_SEED).sample(image_ids, self.val_images))
            train, val = (
                [e for e in train if e.image_id not in held_out],
                [e for e in train if e.image_id in held_out],
            )
        test = read_vqa_v2(*self.test_files) if self.test_files[0] is not None else val
        return {"train": train, "val": val, "test": test}
