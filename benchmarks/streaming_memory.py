"""Streaming captions from tar shards: one training epoch's wall time and peak memory, at growing sizes.

For each size (10k, 100k and 1M samples by default) this writes synthetic samples -- 32x32 PNG images (a pool
of 512 distinct pictures of coloured boxes) with two short captions each -- into shards with
``vltk.data.shards.ShardWriter`` (streamed: nothing is held per sample), plus the ``shards.json`` index and
``word_counts.json`` that ``vltk data shards`` writes. Then, in a fresh process (``OMP_NUM_THREADS=1``), it
sets up the streaming DataModule (``data.name: webdataset``), gives it the small CNN's preprocessing at 32x32
and iterates one epoch of its training loader: image-caption pairs decoded, transformed and collated into
``CaptionBatch`` es as training would (``--workers`` DataLoader workers, a shuffle buffer of
``--shuffle-buffer`` pairs), no model. Recorded per size: the epoch's wall time, the peak RSS (``VmHWM``) of
the main process and the peak private (anonymous) memory of the main process and of its workers, sampled
every 20 ms from ``/proc``. The shards are deleted after each size unless ``--keep``.

    python benchmarks/streaming_memory.py [--sizes 10000 100000 1000000] [--workers 2] [--work /tmp/DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, peak_rss_mib, publish, status_kib, verdict  # noqa: E402

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
SHAPES = ["box", "square", "block", "tile"]
PLACES = ["on the left", "on the right", "at the top", "at the bottom", "in the middle"]
TARGET_RATIO = 1.10  # peak memory at the largest size over the smallest: "flat"


def picture_pool(count: int = 512, size: int = 32) -> list[tuple[bytes, str, str]]:
    """``count`` distinct PNGs of one coloured box on a grey background, with the box's colour and place."""
    from PIL import Image, ImageDraw

    rng = random.Random(0)
    pool = []
    palette = {
        "red": (220, 40, 40),
        "green": (40, 200, 40),
        "blue": (40, 40, 220),
        "yellow": (230, 220, 40),
        "purple": (150, 40, 170),
        "orange": (240, 140, 30),
        "white": (250, 250, 250),
        "black": (10, 10, 10),
    }
    for _ in range(count):
        colour, place = rng.choice(COLOURS), rng.choice(PLACES)
        image = Image.new("RGB", (size, size), (128, 128, 128))
        side = rng.randint(6, 14)
        x = {"on the left": 2, "on the right": size - side - 2}.get(place, rng.randint(2, size - side - 2))
        y = {"at the top": 2, "at the bottom": size - side - 2}.get(place, rng.randint(2, size - side - 2))
        ImageDraw.Draw(image).rectangle([x, y, x + side, y + side], fill=palette[colour])
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pool.append((buffer.getvalue(), colour, place))
    return pool


