"""The image encoders that compute features from pixels, by name: the CNNs a feature cache can be made from.

:data:`vltk.encoders.IMAGE_ENCODERS` is these plus ``cached`` (grids read back from such a cache); the
cached encoder checks its ``source`` spec against this registry, so it lives apart from the full one.
"""

from __future__ import annotations

from vltk.encoders.small_cnn import SmallCNNEncoder
from vltk.encoders.torchvision_encoder import (
    resnet18_encoder,
    resnet34_encoder,
    resnet50_encoder,
    resnet101_encoder,
    resnet152_encoder,
    torchvision_encoder,
    vgg16_encoder,
)

CNN_ENCODERS = {
    "small_cnn": SmallCNNEncoder,
    "resnet18": resnet18_encoder,
    "resnet34": resnet34_encoder,
    "resnet50": resnet50_encoder,
    "resnet101": resnet101_encoder,
    "resnet152": resnet152_encoder,
    "vgg16": vgg16_encoder,
    "torchvision": torchvision_encoder,  # any other torchvision classifier: backbone: convnext_tiny, vit_b_16
}
