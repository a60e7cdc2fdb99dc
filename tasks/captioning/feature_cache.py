"""``vltk data cache-features``: run a captioning config's image encoder once over its dataset and store the
grids (see :mod:`vltk.data.feature_cache`): images are read by DataLoader workers, the encoder runs on a GPU
when there is one. Configs then train from the cache with
``model.encoder: {name: cached, path: DIR, source: <the encoder spec>}``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from vltk.data.feature_cache import (
    FeatureCacheManifest,
    cache_features,
    check_precision,
    default_num_workers,
    resolve_device,
)
from vltk.data.images import ImageTransform
from vltk.encoders import IMAGE_ENCODERS
from vltk.errors import ConfigError
from vltk.registry import build, resolved_spec
from vltk.tasks.captioning.karpathy import CaptionRecord
from vltk.tasks.runner import build_datamodule, task_entry


def dataset_description(datamodule: Any) -> str:
    """Where a datamodule's images come from, as recorded in a cache manifest."""
    for attribute in ("annotations", "path"):
        value = getattr(datamodule, attribute, None)
        if value:
            return str(Path(value).resolve())
    return type(datamodule).__name__


class RecordImages(Dataset):
    """``row -> transform(records[row].load_image())``: the images of caption records as a map-style dataset
    that DataLoader workers read (records and transform are picklable).

    Args:
        records: the records, in cache row order.
        transform: the encoder's preprocessing (``PIL`` image -> ``[3, H, W]``).
    """

    def __init__(self, records: list[CaptionRecord], transform: ImageTransform) -> None:
        self.records = records
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, row: int) -> torch.Tensor:
        return self.transform(self.records[row].load_image())  # [3, H, W]


def cache_caption_features(
    cfg: Any,
    out_dir: str | Path,
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str = "auto",
    precision: str = "32",
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> FeatureCacheManifest:
    """Encode every image of every split of ``cfg.data`` with ``cfg.model.encoder`` into ``out_dir``.

    Args:
        cfg: a captioning config (its ``model.encoder`` and ``data`` sections).
        out_dir: the cache directory (an interrupted cache there is continued).
        batch_size: images encoded at once.
        num_workers: DataLoader workers reading the images (``None``: ``min(4, CPU cores)``).
        device: ``auto`` (a GPU when there is one), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``32``, ``16-mixed`` or ``bf16-mixed`` (autocast; the cache is float16 either way).
        progress: ``(iterable, total) -> iterable``, e.g. a progress bar over the batches.
    """
    if cfg.task != "captioning":
        raise ConfigError(f"cache-features supports captioning configs so far, not '{cfg.task}'")
    spec = cfg.model.encoder
    if spec.get("name") == "cached":
        raise ConfigError("model.encoder is already 'cached': give the config of the CNN to cache")
    resolve_device(device)  # an unknown or absent device fails before the dataset is read
    check_precision(precision)
    resolved = resolved_spec(IMAGE_ENCODERS, spec, path="model.encoder")
    encoder = build(IMAGE_ENCODERS, spec, path="model.encoder").eval()
    datamodule = build_datamodule(task_entry(cfg.task), cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    records: dict[int, CaptionRecord] = {}
    for role in ("train", "val", "test"):
        for record in datamodule.records(role):
            records.setdefault(record.image_id, record)
    transform = encoder.transforms()
    return cache_features(
        encoder,
        resolved,
        list(records),
        RecordImages(list(records.values()), transform),
        out_dir,
        dataset=dataset_description(datamodule),
        transform=repr(transform),
        batch_size=batch_size,
        num_workers=default_num_workers() if num_workers is None else num_workers,
        device=device,
        precision=precision,
        progress=progress,
    )
