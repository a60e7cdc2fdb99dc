"""Pictures for people: attention maps over images (Xu et al. 2015, Show, Attend and Tell, Fig. 3-5)."""

from __future__ import annotations

from vltk.viz.attention_map import overlay_attention, save_attention_map, upsample_attention

__all__ = ["overlay_attention", "save_attention_map", "upsample_attention"]
