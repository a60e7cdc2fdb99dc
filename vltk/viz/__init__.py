"""Pictures for people: attention maps over images (Xu et al. 2015, Show, Attend and Tell, Fig. 3-5)."""

from __future__ import annotations

from vltk.viz.attention_map import overlay_attention, save_attention_map, upsample_attention
from vltk.viz.sentinel import save_sentinel_plot, sentinel_weights

__all__ = [
    "overlay_attention",
    "save_attention_map",
    "save_sentinel_plot",
    "sentinel_weights",
    "upsample_attention",
]
