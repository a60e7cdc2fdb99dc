"""Assembled networks with explicit ``build_*`` functions, and trained models ready for inference."""

from vltk.models.captioner import Captioner, build_captioner, resolve_captioner_spec
from vltk.models.pretrained import (
    PRETRAINED_LOADERS,
    PretrainedAgent,
    PretrainedCaptioner,
    PretrainedLanguageModel,
    PretrainedVqa,
    build_pretrained,
    load_captioner,
)

__all__ = [
    "Captioner",
    "build_captioner",
    "resolve_captioner_spec",
    "PRETRAINED_LOADERS",
    "PretrainedAgent",
    "PretrainedCaptioner",
    "PretrainedLanguageModel",
    "PretrainedVqa",
    "build_pretrained",
    "load_captioner",
]
