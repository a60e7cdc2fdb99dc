"""Training from cached CNN features vs from images through the same frozen encoder, side by side in one
process; the memory of a cached-feature epoch at two dataset sizes; data-loading items/s with 0, 1, 2 workers.

1. Epoch time: the default captioning decoder on the built-in shapes data with a frozen backbone
   (``--encoder``, ``weights: null``: the speed of a pretrained one, nothing to download; ResNet-18 at
   112x112 by default, ``--encoder resnet50 --image-size 224`` for a COCO-like setup), trained one epoch from
   images and one epoch from a feature cache made by ``vltk data cache-features`` with the same encoder.
   Both arms run in this process through ``vltk.tasks.runner.train`` (the path of ``vltk train``),
   interleaved A B B A A B ... for ``--repeats`` rounds; the epoch time is ``on_train_epoch_start`` to
   ``on_train_epoch_end`` (data loading included); best and median per arm, and their ratios.
2. Memory: peak private (anonymous) memory of a process training one cached-feature epoch, for two dataset
   sizes, each in a fresh process (memory is a per-process figure). The cache is read through a memory
   map: its file pages are page cache the OS can drop, and are not private memory. (Peak RSS, which counts
   touched file pages too, is reported beside it.)
3. Data loading: items/s of the captioning training DataLoader (PNG decode + transform + collate, images not
   kept in memory) with ``num_workers`` 0, 1 and 2, interleaved in this process, best and median.

All data lives in a scratch ``VLTK_CACHE`` made before the first timing.

    python benchmarks/feature_cache_speed.py [--encoder resnet50 --image-size 224 --sizes 500 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, best_median, peak_rss_mib, publish, verdict  # noqa: E402

ENCODER: list[str] = []  # set from --encoder / --image-size in main()
COMMON = ["trainer.max_epochs=1", "trainer.limit_val_batches=0", "trainer.limit_test_batches=0",
          "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "trainer.devices=1",
          "data.in_memory=false"]  # fmt: skip


def private_memory_kib() -> int:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return int(fields["RssAnon"].split()[0])


def train_epoch(overrides: list[str]) -> float:
    """One training epoch through ``vltk.tasks.runner.train``: its wall time (epoch start to end)."""
    import pytorch_lightning as pl

    from vltk.tasks.runner import load_task_config, train

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.seconds = time.perf_counter() - self.start

    timer = EpochTimer()
    cfg = load_task_config("captioning", None, COMMON + overrides)
    train(cfg, run_dir=tempfile.mkdtemp(prefix="cache-bench-run-"), extra_callbacks=[timer])
    return timer.seconds


def child_memory(overrides: list[str]) -> dict:
    """One training epoch in this (fresh) process: peak private memory (sampled every 20 ms), peak RSS."""
    peak = {"anon": private_memory_kib()}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["anon"] = max(peak["anon"], private_memory_kib())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seconds = train_epoch(overrides)
    stop.set()
    sampler.join()
    return {"seconds": seconds, "anon_mib": peak["anon"] / 1024,
            "maxrss_mib": peak_rss_mib()}  # fmt: skip


def loading_rates(workers: list[int], images: int, batches: int, repeats: int) -> dict[int, dict]:
    """Items/s of ``batches`` training batches (after 3 warm-up batches) per worker count, interleaved."""
    from vltk.tasks.runner import build_datamodule, load_task_config, task_entry

    modules = {}
    for count in workers:
        cfg = load_task_config(
            "captioning", None, COMMON + [f"data.num_workers={count}", f"data.num_images={images}"]
        )
        datamodule = build_datamodule(task_entry("captioning"), cfg)
        datamodule.prepare_data()
        datamodule.setup("fit")
        modules[count] = datamodule
    rates: dict[int, list[float]] = {count: [] for count in workers}
    for round_index in range(repeats):
        for count in workers if round_index % 2 == 0 else list(reversed(workers)):
            loader = iter(modules[count].train_dataloader())
            for _ in range(3):  # workers started, files in the page cache
                next(loader)
            start = time.perf_counter()
            items = sum(len(next(loader)) for _ in range(batches))
            rates[count].append(items / (time.perf_counter() - start))
            del loader
    return {count: {"best": max(r), "median": sorted(r)[len(r) // 2], "all": r} for count, r in rates.items()}


def run_child(*args: str) -> dict:
    env = {**os.environ, "VLTK_LOG_LEVEL": "ERROR"}
    result = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(result.stdout + result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def make_cache(num_images: int, out: Path) -> float:
    """``vltk data cache-features`` in a fresh process; seconds from process start to exit."""
    start = time.monotonic()
    command = [sys.executable, "-m", "vltk.cli.main", "data", "cache-features", "--out", str(out)]
    command += [arg for value in ENCODER + [f"data.num_images={num_images}"] for arg in ("--set", value)]
    subprocess.run(command, check=True, capture_output=True)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", default="resnet18", help="frozen torchvision backbone (weights: null)")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 4000])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the two epoch arms")
    parser.add_argument("--loading-images", type=int, default=3000)
    parser.add_argument("--loading-batches", type=int, default=20)
    parser.add_argument("--loading-repeats", type=int, default=3)
    add_json_argument(parser)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ENCODER[:] = [f"model.encoder.name={args.encoder}", "model.encoder.weights=null",
                  "model.encoder.trainable=false", f"model.encoder.image_size={args.image_size}"]  # fmt: skip
    if args.child:
        print(json.dumps(child_memory(args.child)))
        return

    small, large = args.sizes
    scratch = Path(tempfile.mkdtemp(prefix="cache-bench-"))
    os.environ["VLTK_CACHE"] = str(scratch / "vltk-cache")  # the shapes data, for this process and children
    caches = {size: scratch / f"features-{size}" for size in (small, large)}
    cache_seconds = {size: make_cache(size, path) for size, path in caches.items()}
    cached = {size: ["model.encoder.name=cached", f"model.encoder.path={caches[size]}"] for size in caches}

    arms = {
        "images": ENCODER + [f"data.num_images={small}"],
        "cache": cached[small] + [f"data.num_images={small}"],
    }
    epochs: dict[str, list[float]] = {"images": [], "cache": []}
    for round_index in range(args.repeats):
        for arm in ("images", "cache") if round_index % 2 == 0 else ("cache", "images"):
            epochs[arm].append(train_epoch(arms[arm]))
            print(f"round {round_index}: {arm} {epochs[arm][-1]:.2f} s", flush=True)
    stats = {arm: best_median(times) for arm, times in epochs.items()}
    speedup_median = stats["images"]["median"] / stats["cache"]["median"]
    speedup_best = stats["images"]["best"] / stats["cache"]["best"]
    memory = {size: run_child(*cached[size], f"data.num_images={size}") for size in (small, large)}
    loading = loading_rates([0, 1, 2], args.loading_images, args.loading_batches, args.loading_repeats)

    def seconds(values: list[float]) -> str:
        return ", ".join(f"{v:.1f}" for v in values)

    text = (
        f"Default captioning decoder, one training epoch (validation and test off), frozen {args.encoder} "
        f"(`weights: null`) at {args.image_size}x{args.image_size} on {small} shapes images; both arms in "
        f"one process, {args.repeats} interleaved rounds (A B, B A, ...).\n"
        "\n"
        "| arm | best epoch (s) | median epoch (s) | every round (s) |\n"
        "|---|---|---|---|\n"
        + "".join(
            f"| {label} | {stats[arm]['best']:.2f} | {stats[arm]['median']:.2f} | {seconds(epochs[arm])} |\n"
            for arm, label in (
                ("images", f"from images, frozen {args.encoder}"),
                ("cache", "from the feature cache"),
            )
        )
        + f"\nTraining from the cache: **{speedup_median:.1f}x** faster per epoch by the medians "
        f"({speedup_best:.1f}x by the best epochs). Target (issue 7): >= 5x: {verdict(speedup_median, 5.0, fmt='.1f', unit='x')}.\n\n"  # noqa: E501
        "Making the caches (`vltk data cache-features`, process start to exit, one pass of the encoder): "
        f"{cache_seconds[small]:.0f} s for {small} images, {cache_seconds[large]:.0f} s for {large}.\n"
        "\n"
        "| cached-feature epoch, fresh process | images | epoch (s) | peak private memory (MiB) | peak RSS "
        "(MiB) |\n"
        "|---|---|---|---|---|\n"
        + "".join(
            f"| from the feature cache | {size} | {memory[size]['seconds']:.1f} | "
            f"{memory[size]['anon_mib']:.0f} | {memory[size]['maxrss_mib']:.0f} |\n"
            for size in (small, large)
        )  # fmt: skip
        + "\n"
        f"Peak private memory at {large} vs {small} images: {memory[large]['anon_mib']:.0f} vs "
        f"{memory[small]['anon_mib']:.0f} MiB.\n"
        "\n"
        f"| DataLoader workers ({args.loading_batches} batches, {args.loading_repeats} interleaved "
        "rounds) | 0 | 1 | 2 |\n"
        "|---|---|---|---|\n"
        "| training items/s, best (PNG decode + transform + collate, default small CNN transform) | "
        + " | ".join(f"{loading[w]['best']:.0f}" for w in (0, 1, 2))
        + " |\n| training items/s, median | "
        + " | ".join(f"{loading[w]['median']:.0f}" for w in (0, 1, 2))
        + " |\n"
    )
    data = {"epochs": epochs, "speedup_median": speedup_median, "speedup_best": speedup_best,
            "cache_seconds": cache_seconds, "memory": memory, "loading": loading}  # fmt: skip
    publish(text, data, args.json)


if __name__ == "__main__":
    main()
