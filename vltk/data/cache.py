"""Where vltk keeps what it generates or downloads once: built-in datasets, demonstrations, feature caches."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$VLTK_CACHE/datasets`` when the variable is set, else ``~/.cache/vltk/datasets``."""
    root = os.environ.get("VLTK_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "vltk") / "datasets"
