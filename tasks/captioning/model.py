"""The image captioner: a CNN image encoder and an RNN decoder (with or without attention).

``show_tell`` is Vinyals et al. 2015, "Show and Tell: A Neural Image Caption Generator"; ``show_attend_tell``
is Xu et al. 2015, "Show, Attend and Tell: Neural Image Caption Generation with Visual Attention".

The ``model:`` section of a captioning config is a :class:`CaptionerConfig`::

    name: show_attend_tell            # a key of vltk.decoders.DECODERS
    use_image: true                   # false zeroes the image features (ablation)
    encoder: {name: small_cnn, ...}   # a spec for vltk.encoders.IMAGE_ENCODERS
    decoder: {hidden_dim: 512, ...}   # the decoder's own options (its vocab_size/feature_dim are wired)

:func:`build_captioner` wires the decoder's ``feature_dim`` from ``encoder.out_dim`` and its ``vocab_size``
from the vocabulary; neither appears in configs.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vltk.attention import ATTENTIONS
from vltk.config import Component, Renamed, from_dict, options_field, spec_field
from vltk.decoders import DECODERS
from vltk.decoders.base import CaptionDecoder, DecoderOutput
from vltk.decoding import BeamResult, DecodeResult, beam_search, greedy, sample
from vltk.encoders import IMAGE_ENCODERS
from vltk.errors import ConfigError
from vltk.registry import build
from vltk.types import ImageFeatures

DECODER_WIRED = ("vocab_size", "feature_dim", "pad_id")
ATTENTION_WIRED = ("query_dim", "key_dim")


@dataclass
class CaptionerConfig:
    """The ``model:`` section of a captioning config.

    Attributes:
        name: the decoder, a key of :data:`vltk.decoders.DECODERS`.
        encoder: a spec of :data:`vltk.encoders.IMAGE_ENCODERS`.
        decoder: the options of decoder ``name``; its ``attention`` is a spec of
            :data:`vltk.attention.ATTENTIONS`.
        use_image: ``false`` zeroes the image features (ablation: what can the language model alone do?).
        init_from: a captioning checkpoint (``.ckpt``) or ``vltk export`` directory to start training from:
            its network, weights and vocabulary replace this section's (how self-critical training starts
            from a cross-entropy model); ``null`` starts from scratch.
    """

    RENAMED: ClassVar[dict[str, Renamed]] = {"blind": Renamed("use_image", operator.not_)}

    name: str = "show_attend_tell"
    encoder: dict = spec_field(IMAGE_ENCODERS, {"name": "small_cnn"})
    decoder: dict = options_field(
        DECODERS, wired=DECODER_WIRED, nested={"attention": Component(ATTENTIONS, ATTENTION_WIRED)}
    )
    use_image: bool = True
    init_from: str | None = None


class Captioner(nn.Module):
    """Image encoder + caption decoder, with decoding methods for inference.

    Args:
        encoder: an image encoder (``forward(images) -> ImageFeatures``, ``out_dim``, ``transforms()``).
        decoder: a :class:`vltk.decoders.base.CaptionDecoder` whose ``feature_dim`` is ``encoder.out_dim``.
        start_id, end_id, pad_id: special token ids of the vocabulary.
        use_image: ``False`` zeroes the image features (an ablation: how well can the language model alone
            do?).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: CaptionDecoder,
        *,
        start_id: int,
        end_id: int,
        pad_id: int,
        use_image: bool = True,
    ):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.start_id, self.end_id, self.pad_id = start_id, end_id, pad_id
        self.use_image = use_image

    def encode(self, images: Tensor) -> ImageFeatures:
        features = self.encoder(images)  # grid [B, N, D], pooled [B, D]
        if not self.use_image:
            features = replace(
                features, grid=torch.zeros_like(features.grid), pooled=torch.zeros_like(features.pooled)
            )
        return features

    def teacher_forcing(
        self, features: ImageFeatures, captions: Tensor, *, sample_probability: float = 0.0
    ) -> DecoderOutput:
        """Logits for ``captions[:, 1:]`` given ``captions[:, :-1]`` (``captions`` is [B, T]); with
        ``sample_probability > 0``, scheduled sampling feeds the model's own words back at that rate
        (:meth:`vltk.decoders.base.CaptionDecoder.scheduled_sampling`)."""
        if sample_probability > 0.0:
            return self.decoder.scheduled_sampling(features, captions[:, :-1], sample_probability)
        return self.decoder.teacher_forcing(features, captions[:, :-1])  # logits [B, T-1, V]

    @torch.no_grad()
    def generate(
        self,
        features: ImageFeatures,
        *,
        method: str = "beam",
        beam_size: int = 3,
        max_length: int = 20,
        min_length: int = 0,
        length_penalty: float = 0.0,
        block_trigrams: bool = False,
        n_best: int = 1,
        temperature: float = 1.0,
        top_k: int = 0,
        generator: torch.Generator | None = None,
    ) -> DecodeResult | BeamResult:
        """Decode captions for a batch of encoded images with greedy, sampling or beam search."""
        batch_size = features.pooled.shape[0]
        state = self.decoder.init_state(features)
        common = dict(
            batch_size=batch_size,
            bos_id=self.start_id,
            eos_id=self.end_id,
            pad_id=self.pad_id,
            max_length=max_length,
        )
        if method == "greedy":
            return greedy(self.decoder.step, state, **common)
        if method == "sample":
            return sample(
                self.decoder.step, state, **common, temperature=temperature, top_k=top_k, generator=generator
            )
        if method == "beam":
            return beam_search(
                self.decoder.step,
                state,
                **common,
                beam_size=beam_size,
                min_length=min_length,
                length_penalty=length_penalty,
                n_best=n_best,
                block_trigrams=block_trigrams,
            )
        raise ConfigError(f"unknown decoding method '{method}' (choices: beam, greedy, sample)")

    def forward(self, images: Tensor) -> DecodeResult:
        """Inference: greedy captions for ``images`` [B, 3, H, W]."""
        return self.generate(self.encode(images), method="greedy")  # type: ignore[return-value]


def build_captioner(
    spec: CaptionerConfig | Mapping[str, Any],
    *,
    vocab_size: int,
    start_id: int = 1,
    end_id: int = 2,
    pad_id: int = 0,
) -> Captioner:
    """Build a :class:`Captioner` from its config.

    Args:
        spec: the ``model:`` section, a :class:`CaptionerConfig` or a mapping (partial, or a checkpoint's
            resolved section, old spellings included).
        vocab_size: from the vocabulary (the DataModule's ``vocab_size``).
        start_id, end_id, pad_id: the vocabulary's special ids.
    """
    if not isinstance(spec, CaptionerConfig):
        spec = from_dict(CaptionerConfig, spec, "model", old_keys=True)
    encoder = build(IMAGE_ENCODERS, spec.encoder, path="model.encoder")
    decoder = build(
        DECODERS,
        {"name": spec.name, **spec.decoder},
        path="model.decoder",
        vocab_size=vocab_size,
        feature_dim=encoder.out_dim,
        pad_id=pad_id,
    )
    return Captioner(
        encoder, decoder, start_id=start_id, end_id=end_id, pad_id=pad_id, use_image=spec.use_image
    )
