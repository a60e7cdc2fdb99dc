"""Re-run every figure in BENCHMARKS.md with one command, and write each section in place.

    python benchmarks/run_all.py --list                      # the benchmarks, their sizes and expected times
    python benchmarks/run_all.py --quick                     # every benchmark, tiny sizes, 1 seed: it runs?
    python benchmarks/run_all.py --full                      # the real figures (hours; a quiet machine)
    python benchmarks/run_all.py --full --only vqa,captioning
    python benchmarks/run_all.py --render                    # rebuild BENCHMARKS.md from benchmarks/results/

Each benchmark is a script in ``benchmarks/`` run in a fresh process with the arguments of its mode (the
registry below), with a timeout, its output streamed to the terminal and to
``benchmarks/results/MODE/NAME.log``. The script writes its result section (markdown) and its data as JSON;
the runner adds what was measured where -- the commit (``git rev-parse --short HEAD``, ``+dirty`` when
tracked files other than BENCHMARKS.md and benchmarks/results/ differ from it), the date, the machine (CPU
count, CPU model, torch version, OMP_NUM_THREADS), its speed (an fp32 matmul probe), the load average
before and after, the exact commands, the wall time and whether it finished -- and saves
``benchmarks/results/MODE/NAME.json`` (committed, so BENCHMARKS.md can be rebuilt from them). BENCHMARKS.md
holds one section per benchmark between ``<!-- bench:NAME:begin -->`` and ``<!-- bench:NAME:end -->``; after
each benchmark its section is replaced (a full-mode result when there is one, else the quick-mode check,
marked as such) and the text outside the markers is left alone. A quick run never replaces a full-mode figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
RESULTS = HERE / "results"


@dataclass(frozen=True)
class Bench:
    """One benchmark: a script and its arguments per mode.

    ``full_minutes`` is the expected full-mode wall time on 2 quiet CPU cores (from the figures measured so
    far); the full-mode timeout is ``max(2.5 x, + 20 min)`` of it. ``stale`` is the last full figure measured
    before this runner, with why it no longer stands: BENCHMARKS.md shows it (marked stale) until a full-mode
    result replaces it.
    """

    name: str
    title: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    full_minutes: float
    stale: str
    quick_minutes: float = 10.0  # quick-mode timeout
    also_runs: tuple[str, ...] = field(default=())  # other scripts this benchmark runs

    def args(self, mode: str) -> tuple[str, ...]:
        return self.full if mode == "full" else self.quick

    def timeout_s(self, mode: str, factor: float = 1.0) -> float:
        minutes = (
            max(2.5 * self.full_minutes, self.full_minutes + 20) if mode == "full" else self.quick_minutes
        )
        return 60 * minutes * factor


SEEDS = ("--seeds", "42", "43", "44")
ONE_SEED = ("--seeds", "42")
RECIPE_RUNS = ("cross-entropy", "adaptive", "updown")
SCST_RUNS = ("cross-entropy", "scst-greedy", "scst-mean")
TINY_CAPTIONS = ("--set", "data.num_images=200", "--set", "trainer.max_epochs=1")
TINY_NAV = ("--set", "data.episodes=64", "--set", "data.val_episodes=10", "--set", "data.test_episodes=20",
            "--set", "trainer.max_epochs=1", "--env-steps", "2000")  # fmt: skip
_TINY_HOUSES = ("data.train_houses=3", "data.val_unseen_houses=2", "data.test_houses=2",
                "data.train_paths=40", "data.val_seen_paths=8", "data.val_unseen_paths=10",
                "data.test_paths=10")  # fmt: skip
TINY_R2R = tuple(arg for value in (*_TINY_HOUSES, "trainer.max_epochs=1") for arg in ("--set", value))
TINY_VQA = ("--set", "data.max_questions=300", "--set", "trainer.max_epochs=1")
HISTORY = "benchmarks/HISTORY.md"

REGISTRY: tuple[Bench, ...] = (
    Bench(
        "shapes_reference_points",
        "Shapes reference points (no model)",
        "shapes_reference_points.py",
        (),
        ("--num-images", "300"),
        0.5,
        "2026-11-25: one reference vs the other four CIDEr 1.982, the canonical description 3.851, one "
        "constant caption 0.309; measured before issue 14 changes ROUGE-L's tokenisation.",
    ),
    Bench(
        "captioning",
        "Captioning on shapes: the default run",
        "captioning_quality.py",
        ("--runs", "default", *SEEDS),
        ("--runs", "default", *ONE_SEED, *TINY_CAPTIONS),
        36,
        "default 6.5 min, BLEU-4 0.771, CIDEr 3.266 (2026-11-26, seed 42; seed 7 gave BLEU-4 0.797, CIDEr "
        "3.326): one seed each.",
    ),
    Bench(
        "captioning_image_blind",
        "Captioning on shapes: the image-blind ablation",
        "captioning_quality.py",
        ("--runs", "image_blind", *SEEDS),
        ("--runs", "image_blind", *ONE_SEED, *TINY_CAPTIONS),
        15,
        "image_blind 4.8 min, BLEU-4 0.246, CIDEr 0.514 (2026-11-25): one seed, before the decoder changes "
        "of 2026-11-26.",
    ),
    Bench(
        "captioning_long",
        "Captioning on shapes: a longer run (6,000 images, 30 epochs)",
        "captioning_quality.py",
        ("--runs", "long", "--seeds", "42"),
        ("--runs", "long", "--seeds", "42", "--set", "data.num_images=200", "--set", "trainer.max_epochs=1"),
        32,
        "30.3 min, BLEU-4 0.903, CIDEr 3.600 (2026-11-25): before the decoder changes of 2026-11-26, on a "
        "shared machine.",
    ),
    Bench(
        "captioning_recipes",
        "Captioning recipes on shapes: adaptive attention, Up-Down on regions",
        "captioning_recipes.py",
        (*SEEDS, "--runs", *RECIPE_RUNS),
        (*ONE_SEED, "--runs", *RECIPE_RUNS, *TINY_CAPTIONS),
        60,
        "not measured before (new in issue 17).",
        quick_minutes=12,
    ),
    Bench(
        "captioning_scst",
        "Self-critical sequence training on shapes, both baselines",
        "captioning_recipes.py",
        (*SEEDS, "--runs", *SCST_RUNS),
        (*ONE_SEED, "--runs", *SCST_RUNS, *TINY_CAPTIONS),
        50,
        "SCST greedy 3.555, mean 3.593 at 20 epochs (commit 682f691, in the captioning_recipes section).",
        quick_minutes=10,
    ),
    Bench(
        "scst_speed",
        "Self-critical steps vs cross-entropy steps, and the reward's share",
        "scst_speed.py",
        (),
        ("--epochs", "1", "--repeats", "2"),
        8,
        "not measured before (new in issue 17).",
    ),
    Bench(
        "caption_metrics_speed",
        "Caption metric speed: vltk vs pycocoevalcap",
        "caption_metrics_speed.py",
        (),
        ("--images", "300", "--repeats", "2"),
        1.5,
        "scoring 17.5x, tokenisation 3.0x (2026-11-25, best of 3, each side timed in its own block, not "
        "interleaved); before issue 14 changes ROUGE-L's tokenisation.",
    ),
    Bench(
        "ptb_tokenizer_parity",
        "PTB tokenizer parity: vltk vs COCO's Java tokenizer",
        "ptb_tokenizer_parity.py",
        (),
        ("--captions", "500"),
        1.5,
        "0 of 20,000 captions differ without glued words, 103 (0.52%) with them (2026-11-25).",
    ),
    Bench(
        "charrnn_faithfulness",
        "char-RNN faithfulness: vltk `min_char_rnn` vs numpy min-char-rnn",
        "charrnn_faithfulness.py",
        ("--updates", "5000", "--seeds", "0", "1", "2", "3", "4"),
        ("--updates", "100", "--seeds", "0", "--chars", "50000"),
        6,
        "after 5,000 updates numpy 57.23 ± 2.18, vltk float32 59.19 ± 1.68, float64 56.51 ± 2.50 "
        "(2026-11-25, 5 seeds).",
    ),
    Bench(
        "charrnn_time_to_quality",
        "char-RNN time to quality: vltk vs numpy min-char-rnn",
        "charrnn_time_to_quality.py",
        (),
        ("--updates", "200", "--seeds", "0", "--chars", "50000", "--max-steps", "100"),
        2,
        "median 29.9x sooner (2026-11-25): unfair, it counted only the training loops -- vltk's Trainer "
        "construction and data set-up (1-2 s) were left out against the 0.24-0.31 s counted; now both "
        "sides are timed from process start.",
    ),
    Bench(
        "charrnn_c_source",
        "char-RNN on C source: 2-layer LSTM vs vanilla RNN",
        "charrnn_c_source.py",
        (),
        (
            "--steps",
            "10",
            "--set",
            "data.max_chars=60000",
            "--set",
            "trainer.val_check_interval=5",
            "--no-docs",
            "--runs",
            "runs/lm-c-source-quick",
        ),
        15,
        "test bpc RNN 2.780, LSTM 2.743 (2026-11-25, one seed each; wall times not comparable, shared "
        "machine).",
    ),
    Bench(
        "vqa",
        "VQA on easy-VQA: the default run",
        "vqa_quality.py",
        ("--runs", "default", *SEEDS),
        ("--runs", "default", *ONE_SEED, *TINY_VQA),
        11,
        "default 99.97% in 1.9 min (2026-11-26, one seed), measured before later changes to the text "
        "encoder and the attention; issue 14 measured 99.36% (127 s of training) on the code since.",
    ),
    Bench(
        "vqa_ablations",
        "VQA on easy-VQA: question-only, CNN+LSTM and stacked attention",
        "vqa_quality.py",
        ("--runs", "question_only", "cnn_lstm", "stacked_attention", *SEEDS),
        ("--runs", "question_only", "cnn_lstm", "stacked_attention", *ONE_SEED, *TINY_VQA),
        20,
        "question_only 66.69% (2026-11-26, one seed); cnn_lstm and stacked_attention never measured.",
    ),
    Bench(
        "dialog",
        "Visual dialog on shapes_dialog: four configs",
        "dialog_quality.py",
        SEEDS,
        ONE_SEED + ("--set", "data.num_dialogs=200", "--set", "trainer.max_epochs=1"),
        90,
        "MRR: discriminative 0.766, generative 0.589, question-only 0.577, no-history 0.720 (2026-11-26, "
        "one seed each; the last three on a shared machine).",
    ),
    Bench(
        "shapes_dialog_stats",
        "shapes_dialog: the data, and reference points without training",
        "shapes_dialog_stats.py",
        (),
        ("--num-dialogs", "300"),
        1.5,
        "answer prior MRR 0.572, NDCG 0.387; chance MRR 0.052 (2026-11-26).",
    ),
    Bench(
        "dialog_ranking_speed",
        "Generative dialog decoder: ranking 100 options",
        "dialog_ranking_speed.py",
        (),
        ("--rounds", "20", "--visdial-rounds", "4", "--repeats", "2"),
        8,
        "shapes sizes: vltk 10.75 s vs naive 35.60 s (3.3x), VisDial 320 rounds 190 s (2026-11-26, load "
        "~9, each way in its own process).",
    ),
    Bench(
        "navigation_gotoredball",
        "Navigation: BabyAI GoToRedBall",
        "navigation_quality.py",
        ("--runs", "default", *SEEDS),
        ("--runs", "default", *ONE_SEED, *TINY_NAV),
        24,
        "success 99.6%, SPL 0.9795 (2026-11-25, one seed): SPL from the bot's path length, which issue 14 "
        "found overstated.",
    ),
    Bench(
        "navigation_gotolocal",
        "Navigation: BabyAI GoToLocal",
        "navigation_quality.py",
        ("--runs", "gotolocal", "--diagnose", *SEEDS),
        (
            "--runs",
            "gotolocal",
            "--diagnose",
            "--diagnose-demos",
            "20",
            "--diagnose-episodes",
            "10",
            *ONE_SEED,
            *TINY_NAV,
        ),
        58,
        "success 99.8%, SPL 0.9904, 16.1 min (2026-11-26, one seed, shared machine): SPL from the bot's "
        "path length, which issue 14 found overstated.",
        also_runs=("navigation_diagnostics.py",),
    ),
    Bench(
        "beam_search_speed",
        "Beam search: batched vs one image at a time",
        "beam_search_speed.py",
        (),
        ("--epochs", "1", "--set", "data.num_images=200", "--repeats", "2", "--batch", "8"),
        4,
        "10.18x at beam 3, 3.77x at beam 5 (2026-11-25): before the decoder changes of 2026-11-26.",
    ),
    Bench(
        "decoder_throughput",
        "Decoder training throughput: vltk vs a per-step decoder",
        "decoder_throughput.py",
        ("--repeats", "5"),
        ("--repeats", "1"),
        2,
        "14x14 3.02x (five runs 2.99-3.46x), 7x7 2.09x, 56% / 75% of peak (2026-11-26).",
    ),
    Bench(
        "decoder_tutorial_speed",
        "Show, Attend and Tell training step: vltk vs sgrvinod's tutorial",
        "decoder_tutorial_speed.py",
        ("--repeats", "7"),
        ("--repeats", "1"),
        2,
        "7x7 2.26x, 14x14 3.19x; vltk's GEMMs alone 43% / 35% of its step (2026-12-04, by hand).",
    ),
    Bench(
        "text_encoder_speed",
        "Text encoder training step: padded vs packed",
        "text_encoder_speed.py",
        ("--repeats", "5"),
        ("--batch", "32", "--steps", "20", "--repeats", "2"),
        1,
        "7.3x (2026-11-26).",
    ),
    Bench(
        "r2r_env_speed",
        "R2R graph environment: steps per second on one core",
        "r2r_env_speed.py",
        (),
        ("--quick",),
        1,
        "never measured before this runner (new in issue 16).",
    ),
    Bench(
        "r2r_houses_quality",
        "Navigation: R2R houses (panoramic follower, seq2seq, blind baselines)",
        "r2r_houses_quality.py",
        ("--seeds", "42", "43", "44", "--baseline-seeds", "42", "--parallel", "2"),
        ("--seeds", "42", "--runs", "panoramic", "random_walk", *TINY_R2R),
        70,
        "never measured before this runner (new in issue 16).",
    ),
    Bench(
        "serve_latency",
        "vltk serve: upload to the first caption in a real browser",
        "serve_latency.py",
        ("--repeats", "20"),
        ("--repeats", "3", *TINY_CAPTIONS),
        15,
        "never measured before this runner (new in issue 20).",
    ),
    Bench(
        "resume_overhead",
        "Resume and safeguards overhead",
        "resume_overhead.py",
        ("--rounds", "3", "--steps", "40", "--save-every", "20"),
        ("--rounds", "2", "--steps", "4", "--save-every", "2", "--num-images", "200"),
        4,
        "-0.6% CPU time, +4.7% wall time per step (2026-11-25): before later changes to the runner.",
    ),
    Bench(
        "feature_cache",
        "Feature cache: ResNet-18 at 112x112",
        "feature_cache_speed.py",
        (),
        (
            "--sizes",
            "100",
            "200",
            "--repeats",
            "2",
            "--image-size",
            "64",
            "--loading-images",
            "200",
            "--loading-batches",
            "2",
            "--loading-repeats",
            "1",
        ),
        9,
        "3.6x faster per epoch (2026-11-25): each arm in its own process, not side by side; before later "
        "changes.",
    ),
    Bench(
        "feature_cache_resnet50",
        "Feature cache: ResNet-50 at 224x224",
        "feature_cache_speed.py",
        ("--encoder", "resnet50", "--image-size", "224", "--sizes", "500", "2000"),
        (
            "--encoder",
            "resnet50",
            "--image-size",
            "64",
            "--sizes",
            "50",
            "100",
            "--repeats",
            "2",
            "--loading-images",
            "100",
            "--loading-batches",
            "2",
            "--loading-repeats",
            "1",
        ),
        15,
        "18.5x faster per epoch (2026-11-25): each arm in its own process, not side by side; before later "
        "changes.",
    ),
)
REGISTRY += (
    Bench(
        "streaming_memory",
        "Streaming from shards: memory flat in the dataset size",
        "streaming_memory.py",
        (),
        ("--sizes", "2000", "20000"),
        40,
        "never measured before this runner (new in issue 18).",
    ),
)
REGISTRY += (
    Bench(
        "lm_budget",
        "lm: the default budget in updates, on a short and a long text",
        "lm_budget.py",
        SEEDS,
        (
            "--seeds",
            "42",
            "--short-chars",
            "20000",
            "--set",
            "trainer.max_steps=20",
            "--set",
            "trainer.val_check_interval=10",
        ),  # fmt: skip
        15,
        "never measured before this runner (new in issue 19); the issue measured about 80 updates in 15 s "
        "and 3.96 bpc on a 133 kB file with the 2-pass budget.",
    ),
    Bench(
        "predict_latency",
        "vltk predict: one 224 px image, from process start",
        "predict_latency.py",
        ("--repeats", "10"),
        ("--repeats", "2"),
        3,
        "never measured before this runner (new in issue 19).",
    ),
    Bench(
        "cached_scaling",
        "Captioning from cached features at 1x, 10x and 100x the built-in data",
        "cached_scaling.py",
        (),
        ("--scales", "1", "2"),
        30,
        "never measured before this runner (new in issue 19).",
    ),
    Bench(
        "run_profile",
        "Where the time of each default run goes",
        "profile_runs.py",
        (),
        tuple(
            arg
            for value in (
                "trainer.max_epochs=1",
                "captioning:data.num_images=200",
                "vqa:data.max_questions=300",
                "dialog:data.num_dialogs=200",
                "navigation:data.episodes=64",
                "navigation:data.val_episodes=10",
                "navigation:data.test_episodes=20",
                "lm:data.max_chars=60000",
            )
            for arg in ("--set", value)
        ),
        # the default runs' wall times so far: captioning 11.9 min, VQA 3.5, dialog 5.8 (2026-11-26),
        # navigation 7.7 + 0.5 for its demos; lm never timed (~2); plus five warm-cache data set-ups
        35,
        "never measured before this runner (new in issue 19).",
        quick_minutes=20,
    ),
)
# Modules in benchmarks/ that are not benchmarks of their own.
HELPERS = {
    "_report.py": "shared plumbing",
    "_timed_cli.py": "runs the vltk CLI and times Trainer.fit/test (the quality benchmarks)",
    "_timed_predict.py": "runs `vltk predict` and marks its phases (predict_latency)",
    "charrnn_common.py": "imported by the char-RNN benchmarks",
    "charrnn_reference.py": "the numpy min-char-rnn, imported by the char-RNN benchmarks",
    "run_all.py": "this runner",
}


def by_name() -> dict[str, Bench]:
    return {bench.name: bench for bench in REGISTRY}


# -------------------------------------------------------------------------------------------- provenance
def git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def commit() -> str:
    """``git rev-parse --short HEAD``, ``+dirty`` when tracked or new files differ (the runner's own
    outputs, BENCHMARKS.md and benchmarks/results/, do not count)."""
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    status = git(
        "status", "--porcelain", "--", ".", ":(exclude)BENCHMARKS.md", ":(exclude)benchmarks/results"
    )
    return head + ("+dirty" if status else "")


def machine() -> dict[str, str]:
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "torch": torch_version,
        "python": platform.python_version(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
    }


def shown(path: Path) -> str:
    """``path`` relative to the repository root when it is inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (hosts of one cloud type differ: see matmul_gflops)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


