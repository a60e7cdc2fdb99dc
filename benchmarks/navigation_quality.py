"""Navigation quality, training time, demo and environment throughput on BabyAI, appended to BENCHMARKS.md.

Runs the CLI as a user would, each run in a fresh folder, so the wall time splits into generating the bot's
demos (`vltk data demos`) and training + validation + test (`vltk train navigation --set data.demos_dir=`):

    python benchmarks/navigation_quality.py                          # GoToRedBall (the default config)
    python benchmarks/navigation_quality.py --runs gotolocal         # GoToLocal (gotolocal.yaml)
    python benchmarks/navigation_quality.py --runs default --set trainer.max_epochs=5
    python benchmarks/navigation_quality.py --runs gotolocal --demos DIR   # reuse demos

The test split is 500 held-out episodes (seeds from 2,000,000,000; the demos use seeds from 0). Other work may
share the machine: the load average (`uptime`) before and after each run is recorded next to its times.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import invocation, machine, publish

RUNS = {
    "default": ("default", "BabyAI-GoToRedBall-v0", 5000),
    "gotolocal": ("gotolocal", "BabyAI-GoToLocal-v0", 50000),
}
METRICS = ("success_rate", "SPL", "mean_reward", "episode_length")
# The `vltk` of this interpreter's environment (a virtualenv's), not whichever is first on PATH.
VLTK = (
    str(Path(sys.executable).with_name("vltk")) if Path(sys.executable).with_name("vltk").exists() else "vltk"
)


def load() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def env_steps_per_second(level: str, steps: int = 20000) -> float:
    """Raw environment speed: random actions, resets included."""
    import numpy as np

    from vltk.envs import BabyAIEnv

    env, rng = BabyAIEnv(level), np.random.default_rng(0)
    env.reset(0)
    start, episode = time.perf_counter(), 0
    for _ in range(steps):
        _, _, done = env.step(int(rng.integers(0, 3)))
        if done:
            episode += 1
            env.reset(episode)
    return steps / (time.perf_counter() - start)


def run(name: str, work: Path, overrides: list[str], demos_dir: str | None = None) -> dict:
    config, level, episodes = RUNS[name]
    for override in overrides:
        if override.startswith("data.episodes="):
            episodes = int(override.split("=", 1)[1])
    demos, run_dir = work / f"demos-{name}", work / name
    before = load()
    start = time.perf_counter()
    if demos_dir is None:
        out = subprocess.run(
            [VLTK, "data", "demos", "--level", level, "--episodes", str(episodes), "--out", str(demos)],
            check=True, capture_output=True, text=True, cwd=work,
        ).stdout  # fmt: skip
    else:  # reuse a folder made by `vltk data demos` (the run reads its first `episodes` demos)
        demos, out = Path(demos_dir).resolve(), ""
    demo_seconds = time.perf_counter() - start if demos_dir is None else float("nan")
    rates = re.search(r"([\d.]+) demos/s, ([\d.]+) steps/s", out.replace("\n", " "))
    command = [
        "vltk",
        "train",
        "navigation",
        "--config",
        config,
        *[a for o in overrides for a in ("--set", o)],
    ]
    start = time.perf_counter()
    subprocess.run(
        [VLTK, *command[1:], "--set", f"data.demos_dir={demos}", "--set", "trainer.enable_progress_bar=false",
                   "--run-dir", str(run_dir)],
        check=True, cwd=work, env=dict(os.environ, VLTK_CACHE=str(work / "cache")),
    )  # fmt: skip
    train_seconds = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    import yaml

    test_episodes = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["test_episodes"]
    return {
        "name": name,
        "level": level,
        "episodes": episodes,
        "command": " ".join(command),
        "demo_seconds": demo_seconds,
        "demos_per_s": float(rates.group(1)) if rates else float("nan"),
        "demo_steps_per_s": float(rates.group(2)) if rates else float("nan"),
        "train_seconds": train_seconds,
        "env_steps_per_s": env_steps_per_second(level),
        "metrics": metrics,
        "test_episodes": test_episodes,
        "load": f"{before} -> {load()}",
    }


def table(results: list[dict]) -> str:
    header = (
        "| level | demos | test episodes | command | demo generation | demos/s (bot steps/s) | "
        "train+val+test | "
        + " | ".join(METRICS)
        + " | env steps/s (random policy) | load avg 1/5/15 min, before -> after |"
    )
    rule = "|" + "---|" * (9 + len(METRICS))
    rows = [
        f"| {r['level']} | {r['episodes']} | {r['test_episodes']} | `{r['command']}` | "
        + ("reused | " if r["demo_seconds"] != r["demo_seconds"] else f"{r['demo_seconds']:.0f} s | ")
        + f"{r['demos_per_s']:.0f} ({r['demo_steps_per_s']:.0f}) | {r['train_seconds'] / 60:.1f} min | "
        + " | ".join(f"{r['metrics'].get(m, float('nan')):.4f}" for m in METRICS)
        + f" | {r['env_steps_per_s']:.0f} | {r['load']} |"
        for r in results
    ]
    return "\n".join([header, rule, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=["default"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    parser.add_argument("--no-append", action="store_true", help="print only; do not touch BENCHMARKS.md")
    parser.add_argument(
        "--demos", default=None, help="an existing demo folder to train on (no generation; one run)"
    )
    args = parser.parse_args()
    if args.demos is not None and len(args.runs) != 1:
        parser.error("--demos needs exactly one of --runs")
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(name, Path(tmp), args.overrides, args.demos) for name in args.runs]
    text = (
        f"\n### Navigation on BabyAI ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine()})\n\n"
        f"`{invocation()}`; test episodes are held-out seeds (from 2,000,000,000; demos use seeds from 0); "
        "other engineers' jobs shared the 2 cores.\n\n"
        f"{table(results)}\n"
    )
    publish(text, append=not args.no_append)


if __name__ == "__main__":
    main()
