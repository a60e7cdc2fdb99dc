"""R2R-houses quality over seeds: the panoramic follower, seq2seq, an instruction-blind and a vision-blind
follower, and the random walk, on val_unseen (houses never seen in training), val_seen and the test houses.

Each trained run is ``vltk train navigation --config CONFIG --seed S [--set ...]`` in a fresh process
(through ``_timed_cli.py``: ``fit_s`` is the time inside ``Trainer.fit``, training and validation every
epoch), then ``vltk evaluate best.ckpt --split val_unseen`` and ``--split val_seen`` (the generalisation
gap); the run's own ``metrics.json`` is the test houses. The houses are generated once, before the runs,
into one cache (the generation time is reported apart). The random walk (Anderson et al. 2018's
``RandomAgent``, :func:`vltk.tasks.navigation.r2r.baselines.random_walk`) is played in this process.

    python benchmarks/r2r_houses_quality.py                                   # every run, 3 seeds
    python benchmarks/r2r_houses_quality.py --runs panoramic --seeds 42 43 44 --parallel 2
    python benchmarks/r2r_houses_quality.py --runs panoramic --seeds 42 --set trainer.max_epochs=1

``--parallel 2`` trains two runs at once (each on one core, ``num_threads: 1``); their ``fit`` times are
then those of a machine shared by two runs. Targets (issue 16): the panoramic follower reaches success >=
70% and SPL >= 0.6 on val_unseen in <= 20 min of training on 2 CPU cores; the random walk and the
instruction-blind and vision-blind agents stay at least 25 points of success below it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import (
    add_json_argument,
    fmt_spread,
    load,
    machine,
    publish,
    read_metrics,
    run_vltk,
    spread,
    verdict,
)  # noqa: E402

RUNS = {  # name: config and overrides
    "panoramic": ("r2r_houses", []),
    "seq2seq": ("r2r_houses_seq2seq", []),
    "instruction_blind": ("r2r_houses", ["model.use_instruction=false"]),
    "vision_blind": ("r2r_houses", ["model.use_vision=false"]),
}
METRICS = ("success_rate", "SPL", "oracle_success_rate", "navigation_error", "trajectory_length", "nDTW",
           "SDTW", "CLS")  # fmt: skip
SPLITS = ("val_unseen", "val_seen", "test")
VLTK = (
    str(Path(sys.executable).with_name("vltk")) if Path(sys.executable).with_name("vltk").exists() else "vltk"
)


def generate(cache: Path, overrides: list[str]) -> float:
    """Generate the houses of the default config (with the data overrides) into ``cache``; seconds."""
    from vltk.tasks.runner import build_datamodule, load_task_config, task_entry

    os.environ["VLTK_CACHE"] = str(cache)
    cfg = load_task_config("navigation", "r2r_houses", [o for o in overrides if o.startswith("data.")])
    start = time.monotonic()
    datamodule = build_datamodule(task_entry("navigation").for_config(cfg), cfg)
    datamodule.prepare_data()
    return time.monotonic() - start


def evaluate(checkpoint: Path, split: str, out: Path, env: dict) -> dict:
    subprocess.run(
        [VLTK, "evaluate", str(checkpoint), "--split", split, "--output", str(out)],
        check=True, stdout=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    return json.loads(out.read_text())["metrics"]


def train(name: str, seed: int, work: Path, overrides: list[str], cache: Path) -> dict:
    config, extra = RUNS[name]
    run_dir = work / f"{name}-{seed}"
    args = ["train", "navigation", "--config", config, "--seed", str(seed)]
    args += [a for o in extra + overrides for a in ("--set", o)]
    env = dict(os.environ, VLTK_CACHE=str(cache), OMP_NUM_THREADS="1")
    times = run_vltk(
        args + ["--run-dir", str(run_dir), "--set", "trainer.enable_progress_bar=false"],
        timing_path=work / f"{name}-{seed}-timing.json", env=env, cwd=work,
    )  # fmt: skip
    best = run_dir / "checkpoints" / "best.ckpt"
    metrics = {"test": read_metrics(run_dir)}
    for split in ("val_unseen", "val_seen"):
        metrics[split] = evaluate(best, split, work / f"{name}-{seed}-{split}.json", env)
    record = {"run": name, "seed": seed, "command": "vltk " + " ".join(args), **times, "metrics": metrics}
    print(json.dumps(record), flush=True)
    return record


def random_walk_scores(cache: Path, overrides: list[str], seeds: list[int]) -> list[dict]:
    """The random walk's metrics per split, once per seed (its random headings)."""
    from vltk.metrics.r2r import R2RRecord, score_r2r
    from vltk.tasks.navigation.r2r.baselines import random_walk
    from vltk.tasks.navigation.r2r.inference import env_episode
    from vltk.tasks.runner import build_datamodule, load_task_config, task_entry

    os.environ["VLTK_CACHE"] = str(cache)
    cfg = load_task_config("navigation", "r2r_houses", [o for o in overrides if o.startswith("data.")])
    datamodule = build_datamodule(task_entry("navigation").for_config(cfg), cfg)
    datamodule.setup()
    env = datamodule.environment(30)  # RandomAgent's 30-step episodes
    distances = {scan: graph.distance for scan, graph in env.graphs.items()}
    rows = []
    for seed in seeds:
        metrics = {}
        for split in SPLITS:
            items = datamodule.split(split)
            trajectories = random_walk(env, [env_episode(item) for item in items], seed=seed)
            records = [R2RRecord(item.instr_id, item.scan, list(item.path), [s[0] for s in trajectory])
                       for item, trajectory in zip(items, trajectories)]  # fmt: skip
            metrics[split] = score_r2r(records, distances)
        rows.append({"run": "random_walk", "seed": seed, "metrics": metrics, "fit_s": 0.0, "wall_s": 0.0})
    return rows


