"""What every tab of ``vltk serve`` shares: Gradio on demand, uploads read safely, errors shown in the page,
and words coloured by attention.

The tabs themselves live beside their task (``tasks/<task>/demo.py``, the ``demo`` of its
:class:`~vltk.tasks.TaskEntry`); the app that holds them is :mod:`vltk.tasks.serve`. Each tab is a class
whose computing methods take and return plain Python, PIL images and HTML (tested without a browser) and
whose ``build(gr)`` lays out the Gradio components and wires their events to those methods.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vltk.data.images import load_image
from vltk.errors import VltkError
from vltk.viz.rnn_activations import activation_spans

logger = logging.getLogger(__name__)

DEMO_EXTRA = "vltk[demo]"
MAX_UPLOAD_MB = 20
"""Uploads larger than this are refused (by Gradio before they are stored, and again here)."""
MAX_UPLOAD_PIXELS = 40_000_000
"""Pictures with more pixels than this (e.g. 8000 x 5000) are refused before they are decoded."""


def require_gradio() -> Any:
    """The ``gradio`` module, or one line naming the extra that installs it."""
    try:
        import gradio
    except ImportError:
        raise VltkError(
            f"vltk serve needs Gradio, which is not installed: pip install '{DEMO_EXTRA}' "
            "(or pip install -e '.[demo]' in a clone)"
        ) from None
    return gradio


class PageError(VltkError):
    """A problem with what the user gave the page (shown in the page, not as a server error)."""


def read_upload(path: str | Path | None, *, max_mb: float = MAX_UPLOAD_MB) -> Image.Image:
    """The uploaded picture as RGB (grey, palette and transparent images converted as everywhere in vltk),
    or a :class:`PageError` naming the file: nothing uploaded, too large, too many pixels, not an image."""
    if path is None or str(path) == "":
        raise PageError("upload an image first")
    path = Path(path)
    name = path.name
    size_mb = path.stat().st_size / 2**20 if path.is_file() else 0.0
    if size_mb > max_mb:
        raise PageError(f"{name} is {size_mb:.1f} MB; the demo takes images up to {max_mb:g} MB")
    try:
        with Image.open(path) as header:  # reads the header only
            width, height = header.size
    except Exception:  # noqa: BLE001 - load_image below names the problem
        width = height = 0
    if width * height > MAX_UPLOAD_PIXELS:
        raise PageError(
            f"{name} is {width} x {height} pixels; the demo takes images up to "
            f"{MAX_UPLOAD_PIXELS / 1e6:g} megapixels"
        )
    try:
        return load_image(path)
    except VltkError as error:
        raise PageError(str(error).replace(str(path), name)) from None


def shows_errors(gr: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap an event handler so that a user error becomes a message in the page (``gr.Error``) and any
    other exception one line (type and message; the traceback goes to the server's log), never a stack
    trace in the page."""

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except VltkError as error:
                raise gr.Error(str(error), duration=None, title="vltk", print_exception=False) from None
            except Exception as error:  # noqa: BLE001 - a bug: logged, and one line in the page
                logger.exception("vltk serve: %s failed", handler.__name__)
                message = " ".join(str(error).split())[:300]
                raise gr.Error(
                    f"internal error ({type(error).__name__}: {message}); the server log has the details",
                    duration=None,
                    title="vltk",
                    print_exception=False,  # logged above, with the traceback
                ) from None

        return wrapper

    return decorate


def _shade(weight: float, top: float) -> str:
    """White at zero to deep red at the step's largest weight."""
    x = weight / top if top > 0 else 0.0
    level = int(round(255 - 200 * min(max(x, 0.0), 1.0)))
    return f"rgb(255,{level},{level})"


def weighted_words_html(words: Sequence[str], weights: Sequence[float] | np.ndarray | None) -> str:
    """``words`` as HTML, each on a background shaded by its weight relative to the largest (the same
    shading as ``vltk predict --gif``); the weight is the word's tooltip."""
    values = [float(w) for w in weights[: len(words)]] if weights is not None else []
    values += [0.0] * (len(words) - len(values))
    top = max(values, default=0.0)
    spans = [
        f'<span class="vltk-word" style="background:{_shade(value, top)};padding:1px 3px;margin:1px;'
        f'border-radius:3px" title="{value:.3f}">{html.escape(word)}</span>'
        for word, value in zip(words, values)
    ]
    return f'<div class="vltk-words" style="line-height:2">{" ".join(spans)}</div>'


def activation_text_html(
    symbols: Sequence[str], values: Sequence[float] | np.ndarray, separator: str = ""
) -> str:
    """``symbols`` (characters, or words with ``separator=" "``) coloured by one unit's signed activation
    after each (:func:`vltk.viz.rnn_activations.activation_spans`: red positive, blue negative)."""
    spans = activation_spans(symbols, np.asarray(values, dtype=np.float64), separator)
    return (
        '<div class="vltk-activations" style="font-family:monospace;white-space:pre-wrap;line-height:1.6">'
        f"{spans}</div>"
    )
