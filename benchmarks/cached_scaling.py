"""Captioning from cached features as the data grows: one training epoch's time and peak memory at 1x, 10x
and 100x the built-in `shapes` data.

The data at scale ``s`` is synthetic: a Karpathy-split JSON holding ``s`` copies of every entry of the
built-in shapes dataset (3,000 images, five captions each), each copy a new image id in its original's
split (so the 80/10/10 split and the vocabulary stay as they are), its file the original's. ``vltk data
cache-features`` encodes it with the default config's small CNN (its initial weights, seed 42: time and
memory do not depend on the weights) into a feature store, timed. Then, in a fresh process, one training
epoch of the default captioning decoder on the cached grids (``model.encoder.name: cached``; Lightning's
loop, no validation, no checkpoints, the default batch of 64 pairs, the torch threads as a run sets them),
timed, with the peak memory sampled every 20 ms from ``/proc``: RSS (``VmHWM``; the memory-mapped features
count in it as they are read), and private (anonymous) memory, which is what the process holds itself.

    python benchmarks/cached_scaling.py [--scales 1 10 100] [--work /tmp/DIR] [--keep]

Target (issue 19): epoch time linear in the data's size and memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, peak_rss_mib, publish, status_kib, verdict  # noqa: E402

BASE_IMAGES = 3000
FLAT = 1.10  # the largest peak-memory ratio (largest over smallest scale) that counts as flat
LINEAR = 1.15  # the largest ratio of seconds per pair (largest over smallest scale) that counts as linear


def shapes_json(out: Path) -> Path:
    """The built-in shapes dataset (the default config's: 3,000 images, 64 px, seed 0) written into ``out``
    by ``vltk data synth shapes``; its Karpathy JSON."""
    command = [sys.executable, "-m", "vltk", "data", "synth", "shapes", "--out", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return next(out.rglob("*.json"))


def write_scaled(source: Path, scale: int, out: Path) -> tuple[Path, int]:
    """``scale`` copies of every entry of ``source`` with new ids, pointing at the original files."""
    data = json.loads(source.read_text(encoding="utf-8"))
    images, sentence_id = [], 0
    for copy in range(scale):
        for entry in data["images"]:
            image_id = copy * len(data["images"]) + entry["imgid"]
            sentences = []
            for sentence in entry["sentences"]:
                sentences.append({**sentence, "imgid": image_id, "sentid": sentence_id})
                sentence_id += 1
            images.append({**entry, "imgid": image_id, "sentences": sentences})
    out.mkdir(parents=True, exist_ok=True)
    annotations = out / "dataset.json"
    annotations.write_text(json.dumps({"images": images, "dataset": f"shapes-x{scale}"}), encoding="utf-8")
    config = out / "config.yaml"
    config.write_text(
        "base: default\n"
        "data:\n"
        "  name: karpathy\n"
        f"  annotations: {annotations}\n"
        f"  image_root: {source.parent}\n"
        "  batch_size: 64\n",
        encoding="utf-8",
    )
    return config, len(images)


def cache_features(config: Path, features: Path) -> float:
    """``vltk data cache-features`` over the scaled dataset; its wall time."""
    start = time.monotonic()
    command = [sys.executable, "-m", "vltk", "data", "cache-features", "--config", str(config), "--out",
               str(features), "--device", "cpu", "--num-workers", "2"]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def child_epoch(config: Path, features: Path) -> dict:
    """One training epoch of the default decoder on the cached grids, in this (fresh) process."""
    import pytorch_lightning as pl

    from vltk.tasks.runner import build_datamodule, load_task_config, task_entry

    pid = os.getpid()
    peak = {"anon": status_kib(pid, "RssAnon")}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["anon"] = max(peak["anon"], status_kib(pid, "RssAnon"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    overrides = ["model.encoder.name=cached", f"model.encoder.path={features}", "trainer.max_epochs=1"]
    cfg = load_task_config("captioning", str(config), overrides)
    entry = task_entry("captioning")
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule = build_datamodule(entry, cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    system = entry.system.from_data(cfg, datamodule)
    trainer = pl.Trainer(max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", devices=1)  # fmt: skip
    pairs = len(datamodule.train_dataloader().dataset)
    start = time.perf_counter()
    trainer.fit(system, datamodule=datamodule)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    return {"epoch_s": seconds, "pairs": pairs, "steps": int(trainer.global_step),
            "rss_mib": peak_rss_mib(), "anon_mib": peak["anon"] / 1024}  # fmt: skip


def table(rows: dict[int, dict]) -> str:
    header = ("| scale | images | training pairs | cache-features (s) | features on disk (MiB) | epoch (s) | "
              "ms per pair | peak RSS (MiB) | peak private (MiB) |")  # fmt: skip
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for scale, r in sorted(rows.items()):
        lines.append(
            f"| {scale}x | {r['images']:,} | {r['pairs']:,} | {r['cache_s']:.0f} | {r['disk_mib']:,.0f} | "
            f"{r['epoch_s']:.1f} | {1000 * r['epoch_s'] / r['pairs']:.2f} | {r['rss_mib']:,.0f} | "
            f"{r['anon_mib']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--work", type=Path, default=None, help="where the data goes (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the data and caches")
    parser.add_argument("--child", nargs=2, type=Path, default=None, help=argparse.SUPPRESS)
    add_json_argument(parser)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child_epoch(*args.child)))
        return
    work = Path(tempfile.mkdtemp(prefix="vltk-cached-scaling-", dir=args.work))
    rows: dict[int, dict] = {}
    try:
        source = shapes_json(work / "shapes")
        for scale in args.scales:
            config, images = write_scaled(source, scale, work / f"x{scale}")
            features = work / f"x{scale}" / "features"
            cache_s = cache_features(config, features)
            disk = sum(path.stat().st_size for path in features.iterdir()) / 2**20
            command = [sys.executable, __file__, "--child", str(config), str(features)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"the epoch at {scale}x failed:\n{done.stderr[-3000:]}")
            rows[scale] = {"images": images, "cache_s": cache_s, "disk_mib": disk,
                           **json.loads(done.stdout.strip().splitlines()[-1])}  # fmt: skip
            print(json.dumps(rows[scale]), flush=True)
            if not args.keep:
                shutil.rmtree(work / f"x{scale}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    small, large = min(rows), max(rows)
    per_pair = {s: r["epoch_s"] / r["pairs"] for s, r in rows.items()}
    time_ratio = per_pair[large] / per_pair[small]
    memory = {key: rows[large][key] / rows[small][key] for key in ("rss_mib", "anon_mib")}
    markdown = (
        "One training epoch of the default captioning decoder from cached features (the small CNN's 8x8x128 "
        f"grids, float16, memory-mapped) at {', '.join(f'{s}x' for s in sorted(rows))} the built-in shapes "
        f"data ({BASE_IMAGES:,} images, five captions each; the copies are new image ids of the same files "
        "and captions), each epoch in a fresh process, no validation.\n\n"
        f"{table(rows)}\n\n"
        f"At {large}x vs {small}x: seconds per pair x{time_ratio:.3f}, peak RSS x{memory['rss_mib']:.3f}, "
        f"peak private memory x{memory['anon_mib']:.3f}. Targets (issue 19): time linear, seconds per pair "
        f"within x{LINEAR:.2f}: {verdict(time_ratio, LINEAR, higher=False, fmt='.3f')}; memory flat, "
        f"private memory within x{FLAT:.2f}: {verdict(memory['anon_mib'], FLAT, higher=False, fmt='.3f')}.\n"
    )
    publish(markdown, {"rows": rows, "time_ratio": time_ratio, "memory_ratio": memory}, args.json)


if __name__ == "__main__":
    main()
