"""The official VQA accuracy on hand-made cases whose values follow from the official code's behaviour
(GT-Vision-Lab/VQA ``PythonEvaluationTools/vqaEvaluation/vqaEval.py``: its head, a013f00, and the earlier
loop, e.g. at c4e6a0e), and the exact match that stands in for it with one answer per question."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch.multiprocessing as mp

from vltk.errors import DataError, VltkError
from vltk.metrics.vqa import (
    EARLIER_RULE,
    HEAD_RULE,
    VQA_RULES,
    VqaMetrics,
    VqaRecord,
    exact_match,
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


def test_rule_names():
    assert HEAD_RULE == "a013f00" and EARLIER_RULE == "pre-a013f00"
    assert VQA_RULES == (HEAD_RULE, EARLIER_RULE)
    with pytest.raises(VltkError, match="a013f00"):
        vqa_accuracy("yes", ["yes"] * 10, rule="head")
    with pytest.raises(VltkError):
        VqaMetrics(rule="c4e6a0e")


@pytest.mark.parametrize("rule", VQA_RULES)
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
def test_ten_choose_nine_average(rule: str, matches: int, expected: float):
    answers = ["cat"] * matches + [f"other{i}" for i in range(10 - matches)]
    assert vqa_accuracy("cat", answers, rule=rule) == pytest.approx(expected, abs=1e-12)


def test_head_rule_known_values():
    # Unanimous humans: nothing is normalised and the comparison is case-sensitive.
    assert vqa_accuracy("yes", ["yes"] * 10) == 1.0
    assert vqa_accuracy("Yes", ["yes"] * 10) == 0.0
    assert vqa_accuracy("yes.", ["yes"] * 10) == 0.0
    assert vqa_accuracy("two", ["2"] * 10) == 0.0
    assert vqa_accuracy("Yes", ["Yes"] * 10) == 1.0
    # Disagreeing humans: both sides get processPunctuation + processDigitArticle (which lower-cases).
    assert vqa_accuracy("two", _ten(("2", 9), ("3", 1))) == 1.0
    assert vqa_accuracy("The dog.", _ten(("dog", 2), ("a dog", 2), ("puppy", 6))) == 1.0  # 4 x "dog"
    assert vqa_accuracy("2", _ten(("two", 4), ("three", 6))) == 1.0  # 4 x "2"
    assert vqa_accuracy("two", _ten(("2", 3), ("3", 7))) == pytest.approx(0.9)
    assert vqa_accuracy("dont know", _ten(("don't know", 1), ("no", 9))) == pytest.approx(0.3)
    assert vqa_accuracy("hot-dog", _ten(("hot dog", 3), ("sandwich", 7))) == pytest.approx(0.9)
    assert vqa_accuracy("Yes", _ten(("yes", 9), ("no", 1))) == 1.0
    # "Yes" and "yes" among the humans are a disagreement; normalised, they are ten "yes".
    assert vqa_accuracy("YES", _ten(("Yes", 5), ("yes", 5))) == 1.0
    assert vqa_accuracy("red", _ten(("Red", 4), ("blue", 6))) == 1.0


def test_head_rule_cleans_whitespace_on_both_sides():
    assert vqa_accuracy("  yes\t", ["yes"] * 10) == 1.0
    assert vqa_accuracy("yes", ["yes\n"] * 10) == 1.0
    # Cleaned first, ten " yes " are unanimous: no normalisation, so "yes." still misses.
    assert vqa_accuracy("yes.", [" yes "] * 10) == 0.0
    assert vqa_accuracy("yes", _ten(("yes ", 4), ("no", 6))) == 1.0


def test_earlier_rule_known_values():
    rule = EARLIER_RULE
    # The prediction is always normalised; unanimous humans are compared raw.
    assert vqa_accuracy("Yes", ["yes"] * 10, rule=rule) == 1.0
    assert vqa_accuracy("yes.", ["yes"] * 10, rule=rule) == 1.0
    assert vqa_accuracy("two", ["2"] * 10, rule=rule) == 1.0
    assert (
        vqa_accuracy("Yes", ["Yes"] * 10, rule=rule) == 0.0
    )  # the prediction is lower-cased, not the humans
    assert vqa_accuracy("two", _ten(("2", 9), ("3", 1)), rule=rule) == 1.0
    # Disagreeing humans get processPunctuation only: no lower-casing, number words, articles or strip.
    assert vqa_accuracy("2", _ten(("two", 4), ("three", 6)), rule=rule) == 0.0
    assert vqa_accuracy("The dog.", _ten(("dog", 2), ("a dog", 2), ("puppy", 6)), rule=rule) == pytest.approx(
        0.6
    )
    assert vqa_accuracy("red", _ten(("Red", 4), ("blue", 6)), rule=rule) == 0.0
    assert vqa_accuracy("yes", _ten(("yes ", 4), ("no", 6)), rule=rule) == 0.0
    assert vqa_accuracy("yes", ["yes\n"] * 10, rule=rule) == 0.0
    assert vqa_accuracy("hot dog", _ten(("hot-dog", 3), ("sandwich", 7)), rule=rule) == pytest.approx(0.9)


def test_identical_entries_leave_out_together():
    # The official leave-one-out keeps the entries that differ from the current one (whole dicts): with
    # every other field equal, all equal answers leave together.
    assert vqa_accuracy("yes", ["yes"] * 10, answer_fields=[0] * 10) == 0.0
    # "yes" entries leave all 4 "yes" (0 matches); "no" entries keep 4 (1.0): 6/10.
    assert vqa_accuracy("yes", _ten(("yes", 4), ("no", 6)), answer_fields=[0] * 10) == pytest.approx(0.6)
    assert vqa_accuracy("yes", _ten(("yes", 4), ("no", 6))) == 1.0  # distinct entries (answer_id)
    # Two of three "yes" entries share their fields: those leave 1 match (1/3), the third 2 (2/3), the
    # seven "no" entries keep 3 (1): (2/3 + 2/3 + 7) / 10.
    fields = [0, 0, 1] + [2] * 7
    got = vqa_accuracy("yes", _ten(("yes", 3), ("no", 7)), answer_fields=fields)
    assert got == pytest.approx((2 / 3 + 2 / 3 + 7) / 10, abs=1e-12)
    # Equality is after processing: "Dog" and "dog" both become "dog" once the humans disagree.
    assert vqa_accuracy(
        "dog", _ten(("Dog", 1), ("dog", 3), ("cat", 6)), answer_fields=[0] * 10
    ) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        vqa_accuracy("yes", ["yes"] * 10, answer_fields=[0] * 9)


def test_one_answer_scores_zero_officially_and_by_exact_match_in_vltk():
    assert vqa_accuracy("circle", ["circle"]) == 0.0  # nothing is left once the only answer is left out
    assert exact_match("circle", "circle") == 1.0
    assert exact_match("The Circle.", "circle") == 1.0
    assert exact_match("two", "2") == 1.0
    assert exact_match("square", "circle") == 0.0
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
        ("Don't", "Don't"),  # apostrophes and case are kept
        ("a:b", "a:b"),  # ':' is not in the list
        ("." * 40, "." * 8),  # re.UNICODE (32) passed as sub()'s count: 32 periods removed
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
        ("eleven", "eleven"),
        ("Im", "im"),  # lower-cased first, so the table's "Im" entry never matches
        ("somebody'd", "somebodyd"),  # the official table's reversed entry
    ],
)
def test_process_digit_article(text: str, expected: str):
    assert process_digit_article(text) == expected


def test_normalize_answer_chains_the_rules():
    assert normalize_answer(" The Two-Dogs.\n") == "2 dogs"


def test_per_answer_and_question_type_means_of_question_accuracies():
    records = [
        VqaRecord(1, "yes", ("yes",) * 10, "yes/no", "is the"),
        VqaRecord(2, "Yes", ("yes",) * 10, "yes/no", "is the"),  # unanimous, case-sensitive: 0
        VqaRecord(3, "two", ("2",) * 9 + ("3",), "number", "how many"),
        VqaRecord(4, "red", ("red",) * 2 + ("blue",) * 8, "other", "what color is the"),
        VqaRecord(5, "red", ("red",) * 3 + ("blue",) * 7, "other", "is the"),
    ]
    scores = score_vqa_records(records)
    assert scores.name == "accuracy" and scores.rule == HEAD_RULE
    assert scores.per_question == pytest.approx({1: 1.0, 2: 0.0, 3: 1.0, 4: 0.6, 5: 0.9})
    assert scores.overall == pytest.approx(3.5 / 5, abs=1e-12)
    assert scores.per_answer_type == pytest.approx({"yes/no": 0.5, "number": 1.0, "other": 0.75})
    assert scores.per_question_type == pytest.approx(
        {"is the": 1.9 / 3, "how many": 1.0, "what color is the": 0.6}
    )
    metrics = scores.metrics(question_types=True)
    assert metrics["accuracy"] == scores.overall
    assert metrics["accuracy/yes/no"] == pytest.approx(0.5)
    assert metrics["accuracy/question_type/is the"] == pytest.approx(1.9 / 3)
    assert "accuracy/question_type/how many" not in scores.metrics()
    earlier = score_vqa_records(records, rule=EARLIER_RULE)
    assert earlier.rule == EARLIER_RULE
    assert earlier.per_question[2] == 1.0  # the earlier rule normalises the prediction
    with pytest.raises(DataError, match="scored twice"):
        score_vqa_records(records + records[:1])


def test_single_answer_splits_report_exact_match():
    records = [
        VqaRecord(1, "Circle.", ("circle",), "shape", "what shape"),
        VqaRecord(2, "red", ("blue",), "color", "what color"),
        VqaRecord(3, "two", ("2",), "color", "what color"),
    ]
    scores = score_vqa_records(records)
    assert scores.name == "exact_match"
    assert scores.metrics(question_types=True) == pytest.approx(
        {"exact_match": 2 / 3, "exact_match/color": 0.5, "exact_match/shape": 1.0,
         "exact_match/question_type/what color": 0.5, "exact_match/question_type/what shape": 1.0}
    )  # fmt: skip
    assert "exact match" in scores.describe()


def test_mixed_split_keeps_the_official_accuracy_and_warns(caplog: pytest.LogCaptureFixture):
    records = [VqaRecord(1, "circle", ("circle",)), VqaRecord(2, "yes", ("yes",) * 10)]
    with caplog.at_level(logging.WARNING, logger="vltk.metrics.vqa"):
        scores = score_vqa_records(records)
    assert scores.name == "accuracy" and scores.per_question == {1: 0.0, 2: 1.0}
    assert "1 of 2 questions have one human answer" in caplog.text


def test_metric_object_drops_repeated_question_ids():
    metric = VqaMetrics()
    metric.update([1, 2], ["yes", "no"], [["yes"], ["yes"]], ["yes/no"] * 2, ["t"] * 2)
    metric.update([2], ["yes"], [["yes"]], ["yes/no"], ["t"])  # a padded repeat: ignored
    assert len(metric) == 2
    assert metric.compute() == pytest.approx({"exact_match": 0.5, "exact_match/yes/no": 0.5})
    merged = merge_vqa_records(
        [[VqaRecord(1, "a", ("a",))], [VqaRecord(1, "b", ("a",)), VqaRecord(2, "a", ("a",))]]
    )
    assert [r.prediction for r in merged] == ["a", "a"]
    with pytest.raises(ValueError):
        metric.update([3], ["a", "b"], [["a"]])
    with pytest.raises(DataError):
        metric.update([3], ["a"], [[]])


def test_metric_object_applies_its_rule():
    for rule, expected in ((HEAD_RULE, 0.0), (EARLIER_RULE, 1.0)):
        metric = VqaMetrics(rule=rule)
        metric.update([7], ["Yes"], [["yes"] * 10], ["yes/no"], ["is"])
        assert metric.compute()["accuracy"] == expected


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    metric = VqaMetrics()
    # Rank 0 holds questions 0, 2, 4; rank 1 holds 1, 3 and a padded repeat of 0 (with a wrong answer).
    ids = [0, 2, 4] if rank == 0 else [1, 3, 0]
    predictions = ["yes", "no", "yes"] if rank == 0 else ["yes", "yes", "no"]
    metric.update(ids, predictions, [["yes"] * 10] * 3, ["yes/no"] * 3, ["t"] * 3)
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