def write_synthetic(out: Path, samples: int, shard_size: int) -> dict:
    """Shards of ``samples`` synthetic samples (train only: the epoch measured is a training epoch)."""
    from vltk.data.shards import ShardIndex, ShardWriter, write_index

    start = time.perf_counter()
    pool = picture_pool()
    rng = random.Random(1)
    counts: Counter[str] = Counter()
    with ShardWriter(out, "train", shard_size) as writer:
        for image_id in range(samples):
            png, colour, place = pool[image_id % len(pool)]
            shape = rng.choice(SHAPES)
            raws = [
                f"a {colour} {shape} {place}",
                f"there is a {rng.choice(['small', 'large'])} {colour} {shape}",
            ]
            tokens = [raw.split() for raw in raws]  # already lower case, no punctuation: vltk's tokens
            for words in tokens:
                counts.update(words)
            meta = {"image_id": image_id, "raws": raws, "tokens": tokens}
            writer.write({"__key__": str(image_id), "png": png, "json": json.dumps(meta).encode()}, items=2)
    (out / "word_counts.json").write_text(json.dumps(counts) + "\n", encoding="utf-8")
    write_index(ShardIndex(out, "captions", {"train": writer.shards}, {"source": "synthetic"}))
    size = sum(path.stat().st_size for path in out.iterdir())
    return {"write_s": time.perf_counter() - start, "shards": len(writer.shards), "disk_mib": size / 2**20}


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def child_epoch(directory: Path, batch_size: int, workers: int, shuffle_buffer: int) -> dict:
    """One training epoch over the shards in this (fresh) process; its time and memory."""
    from vltk.encoders import IMAGE_ENCODERS
    from vltk.registry import build
    from vltk.tasks.captioning.shards import ShardedCaptionsDataModule

    pid = os.getpid()
    peak = {"main_anon": status_kib(pid, "RssAnon"), "worker_anon": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["main_anon"] = max(peak["main_anon"], status_kib(pid, "RssAnon"))
            for child in _children(pid):
                peak["worker_anon"] = max(peak["worker_anon"], status_kib(child, "RssAnon"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    datamodule = ShardedCaptionsDataModule(
        path=str(directory), batch_size=batch_size, num_workers=workers, shuffle_buffer=shuffle_buffer
    )
    datamodule.setup("fit")
    encoder = build(IMAGE_ENCODERS, {"name": "small_cnn", "image_size": 32})
    datamodule.image_transform = encoder.transforms()
    loader = datamodule.train_dataloader()
    start = time.perf_counter()
    batches = items = 0
    for batch in loader:
        batches += 1
        items += len(batch)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    if batches != len(loader):
        raise RuntimeError(f"{batches} batches, len(loader) said {len(loader)}")
    return {
        "epoch_s": seconds,
        "batches": batches,
        "items": items,
        "main_rss_mib": peak_rss_mib(),
        "main_anon_mib": peak["main_anon"] / 1024,
        "worker_anon_mib": peak["worker_anon"] / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--shard-size", type=int, default=10_000, help="samples per shard")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shuffle-buffer", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=None, help="where the shards go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the shards")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    add_json_argument(parser)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child_epoch(args.child, args.batch_size, args.workers, args.shuffle_buffer)))
        return
    work = Path(tempfile.mkdtemp(prefix="vltk-streaming-", dir=args.work))
    rows = {}
    try:
        for size in args.sizes:
            out = work / f"shards-{size}"
            written = write_synthetic(out, size, args.shard_size)
            print(
                f"{size} samples: {written['shards']} shards, {written['disk_mib']:.0f} MiB in "
                f"{written['write_s']:.0f} s",
                flush=True,
            )
            command = [
                sys.executable,
                __file__,
                "--child",
                str(out),
                "--batch-size",
                str(args.batch_size),
                "--workers",
                str(args.workers),
                "--shuffle-buffer",
                str(args.shuffle_buffer),
            ]
            env = dict(os.environ, OMP_NUM_THREADS="1")
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"the epoch of {size} samples failed:\n{done.stderr[-3000:]}")
            rows[size] = {**written, **json.loads(done.stdout.strip().splitlines()[-1])}
            print(json.dumps(rows[size]), flush=True)
            if not args.keep:
                shutil.rmtree(out)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    small, large = min(rows), max(rows)
    ratio = {
        key: rows[large][key] / rows[small][key]
        for key in ("main_rss_mib", "main_anon_mib", "worker_anon_mib")
    }
    table = (
        "| samples | shards | image-caption pairs | epoch (s) | pairs/s | peak RSS, main (MiB) | "
        "peak private, main (MiB) | peak private, per worker (MiB) | shards on disk (MiB) |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        + "".join(
            f"| {size:,} | {r['shards']} | {r['items']:,} | {r['epoch_s']:.1f} "
            f"| {r['items'] / r['epoch_s']:,.0f} "
            f"| {r['main_rss_mib']:.0f} | {r['main_anon_mib']:.0f} | {r['worker_anon_mib']:.0f} "
            f"| {r['disk_mib']:,.0f} |\n"
            for size, r in sorted(rows.items())
        )
    )
    worst = max(ratio.values())
    markdown = (
        f"One training epoch of the streaming caption DataModule (`data.name: webdataset`) over synthetic "
        f"shards: 32x32 PNGs with 2 captions each, {args.shard_size:,} samples per shard, batches of "
        f"{args.batch_size} pairs collated as training does, {args.workers} DataLoader workers, a shuffle "
        f"buffer of {args.shuffle_buffer:,} pairs per worker, no model; each size in a fresh process with "
        "OMP_NUM_THREADS=1 (peak private memory sampled every 20 ms from /proc).\n\n"
        f"{table}\n"
        f"Peak memory at {large:,} vs {small:,} samples: main RSS x{ratio['main_rss_mib']:.3f}, main private "
        f"x{ratio['main_anon_mib']:.3f}, worker private x{ratio['worker_anon_mib']:.3f}. Target (issue 18): "
        f"memory flat in the dataset size, the largest ratio <= {TARGET_RATIO:.2f}: "
        f"{verdict(worst, TARGET_RATIO, higher=False)}."
    )
    publish(markdown, {"rows": rows, "ratio": ratio}, args.json)


if __name__ == "__main__":
    main()
