"""Shared plumbing of the benchmark scripts: the machine, result records, spreads over seeds, target verdicts,
and timed runs of the ``vltk`` CLI in a fresh process.

A script prints its result section (markdown) and, given ``--json PATH``, writes ``{"markdown": ...,
"data": ...}`` there. Scripts never edit BENCHMARKS.md themselves: ``benchmarks/run_all.py`` runs them, adds
what was measured where (commit, date, machine, load, command) and replaces the script's section in
BENCHMARKS.md by name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
TIMED_CLI = Path(__file__).resolve().with_name("_timed_cli.py")
MODE_ENV = "VLTK_BENCH_MODE"  # set by run_all.py: "quick" or "full"


def mode() -> str:
    """``quick``, ``full`` (set by run_all.py) or ``standalone`` (the script run by hand)."""
    return os.environ.get(MODE_ENV, "standalone")


def machine() -> str:
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch_version}"


def load() -> str:
    """The 1/5/15-minute load averages."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, default=None, help="also write the result record here")


def seeded_runs_parser(
    doc: str | None, runs: Sequence[str], default_runs: Sequence[str]
) -> argparse.ArgumentParser:
    """A quality benchmark's arguments: ``--runs`` (named configs), ``--seeds``, ``--set``, ``--json``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", choices=sorted(runs), default=list(default_runs))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--set", action="append", default=[], help="extra --set overrides for every run")
    add_json_argument(parser)
    return parser


def set_arguments(overrides: Sequence[str]) -> list[str]:
    """``["--set", o1, "--set", o2, ...]`` for a command line."""
    return [arg for value in overrides for arg in ("--set", value)]


def seeded_runs_section(
    intro: str, summary: str, targets: Sequence[str], per_seed: str, outro: str = ""
) -> str:
    """The markdown of a quality benchmark: what was run, the summary table, the targets, the seeds."""
    return (
        f"{intro}\n\n{summary}\n\nTargets:\n\n" + "\n".join(targets) + "\n\n"
        "Per seed (each command also got `--run-dir DIR --set trainer.enable_progress_bar=false`):\n\n"
        f"{per_seed}\n" + (f"\n{outro}\n" if outro else "")
    )


def publish(markdown: str, data: Mapping | None = None, json_path: Path | None = None) -> None:
    """Print a result section; with ``json_path`` write ``{"markdown", "data"}`` there (for run_all.py)."""
    print(markdown, flush=True)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        record = {"markdown": markdown.strip("\n"), "data": dict(data or {})}
        json_path.write_text(json.dumps(record, indent=1, default=float) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- statistics
def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max."""
    values = [float(v) for v in values]
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def fmt_spread(values: Sequence[float], fmt: str = ".3f", scale: float = 1.0, unit: str = "") -> str:
    """``mean ± std (min-max)`` over seeds; the single value when there is one."""
    values = [float(v) * scale for v in values if v == v]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:{fmt}}{unit}"
    s = spread(values)
    return f"{s['mean']:{fmt}}{unit} ± {s['std']:{fmt}} ({s['min']:{fmt}}-{s['max']:{fmt}})"


def verdict(value: float, target: float, *, higher: bool = True, fmt: str = ".3f", unit: str = "") -> str:
    """``met (... , by ...)`` or ``**not met**: short by ...``; in quick mode, not judged."""
    if mode() == "quick":
        return "not judged (quick mode: tiny sizes)"
    if value != value:
        return "**not measured**"
    sign = ">=" if higher else "<="
    margin = value - target if higher else target - value
    if margin >= 0:
        return f"met ({value:{fmt}}{unit} {sign} {target:{fmt}}{unit}, margin {margin:{fmt}}{unit})"
    short = f"short by {-margin:{fmt}}{unit}"
    return f"**not met** ({value:{fmt}}{unit}, target {sign} {target:{fmt}}{unit}: {short})"


def pick(metrics: Mapping[str, float], *names: str) -> tuple[str | None, float]:
    """The first of ``names`` present in ``metrics`` (metric names change between versions)."""
    for name in names:
        if name in metrics:
            return name, float(metrics[name])
    return None, float("nan")


