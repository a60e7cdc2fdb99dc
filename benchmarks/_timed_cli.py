"""``python benchmarks/_timed_cli.py ARGS`` runs ``vltk ARGS`` (the same CLI entry point, in this process) and
writes how long ``Trainer.fit`` and ``Trainer.test`` took to ``$VLTK_BENCH_TIMING`` (JSON).

The quality benchmarks use it so that a run's training time is measured, not estimated: the wall time of
the whole command comes from the parent (process start to exit); this adds the time inside
``pytorch_lightning.Trainer.fit`` (training and the validation passes of every epoch) and ``Trainer.test``,
and the ``time.monotonic()`` of the first ``fit`` call (the clock is system-wide, so the parent can tell how
long start-up, imports and data set-up took). Nothing else changes: the wrappers call the originals.
"""

from __future__ import annotations

import json
import os
import sys
import time

TIMES = {"fit_s": 0.0, "test_s": 0.0, "first_fit_at": None}


def _timed(method, key: str):
    def wrapper(self, *args, **kwargs):
        start = time.monotonic()
        if key == "fit_s" and TIMES["first_fit_at"] is None:
            TIMES["first_fit_at"] = start
        try:
            return method(self, *args, **kwargs)
        finally:
            TIMES[key] += time.monotonic() - start

    return wrapper


def main() -> int:
    path = os.environ["VLTK_BENCH_TIMING"]
    import pytorch_lightning as pl

    pl.Trainer.fit = _timed(pl.Trainer.fit, "fit_s")
    pl.Trainer.test = _timed(pl.Trainer.test, "test_s")
    from vltk.cli.main import exit_status
    from vltk.cli.main import main as vltk_main

    sys.argv = ["vltk", *sys.argv[1:]]
    code = 0
    try:
        vltk_main()
    except SystemExit as stop:
        code = exit_status(stop.code)
    finally:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(TIMES, handle)
    return code


if __name__ == "__main__":
    from vltk.cli.main import exit_process

    exit_process(main())  # the end the installed command has (vltk.cli.main.run)
