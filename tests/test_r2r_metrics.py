"""R2R metrics (vltk.metrics.r2r): values worked out by hand on small graphs, the published doctest values
of google-research r4r's dtw.py and cls.py, an independent brute-force implementation on random graphs,
and DDP de-duplication by instr_id."""

from __future__ import annotations

import functools
import heapq
import json
import math
import os
import random

import pytest
import torch.multiprocessing as mp

from vltk.errors import DataError
from vltk.metrics.r2r import (
    R2R_METRIC_NAMES,
    R2RMetrics,
    R2RRecord,
    cls_score,
    collapse_repeats,
    dtw,
    ndtw,
    score_episode,
    score_r2r,
)

Graph = dict[str, dict[str, float]]


def make_graph(edges: list[tuple[str, str, float]]) -> Graph:
    graph: Graph = {}
    for a, b, weight in edges:
        graph.setdefault(a, {})[b] = weight
        graph.setdefault(b, {})[a] = weight
    return graph


def dijkstra(graph: Graph, source: str) -> dict[str, float]:
    best = {source: 0.0}
    queue = [(0.0, source)]
    while queue:
        cost, node = heapq.heappop(queue)
        if cost > best[node]:
            continue
        for neighbour, weight in graph[node].items():
            if cost + weight < best.get(neighbour, math.inf):
                best[neighbour] = cost + weight
                heapq.heappush(queue, (cost + weight, neighbour))
    return best


def distance_of(graph: Graph):
    table = {node: dijkstra(graph, node) for node in graph}
    return lambda a, b: table[a][b]


# A line of 5 viewpoints 1 m apart: v0 - v1 - v2 - v3 - v4.
LINE = distance_of(make_graph([(f"v{i}", f"v{i + 1}", 1.0) for i in range(4)]))
LINE_REFERENCE = ["v0", "v1", "v2", "v3", "v4"]
# A square of 1 m sides: a - b - c - d - a.
SQUARE = distance_of(make_graph([("a", "b", 1.0), ("b", "c", 1.0), ("c", "d", 1.0), ("d", "a", 1.0)]))
# s - m - g (2 m each, the reference), then g - x (2.9 m) - y (0.2 m): x is 2.9 m and y 3.1 m from the goal.
NEAR = distance_of(make_graph([("s", "m", 2.0), ("m", "g", 2.0), ("g", "x", 2.9), ("x", "y", 0.2)]))


def episode(reference, trajectory, instr_id="1_0", scan="house"):
    return R2RRecord(instr_id, scan, list(reference), list(trajectory))


def test_perfect_path_scores_one():
    scores = score_episode(episode(LINE_REFERENCE, LINE_REFERENCE), LINE)
    assert set(scores) == set(R2R_METRIC_NAMES)
    assert scores == pytest.approx(
        {
            "navigation_error": 0.0,
            "oracle_success_rate": 1.0,
            "success_rate": 1.0,
            "trajectory_length": 4.0,
            "SPL": 1.0,
            "nDTW": 1.0,
            "SDTW": 1.0,
            "CLS": 1.0,
        }
    )


def test_stopping_at_the_start():
    scores = score_episode(episode(LINE_REFERENCE, ["v0"]), LINE)
    # DTW: v0 aligned with every reference node, 0 + 1 + 2 + 3 + 4 = 10; |R| = 5, d_th = 3.
    coverage = sum(math.exp(-i / 3) for i in range(5)) / 5
    # EPL = 4 * coverage, PL = 0: LS = EPL / (EPL + EPL) = 1/2.
    assert scores == pytest.approx(
        {
            "navigation_error": 4.0,
            "oracle_success_rate": 0.0,
            "success_rate": 0.0,
            "trajectory_length": 0.0,
            "SPL": 0.0,
            "nDTW": math.exp(-10 / 15),
            "SDTW": 0.0,
            "CLS": coverage / 2,
        }
    )


def test_turning_in_place_is_collapsed():
    trajectory = ["v0", "v0", "v1", "v1", "v1", "v2", "v3", "v4", "v4"]
    assert collapse_repeats(trajectory) == LINE_REFERENCE
    scores = score_episode(episode(LINE_REFERENCE, trajectory), LINE)
    assert scores["trajectory_length"] == pytest.approx(4.0)
    assert (scores["SPL"], scores["nDTW"], scores["SDTW"], scores["CLS"]) == pytest.approx((1, 1, 1, 1))


