"""Seeing inside a trained RNN: every unit's activation over a text, cells that track something, pictures.

After Karpathy, Johnson & Fei-Fei 2016, "Visualizing and Understanding Recurrent Networks" (Section 4.2,
Fig. 2): run a char-level model over a text, colour each character by one cell's activation, and look for
cells that track long-range structure. Here the search is explicit: every unit's activation sequence is
correlated (Pearson) with simple properties of the text -- inside a string literal, position in the line,
indentation of the line, inside a comment, bracket depth -- and the best units are drawn as rows of coloured
characters (HTML and PNG). For an LSTM the cell state ``c`` is read by default (the paper shows
``tanh(c)``); the other cells expose their hidden state ``h``.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)


def text_features(text: str) -> dict[str, np.ndarray]:
    """Per character of ``text``: ``in_quotes`` (inside '...' or "..." on the line), ``line_position``
    (column), ``indentation`` (leading whitespace of the line, a tab counts 8), ``in_comment`` (Python ``#``
    and C ``//`` to the end of the line, C ``/* ... */`` across lines; ``#define``/``#include`` are not
    comments), ``bracket_depth`` (open ``([{``)."""
    n = len(text)
    quotes, column, indent, comment, depth = (np.zeros(n) for _ in range(5))
    quote: str | None = None
    col, line_indent, brackets = 0, 0, 0
    leading, line_comment, block_comment, escaped = True, False, False, False
    for i, ch in enumerate(text):
        nxt = text[i + 1] if i + 1 < n else ""
        if ch == "\n":
            quote, line_comment, escaped = None, False, False
            col, line_indent, leading = 0, 0, True
            comment[i], depth[i] = float(block_comment), brackets
            continue
        first_on_line = leading and ch not in " \t"
        if leading and ch in " \t":
            line_indent += 1 if ch == " " else 8  # a tab counts as a tab stop of 8
        elif leading:
            leading = False
        column[i] = col
        indent[i] = line_indent
        if quote is not None:
            quotes[i] = 1
            if ch == quote and not escaped:
                quote = None
            escaped = ch == "\\" and not escaped
        elif block_comment:
            comment[i] = 1
            if ch == "/" and i > 0 and text[i - 1] == "*":
                block_comment = False
        elif line_comment:
            comment[i] = 1
        elif ch in "'\"":
            quote = ch
            quotes[i] = 1
        elif (ch == "#" and not (first_on_line and nxt.isalpha())) or (ch == "/" and nxt == "/"):
            line_comment = True
            comment[i] = 1
        elif ch == "/" and nxt == "*":
            block_comment = True
            comment[i] = 1
        elif ch in "([{":
            brackets += 1
        elif ch in ")]}":
            brackets = max(brackets - 1, 0)
        depth[i] = brackets
        col += 1
    return {
        "in_quotes": quotes,
        "line_position": column,
        "indentation": indent,
        "in_comment": comment,
        "bracket_depth": depth,
    }


@torch.no_grad()
def record_activations(model, ids: torch.Tensor, state: str = "auto") -> np.ndarray:
    """Run ``model`` (an :class:`vltk.tasks.lm.model.RNNLanguageModel`) over ``ids [T]`` one step at a time.

    Args:
        state: ``c`` (LSTM cell state), ``h`` (hidden state) or ``auto`` (``c`` for an LSTM, else ``h``).

    Returns:
        ``[T, L * H]`` activations after reading each symbol, layers side by side (unit ``l * H + j``).
    """
    model.eval()
    index = 1 if (state == "c" or (state == "auto" and model.rnn.state_size == 2)) else 0
    if index >= model.rnn.state_size:
        index = 0
    inputs = model.embed(ids.view(1, -1))  # [1, T, E]
    carried = model.init_state(1, ids.device)
    steps = []
    for t in range(ids.shape[0]):
        _, carried = model.rnn(inputs[:, t : t + 1], carried)
        steps.append(carried[index][:, 0].reshape(-1))  # [L * H]
    return torch.stack(steps).float().cpu().numpy()  # [T, L * H]


@dataclass
class CellMatch:
    """A unit whose activation correlates with a property of the text."""

    feature: str
    unit: int
    correlation: float


def correlation_search(
    activations: np.ndarray, features: dict[str, np.ndarray], top: int = 3
) -> list[CellMatch]:
    """The ``top`` units by |Pearson r| for every feature (features that never vary are skipped).

    Args:
        activations: ``[T, U]`` from :func:`record_activations`.
        features: name -> ``[T]`` from :func:`text_features`.
    """
    a = activations - activations.mean(axis=0)  # [T, U]
    a_norm = np.sqrt((a * a).sum(axis=0)) + 1e-12  # [U]
    matches = []
    for name, values in features.items():
        f = values - values.mean()
        f_norm = np.sqrt((f * f).sum())
        if f_norm < 1e-12:
            continue
        r = (a * f[:, None]).sum(axis=0) / (a_norm * f_norm)  # [U]
        for unit in np.argsort(-np.abs(r))[:top]:
            matches.append(CellMatch(name, int(unit), float(r[unit])))
    return matches


def diverging_colour(value: float, scale: float) -> str:
    """Blue for negative, red for positive, white at zero (the paper's palette), ``value / scale`` in
    ``[-1, 1]``."""
    x = max(-1.0, min(1.0, value / scale))
    if x >= 0:
        return f"rgb(255,{int(255 * (1 - x))},{int(255 * (1 - x))})"
    return f"rgb({int(255 * (1 + x))},{int(255 * (1 + x))},255)"


def _scale(row: np.ndarray) -> float:
    return float(max(np.abs(row).max(initial=0.0), 1e-6))


def activation_spans(symbols: Sequence[str], row: np.ndarray, separator: str = "") -> str:
    """HTML spans of ``symbols`` (characters, or words with ``separator=" "``), each coloured by its value
    in ``row [T]`` (:func:`diverging_colour`, scaled to the row's largest magnitude) with the value as its
    tooltip; a newline shows as a return arrow and a line break."""
    scale = _scale(row)
    return separator.join(
        f'<span style="background:{diverging_colour(float(v), scale)}" title="{v:+.3f}">'
        f"{'&#8629;<br>' if symbol == chr(10) else html.escape(symbol)}</span>"
        for symbol, v in zip(symbols, row)
    )


def activations_html(text: str, activations: np.ndarray, matches: list[CellMatch], title: str = "") -> str:
    """A page with one block per matched unit: the text, each character coloured by that unit's value."""
    blocks = []
    for match in matches:
        spans = activation_spans(text, activations[:, match.unit])
        blocks.append(
            f"<h2>unit {match.unit}: {html.escape(match.feature)} (r = {match.correlation:+.2f})</h2>"
            f'<div class="text">{spans}</div>'
        )
    rows = "".join(
        f"<tr><td>{html.escape(m.feature)}</td><td>{m.unit}</td><td>{m.correlation:+.3f}</td></tr>"
        for m in matches
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title or "RNN cell activations")}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}
.text{{font-family:monospace;white-space:pre-wrap;line-height:1.5;border:1px solid #ccc;padding:6px}}
td,th{{padding:2px 10px}}</style></head><body>
<h1>{html.escape(title or "RNN cell activations")}</h1>
<p>Each block colours the text by one unit's activation after reading each character (red positive, blue
negative, scaled to the unit's largest magnitude). Units were chosen by their Pearson correlation with a
property of the text (Karpathy, Johnson &amp; Fei-Fei 2016).</p>
<table><tr><th>property</th><th>unit</th><th>r</th></tr>{rows}</table>
{"".join(blocks)}
</body></html>
"""


def save_activation_png(
    text: str,
    activations: np.ndarray,
    match: CellMatch,
    path: str | Path,
    columns: int = 80,
    max_lines: int = 24,
) -> Path:
    """One unit over (the start of) the text as a grid of coloured characters, lines as in the text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap

    row = activations[:, match.unit]
    scale = _scale(row)
    grid = np.full((max_lines, columns), np.nan)
    chars: list[tuple[int, int, str]] = []
    line, col = 0, 0
    for ch, value in zip(text, row):
        if line >= max_lines:
            break
        if col < columns:
            grid[line, col] = value / scale
            if ch != "\n":
                chars.append((line, col, "\u2192" if ch == "\t" else ch))  # a tab drawn as an arrow
        if ch == "\n":
            line, col = line + 1, 0
        else:
            col += 1
    cmap = LinearSegmentedColormap.from_list("bwr", ["#3b4cc0", "#ffffff", "#d62728"]).with_extremes(
        bad="#f4f4f4"
    )
    fig, ax = plt.subplots(figsize=(columns * 0.12, max_lines * 0.22 + 0.6))
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    for y, x, ch in chars:
        ax.text(x, y, ch, ha="center", va="center", fontsize=7, family="monospace")
    ax.set_axis_off()
    ax.set_title(f"unit {match.unit}: {match.feature} (r = {match.correlation:+.2f})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
