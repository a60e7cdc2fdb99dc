"""Pictures of where an attention decoder looked while it generated each word.

The figure of Xu et al. 2015, *Show, Attend and Tell* (Fig. 3-5), in the layout popularised by
sgrvinod/a-PyTorch-Tutorial-to-Image-Captioning: one panel per word, each the image under its attention
map upsampled from the CNN grid to the image size, the word as the panel title. Drawn with matplotlib's
object API on an Agg canvas, so no pyplot state or display is touched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

logger = logging.getLogger(__name__)


def attention_map_path(base: Path, index: int, count: int) -> Path:
    """``att.png`` for one image; ``att-0.png``, ``att-1.png``, ... for several."""
    return base if count == 1 else base.with_name(f"{base.stem}-{index}{base.suffix or '.png'}")


def _as_array(attention: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(attention, Tensor):
        return attention.detach().to(device="cpu", dtype=torch.float32).numpy()
    return np.asarray(attention, dtype=np.float32)


def resize_panel(image: Image.Image, panel_size: int) -> Image.Image:
    """RGB copy of ``image`` with its longer side scaled to ``panel_size`` (aspect ratio kept)."""
    image = image.convert("RGB")
    scale = panel_size / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def upsample_attention(
    weights: Tensor | np.ndarray, grid_size: tuple[int, int], size: tuple[int, int], *, smooth: bool = True
) -> np.ndarray:
    """Attention over ``N = H' * W'`` regions -> a ``[height, width]`` map in ``[0, 1]``.

    Args:
        weights: ``[N]`` attention weights of one step (row-major over the grid, like ``ImageFeatures``).
        grid_size: ``(H', W')`` of the encoder grid.
        size: ``(width, height)`` of the output, PIL order.
        smooth: bilinear upsampling (the smooth look of the paper's figures); ``False`` shows the cells.

    The map is scaled by its maximum, so the most attended region is 1 and the picture is readable even
    when the weights are spread over many regions.
    """
    rows, cols = grid_size
    values = _as_array(weights).reshape(-1)  # [N]
    if values.size != rows * cols:
        raise ValueError(f"attention has {values.size} regions but grid_size {grid_size} has {rows * cols}")
    grid = torch.from_numpy(values).clamp(min=0.0).view(1, 1, rows, cols)  # [1, 1, H', W']
    width, height = size
    if smooth:
        upsampled = F.interpolate(
            grid, size=(height, width), mode="bilinear", align_corners=False
        )  # [1, 1, height, width]
    else:
        upsampled = F.interpolate(grid, size=(height, width), mode="nearest")  # [1, 1, height, width]
    upsampled = upsampled[0, 0]  # [height, width]
    return (upsampled / upsampled.max().clamp(min=1e-12)).numpy()  # [height, width]


def overlay_attention(
    image: Image.Image,
    weights: Tensor | np.ndarray,
    grid_size: tuple[int, int],
    *,
    smooth: bool = True,
    alpha: float = 0.6,
    cmap: str = "jet",
) -> np.ndarray:
    """``image`` blended with the colour-mapped attention of one step, as a ``[H, W, 3]`` uint8 array.

    Args:
        image: the picture (any PIL mode; shown at its own size).
        weights: ``[N]`` attention weights over the grid.
        grid_size: ``(H', W')`` of the encoder grid.
        smooth: bilinear (``True``) or nearest (``False``) upsampling of the map.
        alpha: opacity of the heat map.
        cmap: a matplotlib colormap name.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0  # [H, W, 3]
    heat = upsample_attention(weights, grid_size, image.size, smooth=smooth)  # [H, W]
    colours = colormaps[cmap](heat)[..., :3].astype(np.float32)  # [H, W, 3]
    blended = (1.0 - alpha) * rgb + alpha * colours  # [H, W, 3]
    return (blended.clip(0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_attention_map(
    image: Image.Image,
    words: Sequence[str],
    attention: Tensor | np.ndarray,
    grid_size: tuple[int, int],
    path: str | Path,
    *,
    columns: int = 5,
    smooth: bool = True,
    alpha: float = 0.6,
    cmap: str = "jet",
    panel_size: int = 224,
    dpi: int = 100,
) -> Path:
    """Save one panel per generated word, each the image under that step's attention, as a PNG.

    The first panel is the plain image titled ``<start>``; panel ``i + 1`` shows ``attention[i]`` with
    ``words[i]`` as its title.

    Args:
        image: the input image (the whole image: encoders resize it without cropping, so the grid covers it).
        words: the ``L`` generated words, one per decoding step.
        attention: ``[L, N]`` attention weights, ``N = H' * W'``.
        grid_size: ``(H', W')`` of the encoder grid (``ImageFeatures.grid_size``).
        path: output file; parent directories are created; written as PNG.
        columns: panels per row.
        smooth: bilinear (``True``) or nearest (``False``) upsampling of the maps.
        alpha: opacity of the heat maps.
        cmap: a matplotlib colormap name.
        panel_size: the image's longer side in each panel, in pixels.
        dpi: resolution of the PNG.

    Returns:
        The path written.
    """
    weights = _as_array(attention)
    if weights.ndim == 1 and len(words) == 1:
        weights = weights[None, :]  # [1, N]
    if weights.ndim != 2:
        raise ValueError(f"attention must be [L, N] (one row per word), got shape {weights.shape}")
    if weights.shape[0] != len(words):
        raise ValueError(
            f"attention has {weights.shape[0]} rows (steps) but there are {len(words)} words; "
            "pass one row of attention per word"
        )
    rows_n, cols_n = grid_size
    if weights.shape[1] != rows_n * cols_n:
        raise ValueError(
            f"attention has {weights.shape[1]} regions per step but grid_size {tuple(grid_size)} "
            f"has {rows_n * cols_n}"
        )
    if columns < 1 or panel_size < 1:
        raise ValueError(f"columns and panel_size must be positive, got {columns} and {panel_size}")
    picture = resize_panel(image, panel_size)
    panels = [("<start>", np.asarray(picture))]
    for word, row in zip(words, weights, strict=True):
        panels.append(
            (str(word), overlay_attention(picture, row, grid_size, smooth=smooth, alpha=alpha, cmap=cmap))
        )

    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    inch_w, inch_h = picture.width / dpi, picture.height / dpi
    figure = Figure(figsize=(columns * inch_w * 1.05, rows * (inch_h * 1.05 + 0.35)), dpi=dpi)
    FigureCanvasAgg(figure)
    for index, (title, pixels) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.imshow(pixels)
        axes.set_title(title, fontsize=12)
        axes.set_axis_off()
    figure.tight_layout()
    path = write_png(figure, path, dpi)
    logger.info("wrote attention map for %d words to %s", len(words), path)
    return path


def write_png(figure, path: str | Path, dpi: int) -> Path:
    """Save a matplotlib figure as PNG at ``path`` (parent folders created) and free its artists."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=dpi)
    figure.clear()
    return path
