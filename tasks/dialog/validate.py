"""``vltk data validate`` for VisDial v1.0: every dialog and every image, once.

The reader (:func:`vltk.tasks.dialog.visdial.read_visdial`) collects the problems of malformed dialogs;
validating reports them by entry, with every unreadable image by image id. The dispatcher is
:mod:`vltk.tasks.validate`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from vltk.data.images import load_image
from vltk.data.validation import Progress, ValidationReport
from vltk.errors import DataError
from vltk.tasks.dialog.visdial import read_visdial

logger = logging.getLogger(__name__)


def validate_visdial(
    dialogs: str | Path,
    image_dir: str | Path | None = None,
    *,
    progress: Progress | None = None,
) -> ValidationReport:
    """Check every dialog of a VisDial v1.0 file (see :mod:`vltk.tasks.dialog.visdial`) and decode every
    image.

    Args:
        dialogs: the dialogs JSON.
        image_dir: folder of the images (default: ``images/`` next to the JSON when it exists, else the
            JSON's folder).
        progress: wraps the image iterator (the CLI passes a progress bar).
    """
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


def validate_visdial_file(
    path: Path, image_root: Path | None, annotations: Path | None, progress: Progress | None
) -> ValidationReport:
    """VisDial v1.0 JSON (top-level ``data``): every dialog and every image it names.

    :func:`validate_visdial` as a :data:`vltk.data.validation.FileValidator` (dense annotations are not
    validated)."""
    if annotations is not None:
        raise DataError(f"{path}: --annotations is for VQA v2; VisDial dense annotations are not validated")
    return validate_visdial(path, image_root, progress=progress)
