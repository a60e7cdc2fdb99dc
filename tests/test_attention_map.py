"""Attention-map pictures: PNG written with one panel per word; overlays; clear errors on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vltk.viz import overlay_attention, save_attention_map, upsample_attention


def _image() -> Image.Image:
    torch.manual_seed(0)
    pixels = (torch.rand(48, 80, 3) * 255).to(torch.uint8).numpy()
    return Image.fromarray(pixels)


def test_writes_png_with_a_panel_per_word(tmp_path: Path) -> None:
    torch.manual_seed(0)
    attention = torch.softmax(torch.randn(3, 64), dim=-1)  # [L, N]
    out = save_attention_map(
        _image(),
        ["a", "red", "square"],
        attention,
        (8, 8),
        tmp_path / "deep" / "dir" / "map.png",
        panel_size=100,
    )
    assert out == tmp_path / "deep" / "dir" / "map.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as picture:
        width, height = picture.size
    # 4 panels (<start> + 3 words) in one row of 100-px-wide images, one row high.
    assert 4 * 100 <= width <= 4 * 100 * 1.3
    assert 100 * 48 / 80 <= height <= 250


def test_columns_wrap_panels_into_rows(tmp_path: Path) -> None:
    attention = np.full((5, 4), 0.25, dtype=np.float32)
    out = save_attention_map(_image(), list("abcde"), attention, (2, 2), tmp_path / "m.png", columns=2)
    with Image.open(out) as picture:
        width, height = picture.size
    assert height > width  # 6 panels in 3 rows of 2 (panels 224x134 px)


def test_mismatched_words_and_attention_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3 rows.*2 words"):
        save_attention_map(_image(), ["a", "b"], torch.rand(3, 64), (8, 8), tmp_path / "x.png")
    with pytest.raises(ValueError, match="grid_size"):
        save_attention_map(_image(), ["a", "b"], torch.rand(2, 60), (8, 8), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_upsample_puts_the_peak_where_the_attention_is() -> None:
    weights = torch.zeros(4 * 4)
    weights[1 * 4 + 3] = 1.0  # row 1, column 3
    heat = upsample_attention(weights, (4, 4), (40, 40), smooth=False)
    assert heat.shape == (40, 40)
    assert heat.max() == pytest.approx(1.0)
    assert heat[10:20, 30:40].min() == pytest.approx(1.0)
    assert heat[:10].max() == 0.0 and heat[:, :30].max() == 0.0
    smooth = upsample_attention(weights, (4, 4), (40, 40), smooth=True)
    row, col = np.unravel_index(smooth.argmax(), smooth.shape)
    assert 10 <= row < 20 and 30 <= col < 40
    assert 0.0 < smooth[15, 25] < 1.0  # bilinear spreads into the neighbouring cell


def test_overlay_blends_image_and_heat() -> None:
    image = _image()
    weights = torch.rand(6)
    blended = overlay_attention(image, weights, (2, 3), alpha=0.5)
    assert blended.shape == (48, 80, 3) and blended.dtype == np.uint8
    assert np.array_equal(overlay_attention(image, weights, (2, 3), alpha=0.0), np.asarray(image))
    assert not np.array_equal(blended, np.asarray(image))
