"""Sampling over the step protocol: ancestral sampling with a temperature, optionally from the top-k words.

Used for diverse captions and for self-critical sequence training (Rennie et al. 2017, "Self-critical
Sequence Training for Image Captioning"), where ``scores`` (the sum of the model's log-probabilities of the
sampled words) carries the gradient when decoding runs with autograd enabled.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from vltk.decoding.greedy import decode_path
from vltk.decoding.result import DecodeResult, StepFn
from vltk.errors import ConfigError

logger = logging.getLogger(__name__)


def sample(
    step: StepFn,
    state: Any,
    *,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    max_length: int,
    temperature: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> DecodeResult:
    """Draw one caption per row from ``softmax(logprobs / temperature)``, restricted to the ``top_k`` words.

    Args:
        step: ``step(tokens [B], state) -> (logprobs [B, V], state)``.
        state: the decoder state for ``batch_size`` rows.
        batch_size: ``B``.
        bos_id, eos_id, pad_id: the special tokens (see :func:`vltk.decoding.greedy`).
        max_length: the most words per caption.
        temperature: ``> 0``; below 1 sharpens the distribution, above 1 flattens it.
        top_k: sample among the ``top_k`` most probable words only; ``0`` = the whole vocabulary. ``top_k=1``
            is greedy decoding.
        generator: the random generator (on the step's device) for reproducible draws.
        device: where to create the token tensors; by default the device of the state's first tensor.

    Returns:
        :class:`DecodeResult`; ``scores`` sums the model's log-probabilities of the sampled words (before the
        temperature), ``<end>`` included.
    """
    if not temperature > 0:
        raise ConfigError(f"decoding option temperature must be > 0, got {temperature}")
    if top_k < 0:
        raise ConfigError(f"decoding option top_k must be >= 0 (0 = no limit), got {top_k}")

    def draw(logprobs: Tensor) -> Tensor:
        logits = logprobs.detach() / temperature  # [B, V]
        if top_k > 0:
            values, indices = logits.topk(min(top_k, logits.shape[-1]), dim=-1)  # [B, k], [B, k]
            picked = torch.multinomial(torch.softmax(values, dim=-1), 1, generator=generator)  # [B, 1]
            return indices.gather(1, picked).squeeze(1)  # [B]
        probs = torch.softmax(logits, dim=-1)  # [B, V]
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)  # [B]

    return decode_path(
        step,
        state,
        draw,
        batch_size=batch_size,
        bos_id=bos_id,
        eos_id=eos_id,
        pad_id=pad_id,
        max_length=max_length,
        device=device,
    )
