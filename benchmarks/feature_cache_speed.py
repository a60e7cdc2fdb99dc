"""Training from cached CNN features vs from images through the same frozen encoder, and the memory of a
cached-feature epoch at two dataset sizes; plus data-loading images/s with 0, 1 and 2 workers.

1. Epoch time: the default captioning decoder on the built-in shapes data, with a frozen backbone
   (``--encoder``, ``weights: null``: the speed of a pretrained one, nothing to download; ResNet-18 at
   112x112 by default, ``--encoder resnet50 --image-size 224`` for a COCO-like setup), trained one epoch from
   images and one epoch from a feature cache made by ``vltk data cache-features`` with the same encoder.
2. Memory: peak private (anonymous) memory of a process training one cached-feature epoch, for two dataset
   sizes. The cache is read through a memory map: its file pages are page cache the OS can drop, and are
   not private memory. (Peak RSS, which counts touched file pages too, is reported beside it.)
3. Data loading: images/s of the captioning training DataLoader (PNG decode + transform + collate, images
   not kept in memory) with ``num_workers`` 0, 1 and 2.

Every measurement runs in a fresh process. ``python benchmarks/feature_cache_speed.py [--no-append]``
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
from _report import invocation, machine, publish  # noqa: E402

ENCODER: list[str] = []  # set from --encoder / --image-size in main()
COMMON = ["trainer.max_epochs=1", "trainer.limit_val_batches=0", "trainer.limit_test_batches=0",
          "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "trainer.devices=1",
          "data.in_memory=false"]  # fmt: skip


def private_memory_kib() -> int:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return int(fields["RssAnon"].split()[0])


def child_train(overrides: list[str]) -> dict:
    """One training epoch in this process: its wall time (epoch start to end, data loading included), peak
    private memory (sampled every 20 ms) and peak RSS."""
    import resource

    from vltk.tasks.runner import load_task_config, train

    peak = {"anon": private_memory_kib()}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["anon"] = max(peak["anon"], private_memory_kib())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    import pytorch_lightning as pl

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.seconds = time.perf_counter() - self.start

    timer = EpochTimer()
    cfg = load_task_config("captioning", None, COMMON + overrides)
    train(cfg, run_dir=tempfile.mkdtemp(prefix="cache-bench-"), extra_callbacks=[timer])
    seconds = timer.seconds
    stop.set()
    sampler.join()
    return {"seconds": seconds, "anon_mib": peak["anon"] / 1024,
            "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def child_loading(workers: int, batches: int) -> dict:
    from vltk.tasks.runner import build_datamodule, load_task_config, task_entry

    cfg = load_task_config(
        "captioning", None, COMMON + [f"data.num_workers={workers}", "data.num_images=3000"]
    )
    datamodule = build_datamodule(task_entry("captioning"), cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = iter(datamodule.train_dataloader())
    for _ in range(3):  # workers started, files in the page cache
        next(loader)
    start = time.perf_counter()
    items = sum(len(next(loader)) for _ in range(batches))
    return {"images_per_s": items / (time.perf_counter() - start)}


def run_child(*args: str) -> dict:
    env = {**os.environ, "VLTK_LOG_LEVEL": "ERROR"}
    result = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(result.stdout + result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def make_cache(num_images: int, out: Path) -> float:
    start = time.perf_counter()
    command = [sys.executable, "-m", "vltk.cli.main", "data", "cache-features", "--out", str(out)]
    command += [arg for value in ENCODER + [f"data.num_images={num_images}"] for arg in ("--set", value)]
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", default="resnet18", help="frozen torchvision backbone (weights: null)")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 4000])
    parser.add_argument("--loading-batches", type=int, default=20)
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ENCODER[:] = [f"model.encoder.name={args.encoder}", "model.encoder.weights=null",
                  "model.encoder.trainable=false", f"model.encoder.image_size={args.image_size}"]  # fmt: skip
    if args.child:
        kind, *rest = args.child
        result = child_loading(int(rest[0]), int(rest[1])) if kind == "loading" else child_train(rest)
        print(json.dumps(result))
        return

    small, large = args.sizes
    scratch = Path(tempfile.mkdtemp(prefix="cache-bench-"))
    caches = {size: scratch / f"features-{size}" for size in (small, large)}
    cache_seconds = {size: make_cache(size, path) for size, path in caches.items()}
    cached = {size: ["model.encoder.name=cached", f"model.encoder.path={caches[size]}"] for size in caches}
    from_images = run_child("train", *ENCODER, f"data.num_images={small}")
    from_cache = {
        size: run_child("train", *cached[size], f"data.num_images={size}") for size in (small, large)
    }
    loading = {w: run_child("loading", str(w), str(args.loading_batches)) for w in (0, 1, 2)}

    load = os.getloadavg()
    speedup = from_images["seconds"] / from_cache[small]["seconds"]
    text = (
        f"\n## Feature cache and data loading ({time.strftime('%Y-%m-%d')})\n\n"
        f"`{invocation()}` on {machine()}; load average at the end {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}. Default captioning decoder, one training epoch (validation and test off), frozen "
        f"{args.encoder} (`weights: null`) at {args.image_size}x{args.image_size} on the shapes data; each "
        "run in a fresh process.\n\n"
        "| run | images | training epoch (s) | peak private memory (MiB) | peak RSS (MiB) |\n"
        "|---|---|---|---|---|\n"
        f"| from images, frozen {args.encoder} | {small} | {from_images['seconds']:.1f} | "
        f"{from_images['anon_mib']:.0f} | {from_images['maxrss_mib']:.0f} |\n"
        + "".join(
            f"| from the feature cache | {size} | {from_cache[size]['seconds']:.1f} | "
            f"{from_cache[size]['anon_mib']:.0f} | {from_cache[size]['maxrss_mib']:.0f} |\n"
            for size in (small, large)
        )
        + f"\nTraining from the cache: **{speedup:.1f}x** faster per epoch (target >= 5x). Making the caches "
        f"(one pass of the encoder, a process start included): {cache_seconds[small]:.0f} s for {small} "
        "images, "
        f"{cache_seconds[large]:.0f} s for {large}. Peak private memory at {large} vs {small} images: "
        f"{from_cache[large]['anon_mib']:.0f} vs {from_cache[small]['anon_mib']:.0f} MiB.\n\n"
        "| DataLoader workers | 0 | 1 | 2 |\n|---|---|---|---|\n"
        f"| training items/s (PNG decode + transform + collate, default small CNN transform) | "
        + " | ".join(f"{loading[w]['images_per_s']:.0f}" for w in (0, 1, 2))
        + " |\n"
    )
    publish(text, append=not args.no_append)


if __name__ == "__main__":
    main()
