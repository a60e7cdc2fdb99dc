"""The `lm` default's budget in updates vs the budget in passes it replaced, on a short and a long text.

Runs ``vltk train lm --seed S`` as a user would (through ``_timed_cli.py``, which adds the time inside
``Trainer.fit``) on the built-in text cut to ``--short-chars`` characters (a user's own small file: the issue
measured 133 kB) and on the whole default text (1M characters):

    python benchmarks/lm_budget.py                                  # 4 runs x 3 seeds
    python benchmarks/lm_budget.py --seeds 42 --set trainer.max_steps=30 --short-chars 20000

``default`` is the shipped config (600 updates, validation every 100 counted across passes); ``passes`` is
the budget it replaced (``trainer.max_epochs=2``, validation every 100 updates within a pass, shortened to
one pass on a short text). Each run's test bpc comes from its run directory's metrics.json (the best
validation checkpoint); its updates from ``checkpoints/last.ckpt``. Target (issue 19): budgets that depend on
the corpus size are set in updates, so the short text gets as many updates as the long one.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import (  # noqa: E402
    fmt_spread,
    publish,
    seeded_runs_parser,
    set_arguments,
    spread,
    train_run,
)

PASSES = ["--set", "trainer.max_epochs=2", "--set", "trainer.max_steps=-1",
          "--set", "trainer.check_val_every_n_epoch=1"]  # fmt: skip
SHORT_CHARS = 133_000


def runs(short_chars: int) -> dict[str, list[str]]:
    short = ["--set", f"data.max_chars={short_chars}"]
    return {
        "default_short": ["train", "lm", *short],
        "passes_short": ["train", "lm", *short, *PASSES],
        "default_long": ["train", "lm"],
        "passes_long": ["train", "lm", *PASSES],
    }


def updates(run_dir: Path) -> int:
    """The optimiser steps the run made (its last checkpoint's ``global_step``)."""
    return int(torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"])


def seed_table(results: list[dict]) -> str:
    lines = [
        "| run | seed | command | updates | wall (min) | fit (min) | test bpc |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['run']} | {r['seed']} | `{r['command']}` | {r['updates']} | {r['wall_s'] / 60:.2f} | "
            f"{r['fit_s'] / 60:.2f} | {r['metrics']['bpc']:.3f} |"
        )
    return "\n".join(lines)


def summary_table(results: list[dict], names: list[str]) -> str:
    lines = ["| run | text | budget | seeds | updates | wall (min) | fit (min) | test bpc |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in names:
        rows = [r for r in results if r["run"] == name]
        if not rows:
            continue
        text = "short" if name.endswith("short") else "whole built-in text"
        budget = "updates (the default)" if name.startswith("default") else "2 passes (before)"
        steps = fmt_spread([r["updates"] for r in rows], ".0f")
        lines.append(
            f"| {name} | {text} | {budget} | {len(rows)} | {steps} | "
            f"{fmt_spread([r['wall_s'] for r in rows], '.2f', 1 / 60)} | "
            f"{fmt_spread([r['fit_s'] for r in rows], '.2f', 1 / 60)} | "
            f"{fmt_spread([r['metrics']['bpc'] for r in rows])} |"
        )
    return "\n".join(lines)


def targets(results: list[dict]) -> list[str]:
    by_run = {name: [r for r in results if r["run"] == name] for name in {r["run"] for r in results}}
    lines = []
    if by_run.get("default_short") and by_run.get("default_long"):
        short = spread([r["updates"] for r in by_run["default_short"]])["mean"]
        long = spread([r["updates"] for r in by_run["default_long"]])["mean"]
        verdict = "met" if short == long else f"**not met** ({short:.0f} vs {long:.0f} updates)"
        lines.append(f"- the short text gets the long text's updates with the default budget: {verdict}.")
    for text in ("short", "long"):
        new, old = by_run.get(f"default_{text}"), by_run.get(f"passes_{text}")
        if new and old:
            gain = (
                spread([r["metrics"]["bpc"] for r in old])["mean"]
                - spread([r["metrics"]["bpc"] for r in new])["mean"]
            )
            lines.append(
                f"- {text} text: the default's mean test bpc is {gain:.3f} lower than the 2-pass budget's."
            )
    return lines or ["- none for this selection of runs."]


def main() -> None:
    parser = seeded_runs_parser(__doc__, runs(SHORT_CHARS), list(runs(SHORT_CHARS)))
    parser.add_argument("--short-chars", type=int, default=SHORT_CHARS, help="characters of the short text")
    args = parser.parse_args()
    table = runs(args.short_chars)
    results = []
    with tempfile.TemporaryDirectory(prefix="vltk-lm-budget-") as tmp:
        for name in args.runs:
            for seed in args.seeds:
                result = train_run(table, name, seed, Path(tmp), set_arguments(args.set), fresh_cache=False)
                result["updates"] = updates(Path(tmp) / f"{name}-{seed}")
                results.append(result)
                print(seed_table([result]), flush=True)
    intro = (
        f"`vltk train lm` on the built-in text (the running Python's standard library) cut to "
        f"{args.short_chars:,} characters (`data.max_chars`; a user's small file) and whole (1M characters); "
        f"the default config's budget of 600 updates vs the 2 passes it replaced; seeds {args.seeds}, mean ± "
        "standard deviation (min-max). Test bpc of the best validation checkpoint."
    )
    text = (
        f"{intro}\n\n{summary_table(results, args.runs)}\n\nTargets:\n\n" + "\n".join(targets(results))
        + "\n\nPer seed (each command also got `--run-dir DIR --set trainer.enable_progress_bar=false`):\n\n"
        + seed_table(results) + "\n"
    )  # fmt: skip
    publish(text, {"results": results}, args.json)


if __name__ == "__main__":
    main()
