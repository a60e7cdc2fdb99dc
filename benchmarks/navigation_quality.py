"""Navigation quality, training time, demo and environment throughput on BabyAI, over seeds.

For each level: the bot's demos are generated once (``vltk data demos``, a fresh process, timed: demos/s and
bot steps/s), the raw environment is timed with random actions (env steps/s), then
``vltk train navigation [--config NAME] --seed S --set data.demos_dir=DEMOS`` trains, validates every epoch
and tests the best checkpoint, once per seed (through ``_timed_cli.py``, which adds the time inside
``Trainer.fit``). The demos do not depend on the training seed (demo seeds start at 0), so every seed
trains on the same demos.

    python benchmarks/navigation_quality.py                                  # GoToRedBall, 3 seeds
    python benchmarks/navigation_quality.py --runs gotolocal --diagnose      # GoToLocal + instruction check
    python benchmarks/navigation_quality.py --seeds 42 --set trainer.max_epochs=5

The test split is the config's held-out episodes (500; seeds from 2,000,000,000; the demos use seeds from 0,
validation from 1,000,000,000). ``--diagnose`` also runs ``navigation_diagnostics.py`` on each seed's best
checkpoint: held-out per-step accuracy with the right and with swapped instructions.
Targets (issue 5): GoToRedBall success >= 99.5% on 500 held-out episodes from <= 5,000 demos with <= 10 min
of training; GoToLocal >= 99% from <= 50,000 demos, <= 45 min per run.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, fmt_spread, pick, publish, read_metrics, run_vltk, spread, verdict  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS = {  # config, level, demos, target success, target minutes of training
    "default": ("default", "BabyAI-GoToRedBall-v0", 5000, 0.995, 10.0),
    "gotolocal": ("gotolocal", "BabyAI-GoToLocal-v0", 50000, 0.99, 45.0),
}
METRICS = (("success_rate", ("success_rate",)), ("SPL", ("SPL", "spl")),
           ("mean_reward", ("mean_reward",)), ("episode_length", ("episode_length",)))  # fmt: skip
# The `vltk` of this interpreter's environment (a virtualenv's), not whichever is first on PATH.
VLTK = (
    str(Path(sys.executable).with_name("vltk")) if Path(sys.executable).with_name("vltk").exists() else "vltk"
)


def env_steps_per_second(level: str, steps: int) -> float:
    """Raw environment speed: random actions, resets included."""
    import numpy as np

    from vltk.tasks.navigation.babyai.env import BabyAIEnv

    env, rng = BabyAIEnv(level), np.random.default_rng(0)
    env.reset(0)
    start, episode = time.perf_counter(), 0
    for _ in range(steps):
        _, _, done = env.step(int(rng.integers(0, 3)))
        if done:
            episode += 1
            env.reset(episode)
    return steps / (time.perf_counter() - start)


def make_demos(level: str, episodes: int, out: Path) -> dict:
    start = time.monotonic()
    stdout = subprocess.run(
        [VLTK, "data", "demos", "--level", level, "--episodes", str(episodes), "--out", str(out)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    seconds = time.monotonic() - start
    rates = re.search(r"([\d.]+) demos/s, ([\d.]+) steps/s", stdout.replace("\n", " "))
    return {"seconds": seconds, "demos_per_s": float(rates.group(1)) if rates else float("nan"),
            "bot_steps_per_s": float(rates.group(2)) if rates else float("nan")}  # fmt: skip


def diagnose(checkpoint: Path, out: Path, demos: int, episodes: int) -> dict:
    subprocess.run(
        [sys.executable, str(HERE / "navigation_diagnostics.py"), str(checkpoint), "--demo-episodes",
         str(demos), "--episodes", str(episodes), "--json", str(out)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return json.loads(out.read_text())["data"]


def run(name: str, seed: int, work: Path, overrides: list[str], demos: Path, diag: tuple | None) -> dict:
    config = RUNS[name][0]
    run_dir = work / f"{name}-{seed}"
    args = ["train", "navigation", "--config", config, *[a for o in overrides for a in ("--set", o)],
            "--seed", str(seed)]  # fmt: skip
    times = run_vltk(
        args + ["--set", f"data.demos_dir={demos}", "--set", "trainer.enable_progress_bar=false",
                "--run-dir", str(run_dir)],
        timing_path=work / f"{name}-{seed}-timing.json", env={"VLTK_CACHE": str(work / "cache")}, cwd=work,
    )  # fmt: skip
    import yaml

    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]
    record = {"run": name, "seed": seed, "command": "vltk " + " ".join(args), **times,
              "metrics": read_metrics(run_dir), "test_episodes": resolved["test_episodes"]}  # fmt: skip
    if diag is not None:
        record["diagnostics"] = diagnose(
            run_dir / "checkpoints" / "best.ckpt", work / f"diag-{seed}.json", *diag
        )
    return record


def summary_table(results: list[dict], names: list[str]) -> str:
    lines = ["| run | level | seeds | test episodes | training: Trainer.fit (min) | wall (min) | "
             + " | ".join(m for m, _ in METRICS) + " |", "|" + "---|" * (6 + len(METRICS))]  # fmt: skip
    for name in names:
        rows = [r for r in results if r["run"] == name]
        cells = [fmt_spread([pick(r["metrics"], *c)[1] for r in rows], ".4f") for _, c in METRICS]
        lines.append(
            f"| {name} | {RUNS[name][1]} | {len(rows)} | {rows[0]['test_episodes']} | "
            f"{fmt_spread([r['fit_s'] for r in rows], '.1f', 1 / 60)} | "
            f"{fmt_spread([r['wall_s'] for r in rows], '.1f', 1 / 60)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def seed_table(results: list[dict]) -> str:
    lines = ["| run | seed | command | fit (min) | wall (min) | " + " | ".join(m for m, _ in METRICS) + " |",
             "|" + "---|" * (5 + len(METRICS))]  # fmt: skip
    for r in results:
        cells = [f"{pick(r['metrics'], *c)[1]:.4f}" for _, c in METRICS]
        lines.append(f"| {r['run']} | {r['seed']} | `{r['command']}` | {r['fit_s'] / 60:.1f} | "
                     f"{r['wall_s'] / 60:.1f} | " + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines)


def diagnostics_table(results: list[dict]) -> str:
    rows = [r for r in results if "diagnostics" in r]
    if not rows:
        return ""
    lines = ["| run | seed | held-out per-step accuracy | with swapped instructions | rollout success | "
             "failures that faced another object |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        d = r["diagnostics"]
        lines.append(f"| {r['run']} | {r['seed']} | {d['accuracy']['accuracy']:.4f} | "
                     f"{d['accuracy']['accuracy, instructions swapped']:.4f} | "
                     f"{d['rollouts']['success rate']:.4f} | "
                     f"{d['rollouts']['failures that faced another object']}"
                     f" of {d['rollouts']['failures']} |")  # fmt: skip
    return (
        "\nInstruction check (`navigation_diagnostics.py` on each best checkpoint; an agent that follows "
        "its instruction loses accuracy when the instructions are swapped):\n\n" + "\n".join(lines) + "\n"
    )


def targets(results: list[dict], demos: dict[str, dict]) -> list[str]:
    lines = []
    for name, (_, level, _, success_target, minutes) in RUNS.items():
        rows = [r for r in results if r["run"] == name]
        if not rows:
            continue
        success = spread([r["metrics"]["success_rate"] for r in rows])
        fit = spread([r["fit_s"] / 60 for r in rows])
        lines += [
            f"- {level}: mean test success over {len(rows)} seed(s) >= {success_target:.1%} on "
            f"{rows[0]['test_episodes']} held-out episodes from {demos[name]['episodes']:,} demos: "
            f"{verdict(success['mean'] * 100, success_target * 100, fmt='.2f', unit='%')}; lowest seed "
            f"{success['min']:.2%}.",
            f"- {level}: <= {minutes:.0f} min of training (Trainer.fit, slowest seed): "
            f"{verdict(fit['max'], minutes, higher=False, fmt='.1f', unit=' min')}.",
        ]
        if len(rows) < 3:
            lines.append(f"- {level}: only {len(rows)} seed(s): the issue asks for 3.")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=["default"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    parser.add_argument("--env-steps", type=int, default=20000, help="random-action steps to time")
    parser.add_argument("--diagnose", action="store_true", help="run navigation_diagnostics.py per seed")
    parser.add_argument("--diagnose-demos", type=int, default=1000)
    parser.add_argument("--diagnose-episodes", type=int, default=200)
    add_json_argument(parser)
    args = parser.parse_args()
    diag = (args.diagnose_demos, args.diagnose_episodes) if args.diagnose else None
    results, demos = [], {}
    with tempfile.TemporaryDirectory(prefix="vltk-nav-bench-") as tmp:
        work = Path(tmp)
        for name in args.runs:
            _, level, episodes, _, _ = RUNS[name]
            for override in args.overrides:
                if override.startswith("data.episodes="):
                    episodes = int(override.split("=", 1)[1])
            folder = work / f"demos-{name}"
            demos[name] = {"level": level, "episodes": episodes, **make_demos(level, episodes, folder),
                           "env_steps_per_s": env_steps_per_second(level, args.env_steps)}  # fmt: skip
            print(f"{level}: {demos[name]}", flush=True)
            for seed in args.seeds:
                results.append(run(name, seed, work, args.overrides, folder, diag))
                print(seed_table(results[-1:]), flush=True)
    throughput = "\n".join(
        f"| {d['level']} | {d['episodes']:,} | {d['seconds']:.0f} s | {d['demos_per_s']:.0f} | "
        f"{d['bot_steps_per_s']:.0f} | {d['env_steps_per_s']:.0f} |"
        for d in demos.values()
    )
    text = (
        f"Seeds {args.seeds}; mean ± standard deviation (min-max) over seeds. Training time excludes making "
        "the demos (done once per level, below); wall is `vltk train navigation` from process start to "
        "exit (training, validation every epoch, the test episodes).\n"
        "\n"
        f"{summary_table(results, args.runs)}\n\nTargets:\n\n" + "\n".join(targets(results, demos)) + "\n\n"
        "| level | demos | making the demos (`vltk data demos`, process start to exit) | demos/s | bot "
        "steps/s | env steps/s (random actions, one process) |\n"
        "|---|---|---|---|---|---|\n"
        f"{throughput}\n"
        f"{diagnostics_table(results)}\n"
        "Per seed (each command also got `--run-dir DIR --set trainer.enable_progress_bar=false --set "
        "data.demos_dir=DEMOS`):\n"
        "\n"
        f"{seed_table(results)}\n"
    )
    publish(text, {"results": results, "demos": demos}, args.json)


if __name__ == "__main__":
    main()
