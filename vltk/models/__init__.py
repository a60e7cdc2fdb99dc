"""Assembled networks with explicit ``build_*`` functions."""

from vltk.models.captioner import Captioner, build_captioner, resolve_captioner_spec
from vltk.models.pretrained import PretrainedCaptioner, load_captioner

__all__ = ["Captioner", "build_captioner", "resolve_captioner_spec", "PretrainedCaptioner", "load_captioner"]
