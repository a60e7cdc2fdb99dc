"""An image encoder that reads precomputed grids from a feature cache (``vltk data cache-features``).

Training with a frozen CNN recomputes the same features every epoch; caching them once and reading
``[N, D]`` rows from a memory-mapped file removes the CNN (and image decoding) from the training loop. The
decoder is unchanged: this encoder returns the same :class:`vltk.types.ImageFeatures` as the CNN did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from vltk.errors import ConfigError
from vltk.types import ImageFeatures

if TYPE_CHECKING:
    from vltk.data.feature_cache import FeatureStore


class CachedFeatureEncoder(nn.Module):
    """Grids from a feature cache; ``transforms()`` is the cache itself (datasets look rows up by image id).

    Args:
        path: the cache directory written by ``vltk data cache-features``.
        source: the encoder spec the cache is expected to come from (e.g. ``{"name": "resnet101",
            "weights": "DEFAULT"}``); when given, a cache made by any other encoder is refused.
    """

    def __init__(self, *, path: str, source: dict[str, Any] | None = None) -> None:
        super().__init__()
        # Imported here: vltk.data pulls in Lightning and the datasets, which plain encoder users don't need.
        from vltk.data.feature_cache import read_manifest

        manifest = read_manifest(path)
        if source is not None:
            from vltk.encoders import IMAGE_ENCODERS
            from vltk.registry import resolved_spec

            expected = resolved_spec(IMAGE_ENCODERS, source, path="model.encoder.source")
            if expected != manifest.encoder:
                raise ConfigError(
                    f"model.encoder.path: the feature cache {path} was made by {manifest.encoder}, "
                    f"not by model.encoder.source = {expected}; make a cache with that encoder"
                )
        self.path = str(path)
        self.source = manifest.encoder
        self.out_dim = manifest.grid[1]
        self.grid_size = tuple(manifest.grid_size) if manifest.grid_size else None
        self.trainable = False

    def forward(self, grid: Tensor) -> ImageFeatures:
        """``grid [B, N, D]`` as read from the cache (the datasets already looked the rows up)."""
        if grid.dim() != 3 or grid.shape[-1] != self.out_dim:
            raise ValueError(
                f"cached encoder expects cached grids [B, N, {self.out_dim}], got {tuple(grid.shape)}; "
                "this model reads a feature cache, not images"
            )
        return ImageFeatures(
            grid=grid, pooled=grid.mean(dim=1), mask=None, grid_size=self.grid_size
        )  # [B, D]

    def transforms(self) -> FeatureStore:
        from vltk.data.feature_cache import FeatureStore

        return FeatureStore(self.path)

    def extra_repr(self) -> str:
        return f"path={self.path}, source={self.source.get('name')}, out_dim={self.out_dim}"
