"""VQA models: a shared image encoder, an RNN question encoder and an answer head (a classifier).

The ``model:`` section of a vqa config is a :class:`VqaModelConfig`::

    name: attention                   # a key of VQA_MODELS: attention | cnn_lstm | stacked_attention
    use_image: true                   # false zeroes the image features (the question-only ablation)
    encoder: {name: small_cnn, ...}   # a spec for vltk.encoders.IMAGE_ENCODERS
    text: {name: rnn, ...}            # a spec for vltk.encoders.TEXT_ENCODERS (vocab_size/pad_id wired)
    head: {glimpses: 2, ...}          # the head's own options (its dimensions are wired)

``attention`` is Kazemi & Elqursh 2017 (*Show, Ask, Attend, and Answer*), ``cnn_lstm`` the "deeper LSTM
Q + norm I" baseline of Antol et al. 2015 (*VQA: Visual Question Answering*), ``stacked_attention`` Yang
et al. 2016 (*Stacked Attention Networks*); see :mod:`vltk.tasks.vqa.heads`.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vltk.config import Renamed, from_dict, options_field, spec_field
from vltk.encoders import IMAGE_ENCODERS, TEXT_ENCODERS
from vltk.registry import Registry, build
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
HEAD_WIRED = ("image_dim", "question_dim", "num_answers")
TEXT_WIRED = ("vocab_size", "pad_id")
DEFAULT_TEXT = {"name": "rnn", "embed_dim": 300, "hidden_dim": 512}


@dataclass
class VqaModelConfig:
    """The ``model:`` section of a vqa config.

    Attributes:
        name: the answer head, a key of :data:`VQA_MODELS`.
        use_image: ``false`` zeroes the image features (the question-only ablation).
        encoder: a spec of :data:`vltk.encoders.IMAGE_ENCODERS`.
        text: a spec of :data:`vltk.encoders.TEXT_ENCODERS` (the question encoder).
        head: the options of head ``name`` (its dimensions are wired).
    """

    RENAMED: ClassVar[dict[str, Renamed]] = {"blind": Renamed("use_image", operator.not_)}

    name: str = "attention"
    use_image: bool = True
    encoder: dict = spec_field(IMAGE_ENCODERS, {"name": "small_cnn"})
    text: dict = spec_field(TEXT_ENCODERS, DEFAULT_TEXT, wired=TEXT_WIRED)
    head: dict = options_field(VQA_MODELS, wired=HEAD_WIRED)


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
        use_image: ``False`` zeroes the image features (ablation: how well does the question alone answer?).
    """

    def __init__(
        self, encoder: nn.Module, text_encoder: nn.Module, head: nn.Module, *, use_image: bool = True
    ):
        super().__init__()
        self.encoder = encoder
        self.text_encoder = text_encoder
        self.head = head
        self.use_image = use_image

    def encode(self, images: Tensor) -> ImageFeatures:
        features = self.encoder(images)  # grid [U, N, D], pooled [U, D]
        if not self.use_image:
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


def build_vqa_model(
    spec: VqaModelConfig | Mapping[str, Any], *, vocab_size: int, num_answers: int, pad_id: int = 0
) -> VqaModel:
    """Build a :class:`VqaModel` from its config.

    Args:
        spec: the ``model:`` section, a :class:`VqaModelConfig` or a mapping (partial, or a checkpoint's
            resolved section, old spellings included).
        vocab_size: the question vocabulary's size.
        num_answers: the answer vocabulary's size.
        pad_id: the question vocabulary's padding id.
    """
    if not isinstance(spec, VqaModelConfig):
        spec = from_dict(VqaModelConfig, spec, "model", old_keys=True)
    encoder = build(IMAGE_ENCODERS, spec.encoder, path="model.encoder")
    text_encoder = build(TEXT_ENCODERS, spec.text, path="model.text", vocab_size=vocab_size, pad_id=pad_id)
    head = build(
        VQA_MODELS,
        {"name": spec.name, **spec.head},
        path="model.head",
        image_dim=encoder.out_dim,
        question_dim=text_encoder.out_dim,
        num_answers=num_answers,
    )
    return VqaModel(encoder, text_encoder, head, use_image=spec.use_image)
