"""VisDial ranking metrics: R@k, MRR, mean rank and NDCG on hand-checked cases."""

from __future__ import annotations

import math

import pytest
import torch

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
