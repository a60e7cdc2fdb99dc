"""Torchvision CNN backbones as grid image encoders.

The grid of the last convolutional stage is the set of image regions an attention decoder looks at, as in
Xu et al. 2015, *Show, Attend and Tell* (VGG conv5_3 without the last max-pool: 14x14x512 at 224 px) and
its ResNet successors (He et al. 2016, *Deep Residual Learning for Image Recognition*: the last stage,
7x7x2048 for ResNet-50/101/152, 7x7x512 for ResNet-18/34). Backbones: Simonyan & Zisserman 2015 (VGG-16)
and He et al. 2016 (ResNet).

Any classification model of ``torchvision.models`` works as ``backbone`` (:func:`grid_backbones` lists
them): its layers up to the global pooling and the classifier are the trunk, whose last feature map is the
grid (ResNet/ResNeXt/Wide-ResNet/RegNet, VGG/AlexNet without the last max-pool, ConvNeXt, EfficientNet,
MobileNet, MNASNet, DenseNet, SqueezeNet, ShuffleNet, Swin, MaxViT); for a Vision Transformer (Dosovitskiy et
al. 2021) the grid is its patch tokens after the encoder, the class token dropped (14x14 for ViT-B/16 at
224 px). GoogLeNet and Inception-v3 are refused: their forward adds auxiliary heads and input transforms.

Pretrained weights go through torchvision's weights API (``weights="DEFAULT"``, ``"IMAGENET1K_V1"``, ...),
which reads ``$TORCH_HOME/hub/checkpoints/<file>`` when the file is already there and downloads it
otherwise; a local ``.pth``/``.pt`` state-dict file works too. Tests and offline runs use ``weights=None``.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torch import Tensor, nn
from torchvision.transforms import v2

from vltk.data.images import IMAGENET_MEAN, IMAGENET_STD, resize_normalize
from vltk.errors import ConfigError, DataError, unknown_choice_message
from vltk.types import ImageFeatures

logger = logging.getLogger(__name__)

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg16")
"""The backbones with their own registry entry (``name: resnet50``); any other is ``name: torchvision``."""
WEIGHT_FILE_SUFFIXES = (".pth", ".pt")
REFUSED = {
    "googlenet": "its forward adds auxiliary classifiers and an input transform",
    "inception_v3": "its forward adds auxiliary classifiers and an input transform",
}
"""torchvision classification models that are not offered as grid encoders, and why."""
_HEAD_MODULES = ("avgpool", "fc", "classifier", "dropout", "flatten", "head", "heads")
"""Children of a torchvision classifier that pool, flatten or classify: what the trunk leaves out."""


def grid_backbones() -> list[str]:
    """Every torchvision classification model that works as ``backbone`` (sorted)."""
    return sorted(set(torchvision.models.list_models(module=torchvision.models)) - set(REFUSED))


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


def _load_local(
    model: nn.Module, backbone: str, state: Mapping[str, Tensor], path: Path, needed: set[str]
) -> None:
    """Load ``state`` into the full torchvision model; every tensor of the trunk (``needed``, by the
    model's own names) must be there, the classifier's need not."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches are raised even when strict=False
        raise DataError(f"weights file '{path}' does not fit {backbone}: {err}") from err
    missing = [key for key in result.missing_keys if key in needed]
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


class PatchTokens(nn.Module):
    """A torchvision Vision Transformer up to its encoder's output, the patch tokens as a feature map.

    The class token is prepended and the encoder (position embeddings, blocks, final LayerNorm) run as
    in ``VisionTransformer.forward``; the class token is then dropped and the ``N = h * w`` patch tokens
    reshaped to ``[B, D, h, w]``. The submodules keep torchvision's names, so its weights load as they are.
    """

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.conv_proj, self.encoder = vit.conv_proj, vit.encoder
        self.class_token = vit.class_token

    def forward(self, images: Tensor) -> Tensor:
        patches = self.conv_proj(images)  # [B, D, h, w]
        batch, dim, height, width = patches.shape
        tokens = patches.flatten(2).transpose(1, 2)  # [B, N, D]
        tokens = torch.cat([self.class_token.expand(batch, -1, -1), tokens], dim=1)  # [B, 1 + N, D]
        tokens = self.encoder(tokens)[:, 1:]  # [B, N, D]
        return tokens.transpose(1, 2).reshape(batch, dim, height, width)  # [B, D, h, w]


def _trunk(backbone: str, model: nn.Module) -> nn.Module:
    """The layers before the global pooling and the classifier, keeping torchvision's parameter names
    (``conv1.weight``, ``features.0.weight``), so a torchvision state dict loads into them."""
    if backbone.startswith("vit_"):
        return PatchTokens(model)
    children = []
    for name, child in model.named_children():
        if name in _HEAD_MODULES:
            continue
        if isinstance(child, nn.ModuleList):  # MaxViT's blocks: run in order, names kept
            child = nn.Sequential(*child)
        if name == "features" and isinstance(child[-1], nn.MaxPool2d):
            # VGG, AlexNet: without the last max-pool, the 14x14 grid of Show, Attend and Tell at 224 px.
            child = child[:-1]
        children.append((name, child))
    if backbone.startswith("densenet"):  # DenseNet's forward applies a ReLU after its features
        children.append(("relu", nn.ReLU()))
    return nn.Sequential(OrderedDict(children))


def _build_model(backbone: str, image_size: int, pretrained: bool) -> nn.Module:
    """The torchvision model, randomly initialised; a ViT without pretrained weights is built for
    ``image_size`` (its position embeddings depend on it), one with them at its own size."""
    if backbone in REFUSED:
        raise ConfigError(f"backbone '{backbone}' is not offered as a grid encoder: {REFUSED[backbone]}")
    choices = grid_backbones()
    if backbone not in choices:
        raise ConfigError(
            unknown_choice_message("backbone (a torchvision classification model)", backbone, choices)
        )
    if backbone.startswith("vit_") and not pretrained:
        patch = int(backbone.rsplit("_", 1)[1])
        if image_size % patch:
            raise ConfigError(
                f"image_size must be a multiple of {backbone}'s patch size {patch}, got {image_size}"
            )
        return torchvision.models.get_model(backbone, weights=None, image_size=image_size)
    model = torchvision.models.get_model(backbone, weights=None)
    own_size = getattr(model, "image_size", None)
    if own_size is not None and own_size != image_size:
        raise ConfigError(f"{backbone} with pretrained weights takes image_size {own_size}, got {image_size}")
    return model


def _grid_channels(trunk: nn.Module, image_size: int) -> int:
    """``D`` of the trunk's feature map, from one forward pass of a blank image (eval mode, no grad)."""
    was_training = trunk.training
    trunk.eval()
    with torch.no_grad():
        channels = int(trunk(torch.zeros(1, 3, image_size, image_size)).shape[1])
    trunk.train(was_training)
    return channels


class TorchvisionEncoder(nn.Module):
    """A torchvision classifier's trunk returning its last feature map (a ViT: its patch tokens) as a grid.

    Args:
        backbone: any torchvision classification model (:func:`grid_backbones`): ``resnet50``,
            ``resnext50_32x4d``, ``convnext_tiny``, ``efficientnet_b0``, ``swin_t``, ``vit_b_16``, ...
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
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 32:
            raise ConfigError(f"image_size must be an integer >= 32 for {backbone}, got {image_size!r}")
        model = _build_model(str(backbone), image_size, pretrained=weights is not None)
        trunk = _trunk(backbone, model)  # shares the model's modules: weights loaded below reach it
        needed = _model_names(model, trunk)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if weights is not None:
            if _looks_like_path(weights):
                path = Path(weights).expanduser()
                _load_local(model, backbone, _read_state_dict(path), path, needed)
            else:
                named = _named_weights(backbone, weights)
                model.load_state_dict(_download_state_dict(named))
                preset = named.transforms()
                mean = tuple(getattr(preset, "mean", IMAGENET_MEAN))
                std = tuple(getattr(preset, "std", IMAGENET_STD))
            logger.info("loaded %s weights for %s", weights, backbone)
        self.backbone = trunk
        self.backbone_name = backbone
        self.weights = weights
        self.trainable = trainable
        self.image_size = image_size
        self.mean, self.std = mean, std
        self.out_dim = _grid_channels(self.backbone, image_size)
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

    def transforms(self) -> v2.Compose:
        """Image -> ``[3, S, S]``: resize to ``image_size`` (no crop), normalise as the weights."""
        return resize_normalize(self.image_size, self.mean, self.std)

    def extra_repr(self) -> str:
        return (
            f"backbone={self.backbone_name!r}, weights={self.weights!r}, trainable={self.trainable}, "
            f"out_dim={self.out_dim}"
        )


def _model_names(model: nn.Module, trunk: nn.Module) -> set[str]:
    """The names, in ``model``'s state dict, of the tensors the trunk uses."""
    used = {id(tensor) for tensor in trunk.state_dict(keep_vars=True).values()}
    return {name for name, tensor in model.state_dict(keep_vars=True).items() if id(tensor) in used}


def torchvision_encoder(
    *, backbone: str, weights: str | None = None, trainable: bool = False, image_size: int = 224
) -> TorchvisionEncoder:
    """Any torchvision classification model as a grid encoder (``backbone: convnext_tiny``, ``vit_b_16``,
    ...; :func:`grid_backbones` lists them).

    Args:
        backbone: the torchvision model's name (``torchvision.models.list_models()``, less GoogLeNet and
            Inception-v3).
        weights: ``null`` (random init), a torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``, ...), or
            a local ``.pth``/``.pt`` state dict.
        trainable: fine-tune the backbone (``false``: frozen, in eval mode).
        image_size: side of the square images fed to it (a ViT with pretrained weights: its own size).
    """
    return TorchvisionEncoder(backbone, weights=weights, trainable=trainable, image_size=image_size)


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
