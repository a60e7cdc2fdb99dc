"""Captioning quality and wall time on the built-in `shapes` data, appended to BENCHMARKS.md.

Runs the CLI exactly as a user would, each in a fresh dataset cache (so generation time is included):

    python benchmarks/captioning_quality.py                      # default + image-blind ablation
    python benchmarks/captioning_quality.py --long               # also a longer run (6,000 images, 30 epochs)
    python benchmarks/captioning_quality.py --runs default       # just one

Each run's test metrics come from its run directory's metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _report import invocation, machine, publish

RUNS = {
    "default": ["vltk", "train", "captioning"],
    "image_blind": ["vltk", "train", "captioning", "--config", "image_blind"],
    "long": [
        "vltk",
        "train",
        "captioning",
        "--set",
        "trainer.max_epochs=30",
        "--set",
        "data.num_images=6000",
    ],
}
METRICS = ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr")


def run(name: str, work: Path) -> dict:
    run_dir = work / name
    env = dict(os.environ, VLTK_CACHE=str(work / f"cache-{name}"))
    command = RUNS[name] + ["--run-dir", str(run_dir)]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=work)
    seconds = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    return {"name": name, "command": " ".join(RUNS[name]), "seconds": seconds, "metrics": metrics}


def table(results: list[dict]) -> str:
    header = "| run | command | wall time | " + " | ".join(METRICS) + " |"
    rule = "|" + "---|" * (3 + len(METRICS))
    rows = [
        f"| {r['name']} | `{r['command']}` | {r['seconds'] / 60:.1f} min | "
        + " | ".join(f"{r['metrics'].get(m, float('nan')):.3f}" for m in METRICS)
        + " |"
        for r in results
    ]
    return "\n".join([header, rule, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=["default", "image_blind"])
    parser.add_argument("--long", action="store_true", help="also run the longer configuration")
    parser.add_argument("--no-append", action="store_true", help="print only; do not touch BENCHMARKS.md")
    args = parser.parse_args()
    names = args.runs + (["long"] if args.long and "long" not in args.runs else [])
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(name, Path(tmp)) for name in names]
    text = (
        f"\n### Captioning on shapes ({time.strftime('%Y-%m-%d')}, {machine()})\n\n"
        f"`{invocation()}`; test split, beam 3.\n\n{table(results)}\n"
    )
    publish(text, append=not args.no_append)


if __name__ == "__main__":
    main()
