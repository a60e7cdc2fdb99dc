"""``vltk data validate``: read every annotation and every image of a dataset once, and list what is wrong.

Formats: Karpathy-split caption JSON (here) and VQA v2 (:mod:`vltk.tasks.vqa.validate`), each a function in
:data:`VALIDATORS`; :func:`detect_format` picks one from the JSON's top-level keys (:data:`FORMAT_KEYS`), so a
new format is one validator, one entry in each.

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
from vltk.data.json_file import read_json
from vltk.errors import ConfigError, DataError, unknown_choice_message
from vltk.registry import Registry
from vltk.tasks.captioning.karpathy import parse_karpathy_entry, read_karpathy_entries

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


def _validate_karpathy_file(
    path: Path, image_root: Path | None, annotations: Path | None, progress: Callable | None
) -> ValidationReport:
    """Karpathy-split caption JSON (top-level ``images``): every entry and every image it names."""
    if annotations is not None:
        raise DataError(f"{path}: a Karpathy-split JSON holds its own captions; --annotations is for VQA v2")
    return validate_karpathy(path, image_root, progress=progress)


def _validate_vqa_v2_file(
    path: Path, image_root: Path | None, annotations: Path | None, progress: Callable | None
) -> ValidationReport:
    """VQA v2 questions JSON (top-level ``questions``), its ``--annotations`` and images."""
    from vltk.tasks.vqa.validate import validate_vqa_v2

    if annotations is None:
        logger.warning("%s: no --annotations given: checking the questions and images only", path)
    return validate_vqa_v2(path, annotations, image_root, progress=progress)


def _validate_visdial_file(
    path: Path, image_root: Path | None, annotations: Path | None, progress: Callable | None
) -> ValidationReport:
    """VisDial v1.0 JSON (top-level ``data``): every dialog and every image it names."""
    if annotations is not None:
        raise DataError(f"{path}: --annotations is for VQA v2; VisDial dense annotations are not validated")
    return validate_visdial(path, image_root, progress=progress)


Validator = Callable[..., ValidationReport]

VALIDATORS: Registry[Validator] = Registry(
    "data format",
    {
        "karpathy": _validate_karpathy_file,
        "vqa_v2": _validate_vqa_v2_file,
        "visdial": _validate_visdial_file,
    },
)
"""Format name -> ``(path, image_root, annotations, progress) -> ValidationReport``."""

FORMAT_KEYS = {"images": "karpathy", "questions": "vqa_v2", "data": "visdial"}
"""The top-level key (a list; VisDial: an object) that identifies a dataset's JSON -> its format in
:data:`VALIDATORS`."""

COMPANION_KEYS = {
    "annotations": "a VQA v2 annotations file: validate its questions file with --annotations FILE"
}


def detect_format(path: str | Path) -> str:
    """The format of a dataset JSON from its top-level keys (:data:`FORMAT_KEYS`).

    Raises:
        DataError: the file is missing, not JSON, or of no known format (naming the keys it has).
    """
    path = Path(path)
    document = read_json(path)
    if not isinstance(document, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(document).__name__}")
    for key, name in FORMAT_KEYS.items():
        if isinstance(document.get(key), list | dict):
            return name
    keys = list(document)
    for key, hint in COMPANION_KEYS.items():
        if key in keys:
            raise DataError(f"{path}: this is {hint}")
    expected = ", ".join(f"'{key}' ({name})" for key, name in FORMAT_KEYS.items())
    raise DataError(
        f"{path}: unknown dataset format (top-level keys: {', '.join(keys[:8]) or 'none'}; expected a list "
        f"under {expected}); name it with --format {'|'.join(VALIDATORS)}"
    )


def validate_dataset(
    path: str | Path,
    *,
    format: str = "auto",
    image_root: str | Path | None = None,
    annotations: str | Path | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> ValidationReport:
    """Validate the dataset at ``path`` in ``format`` (``auto``: :func:`detect_format`).

    Args:
        path: the dataset's main JSON (a Karpathy split, a VQA v2 questions file, ...).
        format: a key of :data:`VALIDATORS`, or ``auto``.
        image_root: where its images are (default: the JSON's folder).
        annotations: a second file of the dataset (VQA v2's annotations).
        progress: wraps the slow iteration (the CLI passes a progress bar).
    """
    path = Path(path)
    if format == "auto":
        format = detect_format(path)
    if format not in VALIDATORS:
        raise ConfigError(unknown_choice_message("--format", format, ["auto", *VALIDATORS]))
    root = Path(image_root) if image_root is not None else None
    companion = Path(annotations) if annotations is not None else None
    return VALIDATORS[format](path, root, companion, progress)


def validate_visdial(
    dialogs: str | Path,
    image_dir: str | Path | None = None,
    *,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> ValidationReport:
    """Check every dialog of a VisDial v1.0 file (see :mod:`vltk.tasks.dialog.visdial`) and decode every
    image.

    Args:
        dialogs: the dialogs JSON.
        image_dir: folder of the images (default: ``images/`` next to the JSON when it exists, else the
            JSON's folder).
        progress: wraps the image iterator (the CLI passes a progress bar).
    """
    from vltk.tasks.dialog.visdial import read_visdial

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
