"""Batched beam search (all images of a batch at once, finished images dropped from the computation) vs the
same search run one image at a time, with identical captions required.

By default a captioner trained by ``vltk train captioning`` is used (``--checkpoint``; without one the script
trains the default config on the built-in shapes data for ``--epochs`` epochs first, so the captions and the
moments beams finish are those of a real model), on the first ``--batch`` test images.

    python benchmarks/beam_search_speed.py [--checkpoint RUN/checkpoints/best.ckpt] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import invocation, machine, publish  # noqa: E402

from vltk.decoding import BeamResult  # noqa: E402
from vltk.tasks.runner import build_datamodule, load_system, load_task_config, task_entry, train  # noqa: E402


def captions(model, features, beam_size: int) -> list[list[int]]:
    result = model.generate(features, method="beam", beam_size=beam_size, max_length=20)
    best = result.best() if isinstance(result, BeamResult) else result
    return [row[:n] for row, n in zip(best.tokens.tolist(), best.lengths.tolist())]


def slice_features(features, index: int):
    from dataclasses import replace

    return replace(
        features,
        grid=features.grid[index : index + 1],
        pooled=features.pooled[index : index + 1],
        mask=None if features.mask is None else features.mask[index : index + 1],
    )


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    checkpoint = args.checkpoint
    source = f"from `{checkpoint}`"
    if checkpoint is None:
        source = f"trained by the script (default captioning config, {args.epochs} epochs on shapes)"
        run_dir = Path(tempfile.mkdtemp(prefix="beam-bench-"))
        cfg = load_task_config(
            "captioning", None, [f"trainer.max_epochs={args.epochs}", "trainer.enable_progress_bar=false"]
        )
        train(cfg, run_dir=run_dir)
        checkpoint = run_dir / "checkpoints" / "best.ckpt"
    system = load_system(checkpoint)
    model = system.model.eval()
    datamodule = build_datamodule(task_entry("captioning"), system.config)
    system.attach_data(datamodule)
    datamodule.prepare_data()
    datamodule.setup("test")
    batch = next(iter(datamodule.dataloader_for("test")))
    images = batch.images[: args.batch]
    features = model.encode(images)
    rows = []
    for beam_size in (3, 5):
        batched_times, single_times = [], []
        for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
            start = time.perf_counter()
            batched = captions(model, features, beam_size)
            batched_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            single = [captions(model, slice_features(features, i), beam_size)[0] for i in range(len(images))]
            single_times.append(time.perf_counter() - start)
        identical = sum(a == b for a, b in zip(batched, single))
        batched_rate = len(images) / statistics.median(batched_times)
        single_rate = len(images) / statistics.median(single_times)
        rows.append((beam_size, batched_rate, single_rate, identical, len(images)))
        print(f"beam {beam_size}: batched {batched_rate:.1f} img/s, one at a time {single_rate:.1f} img/s, "
              f"{identical}/{len(images)} identical")  # fmt: skip
    load = os.getloadavg()
    table = "\n".join(
        f"| {k} | {b:.1f} | {s:.1f} | **{b / s:.2f}x** | {same}/{n} |" for k, b, s, same, n in rows
    )
    text = (
        f"\n## Beam search: batched vs one image at a time ({time.strftime('%Y-%m-%d')})\n\n"
        f"`{invocation()}` on {machine()}; load average at the end {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}. Captioner {source}, the first {rows[0][4]} test images in one batch, "
        f"max length 20, median of {args.repeats} interleaved repeats; encoding excluded.\n\n"
        "| beam | batched images/s | one-at-a-time images/s | speed-up | identical captions |\n"
        "|---|---|---|---|---|\n" + table + "\n\nTarget: >= 3x at beam 3, batch 32, identical captions.\n"
    )
    publish(text, append=not args.no_append)


if __name__ == "__main__":
    main()
