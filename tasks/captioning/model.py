"""The image captioner: a CNN image encoder and an RNN decoder (with or without attention).

``show_tell`` is Vinyals et al. 2015, "Show and Tell: A Neural Image Caption Generator"; ``show_attend_tell``
is Xu et al. 2015, "Show, Attend and Tell: Neural Image Caption Generation with Visual Attention".

A captioner spec (the ``model:`` section of a captioning config)::

    name: show_attend_tell            # a key of vltk.decoders.DECODERS
    blind: false                      # true zeroes the image features (ablation)
    encoder: {name: small_cnn, ...}   # a spec for vltk.encoders.IMAGE_ENCODERS
    decoder: {hidden_dim: 512, ...}   # the decoder's own options (its vocab_size/feature_dim are wired)

:func:`build_captioner` wires the decoder's ``feature_dim`` from ``encoder.out_dim`` and its ``vocab_size``
from the vocabulary; neither appears in configs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from vltk.attention import ATTENTIONS
from vltk.decoders import DECODERS
from vltk.decoders.base import CaptionDecoder, DecoderOutput
from vltk.decoding import BeamResult, DecodeResult, beam_search, greedy, sample
from vltk.encoders import IMAGE_ENCODERS
from vltk.errors import ConfigError, closest
from vltk.registry import build, resolved_spec
from vltk.types import ImageFeatures

CAPTIONER_KEYS = ("name", "encoder", "decoder", "blind")
DECODER_WIRED = ("vocab_size", "feature_dim", "pad_id")


class Captioner(nn.Module):
    """Image encoder + caption decoder, with decoding methods for inference.

    Args:
        encoder: an image encoder (``forward(images) -> ImageFeatures``, ``out_dim``, ``transforms()``).
        decoder: a :class:`vltk.decoders.base.CaptionDecoder` whose ``feature_dim`` is ``encoder.out_dim``.
        start_id, end_id, pad_id: special token ids of the vocabulary.
        blind: zero the image features (an ablation: how well can the language model alone do?).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: CaptionDecoder,
        *,
        start_id: int,
        end_id: int,
        pad_id: int,
        blind: bool = False,
    ):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.start_id, self.end_id, self.pad_id = start_id, end_id, pad_id
        self.blind = blind

    def encode(self, images: Tensor) -> ImageFeatures:
        features = self.encoder(images)  # grid [B, N, D], pooled [B, D]
        if self.blind:
            features = replace(
                features, grid=torch.zeros_like(features.grid), pooled=torch.zeros_like(features.pooled)
            )
        return features

    def teacher_forcing(self, features: ImageFeatures, captions: Tensor) -> DecoderOutput:
        """Logits for ``captions[:, 1:]`` given ``captions[:, :-1]`` (``captions`` is [B, T])."""
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


def resolve_captioner_spec(spec: Mapping[str, Any], path: str = "model") -> dict[str, Any]:
    """Check a captioner spec (encoder, decoder, nested attention) and fill in every default."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{path}: expected a mapping with name/encoder/decoder, got {spec!r}")
    for key in spec:
        if key not in CAPTIONER_KEYS:
            hint = closest(str(key), CAPTIONER_KEYS)
            did_you_mean = f"; did you mean '{path}.{hint}'?" if hint else ""
            raise ConfigError(
                f"unknown config key '{path}.{key}'{did_you_mean} (valid keys: {', '.join(CAPTIONER_KEYS)})"
            )
    name = spec.get("name", "show_attend_tell")
    encoder = resolved_spec(
        IMAGE_ENCODERS,
        spec.get("encoder") or {"name": "small_cnn"},
        path=f"{path}.encoder",
        what="image encoder",
    )
    decoder_options = dict(spec.get("decoder") or {})
    if "name" in decoder_options:
        raise ConfigError(f"{path}.decoder.name: the decoder is chosen by {path}.name ('{name}')")
    decoder = resolved_spec(
        DECODERS,
        {"name": name, **decoder_options},
        path=f"{path}.decoder",
        what="captioner",
        wired=DECODER_WIRED,
    )
    if decoder.get("attention") is not None:
        decoder["attention"] = resolved_spec(
            ATTENTIONS,
            decoder["attention"],
            path=f"{path}.decoder.attention",
            what="attention",
            wired=("query_dim", "key_dim"),
        )
    decoder.pop("name")
    blind = spec.get("blind", False)
    if not isinstance(blind, bool):
        raise ConfigError(f"{path}.blind = {blind!r} has the wrong type: expected bool")
    return {"name": name, "encoder": encoder, "decoder": decoder, "blind": blind}


def build_captioner(
    spec: Mapping[str, Any], *, vocab_size: int, start_id: int = 1, end_id: int = 2, pad_id: int = 0
) -> Captioner:
    """Build a :class:`Captioner` from a (resolved or partial) captioner spec.

    Args:
        spec: the ``model:`` section (see the module docstring).
        vocab_size: from the vocabulary (the DataModule's ``vocab_size``).
        start_id, end_id, pad_id: the vocabulary's special ids.
    """
    spec = resolve_captioner_spec(spec)
    encoder = build(IMAGE_ENCODERS, spec["encoder"], path="model.encoder")
    decoder = build(
        DECODERS,
        {"name": spec["name"], **spec["decoder"]},
        path="model.decoder",
        vocab_size=vocab_size,
        feature_dim=encoder.out_dim,
        pad_id=pad_id,
    )
    return Captioner(encoder, decoder, start_id=start_id, end_id=end_id, pad_id=pad_id, blind=spec["blind"])
