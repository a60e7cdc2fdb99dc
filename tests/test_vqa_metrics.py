"""The official VQA accuracy on hand-made cases whose values follow from the evaluation code's rules."""

from __future__ import annotations

import json
import os

import pytest
import torch.multiprocessing as mp

from vltk.errors import DataError
from vltk.metrics.vqa import (
    VqaMetrics,
    VqaRecord,
    merge_vqa_records,
    normalize_answer,
    process_digit_article,
    process_punctuation,
    score_vqa_records,
    vqa_accuracy,
)


def _ten(*groups: tuple[str, int]) -> list[str]:
    answers = [answer for answer, count in groups for _ in range(count)]
    assert len(answers) == 10
    return answers


@pytest.mark.parametrize(
    ("matches", "expected"),
    [
        # Leaving out a matching answer leaves m-1 matches, a non-matching one m; min(1, k/3) averaged.
        (0, 0.0),
        (1, (1 * 0 + 9 * (1 / 3)) / 10),  # 0.3
        (2, (2 * (1 / 3) + 8 * (2 / 3)) / 10),  # 0.6
        (3, (3 * (2 / 3) + 7 * 1) / 10),  # 0.9
        (4, 1.0),
        (10, 1.0),
    ],
)
def test_ten_choose_nine_average(matches: int, expected: float):
    answers = ["cat"] * matches + [f"other{i}" for i in range(10 - matches)]
    assert vqa_accuracy("cat", answers) == pytest.approx(expected, abs=1e-12)


def test_known_values_with_normalisation():
    # Disagreeing answers are normalised: "two" -> "2", articles dropped, punctuation removed.
    assert vqa_accuracy("two", _ten(("2", 3), ("3", 7))) == pytest.approx(0.9)
    assert vqa_accuracy("The dog.", _ten(("dog", 2), ("a dog", 2), ("puppy", 6))) == pytest.approx(1.0)
    assert vqa_accuracy("dont know", _ten(("don't know", 1), ("no", 9))) == pytest.approx(0.3)
    assert vqa_accuracy("hot-dog", _ten(("hot dog", 3), ("sandwich", 7))) == pytest.approx(0.9)
    # Case never matters (matching lower-cases both sides).
    assert vqa_accuracy("YES", ["yes"] * 10) == 1.0


def test_unanimous_ground_truth_is_not_normalised():
    # The official code normalises only when the humans disagree: "yes." against ten "yes" scores 0,
    # and "two" against ten "2" scores 0; the same prediction scores once one human disagrees.
    assert vqa_accuracy("yes.", ["yes"] * 10) == 0.0
    assert vqa_accuracy("two", ["2"] * 10) == 0.0
    assert vqa_accuracy("yes.", ["yes"] * 9 + ["no"]) == pytest.approx(1.0)
    assert vqa_accuracy("  yes\t", ["yes"] * 10) == 1.0  # whitespace is always stripped


def test_single_answer_is_exact_match_after_normalisation():
    assert vqa_accuracy("circle", ["circle"]) == 1.0
    assert vqa_accuracy("Circle", ["circle"]) == 1.0
    assert vqa_accuracy("square", ["circle"]) == 0.0
    with pytest.raises(DataError):
        vqa_accuracy("x", [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes.", "yes"),  # a period not followed by a digit goes
        ("3.5", "3.5"),  # a decimal point stays
        ("hot-dog", "hot dog"),  # a mark not touching a space becomes a space
        ("hot - dog", "hot  dog"),  # a mark touching a space is deleted
        ("1,000", "1000"),  # a digit,digit group deletes every mark
        ("a/b", "a b"),
        ("what?!", "what  "),
    ],
)
def test_process_punctuation(text: str, expected: str):
    assert process_punctuation(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Two dogs", "2 dogs"),
        ("none", "0"),
        ("an apple a day", "apple day"),
        ("dont   know", "don't know"),
        ("isnt it", "isn't it"),
        ("ten", "10"),
    ],
)
def test_process_digit_article(text: str, expected: str):
    assert process_digit_article(text) == expected


def test_normalize_answer_chains_the_rules():
    assert normalize_answer(" The Two-Dogs.\n") == "2 dogs"


def test_per_answer_and_question_type_averages():
    records = [
        VqaRecord(1, "yes", ("yes",) * 10, "yes/no", "is the"),
        VqaRecord(2, "no", ("yes",) * 10, "yes/no", "is the"),
        VqaRecord(3, "2", ("2",) * 10, "number", "how many"),
        VqaRecord(4, "red", ("red",) * 2 + ("blue",) * 8, "other", "what color is the"),
    ]
    scores = score_vqa_records(records)
    assert scores.per_question == pytest.approx({1: 1.0, 2: 0.0, 3: 1.0, 4: 0.6})
    assert scores.accuracy == pytest.approx(2.6 / 4)
    assert scores.per_answer_type == pytest.approx({"yes/no": 0.5, "number": 1.0, "other": 0.6})
    assert scores.per_question_type["is the"] == pytest.approx(0.5)
    metrics = scores.metrics(question_types=True)
    assert metrics["accuracy/yes/no"] == pytest.approx(0.5)
    assert metrics["accuracy/question_type/how many"] == pytest.approx(1.0)


def test_metric_object_drops_repeated_question_ids():
    metric = VqaMetrics()
    metric.update([1, 2], ["yes", "no"], [["yes"], ["yes"]], ["yes/no"] * 2, ["t"] * 2)
    metric.update([2], ["yes"], [["yes"]], ["yes/no"], ["t"])  # a padded repeat: ignored
    assert len(metric) == 2
    assert metric.compute()["accuracy"] == pytest.approx(0.5)
    merged = merge_vqa_records(
        [[VqaRecord(1, "a", ("a",))], [VqaRecord(1, "b", ("a",)), VqaRecord(2, "a", ("a",))]]
    )
    assert [r.prediction for r in merged] == ["a", "a"]
    with pytest.raises(ValueError):
        metric.update([3], ["a", "b"], [["a"]])
    with pytest.raises(DataError):
        metric.update([3], ["a"], [[]])


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    metric = VqaMetrics()
    # Rank 0 holds questions 0, 2, 4; rank 1 holds 1, 3 and a padded repeat of 0 (with a wrong answer).
    ids = [0, 2, 4] if rank == 0 else [1, 3, 0]
    predictions = ["yes", "no", "yes"] if rank == 0 else ["yes", "yes", "no"]
    metric.update(ids, predictions, [["yes"]] * 3, ["yes/no"] * 3, ["t"] * 3)
    result = metric.compute()
    with open(f"{out}.{rank}", "w") as handle:
        json.dump(result, handle)
    dist.destroy_process_group()


def test_metric_is_gathered_and_deduplicated_across_ranks(tmp_path):
    os.environ["OMP_NUM_THREADS"] = "1"
    out = str(tmp_path / "result")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), out), nprocs=2, join=True)
    results = [json.loads(open(f"{out}.{rank}").read()) for rank in range(2)]
    # 5 distinct questions, 4 right (question 2 is wrong; the repeat of 0 is dropped): 0.8 on both ranks.
    assert results[0] == results[1]
    assert results[0]["accuracy"] == pytest.approx(0.8)