def summary_table(results: list[dict], split: str) -> str:
    names = list(dict.fromkeys(r["run"] for r in results))
    head = "| run | seeds | training: Trainer.fit (min) | " + " | ".join(METRICS) + " |"
    lines = [head, "|" + "---|" * (3 + len(METRICS))]
    for name in names:
        rows = [r for r in results if r["run"] == name]
        cells = [fmt_spread([r["metrics"][split][m] for r in rows], ".3f") for m in METRICS]
        fit = fmt_spread([r["fit_s"] for r in rows], ".1f", 1 / 60) if name != "random_walk" else "-"
        lines.append(f"| {name} | {len(rows)} | {fit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(results: list[dict]) -> list[str]:
    full = [r for r in results if r["run"] == "panoramic"]
    if not full:
        return ["- the panoramic follower was not run"]
    success = spread([r["metrics"]["val_unseen"]["success_rate"] * 100 for r in full])
    spl = spread([r["metrics"]["val_unseen"]["SPL"] for r in full])
    fit = spread([r["fit_s"] / 60 for r in full])
    lines = [
        f"- panoramic val_unseen success >= 70% (mean of {len(full)} seeds): "
        f"{verdict(success['mean'], 70.0, fmt='.1f', unit='%')}; lowest seed {success['min']:.1f}%.",
        f"- panoramic val_unseen SPL >= 0.6: {verdict(spl['mean'], 0.6)}; lowest seed {spl['min']:.3f}.",
        "- training <= 20 min (Trainer.fit, slowest seed): "
        f"{verdict(fit['max'], 20.0, higher=False, fmt='.1f', unit=' min')}.",
    ]
    for name in ("random_walk", "instruction_blind", "vision_blind"):
        rows = [r for r in results if r["run"] == name]
        if rows:
            theirs = spread([r["metrics"]["val_unseen"]["success_rate"] * 100 for r in rows])["mean"]
            lines.append(
                f"- {name} at least 25 points of val_unseen success below the panoramic follower: "
                f"{theirs:.1f}% vs {success['mean']:.1f}%, "
                f"{verdict(success['mean'] - theirs, 25.0, fmt='.1f', unit=' points')}."
            )
    if len(full) < 3:
        lines.append(f"- only {len(full)} seed(s) of the panoramic follower: the issue asks for 3.")
    return lines


def seed_table(results: list[dict]) -> str:
    lines = ["| run | seed | command | fit (min) | val_unseen success | val_unseen SPL | val_seen success | "
             "test success |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        m = r["metrics"]
        command = f"`{r['command']}`" if "command" in r else "(in-process)"
        lines.append(
            f"| {r['run']} | {r['seed']} | {command} | {r['fit_s'] / 60:.1f} | "
            f"{m['val_unseen']['success_rate']:.3f} | {m['val_unseen']['SPL']:.3f} | "
            f"{m['val_seen']['success_rate']:.3f} | {m['test']['success_rate']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="+", choices=[*RUNS, "random_walk"], default=[*RUNS, "random_walk"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--baseline-seeds", nargs="+", type=int, default=None,
                        help="seeds of the seq2seq and blind runs (default: --seeds)")  # fmt: skip
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    parser.add_argument("--parallel", type=int, default=1, help="training runs at once (one core each)")
    parser.add_argument(
        "--cache", type=Path, default=None, help="the houses' cache (default: a temporary one)"
    )
    add_json_argument(parser)
    args = parser.parse_args()
    before = load()
    with tempfile.TemporaryDirectory(prefix="vltk-r2r-bench-") as tmp:
        work = Path(tmp)
        cache = args.cache or work / "cache"
        generation_s = generate(cache, args.overrides)
        jobs = []
        for name in [n for n in args.runs if n in RUNS]:
            seeds = args.seeds if name == "panoramic" else (args.baseline_seeds or args.seeds)
            jobs += [(name, seed) for seed in seeds]
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            results = list(pool.map(lambda job: train(*job, work, args.overrides, cache), jobs))
        if "random_walk" in args.runs:
            results += random_walk_scores(cache, args.overrides, args.seeds)
    sections = [f"### {split}\n\n{summary_table(results, split)}" for split in SPLITS]
    gap = [r for r in results if r["run"] == "panoramic"]
    gap_line = ""
    if gap:
        seen = spread([r["metrics"]["val_seen"]["success_rate"] * 100 for r in gap])["mean"]
        unseen = spread([r["metrics"]["val_unseen"]["success_rate"] * 100 for r in gap])["mean"]
        gap_line = (
            f"\n\nval_seen vs val_unseen success of the panoramic follower: {seen:.1f}% vs {unseen:.1f}% "
            f"(gap {seen - unseen:.1f} points)."
        )
    markdown = (
        f"R2R houses (built in, generated in {generation_s:.0f} s), `benchmarks/r2r_houses_quality.py "
        f"{' '.join(sys.argv[1:])}`; {machine()}; {args.parallel} run(s) at a time, load {before} before.\n\n"
        + "\n\n".join(sections)
        + gap_line
        + "\n\nTargets:\n\n"
        + "\n".join(targets(results))
        + "\n\nPer seed:\n\n"
        + seed_table(results)
        + "\n"
    )
    publish(markdown, {"results": results, "generation_s": generation_s}, args.json)


if __name__ == "__main__":
    main()
