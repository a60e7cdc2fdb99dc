"""``vltk data validate`` for Karpathy-split caption JSON: every entry and every image, once.

The reader (:func:`vltk.tasks.captioning.karpathy.read_karpathy_entries`) stops at the first malformed entry;
validating lists all of them by entry (``images[12]: ...``) and every unreadable image by path. The
dispatcher is :mod:`vltk.tasks.validate`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vltk.data.images import load_image
from vltk.data.validation import Progress, ValidationReport
from vltk.errors import DataError
from vltk.tasks.captioning.karpathy import parse_karpathy_entry, read_karpathy_entries

logger = logging.getLogger(__name__)


def validate_karpathy(
    annotations: str | Path,
    image_root: str | Path | None = None,
    *,
    progress: Progress | None = None,
) -> ValidationReport:
    """Check every entry of a Karpathy-split JSON and decode every image it names.

    Args:
        annotations: the JSON file.
        image_root: folder the entries' ``filepath/filename`` are relative to (default: the JSON's folder).
        progress: wraps the entry iterator (the CLI passes a progress bar).

    Raises:
        DataError: only when the file itself cannot be read as a Karpathy JSON; problems with entries and
            images are collected in the report instead.
    """
    path = Path(annotations)
    entries = read_karpathy_entries(path)
    root = Path(image_root).expanduser() if image_root is not None else path.parent
    report = ValidationReport(source=path)
    seen: dict[int, int] = {}
    for index, entry in (progress or iter)(list(enumerate(entries))):
        report.entries += 1
        where = f"images[{index}]"
        try:
            split, record = parse_karpathy_entry(entry, f"{path}: {where}", root)
        except DataError as error:
            report.bad_entries.append(str(error).removeprefix(f"{path}: "))
            continue
        if record.image_id in seen:
            report.bad_entries.append(
                f"{where}: duplicate image id {record.image_id} (also images[{seen[record.image_id]}])"
            )
            continue
        seen[record.image_id] = index
        report.splits[split] = report.splits.get(split, 0) + 1
        report.images += 1
        try:
            load_image(record.path)
        except DataError as error:
            report.bad_images.append(str(error))
    logger.info("validated %s: %d entries, %d images", path, report.entries, report.images)
    return report


def validate_karpathy_file(
    path: Path, image_root: Path | None, annotations: Path | None, progress: Progress | None
) -> ValidationReport:
    """Karpathy-split caption JSON (top-level ``images``): every entry and every image it names.

    :func:`validate_karpathy` as a :data:`vltk.data.validation.FileValidator` (no second file)."""
    if annotations is not None:
        raise DataError(f"{path}: a Karpathy-split JSON holds its own captions; --annotations is for VQA v2")
    return validate_karpathy(path, image_root, progress=progress)
