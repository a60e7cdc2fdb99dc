"""VisDial ranking metrics: R@k, MRR, mean rank and NDCG on hand-checked cases; `vltk score dialog` on
hand-made files (malformed dialogs in the references, non-integer ids)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.metrics.retrieval import (
    DialogRankingMetrics,
    RoundRanking,
    check_ranks,
    merge_rankings,
    ndcg,
    score_rankings,
    scores_to_ranks,
)


def test_scores_to_ranks_orders_by_score_and_breaks_ties_by_option_order():
    scores = torch.tensor([[0.1, 0.5, 0.5, 0.2], [3.0, 2.0, 1.0, 0.0]])
    assert scores_to_ranks(scores).tolist() == [[4, 1, 2, 3], [1, 2, 3, 4]]


def test_scores_to_ranks_keeps_leading_dimensions():
    scores = torch.randn(2, 3, 100)
    ranks = scores_to_ranks(scores)
    assert ranks.shape == (2, 3, 100)
    assert (ranks.sort(dim=-1).values == torch.arange(1, 101)).all()
    best = scores.argmax(dim=-1)  # [2, 3]
    assert (ranks.gather(-1, best[..., None]) == 1).all()


def test_ndcg_matches_the_hand_computation():
    relevance = [1.0, 0.0, 0.5, 0.0]
    # Two relevant options, so K = 2. Predicted top-2 = options 0, 1: DCG = 1/log2(2) + 0/log2(3) = 1.
    ideal = 1.0 + 0.5 / math.log2(3)
    assert ndcg([1, 2, 3, 4], relevance) == pytest.approx(1.0 / ideal)
    # Top-2 = options 1, 0: DCG = 0 + 1/log2(3).
    assert ndcg([2, 1, 3, 4], relevance) == pytest.approx((1.0 / math.log2(3)) / ideal)
    # Perfect order.
    assert ndcg([1, 4, 2, 3], relevance) == pytest.approx(1.0)
    # Relevant options beyond the cut-off K count for nothing.
    assert ndcg([3, 1, 4, 2], relevance) == 0.0


def test_sparse_metrics_on_known_ranks():
    records = [RoundRanking(1, r + 1, gt_rank) for r, gt_rank in enumerate([1, 2, 5, 10, 50])]
    metrics = score_rankings(records).metrics()
    assert metrics["R@1"] == pytest.approx(1 / 5)
    assert metrics["R@5"] == pytest.approx(3 / 5)
    assert metrics["R@10"] == pytest.approx(4 / 5)
    assert metrics["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10 + 1 / 50) / 5)
    assert metrics["mean_rank"] == pytest.approx(68 / 5)
    assert "NDCG" not in metrics  # no round had dense annotations


def test_metric_object_ranks_scores_deduplicates_and_reports_types():
    metric = DialogRankingMetrics()
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.0, 0.1, 0.9]])  # [M=3, O=3]
    ranks = scores_to_ranks(scores)
    gt = torch.tensor([0, 0, -1])  # round 3 has no ground truth
    relevance = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([False, True, False])
    metric.update([7, 7, 7], [1, 2, 3], ranks, gt, relevance, mask, ["colour", "coreference", "count"])
    metric.update([7], [1], ranks[1:2], torch.tensor([1]), None, None, ["colour"])  # a padded repeat: ignored
    detailed = metric.compute_detailed()
    assert detailed.rounds == 2 and detailed.annotated_rounds == 1
    values = detailed.metrics(types=True)
    assert values["R@1"] == pytest.approx(0.5)
    assert values["MRR"] == pytest.approx((1 + 1 / 2) / 2)
    assert values["MRR/colour"] == 1.0 and values["MRR/coreference"] == 0.5
    # Round 2 ranks option 1 (relevance 0.5) first, then option 0 (1.0); K = 2.
    ideal = 1.0 + 0.5 / math.log2(3)
    assert values["NDCG"] == pytest.approx((0.5 + 1.0 / math.log2(3)) / ideal)
    rows = metric.ranks_rows()
    assert [(r["image_id"], r["round_id"]) for r in rows] == [(7, 1), (7, 2), (7, 3)]
    assert rows[0]["ranks"] == [1, 2, 3]


def test_merge_keeps_the_first_copy_of_each_round():
    first = [RoundRanking(1, 1, 3), RoundRanking(1, 2, 1)]
    second = [RoundRanking(1, 1, 99), RoundRanking(2, 1, 2)]
    merged = merge_rankings([first, second])
    assert sorted((r.image_id, r.round_id, r.gt_rank) for r in merged) == [(1, 1, 3), (1, 2, 1), (2, 1, 2)]


@pytest.mark.parametrize(
    ("ranks", "message"),
    [([1, 2], "list of 3 ints"), ([1, 1, 2], "permutation"), ([1, 2, "3"], "ints"), ("123", "list of 3")],
)
def test_check_ranks_names_what_is_wrong(ranks, message):
    with pytest.raises(ValueError, match=message):
        check_ranks(ranks, 3, "row 4")


# ---------------------------------------------------------------------------------- vltk score dialog

NUM_OPTIONS = 100


def visdial_file(path: Path, image_ids: list, rounds: int = 2) -> Path:
    """A VisDial v1.0 dialogs file: one dialog per image id, every round's answer at option ``round``."""
    dialogs = [
        {
            "image_id": image_id,
            "caption": "a red circle",
            "dialog": [
                {"question": 0, "answer": r, "answer_options": list(range(NUM_OPTIONS)), "gt_index": r}
                for r in range(rounds)
            ],
        }
        for image_id in image_ids
    ]
    data = {"questions": ["what colour?"], "answers": [f"answer {i}" for i in range(NUM_OPTIONS)]}
    path.write_text(json.dumps({"split": "val", "data": {**data, "dialogs": dialogs}}), encoding="utf-8")
    return path


