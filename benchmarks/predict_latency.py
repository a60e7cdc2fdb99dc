"""Latency of ``vltk predict`` on one 224 px image, from process start to exit, and where it goes.

    python benchmarks/predict_latency.py                         # trains a captioner (default model, 1 epoch)
    python benchmarks/predict_latency.py --checkpoint runs/captioning/RUN/checkpoints/best.ckpt --repeats 10

Each repeat is a fresh ``vltk predict CKPT IMAGE`` process (through ``_timed_predict.py``, which runs the
same CLI and notes when each phase started and ended on the system-wide monotonic clock), after one untimed
warm-up (so the OS file cache holds the interpreter, the libraries and the checkpoint, as for a user's second
call). The phases: interpreter start (the parent starts the process -> the script's first line), imports
(torch, Lightning, vltk), the CLI (Typer's parsing, the option checks, printing the line), reading the
checkpoint, building the model, reading the image, encoding and decoding (the CNN and beam search at the
checkpoint's beam size), and process exit (the command returned -> the parent sees the exit). Medians over
the repeats; the phases of each repeat sum to its total.

Without ``--checkpoint`` the script trains the default captioning model for one epoch (`vltk train captioning
--set trainer.max_epochs=1`): the same architecture and decoding settings as the default run, so the same
work per image, with weights that are not converged (its captions may differ in length from a converged
model's; beam search stops at ``decoding.max_length`` words either way).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, publish  # noqa: E402

HERE = Path(__file__).resolve().parent
TIMED_PREDICT = HERE / "_timed_predict.py"
PHASES = (
    "interpreter start",
    "imports (torch, Lightning, vltk)",
    "CLI (parsing, option checks, printing)",
    "read checkpoint",
    "build model",
    "read image",
    "encode and decode",
    "process exit",
)


def train_captioner(work: Path) -> Path:
    """The default captioning model after one epoch on shapes (its data generated into ``work``)."""
    run = work / "captioner"
    command = ["train", "captioning", "--seed", "42", "--run-dir", str(run), "--set", "trainer.max_epochs=1",
               "--set", "trainer.enable_progress_bar=false"]  # fmt: skip
    env = dict(os.environ, VLTK_CACHE=str(work / "cache"))
    subprocess.run([sys.executable, "-m", "vltk", *command], check=True, env=env, stdout=subprocess.DEVNULL)
    return run / "checkpoints" / "best.ckpt"


def sample_image(work: Path, size: int) -> Path:
    """A ``size`` px PNG: a shapes test image (from ``work``'s cache when there is one) or a drawn one."""
    found = sorted((work / "cache").rglob("*.png"))
    if found:
        image = Image.open(found[-1]).convert("RGB").resize((size, size), Image.BILINEAR)
    else:  # a given checkpoint and no cache: a plain picture of the same size
        from PIL import ImageDraw

        image = Image.new("RGB", (size, size), (240, 240, 240))
        ImageDraw.Draw(image).ellipse(
            (size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(200, 30, 30)
        )
    path = work / f"image-{size}.png"
    image.save(path)
    return path


def one_run(checkpoint: Path, image: Path, work: Path, index: int) -> dict[str, float]:
    """One timed ``vltk predict`` process: seconds per phase, and its output."""
    timing = work / f"timing-{index}.json"
    env = dict(os.environ, VLTK_BENCH_TIMING=str(timing))
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(TIMED_PREDICT), "predict", str(checkpoint), str(image)],
                          env=env, capture_output=True, text=True, check=True)  # fmt: skip
    end = time.monotonic()
    record = json.loads(timing.read_text())
    marks, spans = record["marks"], record["spans"]
    command = marks["returned"] - marks["imported"]
    timed = ("read checkpoint", "build model", "read image", "encode and decode")
    inside = {name: spans.get(name, 0.0) for name in timed}
    phases = {
        "interpreter start": marks["started"] - start,
        "imports (torch, Lightning, vltk)": marks["imported"] - marks["started"],
        "CLI (parsing, option checks, printing)": command - sum(inside.values()),  # outside the timed calls
        **inside,
        "process exit": end - marks["returned"],
    }
    phases["total"] = end - start
    phases["output"] = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return phases


def table(runs: list[dict]) -> str:
    total = statistics.median(r["total"] for r in runs)
    lines = ["| phase | median (ms) | min-max (ms) | % of the median total |", "|---|---|---|---|"]
    for phase in PHASES:
        values = [r[phase] * 1000 for r in runs]
        median = statistics.median(values)
        share = 100 * median / 1000 / total
        lines.append(f"| {phase} | {median:.0f} | {min(values):.0f}-{max(values):.0f} | {share:.1f}% |")
    values = [r["total"] * 1000 for r in runs]
    lines.append(f"| **total, process start to exit** | **{statistics.median(values):.0f}** | "
                 f"{min(values):.0f}-{max(values):.0f} | |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, help="a captioning checkpoint (default: train one)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=224)
    add_json_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vltk-predict-latency-") as tmp:
        work = Path(tmp)
        checkpoint = args.checkpoint or train_captioner(work)
        image = sample_image(work, args.image_size)
        one_run(checkpoint, image, work, -1)  # warm-up: the OS file cache, as for a second call
        runs = [one_run(checkpoint, image, work, index) for index in range(args.repeats)]
    trained = "the default captioning model trained by the script for one epoch on shapes (seed 42)"
    source = f"`{args.checkpoint}`" if args.checkpoint else trained
    text = (
        f"`vltk predict CKPT image.png` on one {args.image_size} px PNG, {source}, the checkpoint's decoding "
        f"(beam search); {args.repeats} fresh processes after one untimed warm-up, on the system-wide "
        "monotonic clock (`benchmarks/_timed_predict.py` marks the phases inside the process). The CLI row "
        "is the command's time outside the timed calls (Typer's parsing, the option checks, printing one "
        f"line).\n\n{table(runs)}\n\nThe caption it printed: `{runs[-1]['output']}`. No target of its own "
        "(issue 19 asks for the split).\n"
    )
    publish(text, {"runs": runs, "checkpoint": str(args.checkpoint or "trained")}, args.json)


if __name__ == "__main__":
    main()