MATMUL_PROBE = """
import time, torch
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
times = []
for _ in range(10):
    start = time.perf_counter(); torch.mm(a, b); times.append(time.perf_counter() - start)
print(2 * 1024 ** 3 / min(times) / 1e9)
"""


def matmul_gflops() -> float | None:
    """The machine's speed just before a benchmark: the best of ten 1024^3 fp32 ``torch.mm`` (GFLOP/s, with
    the benchmark's threads), in a fresh process. Training times of different days have differed more than
    the code explains, so each record says how fast the machine was; ``None`` when the probe fails."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", MATMUL_PROBE], capture_output=True, text=True, timeout=120
        )
        return round(float(done.stdout.strip().splitlines()[-1]), 1) if done.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


# -------------------------------------------------------------------------------------------------- runs
def script_command(bench: Bench, mode: str, json_path: Path) -> list[str]:
    return [sys.executable, str(HERE / bench.script), *bench.args(mode), "--json", str(json_path)]


def shown_command(bench: Bench, mode: str) -> str:
    return shlex.join(["python", f"benchmarks/{bench.script}", *bench.args(mode)])


def _pump(stream, sinks) -> None:
    for line in iter(stream.readline, ""):
        for sink in sinks:
            sink.write(line)
            sink.flush()


def run_one(bench: Bench, mode: str, runner_command: str, timeout_factor: float, index: str) -> dict:
    """Run one benchmark in a fresh process; its record (also saved as results/MODE/NAME.json)."""
    out = RESULTS / mode
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / f"{bench.name}.log"
    timeout = bench.timeout_s(mode, timeout_factor)
    record = {
        "name": bench.name,
        "mode": mode,
        "commit": commit(),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "load_before": load(),
        "matmul_gflops_before": matmul_gflops(),
        "runner_command": runner_command,
        "command": shown_command(bench, mode),
        "timeout_s": timeout,
    }
    print(f"\n[{index}] {bench.name} ({mode}): {record['command']}\n"
          f"    expected ~{bench.full_minutes:g} min in full mode; timeout {timeout / 60:.0f} min; "
          f"log {shown(log_path)}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=f"vltk-bench-{bench.name}-") as scratch:
        json_path = Path(scratch) / "result.json"
        # A scratch data cache: nothing is read from (or left in) the user's ~/.cache/vltk.
        env = dict(os.environ, VLTK_BENCH_MODE=mode, VLTK_CACHE=str(Path(scratch) / "cache"),
                   PYTHONUNBUFFERED="1")  # fmt: skip
        start = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                script_command(bench, mode, json_path), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, start_new_session=True,
            )  # fmt: skip
            pump = threading.Thread(target=_pump, args=(process.stdout, [log, sys.stdout]), daemon=True)
            pump.start()
            try:
                code = process.wait(timeout=timeout)
                status = "ok" if code == 0 else f"failed (exit code {code})"
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
                status = f"timed out after {timeout / 60:.1f} min"
            pump.join(timeout=10)
        record["wall_s"] = time.monotonic() - start
        record["load_after"] = load()
        record["status"] = status
        if status == "ok" and json_path.is_file():
            result = json.loads(json_path.read_text())
            record["markdown"], record["data"] = result["markdown"], result["data"]
        else:
            if status == "ok":
                record["status"] = "failed (no result file)"
            lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            record["markdown"] = "Last lines of the log:\n\n```\n" + "\n".join(lines[-25:]) + "\n```"
            record["data"] = {}
    (out / f"{bench.name}.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"[{index}] {bench.name}: {record['status']} in {record['wall_s'] / 60:.1f} min", flush=True)
    return record


# ----------------------------------------------------------------------------------------------- render
def read_record(name: str, mode: str) -> dict | None:
    path = RESULTS / mode / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def provenance(record: dict) -> str:
    m = record["machine"]
    before = " / ".join(f"{v:.2f}" for v in record["load_before"])
    after = " / ".join(f"{v:.2f}" for v in record.get("load_after", []))
    model = f" ({m['cpu_model']})" if m.get("cpu_model", "unknown") != "unknown" else ""
    gflops = record.get("matmul_gflops_before")
    speed = f"; machine speed before: {gflops:g} GFLOP/s fp32 matmul (1024^3)" if gflops else ""
    return (
        f"Measured on commit `{record['commit']}`, {record['started']}, {m['cpu']}{model} with "
        f"{m['cpu_count']} CPUs{speed}, torch {m['torch']}, Python {m['python']}, "
        f"OMP_NUM_THREADS={m['omp_num_threads']}; load average (1/5/15 min) {before} before, {after} "
        f"after; {record['wall_s'] / 60:.1f} min; status: "
        f"**{record['status']}**.\n"
        f"Command: `{record['runner_command']}`, which ran `{record['command']}`."
    )


def render_section(bench: Bench) -> str:
    full, quick = read_record(bench.name, "full"), read_record(bench.name, "quick")
    parts = [f"<!-- bench:{bench.name}:begin (written by benchmarks/run_all.py; edit outside) -->",
             f"## {bench.title}", ""]  # fmt: skip
    if full is not None:
        parts += [provenance(full), "", full["markdown"]]
    else:
        parts += [
            "**Full mode not yet run on this code** (`python benchmarks/run_all.py --full --only "
            f"{bench.name}`, about {bench.full_minutes:g} min on 2 quiet cores). Last figure before the "
            f"runner, **stale**: {bench.stale} The old tables are in [{HISTORY}]({HISTORY}).",
        ]
        if quick is not None:
            banner = (
                "**Quick mode** (tiny sizes, 1 seed: this shows the benchmark runs on this commit; its "
                "figures are not measurements)."
            )
            parts += ["", banner, "", provenance(quick), "", quick["markdown"]]
    parts += [f"<!-- bench:{bench.name}:end -->"]
    return "\n".join(parts)


def write_sections(names: list[str]) -> None:
    """Replace the sections of ``names`` in BENCHMARKS.md (appended at the end when missing)."""
    text = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    for name in names:
        section = render_section(by_name()[name])
        pattern = re.compile(
            rf"<!-- bench:{re.escape(name)}:begin[^>]*-->.*?<!-- bench:{re.escape(name)}:end -->", re.DOTALL
        )
        if pattern.search(text):
            text = pattern.sub(lambda _, section=section: section, text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
    BENCHMARKS_MD.write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------------------- main
def list_table() -> str:
    rows = ["| name | script | full mode | expected full (min) | quick mode |", "|---|---|---|---|---|"]
    for b in REGISTRY:
        full = shlex.join(b.full) or "(defaults)"
        rows.append(f"| {b.name} | {b.script} | `{full}` | {b.full_minutes:g} | `{shlex.join(b.quick)}` |")
    total = sum(b.full_minutes for b in REGISTRY)
    return "\n".join(rows) + f"\n\nexpected full-mode total: about {total / 60:.1f} h on 2 quiet CPU cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--quick", action="store_true", help="tiny sizes, 1 seed: does everything run?")
    what.add_argument("--full", action="store_true", help="the real figures (several hours)")
    what.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    what.add_argument("--render", action="store_true", help="rebuild BENCHMARKS.md from benchmarks/results/")
    parser.add_argument("--only", default=None, help="comma-separated names (see --list)")
    parser.add_argument("--skip", default=None, help="comma-separated names to leave out")
    parser.add_argument("--timeout-factor", type=float, default=1.0, help="scale every timeout")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    registry = by_name()
    if args.list:
        print(list_table())
        return 0
    names = [b.name for b in REGISTRY]
    for option in ("only", "skip"):
        value = getattr(args, option)
        if value is None:
            continue
        chosen = [n.strip() for n in value.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in registry]
        if unknown:
            print(
                f"error: unknown benchmark(s) in --{option}: {', '.join(unknown)} (see --list)",
                file=sys.stderr,
            )
            return 2
        names = (
            [n for n in names if n in chosen] if option == "only" else [n for n in names if n not in chosen]
        )
    if args.render:
        write_sections(names)
        print(f"rewrote {len(names)} section(s) of {shown(BENCHMARKS_MD)} from {shown(RESULTS)}/")
        return 0
    mode = "full" if args.full else "quick"
    runner_command = shlex.join(
        ["python", "benchmarks/run_all.py", *(argv if argv is not None else sys.argv[1:])]
    )
    records = []
    for i, name in enumerate(names, 1):
        records.append(
            run_one(registry[name], mode, runner_command, args.timeout_factor, f"{i}/{len(names)}")
        )
        if not args.no_write:
            write_sections([name])
    print("\n| benchmark | status | wall (min) |\n|---|---|---|")
    for record in records:
        print(f"| {record['name']} | {record['status']} | {record['wall_s'] / 60:.1f} |")
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