def ranks_file(path: Path, image_ids: list, rounds: int = 2) -> Path:
    """Each round ranks its ground truth (option ``round``) first: R@1 = 1 on every scored round."""
    rows = []
    for image_id in image_ids:
        for r in range(rounds):
            ranks = [1 if option == r else option + 2 if option < r else option + 1 for option in range(100)]
            rows.append({"image_id": image_id, "round_id": r + 1, "ranks": ranks})
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def score_dialog(*args: str):
    return CliRunner().invoke(app, ["score", "dialog", *args])


def assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, text


def test_score_dialog_of_good_files(tmp_path: Path) -> None:
    refs = visdial_file(tmp_path / "refs.json", [1, 2, 3])
    preds = ranks_file(tmp_path / "ranks.json", [1, 2, 3])
    out = tmp_path / "m.json"
    result = score_dialog("--predictions", str(preds), "--references", str(refs), "--output", str(out))
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["metrics"]["R@1"] == 1.0 and written["metrics"]["MRR"] == 1.0
    assert "partial" not in written and "PARTIAL" not in result.output


def test_malformed_reference_dialogs_fail_unless_a_partial_score_is_asked_for(tmp_path: Path) -> None:
    refs = visdial_file(tmp_path / "refs.json", [1, "two", 3, 4, 5])
    document = json.loads(refs.read_text())
    document["data"]["dialogs"][3]["dialog"][0]["gt_index"] = 7  # points at the wrong option
    refs.write_text(json.dumps(document), encoding="utf-8")
    preds = ranks_file(tmp_path / "ranks.json", [1, 3, 5])
    args = ["--predictions", str(preds), "--references", str(refs)]
    assert_one_line_error(
        score_dialog(*args),
        "2 of 5 dialogs are malformed and cannot be scored (image_id 'two', 4;",
        "image_id must be an integer, got 'two'",
        "pass --allow-partial to score the 3 others",
    )

    out = tmp_path / "m.json"
    result = score_dialog(*args, "--allow-partial", "--output", str(out))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "PARTIAL: 3 of 5 dialogs" in text
    assert "partial score (--allow-partial)" in text
    written = json.loads(out.read_text())
    assert written["partial"]["scored_dialogs"] == 3 and written["partial"]["skipped_dialogs"] == 2
    assert written["partial"]["skipped_image_ids"] == ["two", 4]
    assert written["metrics"]["R@1"] == 1.0  # the 6 rounds of dialogs 1, 3 and 5


@pytest.mark.parametrize("image_id", ["7", "seven", 7.0, True, None])
def test_non_integer_image_ids_in_the_ranks_are_one_line(tmp_path: Path, image_id) -> None:
    refs = visdial_file(tmp_path / "refs.json", [1, 7])
    rows = json.loads(ranks_file(tmp_path / "ranks.json", [1, 7]).read_text())
    for row in rows[2:]:
        row["image_id"] = image_id
    preds = tmp_path / "ranks.json"
    preds.write_text(json.dumps(rows), encoding="utf-8")
    result = score_dialog("--predictions", str(preds), "--references", str(refs))
    assert_one_line_error(
        result, f"entry 2: image_id must be an integer (as in VisDial and EvalAI), got {image_id!r}", "2 of 4"
    )


def test_allow_partial_applies_to_dialog_only(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["score", "captioning", "--predictions", "p.json", "--references", "r.json", "--allow-partial"]
    )
    assert_one_line_error(result, "--allow-partial do(es) not apply to `vltk score captioning`")
