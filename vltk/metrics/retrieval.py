"""Answer-ranking metrics of visual dialog as VisDial defines them (Das et al. 2017, *Visual Dialog*, §6;
the VisDial v1.0 challenge added NDCG over dense relevance annotations).

Every round offers ``O`` candidate answers (100 in VisDial); a model ranks them (rank 1 = best). With
``g`` the rank of the ground-truth answer:

* ``R@k`` = the fraction of rounds with ``g <= k`` (k = 1, 5, 10);
* ``MRR`` = the mean of ``1 / g``;
* ``mean_rank`` = the mean of ``g`` (lower is better);
* ``NDCG`` (rounds with dense annotations only): with ``K`` the number of options of non-zero relevance,
  ``DCG = sum_{i=1..K} rel(option at predicted rank i) / log2(i + 1)``, divided by the same sum over the
  options sorted by true relevance, averaged over annotated rounds. This is the definition of the
  challenge's evaluation code (visdial-challenge-starter-pytorch ``NDCG``): the cut-off is ``K``, not ``O``.

Scores become ranks with :func:`scores_to_ranks`: higher score = better rank, equal scores ranked by option
order (a stable sort, so results never depend on the sort's whim). Ranks files (EvalAI's layout,
``[{"image_id", "round_id", "ranks": [O ints]}]``, ``ranks[i]`` = the rank of option ``i``) carry ranks
directly.

:class:`DialogRankingMetrics` is the object a Lightning system feeds; like
:class:`~vltk.metrics.VqaMetrics` it gathers every rank's rounds under DDP and drops the repeats that
distributed samplers add, by ``(image_id, round_id)``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from vltk.metrics.gather import first_per_key, gather_parts

logger = logging.getLogger(__name__)

RECALL_CUTOFFS = (1, 5, 10)


def scores_to_ranks(scores: Tensor) -> Tensor:
    """Ranks of options from their scores: ``[..., O]`` float -> ``[..., O]`` long, 1 = highest score.

    Ties are ranked by option order (the earlier option gets the better rank).
    """
    order = torch.sort(-scores.float(), dim=-1, stable=True).indices  # [..., O] option ids, best first
    ranks = torch.empty_like(order)
    positions = torch.arange(1, scores.shape[-1] + 1, device=scores.device).expand_as(order)  # [..., O]
    return ranks.scatter_(-1, order, positions)


def ndcg(ranks: Sequence[int] | Tensor, relevance: Sequence[float] | Tensor) -> float:
    """VisDial's NDCG of one round: ``ranks[i]`` is option ``i``'s rank, ``relevance[i]`` its relevance.

    The cut-off is the number of options with non-zero relevance; a round with no relevant option scores 0
    (the challenge's code divides 0 by 0 there; such rounds do not occur in VisDial's annotations).
    """
    ranks = torch.as_tensor(ranks, dtype=torch.long)  # [O]
    relevance = torch.as_tensor(relevance, dtype=torch.float64)  # [O]
    relevant = int((relevance != 0).sum())
    if relevant == 0:
        return 0.0
    discounts = torch.log2(torch.arange(relevant, dtype=torch.float64) + 2.0)  # [K]: log2(i + 1), i = 1..K
    predicted_order = torch.argsort(ranks, stable=True)[:relevant]  # [K] options at ranks 1..K
    ideal = torch.sort(relevance, descending=True).values[:relevant]  # [K]
    dcg = float((relevance[predicted_order] / discounts).sum())
    best = float((ideal / discounts).sum())
    return dcg / best


@dataclass(frozen=True)
class RoundRanking:
    """One evaluated round.

    Attributes:
        image_id: the dialog's image id.
        round_id: 1-based round number (VisDial's ``round_id``).
        gt_rank: the rank of the ground-truth answer, ``None`` when the round has no ground truth.
        ndcg: the round's NDCG, ``None`` when it has no dense annotation.
        round_type: the question's type when the data says it (shapes_dialog), else ``""``.
    """

    image_id: Hashable
    round_id: int
    gt_rank: int | None
    ndcg: float | None = None
    round_type: str = ""


@dataclass
class DialogScores:
    """Metrics over a split, overall and per question type."""

    overall: dict[str, float]
    per_type: dict[str, dict[str, float]]
    rounds: int
    annotated_rounds: int

    def metrics(self, *, types: bool = False) -> dict[str, float]:
        """``{"R@1", "R@5", "R@10", "MRR", "mean_rank", "NDCG"}`` (and ``"<name>/<type>"`` per type)."""
        out = dict(self.overall)
        if types:
            for round_type, values in sorted(self.per_type.items()):
                out.update({f"{name}/{round_type}": value for name, value in values.items()})
        return out


def _sparse_metrics(gt_ranks: Sequence[int]) -> dict[str, float]:
    count = len(gt_ranks)
    out = {f"R@{k}": sum(rank <= k for rank in gt_ranks) / count for k in RECALL_CUTOFFS}
    out["MRR"] = sum(1.0 / rank for rank in gt_ranks) / count
    out["mean_rank"] = sum(gt_ranks) / count
    return out


def score_rankings(records: Iterable[RoundRanking]) -> DialogScores:
    """R@k, MRR and mean rank over rounds with a ground truth; NDCG over rounds with dense annotations."""
    records = list(records)
    ranked = [r for r in records if r.gt_rank is not None]
    annotated = [r.ndcg for r in records if r.ndcg is not None]
    overall = _sparse_metrics([r.gt_rank for r in ranked]) if ranked else {}
    if annotated:
        overall["NDCG"] = sum(annotated) / len(annotated)
    by_type: dict[str, list[int]] = defaultdict(list)
    for record in ranked:
        if record.round_type:
            by_type[record.round_type].append(record.gt_rank)
    per_type = {name: _sparse_metrics(ranks) for name, ranks in by_type.items()}
    return DialogScores(overall, per_type, rounds=len(ranked), annotated_rounds=len(annotated))


def merge_rankings(parts: Iterable[Iterable[RoundRanking]]) -> list[RoundRanking]:
    """Concatenate several ranks' rounds, keeping the first of each ``(image_id, round_id)``."""
    return first_per_key(parts, lambda record: (record.image_id, record.round_id))


class DialogRankingMetrics:
    """VisDial ranking metrics over a whole evaluation split, correct under DDP.

    Usage in a LightningModule: ``update`` with every batch's option scores (or ranks), then ``compute`` on
    every rank at the end of the epoch (a collective under DDP) and ``reset``.

    Args:
        sync_across_ranks: gather rounds from every process when ``torch.distributed`` is initialised with
            more than one process.
    """

    def __init__(self, *, sync_across_ranks: bool = True) -> None:
        self.sync_across_ranks = sync_across_ranks
        self._records: dict[tuple[Hashable, int], RoundRanking] = {}
        self._ranks: dict[tuple[Hashable, int], list[int]] = {}

    def update(
        self,
        image_ids: Sequence[Hashable],
        round_ids: Sequence[int],
        ranks: Tensor,
        gt_index: Tensor,
        relevance: Tensor | None = None,
        relevance_mask: Tensor | None = None,
        round_types: Sequence[str] | None = None,
    ) -> None:
        """Add ``M`` rounds; a round seen before (a padded repeat) is ignored.

        Args:
            image_ids: ``M`` image ids.
            round_ids: ``M`` 1-based round numbers.
            ranks: ``[M, O]`` long ranks of every option (:func:`scores_to_ranks`).
            gt_index: ``[M]`` long position of the right option, ``-1`` when unknown.
            relevance: ``[M, O]`` dense relevance, read where ``relevance_mask`` is ``True``.
            relevance_mask: ``[M]`` bool, which rounds have dense annotations.
            round_types: ``M`` question types (``""`` when unknown).
        """
        count = len(image_ids)
        if not count == len(round_ids) == ranks.shape[0] == gt_index.shape[0]:
            raise ValueError(
                f"update() got {count} image ids, {len(round_ids)} round ids, {ranks.shape[0]} rank rows "
                f"and {gt_index.shape[0]} ground-truth indices"
            )
        ranks = ranks.detach().cpu()  # [M, O]
        gt_index = gt_index.detach().cpu()  # [M]
        known = gt_index >= 0  # [M]
        gt_ranks = ranks.gather(1, gt_index.clamp(min=0)[:, None])[:, 0]  # [M]
        annotated = (
            relevance_mask.detach().cpu()
            if relevance_mask is not None
            else torch.zeros(count, dtype=torch.bool)
        )  # [M]
        for i in range(count):
            key = (image_ids[i], int(round_ids[i]))
            if key in self._records:
                continue
            score = ndcg(ranks[i], relevance[i].detach().cpu()) if bool(annotated[i]) else None
            self._records[key] = RoundRanking(
                image_id=key[0],
                round_id=key[1],
                gt_rank=int(gt_ranks[i]) if bool(known[i]) else None,
                ndcg=score,
                round_type=round_types[i] if round_types is not None else "",
            )
            self._ranks[key] = ranks[i].tolist()

    def reset(self) -> None:
        self._records.clear()
        self._ranks.clear()

    def __len__(self) -> int:
        return len(self._records)

    def _gather(self, local: list) -> list[list]:
        return gather_parts(local, self.sync_across_ranks)

    def records(self) -> list[RoundRanking]:
        """Every round of the split, gathered from all ranks (a collective under DDP), de-duplicated."""
        return merge_rankings(self._gather(list(self._records.values())))

    def ranks_rows(self) -> list[dict]:
        """Every round's ranks in EvalAI's submission layout, gathered over ranks (a collective under DDP)."""
        merged: dict[tuple[Hashable, int], list[int]] = {}
        for part in self._gather(list(self._ranks.items())):
            for key, ranks in part:
                merged.setdefault(key, ranks)
        return [
            {"image_id": image_id, "round_id": round_id, "ranks": ranks}
            for (image_id, round_id), ranks in sorted(merged.items(), key=lambda item: item[0])
        ]

    def compute_detailed(self) -> DialogScores:
        records = self.records()
        if not records:
            logger.warning("DialogRankingMetrics.compute() called before any update(); returning nothing")
        return score_rankings(records)

    def compute(self) -> dict[str, float]:
        """The overall metrics over the whole split; equal on every rank."""
        return self.compute_detailed().metrics()


def check_ranks(ranks: Sequence[int], num_options: int, where: str) -> list[int]:
    """``ranks`` as a list if it is a permutation of ``1..num_options``; a ``ValueError`` naming ``where``."""
    if not isinstance(ranks, (list, tuple)) or len(ranks) != num_options:
        size = len(ranks) if isinstance(ranks, (list, tuple)) else type(ranks).__name__
        raise ValueError(f"{where}: 'ranks' must be a list of {num_options} ints, got {size}")
    if any(not isinstance(r, int) or isinstance(r, bool) for r in ranks):
        raise ValueError(f"{where}: 'ranks' must hold ints")
    if sorted(ranks) != list(range(1, num_options + 1)):
        missing = sorted(set(range(1, num_options + 1)) - set(ranks))[:5]
        raise ValueError(
            f"{where}: 'ranks' must be a permutation of 1..{num_options} (each rank once); missing {missing}"
        )
    return list(ranks)
