"""``vltk data validate`` for VQA v2: every question, every annotation and every image of a split, once.

The reader (:func:`vltk.tasks.vqa.vqa_v2.read_vqa_v2`) stops at the first malformed question and drops, with a
warning, questions whose image is missing or that have no annotation; validating lists all of them by
entry (``questions[12] (question_id 458752000): ...``, ``annotations[3] (question_id ...): ...``) and every
unreadable image by path, so a split can be fixed before a long run. See the layout in
:mod:`vltk.tasks.vqa.vqa_v2`; the dispatcher is :mod:`vltk.tasks.validate`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vltk.data.images import load_image
from vltk.data.validation import Progress, ValidationReport
from vltk.errors import DataError
from vltk.tasks.vqa.vqa_v2 import _read_json, image_index

logger = logging.getLogger(__name__)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry_name(kind: str, index: int, entry: Any) -> str:
    if isinstance(entry, dict) and _integer(entry.get("question_id")):
        return f"{kind}[{index}] (question_id {entry['question_id']})"
    return f"{kind}[{index}]"


def _check_ids(entry: Any, where: str) -> str | None:
    """The first problem with an entry's object shape and ids, or ``None``."""
    if not isinstance(entry, dict):
        return f"{where}: expected an object, got {type(entry).__name__}"
    for key in ("question_id", "image_id"):
        if key not in entry:
            return f"{where}: no '{key}'"
        if not _integer(entry[key]):
            return f"{where}: '{key}' must be an integer, got {entry[key]!r}"
    return None


def _check_question(entry: dict[str, Any], where: str) -> str | None:
    text = entry.get("question")
    if not isinstance(text, str) or not text.strip():
        return f"{where}: 'question' must be a non-empty string, got {text!r}"
    return None


def _check_annotation(entry: dict[str, Any], where: str) -> str | None:
    answers = entry.get("answers")
    if not isinstance(answers, list) or not answers:
        return f"{where}: 'answers' must be a non-empty list, got {answers!r}"
    for k, answer in enumerate(answers):
        if not isinstance(answer, dict) or not isinstance(answer.get("answer"), str):
            return f"{where}: answers[{k}] must be an object with an 'answer' string, got {answer!r}"
    for key in ("answer_type", "question_type", "multiple_choice_answer"):
        if key in entry and not isinstance(entry[key], str):
            return f"{where}: '{key}' must be a string, got {entry[key]!r}"
    return None


def validate_vqa_v2(
    questions: str | Path,
    annotations: str | Path | None = None,
    image_dir: str | Path | None = None,
    *,
    progress: Progress | None = None,
) -> ValidationReport:
    """Check every question and annotation of a VQA v2 (or v1) split and decode every image they name.

    Args:
        questions: the questions JSON (``v2_OpenEnded_mscoco_<split>_questions.json``).
        annotations: the annotations JSON (``None`` for test splits, released without answers).
        image_dir: the split's image directory (default: the questions file's folder); images are found by
            COCO id as :func:`vltk.tasks.vqa.vqa_v2.image_index` does.
        progress: wraps the image iterator (the CLI passes a progress bar).

    Raises:
        DataError: only when a file itself cannot be read as VQA v2 JSON or the image directory is missing;
            problems with entries and images are collected in the report instead.
    """
    questions = Path(questions)
    document, question_rows = _read_json(questions, "questions", "questions")
    image_dir = Path(image_dir).expanduser() if image_dir is not None else questions.parent
    images = image_index(image_dir)
    report = ValidationReport(source=questions)
    good: dict[int, tuple[int, int]] = {}  # question_id -> (index in questions, image_id)
    listed: set[int] = set()  # every question id in the questions file, good or not
    referenced: set[int] = set()  # every image id with a file that a question names
    for index, entry in enumerate(question_rows):
        report.entries += 1
        if isinstance(entry, dict) and _integer(entry.get("question_id")):
            listed.add(entry["question_id"])
        if isinstance(entry, dict) and _integer(entry.get("image_id")) and entry["image_id"] in images:
            referenced.add(entry["image_id"])  # read even when the question is malformed
        where = _entry_name("questions", index, entry)
        problem = _check_ids(entry, where) or _check_question(entry, where)
        if problem is None and entry["question_id"] in good:
            first = good[entry["question_id"]][0]
            problem = f"{where}: duplicate question id (also questions[{first}])"
        if problem is None and entry["image_id"] not in images:
            problem = f"{where}: image_id {entry['image_id']} has no image file in {image_dir}"
        if problem is not None:
            report.bad_entries.append(problem)
            continue
        good[entry["question_id"]] = (index, entry["image_id"])
    answered = set(good)
    if annotations is not None:
        annotations = Path(annotations)
        _, annotation_rows = _read_json(annotations, "annotations", "annotations")
        annotated: dict[int, int] = {}
        for index, entry in enumerate(annotation_rows):
            report.entries += 1
            where = _entry_name("annotations", index, entry)
            problem = _check_ids(entry, where) or _check_annotation(entry, where)
            qid = entry["question_id"] if problem is None else None
            if problem is None and qid in annotated:
                problem = f"{where}: duplicate question id (also annotations[{annotated[qid]}])"
            if problem is None and qid not in good:
                if qid in listed:  # its question is malformed: reported there
                    continue
                problem = f"{where}: no question with this id in {questions.name}"
            if problem is None and entry["image_id"] != good[qid][1]:
                expected = good[qid][1]
                problem = f"{where}: image_id {entry['image_id']} differs from the question's ({expected})"
            if problem is not None:
                report.bad_entries.append(problem)
                continue
            annotated[qid] = index
        for qid, (index, _) in good.items():
            if qid not in annotated:
                report.bad_entries.append(
                    f"questions[{index}] (question_id {qid}): no valid annotation in {annotations.name}"
                )
        answered = set(annotated)
    split = str(document.get("data_subtype") or "questions")
    report.splits[split] = len(answered)
    for image_id in (progress or iter)(sorted(referenced)):
        report.images += 1
        try:
            load_image(images[image_id])
        except DataError as error:
            report.bad_images.append(f"{error} (image_id {image_id})")
    logger.info("validated %s: %d entries, %d images", questions, report.entries, report.images)
    return report


def validate_vqa_v2_file(
    path: Path, image_root: Path | None, annotations: Path | None, progress: Progress | None
) -> ValidationReport:
    """VQA v2 questions JSON (top-level ``questions``), its ``--annotations`` and images.

    :func:`validate_vqa_v2` as a :data:`vltk.data.validation.FileValidator`: ``path`` is the questions
    file, ``annotations`` its answers (without them only the questions and images are checked)."""
    if annotations is None:
        logger.warning("%s: no --annotations given: checking the questions and images only", path)
    return validate_vqa_v2(path, annotations, image_root, progress=progress)
