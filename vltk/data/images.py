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

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torchvision import transforms

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
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image, source=str(path))
    except UnidentifiedImageError as error:
        raise DataError(f"{path}: not an image file (or an unsupported format)") from error
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"{path}: cannot decode image ({message})") from error


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
    return transforms.Compose(
        [
            transforms.Resize((size, size), antialias=True),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
