"""R2R view features: the 36 discretised views of every viewpoint, read from the published TSV or computed by
a vltk CNN, and kept in a memory-mapped store that the environment reads.

**Views.** Matterport3DSimulator ``scripts/precompute_img_features.py`` (``build_tsv``) renders view ``ix``
of a viewpoint by starting at heading 0, elevation -30 degrees and stepping the heading by 30 degrees, the
elevation by +30 degrees every 12 views; so ``ix = 12 * e + h`` with heading ``h * 30`` degrees
(``h = 0..11``) and elevation ``(e - 1) * 30`` degrees (``e = 0`` looks down, 1 level, 2 up). The camera is
640 x 480 pixels with a 60 degree vertical field of view; its ResNet-152 ``pool5`` vector is the feature.

**The TSV.** Tab-separated, no header, one row a viewpoint: ``scanId, viewpointId, image_w, image_h,
vfov, features``, the features the base64 of the float32 ``[36, D]`` array's bytes (little-endian, as the
x86 machines that wrote it). Read as ``tasks/R2R/env.py`` ``EnvBatch`` reads it (``csv`` with a tab
delimiter, the six field names, ``csv.field_size_limit`` raised), but row by row: the R2R ResNet-152 file
is 10,567 viewpoints x 36 x 2048 floats, 3 GB, and never held in memory here.

**The store** (a directory; :class:`StoreWriter` writes it, :class:`ViewFeatureStore` reads it)::

    views.npy       [N, 36, D] float32 or float16, a plain .npy file read with mmap_mode="r"
    index.json      [[scan, viewpoint], ...] in row order
    manifest.json   dim, dtype, image_w, image_h, vfov, source, count, vltk_version

``manifest.json`` is written last, so a directory without it is an unfinished store.
"""

from __future__ import annotations

import base64
import binascii
import csv
import logging
import math
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm.auto import tqdm

from vltk.data.feature_cache import MANIFEST_FILE, _write_json
from vltk.data.images import load_image
from vltk.data.json_file import read_json
from vltk.errors import ConfigError, DataError, unknown_choice_message

logger = logging.getLogger(__name__)

VIEWS = 36  # discretised views per viewpoint
HEADINGS = 12  # 30 degrees apart, starting at heading 0
ELEVATIONS = 3  # -30, 0, +30 degrees
VIEW_STEP = math.radians(30.0)

TSV_FIELDNAMES = ("scanId", "viewpointId", "image_w", "image_h", "vfov", "features")
FEATURE_DTYPE = np.dtype("<f4")  # the TSV's float32, little-endian
STORE_DTYPES = ("float32", "float16")
VIEWS_FILE = "views.npy"
INDEX_FILE = "index.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_VFOV = 60.0  # degrees, the simulator's camera in precompute_img_features.py

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # one TSV field holds 36 * D floats in base64


# ---------------------------------------------------------------------------------------------- views


def view_heading(ix: int | np.ndarray) -> float | np.ndarray:
    """The absolute heading of view ``ix`` in radians, ``[0, 2 pi)`` (elementwise for an array)."""
    return (np.asarray(ix) % HEADINGS) * VIEW_STEP