def test_repeats_off_the_reference_are_collapsed_for_ndtw():
    # Reference v0 v1 v2; the agent overshoots to v3, turns there 3 times, comes back to v2.
    trajectory = ["v0", "v1", "v2", "v3", "v3", "v3", "v3", "v2"]
    scores = score_episode(episode(["v0", "v1", "v2"], trajectory), LINE)
    # P = v0 v1 v2 v3 v2: DTW = 1 (v3 against v2); uncollapsed it would be 4 (each v3 costs 1).
    assert dtw(trajectory, ["v0", "v1", "v2"], LINE) == pytest.approx(4.0)
    # PL = 4, l = 2: SPL = 2 / 4; CLS: PC = 1, EPL = 2, LS = 2 / (2 + 2).
    assert scores == pytest.approx(
        {
            "navigation_error": 0.0,
            "oracle_success_rate": 1.0,
            "success_rate": 1.0,
            "trajectory_length": 4.0,
            "SPL": 0.5,
            "nDTW": math.exp(-1 / 9),
            "SDTW": math.exp(-1 / 9),
            "CLS": 0.5,
        }
    )


def test_ending_at_2_9_m_succeeds_and_at_3_1_m_fails():
    reference = ["s", "m", "g"]  # l = 4
    near = score_episode(episode(reference, ["s", "m", "g", "x"]), NEAR)
    assert near == pytest.approx(
        {
            "navigation_error": 2.9,
            "oracle_success_rate": 1.0,
            "success_rate": 1.0,
            "trajectory_length": 6.9,
            "SPL": 4 / 6.9,
            "nDTW": math.exp(-2.9 / 9),
            "SDTW": math.exp(-2.9 / 9),
            "CLS": 4 / 6.9,
        }
    )
    far = score_episode(episode(reference, ["s", "m", "g", "x", "y"]), NEAR)
    assert far == pytest.approx(
        {
            "navigation_error": 3.1,
            "oracle_success_rate": 1.0,
            "success_rate": 0.0,
            "trajectory_length": 7.1,
            "SPL": 0.0,
            "nDTW": math.exp(-6.0 / 9),
            "SDTW": 0.0,
            "CLS": 4 / 7.1,
        }
    )
    # The threshold is a parameter: at 3.2 m the second one succeeds too.
    assert score_episode(episode(reference, ["s", "m", "g", "x", "y"]), NEAR, 3.2)["success_rate"] == 1.0


def test_the_other_way_round_the_square():
    scores = score_episode(episode(["a", "b", "c"], ["a", "d", "c"]), SQUARE)
    # DTW = 0 + 2 + 0 (d against b); coverage: b is 1 m from the path; EPL = 2 PC, PL = 2, so LS = PC.
    coverage = (2 + math.exp(-1 / 3)) / 3
    assert scores == pytest.approx(
        {
            "navigation_error": 0.0,
            "oracle_success_rate": 1.0,
            "success_rate": 1.0,
            "trajectory_length": 2.0,
            "SPL": 1.0,
            "nDTW": math.exp(-2 / 9),
            "SDTW": math.exp(-2 / 9),
            "CLS": coverage**2,
        }
    )


def grid_distance(a: str, b: str) -> float:
    (ax, ay), (bx, by) = (map(int, a.split(",")), map(int, b.split(",")))
    return abs(ax - bx) + abs(ay - by)  # shortest paths on an unobstructed grid graph


