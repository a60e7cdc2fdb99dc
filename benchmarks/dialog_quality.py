"""shapes_dialog test metrics and wall time of `vltk train dialog` (four configs), over seeds.

Runs ``vltk train dialog [--config NAME] --seed S`` as a user would (through ``_timed_cli.py``, which adds the
time inside ``Trainer.fit``), each run in a fresh dataset cache (generating the 4,000 dialogs is included),
and reads each run's test metrics from its metrics.json:

    python benchmarks/dialog_quality.py                                     # the four configs, 3 seeds
    python benchmarks/dialog_quality.py --runs late_fusion_discriminative question_only --seeds 42

Every test round is ranked among its 100 candidate answers (VisDial definitions: R@k, MRR and mean rank of
the right answer; NDCG over the one densely annotated round per dialog). The coreference columns are the
same metrics over the rounds whose question refers back to an object named earlier in the dialog.
Targets (issue 4): the discriminative model beats question-only by >= 0.15 MRR and beats no-history on the
coreference rounds; each default training at most 20 minutes on 2 cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import (  # noqa: E402
    fmt_spread,
    publish,
    seeded_runs_parser,
    seeded_runs_section,
    set_arguments,
    spread,
    train_seeds,
    verdict,
)

RUNS = {
    "late_fusion_discriminative": ["train", "dialog"],
    "late_fusion_generative": ["train", "dialog", "--config", "generative"],
    "question_only": ["train", "dialog", "--config", "question_only"],
    "no_history": ["train", "dialog", "--config", "no_history"],
}
METRICS = ("R@1", "R@5", "R@10", "MRR", "mean_rank", "NDCG", "R@1/coreference", "MRR/coreference")


def _fmt(name: str) -> str:
    return ".2f" if name.startswith("mean_rank") else ".3f"


def summary_table(results: list[dict], names: list[str]) -> str:
    lines = ["| run | seeds | wall (min) | training: Trainer.fit (min) | " + " | ".join(METRICS) + " |",
             "|" + "---|" * (4 + len(METRICS))]  # fmt: skip
    for name in names:
        rows = [r for r in results if r["run"] == name]
        cells = [fmt_spread([r["metrics"].get(m, float("nan")) for r in rows], _fmt(m)) for m in METRICS]
        lines.append(
            f"| {name} | {len(rows)} | {fmt_spread([r['wall_s'] for r in rows], '.1f', 1 / 60)} | "
            f"{fmt_spread([r['fit_s'] for r in rows], '.1f', 1 / 60)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def seed_table(results: list[dict]) -> str:
    lines = ["| run | seed | command | wall (min) | fit (min) | " + " | ".join(METRICS) + " |",
             "|" + "---|" * (5 + len(METRICS))]  # fmt: skip
    for r in results:
        cells = [f"{r['metrics'].get(m, float('nan')):{_fmt(m)}}" for m in METRICS]
        lines.append(f"| {r['run']} | {r['seed']} | `{r['command']}` | {r['wall_s'] / 60:.1f} | "
                     f"{r['fit_s'] / 60:.1f} | " + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines)


def mean(results: list[dict], run: str, metric: str) -> float:
    values = [r["metrics"].get(metric, float("nan")) for r in results if r["run"] == run]
    return spread(values)["mean"] if values else float("nan")


def targets(results: list[dict]) -> list[str]:
    full, question_only, no_history = "late_fusion_discriminative", "question_only", "no_history"
    lines = []
    if any(r["run"] == full for r in results) and any(r["run"] == question_only for r in results):
        gap = mean(results, full, "MRR") - mean(results, question_only, "MRR")
        lines.append(f"- discriminative minus question-only, mean MRR >= 0.15: {verdict(gap, 0.15)}.")
    if any(r["run"] == full for r in results) and any(r["run"] == no_history for r in results):
        for metric in ("MRR/coreference", "R@1/coreference"):
            gap = mean(results, full, metric) - mean(results, no_history, metric)
            lines.append(f"- discriminative above no-history on coreference rounds, mean {metric} "
                         f"difference > 0: {verdict(gap, 0.0)}.")  # fmt: skip
    for name in RUNS:
        rows = [r for r in results if r["run"] == name]
        if rows:
            slowest = max(r["wall_s"] for r in rows) / 60
            lines.append(f"- {name}: at most 20 minutes end to end (slowest seed): "
                         f"{verdict(slowest, 20.0, higher=False, fmt='.1f', unit=' min')}.")  # fmt: skip
    return lines


def main() -> None:
    args = seeded_runs_parser(__doc__, RUNS, list(RUNS)).parse_args()
    results = train_seeds(RUNS, args.runs, args.seeds, set_arguments(args.set), prefix="vltk-dialog-bench-",
                          fresh_cache=True, seed_table=seed_table)  # fmt: skip
    intro = (
        "shapes_dialog test split, every round ranked among its 100 candidates; each run in a fresh "
        f"dataset cache (generation included in its wall time); seeds {args.seeds}; mean ± standard "
        "deviation (min-max) over seeds."
    )
    outro = "Reference points without training: the section *shapes_dialog: the data*."
    per_seed = seed_table(results)
    text = seeded_runs_section(intro, summary_table(results, args.runs), targets(results), per_seed, outro)
    publish(text, {"results": results}, args.json)


if __name__ == "__main__":
    main()
