"""Image and text encoders, and their registries (:class:`vltk.registry.Registry`, built with
:func:`vltk.registry.build`).

Image encoder specs look like ``{"name": "resnet50", "weights": null, "trainable": false}``; every image
encoder returns :class:`vltk.types.ImageFeatures` and has ``out_dim``, ``trainable`` and ``transforms()``.
Text encoder specs look like ``{"name": "rnn", "cell": "lstm", "hidden_dim": 512}``; ``vocab_size`` is
wired from the vocabulary.
"""

from __future__ import annotations

from vltk.encoders.cached import CachedFeatureEncoder
from vltk.encoders.small_cnn import SmallCNNEncoder
from vltk.encoders.text import RNNTextEncoder
from vltk.encoders.torchvision_encoder import (
    TorchvisionEncoder,
    resnet18_encoder,
    resnet34_encoder,
    resnet50_encoder,
    resnet101_encoder,
    resnet152_encoder,
    vgg16_encoder,
)
from vltk.registry import Registry

IMAGE_ENCODERS = Registry(
    "image encoder",
    {
        "small_cnn": SmallCNNEncoder,
        "resnet18": resnet18_encoder,
        "resnet34": resnet34_encoder,
        "resnet50": resnet50_encoder,
        "resnet101": resnet101_encoder,
        "resnet152": resnet152_encoder,
        "vgg16": vgg16_encoder,
        "cached": CachedFeatureEncoder,  # grids precomputed by `vltk data cache-features`
    },
)

TEXT_ENCODERS = Registry("text encoder", {"rnn": RNNTextEncoder})

__all__ = [
    "IMAGE_ENCODERS",
    "CachedFeatureEncoder",
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
]
