"""When did the captioner look? One bar per generated word of ``1 - beta``, the probability that the word came
from the image rather than from the visual sentinel.

The plot of Lu, Xiong, Parikh and Socher 2017, *Knowing When to Look* (the visual grounding probability
under each word of a caption): the adaptive decoder's sentinel weight ``beta_t`` is high on words such as
"of" or "a", which the language model knows, and low on visual words ("dog", "red"). Drawn with
matplotlib's object API on an Agg canvas, like :mod:`vltk.viz.attention_map`, so no pyplot state or display
is touched.

Where ``beta`` comes from: ``DecoderOutput.gates`` ``[B, T]`` of teacher forcing holds it per word, and a
decoding trace (``DecodeResult.attention`` ``[B, L, N]``) keeps the region weights, which for the adaptive
decoder sum to ``1 - beta``: :func:`sentinel_weights` turns one caption's trace back into ``beta``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from vltk.viz.attention_map import write_png

logger = logging.getLogger(__name__)

TOLERANCE = 1e-4
"""How far outside ``[0, 1]`` a weight may fall (float rounding of a softmax) before it is refused."""


def _as_array(values: Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.detach().to(device="cpu", dtype=torch.float32).numpy()
    return np.asarray(values, dtype=np.float32)


def sentinel_weights(attention: Tensor | np.ndarray) -> np.ndarray:
    """``beta`` ``[L]`` of one caption from its region weights ``[L, N]``: ``1 - sum_n attention[t, n]``.

    Only meaningful for a decoder whose region weights and sentinel weight sum to one (``adaptive``); the
    weights of other attention decoders sum to one by themselves, which reads as ``beta = 0``.
    """
    weights = _as_array(attention)
    if weights.ndim != 2:
        raise ValueError(f"attention must be [L, N] (one row per word), got shape {weights.shape}")
    return (1.0 - weights.sum(axis=1)).clip(0.0, 1.0)  # [L]


def save_sentinel_plot(
    words: Sequence[str],
    beta: Tensor | np.ndarray | Sequence[float],
    path: str | Path,
    *,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Save, for one caption, a bar per generated word of its visual grounding probability ``1 - beta``.

    Args:
        words: the ``L`` generated words, one per decoding step.
        beta: ``[L]`` the sentinel weight of each word (``DecoderOutput.gates[b, :L]`` of the adaptive
            decoder, or :func:`sentinel_weights` of a decoding trace), each in ``[0, 1]``.
        path: output file; parent directories are created; written as PNG.
        title: the figure's title; by default the caption.
        dpi: resolution of the PNG.

    Returns:
        The path written.

    Raises:
        ValueError: when ``beta`` is not one value per word, or a value lies outside ``[0, 1]``.
    """
    values = _as_array(beta)
    if values.ndim != 1:
        raise ValueError(f"beta must be [L] (one sentinel weight per word), got shape {values.shape}")
    if values.shape[0] != len(words):
        raise ValueError(
            f"beta has {values.shape[0]} values but there are {len(words)} words; pass one sentinel "
            "weight per generated word"
        )
    if len(words) == 0:
        raise ValueError("no words to plot: the caption is empty")
    if not np.all(np.isfinite(values)) or values.min() < -TOLERANCE or values.max() > 1.0 + TOLERANCE:
        raise ValueError(
            f"beta must lie in [0, 1] (a sentinel weight), got values from {values.min():.4g} to "
            f"{values.max():.4g}"
        )
    if dpi < 1:
        raise ValueError(f"dpi must be positive, got {dpi}")
    grounding = 1.0 - values.clip(0.0, 1.0)  # [L]

    positions = np.arange(len(words))
    figure = Figure(figsize=(max(4.0, 0.6 * len(words) + 1.5), 3.2), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.bar(positions, grounding, width=0.7, color="tab:blue")
    axes.plot(positions, grounding, color="tab:orange", marker="o", linewidth=1.0)
    axes.set_xticks(positions)
    axes.set_xticklabels([str(word) for word in words], rotation=45, ha="right")
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel("1 - beta (looked at the image)")
    axes.set_title(" ".join(str(word) for word in words) if title is None else title, fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path = write_png(figure, path, dpi)
    logger.info("wrote the sentinel plot of %d words to %s", len(words), path)
    return path
