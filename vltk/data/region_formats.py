"""The two published layouts of detected-region features (Anderson et al. 2018, *Bottom-Up and Top-Down
Attention for Image Captioning and VQA*), read one image at a time into :class:`RegionRecord` s.

**The bottom-up TSV.** ``peteanderson80/bottom-up-attention`` ``tools/generate_tsv.py`` writes one row per
image with ``csv.DictWriter(delimiter="\\t")`` and no header, the fields ``image_id, image_w, image_h,
num_boxes, boxes, features``: the image size in pixels, the number of kept detections (10 to 100, or a fixed
36), and two arrays as the base64 of their raw bytes: ``boxes`` float32 ``[num_boxes, 4]`` (``x1, y1, x2,
y2`` in pixels of the original image) and ``features`` float32 ``[num_boxes, D]`` (the ``pool5_flat``
vectors, D = 2048 for the ResNet-101 detector). Its readers (``generate_tsv.py`` itself when resuming,
``ruotianluo/ImageCaptioning.pytorch`` ``scripts/make_bu_data.py``) raise ``csv.field_size_limit``, since
one field holds megabytes, and decode with ``np.frombuffer(..., float32).reshape(num_boxes, -1)``; so does
:func:`read_bottom_up_tsv`, a row at a time (the COCO files are tens of gigabytes). Python 3 ports of the
writer sometimes wrote the ``repr`` of the bytes (``b'...'``); that wrapper is accepted.

**The per-image directories.** ``make_bu_data.py`` converts the TSV into ``cocobu_att/ID.npz`` (the region
features under the key ``feat``), ``cocobu_fc/ID.npy`` (one vector: there, the mean of the regions) and
``cocobu_box/ID.npy`` (the boxes ``[N, 4]``); ``captioning/data/dataloader.py`` reads ``att`` as
``reshape(-1, D)`` (so a ``[H, W, D]`` grid is ``H * W`` regions), takes the key ``feat`` (or ``z``, a key
one published set was saved under by mistake), and falls back to the mean of the regions when there is no
``fc`` file. :func:`read_region_dirs` reads the same files; an ``att`` directory may also hold ``ID.npy``.
The directories carry no image size: box features need one (``dataloader.py`` takes ``width``/``height``
from its ``cocotalk.json``), so :func:`read_image_sizes` reads them from a COCO-style JSON (``images: [{id,
width, height}]``: COCO's ``instances_*.json``, ``image_info_test*.json`` or a ``cocotalk.json``) and, when
none is given, an image's largest box corner stands in for its size (boxes then reach 1.0 on each axis).
"""

from __future__ import annotations

import base64
import binascii
import csv
import sys
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vltk.data.json_file import read_json
from vltk.errors import DataError

TSV_FIELDNAMES = ("image_id", "image_w", "image_h", "num_boxes", "boxes", "features")
TSV_DTYPE = np.dtype("<f4")  # float32, little-endian: the machines that wrote the published files
NPZ_KEYS = ("feat", "z")  # dataloader.py: "feat", or "z" under one published set (cocotest_bu)

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # one field holds N * D floats in base64


@dataclass
class RegionRecord:
    """The regions of one image, as read from any layout.

    Attributes:
        image_id: the dataset's image id (COCO id, Karpathy ``cocoid``/``imgid``).
        features: ``[N, D]`` float32 region vectors.
        where: the file (and line) it came from, for error messages.
        boxes: ``[N, 4]`` float32 ``x1, y1, x2, y2`` in pixels, or ``None``.
        fc: ``[D]`` float32 global vector of the image, or ``None`` (the store then uses the masked mean).
        size: ``(width, height)`` the boxes are normalised by, or ``None``.
    """

    image_id: int
    features: np.ndarray
    where: str
    boxes: np.ndarray | None = None
    fc: np.ndarray | None = None
    size: tuple[float, float] | None = None


# ------------------------------------------------------------------------------------------------ TSV


