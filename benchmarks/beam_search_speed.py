"""Batched beam search (all images of a batch at once, finished images dropped from the computation) vs the
same search run one image at a time, with identical captions required.

By default a captioner trained by ``vltk train captioning`` is used (``--checkpoint``; without one the script
trains the default config on the built-in shapes data for ``--epochs`` epochs first, so the captions and the
moments beams finish are those of a real model), on the first ``--batch`` test images. Both ways run in this
process, interleaved (batched, one at a time, one at a time, batched, ...); best and median of the repeats.

    python benchmarks/beam_search_speed.py [--checkpoint RUN/checkpoints/best.ckpt] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, best_median, interleaved, publish, verdict  # noqa: E402

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
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--set", action="append", default=[], help="extra overrides when training the captioner"
    )
    add_json_argument(parser)
    args = parser.parse_args()
    checkpoint = args.checkpoint
    source = f"from `{checkpoint}`"
    if checkpoint is None:
        source = f"trained by the script (default captioning config, {args.epochs} epochs on shapes"
        source += f", overrides {', '.join(args.set)})" if args.set else ")"
        run_dir = Path(tempfile.mkdtemp(prefix="beam-bench-"))
        cfg = load_task_config(
            "captioning",
            None,
            [f"trainer.max_epochs={args.epochs}", "trainer.enable_progress_bar=false", *args.set],
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
    rows, data = [], {}
    for beam_size in (3, 5):
        out: dict[str, list] = {}
        times = interleaved(
            {
                "batched": lambda k=beam_size, out=out: out.__setitem__(
                    "batched", captions(model, features, k)
                ),
                "single": lambda k=beam_size, out=out: out.__setitem__(
                    "single", [captions(model, slice_features(features, i), k)[0] for i in range(len(images))]
                ),
            },
            args.repeats,
        )
        identical = sum(a == b for a, b in zip(out["batched"], out["single"]))
        stats = {arm: best_median(t) for arm, t in times.items()}
        rows.append((beam_size, stats, identical, len(images)))
        data[f"beam {beam_size}"] = {"times": times, "identical": identical, "images": len(images)}
        print(f"beam {beam_size}: batched {stats['batched']}, one at a time {stats['single']}, "
              f"{identical}/{len(images)} identical", flush=True)  # fmt: skip

    def row(k: int, stats: dict, same: int, n: int) -> str:
        ratio = stats["single"]["median"] / stats["batched"]["median"]
        best = stats["single"]["best"] / stats["batched"]["best"]
        judged = verdict(ratio, 3.0, fmt=".2f", unit="x") if k == 3 else "-"
        return (f"| {k} | {n / stats['batched']['best']:.1f} / {n / stats['batched']['median']:.1f} | "
                f"{n / stats['single']['best']:.1f} / {n / stats['single']['median']:.1f} | **{ratio:.2f}x** "
                f"({best:.2f}x) | {same}/{n} | {judged} |")  # fmt: skip

    text = (
        f"Captioner {source}; the first {rows[0][3]} test images in one batch, max length 20, encoding "
        f"excluded; both ways in one process, {args.repeats} interleaved repeats; speed-up = ratio of the "
        "medians (of the best repeats in brackets).\n"
        "\n"
        "| beam | batched images/s, best / median | one-at-a-time images/s, best / median | speed-up | "
        "identical captions | target (issue 7): >= 3x at beam 3, batch 32, identical captions |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(row(*r) for r in rows) + "\n"
    )
    publish(text, data, args.json)


if __name__ == "__main__":
    main()
