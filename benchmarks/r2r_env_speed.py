"""Steps per second of the R2R graph environment (``vltk.tasks.navigation.r2r.env.R2REnv``) on one core.

Generated houses shaped like Matterport scans (a jittered grid of ``--viewpoints`` viewpoints 2 m apart,
joined to their grid neighbours and some diagonals: about 4 neighbours each, one storey step per row), view
features ``[36, D]`` in a memory-mapped ``.npy`` read a viewpoint at a time (as the feature store is), and
``--batch`` episodes per batch from a random start to a goal 4-6 hops away (R2R's path lengths). Each
batched step is ``observe()`` + ``teacher_panoramic()`` + ``step_panoramic()`` (the panoramic loop of an
imitation-learning agent without the model); ``reset`` is inside the timing. One step counts one running
episode taking one action; the ``stop`` actions are counted separately, so the headline rate counts moves
only. The low-level loop (``observe_low_level()`` + ``teacher_low_level()`` + ``step_low_level()``) is
timed the same way. Run it on one core:

    OMP_NUM_THREADS=1 python benchmarks/r2r_env_speed.py [--batch 64 --viewpoints 49 --dim 128] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy loads its thread pools

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, machine, publish, verdict  # noqa: E402

from vltk.tasks.navigation.r2r.env import EnvEpisode, R2REnv  # noqa: E402
from vltk.tasks.navigation.r2r.graph import ScanGraph  # noqa: E402

TARGET = 5000.0  # panoramic environment steps per second on one core (issue 16)


class MappedFeatures:
    """View features in a memory-mapped ``[N, 36, D]`` float32 ``.npy`` (the layout of the feature store)."""

    def __init__(self, graphs: dict[str, ScanGraph], dim: int, directory: Path, seed: int) -> None:
        keys = [(scan, viewpoint) for scan, graph in graphs.items() for viewpoint in graph.viewpoints]
        rng = np.random.default_rng(seed)
        path = directory / "views.npy"
        np.save(path, rng.standard_normal((len(keys), 36, dim), dtype=np.float32))
        self.rows = np.load(path, mmap_mode="r")  # [N, 36, D]
        self.index = {key: row for row, key in enumerate(keys)}
        self.dim = dim

    def features(self, scan: str, viewpoint: str) -> np.ndarray:
        return np.array(self.rows[self.index[scan, viewpoint]], dtype=np.float32)  # [36, D]

    def check_covers(self, graphs) -> None:
        for scan, graph in graphs.items():
            missing = next((v for v in graph.viewpoints if (scan, v) not in self.index), None)
            if missing is not None:
                raise KeyError(f"viewpoint {missing} of scan {scan}")


def house(scan: str, viewpoints: int, rng: np.random.Generator) -> ScanGraph:
    """A jittered grid, 2 m apart, joined to grid neighbours (90% kept) and 2 in 5 diagonals."""
    side = int(np.ceil(np.sqrt(viewpoints)))
    names = [f"{scan}_{i:03d}" for i in range(viewpoints)]
    jitter = rng.uniform(-0.4, 0.4, size=(viewpoints, 2))
    points = {
        name: np.array([i % side * 2.0 + jitter[i, 0], i // side * 2.0 + jitter[i, 1], (i // side) * 0.2])
        for i, name in enumerate(names)
    }
    edges = set()
    for i in range(viewpoints):
        row, col = divmod(i, side)
        right = col < side - 1 and rng.random() < 0.9
        up = rng.random() < 0.9 or col == 0
        diagonal = col < side - 1 and rng.random() < 0.4
        for j, keep in ((i + 1, right), (i + side, up), (i + side + 1, diagonal)):
            if keep and j < viewpoints:
                edges.add((names[i], names[j]))
    adjacency: dict[str, dict[str, float]] = {name: {} for name in names}
    for a, b in sorted(edges):
        adjacency[a][b] = adjacency[b][a] = float(np.linalg.norm(points[a] - points[b]))
    return ScanGraph(scan=scan, viewpoints=tuple(names), positions=points, _adjacency=adjacency)


def episodes(graphs: dict[str, ScanGraph], count: int, rng: np.random.Generator) -> list[EnvEpisode]:
    """``count`` episodes, each from a random start to a goal 4-6 hops away along a shortest path."""
    scans = list(graphs)
    made: list[EnvEpisode] = []
    while len(made) < count:
        graph = graphs[scans[int(rng.integers(len(scans)))]]
        start, goal = rng.choice(graph.viewpoints, size=2, replace=False)
        if not np.isfinite(graph.distance(start, goal)):
            continue
        path = tuple(graph.shortest_path(start, goal))
        if 5 <= len(path) <= 7:
            heading = float(rng.uniform(0.0, 2.0 * np.pi))
            made.append(EnvEpisode(f"{len(made)}_0", graph.scan, start, heading, path))
    return made


def fastest_median(rates: list[float]) -> dict:
    """The best (highest) and median of per-repeat rates."""
    return {"best": max(rates), "median": statistics.median(rates), "all": rates}


def run(env: R2REnv, batches: list[list[EnvEpisode]], low_level: bool) -> dict[str, float]:
    """Every batch played to the end by the teacher; seconds, moves and stops."""
    moves = stops = 0
    start = time.perf_counter()
    for batch in batches:
        env.reset(batch)
        while True:
            running = ~env.done
            if not running.any():
                break
            if low_level:
                env.observe_low_level()
                actions = env.teacher_low_level()
                env.step_low_level(actions)
                stopped = int((running & (actions == 5)).sum())
            else:
                observation = env.observe()
                actions = env.teacher_panoramic()
                stopped = int((running & (actions >= observation.candidate_mask.sum(axis=1))).sum())
                env.step_panoramic(actions)
            stops += stopped
            moves += int(running.sum()) - stopped
    return {"seconds": time.perf_counter() - start, "moves": moves, "stops": stops}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64, help="episodes per batch")
    parser.add_argument("--scans", type=int, default=8, help="generated houses")
    parser.add_argument("--viewpoints", type=int, default=49, help="viewpoints per house")
    parser.add_argument("--dim", type=int, default=128, help="view feature size D")
    parser.add_argument("--batches", type=int, default=40, help="batches per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it run?")
    add_json_argument(parser)
    args = parser.parse_args()
    if args.quick:
        args.batches, args.repeats = 2, 1
    rng = np.random.default_rng(args.seed)
    graphs = {f"house{i}": house(f"house{i}", args.viewpoints, rng) for i in range(args.scans)}
    degree = np.mean([len(g.neighbours(v)) for g in graphs.values() for v in g.viewpoints])
    pool = episodes(graphs, args.batch * args.batches, rng)
    batches = [pool[i : i + args.batch] for i in range(0, len(pool), args.batch)]
    with tempfile.TemporaryDirectory(prefix="r2r-env-bench-") as tmp:
        env = R2REnv(graphs, MappedFeatures(graphs, args.dim, Path(tmp), args.seed), max_steps=60)
        run(env, batches[:1], low_level=False)  # warm-up: the per-scan tables are built here
        run(env, batches[:1], low_level=True)
        results = {"panoramic": [], "low_level": []}
        for _ in range(args.repeats):
            for name in results:
                results[name].append(run(env, batches, low_level=name == "low_level"))
    rates = {}
    for name, runs in results.items():
        rates[name] = {
            "moves_per_s": fastest_median([r["moves"] / r["seconds"] for r in runs]),
            "actions_per_s": fastest_median([(r["moves"] + r["stops"]) / r["seconds"] for r in runs]),
            "moves": runs[0]["moves"],
            "stops": runs[0]["stops"],
        }
    headline = rates["panoramic"]["moves_per_s"]["median"]
    text = (
        f"R2R graph environment, one process, `OMP_NUM_THREADS=1`: {args.scans} generated houses of "
        f"{args.viewpoints} viewpoints ({degree:.1f} neighbours each on average), batches of {args.batch} "
        f"episodes (4-6 hops), D={args.dim} features from a memory-mapped array, {args.batches} batches x "
        f"{args.repeats} repeats ({machine()}).\n\n"
        "| loop | moves/s median (best) | moves + stops per s median (best) | moves | stops |\n"
        "|---|---|---|---|---|\n"
        + "".join(
            f"| {name} | {r['moves_per_s']['median']:,.0f} ({r['moves_per_s']['best']:,.0f}) | "
            f"{r['actions_per_s']['median']:,.0f} ({r['actions_per_s']['best']:,.0f}) | {r['moves']} | "
            f"{r['stops']} |\n"
            for name, r in rates.items()
        )
        + f"\nTarget (issue 16): >= {TARGET:,.0f} panoramic steps/s on one core (moves only): "
        f"{verdict(headline, TARGET, fmt=',.0f', unit=' steps/s')}.\n"
    )
    data = {"args": vars(args) | {"json": None}, "degree": degree, "rates": rates, "steps_per_s": headline}
    publish(text, data, args.json)
    print(json.dumps({"benchmark": "r2r_env_speed", "panoramic_steps_per_s": headline,
                      "low_level_steps_per_s": rates["low_level"]["moves_per_s"]["median"]}))  # fmt: skip


if __name__ == "__main__":
    main()