def _decode_array(field: str, rows: int, columns: int | None, name: str, where: str) -> np.ndarray:
    """base64 -> float32 ``[rows, columns]`` (``columns`` from the byte count when ``None``)."""
    if field.startswith(("b'", 'b"')) and field[-1:] == field[1]:
        field = field[2:-1]  # str(bytes) of a Python 3 port of generate_tsv.py
    try:
        raw = base64.b64decode(field, validate=True)
    except (binascii.Error, ValueError) as error:
        raise DataError(f"{where}: the {name} field is not base64 ({error})") from None
    width = TSV_DTYPE.itemsize * rows * (columns or 1)
    if columns is not None and len(raw) != width:
        raise DataError(
            f"{where}: the {name} field holds {len(raw)} bytes, expected {rows} x {columns} float32 = {width}"
        )
    if rows == 0 or len(raw) % width:
        raise DataError(f"{where}: the {name} field holds {len(raw)} bytes, not {rows} rows of float32")
    return np.frombuffer(raw, dtype=TSV_DTYPE).reshape(rows, -1).astype(np.float32)


def _number(text: str, name: str, where: str, kind: type = int) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise DataError(
            f"{where}: {name} must be {'an integer' if kind is int else 'a number'}, got {text[:40]!r}"
        ) from None
    return value


def parse_tsv_row(row: list[str], where: str) -> RegionRecord:
    """One row of a bottom-up TSV (see the module docstring) as a record.

    Raises:
        DataError: ``WHERE: ...`` for a wrong number of fields, a non-numeric id or size, zero boxes, or
            a ``boxes``/``features`` field that is not base64 of ``num_boxes`` float32 rows.
    """
    if len(row) != len(TSV_FIELDNAMES):
        raise DataError(
            f"{where}: {len(row)} tab-separated fields, expected {len(TSV_FIELDNAMES)} "
            f"({', '.join(TSV_FIELDNAMES)})"
        )
    image_id = int(_number(row[0], "image_id", where))
    width, height = _number(row[1], "image_w", where, float), _number(row[2], "image_h", where, float)
    count = int(_number(row[3], "num_boxes", where))
    if count <= 0:
        raise DataError(
            f"{where}: image id {image_id} has {count} regions (num_boxes); it needs at least one"
        )
    if width <= 0 or height <= 0:
        raise DataError(f"{where}: image id {image_id} has size {width:g} x {height:g}; it must be positive")
    boxes = _decode_array(row[4], count, 4, "boxes", f"{where} (image id {image_id})")
    features = _decode_array(row[5], count, None, "features", f"{where} (image id {image_id})")
    return RegionRecord(image_id, features, where, boxes=boxes, size=(width, height))


