"""shapes_dialog test metrics and wall time of `vltk train dialog` (four configs), appended to BENCHMARKS.md.

Runs the CLI exactly as a user would and reads each run's test metrics from its metrics.json:

    python benchmarks/dialog_quality.py                               # the four configs of issue 4
    python benchmarks/dialog_quality.py --runs default question_only  # any of RUNS
    flock /tmp/vltk-bench.lock python benchmarks/dialog_quality.py    # on a shared machine

"total wall" is the whole command (data loading, training with validation every epoch, the test pass);
"training (approx.)" subtracts the time of a separate ``vltk evaluate`` of the best checkpoint on the test
split. The coreference columns are the same metrics over the rounds whose question refers back to an
object named earlier in the dialog (``round type`` ``coreference`` in shapes_dialog).
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
    "late_fusion_discriminative": ["vltk", "train", "dialog"],
    "late_fusion_generative": ["vltk", "train", "dialog", "--config", "generative"],
    "question_only": ["vltk", "train", "dialog", "--config", "question_only"],
    "no_history": ["vltk", "train", "dialog", "--config", "no_history"],
}
METRICS = ("R@1", "R@5", "R@10", "MRR", "mean_rank", "NDCG")
COREFERENCE = ("R@1/coreference", "MRR/coreference")


def _load() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def run(name: str, work: Path, extra: list[str]) -> dict:
    run_dir = work / name
    command = RUNS[name] + extra + ["--run-dir", str(run_dir), "--set", "trainer.enable_progress_bar=false"]
    load_before = _load()
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=work)
    total = time.perf_counter() - start
    load_after = _load()
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    output = work / f"{name}-eval.json"
    start = time.perf_counter()
    subprocess.run(["vltk", "evaluate", str(checkpoint), "--output", str(output)],
                   check=True, cwd=work, stdout=subprocess.DEVNULL)  # fmt: skip
    evaluation = time.perf_counter() - start
    metrics = json.loads(output.read_text())["metrics"]
    return {
        "name": name,
        "command": " ".join(RUNS[name] + extra),
        "total": total,
        "train": max(total - evaluation, 0.0),
        "metrics": metrics,
        "load": f"{load_before} -> {load_after}",
    }


def _cell(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if name.startswith("mean_rank") else f"{value:.3f}"


def table(results: list[dict]) -> str:
    columns = ["run", "command", "total wall", "training (approx.)", *METRICS, *COREFERENCE, "load avg"]
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "---|" * len(columns)
    rows = [
        f"| {r['name']} | `{r['command']}` | {r['total'] / 60:.1f} min | {r['train'] / 60:.1f} min | "
        + " | ".join(_cell(m, r["metrics"].get(m)) for m in (*METRICS, *COREFERENCE))
        + f" | {r['load']} |"
        for r in results
    ]
    return "\n".join([header, rule, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=sorted(RUNS))
    parser.add_argument("--set", action="append", default=[], help="extra --set overrides for every run")
    parser.add_argument("--no-append", action="store_true", help="print only; do not touch BENCHMARKS.md")
    args = parser.parse_args()
    extra = [arg for value in args.set for arg in ("--set", value)]
    with tempfile.TemporaryDirectory(prefix="vltk-dialog-bench-") as tmp:
        results = []
        for name in args.runs:
            results.append(run(name, Path(tmp), extra))
            print(table(results), flush=True)
    date = time.strftime("%Y-%m-%d")
    text = (
        f"\n### Visual dialog on shapes_dialog ({date}, {machine()})\n\n"
        f"`{invocation()}`; test split, every round ranked among its 100 options (VisDial definitions: "
        "R@k, MRR and mean rank of the ground truth; NDCG over the one densely annotated round per "
        "dialog).\n\n"
        f"{table(results)}\n\n"
        "The load averages show what else shared the 2 cores; wall times are upper bounds.\n"
    )
    publish(text, append=not args.no_append)


if __name__ == "__main__":
    main()
