"""Room-to-Room (R2R) navigation metrics, as the published evaluation code computes them.

An episode is scored from its reference path ``R`` (viewpoints, start to goal), the agent's trajectory ``Q``
(one viewpoint per step, repeated when the agent turned in place) and ``d(u, v)``, the shortest-path
distance in metres between two viewpoints of the episode's house (the navigation graph's Dijkstra distance).
``goal = R[-1]``, ``d_th`` is ``success_distance`` (3 m).

Restated from peteanderson80/Matterport3DSimulator ``tasks/R2R/eval.py`` (``Evaluation._score_item`` and
``Evaluation.score``; Anderson et al. 2018, *Vision-and-Language Navigation*):

* ``navigation_error``: ``d(Q[-1], goal)``;
* ``success_rate``: 1 when ``navigation_error < d_th`` (strictly less), else 0;
* ``oracle_success_rate``: 1 when ``min_t d(Q[t], goal) < d_th`` (the oracle stopping rule), else 0;
* ``trajectory_length``: ``sum_t d(Q[t], Q[t+1])`` (a turn in place adds 0);
* ``SPL`` (Anderson et al. 2018, *On Evaluation of Embodied Navigation Agents*):
  ``S * l / max(l, p, 0.01)`` with ``S`` the success above, ``p`` the trajectory length and ``l`` the
  shortest-path distance from the start ``R[0]`` to the goal (eval.py's ``shortest_path_lengths``, which
  writes ``sp / max(length, sp)``). The ``0.01`` floor is that of the later R2R evaluators (the
  VLN-DUET family, e.g. CrystalSixone/PASTS ``map_nav_src/r2r/eval_utils.py`` beside its ``env.py``); it
  only matters when start and goal coincide, where it makes SPL 0 instead of 0/0. Those evaluators take
  ``l`` as the reference path's length, which equals the start-goal distance whenever the reference is a
  shortest path, as R2R's are.

The path-fidelity metrics read the *predicted node sequence* ``P``: the trajectory with consecutive repeats
collapsed (so turning in place does not change them).

* ``nDTW`` (Ilharco et al. 2019, *General Evaluation for Instruction Conditioned Navigation using Dynamic
  Time Warping*; restated from google-research/google-research ``r4r/dtw.py``, ``DTW.__call__``):
  ``DTW(P, R)`` is the least total cost ``sum d(P[i], R[j])`` over monotone alignments of the two
  sequences, by the recursion ``D[i][j] = d(P[i-1], R[j-1]) + min(D[i-1][j], D[i][j-1], D[i-1][j-1])``,
  ``D[0][0] = 0`` and ``inf`` elsewhere on the border; ``nDTW = exp(-DTW(P, R) / (|R| * d_th))``.
* ``SDTW``: ``S * nDTW`` with ``S`` the success of ``success_rate`` (``< d_th``; dtw.py writes ``<=``, which
  differs only at exactly ``d_th``; the issue fixes SDTW's success to be the same as the success rate's).
* ``CLS`` (Jain et al. 2019, *Stay on the Path: Instruction Fidelity in Vision-and-Language Navigation*;
  restated from google-research/google-research ``r4r/cls.py``, ``CLS.__call__``): path coverage
  ``PC = mean_{r in R} exp(-min_{p in P} d(r, p) / d_th)``, expected length ``EPL = PC * length(R)``, length
  score ``LS = EPL / (EPL + |EPL - length(P)|)`` and ``CLS = PC * LS`` (no other parameter). A path's
  length is ``sum d`` between consecutive nodes (cls.py sums the graph's edge weights, the same on a path of
  graph edges). When ``EPL`` and ``length(P)`` are both 0 (a one-viewpoint reference and an agent that never
  moved) cls.py gives 0/0; here ``LS = 1`` (the lengths agree).

:func:`score_episode` scores one episode, :func:`score_r2r` averages over episodes (the keys of
:data:`R2R_METRIC_NAMES`, as written to ``metrics.json``), and :class:`R2RMetrics` is the metric object an
evaluation loop feeds, correct under DDP: it gathers every rank's scored episodes and keeps the first of
each ``instr_id`` (the repeats distributed samplers add).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from vltk.errors import DataError
from vltk.metrics.gather import first_per_key, gather_parts

logger = logging.getLogger(__name__)

Distance = Callable[[str, str], float]
"""Shortest-path distance in metres between two viewpoints of one scan."""

SUCCESS_DISTANCE = 3.0
SPL_FLOOR = 0.01
R2R_METRIC_NAMES = (
    "success_rate",
    "oracle_success_rate",
    "SPL",
    "navigation_error",
    "trajectory_length",
    "nDTW",
    "SDTW",
    "CLS",
)


@dataclass(frozen=True)
class R2RRecord:
    """One evaluated R2R episode.

    Attributes:
        instr_id: the instruction's id (``PATHID_K``), the id metrics de-duplicate by.
        scan: the house (Matterport scan id) whose navigation graph gives the distances.
        reference: the reference path's viewpoints, start to goal.
        trajectory: the agent's viewpoint at each step, starting at the start (consecutive repeats where
            it turned in place).
    """

    instr_id: str
    scan: str
    reference: list[str]
    trajectory: list[str]


def collapse_repeats(nodes: Sequence[str]) -> list[str]:
    """``nodes`` without consecutive repeats: ``[a, a, b, b, a] -> [a, b, a]``."""
    return [node for index, node in enumerate(nodes) if index == 0 or node != nodes[index - 1]]


def path_length(nodes: Sequence[str], distance: Distance) -> float:
    """``sum d(nodes[t], nodes[t+1])`` in metres (0 for fewer than two nodes)."""
    return sum(distance(a, b) for a, b in zip(nodes[:-1], nodes[1:]))


def dtw(prediction: Sequence[str], reference: Sequence[str], distance: Distance) -> float:
    """Dynamic time warping cost between two node sequences (``r4r/dtw.py``'s recursion, O(n*m))."""
    previous = [0.0] + [math.inf] * len(reference)  # row i-1 of D; row 0 is [0, inf, ...]
    for node in prediction:
        current = [math.inf] * (len(reference) + 1)
        for j, target in enumerate(reference, start=1):
            best = min(previous[j], current[j - 1], previous[j - 1])
            current[j] = distance(node, target) + best
        previous = current
    return previous[len(reference)]


def ndtw(prediction: Sequence[str], reference: Sequence[str], distance: Distance, threshold: float) -> float:
    """``exp(-DTW(P, R) / (|R| * d_th))`` (Ilharco et al. 2019)."""
    return math.exp(-dtw(prediction, reference, distance) / (len(reference) * threshold))


def cls_score(
    prediction: Sequence[str], reference: Sequence[str], distance: Distance, threshold: float
) -> float:
    """Coverage weighted by length score, ``PC * LS`` (Jain et al. 2019, ``r4r/cls.py``)."""
    coverage = sum(math.exp(-min(distance(r, p) for p in prediction) / threshold) for r in reference)
    coverage /= len(reference)
    expected = coverage * path_length(reference, distance)
    predicted = path_length(prediction, distance)
    denominator = expected + abs(expected - predicted)
    length_score = expected / denominator if denominator > 0 else 1.0
    return coverage * length_score


def check_record(record: R2RRecord) -> None:
    """A :class:`~vltk.errors.DataError` naming the episode when it cannot be scored."""
    if not record.reference:
        raise DataError(f"episode {record.instr_id!r}: the reference path is empty")
    if not record.trajectory:
        raise DataError(f"episode {record.instr_id!r}: the trajectory is empty")
    if record.trajectory[0] != record.reference[0]:
        raise DataError(
            f"episode {record.instr_id!r}: the trajectory starts at {record.trajectory[0]!r}, not at the "
            f"reference path's start {record.reference[0]!r}"
        )


def score_episode(
    record: R2RRecord, distance: Distance, success_distance: float = SUCCESS_DISTANCE
) -> dict[str, float]:
    """The eight metrics of one episode (keys of :data:`R2R_METRIC_NAMES`; see the module docstring)."""
    check_record(record)
    start, goal = record.reference[0], record.reference[-1]
    navigation_error = distance(record.trajectory[-1], goal)
    oracle_error = min(distance(node, goal) for node in record.trajectory)
    success = float(navigation_error < success_distance)
    trajectory_length = path_length(record.trajectory, distance)
    shortest = distance(start, goal)
    predicted = collapse_repeats(record.trajectory)
    path_fidelity = ndtw(predicted, record.reference, distance, success_distance)
    return {
        "success_rate": success,
        "oracle_success_rate": float(oracle_error < success_distance),
        "SPL": success * shortest / max(shortest, trajectory_length, SPL_FLOOR),
        "navigation_error": navigation_error,
        "trajectory_length": trajectory_length,
        "nDTW": path_fidelity,
        "SDTW": success * path_fidelity,
        "CLS": cls_score(predicted, record.reference, distance, success_distance),
    }


def distance_for(record: R2RRecord, distances: Mapping[str, Distance]) -> Distance:
    """The episode's scan's distance function, or a :class:`~vltk.errors.DataError` naming the scan."""
    try:
        return distances[record.scan]
    except KeyError:
        raise DataError(
            f"episode {record.instr_id!r}: no navigation graph for scan {record.scan!r}"
        ) from None


def mean_scores(per_episode: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean of each of :data:`R2R_METRIC_NAMES` over episodes (zeros when there are none)."""
    if not per_episode:
        return {name: 0.0 for name in R2R_METRIC_NAMES}
    return {name: sum(scores[name] for scores in per_episode) / len(per_episode) for name in R2R_METRIC_NAMES}


def score_r2r(
    records: Iterable[R2RRecord],
    distances: Mapping[str, Distance],
    success_distance: float = SUCCESS_DISTANCE,
) -> dict[str, float]:
    """Means over ``records`` of :func:`score_episode`, ``distances`` giving each scan's distance function."""
    return mean_scores(
        [score_episode(record, distance_for(record, distances), success_distance) for record in records]
    )


@dataclass(frozen=True)
class R2REpisodeScores:
    """One scored episode, what :class:`R2RMetrics` gathers across ranks."""

    instr_id: str
    scores: dict[str, float]


class R2RMetrics:
    """R2R metrics over one evaluation split (``update`` per batch, ``compute`` once, ``reset``).

    Episodes are scored as they arrive (on the rank that played them); ``compute`` gathers the per-episode
    scores of every rank (a collective under DDP: every rank must call it) and keeps the first of each
    ``instr_id``, so a split is scored once per episode whatever the number of processes.

    Args:
        distances: scan id -> shortest-path distance function of that scan's navigation graph.
        success_distance: the success threshold ``d_th`` in metres (also nDTW's and CLS's).
        sync_across_ranks: gather episodes from every DDP rank in :meth:`compute`.
    """

    def __init__(
        self,
        distances: Mapping[str, Distance],
        success_distance: float = SUCCESS_DISTANCE,
        sync_across_ranks: bool = True,
    ) -> None:
        self.distances = distances
        self.success_distance = success_distance
        self.sync_across_ranks = sync_across_ranks
        self._episodes: dict[str, R2REpisodeScores] = {}

    def update(self, records: Iterable[R2RRecord]) -> None:
        """Score and add episodes; an ``instr_id`` seen before (a padded repeat) is ignored."""
        for record in records:
            if record.instr_id in self._episodes:
                continue
            scores = score_episode(record, distance_for(record, self.distances), self.success_distance)
            self._episodes[record.instr_id] = R2REpisodeScores(record.instr_id, scores)

    def reset(self) -> None:
        self._episodes.clear()

    def __len__(self) -> int:
        return len(self._episodes)

    def episode_scores(self) -> list[R2REpisodeScores]:
        """Every scored episode of the split, from all ranks (a collective under DDP), one per instr_id."""
        parts = gather_parts(list(self._episodes.values()), self.sync_across_ranks)
        return first_per_key(parts, key=lambda episode: episode.instr_id)

    def compute(self) -> dict[str, float]:
        """The means of :data:`R2R_METRIC_NAMES` over the split; the same on every rank."""
        episodes = self.episode_scores()
        if not episodes:
            logger.warning("R2RMetrics.compute() called before any update(); returning zeros")
        return mean_scores([episode.scores for episode in episodes])
