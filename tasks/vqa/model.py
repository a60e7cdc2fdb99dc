"""VQA models: a shared image encoder, an RNN question encoder and an answer head (a classifier).

A VQA model spec (the ``model:`` section of a vqa config)::

    name: attention                   # a key of VQA_MODELS: attention | cnn_lstm | stacked_attention
    blind: false                      # true zeroes the image features (the question-only ablation)
    encoder: {name: small_cnn, ...}   # a spec for vltk.encoders.IMAGE_ENCODERS
    text: {name: rnn, ...}            # a spec for vltk.encoders.TEXT_ENCODERS (vocab_size/pad_id wired)
    head: {glimpses: 2, ...}          # the head's own options (its dimensions are wired)

``attention`` is Kazemi & Elqursh 2017 (*Show, Ask, Attend, and Answer*), ``cnn_lstm`` the "deeper LSTM
Q + norm I" baseline of Antol et al. 2015 (*VQA: Visual Question Answering*), ``stacked_attention`` Yang
et al. 2016 (*Stacked Attention Networks*); see :mod:`vltk.tasks.vqa.heads`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vltk.encoders import IMAGE_ENCODERS, TEXT_ENCODERS
from vltk.errors import ConfigError, closest
from vltk.registry import Registry, build, resolved_spec
from vltk.tasks.vqa.heads import GlimpseAttentionHead, PointwiseFusionHead, StackedAttentionHead
from vltk.types import ImageFeatures

VQA_MODELS = Registry(
    "vqa model",
    {
        "attention": GlimpseAttentionHead,
        "cnn_lstm": PointwiseFusionHead,
        "stacked_attention": StackedAttentionHead,
    },
)
VQA_MODEL_KEYS = ("name", "blind", "encoder", "text", "head")
HEAD_WIRED = ("image_dim", "question_dim", "num_answers")
TEXT_WIRED = ("vocab_size", "pad_id")
DEFAULT_TEXT = {"name": "rnn", "embed_dim": 300, "hidden_dim": 512}


@dataclass
class VqaOutput:
    """What a VQA model returns.

    Attributes:
        logits: ``[B, A]`` answer scores.
        attention: ``[B, G, N]`` attention of each glimpse/hop over the image regions (``None`` for
            models without attention).
        grid_size: ``(H', W')`` of the image grid, to draw attention maps.
    """

    logits: Tensor
    attention: Tensor | None
    grid_size: tuple[int, int] | None


class VqaModel(nn.Module):
    """Image encoder + question encoder + answer head.

    Args:
        encoder: an image encoder (``forward(images) -> ImageFeatures``, ``out_dim``, ``transforms()``).
        text_encoder: a text encoder (``forward(tokens, lengths) -> TextFeatures``, ``out_dim``).
        head: an answer head of :mod:`vltk.tasks.vqa.heads`.
        blind: zero the image features (ablation: how well does the question alone answer?).
    """

    def __init__(self, encoder: nn.Module, text_encoder: nn.Module, head: nn.Module, *, blind: bool = False):
        super().__init__()
        self.encoder = encoder
        self.text_encoder = text_encoder
        self.head = head
        self.blind = blind

    def encode(self, images: Tensor) -> ImageFeatures:
        features = self.encoder(images)  # grid [U, N, D], pooled [U, D]
        if self.blind:
            features = ImageFeatures(
                torch.zeros_like(features.grid), torch.zeros_like(features.pooled), features.mask,
                features.grid_size,
            )  # fmt: skip
        return features

    def forward(self, images: Tensor, image_index: Tensor, questions: Tensor, lengths: Tensor) -> VqaOutput:
        """Answer scores for ``questions [B, T]`` (``lengths [B]``) about ``images [U, 3, H, W]``;
        question ``b`` is about image ``image_index[b]``."""
        features = self.encode(images)  # grid [U, N, D]
        question = self.text_encoder(questions, lengths).final  # [B, H]
        logits, attention = self.head(features.grid, features.pooled, features.mask, image_index, question)
        return VqaOutput(logits, attention, features.grid_size)


def resolve_vqa_spec(spec: Mapping[str, Any], path: str = "model") -> dict[str, Any]:
    """Check a VQA model spec (encoder, text encoder, head) and fill in every default."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{path}: expected a mapping with name/encoder/text/head, got {spec!r}")
    for key in spec:
        if key not in VQA_MODEL_KEYS:
            hint = closest(str(key), VQA_MODEL_KEYS)
            did_you_mean = f"; did you mean '{path}.{hint}'?" if hint else ""
            raise ConfigError(
                f"unknown config key '{path}.{key}'{did_you_mean} (valid keys: {', '.join(VQA_MODEL_KEYS)})"
            )
    name = spec.get("name", "attention")
    encoder = resolved_spec(
        IMAGE_ENCODERS, spec.get("encoder") or {"name": "small_cnn"}, path=f"{path}.encoder",
        what="image encoder",
    )  # fmt: skip
    text = resolved_spec(
        TEXT_ENCODERS, spec.get("text") or DEFAULT_TEXT, path=f"{path}.text", what="text encoder",
        wired=TEXT_WIRED,
    )  # fmt: skip
    head_options = spec.get("head") or {}
    if not isinstance(head_options, Mapping):
        raise ConfigError(f"{path}.head: expected a mapping of the head's options, got {head_options!r}")
    head_options = dict(head_options)
    if "name" in head_options:
        raise ConfigError(f"{path}.head.name: the head is chosen by {path}.name ('{name}')")
    head = resolved_spec(
        VQA_MODELS, {"name": name, **head_options}, path=f"{path}.head", what="vqa model", wired=HEAD_WIRED
    )
    head.pop("name")
    blind = spec.get("blind", False)
    if not isinstance(blind, bool):
        raise ConfigError(f"{path}.blind = {blind!r} has the wrong type: expected bool")
    return {"name": name, "blind": blind, "encoder": encoder, "text": text, "head": head}


def build_vqa_model(
    spec: Mapping[str, Any], *, vocab_size: int, num_answers: int, pad_id: int = 0
) -> VqaModel:
    """Build a :class:`VqaModel` from a (resolved or partial) spec.

    Args:
        spec: the ``model:`` section (see the module docstring).
        vocab_size: the question vocabulary's size.
        num_answers: the answer vocabulary's size.
        pad_id: the question vocabulary's padding id.
    """
    spec = resolve_vqa_spec(spec)
    encoder = build(IMAGE_ENCODERS, spec["encoder"], path="model.encoder")
    text_encoder = build(TEXT_ENCODERS, spec["text"], path="model.text", vocab_size=vocab_size, pad_id=pad_id)
    head = build(
        VQA_MODELS,
        {"name": spec["name"], **spec["head"]},
        path="model.head",
        image_dim=encoder.out_dim,
        question_dim=text_encoder.out_dim,
        num_answers=num_answers,
    )
    return VqaModel(encoder, text_encoder, head, blind=spec["blind"])
