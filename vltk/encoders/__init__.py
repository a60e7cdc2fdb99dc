"""Image and text encoders, and their registries (:class:`vltk.registry.Registry`, built with
:func:`vltk.registry.build`).

Image encoder specs look like ``{"name": "resnet50", "weights": null, "trainable": false}``; every image
encoder returns :class:`vltk.types.ImageFeatures` and has ``out_dim``, ``trainable`` and ``transforms()``.
Text encoder specs look like ``{"name": "rnn", "cell": "lstm", "hidden_dim": 512}``; ``vocab_size`` is
wired from the vocabulary.
"""

from __future__ import annotations

from vltk.encoders.cached import CachedFeatureEncoder
from vltk.encoders.cnns import CNN_ENCODERS
from vltk.encoders.regions import RegionFeatureEncoder
from vltk.encoders.small_cnn import SmallCNNEncoder
from vltk.encoders.text import RNNTextEncoder
from vltk.encoders.torchvision_encoder import (
    TorchvisionEncoder,
    grid_backbones,
    resnet18_encoder,
    resnet34_encoder,
    resnet50_encoder,
    resnet101_encoder,
    resnet152_encoder,
    torchvision_encoder,
    vgg16_encoder,
)
from vltk.registry import Registry

IMAGE_ENCODERS = Registry(
    "image encoder",
    {
        **CNN_ENCODERS,  # small_cnn, the torchvision ResNets and VGG-16
        "cached": CachedFeatureEncoder,  # grids precomputed by `vltk data cache-features`
        "regions": RegionFeatureEncoder,  # region features converted by `vltk data regions`
    },
)

TEXT_ENCODERS = Registry("text encoder", {"rnn": RNNTextEncoder})

__all__ = [
    "CNN_ENCODERS",
    "IMAGE_ENCODERS",
    "CachedFeatureEncoder",
    "RegionFeatureEncoder",
    "TEXT_ENCODERS",
    "RNNTextEncoder",
    "SmallCNNEncoder",
    "TorchvisionEncoder",
    "resnet18_encoder",
    "resnet34_encoder",
    "resnet50_encoder",
    "resnet101_encoder",
    "resnet152_encoder",
    "vgg16_encoder",
    "torchvision_encoder",
    "grid_backbones",
]
