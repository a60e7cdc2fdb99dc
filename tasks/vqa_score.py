"""``vltk score vqa``: the official VQA accuracy of a results file, without a model.

Inputs are the official formats: results ``[{"question_id": int, "answer": str}, ...]``, and the VQA v2
questions and annotations JSON (:mod:`vltk.data.vqa_v2`). Every annotated question must be answered
(the official evaluation refuses a results file that misses some); answers to unknown question ids are
an error as well, since they usually mean the wrong annotation file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vltk.errors import DataError, VltkError
from vltk.metrics.vqa import VqaRecord, VqaScores, score_vqa_records
from vltk.tasks.common import ScoreRequest, ScoreResult


def _load(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable JSON file ({error})") from None


def read_results(path: Path) -> dict[int, str]:
    """``{question_id: answer}`` of a results file; duplicates and malformed rows are errors."""
    rows = _load(path, "predictions")
    if not isinstance(rows, list):
        raise DataError(f'{path}: expected a JSON list of {{"question_id", "answer"}} objects')
    results: dict[int, str] = {}
    for row in rows:
        if not isinstance(row, dict) or "question_id" not in row or not isinstance(row.get("answer"), str):
            raise DataError(
                f'{path}: each entry needs an integer "question_id" and a string "answer": {row!r}'
            )
        qid = int(row["question_id"])
        if qid in results:
            raise DataError(f"{path}: question {qid} is answered twice")
        results[qid] = row["answer"]
    return results


def score_vqa_files(predictions: Path, questions: Path, annotations: Path) -> VqaScores:
    """The official accuracy of ``predictions`` against a VQA v2 questions + annotations pair."""
    results = read_results(predictions)
    question_rows = _load(questions, "questions")
    annotation_rows = _load(annotations, "annotations")
    if not isinstance(question_rows, dict) or not isinstance(question_rows.get("questions"), list):
        raise DataError(f"{questions}: expected a JSON object with a 'questions' list")
    if not isinstance(annotation_rows, dict) or not isinstance(annotation_rows.get("annotations"), list):
        raise DataError(f"{annotations}: expected a JSON object with an 'annotations' list")
    question_ids = {int(q["question_id"]) for q in question_rows["questions"]}
    records = []
    missing = []
    for annotation in annotation_rows["annotations"]:
        qid = int(annotation["question_id"])
        if qid not in question_ids:
            continue
        if qid not in results:
            missing.append(qid)
            continue
        answers = tuple(str(a["answer"]) for a in annotation.get("answers", []))
        if not answers:
            raise DataError(f"{annotations}: question {qid} has no answers")
        records.append(
            VqaRecord(qid, results[qid], answers, str(annotation.get("answer_type", "other")),
                      str(annotation.get("question_type", "other")))
        )  # fmt: skip
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
    return score_vqa_records(records)


def score_vqa(request: ScoreRequest) -> ScoreResult:
    """``vltk score vqa --predictions P --questions Q --annotations A``."""
    if request.questions is None or request.annotations is None:
        raise VltkError("vltk score vqa needs --questions and --annotations (VQA v2 JSON layout)")
    scores = score_vqa_files(request.predictions, request.questions, request.annotations)
    notes = [f"{len(scores.per_question)} questions scored with the official VQA accuracy"]
    return ScoreResult(scores.metrics(question_types=True), notes)
