"""The captioning recipes of issue 17 on the built-in `shapes` captions, over several seeds: the default
cross-entropy run (Show, Attend and Tell on the grid), adaptive attention on the grid, Up-Down on the object
regions, and self-critical sequence training from the default run with each baseline.

For each seed, every run as a user would start it (through ``_timed_cli.py``), in one dataset cache per seed
(so the cross-entropy run's wall time includes generating the data, as the README's first command does):

    vltk train captioning --seed S                                           # cross-entropy
    vltk train captioning --config adaptive --seed S
    vltk train captioning --config updown --seed S                           # builds the region store
    vltk train captioning --config scst --set model.init_from=CKPT --set scst.baseline=B --seed S

    python benchmarks/captioning_recipes.py                          # 3 seeds, every run
    python benchmarks/captioning_recipes.py --seeds 42 --runs cross-entropy scst-mean
    python benchmarks/captioning_recipes.py --set data.num_images=200 --set trainer.max_epochs=1   # quick

Test metrics come from each run's metrics.json (beam 3, the best validation checkpoint); the reward's share of
an SCST step is ``train/reward_time_share`` of its metrics.csv (mean over epochs). Targets (issue 17): SCST
raises test CIDEr-D from about 3.3 to >= 3.6 within 10 more minutes on 2 CPU cores, BLEU-4 not below the
cross-entropy model's, both baselines reported, the reward at most a quarter of a step; Up-Down on the shapes
regions and adaptive attention on the grid each reach at least Show, Attend and Tell's cross-entropy test
CIDEr within the same time budget (the default run's wall time).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import (  # noqa: E402
    add_json_argument,
    fmt_spread,
    publish,
    read_metrics,
    run_vltk,
    spread,
    verdict,
)

RUNS = {
    "cross-entropy": [],
    "adaptive": ["--config", "adaptive"],
    "updown": ["--config", "updown"],
    "scst-greedy": ["--config", "scst", "--set", "scst.baseline=greedy"],
    "scst-mean": ["--config", "scst", "--set", "scst.baseline=mean"],
}
METRICS = ("BLEU-4", "CIDEr", "ROUGE-L")


def reward_share(run_dir: Path) -> float:
    """The mean over epochs of the logged share of SCST step time spent computing rewards."""
    with open(run_dir / "logs" / "metrics.csv") as handle:
        shares = [float(row["train/reward_time_share"]) for row in csv.DictReader(handle)
                  if row.get("train/reward_time_share")]  # fmt: skip
    return sum(shares) / len(shares) if shares else float("nan")


def one_run(name: str, seed: int, work: Path, extra: list[str]) -> dict:
    """``vltk train captioning RUNS[name] --seed S`` (SCST from this seed's cross-entropy run)."""
    run_dir = work / f"{name}-{seed}"
    args = ["train", "captioning", *RUNS[name], "--seed", str(seed), *extra]
    shown = list(args)
    if name.startswith("scst"):
        checkpoint = (work / f"cross-entropy-{seed}" / "checkpoints" / "best.ckpt").resolve()
        args += ["--set", f"model.init_from={checkpoint}"]
        shown += ["--set", "model.init_from=CE_RUN/checkpoints/best.ckpt"]
    times = run_vltk([*args, "--run-dir", str(run_dir), "--set", "trainer.enable_progress_bar=false"],
                     timing_path=work / f"{name}-{seed}-timing.json",
                     env={"VLTK_CACHE": str(work / f"cache-{seed}")}, cwd=work)  # fmt: skip
    result = {"run": name, "seed": seed, "command": "vltk " + " ".join(shown), **times,
              "metrics": read_metrics(run_dir)}  # fmt: skip
    if name.startswith("scst"):
        result["reward_share"] = reward_share(run_dir)
    return result


def summary(results: list[dict], names: list[str]) -> str:
    lines = ["| run | seeds | wall, process start to exit (min) | " + " | ".join(METRICS)
             + " | reward share of an SCST step |", "|" + "---|" * (4 + len(METRICS))]  # fmt: skip
    for name in names:
        rows = [r for r in results if r["run"] == name]
        cells = [fmt_spread([r["metrics"][m] for r in rows]) for m in METRICS]
        share = fmt_spread([r["reward_share"] for r in rows]) if name.startswith("scst") else "-"
        wall = fmt_spread([r["wall_s"] for r in rows], ".1f", 1 / 60)
        lines.append(f"| {name} | {len(rows)} | {wall} | " + " | ".join(cells) + f" | {share} |")
    return "\n".join(lines)


def per_seed(results: list[dict]) -> str:
    lines = ["| run | seed | command | wall (min) | " + " | ".join(METRICS) + " |",
             "|" + "---|" * (4 + len(METRICS))]  # fmt: skip
    for r in results:
        lines.append(f"| {r['run']} | {r['seed']} | `{r['command']}` | {r['wall_s'] / 60:.1f} | "
                     + " | ".join(f"{r['metrics'][m]:.3f}" for m in METRICS) + " |")  # fmt: skip
    return "\n".join(lines)


def _mean(rows: list[dict], metric: str) -> float:
    return spread([r["metrics"][metric] for r in rows])["mean"]


def targets(results: list[dict], names: list[str]) -> list[str]:
    by_run = {name: [r for r in results if r["run"] == name] for name in names}
    ce = by_run.get("cross-entropy", [])
    if not ce:
        return ["- no cross-entropy runs: nothing to compare with."]
    ce_by_seed = {r["seed"]: r for r in ce}
    budget = spread([r["wall_s"] / 60 for r in ce])["mean"]
    start = fmt_spread([r["metrics"]["CIDEr"] for r in ce])
    lines = [f"- cross-entropy (the default run) test CIDEr-D: {start} (the issue's starting point: about "
             f"3.3); mean wall time {budget:.1f} min."]  # fmt: skip
    for name in ("adaptive", "updown"):
        rows = by_run.get(name)
        if rows:
            wall = spread([r["wall_s"] / 60 for r in rows])["mean"]
            lines += [
                f"- {name}: mean test CIDEr at least the default's ({_mean(ce, 'CIDEr'):.3f}): "
                f"{verdict(_mean(rows, 'CIDEr'), _mean(ce, 'CIDEr'))}; lowest seed "
                f"{min(r['metrics']['CIDEr'] for r in rows):.3f}.",
                f"- {name}: within the default's mean wall time ({budget:.1f} min): "
                f"{verdict(wall, budget, higher=False, fmt='.1f', unit=' min')}.",
            ]
    for name in ("scst-greedy", "scst-mean"):
        rows = by_run.get(name)
        if not rows:
            continue
        cider = spread([r["metrics"]["CIDEr"] for r in rows])
        worst_bleu = min(r["metrics"]["BLEU-4"] - ce_by_seed[r["seed"]]["metrics"]["BLEU-4"] for r in rows)
        wall = spread([r["wall_s"] / 60 for r in rows])
        share = spread([r["reward_share"] for r in rows])
        lines += [
            f"- {name}: mean test CIDEr-D >= 3.6: {verdict(cider['mean'], 3.6)}; lowest seed "
            f"{cider['min']:.3f}.",
            f"- {name}: BLEU-4 not below the cross-entropy model's (worst seed, SCST minus CE): "
            f"{verdict(worst_bleu, 0.0)}.",
            f"- {name}: within 10 more minutes (slowest seed, process start to exit): "
            f"{verdict(wall['max'], 10.0, higher=False, fmt='.1f', unit=' min')}.",
            f"- {name}: the reward at most a quarter of an SCST step (largest seed): "
            f"{verdict(share['max'], 0.25, higher=False)}.",
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--set", action="append", default=[], help="an override of every run")
    add_json_argument(parser)
    args = parser.parse_args()
    if any(name.startswith("scst") for name in args.runs) and "cross-entropy" not in args.runs:
        parser.error("the scst runs start from the cross-entropy run: include it in --runs")
    extra = [a for value in args.set for a in ("--set", value)]
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vltk-recipes-bench-") as tmp:
        for seed in args.seeds:
            for name in args.runs:
                results.append(one_run(name, seed, Path(tmp), extra))
                print(per_seed(results[-1:]), flush=True)
    region_store = " and Up-Down building the region store" if "updown" in args.runs else ""
    intro = (
        f"Test split of shapes (beam 3, the best validation checkpoint), seeds {args.seeds}; the SCST runs "
        "start from the same seed's cross-entropy run; one dataset cache per seed, so the cross-entropy run "
        f"includes generating the data{region_store}. Mean ± standard deviation (min-max) over seeds."
    )
    goals = "\n".join(targets(results, args.runs))
    per = per_seed(results)
    text = "\n\n".join([intro, summary(results, args.runs), "Targets:", goals, "Per seed:", per])
    publish(text, {"results": results}, args.json)


if __name__ == "__main__":
    main()
