"""An image encoder that reads region features from a region store (``vltk data regions``): a variable number
of detected regions per image, as in Anderson et al. 2018, *Bottom-Up and Top-Down Attention for Image
Captioning and VQA*, whose decoders attend over ~36 object regions instead of a CNN grid.

The datasets look every image up in the store (:meth:`RegionFeatureEncoder.transforms` returns it), so a
batch holds packed rows (:func:`vltk.data.region_features.pack_regions`); :meth:`forward` unpacks them
into the :class:`vltk.types.ImageFeatures` every decoder reads, with a ``mask`` marking the real regions,
which the attention modules and ``masked_mean`` already honour.
"""

from __future__ import annotations

from torch import Tensor, nn

from vltk.data.region_features import (
    BOX_FEATURES,
    RegionFeatureStore,
    read_region_manifest,
    resolve_store_path,
    unpack_regions,
)
from vltk.errors import ConfigError
from vltk.types import ImageFeatures


class RegionFeatureEncoder(nn.Module):
    """Region features from a store, with masks; ``transforms()`` is the store (looked up by image id).

    Args:
        path: the store directory written by ``vltk data regions``, or ``cache:NAME`` for a store in the
            vltk cache (a built-in one, made on first use by ``data.region_store``).
        box_features: append the box geometry to every region (``x1/w, y1/h, x2/w, y2/h`` and the area
            fraction); the store must hold boxes.
        normalize: scale every region vector to unit L2 norm (before the box numbers).
    """

    def __init__(self, *, path: str, box_features: bool = False, normalize: bool = False) -> None:
        super().__init__()
        manifest = read_region_manifest(resolve_store_path(path))
        if box_features and not manifest.has_boxes:
            raise ConfigError(
                f"model.encoder.box_features: the region store {path} has no boxes (made from "
                f"{manifest.dataset}); set box_features: false"
            )
        self.path = str(path)
        self.box_features = box_features
        self.normalize = normalize
        self.max_regions = manifest.max_regions
        self.out_dim = manifest.dim + (BOX_FEATURES if box_features else 0)
        self.grid_size = None  # regions, not a grid
        self.trainable = False

    def forward(self, packed: Tensor) -> ImageFeatures:
        """``packed [B, 1 + N_max, D + 1]`` as the datasets read it from the store -> ``grid [B, N, D]``,
        ``pooled [B, D]`` (the store's fc, or the mean of the real regions) and ``mask [B, N]``, cut to the
        batch's largest region count ``N``."""
        if packed.dim() != 3 or packed.shape[1:] != (1 + self.max_regions, self.out_dim + 1):
            raise ValueError(
                f"the regions encoder expects packed regions [B, {1 + self.max_regions}, {self.out_dim + 1}] "
                f"from its store, got {tuple(packed.shape)}; this model reads a region store, not images"
            )
        grid, pooled, mask = unpack_regions(packed)  # [B, N, D], [B, D], [B, N]
        return ImageFeatures(grid=grid, pooled=pooled, mask=mask)

    def transforms(self) -> RegionFeatureStore:
        return RegionFeatureStore(self.path, box_features=self.box_features, normalize=self.normalize)

    def extra_repr(self) -> str:
        return f"path={self.path}, out_dim={self.out_dim}, max_regions={self.max_regions}"
