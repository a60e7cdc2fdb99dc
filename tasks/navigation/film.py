"""FiLM: feature-wise linear modulation (Perez et al. 2018, FiLM: Visual Reasoning with a General
Conditioning Layer), the conditioning the BabyAI baselines use to let the instruction steer the convolutional
features of each observation (Chevalier-Boisvert et al. 2019; Hui et al. 2020, BabyAI 1.1).
"""

from __future__ import annotations

from torch import Tensor, nn


class FiLM(nn.Module):
    """``FiLM(x, c) = gamma(c) * x + beta(c)``, one ``gamma`` and ``beta`` per channel of ``x``.

    Args:
        channels: channels ``C`` of the modulated feature map.
        cond_dim: size of the conditioning vector.
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.channels = channels
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)  # start as the identity: gamma = 1, beta = 0
        nn.init.zeros_(self.proj.bias)

    def forward(self, features: Tensor, cond: Tensor) -> Tensor:
        """``features [B, C, H, W]``, ``cond [B, K]`` -> ``[B, C, H, W]``."""
        gamma, beta = self.proj(cond).chunk(2, dim=-1)  # [B, C], [B, C]
        return features * (1.0 + gamma)[:, :, None, None] + beta[:, :, None, None]  # [B, C, H, W]


class FiLMBlock(nn.Module):
    """The BabyAI FiLM block: conv 3x3, batch norm, ReLU, conv 3x3, batch norm, FiLM, ReLU, plus a residual.

    Args:
        channels: input and output channels.
        cond_dim: size of the conditioning vector (the attended instruction).
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.BatchNorm2d(channels)
        self.film = FiLM(channels, cond_dim)

    def forward(self, features: Tensor, cond: Tensor) -> Tensor:
        """``features [B, C, H, W]``, ``cond [B, K]`` -> ``[B, C, H, W]``."""
        x = self.norm1(self.conv1(features)).relu()  # [B, C, H, W]
        x = self.film(self.norm2(self.conv2(x)), cond).relu()  # [B, C, H, W]
        return x + features  # [B, C, H, W]
