"""Time from upload to the first caption in ``vltk serve``'s page, in a real headless Chromium.

The default captioner (``vltk train captioning``'s config; ``--checkpoint`` names a trained one, otherwise
one is trained here with the ``--set`` overrides) is served as ``vltk serve`` serves it (one process, the
Gradio app on 127.0.0.1, CPU). Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium as
in ``tests/test_serve.py``) opens the page; each repeat puts a new 224 x 224 PNG (a few random shapes, so
every caption differs) in the caption tab's upload field and waits until the page shows its captions. The
clock starts when the file is handed to the page and stops when the captions table holds them: upload,
Gradio's queue, reading the image, encoding, beam search, the first word's attention picture and the page's
update; the clock stops on the exact rows (captions and scores) the model gives that image, computed
in-process beforehand, and consecutive images have different captions. The same images are also captioned
in-process (``CaptioningDemo.describe``) to split the time between the model and the web round trip.

    python benchmarks/serve_latency.py [--checkpoint CKPT] [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the browser helper the tests use
from _report import add_json_argument, machine, publish, set_arguments, verdict  # noqa: E402

TARGET_S = 1.0  # issue 20: upload to the first caption, 224 px image, default captioner, 2 CPU cores


def shapes_image(path: Path, seed: int, size: int = 224) -> Path:
    """A white picture with 1-3 random coloured rectangles and ellipses."""
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 3)):
        x0, y0 = rng.randint(0, size - 60), rng.randint(0, size - 60)
        box = [x0, y0, x0 + rng.randint(30, 60), y0 + rng.randint(30, 60)]
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=colour)
    image.save(path)
    return path


def trained_captioner(work: Path, overrides: list[str]) -> Path:
    """``vltk train captioning`` (the default config, with ``overrides``) in a fresh process."""
    import subprocess

    run_dir = work / "captioner"
    command = ["vltk", "train", "captioning", "--run-dir", str(run_dir), *set_arguments(overrides)]
    print("training the captioner:", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    return run_dir / "checkpoints" / "best.ckpt"


def expected_rows(view) -> list[str]:
    """The captions table's rows as the page shows them: rank, caption, score."""
    from vltk.tasks.captioning.demo import CaptioningDemo

    cell = CaptioningDemo.caption_cell
    return [f"{rank} {cell(c)} {c.score:.3f}" for rank, c in enumerate(view.captions, start=1)]


def distinct_images(model, work: Path, count: int) -> list[tuple[Path, list[str]]]:
    """``count`` pictures, each with captions (rows) unlike the previous picture's, so the page's table
    changes at every upload and the clock can stop on the exact rows expected."""
    images, seed = [], 0
    while len(images) < count + 1:  # the first is the warm-up
        path = shapes_image(work / f"upload-{seed}.png", seed=seed)
        rows = expected_rows(model.demo.describe(path))
        seed += 1
        if not images or rows != images[-1][1]:
            images.append((path, rows))
    return images


def time_uploads(model, images: list[tuple[Path, list[str]]]) -> tuple[list[float], list[float]]:
    """Per image: seconds from upload to its captions in the page, and seconds of the model alone."""
    from browser import chromium, css, free_port, upload_field, wait_for

    from vltk.tasks.serve import build_app, launch, upload_folder

    in_process = []
    for path, _ in images[1:]:  # the model alone, on the same images (each decoded once before)
        start = time.perf_counter()
        model.demo.describe(path)
        in_process.append(time.perf_counter() - start)
    page = []
    with upload_folder():
        app = build_app([model])
        url = launch(app, port=free_port(), block=False)
        try:
            with chromium() as driver:
                driver.get(url)
                wait_for(driver, lambda d: css(d, "#tab0-upload input[type=file]"), what="the page")
                for path, rows in images:
                    field = upload_field(driver, "tab0")  # cleared before the clock starts
                    start = time.perf_counter()
                    field.send_keys(str(path))
                    wait_for(
                        driver,
                        lambda d, wanted=rows: [r.text for r in css(d, "#tab0-captions tr")[1:]] == wanted,
                        what=f"the captions of {path.name}",
                    )
                    page.append(time.perf_counter() - start)
        finally:
            app.close()
    return page[1:], in_process


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained captioner (default: train)")
    parser.add_argument("--set", action="append", default=[], help="overrides of the captioner trained here")
    parser.add_argument("--repeats", type=int, default=20, help="uploads timed")
    add_json_argument(parser)
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    with tempfile.TemporaryDirectory(prefix="vltk-serve-bench-") as tmp:
        work = Path(tmp)
        checkpoint = args.checkpoint or trained_captioner(work, args.set)
        from vltk.tasks.serve import load_served_models

        (model,) = load_served_models([checkpoint])
        images = distinct_images(model, work, args.repeats)
        page, in_process = time_uploads(model, images)
        last_row = images[-1][1][0]
    median = statistics.median(page)
    p90 = sorted(page)[int(0.9 * (len(page) - 1))]
    model_median = statistics.median(in_process)
    import torch

    threads = torch.get_num_threads()
    served = f"the checkpoint {args.checkpoint}" if args.checkpoint else "a captioner trained here"
    text = (
        f"`vltk serve` with {served} on the CPU ({machine()}, torch threads {threads}); "
        "headless Chromium on the same machine; "
        f"{len(page)} uploads of 224 x 224 PNGs after one warm-up upload.\n\n"
        "| | median | p90 | min | max |\n|---|---|---|---|---|\n"
        f"| upload -> captions in the page | {median * 1000:.0f} ms | {p90 * 1000:.0f} ms | "
        f"{min(page) * 1000:.0f} ms | {max(page) * 1000:.0f} ms |\n"
        "| the model alone (read, encode, beam search, first attention picture) | "
        f"{model_median * 1000:.0f} ms | | {min(in_process) * 1000:.0f} ms | "
        f"{max(in_process) * 1000:.0f} ms |\n\n"
        f"The web round trip (upload, queue, page update) is the difference: about "
        f"{(median - model_median) * 1000:.0f} ms (difference of the medians). The last image's first row "
        f'(rank, caption, score): "{last_row}".\n\n'
        f"Target (issue 20): upload to the first caption <= {TARGET_S:g} s: "
        f"{verdict(median, TARGET_S, higher=False, fmt='.2f', unit=' s')}.\n"
    )
    data = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "json"},
        "page_s": page,
        "model_s": in_process,
        "median_s": median,
        "p90_s": p90,
        "model_median_s": model_median,
    }
    publish(text, data, args.json)
    print(json.dumps({"benchmark": "serve_latency", "median_s": median, "model_median_s": model_median}))


if __name__ == "__main__":
    main()
