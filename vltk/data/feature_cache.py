"""A disk cache of frozen CNN grid features, so training reads ``[N, D]`` arrays instead of decoding and
encoding images every epoch (the trick behind the fast captioning repositories, e.g. the bottom-up feature
files of Anderson et al. 2018).

Layout of a cache directory::

    features.npy      float16 [num_images, N, D], a plain .npy file read through a memory map
    image_ids.json    the image id of every row
    manifest.json     encoder spec, image transform, dataset, shape, progress, checksum, vltk version

:func:`cache_features` writes it in order and records its progress in the manifest after every batch, so an
interrupted run continues where it stopped. :class:`FeatureStore` opens the memory map lazily, the first time
a row is read *in the process that reads it* (each DataLoader worker maps the file itself; nothing big is
pickled to workers), so the resident memory of an epoch is what the OS pages in, not the dataset size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vltk.errors import ConfigError, DataError

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


@torch.no_grad()
def cache_features(
    encoder: nn.Module,
    encoder_spec: dict[str, Any],
    image_ids: Sequence[int],
    load_batch: Callable[[Sequence[int]], Tensor],
    out_dir: str | Path,
    *,
    dataset: str,
    transform: str,
    batch_size: int = 64,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> FeatureCacheManifest:
    """Encode every image once and store its grid as float16; resume an interrupted cache.

    Args:
        encoder: the image encoder (put in eval mode here; its ``forward`` returns ``ImageFeatures``).
        encoder_spec: its resolved spec (recorded, and checked against an existing partial cache).
        image_ids: the images to cache, in row order (duplicates are not allowed).
        load_batch: ``ids -> [B, 3, H, W]`` preprocessed images.
        out_dir: the cache directory.
        dataset: where the images come from (recorded; a partial cache of another dataset is refused).
        transform: ``repr`` of the preprocessing (recorded).
        batch_size: images encoded at once.
        progress: ``(iterable, total) -> iterable`` wrapper, e.g. a progress bar over the batches.
    """
    import vltk

    ids = [int(i) for i in image_ids]
    if len(set(ids)) != len(ids):
        raise DataError("cache_features: image ids must be unique")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoder.eval()
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
        logger.info("resuming the feature cache in %s at row %d of %d", out, manifest.rows_done, len(ids))
    if manifest is None:
        probe = encoder(load_batch(ids[:1]))  # ImageFeatures of one image: the grid's shape
        n, d = probe.grid.shape[1:]
        manifest = FeatureCacheManifest(
            encoder=encoder_spec,
            transform=transform,
            dataset=dataset,
            num_images=len(ids),
            grid=[int(n), int(d)],
            grid_size=list(probe.grid_size) if probe.grid_size is not None else None,
            vltk_version=vltk.__version__,
        )
        np.lib.format.open_memmap(
            out / FEATURES_FILE, mode="w+", dtype=np.float16, shape=(len(ids), n, d)
        ).flush()
        _write_json(out / IDS_FILE, ids)
        _write_json(out / MANIFEST_FILE, asdict(manifest))
    features = np.lib.format.open_memmap(out / FEATURES_FILE, mode="r+")
    starts = range(manifest.rows_done, len(ids), batch_size)
    for start in progress(starts, len(starts)) if progress else starts:
        rows = ids[start : start + batch_size]
        grid = encoder(load_batch(rows)).grid  # [B, N, D]
        features[start : start + len(rows)] = grid.float().cpu().numpy().astype(np.float16)
        features.flush()
        manifest.rows_done = start + len(rows)
        _write_json(out / MANIFEST_FILE, asdict(manifest))
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
        ids = json.loads((self.directory / IDS_FILE).read_text(encoding="utf-8"))
        self.row_of = {int(image_id): row for row, image_id in enumerate(ids)}
        self._features: np.ndarray | None = None  # opened on first use, in the reading process

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_features"] = None  # each worker maps the file itself
        return state

    def _array(self) -> np.ndarray:
        if self._features is None:
            self._features = np.load(self.directory / FEATURES_FILE, mmap_mode="r")
        return self._features

    def __contains__(self, image_id: int) -> bool:
        return int(image_id) in self.row_of

    def missing(self, image_ids: Iterable[int]) -> list[int]:
        return [image_id for image_id in image_ids if int(image_id) not in self.row_of]

    def lookup(self, image_id: int) -> Tensor:
        """The cached grid ``[N, D]`` (float32) of ``image_id``."""
        row = self.row_of.get(int(image_id))
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
