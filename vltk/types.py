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

from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor


def _move(value: Any, device: torch.device | str) -> Any:
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
            self, grid=self.grid.to(device), pooled=self.pooled.to(device), mask=_move(self.mask, device)
        )


@dataclass
class CaptionBatch:
    """A batch of images with captions (training) and all their references (evaluation).

    Attributes:
        images: ``[B, 3, H, W]`` float, already normalised by the encoder's ``transforms()``.
        captions: ``[B, T]`` long token ids: ``<start> w1 .. wn <end> <pad> ...``.
        caption_mask: ``[B, T]`` bool, ``True`` = real token (``<start>`` and ``<end>`` included).
        image_ids: ``[B]`` long, the dataset's image id (Karpathy ``cocoid`` or ``imgid``).
        references: per image, every reference caption as a raw string (for metrics).
        skipped: examples of this batch dropped because they could not be read (``on_bad_sample: skip``).
    """

    images: Tensor
    captions: Tensor
    caption_mask: Tensor
    image_ids: Tensor
    references: list[list[str]]
    skipped: int = 0

    def to(self, device: torch.device | str) -> CaptionBatch:
        moved = {f.name: _move(getattr(self, f.name), device) for f in fields(self)}
        return CaptionBatch(**moved)

    def __len__(self) -> int:
        return self.images.shape[0]


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
