"""``vltk data validate``: read every annotation and every image of a dataset once, and list what is wrong.

This module only dispatches. Each format's validator lives with its task and returns a
:class:`vltk.data.validation.ValidationReport`: Karpathy-split caption JSON
(:mod:`vltk.tasks.captioning.validate`), VQA v2 (:mod:`vltk.tasks.vqa.validate`) and VisDial v1.0
(:mod:`vltk.tasks.dialog.validate`), each a :data:`~vltk.data.validation.FileValidator` in
:data:`VALIDATORS`; :func:`detect_format` picks one from the JSON's top-level keys (:data:`FORMAT_KEYS`), so a
new format is one validator, one entry in each.

Training stops at the first bad sample (``on_bad_sample: raise``) or skips it (``skip``); validating first
finds all of them in one pass, by entry and path, so they can be fixed before a long run starts.
"""

from __future__ import annotations

from pathlib import Path

from vltk.data.json_file import read_json
from vltk.data.validation import FileValidator, Progress, ValidationReport
from vltk.errors import ConfigError, DataError, unknown_choice_message
from vltk.registry import Registry
from vltk.tasks.captioning.validate import validate_karpathy_file
from vltk.tasks.dialog.validate import validate_visdial_file
from vltk.tasks.vqa.validate import validate_vqa_v2_file

VALIDATORS: Registry[FileValidator] = Registry(
    "data format",
    {
        "karpathy": validate_karpathy_file,
        "vqa_v2": validate_vqa_v2_file,
        "visdial": validate_visdial_file,
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
    progress: Progress | None = None,
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