def test_published_doctest_values_of_r4r():
    """google-research r4r/dtw.py and r4r/cls.py doctests, on nx.grid_graph([3, 4]) (unit edges)."""
    reference = ["0,0", "1,0", "2,1", "3,2"]
    prediction = ["0,0", "1,0", "2,0", "3,0"]
    assert dtw(prediction, reference, grid_distance) == pytest.approx(3.0)
    assert ndtw(prediction, reference, grid_distance, 3.0) == pytest.approx(0.77880078307140488)
    cls_reference = ["0,0", "1,0", "1,1", "2,1", "2,2", "3,2"]
    assert cls_score(cls_reference, cls_reference, grid_distance, 3.0) == pytest.approx(1.0)
    detour = ["0,0", "0,1", "1,1", "2,1", "3,1", "3,2"]
    assert cls_score(detour, cls_reference, grid_distance, 3.0) == pytest.approx(0.81994915125863865)
    # The doctest calls ``cls(reference, prediction)`` against the signature ``(prediction, reference)``:
    # its third value is the CLS of the path below taken as the *reference*. (The detour is symmetric.)
    shifted = ["0,1", "1,1", "2,1", "3,1"]
    assert cls_score(cls_reference, shifted, grid_distance, 3.0) == pytest.approx(0.44197196102702557)
    assert cls_score(shifted, cls_reference, grid_distance, 3.0) != pytest.approx(0.44197196102702557)


# ---- an independent implementation of the definitions, for random graphs --------------------------------


def brute_force_scores(reference, trajectory, distance, threshold=3.0):
    goal = reference[-1]
    predicted = [node for i, node in enumerate(trajectory) if i == 0 or trajectory[i - 1] != node]

    @functools.cache
    def warp(i: int, j: int) -> float:  # DTW of predicted[:i] and reference[:j]
        if i == 0 and j == 0:
            return 0.0
        if i == 0 or j == 0:
            return math.inf
        return distance(predicted[i - 1], reference[j - 1]) + min(
            warp(i - 1, j), warp(i, j - 1), warp(i - 1, j - 1)
        )

    def length(nodes):
        return sum(distance(nodes[k], nodes[k + 1]) for k in range(len(nodes) - 1))

    error = distance(trajectory[-1], goal)
    success = 1.0 if error < threshold else 0.0
    walked = length(trajectory)
    shortest = distance(reference[0], goal)
    fidelity = math.exp(-warp(len(predicted), len(reference)) / (len(reference) * threshold))
    coverage = sum(math.exp(-min(distance(r, p) for p in predicted) / threshold) for r in reference)
    coverage /= len(reference)
    expected = coverage * length(reference)
    return {
        "navigation_error": error,
        "oracle_success_rate": 1.0 if min(distance(v, goal) for v in trajectory) < threshold else 0.0,
        "success_rate": success,
        "trajectory_length": walked,
        "SPL": success * shortest / max(shortest, walked, 0.01),
        "nDTW": fidelity,
        "SDTW": success * fidelity,
        "CLS": coverage * expected / (expected + abs(expected - length(predicted))),
    }


