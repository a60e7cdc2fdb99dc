"""easy-VQA test score and training time of `vltk train vqa` (default config and ablations), over seeds.

Runs ``vltk train vqa [--config NAME] --seed S`` as a user would (through ``_timed_cli.py``, which adds the
time inside ``Trainer.fit``) and reads each run's test metrics from its metrics.json:

    python benchmarks/vqa_quality.py                               # all four configs, 3 seeds
    python benchmarks/vqa_quality.py --runs default --seeds 42 43 44
    python benchmarks/vqa_quality.py --runs default --seeds 42 --set data.max_questions=500

"wall" is the whole command from process start (imports, loading the data, training with validation every
epoch, the test pass); "training" is the time inside ``Trainer.fit`` (training and the per-epoch validation).
easy-VQA has one answer per question, so the headline metric is exact match after the official answer
normalisation (``exact_match``; older vltk versions called it ``accuracy``).
Target (issue 14): the default reaches >= 99.9% mean test exact match over 3 seeds with <= 3 minutes of
training each.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import (  # noqa: E402
    fmt_spread,
    pick,
    publish,
    seeded_runs_parser,
    seeded_runs_section,
    set_arguments,
    spread,
    train_seeds,
    verdict,
)

RUNS = {
    "default": ["train", "vqa"],
    "question_only": ["train", "vqa", "--config", "question_only"],
    "cnn_lstm": ["train", "vqa", "--config", "cnn_lstm"],
    "stacked_attention": ["train", "vqa", "--config", "stacked_attention"],
}
MAIN = ("exact_match", "accuracy")  # easy-VQA's headline metric, newest name first
ANSWER_TYPES = ("yes/no", "color", "shape")


def headline(metrics: dict) -> tuple[str | None, float]:
    return pick(metrics, *MAIN)


def columns(results: list[dict]) -> list[tuple[str, list[str]]]:
    """(label, candidate metric names): the headline and the per-answer-type scores."""
    main = next((name for r in results for name in [headline(r["metrics"])[0]] if name), MAIN[0])
    return [(main, [main, *MAIN])] + [(f"{main}/{t}", [f"{main}/{t}", *(f"{m}/{t}" for m in MAIN)])
                                      for t in ANSWER_TYPES]  # fmt: skip


def percent(values: list[float]) -> str:
    return fmt_spread(values, ".2f", 100, "%")


def summary_table(results: list[dict], names: list[str]) -> str:
    cols = columns(results)
    lines = [
        "| run | seeds | wall (min) | training: Trainer.fit (min) | " + " | ".join(c for c, _ in cols) + " |",
        "|" + "---|" * (4 + len(cols)),
    ]
    for name in names:
        rows = [r for r in results if r["run"] == name]
        cells = [percent([pick(r["metrics"], *cands)[1] for r in rows]) for _, cands in cols]
        lines.append(
            f"| {name} | {len(rows)} | {fmt_spread([r['wall_s'] for r in rows], '.1f', 1 / 60)} | "
            f"{fmt_spread([r['fit_s'] for r in rows], '.2f', 1 / 60)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def seed_table(results: list[dict]) -> str:
    cols = columns(results)
    lines = ["| run | seed | command | wall (min) | fit (min) | " + " | ".join(c for c, _ in cols) + " |",
             "|" + "---|" * (5 + len(cols))]  # fmt: skip
    for r in results:
        cells = [f"{100 * pick(r['metrics'], *cands)[1]:.2f}%" for _, cands in cols]
        lines.append(f"| {r['run']} | {r['seed']} | `{r['command']}` | {r['wall_s'] / 60:.1f} | "
                     f"{r['fit_s'] / 60:.2f} | " + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines)


def targets(results: list[dict]) -> list[str]:
    default = [r for r in results if r["run"] == "default"]
    if not default:
        return ["- the default config was not run."]
    name = headline(default[0]["metrics"])[0] or MAIN[0]
    score = spread([headline(r["metrics"])[1] * 100 for r in default])
    fit = spread([r["fit_s"] / 60 for r in default])
    lines = [
        f"- default, mean test {name} over {len(default)} seed(s) >= 99.9%: "
        f"{verdict(score['mean'], 99.9, fmt='.2f', unit='%')}; lowest seed {score['min']:.2f}%.",
        "- default, <= 3 minutes of training (Trainer.fit) each, slowest seed: "
        f"{verdict(fit['max'], 3.0, higher=False, fmt='.2f', unit=' min')}.",
    ]
    if len(default) < 3:
        lines.append(f"- only {len(default)} seed(s): the issue asks for 3.")
    return lines


def main() -> None:
    args = seeded_runs_parser(__doc__, RUNS, list(RUNS)).parse_args()
    results = train_seeds(RUNS, args.runs, args.seeds, set_arguments(args.set), prefix="vltk-vqa-bench-",
                          fresh_cache=False, seed_table=seed_table)  # fmt: skip
    intro = f"easy-VQA test split, seeds {args.seeds}; mean ± standard deviation (min-max) over seeds."
    outro = (
        "Reference points (the dataset's author): always 'yes' 37.3%, question only 67.0%, the author's "
        "CNN + bag-of-words model 93.8%."
    )
    per_seed = seed_table(results)
    text = seeded_runs_section(intro, summary_table(results, args.runs), targets(results), per_seed, outro)
    publish(text, {"results": results}, args.json)


if __name__ == "__main__":
    main()
