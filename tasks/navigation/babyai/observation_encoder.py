"""Convolutional encoders of BabyAI egocentric views, both ending in a ``[B, C, 7, 7]`` grid of cells.

* :class:`SymbolicGridEncoder`: the "bag of words" cell embedding of BabyAI 1.1 (Hui et al. 2020, BabyAI 1.1):
  each of a cell's three codes (object, colour, state) has its own embedding table and a cell is the sum of
  its three embeddings, followed by two 3x3 convolutions.
* :class:`PixelGridEncoder`: the RGB view (56x56, 8 pixels per cell) through an 8x8 convolution of stride 8,
  one output per cell (BabyAI 1.1's pixel encoder), followed by the same two 3x3 convolutions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vltk.registry import Registry
from vltk.tasks.navigation.babyai.env import SYMBOLIC_VALUES


def _conv_stack(in_channels: int, channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
    )


class SymbolicGridEncoder(nn.Module):
    """Embed the 7x7x3 symbolic view cell by cell, then convolve.

    Args:
        channels: output channels ``C`` (and the cell embedding size).
    """

    def __init__(self, *, channels: int = 128) -> None:
        super().__init__()
        self.embedding = nn.Embedding(sum(SYMBOLIC_VALUES), channels)
        offsets = torch.tensor([0, SYMBOLIC_VALUES[0], SYMBOLIC_VALUES[0] + SYMBOLIC_VALUES[1]])
        self.register_buffer("offsets", offsets, persistent=False)
        self.convs = _conv_stack(channels, channels)
        self.out_dim = channels

    def embed_cells(self, images: Tensor) -> Tensor:
        """``uint8`` ``[B, 7, 7, 3]`` -> the cell embeddings ``[B, C, 7, 7]``, before the convolutions."""
        limits = torch.tensor(SYMBOLIC_VALUES, device=images.device) - 1
        codes = torch.minimum(images.long(), limits) + self.offsets  # [B, 7, 7, 3]
        cells = self.embedding(codes).sum(dim=3)  # [B, 7, 7, C]
        return cells.permute(0, 3, 1, 2).contiguous()  # [B, C, 7, 7]

    def forward(self, images: Tensor) -> Tensor:
        """``uint8`` ``[B, 7, 7, 3]`` -> ``[B, C, 7, 7]``."""
        return self.convs(self.embed_cells(images))  # [B, C, 7, 7]


class PixelGridEncoder(nn.Module):
    """Encode the 56x56 RGB view: one 8x8 stride-8 convolution per cell, then two 3x3 convolutions.

    Args:
        channels: output channels ``C``.
        tile: pixels per cell (minigrid's ``RGBImgPartialObsWrapper`` tile size).
    """

    def __init__(self, *, channels: int = 128, tile: int = 8) -> None:
        super().__init__()
        self.cells = nn.Sequential(
            nn.Conv2d(3, channels, tile, stride=tile), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.convs = _conv_stack(channels, channels)
        self.out_dim = channels

    def embed_cells(self, images: Tensor) -> Tensor:
        """``uint8`` ``[B, 56, 56, 3]`` -> one vector per cell ``[B, C, 7, 7]`` (before the 3x3 convs)."""
        pixels = images.permute(0, 3, 1, 2).float() / 255.0  # [B, 3, 56, 56]
        return self.cells(pixels)  # [B, C, 7, 7]

    def forward(self, images: Tensor) -> Tensor:
        """``uint8`` ``[B, 56, 56, 3]`` -> ``[B, C, 7, 7]``."""
        return self.convs(self.embed_cells(images))  # [B, C, 7, 7]


OBSERVATION_ENCODERS = Registry(
    "observation encoder", {"symbolic": SymbolicGridEncoder, "rgb": PixelGridEncoder}
)