def random_house(rng: random.Random, size: int) -> Graph:
    """A connected graph of ``size`` viewpoints in a 12 m x 12 m plane, Euclidean edge lengths."""
    points = {f"p{i}": (rng.uniform(0, 12), rng.uniform(0, 12)) for i in range(size)}
    names = list(points)

    def edge(a, b):
        return (a, b, math.dist(points[a], points[b]))

    edges = [edge(names[i], names[rng.randrange(i)]) for i in range(1, size)]  # a spanning tree
    edges += [edge(*rng.sample(names, 2)) for _ in range(size // 2)]
    return make_graph(edges)


def shortest_path(graph: Graph, source: str, target: str) -> list[str]:
    distance = dijkstra(graph, target)
    path = [source]
    while path[-1] != target:
        node = path[-1]
        path.append(min(graph[node], key=lambda n: graph[node][n] + distance[n]))
    return path


def random_trajectory(rng: random.Random, graph: Graph, start: str) -> list[str]:
    trajectory = [start]
    for _ in range(rng.randrange(0, 12)):
        if rng.random() < 0.25:
            trajectory.append(trajectory[-1])  # turn in place
        else:
            trajectory.append(rng.choice(sorted(graph[trajectory[-1]])))
    return trajectory


def test_agrees_with_a_brute_force_implementation_on_random_graphs():
    rng = random.Random(0)
    records, distances, expected = [], {}, []
    for house in range(40):
        graph = random_house(rng, rng.randrange(2, 12))
        scan = f"house{house}"
        distances[scan] = distance_of(graph)
        for k in range(5):
            start, goal = rng.sample(sorted(graph), 2)
            reference = shortest_path(graph, start, goal)
            if rng.random() < 0.5:
                trajectory = reference + random_trajectory(rng, graph, goal)[1:]  # overshoot or stay
            else:
                trajectory = random_trajectory(rng, graph, start)
            record = R2RRecord(f"{house}_{k}", scan, reference, trajectory)
            records.append(record)
            truth = brute_force_scores(reference, trajectory, distances[scan])
            expected.append(truth)
            assert score_episode(record, distances[scan]) == pytest.approx(truth, abs=1e-6, rel=0)
    assert 0 < sum(t["success_rate"] for t in expected) < len(expected)  # both outcomes were exercised
    means = {name: sum(t[name] for t in expected) / len(expected) for name in R2R_METRIC_NAMES}
    assert score_r2r(records, distances) == pytest.approx(means, abs=1e-6, rel=0)


# ---- errors, the metric object, DDP -----------------------------------------------------------------------


def test_episodes_that_cannot_be_scored_are_named():
    with pytest.raises(DataError, match="'7_1'.*not at the reference path's start"):
        score_episode(episode(LINE_REFERENCE, ["v1", "v2"], instr_id="7_1"), LINE)
    with pytest.raises(DataError, match="trajectory is empty"):
        score_episode(episode(LINE_REFERENCE, []), LINE)
    with pytest.raises(DataError, match="reference path is empty"):
        score_episode(episode([], ["v0"]), LINE)
    with pytest.raises(DataError, match="no navigation graph for scan 'elsewhere'"):
        score_r2r([episode(LINE_REFERENCE, ["v0"], scan="elsewhere")], {"house": LINE})


def test_score_r2r_is_the_mean_and_zero_when_empty():
    perfect = episode(LINE_REFERENCE, LINE_REFERENCE, instr_id="1_0")
    stopped = episode(LINE_REFERENCE, ["v0"], instr_id="1_1")
    means = score_r2r([perfect, stopped], {"house": LINE})
    assert means["success_rate"] == 0.5
    assert means["navigation_error"] == pytest.approx(2.0)
    assert means["nDTW"] == pytest.approx((1 + math.exp(-10 / 15)) / 2)
    assert score_r2r([], {}) == {name: 0.0 for name in R2R_METRIC_NAMES}


def test_metric_object_keeps_the_first_of_each_instr_id():
    metric = R2RMetrics({"house": LINE})
    metric.update([episode(LINE_REFERENCE, LINE_REFERENCE, instr_id="1_0")])
    metric.update([episode(LINE_REFERENCE, ["v0"], instr_id="1_0"), episode(LINE_REFERENCE, ["v0"], "1_1")])
    assert len(metric) == 2
    assert metric.compute()["success_rate"] == 0.5
    metric.reset()
    assert len(metric) == 0
    assert metric.compute()["SPL"] == 0.0


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    metric = R2RMetrics({"house": LINE})
    # Rank 0 holds 1_0 (perfect) and 1_2 (stopped); rank 1 holds 1_1 (stopped) and a padded repeat of 1_0
    # (with a different, failed trajectory) that must be dropped.
    if rank == 0:
        records = [episode(LINE_REFERENCE, LINE_REFERENCE, "1_0"), episode(LINE_REFERENCE, ["v0"], "1_2")]
    else:
        records = [episode(LINE_REFERENCE, ["v0"], "1_1"), episode(LINE_REFERENCE, ["v0", "v1"], "1_0")]
    metric.update(records)
    with open(f"{out}.{rank}", "w") as handle:
        json.dump(metric.compute(), handle)
    dist.destroy_process_group()


def test_metric_is_gathered_and_deduplicated_across_ranks(tmp_path):
    os.environ["OMP_NUM_THREADS"] = "1"
    out = str(tmp_path / "result")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), out), nprocs=2, join=True)
    results = [json.loads(open(f"{out}.{rank}").read()) for rank in range(2)]
    single = score_r2r(
        [
            episode(LINE_REFERENCE, LINE_REFERENCE, "1_0"),
            episode(LINE_REFERENCE, ["v0"], "1_1"),
            episode(LINE_REFERENCE, ["v0"], "1_2"),
        ],
        {"house": LINE},
    )
    assert results[0] == results[1]
    assert results[0] == pytest.approx(single)
    assert results[0]["success_rate"] == pytest.approx(1 / 3)
