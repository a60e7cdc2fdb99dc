"""``vltk data cache-features``: run a captioning config's image encoder once over its dataset and store the
grids (see :mod:`vltk.data.feature_cache`); configs then train from the cache with
``model.encoder: {name: cached, path: DIR, source: <the encoder spec>}``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from vltk.data.feature_cache import FeatureCacheManifest, cache_features
from vltk.encoders import IMAGE_ENCODERS
from vltk.errors import ConfigError
from vltk.registry import build, resolved_spec
from vltk.tasks.runner import build_datamodule, task_entry


def dataset_description(datamodule: Any) -> str:
    """Where a datamodule's images come from, as recorded in a cache manifest."""
    for attribute in ("annotations", "path"):
        value = getattr(datamodule, attribute, None)
        if value:
            return str(Path(value).resolve())
    return type(datamodule).__name__


def cache_caption_features(
    cfg: Any,
    out_dir: str | Path,
    *,
    batch_size: int = 64,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> FeatureCacheManifest:
    """Encode every image of every split of ``cfg.data`` with ``cfg.model.encoder`` into ``out_dir``."""
    if cfg.task != "captioning":
        raise ConfigError(f"cache-features supports captioning configs so far, not '{cfg.task}'")
    spec = cfg.model.encoder
    if spec.get("name") == "cached":
        raise ConfigError("model.encoder is already 'cached': give the config of the CNN to cache")
    resolved = resolved_spec(IMAGE_ENCODERS, spec, path="model.encoder")
    encoder = build(IMAGE_ENCODERS, spec, path="model.encoder").eval()
    datamodule = build_datamodule(task_entry(cfg.task), cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    records = {}
    for role in ("train", "val", "test"):
        for record in datamodule.records(role):
            records.setdefault(record.image_id, record)
    transform = encoder.transforms()

    def load_batch(ids) -> torch.Tensor:
        return torch.stack([transform(records[image_id].load_image()) for image_id in ids])  # [B, 3, H, W]

    return cache_features(
        encoder,
        resolved,
        list(records),
        load_batch,
        out_dir,
        dataset=dataset_description(datamodule),
        transform=repr(transform),
        batch_size=batch_size,
        progress=progress,
    )
