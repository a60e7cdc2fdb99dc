"""``vltk data validate``: read every annotation and every image of a dataset once, and list what is wrong.

Training stops at the first bad sample (``on_bad_sample: raise``) or skips it (``skip``); validating first
finds all of them in one pass, by entry and path, so they can be fixed before a long run starts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vltk.data.images import load_image
from vltk.data.karpathy import parse_karpathy_entry, read_karpathy_entries
from vltk.errors import DataError

logger = logging.getLogger(__name__)


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


def validate_karpathy(
    annotations: str | Path,
    image_root: str | Path | None = None,
    *,
    progress: Callable[[Iterable], Iterable] | None = None,
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


def looks_like_karpathy(path: str | Path) -> bool:
    """Whether a JSON file starts like a Karpathy split (``{"images": ...``) rather than VisDial
    (``{"version": ..., "split": ..., "data": ...}``); only the first bytes are read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    return b'"images"' in head


def validate_visdial(
    dialogs: str | Path,
    image_dir: str | Path | None = None,
    *,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> ValidationReport:
    """Check every dialog of a VisDial v1.0 file (see :mod:`vltk.data.visdial`) and decode every image.

    Args:
        dialogs: the dialogs JSON.
        image_dir: folder of the images (default: ``images/`` next to the JSON when it exists, else the
            JSON's folder).
        progress: wraps the image iterator (the CLI passes a progress bar).
    """
    from vltk.data.visdial import read_visdial

    path = Path(dialogs)
    if image_dir is None:
        image_dir = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    with open(path, "rb") as handle:
        is_test = re.search(rb'"split"\s*:\s*"test', handle.read(4096)) is not None or "test" in path.stem
    split = read_visdial(path, image_dir=image_dir, min_rounds=1 if is_test else 10)  # test stops early
    report = ValidationReport(source=path, entries=len(split.dialogs) + split.skipped)
    report.bad_entries = [problem.removeprefix(f"{path}: ") for problem in split.problems]
    report.splits[split.split] = len(split.dialogs)
    for record in (progress or iter)(split.dialogs):
        report.images += 1
        try:
            load_image(record.image_path)
        except DataError as error:
            report.bad_images.append(f"dialog image_id={record.image_id}: {error}")
    logger.info("validated %s: %d dialogs, %d images", path, report.entries, report.images)
    return report
