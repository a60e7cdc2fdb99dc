"""``vltk data validate`` on VQA v2: every malformed question/annotation by id, every bad image by path,
format detection from the JSON's keys (rows of docs/RELIABILITY.md's bad-input table)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.errors import ConfigError, DataError
from vltk.tasks.validate import detect_format, validate_dataset
from vltk.tasks.vqa.records import VqaExample
from vltk.tasks.vqa.validate import validate_vqa_v2
from vltk.tasks.vqa.vqa_v2 import read_vqa_v2, write_vqa_v2

runner = CliRunner()


def _split(root: Path, images: int = 6) -> tuple[Path, Path, Path]:
    """A clean VQA v2 split: ``images`` COCO-named images, two questions each."""
    image_dir = root / "val2014"
    image_dir.mkdir(parents=True)
    examples = []
    for image_id in range(1, images + 1):
        path = image_dir / f"COCO_val2014_{image_id:012d}.jpg"
        Image.new("RGB", (16, 12), (40 * image_id, 0, 0)).save(path)
        for k in range(2):
            examples.append(
                VqaExample(
                    image_id * 10 + k,
                    image_id,
                    f"what is in picture {image_id}?",
                    ("red",) * 10,
                    path,
                    "other",
                    "what is",
                )  # fmt: skip
            )
    questions, annotations = write_vqa_v2(
        examples, root / "questions.json", root / "annotations.json", data_subtype="val2014"
    )
    return questions, annotations, image_dir


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[Path, Path, Path]:
    questions, annotations, image_dir = _split(tmp_path)
    q = json.loads(questions.read_text())
    a = json.loads(annotations.read_text())
    rows = q["questions"]
    rows[0]["question"] = ""  # question_id 10
    del rows[1]["question_id"]  # questions[1]
    rows[2]["image_id"] = "2"  # question_id 20
    rows[3]["question_id"] = 20  # questions[3]: the id of questions[2] (malformed, so not a duplicate)
    rows[4]["image_id"] = 99  # question_id 30: no image file
    rows.append("not an entry")  # questions[12]
    rows.append(dict(rows[5]))  # questions[13]: duplicate of question_id 31
    rows.append({"question_id": 70, "image_id": 6, "question": "is there an annotation?"})  # questions[14]
    notes = a["annotations"]
    notes[6]["answers"] = []  # question_id 40
    notes[7]["answers"][3] = {"answer": 5}  # question_id 41
    notes[8]["image_id"] = 1  # question_id 50, whose question says 5
    notes.append(dict(notes[9]))  # annotations[12]: duplicate of question_id 51
    notes.append({**notes[10], "question_id": 999})  # annotations[13]: no such question
    questions.write_text(json.dumps(q))
    annotations.write_text(json.dumps(a))
    (image_dir / "COCO_val2014_000000000003.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (image_dir / f"COCO_val2014_{6:012d}.jpg").write_bytes(  # truncated
        (image_dir / f"COCO_val2014_{1:012d}.jpg").read_bytes()[:60]
    )
    return questions, annotations, image_dir


def test_validate_lists_every_bad_question_annotation_and_image(damaged):
    questions, annotations, image_dir = damaged
    report = validate_vqa_v2(questions, annotations, image_dir)
    assert report.entries == 15 + 14 and not report.ok
    problems = "\n".join(report.bad_entries)
    expected = [
        "questions[0] (question_id 10): 'question' must be a non-empty string",
        "questions[1]: no 'question_id'",
        "questions[2] (question_id 20): 'image_id' must be an integer, got '2'",
        "questions[4] (question_id 30): image_id 99 has no image file in",
        "questions[12]: expected an object, got str",
        "questions[13] (question_id 31): duplicate question id (also questions[5])",
        "questions[14] (question_id 70): no valid annotation in annotations.json",
        "annotations[1] (question_id 11): no question with this id",  # its question lost its id
        "annotations[3] (question_id 21): no question with this id in questions.json",  # renumbered to 20
        "annotations[6] (question_id 40): 'answers' must be a non-empty list",
        "annotations[7] (question_id 41): answers[3] must be an object with an 'answer' string",
        "annotations[8] (question_id 50): image_id 1 differs from the question's (5)",
        "annotations[12] (question_id 51): duplicate question id (also annotations[9])",
        "annotations[13] (question_id 999): no question with this id in questions.json",
        # questions whose annotation is malformed have no valid annotation
        "questions[6] (question_id 40): no valid annotation",
    ]
    for line in expected:
        assert line in problems, f"missing: {line}\n{problems}"
    # questions[3] (id 20, a valid entry) is good; annotation 20's question is fine too, not reported
    assert "questions[3]" not in problems and "annotations[4]" not in problems
    assert len(report.bad_entries) == len(expected) + 2  # + questions[7] (41), questions[8] (50)
    assert len(report.bad_images) == 2 and report.images == 6
    assert any(
        "COCO_val2014_000000000003.jpg" in line and "(image_id 3)" in line for line in report.bad_images
    )
    assert any("COCO_val2014_000000000006.jpg" in line for line in report.bad_images)
    assert report.splits == {"val2014": 5}  # question ids 20, 31, 51, 60, 61

    args = [
        "data",
        "validate",
        str(questions),
        "--annotations",
        str(annotations),
        "--image-root",
        str(image_dir),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "17 malformed entries" in result.output and "2 unreadable images" in result.output
    assert "question_id 999" in result.output


def test_a_clean_split_passes_and_reads_back(tmp_path: Path):
    questions, annotations, image_dir = _split(tmp_path)
    assert detect_format(questions) == "vqa_v2"
    report = validate_dataset(questions, annotations=annotations, image_root=image_dir)
    assert report.ok and report.entries == 24 and report.images == 6 and report.splits == {"val2014": 12}
    assert len(read_vqa_v2(questions, annotations, image_dir)) == 12
    args = [
        "data",
        "validate",
        str(questions),
        "--annotations",
        str(annotations),
        "--image-root",
        str(image_dir),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "no problems found" in result.output, result.output
    # without annotations (a test split): questions and images only
    assert validate_vqa_v2(questions, None, image_dir).ok


def test_formats_are_detected_and_misuses_named(tmp_path: Path):
    questions, annotations, image_dir = _split(tmp_path)
    with pytest.raises(DataError, match="VQA v2 annotations file: validate its questions file"):
        detect_format(annotations)
    result = runner.invoke(app, ["data", "validate", str(annotations)])
    assert result.exit_code == 2 and "--annotations" in result.output
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"dialogs": []}))
    with pytest.raises(DataError, match=r"unknown dataset format \(top-level keys: dialogs"):
        detect_format(odd)
    with pytest.raises(ConfigError, match="did you mean 'vqa_v2'"):
        validate_dataset(questions, format="vqa2")
    with pytest.raises(DataError, match="'images' list"):  # forced to the wrong format
        validate_dataset(questions, format="karpathy")
    with pytest.raises(DataError, match="image directory not found"):
        validate_vqa_v2(questions, annotations, tmp_path / "nowhere")
