"""``vltk score vqa`` end to end (Typer's CliRunner) on small VQA v2-layout files: the official accuracy
under both rules, unrounded in the metrics file, the whole-entry leave-one-out, and one line + exit 2
for every malformed input (each names the file and the entry)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vltk.cli.main import app

runner = CliRunner()

# (question id, answer type, question type, human answers, prediction, head score, earlier-rule score)
QUESTIONS = [
    (11, "yes/no", "is the", ["yes"] * 10, "yes", 1.0, 1.0),
    (12, "yes/no", "is the", ["yes"] * 10, "Yes", 0.0, 1.0),  # unanimous: no normalisation, case-sensitive
    (13, "number", "how many", ["2"] * 9 + ["3"], "two", 1.0, 1.0),
    (14, "other", "what is the", ["dog"] * 2 + ["a dog"] * 2 + ["puppy"] * 6, "The dog.", 1.0, 0.6),
    (15, "number", "how many", ["two"] * 4 + ["three"] * 6, "2", 1.0, 0.0),
    (16, "other", "what is the", ["red"] * 2 + ["blue"] * 8, "red", 0.6, 0.6),
]


def _write(root: Path, rows: list[tuple], *, answer_ids: bool = True) -> tuple[Path, Path, Path]:
    questions = [{"image_id": qid, "question": "q?", "question_id": qid} for qid, *_ in rows]
    annotations = []
    for qid, a_type, q_type, answers, *_ in rows:
        entries = [{"answer": a, "answer_confidence": "yes"} for a in answers]
        if answer_ids:
            for i, entry in enumerate(entries):
                entry["answer_id"] = i + 1
        annotation = {"question_id": qid, "image_id": qid, "question_type": q_type, "answer_type": a_type}
        annotations.append({**annotation, "multiple_choice_answer": answers[0], "answers": entries})
    results = [{"question_id": row[0], "answer": row[4]} for row in rows]
    paths = root / "questions.json", root / "annotations.json", root / "results.json"
    common = {"data_type": "mscoco", "data_subtype": "val2014", "license": {}, "info": {}}
    paths[0].write_text(json.dumps({**common, "task_type": "Open-Ended", "questions": questions}))
    paths[1].write_text(json.dumps({**common, "annotations": annotations}))
    paths[2].write_text(json.dumps(results))
    return paths


def _score(paths: tuple[Path, Path, Path], *extra: str) -> Any:
    questions, annotations, results = paths
    return runner.invoke(
        app, ["score", "vqa", "--predictions", str(results), "--questions", str(questions),
              "--annotations", str(annotations), *extra],
    )  # fmt: skip


@pytest.mark.parametrize(("rule", "column"), [(None, 5), ("a013f00", 5), ("pre-a013f00", 6)])
def test_score_vqa_follows_the_official_rule(tmp_path: Path, rule: str | None, column: int):
    paths = _write(tmp_path, QUESTIONS)
    out = tmp_path / "metrics.json"
    result = _score(paths, "--output", str(out), *(["--rule", rule] if rule else []))
    assert result.exit_code == 0, result.output
    assert f"rule {rule or 'a013f00'}" in result.output
    metrics = json.loads(out.read_text())["metrics"]
    scores = {row[0]: row[column] for row in QUESTIONS}
    by_type: dict[str, list[float]] = {}
    by_question_type: dict[str, list[float]] = {}
    for qid, a_type, q_type, *_ in QUESTIONS:
        by_type.setdefault(a_type, []).append(scores[qid])
        by_question_type.setdefault(q_type, []).append(scores[qid])
    expected = {"accuracy": sum(scores.values()) / len(scores)}
    expected.update({f"accuracy/{k}": sum(v) / len(v) for k, v in by_type.items()})
    expected.update({f"accuracy/question_type/{k}": sum(v) / len(v) for k, v in by_question_type.items()})
    assert metrics == pytest.approx(expected, abs=1e-12)
    # Unrounded: head 4.6/6 = 0.7666..., earlier 4.2/6 = 0.7 (the official tool would print 76.67 / 70.0).
    assert metrics["accuracy"] == pytest.approx((4.6 if column == 5 else 4.2) / 6, abs=1e-15)


def test_identical_answer_entries_leave_out_together(tmp_path: Path):
    # Without answer_id the ten "yes" entries are equal dicts: leaving one out leaves them all: 0.
    rows = [(21, "yes/no", "is the", ["yes"] * 10, "yes", None, None),
            (22, "yes/no", "is the", ["yes"] * 4 + ["no"] * 6, "yes", None, None)]  # fmt: skip
    out = tmp_path / "metrics.json"
    assert _score(_write(tmp_path, rows, answer_ids=False), "--output", str(out)).exit_code == 0
    assert json.loads(out.read_text())["metrics"]["accuracy"] == pytest.approx((0.0 + 0.6) / 2)
    assert _score(_write(tmp_path, rows), "--output", str(out)).exit_code == 0  # with answer_id
    assert json.loads(out.read_text())["metrics"]["accuracy"] == pytest.approx(1.0)


def test_single_answer_files_are_scored_by_exact_match(tmp_path: Path):
    rows = [(31, "color", "what color", ["red"], "Red.", None, None),
            (32, "shape", "what shape", ["circle"], "square", None, None)]  # fmt: skip
    out = tmp_path / "metrics.json"
    result = _score(_write(tmp_path, rows), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert "exact match" in result.output
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["exact_match"] == 0.5 and metrics["exact_match/color"] == 1.0
    assert not any(name.startswith("accuracy") for name in metrics)


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _set(rows_key: str | None, index: int, key: str, value: Any):
    def change(data):
        rows = data if rows_key is None else data[rows_key]
        if value is _DELETE:
            del rows[index][key]
        else:
            rows[index][key] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        (2, _set(None, 1, "question_id", "12"), "entry 1 has a non-integer \"question_id\" '12'"),
        (2, _set(None, 0, "question_id", 1.5), 'entry 0 has a non-integer "question_id" 1.5'),
        (2, _set(None, 0, "question_id", True), "non-integer"),
        (2, _set(None, 2, "question_id", _DELETE), 'entry 2 has no "question_id"'),
        (2, _set(None, 0, "answer", 3), 'entry 0 needs a string "answer"'),
        (0, _set("questions", 1, "question_id", _DELETE), 'question 1 has no "question_id"'),
        (0, _set("questions", 0, "question_id", "abc"), "question 0 has a non-integer \"question_id\" 'abc'"),
        (
            1,
            _set("annotations", 3, "question_id", "x14"),
            "annotation 3 has a non-integer \"question_id\" 'x14'",
        ),
        (1, _set("annotations", 2, "question_id", _DELETE), 'annotation 2 has no "question_id"'),
        (
            1,
            lambda d: d["annotations"][0]["answers"][4].pop("answer"),
            'answer 4 of question 11 has no "answer"',
        ),
        (
            1,
            lambda d: d["annotations"][2]["answers"][0].update(answer=2),
            "answer 0 of question 13 has a non-string",
        ),
        (1, lambda d: d["annotations"][1].update(answers=[]), 'annotation 1 (question 12) has no "answers"'),
        (1, lambda d: d["annotations"].append(dict(d["annotations"][0])), "question 11 is annotated twice"),
    ],
)
def test_malformed_input_is_one_line_and_exit_2(tmp_path: Path, file: int, change, message: str):
    paths = _write(tmp_path, QUESTIONS)
    _edit(paths[file], change)
    result = _score(paths)
    assert result.exit_code == 2, result.output
    assert message in result.output and paths[file].name in result.output
    assert "Traceback" not in result.output


def test_bad_rule_and_rule_for_other_tasks_are_refused(tmp_path: Path):
    paths = _write(tmp_path, QUESTIONS)
    result = _score(paths, "--rule", "c4e6a0e")
    assert result.exit_code == 2 and "unknown VQA accuracy rule 'c4e6a0e'" in result.output
    result = runner.invoke(app, ["score", "captioning", "--predictions", str(paths[2]), "--rule", "a013f00"])
    assert result.exit_code == 2 and "--rule" in result.output