def view_elevation(ix: int | np.ndarray) -> float | np.ndarray:
    """The elevation of view ``ix`` in radians: -30, 0 or +30 degrees (elementwise for an array)."""
    return (np.asarray(ix) // HEADINGS - 1) * VIEW_STEP


def nearest_view(heading: float | np.ndarray, elevation: float | np.ndarray) -> int | np.ndarray:
    """The view index whose heading and elevation are nearest to ``heading`` (any real number, wrapped to
    ``[0, 2 pi)``) and ``elevation`` (clamped to the three elevations); ties round up; elementwise for
    arrays (the ``sqrt(dh**2 + de**2)`` that EnvDrop's ``make_candidate`` minimises separates in two)."""
    h = np.floor(np.mod(heading, 2 * math.pi) / VIEW_STEP + 0.5).astype(np.int64) % HEADINGS
    e = np.clip(np.floor(np.asarray(elevation) / VIEW_STEP + 0.5).astype(np.int64) + 1, 0, ELEVATIONS - 1)
    index = HEADINGS * e + h
    return int(index) if index.ndim == 0 else index


# ------------------------------------------------------------------------------------------------ TSV


@dataclass
class ViewFeatures:
    """One TSV row: the 36 view features ``[36, D]`` float32 of a viewpoint and the camera they came from."""

    scan: str
    viewpoint: str
    image_w: int
    image_h: int
    vfov: float
    features: np.ndarray  # [36, D] float32


def _decode_features(field: str, dim: int | None, where: str) -> np.ndarray:
    """base64 -> float32 ``[36, D]``; a DataError at ``where`` unless the bytes are 36 (x ``dim``) floats."""
    try:
        raw = base64.b64decode(field, validate=True)
    except (binascii.Error, ValueError) as error:
        raise DataError(f"{where}: the features field is not base64 ({error})") from None
    row_bytes = VIEWS * FEATURE_DTYPE.itemsize
    if dim is not None and len(raw) != dim * row_bytes:
        raise DataError(
            f"{where}: the features hold {len(raw)} bytes, expected 36 views x {dim} float32 "
            f"= {dim * row_bytes}"
        )
    if not raw or len(raw) % row_bytes:
        raise DataError(f"{where}: the features hold {len(raw)} bytes, not a multiple of 36 float32 views")
    return np.frombuffer(raw, dtype=FEATURE_DTYPE).reshape(VIEWS, -1).astype(np.float32)  # [36, D]


def _parse_row(row: list[str], dim: int | None, where: str) -> ViewFeatures:
    if len(row) != len(TSV_FIELDNAMES):
        raise DataError(
            f"{where}: {len(row)} tab-separated fields, expected {len(TSV_FIELDNAMES)} "
            f"({', '.join(TSV_FIELDNAMES)})"
        )
    scan, viewpoint, image_w, image_h, vfov, features = row
    try:
        size = int(image_w), int(image_h), float(vfov)
    except ValueError:
        raise DataError(
            f"{where}: image_w, image_h and vfov must be numbers, got {image_w!r}, {image_h!r}, {vfov!r}"
        ) from None
    if not scan or not viewpoint:
        raise DataError(f"{where}: empty scanId or viewpointId")
    return ViewFeatures(scan, viewpoint, *size, features=_decode_features(features, dim, where))


def read_feature_tsv(path: str | Path, dim: int | None = None) -> Iterator[ViewFeatures]:
    """The rows of a view-feature TSV, one at a time (the file is never read whole).

    Args:
        path: the TSV (``scanId, viewpointId, image_w, image_h, vfov, features``, no header).
        dim: the feature size every row must have; by default the first row's, and every later row must
            match it.

    Raises:
        DataError: ``PATH line L: ...`` for a row with the wrong number of fields, non-numeric camera
            fields, features that are not base64 or not ``36 x dim`` float32; ``PATH: ...`` when unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: view-feature TSV not found")
    try:
        with open(path, newline="", encoding="ascii") as handle:
            for line, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
                if not row:
                    continue
                item = _parse_row(row, dim, f"{path} line {line}")
                dim = item.features.shape[1]
                yield item
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: not a view-feature TSV ({error})") from None


def _vfov_text(vfov: float) -> str:
    return str(int(vfov)) if float(vfov).is_integer() else repr(float(vfov))  # the official files say 60


def write_feature_tsv(path: str | Path, rows: Iterable[ViewFeatures]) -> int:
    """Write ``rows`` in the published TSV layout (as ``build_tsv`` does); the number of rows written."""
    count = 0
    with open(path, "w", newline="", encoding="ascii") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\r\n")  # csv's default, as the official
        for item in rows:
            features = np.ascontiguousarray(item.features, dtype=FEATURE_DTYPE)  # [36, D]
            if features.ndim != 2 or features.shape[0] != VIEWS:
                raise ValueError(
                    f"features of {item.scan} {item.viewpoint}: expected [36, D], got {list(features.shape)}"
                )
            encoded = base64.b64encode(features.tobytes()).decode("ascii")
            writer.writerow(
                [item.scan, item.viewpoint, item.image_w, item.image_h, _vfov_text(item.vfov), encoded]
            )
            count += 1
    return count


# ---------------------------------------------------------------------------------------------- store


def _check_dtype(dtype: str) -> np.dtype:
    if dtype not in STORE_DTYPES:
        raise ConfigError(unknown_choice_message("view-feature dtype", str(dtype), STORE_DTYPES))
    return np.dtype(dtype)


def _missing_message(scan: str, viewpoint: str, store: Path) -> str:
    return f"view features: viewpoint {viewpoint} of scan {scan} is missing from {store}"


class StoreWriter:
    """Writes a view-feature store one viewpoint at a time, with memory for one row only.

    ``views.npy`` starts with a .npy header for zero rows; rows are appended as raw bytes and :meth:`close`
    rewrites the header with the final count in place (numpy reserves header room for that, see
    ``numpy.lib.format``'s ``GROWTH_AXIS_MAX_DIGITS``), then writes ``index.json`` and ``manifest.json``.
    A directory that already holds a complete store is refused; an unfinished one is overwritten.

    Args:
        directory: the store directory (created).
        dim: the feature size ``D``.
        dtype: ``"float32"`` or ``"float16"``.
        meta: ``image_w``, ``image_h``, ``vfov``, ``source`` (and anything else to record in the manifest).
    """

    def __init__(
        self, directory: str | Path, dim: int, dtype: str = "float32", meta: Mapping[str, Any] | None = None
    ):
        self.directory = Path(directory)
        self.dim = int(dim)
        self.dtype = _check_dtype(dtype)
        self.meta = dict(meta or {})
        if (self.directory / MANIFEST_FILE).is_file():
            raise DataError(
                f"{self.directory} already holds a view-feature store; choose another output "
                "directory or delete it"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.keys: list[tuple[str, str]] = []
        self._rows: dict[tuple[str, str], int] = {}
        self._file = open(self.directory / VIEWS_FILE, "wb")  # noqa: SIM115 - closed by close()/abort()
        self._header_size = self._write_header()

    def _write_header(self) -> int:
        self._file.seek(0)
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (len(self.keys), VIEWS, self.dim),
        }
        np.lib.format.write_array_header_1_0(self._file, header)
        return self._file.tell()

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, scan: str, viewpoint: str, features: np.ndarray) -> None:
        """Append the ``[36, D]`` features of ``(scan, viewpoint)``; a DataError for a repeated viewpoint."""
        key = (str(scan), str(viewpoint))
        if key in self._rows:
            raise DataError(f"view features: viewpoint {viewpoint} of scan {scan} is given twice")
        if features.shape != (VIEWS, self.dim):
            raise DataError(
                f"view features of viewpoint {viewpoint} of scan {scan}: expected [36, {self.dim}], "
                f"got {list(features.shape)}"
            )
        with np.errstate(over="ignore"):  # an overflow is reported below
            row = np.ascontiguousarray(features, dtype=self.dtype)  # [36, D]
        if not np.isfinite(row).all() and np.isfinite(features).all():
            raise DataError(
                f"view features of viewpoint {viewpoint} of scan {scan} overflow {self.dtype}; use float32"
            )
        self._file.write(row.tobytes())
        self._rows[key] = len(self.keys)
        self.keys.append(key)

    def close(self) -> ViewFeatureStore:
        """Finish the file, write the index and the manifest; the store, opened."""
        if not self.keys:
            self.abort()
            raise DataError(f"{self.directory}: no viewpoints to store")
        if self._write_header() != self._header_size:
            raise RuntimeError("the .npy header grew; numpy no longer reserves room for the row count")
        self._file.close()
        import vltk

        _write_json(self.directory / INDEX_FILE, [list(key) for key in self.keys])
        manifest = {
            "dim": self.dim,
            "dtype": self.dtype.name,
            "image_w": None,
            "image_h": None,
            "vfov": DEFAULT_VFOV,
            "source": "",
            **self.meta,
            "count": len(self.keys),
            "vltk_version": vltk.__version__,
        }
        _write_json(self.directory / MANIFEST_FILE, manifest)
        logger.info(
            "wrote %d viewpoints x 36 x %d (%s) to %s", len(self.keys), self.dim, self.dtype, self.directory
        )
        return ViewFeatureStore.open(self.directory)

    def abort(self) -> None:
        """Close the file without a manifest (the directory stays an unfinished store)."""
        self._file.close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abort()


class ViewFeatureStore:
    """The view features of a store directory by ``(scan, viewpoint)``, read through a memory map.

    The map is opened in the process that reads (pickling, e.g. to DataLoader workers, sends the path and
    the index only). Open one with :meth:`open`.
    """

    def __init__(self, directory: Path, manifest: dict[str, Any], keys: list[tuple[str, str]]) -> None:
        self.directory = directory
        self.manifest = manifest
        self._keys = keys
        self._rows = {key: row for row, key in enumerate(keys)}
        self._views: np.ndarray | None = None

    @classmethod
    def open(cls, directory: str | Path) -> ViewFeatureStore:
        """Open a store; a one-line DataError when a file is missing or the files disagree."""
        directory = Path(directory)
        if not (directory / VIEWS_FILE).is_file() or not (directory / MANIFEST_FILE).is_file():
            raise DataError(
                f"{directory}: not a view-feature store ({VIEWS_FILE} or {MANIFEST_FILE} is missing; "
                "make one with `vltk data r2r-features`)"
            )
        manifest = read_json(directory / MANIFEST_FILE, "view-feature manifest")
        if not isinstance(manifest, dict):
            raise DataError(f"{directory / MANIFEST_FILE}: expected a JSON object (dim, dtype, count, ...)")
        index = read_json(directory / INDEX_FILE, "view-feature index")
        keys = _index_keys(index, directory / INDEX_FILE)
        store = cls(directory, manifest, keys)
        store._check_consistent()
        return store

    def _check_consistent(self) -> None:
        views = self._array()
        expected = (len(self._keys), VIEWS, self.manifest.get("dim"))
        if views.shape != expected or self.manifest.get("count") != len(self._keys):
            raise DataError(
                f"{self.directory}: {VIEWS_FILE} has shape {list(views.shape)} but {INDEX_FILE} and "
                f"{MANIFEST_FILE} say {list(expected)} (count {self.manifest.get('count')}); "
                "make the store again"
            )
        if views.dtype.name != self.manifest.get("dtype"):
            raise DataError(
                f"{self.directory}: {VIEWS_FILE} holds {views.dtype.name} but {MANIFEST_FILE} says "
                f"{self.manifest.get('dtype')}"
            )

    def _array(self) -> np.ndarray:
        if self._views is None:
            try:
                self._views = np.load(self.directory / VIEWS_FILE, mmap_mode="r")  # [N, 36, D]
            except (ValueError, OSError) as error:
                raise DataError(f"{self.directory / VIEWS_FILE}: unreadable ({error})") from None
        return self._views

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_views"] = None  # each process maps the file itself
        return state

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def keys(self) -> list[tuple[str, str]]:
        """``(scan, viewpoint)`` of every row, in row order."""
        return list(self._keys)

    def _row(self, scan: str, viewpoint: str) -> int:
        row = self._rows.get((scan, viewpoint))
        if row is None:
            raise DataError(_missing_message(scan, viewpoint, self.directory))
        return row

    def features(self, scan: str, viewpoint: str) -> np.ndarray:
        """The ``[36, D]`` float32 features of ``viewpoint`` (a copy)."""
        return np.array(self._array()[self._row(scan, viewpoint)], dtype=np.float32)  # [36, D]

    def rows(self, keys: Sequence[tuple[str, str]]) -> np.ndarray:
        """The ``[len(keys), 36, D]`` float32 features of ``(scan, viewpoint)`` pairs."""
        rows = np.array([self._row(scan, viewpoint) for scan, viewpoint in keys], dtype=np.int64)
        if not len(rows):
            return np.zeros((0, VIEWS, self.dim), dtype=np.float32)
        return np.asarray(self._array()[rows], dtype=np.float32)  # [len, 36, D]

    def check_covers(self, graphs: Mapping[str, Any]) -> None:
        """A DataError naming the first included viewpoint of ``graphs`` (scan -> ScanGraph) not stored."""
        for scan, graph in graphs.items():
            for viewpoint in graph.viewpoints:
                if (scan, viewpoint) not in self._rows:
                    raise DataError(_missing_message(scan, viewpoint, self.directory))

    def __repr__(self) -> str:
        return f"ViewFeatureStore({self.directory}, {len(self)} x 36 x {self.manifest.get('dim')})"


def _index_keys(index: Any, path: Path) -> list[tuple[str, str]]:
    ok = isinstance(index, list) and all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)
        for pair in index
    )
    if not ok:
        raise DataError(f"{path}: expected a list of [scan, viewpoint] pairs")
    return [(scan, viewpoint) for scan, viewpoint in index]


# ------------------------------------------------------------------------------------------ TSV -> store


def _count_lines(paths: Sequence[Path]) -> int:
    """Rows of the TSVs, for the progress bar (a fast byte scan; the files are read again to convert)."""
    total = 0
    for path in paths:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 24):
                total += block.count(b"\n")
    return total


def _camera(item: ViewFeatures) -> dict[str, Any]:
    return {"image_w": item.image_w, "image_h": item.image_h, "vfov": item.vfov}


def _first_row(path: Path) -> ViewFeatures:
    for item in read_feature_tsv(path):
        return item
    raise DataError(f"{path}: the view-feature TSV has no rows")


def convert_tsv(
    tsv_paths: Sequence[str | Path], out_dir: str | Path, dtype: str = "float32", progress: bool = True
) -> ViewFeatureStore:
    """Convert published view-feature TSVs into one store, row by row (memory for one row).

    Every row must have the first row's feature size and camera (``image_w``, ``image_h``, ``vfov``); a
    viewpoint may appear once across all files. Errors name the file and the line.
    """
    paths = [Path(path) for path in tsv_paths]
    if not paths:
        raise ConfigError("convert_tsv: give at least one TSV file")
    _check_dtype(dtype)
    first = _first_row(paths[0])
    source = ", ".join(str(path.resolve()) for path in paths)
    meta = {**_camera(first), "source": source}
    bar = tqdm(
        total=_count_lines(paths) if progress else None,
        desc="view features",
        unit="viewpoint",
        disable=not progress,
    )
    with bar, StoreWriter(out_dir, first.features.shape[1], dtype, meta) as writer:
        for path in paths:
            _add_tsv(writer, path, first, bar)
        return writer.close()


def _add_tsv(writer: StoreWriter, path: Path, first: ViewFeatures, bar: tqdm) -> None:
    for line, item in enumerate(read_feature_tsv(path, dim=writer.dim), start=1):
        where = f"{path} row {line}"
        if (item.scan, item.viewpoint) in writer:
            raise DataError(f"{where}: viewpoint {item.viewpoint} of scan {item.scan} appears a second time")
        if _camera(item) != _camera(first):
            raise DataError(f"{where}: camera {_camera(item)} differs from the first row's {_camera(first)}")
        writer.add(item.scan, item.viewpoint, item.features)
        bar.update(1)


# ------------------------------------------------------------------------------ images -> features -> store


@torch.no_grad()
def encode_views(
    images: np.ndarray, encoder: nn.Module, batch_size: int = 256, pool_grid: int = 1
) -> np.ndarray:
    """Features ``[N, 36, D]`` float32 of view images ``[N, 36, H, W, 3]`` uint8 through a vltk image encoder.

    Each view goes through the encoder's own ``transforms()`` (as ``vltk.data.feature_cache`` caches a
    captioning encoder), the encoder runs in eval mode on its device, and its grid is mean-pooled to one
    vector per view (ResNet's global average pool, the ``pool5`` of the published features). With
    ``pool_grid`` g > 1 the square grid is average-pooled to g x g cells instead and their vectors are
    concatenated (row-major), ``D = g * g * C``: the view keeps where things are in it.
    """
    if images.ndim != 5 or images.shape[1] != VIEWS or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"encode_views expects uint8 images [N, 36, H, W, 3], got {images.dtype} {list(images.shape)}"
        )
    encoder.eval()
    device = next(encoder.parameters()).device
    transform = encoder.transforms()
    flat = images.reshape(-1, *images.shape[2:])  # [N * 36, H, W, 3]
    pooled = []
    for start in range(0, len(flat), batch_size):
        batch = torch.stack([transform(Image.fromarray(view)) for view in flat[start : start + batch_size]])
        grid = encoder(batch.to(device)).grid  # [B, R, C]
        pooled.append(_pool(grid.float(), pool_grid).cpu())  # [B, D]
    return torch.cat(pooled).numpy().reshape(len(images), VIEWS, -1)  # [N, 36, D]


def _pool(grid: Tensor, cells: int) -> Tensor:
    """``[B, R, C]`` -> the mean ``[B, C]`` (``cells`` 1), or ``cells x cells`` means ``[B, cells^2 * C]``."""
    if cells == 1:
        return grid.mean(dim=1)  # [B, C]
    side = math.isqrt(grid.shape[1])
    if side * side != grid.shape[1] or side < cells:
        raise ValueError(
            f"pool_grid {cells} needs a square grid of at least {cells}x{cells}, got {grid.shape[1]}"
        )
    square = grid.transpose(1, 2).reshape(grid.shape[0], grid.shape[2], side, side)  # [B, C, s, s]
    pooled = torch.nn.functional.adaptive_avg_pool2d(square, cells)  # [B, C, g, g]
    return pooled.permute(0, 2, 3, 1).flatten(1)  # [B, g * g * C]


_VIEW_IMAGE = re.compile(r"^(?P<viewpoint>.+)_(?P<ix>\d\d)$")


def _view_files(scan_dir: Path) -> dict[str, dict[int, Path]]:
    """viewpoint -> view index -> image file of one scan folder."""
    views: dict[str, dict[int, Path]] = {}
    for path in sorted(scan_dir.iterdir()):
        match = _VIEW_IMAGE.match(path.stem)
        if path.suffix.lower() not in IMAGE_SUFFIXES or match is None:
            continue
        ix = int(match["ix"])
        if ix >= VIEWS:
            raise DataError(f"{path}: view index {ix} is out of range (0..35)")
        files = views.setdefault(match["viewpoint"], {})
        if ix in files:
            raise DataError(f"{path}: a second image of view {ix} beside {files[ix].name}")
        files[ix] = path
    return views


def find_view_images(image_dir: str | Path) -> list[tuple[str, str, list[Path]]]:
    """``(scan, viewpoint, its 36 image files in view order)`` under ``IMAGE_DIR/{scan}/{viewpoint}_{ix:02d}
    .png|jpg``; a DataError naming the first missing view."""
    root = Path(image_dir)
    if not root.is_dir():
        raise DataError(f"{root}: view-image directory not found")
    found = []
    for scan_dir in sorted(path for path in root.iterdir() if path.is_dir()):
        for viewpoint, files in _view_files(scan_dir).items():
            for ix in range(VIEWS):
                if ix not in files:
                    raise DataError(
                        f"{scan_dir / f'{viewpoint}_{ix:02d}'}.png|jpg: view image missing "
                        "(every viewpoint needs its 36 views)"
                    )
            found.append((scan_dir.name, viewpoint, [files[ix] for ix in range(VIEWS)]))
    if not found:
        raise DataError(f"{root}: no view images (expected {root}/SCAN/VIEWPOINT_IX.png, IX = 00..35)")
    return found


def _load_views(files: Sequence[Path], size: tuple[int, int] | None) -> np.ndarray:
    """The 36 images of one viewpoint ``[36, H, W, 3]`` uint8; each must be ``size`` (W, H) when given."""
    views = []
    for path in files:
        image = load_image(path)
        if size is not None and image.size != size:
            raise DataError(
                f"{path}: image is {image.size[0]}x{image.size[1]}, the first view image is "
                f"{size[0]}x{size[1]}; all view images must have one size"
            )
        size = image.size
        views.append(np.asarray(image, dtype=np.uint8))  # [H, W, 3]
    return np.stack(views)  # [36, H, W, 3]


def build_view_encoder(encoder_spec: str | Mapping[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """An image encoder of ``vltk.encoders.CNN_ENCODERS`` from a name or a spec, and its resolved spec."""
    from vltk.encoders import CNN_ENCODERS
    from vltk.registry import build, resolved_spec

    spec = {"name": encoder_spec} if isinstance(encoder_spec, str) else dict(encoder_spec)
    kwargs = {"path": "--encoder", "what": "image encoder"}
    return build(CNN_ENCODERS, spec, **kwargs), resolved_spec(CNN_ENCODERS, spec, **kwargs)


def featurise_view_images(
    image_dir: str | Path,
    out_dir: str | Path,
    encoder_spec: str | Mapping[str, Any],
    batch_size: int = 256,
    progress: bool = True,
    dtype: str = "float32",
) -> ViewFeatureStore:
    """Encode the 36 view images of every viewpoint under ``image_dir`` with a vltk CNN into a store.

    Images: ``IMAGE_DIR/{scan}/{viewpoint}_{ix:02d}.png`` (or ``.jpg``), ``ix`` the view index of this
    module; all of one size. The manifest records their size, a 60 degree vfov and the encoder spec.
    """
    _check_dtype(dtype)
    encoder, resolved = build_view_encoder(encoder_spec)
    viewpoints = find_view_images(image_dir)
    first = _load_views(viewpoints[0][2], None)  # [36, H, W, 3]
    size = (first.shape[2], first.shape[1])
    dim = int(encoder.out_dim)  # every vltk image encoder has it
    meta = {
        "image_w": size[0],
        "image_h": size[1],
        "vfov": DEFAULT_VFOV,
        "source": str(Path(image_dir).resolve()),
        "encoder": resolved,
    }
    per_chunk = max(1, batch_size // VIEWS)
    with StoreWriter(out_dir, dim, dtype, meta) as writer:
        for start in tqdm(range(0, len(viewpoints), per_chunk), desc="view images", disable=not progress):
            chunk = viewpoints[start : start + per_chunk]
            images = np.stack([_load_views(files, size) for _, _, files in chunk])  # [C, 36, H, W, 3]
            for (scan, viewpoint, _), features in zip(chunk, encode_views(images, encoder, batch_size)):
                writer.add(scan, viewpoint, features)
        return writer.close()
