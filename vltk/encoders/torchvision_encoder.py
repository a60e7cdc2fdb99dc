"""Torchvision CNN backbones as grid image encoders.

The grid of the last convolutional stage is the set of image regions an attention decoder looks at, as in
Xu et al. 2015, *Show, Attend and Tell* (VGG conv5_3 without the last max-pool: 14x14x512 at 224 px) and
its ResNet successors (He et al. 2016, *Deep Residual Learning for Image Recognition*: the last stage,
7x7x2048 for ResNet-50/101/152, 7x7x512 for ResNet-18/34). Backbones: Simonyan & Zisserman 2015 (VGG-16)
and He et al. 2016 (ResNet).

Pretrained weights go through torchvision's weights API (``weights="DEFAULT"``, ``"IMAGENET1K_V1"``, ...),
which reads ``$TORCH_HOME/hub/checkpoints/<file>`` when the file is already there and downloads it
otherwise; a local ``.pth``/``.pt`` state-dict file works too. Tests and offline runs use ``weights=None``.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from PIL import Image
from torch import Tensor, nn
from torchvision import transforms as T

from vltk.errors import ConfigError, DataError, unknown_choice_message
from vltk.types import ImageFeatures

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg16")
WEIGHT_FILE_SUFFIXES = (".pth", ".pt")
# Parameters of the classification head, dropped from the encoder (and not required in weight files).
_HEAD_PREFIXES = {"resnet": ("fc.",), "vgg": ("classifier.",)}


class ToRGB:
    """Convert any PIL image (grey, RGBA, palette) to RGB; a class, not a lambda, so it pickles."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return image if image.mode == "RGB" else image.convert("RGB")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def resize_normalize(image_size: int, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """PIL image -> ``[3, S, S]`` float tensor: resize the *whole* image (no crop), ToTensor, Normalize.

    Captions and questions talk about the whole image, so nothing is cropped away; the aspect ratio is
    not kept (the CNN grid then covers the full picture, which is what attention maps are drawn over).
    """
    return T.Compose(
        [
            ToRGB(),
            T.Resize((image_size, image_size), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.ToTensor(),
            T.Normalize(mean=list(mean), std=list(std)),
        ]
    )


def _family(backbone: str) -> str:
    return "vgg" if backbone.startswith("vgg") else "resnet"


def _looks_like_path(weights: str) -> bool:
    return weights.endswith(WEIGHT_FILE_SUFFIXES) or "/" in weights or os.sep in weights


def _named_weights(backbone: str, name: str) -> Any:
    """The torchvision weights enum member ``name`` of ``backbone``, or a ConfigError listing them."""
    enum = torchvision.models.get_model_weights(backbone)
    choices = list(enum.__members__)
    if name not in choices and name.upper() in choices:
        name = name.upper()
    if name not in choices:
        message = unknown_choice_message(f"weights for {backbone}", name, choices)
        raise ConfigError(f"{message}; or give the path of a local {'/'.join(WEIGHT_FILE_SUFFIXES)} file")
    return enum[name]


def _download_state_dict(weights: Any) -> dict[str, Tensor]:
    """``weights.get_state_dict()``, turning a failed download into one error that says where to put it."""
    file_name = Path(urlparse(weights.url).path).name
    cached = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    was_cached = cached.is_file()
    if not was_cached:
        logger.info("weights %s not found at %s; downloading %s", weights, cached, weights.url)
    try:
        return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as err:  # torch.load and urllib raise many types
        if was_cached or not isinstance(err, (OSError, TimeoutError)):
            raise DataError(f"could not read the weights file {cached}: {err}; delete it and retry") from err
        raise DataError(
            f"weights {weights} are not available offline and could not be downloaded ({err}). "
            f"Download {weights.url} on a machine with network access and put it at {cached} "
            f"(that is $TORCH_HOME/hub/checkpoints/{file_name}; set TORCH_HOME to choose the directory), "
            f"or use weights: null"
        ) from err


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """Load a state dict from a local file; accepts ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers."""
    if not path.is_file():
        raise DataError(
            f"weights file '{path}' does not exist (expected a {'/'.join(WEIGHT_FILE_SUFFIXES)} "
            "state-dict file)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for unreadable files
        raise DataError(f"could not read weights file '{path}': {err}") from err
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DataError(f"weights file '{path}' does not hold a state dict of tensors")
    # Accept a state dict of this encoder (``backbone.conv1.weight``), possibly nested in a larger model
    # (``encoder.backbone.conv1.weight``) or saved from DataParallel (``module.conv1.weight``).
    if any("backbone." in key for key in state):
        state = {key.split("backbone.", 1)[1]: v for key, v in state.items() if "backbone." in key}
    return {key.removeprefix("module."): value for key, value in state.items()}


def _load_local(model: nn.Module, backbone: str, state: Mapping[str, Tensor], path: Path) -> None:
    """Load ``state`` into the full torchvision model; every backbone (non-head) parameter must be there."""
    head = _HEAD_PREFIXES[_family(backbone)]
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches are raised even when strict=False
        raise DataError(f"weights file '{path}' does not fit {backbone}: {err}") from err
    missing = [key for key in result.missing_keys if not key.startswith(head)]
    if missing:
        raise DataError(
            f"weights file '{path}' lacks {len(missing)} {backbone} backbone tensor(s), e.g. "
            f"{', '.join(missing[:5])}"
        )
    unexpected = list(result.unexpected_keys)
    if unexpected:
        logger.warning(
            "ignored %d tensor(s) of %s that %s does not have, e.g. %s",
            len(unexpected),
            path,
            backbone,
            ", ".join(unexpected[:5]),
        )


def _trunk(backbone: str, model: nn.Module) -> nn.Sequential:
    """The conv trunk, keeping torchvision's parameter names (``conv1.weight``, ``features.0.weight``)."""
    if _family(backbone) == "vgg":
        # features[:-1] drops the last max-pool: 14x14 grid at 224 px, as in Show, Attend and Tell.
        return nn.Sequential(OrderedDict(features=model.features[:-1]))
    children = [(name, child) for name, child in model.named_children() if name not in ("avgpool", "fc")]
    return nn.Sequential(OrderedDict(children))


