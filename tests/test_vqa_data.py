"""VQA data: easy-VQA splits, the VQA v2 reader on a hand-written fixture, soft targets, bad input."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from vltk.errors import ConfigError, DataError
from vltk.tasks.vqa.datasets import VQA_DATASETS
from vltk.tasks.vqa.easy_vqa import easy_vqa_answer_type, easy_vqa_question_type, read_easy_vqa
from vltk.tasks.vqa.records import AnswerVocabulary, VqaExample, soft_scores
from vltk.tasks.vqa.vqa_v2 import VqaV2DataModule, read_vqa_v2, write_vqa_v2


def _answers(*pairs: tuple[str, int]) -> list[dict]:
    out = []
    for answer, count in pairs:
        out += [{"answer": answer, "answer_confidence": "yes"}] * count
    return [{**a, "answer_id": i + 1} for i, a in enumerate(out)]


def vqa_v2_fixture(root: Path) -> dict[str, str]:
    """A tiny VQA v2 layout: 3 train images (one missing on disk), 1 val image, 2 JSON files per split."""
    (root / "train2014").mkdir(parents=True)
    (root / "val2014").mkdir(parents=True)
    for image_id, colour in ((1, "red"), (2, "blue")):
        Image.new("RGB", (32, 32), colour).save(root / "train2014" / f"COCO_train2014_{image_id:012d}.jpg")
    Image.new("RGB", (32, 32), "green").save(root / "val2014" / "7.png")  # the plain-id convention
    train_questions = [
        {"image_id": 1, "question": "What color is the square?", "question_id": 10},
        {"image_id": 1, "question": "How many squares?", "question_id": 11},
        {"image_id": 2, "question": "What color is the square?", "question_id": 20},
        {"image_id": 2, "question": "", "question_id": 21},  # empty question
        {"image_id": 3, "question": "Is it there?", "question_id": 30},  # image 3 has no file
    ]
    train_annotations = [
        {"question_id": 10, "image_id": 1, "question_type": "what color is the", "answer_type": "other",
         "multiple_choice_answer": "red", "answers": _answers(("red", 8), ("Red.", 1), ("pink", 1))},
        {"question_id": 11, "image_id": 1, "question_type": "how many", "answer_type": "number",
         "multiple_choice_answer": "1", "answers": _answers(("1", 6), ("one", 2), ("2", 2))},
        {"question_id": 20, "image_id": 2, "question_type": "what color is the", "answer_type": "other",
         "multiple_choice_answer": "blue", "answers": _answers(("blue", 10))},
        {"question_id": 21, "image_id": 2, "question_type": "none of the above", "answer_type": "other",
         "multiple_choice_answer": "blue", "answers": _answers(("blue", 5), ("navy", 5))},
        {"question_id": 30, "image_id": 3, "question_type": "is", "answer_type": "yes/no",
         "multiple_choice_answer": "yes", "answers": _answers(("yes", 10))},
    ]  # fmt: skip
    val_questions = [
        {"image_id": 7, "question": "Zebra giraffe?", "question_id": 70},  # only unknown words
        {"image_id": 7, "question": "What color is the square?", "question_id": 71},
    ]
    val_annotations = [
        {"question_id": 70, "image_id": 7, "question_type": "none of the above", "answer_type": "other",
         "multiple_choice_answer": "zebra", "answers": _answers(("zebra", 10))},  # answer outside the vocab
        {"question_id": 71, "image_id": 7, "question_type": "what color is the", "answer_type": "other",
         "multiple_choice_answer": "green", "answers": _answers(("green", 9), ("blue", 1))},
    ]  # fmt: skip
    files = {}
    for split, question_rows, annotation_rows in (("train2014", train_questions, train_annotations),
                                          ("val2014", val_questions, val_annotations)):  # fmt: skip
        q = root / f"v2_OpenEnded_mscoco_{split}_questions.json"
        a = root / f"v2_mscoco_{split}_annotations.json"
        q.write_text(json.dumps({"data_subtype": split, "questions": question_rows}))
        a.write_text(json.dumps({"data_subtype": split, "annotations": annotation_rows}))
        files[f"{split[:-4]}_questions"], files[f"{split[:-4]}_annotations"] = str(q), str(a)
        files[f"{split[:-4]}_images"] = str(root / split)
    return files


def test_soft_scores_follow_the_vqa_accuracy():
    scores = soft_scores(["red"] * 8 + ["Red."] + ["pink"])
    assert scores == pytest.approx({"red": 1.0, "pink": 1 / 3})
    assert soft_scores(["1"] * 2 + ["one"] * 0 + ["2"] * 8)["1"] == pytest.approx(2 / 3)
    assert soft_scores(["circle"]) == {"circle": 1.0}  # a single answer is a full target


def test_answer_vocabulary_keeps_the_top_k_in_a_deterministic_order(tmp_path):
    examples = [
        VqaExample(i, 0, "q", answers, Path("x.png"))
        for i, answers in enumerate([("b", "b", "x"), ("x", "c"), ("The B",)])
    ]
    vocab = AnswerVocabulary.build(examples, top_k=2)
    assert vocab.answers == ["b", "x"]  # b: 3 (incl. "The B" normalised), x: 2, c: 1 dropped
    assert vocab.index("The B.") == 0 and vocab.index("c") is None
    assert vocab.targets(["b", "c", "c"]) == ([0], [pytest.approx(1 / 3)])
    assert AnswerVocabulary.load(vocab.save(tmp_path / "answers.json")) == vocab


def test_read_vqa_v2_drops_unknown_images_and_counts_them(tmp_path, caplog):
    files = vqa_v2_fixture(tmp_path)
    with caplog.at_level(logging.WARNING):
        examples = read_vqa_v2(files["train_questions"], files["train_annotations"], files["train_images"])
    assert [e.question_id for e in examples] == [10, 11, 20, 21]
    assert "1 questions refer to 1 image ids" in caplog.text and "e.g. 3" in caplog.text
    first = examples[0]
    assert first.answers[:2] == ("red", "red") and len(first.answers) == 10
    assert first.answer_type == "other" and first.question_type == "what color is the"
    assert first.image_path.name == "COCO_train2014_000000000001.jpg"
    val = read_vqa_v2(files["val_questions"], None, files["val_images"])  # no annotations: no answers
    assert [e.answers for e in val] == [(), ()] and val[0].image_path.name == "7.png"


def test_read_vqa_v2_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="questions file not found"):
        read_vqa_v2(tmp_path / "missing.json", None, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"something": []}')
    with pytest.raises(DataError, match="bad.json.*'questions' list"):
        read_vqa_v2(bad, None, tmp_path)

    questions, annotations = tmp_path / "questions.json", tmp_path / "annotations.json"
    questions.write_text(json.dumps({"questions": [{"question_id": 7, "image_id": 1, "question": "q?"}]}))
    for entry, expected in (
        ({"question_id": "q7", "answers": []}, "annotations.json.*non-integer question_id 'q7'"),
        ("not an object", "annotations.json.*malformed annotation entry 'not an object'"),
    ):
        annotations.write_text(json.dumps({"annotations": [entry]}))
        with pytest.raises(DataError, match=expected):
            read_vqa_v2(questions, annotations, tmp_path)


def test_vqa_v2_datamodule_batches_soft_targets_and_counts_bad_input(tmp_path, caplog):
    files = vqa_v2_fixture(tmp_path)
    dm = VqaV2DataModule(
        train_questions=files["train_questions"], train_annotations=files["train_annotations"],
        train_images=files["train_images"], test_questions=files["val_questions"],
        test_annotations=files["val_annotations"], test_images=files["val_images"], val_images=0,
        batch_size=2, num_workers=0, top_k_answers=5, group_by_image=True,
    )  # fmt: skip
    dm.setup("fit")
    # blue 15, red 9 ("Red." normalised), 1 8 (6 + "one" x2), navy 5, 2 2; "pink" 1 is left out
    assert dm.answer_vocab.answers == ["blue", "red", "1", "navy", "2"]
    batch = next(iter(dm.train_dataloader()))
    assert batch.images.shape[0] == 2 and len(batch) == 4
    by_id = dict(zip(batch.question_ids.tolist(), range(len(batch))))
    red = dm.answer_vocab.index("red")
    assert batch.targets[by_id[10], red] == pytest.approx(1.0)  # "red" x8 + "Red." -> 9 -> min(1, 9/3)
    assert batch.targets[by_id[11], dm.answer_vocab.index("2")] == pytest.approx(2 / 3)
    assert batch.question_lengths[by_id[21]] == 0  # the empty question
    assert torch.equal(batch.image_index[by_id[10]], batch.image_index[by_id[11]])
    assert dm.dataset("train").issues["empty_questions"] == 1
    # one question per item: batch_size counts questions
    dm.options = dataclasses.replace(dm.options, group_by_image=False)
    flat = next(iter(dm.train_dataloader()))
    assert len(flat) == 2 and flat.images.shape[0] == 2
    with caplog.at_level(logging.WARNING):
        test = dm.dataset("test")
    assert test.issues["unknown_word_questions"] == 1 and test.issues["unanswerable"] == 1
    assert "have no answer in the answer vocabulary" in caplog.text
    test_batch = next(iter(dm.test_dataloader()))
    assert test_batch.targets[0].sum() == 0  # "zebra" is outside the vocabulary: no target, no crash


def test_vqa_v2_config_errors(tmp_path):
    files = vqa_v2_fixture(tmp_path)
    with pytest.raises(ConfigError, match="val_images_dir"):
        VqaV2DataModule(
            train_questions=files["train_questions"], train_annotations=files["train_annotations"],
            train_images=files["train_images"], val_questions=files["val_questions"],
        )  # fmt: skip
    assert set(VQA_DATASETS) == {"easy_vqa", "vqa_v2"}


def test_write_vqa_v2_round_trips(tmp_path):
    files = vqa_v2_fixture(tmp_path / "src")
    examples = read_vqa_v2(files["train_questions"], files["train_annotations"], files["train_images"])
    q, a = write_vqa_v2(examples, tmp_path / "q.json", tmp_path / "a.json", data_subtype="train2014")
    again = read_vqa_v2(q, a, files["train_images"])
    assert again == examples


def test_easy_vqa_validation_is_a_fixed_split_by_image():
    splits = read_easy_vqa(val_images=500)
    assert len(splits["train"]) + len(splits["val"]) == 38575 and len(splits["test"]) == 9673
    train_images = {e.image_id for e in splits["train"]}
    val_images = {e.image_id for e in splits["val"]}
    assert len(val_images) == 500 and not train_images & val_images
    assert val_images == {e.image_id for e in read_easy_vqa(val_images=500)["val"]}
    types = {e.answer_type for e in splits["test"]}
    assert types == {"yes/no", "color", "shape"}


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what color is the shape?", "what color"),
        ("what is the color of the triangle?", "what color"),
        ("what is the blue shape?", "what shape"),
        ("is there a red shape?", "yes/no"),
        ("is there not a red shape?", "yes/no negated"),
        ("is no circle present?", "yes/no negated"),
    ],
)
def test_easy_vqa_question_types(question: str, expected: str):
    assert easy_vqa_question_type(question) == expected


def test_easy_vqa_answer_types():
    assert [easy_vqa_answer_type(a) for a in ("yes", "circle", "teal")] == ["yes/no", "shape", "color"]
