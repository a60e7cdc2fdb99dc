"""A small convolutional grid encoder for small images, trained from scratch.

The built-in datasets (procedural ``shapes`` captions and dialogs, ``easy_vqa``) have 64x64 images and a
handful of concepts; an ImageNet backbone is wasted on them and slow on CPU. This encoder is a short stack
of conv3x3-BatchNorm-ReLU blocks (Simonyan & Zisserman 2015, *Very Deep Convolutional Networks*; Ioffe &
Szegedy 2015, *Batch Normalization*) with stride-2 downsampling, so a 64x64 image becomes an 8x8 grid of
regions for an attention decoder (Xu et al. 2015, *Show, Attend and Tell*).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn
from torchvision.transforms import v2

from vltk.encoders.torchvision_encoder import resize_normalize
from vltk.errors import ConfigError
from vltk.types import ImageFeatures

logger = logging.getLogger(__name__)

# Images are scaled to [-1, 1]: there are no pretrained weights whose statistics must be matched.
SMALL_CNN_MEAN = (0.5, 0.5, 0.5)
SMALL_CNN_STD = (0.5, 0.5, 0.5)


def conv_block(in_channels: int, out_channels: int, *, stride: int, norm: bool) -> nn.Sequential:
    """conv3x3 (padding 1) -> BatchNorm (optional) -> ReLU; the conv has a bias only without BatchNorm."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=not norm)
    ]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SmallCNNEncoder(nn.Module):
    """A few conv stages, each halving the resolution: 64x64 -> 8x8 grid with three stages.

    Every stage is a stride-2 conv block followed by a stride-1 conv block, so the receptive field of a
    grid cell covers its neighbours; ``pooled`` is the mean over the grid.

    Args:
        channels: output channels of each stage; the number of stages is ``len(channels)`` and
            ``out_dim = channels[-1]``.
        image_size: side of the square images :meth:`transforms` produces (grid side
            ``image_size / 2 ** len(channels)``).
        trainable: train the encoder (the default: it has no pretrained weights); when ``False`` the
            parameters are frozen and the encoder stays in eval mode even when a parent calls ``.train()``.
        norm: use BatchNorm after every conv.
        channels_last: keep the weights and activations in the NHWC memory layout (``torch.channels_last``,
            the default): the same computation as NCHW, agreeing to float rounding, not bitwise. oneDNN's
            CPU convolutions are NHWC-native, so it is faster on CPU (a one-off side-by-side timing, not a
            committed benchmark, gave about 1.25x for the whole VQA training step). ``False`` computes in
            NCHW, bitwise as before; checkpoints load either way.
    """

    def __init__(
        self,
        *,
        channels: tuple[int, ...] = (32, 64, 128),
        image_size: int = 64,
        trainable: bool = True,
        norm: bool = True,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if not channels or not all(
            isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels
        ):
            raise ConfigError(
                f"small_cnn channels must be a non-empty list of positive integers, got {channels!r}"
            )
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 2 ** len(channels):
            raise ConfigError(
                f"small_cnn image_size must be an integer >= {2 ** len(channels)} for {len(channels)} "
                f"stages, got {image_size!r}"
            )
        stages = []
        in_channels = 3
        for out_channels in channels:
            stages.append(
                nn.Sequential(
                    conv_block(in_channels, out_channels, stride=2, norm=norm),
                    conv_block(out_channels, out_channels, stride=1, norm=norm),
                )
            )
            in_channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.channels = channels
        self.image_size = image_size
        self.trainable = trainable
        self.norm = norm
        self.channels_last = channels_last
        self.out_dim = channels[-1]
        self._init_weights()
        if channels_last:
            self.stages.to(memory_format=torch.channels_last)
        if not trainable:
            self.requires_grad_(False)
            self.eval()

    def _init_weights(self) -> None:
        # He et al. 2015 initialisation for ReLU nets, as torchvision does for its CNNs.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def train(self, mode: bool = True) -> SmallCNNEncoder:
        """Like ``nn.Module.train``, but a frozen encoder stays in eval mode."""
        return super().train(mode and self.trainable)

    def forward(self, images: Tensor) -> ImageFeatures:
        """Encode ``images [B, 3, H, W]`` (normalised by :meth:`transforms`) into a grid of regions."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"small_cnn expects images [B, 3, H, W], got {tuple(images.shape)}")
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)  # [B, 3, H, W], stored NHWC
        fmap = self.stages(images)  # [B, D, H', W']
        height, width = fmap.shape[-2:]
        grid = fmap.flatten(2).transpose(1, 2)  # [B, N, D]
        pooled = grid.mean(dim=1)  # [B, D]
        return ImageFeatures(grid=grid, pooled=pooled, mask=None, grid_size=(int(height), int(width)))

    def transforms(self) -> v2.Compose:
        """Image -> ``[3, S, S]`` in ``[-1, 1]``: resize to ``image_size`` (no crop), mean/std 0.5."""
        return resize_normalize(self.image_size, SMALL_CNN_MEAN, SMALL_CNN_STD)

    def extra_repr(self) -> str:
        return f"channels={list(self.channels)}, trainable={self.trainable}, out_dim={self.out_dim}"
