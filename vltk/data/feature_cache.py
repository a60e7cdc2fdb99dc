"""A disk cache of frozen CNN grid features, so training reads ``[N, D]`` arrays instead of decoding and
encoding images every epoch (the trick behind the fast captioning repositories, e.g. the bottom-up feature
files of Anderson et al. 2018).

Layout of a cache directory::

    features.npy      float16 [num_images, N, D], a plain .npy file read through a memory map
    image_ids.json    the image id of every row
    manifest.json     encoder spec, image transform, dataset, shape, progress, checksum, vltk version,
                      device and precision

:func:`cache_features` reads and transforms the images in DataLoader worker processes, runs the encoder on
a GPU when there is one (``device``; autocast only when ``precision`` asks for it), writes the rows in
order and records its progress in the manifest after every batch, so an interrupted run continues where it
stopped. :class:`FeatureStore` opens the memory map lazily, the first time a row is read *in the process
that reads it* (each DataLoader worker maps the file itself; nothing big is pickled to workers), so the
resident memory of an epoch is what the OS pages in, not the dataset size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from vltk.errors import ConfigError, DataError, VltkError, user_message

logger = logging.getLogger(__name__)

FEATURES_FILE = "features.npy"
IDS_FILE = "image_ids.json"
MANIFEST_FILE = "manifest.json"


@dataclass
class FeatureCacheManifest:
    """What a cache holds and how it was made (``manifest.json``).

    Attributes:
        encoder: the resolved image-encoder spec that produced the features.
        transform: ``repr`` of the image preprocessing applied before the encoder.
        dataset: where the images came from (annotation file, or a description).
        num_images: rows of ``features.npy``.
        grid: ``[N, D]`` of each row.
        grid_size: ``(height, width)`` of the grid (``N = height * width``).
        rows_done: rows written so far (``num_images`` when complete).
        checksum: sha256 of ``features.npy`` once complete.
        vltk_version: the vltk that wrote it.
        device: the device(s) the encoder ran on (``cuda:0``; ``cpu, cuda:0`` when a run was resumed on
            another).
        precision: ``32``, ``16-mixed`` or ``bf16-mixed`` (see :data:`PRECISIONS`).
    """

    encoder: dict[str, Any]
    transform: str
    dataset: str
    num_images: int
    grid: list[int]
    grid_size: list[int] | None
    rows_done: int = 0
    checksum: str | None = None
    vltk_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"  # caches written before these fields were recorded ran on the CPU in float32
    precision: str = "32"

    @property
    def complete(self) -> bool:
        return self.rows_done == self.num_images and self.checksum is not None


def read_manifest(directory: str | Path) -> FeatureCacheManifest:
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise DataError(f"{directory}: not a feature cache ({MANIFEST_FILE} is missing; make one with "
                        "`vltk data cache-features`)")  # fmt: skip
    try:
        return FeatureCacheManifest(**json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as error:
        raise DataError(f"{path}: unreadable feature-cache manifest ({error})") from None


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)  # atomic: an interrupted write never leaves half a manifest


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


PRECISIONS: dict[str, torch.dtype | None] = {"32": None, "16-mixed": torch.float16,
                                             "bf16-mixed": torch.bfloat16}  # fmt: skip
"""``--precision`` of ``cache-features`` (Lightning's spellings): ``32`` runs the encoder in float32, the
``-mixed`` ones under ``torch.autocast``; the cache stores float16 either way."""


def resolve_device(name: str) -> torch.device:
    """``auto`` (a CUDA GPU, else Apple's MPS, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises:
        ConfigError: an unknown name, or a device this machine does not have (one line naming it).
    """
    choices = "auto, cpu, cuda, cuda:N, mps"
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not has_mps:
            raise ConfigError("device 'mps': Apple's MPS backend is not available on this machine")
        return torch.device("mps")
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ConfigError(f"unknown device '{name}' (choices: {choices})")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigError(f"device '{name}': no CUDA GPU is available on this machine (try --device cpu)")
    if index and int(index) >= count:
        raise ConfigError(f"device '{name}': this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
    return torch.device(name)


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS` (``32-true`` is read as ``32``)."""
    precision = "32" if precision == "32-true" else precision
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}' (choices: {', '.join(PRECISIONS)})")
    return precision


def default_num_workers() -> int:
    """``min(4, CPU cores)``: image decoding is what workers speed up, and four keep a GPU encoder busy
    at the usual sizes without taking every core of a shared machine."""
    return min(4, os.cpu_count() or 1)


class _Rows(Dataset):
    """``row -> (row, images[row])``: the loader hands the row numbers back, so the rows are checked."""

    def __init__(self, images: Dataset) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def __getitem__(self, row: int) -> tuple[int, Tensor]:
        return row, self.images[row]


def _stack_rows(items: list[tuple[int, Tensor]]) -> tuple[list[int], Tensor]:
    return [row for row, _ in items], torch.stack([image for _, image in items])  # [B, 3, H, W]


@torch.no_grad()
def cache_features(
    encoder: nn.Module,
    encoder_spec: dict[str, Any],
    image_ids: Sequence[int],
    images: Dataset,
    out_dir: str | Path,
    *,
    dataset: str,
    transform: str,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str = "cpu",
    precision: str = "32",
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> FeatureCacheManifest:
    """Encode every image once and store its grid as float16; resume an interrupted cache.

    Images are read and transformed by a ``torch`` DataLoader (``num_workers`` processes; pinned memory on
    CUDA) in row order, and encoded on ``device``. Rows already written by an interrupted run are not read
    again. On the CPU, the rows are the same bits whatever ``num_workers`` is: workers only load.

    Args:
        encoder: the image encoder (put in eval mode here; its ``forward`` returns ``ImageFeatures``).
        encoder_spec: its resolved spec (recorded, and checked against an existing partial cache).
        image_ids: the images to cache, in row order (duplicates are not allowed).
        images: ``images[row]`` is the preprocessed ``[3, H, W]`` image of ``image_ids[row]`` (a map-style
            dataset: picklable for worker processes).
        out_dir: the cache directory.
        dataset: where the images come from (recorded; a partial cache of another dataset is refused).
        transform: ``repr`` of the preprocessing (recorded).
        batch_size: images encoded at once.
        num_workers: DataLoader worker processes reading images (0: in this process).
        device: :func:`resolve_device`'s names (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).
        precision: ``32``, ``16-mixed`` or ``bf16-mixed`` (autocast); a partial cache continues only
            at the precision it was started with.
        progress: ``(iterable, total) -> iterable`` wrapper, e.g. a progress bar over the batches.

    Raises:
        DataError: an unreadable image (one line naming it, also from a worker process), or ``out_dir``
            holding a cache of another encoder, dataset or precision.
    """
    import vltk

    ids = [int(i) for i in image_ids]
    if len(set(ids)) != len(ids):
        raise DataError("cache_features: image ids must be unique")
    if len(images) != len(ids):  # type: ignore[arg-type]
        raise ValueError(f"cache_features: {len(images)} images for {len(ids)} ids")  # type: ignore[arg-type]
    if batch_size < 1 or num_workers < 0:
        raise ConfigError(f"batch size must be >= 1 and workers >= 0, got {batch_size} and {num_workers}")
    target = resolve_device(device)
    precision = check_precision(precision)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoder.eval().to(target)
    autocast_dtype = PRECISIONS[precision]

    def encode(batch: Tensor) -> Tensor:
        batch = batch.to(target, non_blocking=True)  # [B, 3, H, W]
        if autocast_dtype is None:
            return encoder(batch).grid  # [B, N, D]
        with torch.autocast(target.type, dtype=autocast_dtype):
            return encoder(batch).grid  # [B, N, D]

    manifest: FeatureCacheManifest | None = None
    if (out / MANIFEST_FILE).is_file():
        manifest = read_manifest(out)
        same = (
            manifest.encoder == encoder_spec
            and manifest.dataset == dataset
            and manifest.num_images == len(ids)
        )
        if not same:
            raise DataError(
                f"{out} already holds a feature cache of another encoder or dataset "
                f"({manifest.encoder.get('name')} on {manifest.dataset}); choose another --out"
            )
        if manifest.complete:
            logger.info("%s is complete; nothing to do", out)
            return manifest
        if manifest.precision != precision:
            raise DataError(
                f"{out}: this partial cache was started at precision {manifest.precision}; continue it with "
                f"--precision {manifest.precision} (or choose another --out)"
            )
        if str(target) not in manifest.device.split(", "):
            manifest.device = f"{manifest.device}, {target}"
        logger.info("resuming the feature cache in %s at row %d of %d", out, manifest.rows_done, len(ids))
    if manifest is None:
        probe = encoder(images[0].unsqueeze(0).to(target))  # ImageFeatures of one image: the grid's shape
        n, d = probe.grid.shape[1:]
        manifest = FeatureCacheManifest(
            encoder=encoder_spec,
            transform=transform,
            dataset=dataset,
            num_images=len(ids),
            grid=[int(n), int(d)],
            grid_size=list(probe.grid_size) if probe.grid_size is not None else None,
            vltk_version=vltk.__version__,
            device=str(target),
            precision=precision,
        )
        np.lib.format.open_memmap(
            out / FEATURES_FILE, mode="w+", dtype=np.float16, shape=(len(ids), n, d)
        ).flush()
        _write_json(out / IDS_FILE, ids)
        _write_json(out / MANIFEST_FILE, asdict(manifest))
    features = np.lib.format.open_memmap(out / FEATURES_FILE, mode="r+")
    loader = DataLoader(
        _Rows(images),
        batch_size=batch_size,
        sampler=range(manifest.rows_done, len(ids)),  # in order, after the rows already written
        num_workers=num_workers,
        pin_memory=target.type == "cuda",
        collate_fn=_stack_rows,
    )
    batches = progress(loader, len(loader)) if progress else loader
    try:
        for rows, batch in batches:
            start = manifest.rows_done
            if rows[0] != start or rows[-1] != start + len(rows) - 1:
                raise RuntimeError(f"cache_features: expected rows {start}.., got {rows[0]}..{rows[-1]}")
            features[start : start + len(rows)] = encode(batch).float().cpu().numpy().astype(np.float16)
            features.flush()
            manifest.rows_done = start + len(rows)
            _write_json(out / MANIFEST_FILE, asdict(manifest))
    except VltkError as error:  # from a worker: its one line, without the worker's traceback
        raise type(error)(user_message(error)) from None
    del features
    manifest.checksum = file_sha256(out / FEATURES_FILE)
    _write_json(out / MANIFEST_FILE, asdict(manifest))
    logger.info("cached %d feature grids %s in %s", len(ids), manifest.grid, out)
    return manifest


class FeatureStore:
    """Rows of a complete feature cache by image id, read through a lazily opened memory map.

    Used as a caption dataset's "transform" (see ``vltk.tasks.captioning.karpathy``): ``lookup(image_id)``
    replaces decoding and encoding the image. Pickling (to DataLoader workers) sends only the path and the
    index.

    Args:
        directory: the cache directory.
        verify: recompute the checksum of ``features.npy`` (reads the whole file once).
    """

    def __init__(self, directory: str | Path, *, verify: bool = False) -> None:
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        if not self.manifest.complete:
            raise DataError(
                f"{self.directory}: the feature cache is incomplete ({self.manifest.rows_done} of "
                f"{self.manifest.num_images} rows); run `vltk data cache-features` again to finish it"
            )
        if verify and file_sha256(self.directory / FEATURES_FILE) != self.manifest.checksum:
            raise DataError(
                f"{self.directory / FEATURES_FILE}: checksum mismatch (the file changed or is corrupt)"
            )
        self._index_ids()
        self._features: np.ndarray | None = None  # opened on first use, in the reading process

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_features"] = None  # each worker maps the file itself
        return state

    def _array(self) -> np.ndarray:
        if self._features is None:
            self._features = np.load(self.directory / FEATURES_FILE, mmap_mode="r")
        return self._features

    def _index_ids(self) -> None:
        """Read ``ids.json`` into a sorted index: 16 bytes an image, where a dict of Python ints takes
        about 100 (a 300,000-image cache's index would be 30 MB in every DataLoader worker)."""
        ids = json.loads((self.directory / IDS_FILE).read_text(encoding="utf-8"))
        ids = np.array(ids, dtype=np.int64)  # [I], row order
        self._rows_by_id = np.argsort(ids, kind="stable")  # [I]
        self._sorted_ids = ids[self._rows_by_id]  # [I]

    def __len__(self) -> int:
        return len(self._sorted_ids)

    def __iter__(self) -> Iterator[int]:
        """The cached image ids in row order."""
        return iter(self._sorted_ids[np.argsort(self._rows_by_id)].tolist())

    @property
    def image_ids(self) -> list[int]:
        """The cached image ids (sorted)."""
        return self._sorted_ids.tolist()

    def row(self, image_id: int) -> int | None:
        """The row of ``image_id`` in ``features.npy`` (``None`` when it is not cached)."""
        at = int(np.searchsorted(self._sorted_ids, image_id))
        if at < len(self._sorted_ids) and self._sorted_ids[at] == image_id:
            return int(self._rows_by_id[at])
        return None

    def __contains__(self, image_id: int) -> bool:
        return self.row(int(image_id)) is not None

    def missing(self, image_ids: Iterable[int]) -> list[int]:
        if isinstance(image_ids, np.ndarray):
            wanted = image_ids.astype(np.int64, copy=False)  # [M]
        else:
            wanted = np.fromiter((int(i) for i in image_ids), dtype=np.int64)  # [M]
        at = np.minimum(np.searchsorted(self._sorted_ids, wanted), max(len(self._sorted_ids) - 1, 0))
        found = self._sorted_ids[at] == wanted if len(self._sorted_ids) else np.zeros(len(wanted), bool)
        return wanted[~found].tolist()

    def lookup(self, image_id: int) -> Tensor:
        """The cached grid ``[N, D]`` (float32) of ``image_id``."""
        row = self.row(int(image_id))
        if row is None:
            raise DataError(
                f"image id {image_id} is not in the feature cache {self.directory} "
                f"(made from {self.manifest.dataset}); cache this dataset with `vltk data cache-features`"
            )
        return torch.from_numpy(np.asarray(self._array()[row], dtype=np.float32))  # [N, D]

    def __call__(self, image: Any) -> Tensor:
        raise ConfigError(
            "a feature cache replaces images: datasets call lookup(image_id), not the transform"
        )

    def __repr__(self) -> str:
        return f"FeatureStore({self.directory}, {self.manifest.num_images} x {self.manifest.grid})"
