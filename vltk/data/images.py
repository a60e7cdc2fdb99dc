"""Reading images from disk as RGB ``PIL`` images, with errors that name the file.

Every dataset in vltk reads pictures through :func:`load_image` (files) or :func:`to_rgb` (images already
in memory, e.g. from a Hugging Face dataset), so a corrupt file or an unusual pixel format fails or is
converted the same way everywhere:

* grayscale (``L``, ``1``), ``YCbCr``, ``LAB``, ``HSV`` and ``CMYK`` are converted to RGB;
* images with transparency (``RGBA``, ``LA``, ``PA``, palette images with a transparent colour) are
  composited onto a white background, as a browser shows them;
* 16-bit and 32-bit integer / float grayscale images are rescaled to 8 bits (not clipped).

EXIF orientation is deliberately not applied: the public caption benchmarks (and the torchvision
loaders) read pixels as stored.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms import v2

from vltk.errors import DataError

logger = logging.getLogger(__name__)

_WHITE = (255, 255, 255)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageTransform = Callable[[Image.Image], Tensor]


def load_image(path: str | Path) -> Image.Image:
    """Open ``path`` and return its pixels as an RGB ``PIL.Image`` (fully decoded, file closed).

    Raises:
        DataError: the path does not exist, is a directory, is not an image or is truncated/corrupt;
            the message names the path and the problem on one line.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: image file not found")
    if path.is_dir():
        raise DataError(f"{path}: expected an image file, found a directory")
    return _decode(path, str(path))


def decode_image(data: bytes, source: str) -> Image.Image:
    """:func:`load_image` for an encoded image in memory (a file read from a tar shard, say).

    Args:
        data: the file's bytes (PNG, JPEG, ...: the format is read from the bytes).
        source: where they come from, for the error message (``shard.tar: sample 'KEY'``).
    """
    return _decode(io.BytesIO(data), source)


def _decode(file: Path | io.BytesIO, source: str) -> Image.Image:
    try:
        with Image.open(file) as image:
            image.load()
            return to_rgb(image, source=source)
    except UnidentifiedImageError as error:
        raise DataError(f"{source}: not an image file (or an unsupported format)") from error
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"{source}: cannot decode image ({message})") from error


def to_rgb(image: Image.Image, source: str = "image") -> Image.Image:
    """Convert an image in any ``PIL`` mode to 8-bit RGB (see the module docstring for the rules).

    Args:
        image: a decoded ``PIL`` image.
        source: a name for error messages (the file path, or a dataset row).
    """
    mode = image.mode
    if mode == "RGB":
        return image.copy() if image.readonly else image
    if mode == "P" and "transparency" in image.info:
        return _composite_on_white(image.convert("RGBA"))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _composite_on_white(image.convert("RGBA"))
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _high_depth_to_rgb(image)
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise DataError(f"{source}: cannot convert image mode {mode!r} to RGB ({error})") from error


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, _WHITE + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Rescale a 16/32-bit integer or float grayscale image to 8 bits, then replicate to RGB."""
    pixels = np.asarray(image).astype(np.float64)  # [H, W]
    if image.mode == "F":
        # Float images in [0, 1] are scaled up; anything else is read as 0..255 intensities.
        peak = float(pixels.max()) if pixels.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
    elif image.mode.startswith("I;16"):
        scale = 255.0 / 65535.0
    else:
        # Mode "I" holds 16-bit PNGs in older Pillow versions; values above 255 mean a 16-bit range.
        peak = float(pixels.max()) if pixels.size else 0.0
        scale = 255.0 / 65535.0 if peak > 255 else 1.0
    gray = np.clip(np.rint(pixels * scale), 0, 255).astype(np.uint8)  # [H, W]
    return Image.fromarray(gray).convert("RGB")


def default_image_transform(size: int = 224) -> ImageTransform:
    """Resize to ``size x size``, convert to a ``[3, H, W]`` float tensor, normalise with ImageNet
    statistics: the preprocessing used when no image encoder has provided its own ``transforms()``."""
    return resize_normalize(size, IMAGENET_MEAN, IMAGENET_STD)


class ToRGB:
    """Convert any PIL image (grey, RGBA, palette) to RGB; tensors and ``tv_tensors`` pass through (their
    channels are the caller's). A class, not a lambda, so it pickles to DataLoader workers."""

    def __call__(self, image: Any) -> Any:
        if isinstance(image, Image.Image) and image.mode != "RGB":
            return image.convert("RGB")
        return image

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ToUnitFloat:
    """A uint8 image ``[3, H, W]`` -> float32 in ``[0, 1]``, divided by 255 exactly as the classic
    ``transforms.ToTensor`` does (``v2.ToDtype(torch.float32, scale=True)`` multiplies by ``1/255``, which
    differs in the last bit for a few values, and would move every figure measured so far). Float input
    is only cast. Returns a plain tensor (no ``tv_tensors.Image`` subclass), as batches are."""

    def __call__(self, image: Tensor) -> Tensor:
        pixels = image.as_subclass(Tensor)  # [3, H, W]
        return pixels.float().div(255) if pixels.dtype == torch.uint8 else pixels.float()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def resize_normalize(image_size: int, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """An image (PIL, or a ``[3, H, W]`` uint8 tensor / ``tv_tensors.Image``) -> ``[3, S, S]`` float
    tensor, with torchvision's ``transforms.v2``: resize the *whole* image (no crop), to a tensor in
    ``[0, 1]``, normalise.

    Captions and questions talk about the whole image, so nothing is cropped away; the aspect ratio is
    not kept (the CNN grid then covers the full picture, which is what attention maps are drawn over).
    A PIL image is resized by PIL (as the classic ``transforms`` did); the output is bitwise that of the
    classic ``Resize, ToTensor, Normalize`` pipeline (``tests/test_image_encoders.py``).
    """
    return v2.Compose(
        [
            ToRGB(),
            v2.Resize((image_size, image_size), interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
            v2.ToImage(),
            ToUnitFloat(),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )
