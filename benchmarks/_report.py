"""Shared plumbing of the benchmark scripts: how they name themselves and where their tables go."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def invocation() -> str:
    """The command line that ran this benchmark, as a user would type it from the repository root."""
    script = Path(sys.argv[0]).resolve().relative_to(BENCHMARKS_MD.parent)
    return " ".join(["python", str(script), *sys.argv[1:]])


def publish(text: str, *, append: bool) -> None:
    """Print a result section and, unless told not to, append it to BENCHMARKS.md."""
    print(text)
    if append:
        with open(BENCHMARKS_MD, "a", encoding="utf-8") as handle:
            handle.write(text)
