"""``vltk score vqa``: the official VQA accuracy of a results file, without a model.

Inputs are the official formats: results ``[{"question_id": int, "answer": str}, ...]``, and the VQA v2
questions and annotations JSON (:mod:`vltk.tasks.vqa.vqa_v2`). Every annotated question must be answered
(the official evaluation refuses a results file that misses some); answers to unknown question ids are
an error as well, since they usually mean the wrong annotation file. Malformed entries (a missing or
non-integer ``question_id``, an answer entry without a string ``"answer"``) are refused with one line
naming the file and the entry, where the official code would stop with a traceback.

Each annotation's answer entries are compared whole, as the official leave-one-out does
(:func:`vltk.metrics.vqa.vqa_accuracy`, ``answer_fields``): entries equal in every field leave together.
``--rule`` picks the official rule (:data:`vltk.metrics.vqa.VQA_RULES`, default ``a013f00``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vltk.data.json_file import read_json, shown_entry
from vltk.errors import DataError, VltkError
from vltk.metrics.vqa import HEAD_RULE, VqaRecord, VqaScores, check_rule, score_vqa_records
from vltk.tasks.training import ScoreRequest, ScoreResult


def _question_id(path: Path, index: int, entry: Any, what: str) -> int:
    """The integer ``question_id`` of ``entry`` (the ``index``-th of ``what`` in ``path``), or a DataError."""
    if not isinstance(entry, dict):
        raise DataError(f"{path}: {what} {index} is not a JSON object: {shown_entry(entry)}")
    if "question_id" not in entry:
        raise DataError(f'{path}: {what} {index} has no "question_id": {shown_entry(entry)}')
    qid = entry["question_id"]
    if not isinstance(qid, int) or isinstance(qid, bool):
        raise DataError(
            f'{path}: {what} {index} has a non-integer "question_id" {qid!r}: {shown_entry(entry)}'
        )
    return qid


def read_results(path: Path) -> dict[int, str]:
    """``{question_id: answer}`` of a results file; duplicates and malformed rows are errors."""
    rows = read_json(path, "predictions")
    if not isinstance(rows, list):
        raise DataError(f'{path}: expected a JSON list of {{"question_id", "answer"}} objects')
    results: dict[int, str] = {}
    for index, row in enumerate(rows):
        qid = _question_id(path, index, row, "entry")
        if not isinstance(row.get("answer"), str):
            raise DataError(f'{path}: entry {index} needs a string "answer": {shown_entry(row)}')
        if qid in results:
            raise DataError(f"{path}: question {qid} is answered twice")
        results[qid] = row["answer"]
    return results


def _field_labels(entries: list[dict[str, Any]]) -> tuple[int, ...]:
    """Per answer entry, a label of its fields other than ``"answer"``: equal labels = equal fields
    (compared with ``==``, as the official code compares whole entries)."""
    seen: list[dict[str, Any]] = []
    labels = []
    for entry in entries:
        rest = {key: value for key, value in entry.items() if key != "answer"}
        for label, other in enumerate(seen):
            if other == rest:
                labels.append(label)
                break
        else:
            labels.append(len(seen))
            seen.append(rest)
    return tuple(labels)


def _annotation_record(
    path: Path, index: int, annotation: dict[str, Any], qid: int, answer: str
) -> VqaRecord:
    entries = annotation.get("answers")
    if not isinstance(entries, list) or not entries:
        raise DataError(f'{path}: annotation {index} (question {qid}) has no "answers" list')
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or "answer" not in entry:
            raise DataError(f'{path}: answer {k} of question {qid} has no "answer": {shown_entry(entry)}')
        if not isinstance(entry["answer"], str):
            raise DataError(
                f'{path}: answer {k} of question {qid} has a non-string "answer" {entry["answer"]!r}'
            )
    return VqaRecord(
        qid,
        answer,
        tuple(entry["answer"] for entry in entries),
        str(annotation.get("answer_type", "other")),
        str(annotation.get("question_type", "other")),
        _field_labels(entries),
    )


def score_vqa_files(
    predictions: Path, questions: Path, annotations: Path, *, rule: str = HEAD_RULE
) -> VqaScores:
    """The official accuracy (``rule``) of ``predictions`` against a VQA v2 questions + annotations pair."""
    check_rule(rule)
    results = read_results(predictions)
    question_rows = read_json(questions, "questions")
    annotation_rows = read_json(annotations, "annotations")
    if not isinstance(question_rows, dict) or not isinstance(question_rows.get("questions"), list):
        raise DataError(f"{questions}: expected a JSON object with a 'questions' list")
    if not isinstance(annotation_rows, dict) or not isinstance(annotation_rows.get("annotations"), list):
        raise DataError(f"{annotations}: expected a JSON object with an 'annotations' list")
    question_ids = {
        _question_id(questions, index, row, "question")
        for index, row in enumerate(question_rows["questions"])
    }
    records = []
    missing = []
    annotated: set[int] = set()
    for index, annotation in enumerate(annotation_rows["annotations"]):
        qid = _question_id(annotations, index, annotation, "annotation")
        if qid in annotated:
            raise DataError(f"{annotations}: question {qid} is annotated twice (annotation {index})")
        annotated.add(qid)
        if qid not in question_ids:
            continue
        if qid not in results:
            missing.append(qid)
            continue
        records.append(_annotation_record(annotations, index, annotation, qid, results[qid]))
    if missing:
        raise DataError(
            f"{predictions}: {len(missing)} annotated questions have no answer (e.g. {sorted(missing)[:5]}); "
            "the official evaluation scores every question of the split"
        )
    unknown = sorted(set(results) - {r.question_id for r in records})
    if unknown:
        raise DataError(
            f"{predictions}: {len(unknown)} answers are for question ids that {annotations} does not "
            f"annotate (e.g. {unknown[:5]}): is it the annotation file of the same split?"
        )
    return score_vqa_records(records, rule=rule)


def score_vqa(request: ScoreRequest) -> ScoreResult:
    """``vltk score vqa --predictions P --questions Q --annotations A [--rule a013f00|pre-a013f00]``."""
    if request.questions is None or request.annotations is None:
        raise VltkError("vltk score vqa needs --questions and --annotations (VQA v2 JSON layout)")
    rule = request.rule if request.rule is not None else HEAD_RULE
    scores = score_vqa_files(request.predictions, request.questions, request.annotations, rule=rule)
    return ScoreResult(scores.metrics(question_types=True), [scores.describe()])
