"""What ``vltk data validate`` reports for a dataset, whatever its format: :class:`ValidationReport`.

Each format's validator lives with its task (``vltk.tasks.captioning.validate`` for Karpathy splits,
``vltk.tasks.vqa.validate`` for VQA v2, ``vltk.tasks.dialog.validate`` for VisDial) and returns this report;
:mod:`vltk.tasks.validate` picks the validator for a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

Progress = Callable[[Iterable], Iterable]
"""Wraps a validator's slow iteration (the CLI passes a progress bar)."""


@dataclass
class ValidationReport:
    """What one pass over a dataset found.

    Attributes:
        source: the annotation file checked.
        entries: annotation entries read.
        images: image files read.
        bad_entries: ``"images[12]: ... "`` messages for malformed annotation entries.
        bad_images: ``"path: problem"`` messages for unreadable or missing images.
        splits: number of good entries per split.
    """

    source: Path
    entries: int = 0
    images: int = 0
    bad_entries: list[str] = field(default_factory=list)
    bad_images: list[str] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.bad_entries or self.bad_images)


FileValidator = Callable[[Path, Path | None, Path | None, Progress | None], ValidationReport]
"""A format's ``(path, image_root, annotations, progress) -> ValidationReport``: the dataset's main JSON, its
image folder (``None``: the format's default), a second file of the dataset (VQA v2's annotations;
formats without one refuse it) and the progress wrapper."""
