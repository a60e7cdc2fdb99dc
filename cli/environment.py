"""``vltk env`` and ``vltk --version``: what a bug report needs to know about this installation.

Versions of vltk and of the packages it runs on, the interpreter and platform, the CPU threads torch uses,
the accelerators torch sees (CUDA devices and their memory, bf16 support, MPS), Java (for METEOR) and the
folders vltk and its dependencies cache into. Nothing is downloaded or written.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "torch",
    "torchvision",
    "pytorch-lightning",
    "numpy",
    "pillow",
    "tokenizers",
    "transformers",
    "datasets",
    "safetensors",
    "typer",
    "minigrid",
    "easy-vqa",
    "pycocoevalcap",
    "gradio",
    "tensorboard",
)
"""Distributions shown by ``vltk env`` (the required ones, then the optional ones vltk can use)."""


def package_version(name: str) -> str:
    """The installed version of the distribution ``name``, or ``not installed``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def version_line() -> str:
    """``vltk X (torch Y, pytorch-lightning Z, Python W)``: what ``vltk --version`` prints."""
    import vltk

    return (
        f"vltk {vltk.__version__} (torch {package_version('torch')}, pytorch-lightning "
        f"{package_version('pytorch-lightning')}, Python {platform.python_version()})"
    )


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        return "not found (METEOR needs Java 8+)"
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as error:
        return f"{java}: does not run ({error})"
    first = (result.stderr or result.stdout).strip().splitlines()
    return f"{first[0] if first else 'unknown version'} ({java})"


def _accelerators() -> list[tuple[str, str]]:
    import torch

    built = f"torch built for CUDA {torch.version.cuda or 'none: a CPU build'}"
    rows = [("CUDA", f"available, {built}" if torch.cuda.is_available() else f"not available ({built})")]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            rows.append((f"cuda:{index}", f"{props.name}, {props.total_memory / 2**30:.1f} GiB"))
        rows.append(("bf16", "supported" if torch.cuda.is_bf16_supported() else "not supported"))
        rows.append(("cuDNN", str(torch.backends.cudnn.version())))
    mps = getattr(torch.backends, "mps", None)
    rows.append(("MPS", "available" if mps is not None and mps.is_available() else "not available"))
    return rows


def environment_report() -> dict[str, list[tuple[str, str]]]:
    """Sections of (name, value) rows: vltk, packages, system, accelerators, folders."""
    import torch

    import vltk
    from vltk.data.cache import default_cache_dir
    from vltk.tasks.reliability import git_commit

    source = Path(vltk.__file__).resolve().parent
    report = {
        "vltk": [
            ("version", vltk.__version__),
            ("installed at", str(source)),
            ("git commit", git_commit() or "none (not running from a vltk git checkout)"),
        ],
        "packages": [(name, package_version(name)) for name in PACKAGES],
        "system": [
            ("Python", f"{platform.python_version()} ({sys.executable})"),
            ("platform", platform.platform()),
            ("CPUs", str(os.cpu_count())),
            ("torch threads", str(torch.get_num_threads())),
            ("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "unset")),
            ("Java", _java()),
        ],
        "accelerators": _accelerators(),
        "folders": [
            ("datasets (VLTK_CACHE)", str(default_cache_dir())),
            ("torch hub (TORCH_HOME)", str(Path(torch.hub.get_dir()))),
            (
                "Hugging Face (HF_HOME)",
                os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface")),
            ),
        ],
    }
    return report