def read_bottom_up_tsv(path: str | Path) -> Iterator[RegionRecord]:
    """The rows of a bottom-up TSV, one at a time (the file is never read whole).

    Raises:
        DataError: ``PATH line L: ...`` (see :func:`parse_tsv_row`); ``PATH: ...`` when missing or not text.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: region-feature TSV not found")
    try:
        with open(path, newline="", encoding="ascii") as handle:
            reader = csv.reader(handle, delimiter="\t")
            for row in reader:
                if row:
                    yield parse_tsv_row(row, f"{path} line {reader.line_num}")
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: not a region-feature TSV ({error})") from None


# -------------------------------------------------------------------------------------- directories


def region_dir_files(att_dir: str | Path) -> dict[int, Path]:
    """``{image id: ID.npz or ID.npy}`` of an ``att`` directory, in id order.

    Raises:
        DataError: the directory is missing or empty, a feature file's name is not an integer id, or one
            id has both an ``.npz`` and an ``.npy``.
    """
    directory = Path(att_dir)
    if not directory.is_dir():
        raise DataError(f"{directory}: region-feature directory not found")
    files: dict[int, Path] = {}
    for path in directory.iterdir():
        if path.suffix not in (".npz", ".npy"):
            continue
        if not path.stem.isdigit():
            raise DataError(f"{path}: a region-feature file is named by its integer image id (ID.npz)")
        image_id = int(path.stem)
        if image_id in files:
            raise DataError(f"{path}: image id {image_id} also has {files[image_id].name}")
        files[image_id] = path
    if not files:
        raise DataError(f"{directory}: no ID.npz or ID.npy region-feature files")
    return dict(sorted(files.items()))


def _load_array(path: Path, image_id: int, what: str) -> np.ndarray:
    """``path`` as float32: an ``.npy`` array, or an ``.npz`` array under :data:`NPZ_KEYS`."""
    if not path.is_file():
        raise DataError(f"{path}: the {what} file of image id {image_id} is missing")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return np.asarray(loaded, dtype=np.float32)
        with loaded:  # an .npz archive
            key = next((key for key in NPZ_KEYS if key in loaded.files), None)
            if key is None:
                raise DataError(
                    f"{path}: image id {image_id}: no 'feat' array (keys: "
                    f"{', '.join(loaded.files) or 'none'})"
                )
            return np.asarray(loaded[key], dtype=np.float32)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: image id {image_id}: unreadable {what} file ({error})") from None


def read_image_sizes(path: str | Path) -> dict[int, tuple[float, float]]:
    """``{image id: (width, height)}`` from a COCO-style JSON (``images: [{id, width, height}, ...]``).

    Raises:
        DataError: unreadable, no ``images`` list, or an entry without an integer ``id`` and positive
            ``width`` and ``height`` (naming its index).
    """
    document = read_json(path, "image-size")
    images = document.get("images") if isinstance(document, dict) else None
    if not isinstance(images, list):
        raise DataError(f"{path}: expected a JSON object with an 'images' list of {{id, width, height}}")
    sizes = {}
    for index, entry in enumerate(images):
        ok = isinstance(entry, dict) and isinstance(entry.get("id"), int)
        width, height = (entry.get("width"), entry.get("height")) if ok else (None, None)
        if not ok or not all(isinstance(v, int | float) and v > 0 for v in (width, height)):
            raise DataError(
                f"{path}: images[{index}] needs an integer 'id' and positive 'width' and 'height'"
            )
        sizes[entry["id"]] = (float(width), float(height))
    return sizes


def read_region_dirs(
    att_dir: str | Path,
    *,
    fc_dir: str | Path | None = None,
    box_dir: str | Path | None = None,
    sizes: Mapping[int, tuple[float, float]] | None = None,
    sizes_from: str = "",
    image_ids: list[int] | None = None,
) -> Iterator[RegionRecord]:
    """The images of the per-image directory layout (see the module docstring), in id order.

    Args:
        att_dir: ``ID.npz`` (key ``feat``) or ``ID.npy`` region features ``[N, D]`` (or ``[..., D]``).
        fc_dir: ``ID.npy`` global vectors ``[D]``, one per ``att`` file (optional).
        box_dir: ``ID.npy`` boxes ``[N, 4]`` in pixels, one per ``att`` file (optional).
        sizes: ``{image id: (width, height)}`` the boxes are normalised by (default: each image's largest
            box corner).
        sizes_from: where ``sizes`` came from, for messages.
        image_ids: the ids to read (default: every file of ``att_dir``).

    Raises:
        DataError: a file that is missing, unreadable, has no ``feat`` key, or whose shape disagrees with
            its ``att`` file; an image without regions; an image missing from ``sizes`` (all naming the
            file and the id).
    """
    files = region_dir_files(att_dir)
    for image_id in files if image_ids is None else image_ids:
        path = files[image_id]
        att = _load_array(path, image_id, "region-feature")
        if att.ndim < 2 or att.shape[0] == 0 or att.shape[-1] == 0:
            raise DataError(
                f"{path}: image id {image_id} has no regions (features of shape "
                f"{list(att.shape)}, expected [N, D] with N >= 1)"
            )
        features = att.reshape(-1, att.shape[-1])  # [N, D]
        record = RegionRecord(image_id, features, str(path))
        if fc_dir is not None:
            fc_path = Path(fc_dir) / f"{image_id}.npy"
            record.fc = _load_array(fc_path, image_id, "fc").reshape(-1)  # [D]
            if record.fc.shape[0] != features.shape[1]:
                raise DataError(
                    f"{fc_path}: image id {image_id}: an fc vector of {record.fc.shape[0]} "
                    f"numbers for {features.shape[1]}-dimensional regions"
                )
        if box_dir is not None:
            box_path = Path(box_dir) / f"{image_id}.npy"
            boxes = _load_array(box_path, image_id, "box")
            if boxes.shape != (features.shape[0], 4):
                raise DataError(
                    f"{box_path}: image id {image_id}: boxes of shape {list(boxes.shape)} for "
                    f"{features.shape[0]} regions, expected [{features.shape[0]}, 4]"
                )
            record.boxes = boxes
            if sizes is None:
                record.size = (max(float(boxes[:, 2].max()), 1.0), max(float(boxes[:, 3].max()), 1.0))
            elif image_id in sizes:
                record.size = sizes[image_id]
            else:
                raise DataError(
                    f"{sizes_from}: no width and height for image id {image_id} (its boxes are {box_path})"
                )
        yield record
