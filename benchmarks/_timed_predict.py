"""``python benchmarks/_timed_predict.py ARGS`` runs ``vltk ARGS`` (the same CLI entry point, in this
process) and writes, to ``$VLTK_BENCH_TIMING`` (JSON), the ``time.monotonic()`` of this script's first line
(the interpreter has started), of the CLI imported and of the command returned, and the time spent reading
the checkpoint, building the model, reading the image and encoding + decoding. The clock is system-wide, so
the parent (``predict_latency.py``), which notes when it started the process and when it exited, can tell the
interpreter's start and the process exit apart too. The wrappers call the originals; nothing else changes.
"""

from __future__ import annotations

import time

STARTED = time.monotonic()  # before any import but time's: the interpreter is up

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

SPANS: dict[str, list[float]] = {}


def _span(name: str, function):
    """``function``, recording the time it spent under ``name`` (summed over calls)."""

    def wrapper(*args, **kwargs):
        start = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            SPANS.setdefault(name, []).append(time.monotonic() - start)

    return wrapper


def main() -> int:
    path = os.environ["VLTK_BENCH_TIMING"]
    marks = {"started": STARTED}
    from vltk.cli.main import exit_status
    from vltk.cli.main import main as vltk_main
    from vltk.tasks import pretrained
    from vltk.tasks.captioning import predict as caption_predict
    from vltk.tasks.captioning.inference import ImageCaptioner

    marks["imported"] = time.monotonic()
    pretrained.read_model = _span("read checkpoint", pretrained.read_model)
    pretrained.build_pretrained = _span("build model", pretrained.build_pretrained)
    caption_predict.load_image = _span("read image", caption_predict.load_image)
    ImageCaptioner.captions = _span("encode and decode", ImageCaptioner.captions)
    sys.argv = ["vltk", *sys.argv[1:]]
    code = 0
    try:
        vltk_main()
    except SystemExit as stop:
        code = exit_status(stop.code)
    finally:
        marks["returned"] = time.monotonic()
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"marks": marks, "spans": {k: sum(v) for k, v in SPANS.items()}}, handle)
    return code


if __name__ == "__main__":
    from vltk.cli.main import exit_process

    exit_process(main())  # the end the installed command has (vltk.cli.main.run)
