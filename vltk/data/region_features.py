"""A memory-mapped store of region features: a variable number of regions per image (detected boxes, object
crops), with optional boxes and a global vector, looked up by image id like the grid cache of
:mod:`vltk.data.feature_cache` (Anderson et al. 2018, *Bottom-Up and Top-Down Attention*).

Layout of a store directory (:class:`RegionStoreWriter` writes it, :class:`RegionFeatureStore` reads it)::

    features.npy    float16 [R, D]   every region of every image, image after image (R regions in all)
    offsets.npy     int64 [images + 1]   the regions of row i are features[offsets[i]:offsets[i + 1]]
    fc.npy          float16 [images, D]  a global vector per image (only when the source has one)
    boxes.npy       float32 [R, 4]   x1, y1, x2, y2 in pixels (only when the source has boxes)
    sizes.npy       float32 [images, 2]  the width and height the boxes are normalised by (with boxes)
    image_ids.json  the image id of every row
    manifest.json   format, sources, counts, dims, what it holds, sha256 of every file, vltk version

The regions are stored flat rather than padded to the largest count: the files are written in one pass over
a source whose largest count is known only at its end, and adaptive detections (10 to 100 per image) would
triple the disk of a padded array. ``manifest.json`` is written last: a directory without it is unfinished.

**What a dataset gets.** Caption datasets call ``store.lookup(image_id)`` for each item and stack the
results, so a row carries its own padding: :func:`pack_regions` makes one float32 ``[1 + N_max, D' + 1]``
tensor per image: row 0 is the pooled vector, rows ``1..N_max`` the regions padded with zeros to the
store's largest count, and the last column is 1 on a real region and 0 on padding. The ``regions`` encoder
(:mod:`vltk.encoders.regions`) undoes it with :func:`unpack_regions` into ``grid``, ``pooled`` and
``mask``; collation stacks it like an image. ``D' = D + 5`` with box features: ``x1/w, y1/h, x2/w, y2/h``
and the area fraction ``(x2 - x1)(y2 - y1) / (w h)`` appended to each region, as
``ruotianluo/ImageCaptioning.pytorch`` ``captioning/data/dataloader.py`` does with ``use_box`` (which also
sorts the regions by area; attention does not depend on their order, so the store keeps the source's).
The pooled vector is the image's ``fc`` when the store has one (with the box features of the whole image,
``0, 0, 1, 1, 1``), else the mean of its real regions (``dataloader.py``'s fallback).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vltk.data.cache import default_cache_dir
from vltk.data.feature_cache import IDS_FILE, MANIFEST_FILE, FeatureStore, _write_json, file_sha256
from vltk.data.region_formats import RegionRecord
from vltk.errors import DataError

logger = logging.getLogger(__name__)

FEATURES_FILE = "features.npy"
OFFSETS_FILE = "offsets.npy"
FC_FILE = "fc.npy"
BOXES_FILE = "boxes.npy"
SIZES_FILE = "sizes.npy"
STORE_KIND = "regions"
BOX_FEATURES = 5  # x1/w, y1/h, x2/w, y2/h, area / (w h)
CACHE_PREFIX = "cache:"
WHOLE_IMAGE_BOX = (0.0, 0.0, 1.0, 1.0, 1.0)  # the box features of a box around the whole image


def resolve_store_path(path: str | Path) -> Path:
    """A store directory: ``cache:NAME`` is ``NAME`` under the vltk cache (``$VLTK_CACHE/datasets/regions``,
    default ``~/.cache/vltk/datasets/regions``), where built-in stores are made on first use; anything else
    is a path (``~`` expanded)."""
    text = str(path)
    if text.startswith(CACHE_PREFIX):
        name = text[len(CACHE_PREFIX) :]
        if not name or "/" in name or name in (".", ".."):
            raise DataError(f"{text}: a cache store is cache:NAME, NAME a folder name without '/'")
        return default_cache_dir() / "regions" / name
    return Path(text).expanduser()


def box_features(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """``[N, 4]`` boxes ``x1, y1, x2, y2`` in pixels -> ``[N, 5]``: ``x1/w, y1/h, x2/w, y2/h`` and the
    area fraction ``(x2 - x1)(y2 - y1) / (w h)`` (``dataloader.py``'s ``use_box``)."""
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    area = (x2 - x1) * (y2 - y1) / (width * height)
    return np.stack([x1 / width, y1 / height, x2 / width, y2 / height, area], axis=1).astype(np.float32)


def pack_regions(regions: np.ndarray, pooled: np.ndarray, max_regions: int) -> Tensor:
    """``regions [n, D']`` and ``pooled [D']`` -> float32 ``[1 + max_regions, D' + 1]`` (module docstring)."""
    n, dim = regions.shape
    packed = np.zeros((1 + max_regions, dim + 1), dtype=np.float32)
    packed[0, :dim] = pooled
    packed[1 : 1 + n, :dim] = regions
    packed[1 : 1 + n, dim] = 1.0  # real regions; padding rows stay 0
    return torch.from_numpy(packed)  # [1 + N_max, D' + 1]


def unpack_regions(packed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Stacked :func:`pack_regions` rows ``[B, 1 + N_max, D' + 1]`` -> ``grid [B, N, D']``, ``pooled [B, D']``
    and ``mask [B, N]`` (``True`` = real region), cut to the batch's largest count ``N`` (as
    ``dataloader.py``'s ``collate_func`` pads to the batch's longest)."""
    mask = packed[:, 1:, -1] > 0.5  # [B, N_max]
    longest = max(int(mask.sum(dim=1).max()), 1) if mask.numel() else 1
    grid = packed[:, 1 : 1 + longest, :-1]  # [B, N, D']
    return grid, packed[:, 0, :-1], mask[:, :longest]  # [B, N, D'], [B, D'], [B, N]


# --------------------------------------------------------------------------------------------- manifest


@dataclass
class RegionManifest:
    """What a region store holds and where it came from (``manifest.json``).

    Attributes:
        format: the source layout: ``bottom-up-tsv``, ``directories`` or ``shapes-boxes``.
        dataset: the source files or folders, as one line (messages name it).
        num_images: rows (images).
        num_regions: regions of all images together.
        max_regions: the largest number of regions of one image (``N_max``).
        min_regions: the smallest.
        dim: ``D`` of a region vector (without box features).
        has_fc: ``fc.npy`` holds a global vector per image.
        has_boxes: ``boxes.npy`` and ``sizes.npy`` hold the boxes and the size that normalises them.
        sizes_from: where the image sizes came from (``tsv``, a JSON file, ``largest box corner``, ``image``).
        source: how the source made the features (for a built-in store: the crop encoder, margin, seed).
        checksums: sha256 of every array file.
        vltk_version: the vltk that wrote it.
        kind: ``regions`` (a grid cache of ``vltk data cache-features`` has no such key).
    """

    format: str
    dataset: str
    num_images: int
    num_regions: int
    max_regions: int
    min_regions: int
    dim: int
    has_fc: bool
    has_boxes: bool
    sizes_from: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    vltk_version: str = ""
    kind: str = STORE_KIND


def read_region_manifest(directory: str | Path) -> RegionManifest:
    """The manifest of a complete region store; one-line DataError for anything else."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise DataError(
            f"{directory}: not a region-feature store ({MANIFEST_FILE} is missing; make one "
            "with `vltk data regions`)"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: unreadable region-store manifest ({error})") from None
    if not isinstance(document, dict) or document.get("kind") != STORE_KIND:
        raise DataError(
            f"{directory}: a grid feature cache, not a region-feature store (read it with "
            "model.encoder.name: cached, or make a store with `vltk data regions`)"
        )
    try:
        return RegionManifest(**document)
    except TypeError as error:
        raise DataError(f"{path}: unreadable region-store manifest ({error})") from None


# ----------------------------------------------------------------------------------------------- writer


class _GrowingArray:
    """A ``.npy`` file written row by row: a header for zero rows, raw rows appended, the header rewritten
    with the final count by :meth:`close` (numpy pads a header so the first axis can grow in place)."""

    def __init__(self, path: Path, dtype: np.dtype, row_shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.row_shape, self.rows = path, np.dtype(dtype), row_shape, 0
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._header_size = self._write_header()

    def _write_header(self) -> int:
        self._file.seek(0)
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.rows, *self.row_shape),
        }
        np.lib.format.write_array_header_1_0(self._file, header)
        return self._file.tell()

    def append(self, rows: np.ndarray) -> None:
        self._file.seek(0, 2)
        self._file.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.rows += rows.shape[0]

    def close(self) -> None:
        if self._write_header() != self._header_size:
            raise RuntimeError("the .npy header grew; numpy no longer reserves room for the row count")
        self._file.close()


class RegionStoreWriter:
    """Writes a region store one image at a time, holding one image in memory.

    Use it as a context manager: an exception removes what was written (the directory stays, without a
    manifest). A directory that already holds a complete store is refused.

    Args:
        directory: the store directory (created).
        format: the source layout, recorded (``bottom-up-tsv``, ``directories``, ``shapes-boxes``).
        dataset: the source files, recorded and named in messages.
        expected_ids: when given, every image must be one of these (the annotations' ids), and every one of
            them must come (checked by :meth:`close`).
        expected_from: what ``expected_ids`` came from (the annotation file), for messages.
        source: how the features were made, recorded.
        sizes_from: where the image sizes that normalise the boxes came from, recorded.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        format: str,
        dataset: str,
        expected_ids: Collection[int] | None = None,
        expected_from: str = "the annotations",
        source: dict[str, Any] | None = None,
        sizes_from: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        if (self.directory / MANIFEST_FILE).is_file():
            raise DataError(
                f"{self.directory} already holds a region-feature store; choose another --out or delete it"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.format, self.dataset, self.source = format, dataset, dict(source or {})
        self.expected = None if expected_ids is None else {int(i) for i in expected_ids}
        self.expected_from = expected_from
        self.image_ids: list[int] = []
        self.offsets = [0]
        self.sizes: list[tuple[float, float]] = []
        self.sizes_from = sizes_from
        self._where: dict[int, str] = {}
        self._first: RegionRecord | None = None
        self._arrays: dict[str, _GrowingArray] = {}

    def add(self, record: RegionRecord) -> None:
        """Append one image; a one-line DataError naming ``record.where`` and the id when it does not fit."""
        image_id, where, features = int(record.image_id), record.where, record.features
        if self.expected is not None and image_id not in self.expected:
            raise DataError(f"{where}: image id {image_id} is not in {self.expected_from}")
        if image_id in self._where:
            raise DataError(f"{where}: image id {image_id} was already read from {self._where[image_id]}")
        if features.ndim != 2 or features.shape[0] == 0:
            raise DataError(f"{where}: image id {image_id} has no regions")
        first = self._first or record
        dim = first.features.shape[1]
        if features.shape[1] != dim:
            raise DataError(
                f"{where}: image id {image_id} has {features.shape[1]}-dimensional region "
                f"features; the first image ({first.where}) has {dim}"
            )
        for name, mine, theirs in (
            ("an fc vector", record.fc, first.fc),
            ("boxes", record.boxes, first.boxes),
        ):
            if (mine is None) != (theirs is None):
                has = "has" if mine is not None else "has no"
                raise DataError(
                    f"{where}: image id {image_id} {has} {name}, unlike the first image "
                    f"({first.where}); every image needs the same files"
                )
        if record.fc is not None and record.fc.shape != (dim,):
            raise DataError(
                f"{where}: image id {image_id}: an fc vector of shape {list(record.fc.shape)} "
                f"for {dim}-dimensional regions"
            )
        if record.boxes is not None:
            if record.boxes.shape != (features.shape[0], 4):
                raise DataError(
                    f"{where}: image id {image_id}: boxes of shape {list(record.boxes.shape)} "
                    f"for {features.shape[0]} regions"
                )
            if record.size is None:
                raise ValueError(f"{where}: boxes without an image size")
        if self._first is None:
            self._start(record)
        stored = self._half(features, where, image_id)
        self._arrays["features"].append(stored)
        if record.fc is not None:
            self._arrays["fc"].append(self._half(record.fc.reshape(1, dim), where, image_id))
        if record.boxes is not None:
            self._arrays["boxes"].append(record.boxes.astype(np.float32))
            self.sizes.append(record.size)  # type: ignore[arg-type]
        self.image_ids.append(image_id)
        self.offsets.append(self.offsets[-1] + features.shape[0])
        self._where[image_id] = where

    @staticmethod
    def _half(values: np.ndarray, where: str, image_id: int) -> np.ndarray:
        with np.errstate(over="ignore"):  # an overflow is reported below
            half = values.astype(np.float16)
        if not np.isfinite(half).all():
            raise DataError(
                f"{where}: image id {image_id}: features that are not finite in float16 "
                f"(largest magnitude {float(np.abs(values).max()):g}; float16 holds 65504)"
            )
        return half

    def _start(self, record: RegionRecord) -> None:
        self._first = record
        dim = record.features.shape[1]
        self._arrays["features"] = _GrowingArray(self.directory / FEATURES_FILE, np.float16, (dim,))
        if record.fc is not None:
            self._arrays["fc"] = _GrowingArray(self.directory / FC_FILE, np.float16, (dim,))
        if record.boxes is not None:
            self._arrays["boxes"] = _GrowingArray(self.directory / BOXES_FILE, np.float32, (4,))

    def close(self) -> RegionManifest:
        """Finish the arrays, check that every expected id came, write the ids and (last) the manifest."""
        import vltk

        for array in self._arrays.values():
            array.close()
        if not self.image_ids:
            raise DataError(f"{self.dataset}: no images with region features")
        if self.expected is not None:
            missing = sorted(self.expected - set(self.image_ids))
            if missing:
                raise DataError(
                    f"{self.dataset}: {len(missing)} image id(s) of {self.expected_from} have no "
                    f"region features, e.g. {', '.join(map(str, missing[:5]))}"
                )
        offsets = np.asarray(self.offsets, dtype=np.int64)
        np.save(self.directory / OFFSETS_FILE, offsets)
        files = [FEATURES_FILE, OFFSETS_FILE, *([FC_FILE] if "fc" in self._arrays else [])]
        if "boxes" in self._arrays:
            np.save(self.directory / SIZES_FILE, np.asarray(self.sizes, dtype=np.float32).reshape(-1, 2))
            files += [BOXES_FILE, SIZES_FILE]
        _write_json(self.directory / IDS_FILE, self.image_ids)
        counts = np.diff(offsets)
        assert self._first is not None
        manifest = RegionManifest(
            format=self.format,
            dataset=self.dataset,
            num_images=len(self.image_ids),
            num_regions=int(offsets[-1]),
            max_regions=int(counts.max()),
            min_regions=int(counts.min()),
            dim=int(self._first.features.shape[1]),
            has_fc="fc" in self._arrays,
            has_boxes="boxes" in self._arrays,
            sizes_from=self.sizes_from if "boxes" in self._arrays else None,
            source=self.source,
            checksums={name: file_sha256(self.directory / name) for name in files},
            vltk_version=vltk.__version__,
        )
        _write_json(self.directory / MANIFEST_FILE, asdict(manifest))
        logger.info(
            "wrote %d images, %d regions (%d..%d per image) x %d to %s",
            manifest.num_images,
            manifest.num_regions,
            manifest.min_regions,
            manifest.max_regions,
            manifest.dim,
            self.directory,
        )
        return manifest

    def abort(self) -> None:
        """Close and remove the files written so far (no manifest is ever left behind)."""
        for array in self._arrays.values():
            array._file.close()
        for name in (FEATURES_FILE, OFFSETS_FILE, FC_FILE, BOXES_FILE, SIZES_FILE, IDS_FILE):
            (self.directory / name).unlink(missing_ok=True)

    def __enter__(self) -> RegionStoreWriter:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is not None:
            self.abort()


def write_region_store(
    records: Iterable[RegionRecord],
    out_dir: str | Path,
    *,
    format: str,
    dataset: str,
    sizes_from: str | None = None,
    expected_ids: Collection[int] | None = None,
    expected_from: str = "the annotations",
    source: dict[str, Any] | None = None,
    progress: Callable[[Iterable, int | None], Iterable] | None = None,
    total: int | None = None,
) -> RegionManifest:
    """Write every record into a new store at ``out_dir`` (see :class:`RegionStoreWriter` for the
    arguments); ``progress(records, total)`` wraps the records, e.g. in a progress bar."""
    with RegionStoreWriter(
        out_dir,
        format=format,
        dataset=dataset,
        expected_ids=expected_ids,
        expected_from=expected_from,
        source=source,
        sizes_from=sizes_from,
    ) as writer:
        for record in progress(records, total) if progress else records:
            writer.add(record)
        return writer.close()


# ----------------------------------------------------------------------------------------------- reader


class RegionFeatureStore(FeatureStore):
    """The regions of a store by image id, packed for a dataset (:func:`pack_regions`).

    A :class:`~vltk.data.feature_cache.FeatureStore` to the datasets (``lookup(image_id)``, ``missing``,
    lazily opened memory maps, pickled to DataLoader workers without them), so every dataset that reads a
    grid cache reads a region store too.

    Args:
        directory: the store directory, or ``cache:NAME`` (:func:`resolve_store_path`).
        box_features: append the 5 box numbers to every region (the store must hold boxes).
        normalize: scale every region vector to unit L2 norm before the box numbers (``dataloader.py``'s
            ``norm_att_feat``).
        verify: recompute the sha256 of every file (reads them whole once).
    """

    make_command = "vltk data regions"

    def __init__(
        self,
        directory: str | Path,
        *,
        box_features: bool = False,
        normalize: bool = False,
        verify: bool = False,
    ) -> None:
        self.directory = resolve_store_path(directory)
        self.manifest = read_region_manifest(self.directory)  # type: ignore[assignment]
        if box_features and not self.manifest.has_boxes:
            raise DataError(
                f"{self.directory}: box features need boxes, and this store has none (made from "
                f"{self.manifest.dataset})"
            )
        if verify:
            for name, digest in self.manifest.checksums.items():
                if file_sha256(self.directory / name) != digest:
                    raise DataError(
                        f"{self.directory / name}: checksum mismatch (the file changed or is corrupt)"
                    )
        self.box_features, self.normalize = box_features, normalize
        self.max_regions = self.manifest.max_regions
        self.dim = self.manifest.dim + (BOX_FEATURES if box_features else 0)
        self._index_ids()
        self._maps: dict[str, np.ndarray] = {}  # opened on first use, in the reading process

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}  # each worker maps the files itself
        return state

    def _array(self, name: str = FEATURES_FILE) -> np.ndarray:  # type: ignore[override]
        if name not in self._maps:
            self._maps[name] = np.load(self.directory / name, mmap_mode="r")
        return self._maps[name]

    def regions(self, image_id: int) -> RegionRecord:
        """The stored regions of ``image_id`` (float32 features, boxes and fc as stored)."""
        row = self.row(int(image_id))
        if row is None:
            raise DataError(
                f"image id {image_id} is not in the region store {self.directory} (made from "
                f"{self.manifest.dataset}); make a store of this dataset with "
                "`vltk data regions`"
            )
        start, end = (int(v) for v in self._array(OFFSETS_FILE)[row : row + 2])
        record = RegionRecord(
            image_id, np.asarray(self._array()[start:end], dtype=np.float32), str(self.directory)
        )
        if self.manifest.has_fc:
            record.fc = np.asarray(self._array(FC_FILE)[row], dtype=np.float32)
        if self.manifest.has_boxes:
            record.boxes = np.asarray(self._array(BOXES_FILE)[start:end])
            record.size = tuple(float(v) for v in self._array(SIZES_FILE)[row])  # type: ignore[assignment]
        return record

    def lookup(self, image_id: int) -> Tensor:
        """``[1 + N_max, D' + 1]`` float32: the pooled vector, the regions padded to ``N_max``, and the
        real-region column (:func:`pack_regions`)."""
        record = self.regions(image_id)
        regions = record.features  # [n, D]
        if self.normalize:
            regions = regions / np.maximum(np.linalg.norm(regions, axis=1, keepdims=True), 1e-12)
        if self.box_features:
            assert record.boxes is not None and record.size is not None
            regions = np.concatenate([regions, box_features(record.boxes, *record.size)], axis=1)  # [n, D+5]
        if record.fc is not None:
            extra = np.asarray(WHOLE_IMAGE_BOX if self.box_features else (), dtype=np.float32)
            pooled = np.concatenate([record.fc, extra])  # [D']
        else:
            pooled = regions.mean(axis=0)  # [D']
        return pack_regions(regions, pooled, self.max_regions)  # [1 + N_max, D' + 1]

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"RegionFeatureStore({self.directory}, {m.num_images} images, {m.min_regions}..{m.max_regions} "
            f"regions x {self.dim})"
        )
