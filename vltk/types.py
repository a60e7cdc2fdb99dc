"""Batch and feature containers shared by every part of vltk.

Shape letters used in comments throughout the code base (defined here, once):

    B  batch size (images, questions or dialogs in a batch)
    K  beam size
    T  time steps / tokens in a padded sequence
    L  generated length (decoding)
    N  image regions (grid cells of a CNN feature map, N = H' * W')
    D  feature dimension of image regions
    E  word embedding dimension
    H  recurrent hidden size
    A  attention hidden size
    V  vocabulary size

Mask polarity, everywhere: ``True`` marks a real token / region, ``False`` marks padding.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor


def move_to(value: Any, device: torch.device | str) -> Any:
    if isinstance(value, Tensor):
        return value.to(device)
    return value


@dataclass
class ImageFeatures:
    """Output of every image encoder.

    Attributes:
        grid: region features ``[B, N, D]``.
        pooled: one global vector per image ``[B, D]``.
        mask: ``[B, N]`` bool, ``True`` = real region; ``None`` means every region is real.
        grid_size: ``(H', W')`` of the feature map, so ``N == H' * W'`` (for attention maps).
    """

    grid: Tensor
    pooled: Tensor
    mask: Tensor | None = None
    grid_size: tuple[int, int] | None = None

    def to(self, device: torch.device | str) -> ImageFeatures:
        return replace(
            self, grid=self.grid.to(device), pooled=self.pooled.to(device), mask=move_to(self.mask, device)
        )


@dataclass
class TextFeatures:
    """Output of every text encoder.

    Attributes:
        states: per-token outputs ``[B, T, H']`` (``H' = H * directions``), zero at padding.
        final: one vector per sequence ``[B, H']`` (last real step; both directions concatenated).
        mask: ``[B, T]`` bool, ``True`` = real token.
    """

    states: Tensor
    final: Tensor
    mask: Tensor

    def to(self, device: torch.device | str) -> TextFeatures:
        return TextFeatures(self.states.to(device), self.final.to(device), self.mask.to(device))