def interleaved(arms: Mapping[str, callable], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall times of ``repeats`` calls of each arm, interleaved A B, B A, ... in this process, so that changes
    of the machine's load hit every arm alike; each arm is called ``warmup`` times untimed first."""
    times: dict[str, list[float]] = {name: [] for name in arms}
    names = list(arms)
    for _ in range(warmup):
        for name in names:
            arms[name]()
    for round_index in range(repeats):
        for name in names if round_index % 2 == 0 else reversed(names):
            start = time.perf_counter()
            arms[name]()
            times[name].append(time.perf_counter() - start)
    return times


def best_median(times: Iterable[float]) -> dict[str, float]:
    times = list(times)
    return {"best": min(times), "median": statistics.median(times), "all": times}


# ------------------------------------------------------------------------------------------ timed CLI runs
def run_vltk(args: list[str], *, timing_path: Path, env: Mapping[str, str] | None = None,
             cwd: Path | None = None) -> dict[str, float]:  # fmt: skip
    """Run ``vltk ARGS`` in a fresh process (through ``_timed_cli.py``, which runs the same CLI and times
    ``Trainer.fit`` and ``Trainer.test``). Returns ``wall_s``: process start to exit, everything included
    (interpreter start, imports, data generation/loading, training with validation, testing); ``fit_s``:
    the ``Trainer.fit`` calls (training + validation every epoch); ``test_s``; ``setup_s``: process start
    to the first ``fit``."""
    full_env = dict(os.environ, **(env or {}), VLTK_BENCH_TIMING=str(timing_path))
    start = time.monotonic()
    subprocess.run([sys.executable, str(TIMED_CLI), *args], check=True, env=full_env, cwd=cwd)
    wall = time.monotonic() - start
    timing = json.loads(timing_path.read_text())
    setup = timing["first_fit_at"] - start if timing.get("first_fit_at") else float("nan")
    return {"wall_s": wall, "fit_s": timing["fit_s"], "test_s": timing["test_s"], "setup_s": setup}


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` field of ``/proc/PID/status`` (``RssAnon``, ``VmHWM``, ...); 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mib() -> float:
    """This process's peak resident set size (``VmHWM``). Not ``getrusage``'s ``ru_maxrss``: Linux carries
    that across ``exec``, so a child started from a large parent would report the parent's size."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return int(fields["VmHWM"].split()[0]) / 1024


def read_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


def train_run(runs: Mapping[str, list[str]], name: str, seed: int, work: Path, extra: list[str], *,
              fresh_cache: bool) -> dict:  # fmt: skip
    """One ``vltk ARGS --seed S`` run of a quality benchmark (``runs[name]`` holds ARGS), timed by
    :func:`run_vltk`; with ``fresh_cache`` in its own dataset cache, so generating the data is included."""
    run_dir = work / f"{name}-{seed}"
    args = runs[name] + extra + ["--seed", str(seed)]
    times = run_vltk(
        args + ["--run-dir", str(run_dir), "--set", "trainer.enable_progress_bar=false"],
        timing_path=work / f"{name}-{seed}-timing.json",
        env={"VLTK_CACHE": str(work / f"cache-{name}-{seed}")} if fresh_cache else None,
        cwd=work,
    )
    return {"run": name, "seed": seed, "command": "vltk " + " ".join(args), **times,
            "metrics": read_metrics(run_dir)}  # fmt: skip


def train_seeds(runs: Mapping[str, list[str]], names: Sequence[str], seeds: Sequence[int], extra: list[str],
                *, prefix: str, fresh_cache: bool, seed_table) -> list[dict]:  # fmt: skip
    """Every run of ``names`` on every seed, in a temporary folder; each run's row is printed as it ends."""
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        for name in names:
            for seed in seeds:
                results.append(train_run(runs, name, seed, Path(tmp), extra, fresh_cache=fresh_cache))
                print(seed_table(results[-1:]), flush=True)
    return results