class TorchvisionEncoder(nn.Module):
    """A torchvision ResNet / VGG-16 trunk returning the last conv stage as a grid of regions.

    Args:
        backbone: one of ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``, ``resnet152``, ``vgg16``.
        weights: ``None`` (random init), a torchvision weights name (``"DEFAULT"``, ``"IMAGENET1K_V1"``,
            ...; the file is read from ``$TORCH_HOME/hub/checkpoints`` or downloaded), or the path of a
            local ``.pth``/``.pt`` state dict (of the torchvision model or of this encoder).
        trainable: fine-tune the backbone; when ``False`` its parameters are frozen and it stays in eval
            mode (BatchNorm statistics fixed) even when a parent module calls ``.train()``.
        image_size: side of the square images :meth:`transforms` produces.
    """

    def __init__(
        self,
        backbone: str,
        *,
        weights: str | None = None,
        trainable: bool = False,
        image_size: int = 224,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ConfigError(unknown_choice_message("backbone", str(backbone), BACKBONES))
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 32:
            raise ConfigError(f"image_size must be an integer >= 32 for {backbone}, got {image_size!r}")
        model = torchvision.models.get_model(backbone, weights=None)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if weights is not None:
            if _looks_like_path(weights):
                path = Path(weights).expanduser()
                _load_local(model, backbone, _read_state_dict(path), path)
            else:
                named = _named_weights(backbone, weights)
                model.load_state_dict(_download_state_dict(named))
                preset = named.transforms()
                mean = tuple(getattr(preset, "mean", IMAGENET_MEAN))
                std = tuple(getattr(preset, "std", IMAGENET_STD))
            logger.info("loaded %s weights for %s", weights, backbone)
        self.backbone = _trunk(backbone, model)
        self.backbone_name = backbone
        self.weights = weights
        self.trainable = trainable
        self.image_size = image_size
        self.mean, self.std = mean, std
        self.out_dim = [m for m in self.backbone.modules() if isinstance(m, nn.Conv2d)][-1].out_channels
        if not trainable:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> TorchvisionEncoder:
        """Like ``nn.Module.train``, but a frozen backbone stays in eval mode."""
        super().train(mode)
        if not self.trainable:
            self.backbone.eval()
        return self

    def forward(self, images: Tensor) -> ImageFeatures:
        """Encode ``images [B, 3, H, W]`` (normalised by :meth:`transforms`) into a grid of regions."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.backbone_name} expects images [B, 3, H, W], got {tuple(images.shape)}")
        fmap = self.backbone(images)  # [B, D, H', W']
        height, width = fmap.shape[-2:]
        grid = fmap.flatten(2).transpose(1, 2)  # [B, N, D]
        pooled = grid.mean(dim=1)  # [B, D]
        return ImageFeatures(grid=grid, pooled=pooled, mask=None, grid_size=(int(height), int(width)))

    def transforms(self) -> T.Compose:
        """PIL image (RGB) -> ``[3, S, S]``: resize to ``image_size`` (no crop), normalise as the weights."""
        return resize_normalize(self.image_size, self.mean, self.std)

    def extra_repr(self) -> str:
        return (
            f"backbone={self.backbone_name!r}, weights={self.weights!r}, trainable={self.trainable}, "
            f"out_dim={self.out_dim}"
        )


def resnet18_encoder(
    *, weights: str | None = None, trainable: bool = False, image_size: int = 224
) -> TorchvisionEncoder:
    """ResNet-18 grid encoder (He et al. 2016); ``D = 512``, 7x7 grid at 224 px."""
    return TorchvisionEncoder("resnet18", weights=weights, trainable=trainable, image_size=image_size)


def resnet34_encoder(
    *, weights: str | None = None, trainable: bool = False, image_size: int = 224
) -> TorchvisionEncoder:
    """ResNet-34 grid encoder (He et al. 2016); ``D = 512``, 7x7 grid at 224 px."""
    return TorchvisionEncoder("resnet34", weights=weights, trainable=trainable, image_size=image_size)


def resnet50_encoder(
    *, weights: str | None = None, trainable: bool = False, image_size: int = 224
) -> TorchvisionEncoder:
    """ResNet-50 grid encoder (He et al. 2016); ``D = 2048``, 7x7 grid at 224 px."""
    return TorchvisionEncoder("resnet50", weights=weights, trainable=trainable, image_size=image_size)


def resnet101_encoder(
    *, weights: str | None = None, trainable: bool = False, image_size: int = 224
) -> TorchvisionEncoder:
    """ResNet-101 grid encoder (He et al. 2016); ``D = 2048``, 7x7 grid at 224 px."""
    return TorchvisionEncoder("resnet101", weights=weights, trainable=trainable, image_size=image_size)


def resnet152_encoder(
    *, weights: str | None = None, trainable: bool = False, image_size: int = 224
) -> TorchvisionEncoder:
    """ResNet-152 grid encoder (He et al. 2016); ``D = 2048``, 7x7 grid at 224 px."""
    return TorchvisionEncoder("resnet152", weights=weights, trainable=trainable, image_size=image_size)


def vgg16_encoder(
    *, weights: str | None = None, trainable: bool = False, image_size: int = 224
) -> TorchvisionEncoder:
    """VGG-16 conv5_3 grid encoder (Simonyan & Zisserman 2015; Xu et al. 2015); ``D = 512``, 14x14 @ 224."""
    return TorchvisionEncoder("vgg16", weights=weights, trainable=trainable, image_size=image_size)
