"""Greedy decoding over the step protocol, and the one-path decoding loop that sampling shares.

One word per row and step: the most probable one (greedy) or a random draw (:func:`vltk.decoding.sample`).
The loop knows nothing about decoders: it only calls ``step(tokens [B], state) -> (logprobs [B, V], state)``
and reads the optional ``state.attention [B, N]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from vltk.decoding.result import DecodeResult, StepFn, infer_device, trim
from vltk.errors import ConfigError

logger = logging.getLogger(__name__)


def check_positive(name: str, value: int) -> None:
    """A :class:`ConfigError` naming the decoding option when ``value < 1``."""
    if value < 1:
        raise ConfigError(f"decoding option {name} must be >= 1, got {value}")


def decode_path(
    step: StepFn,
    state: Any,
    choose: Callable[[Tensor], Tensor],
    *,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    max_length: int,
    device: torch.device | str | None = None,
) -> DecodeResult:
    """Decode one caption per row, the next word picked by ``choose(logprobs [B, V]) -> tokens [B]``.

    A row finishes when it emits ``eos_id`` (not part of its caption) or after ``max_length`` words; the loop
    stops as soon as every row has finished. Finished rows are fed ``pad_id`` and add nothing to their score.

    Args:
        step: the decoding step.
        state: the decoder state for ``batch_size`` rows.
        choose: picks the next word of every row from its log-probabilities.
        batch_size: ``B``.
        bos_id, eos_id, pad_id: the special tokens.
        max_length: the most words (steps) per caption.
        device: where to create the token tensors; by default the device of the state's first tensor.
    """
    check_positive("max_length", max_length)
    device = infer_device(state, device)
    tokens = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)  # [B]
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)  # [B]
    lengths = torch.zeros(batch_size, dtype=torch.long, device=device)  # [B]
    scores: Tensor | None = None
    words: list[Tensor] = []
    traces: list[Tensor] = []
    for _ in range(max_length):
        logprobs, state = step(tokens, state)  # [B, V]
        chosen = choose(logprobs)  # [B]
        chosen_logprob = logprobs.gather(1, chosen.unsqueeze(1)).squeeze(1)  # [B]
        gained = chosen_logprob.masked_fill(finished, 0.0)  # [B]
        scores = gained if scores is None else scores + gained  # [B]
        is_word = ~finished & (chosen != eos_id)  # [B]
        tokens = torch.where(is_word, chosen, torch.full_like(chosen, pad_id))  # [B]
        words.append(tokens)
        attention = getattr(state, "attention", None)
        if attention is not None:
            traces.append(attention.masked_fill(~is_word.unsqueeze(1), 0.0))  # [B, N]
        lengths = lengths + is_word.long()  # [B]
        finished = finished | (chosen == eos_id)  # [B]
        if bool(finished.all()):
            break
    assert scores is not None  # max_length >= 1, so the loop ran
    all_words = torch.stack(words, dim=1)  # [B, steps]
    all_attention = torch.stack(traces, dim=1) if traces else None  # [B, steps, N]
    out_tokens, out_attention = trim(all_words, lengths, all_attention)  # [B, L], [B, L, N]
    return DecodeResult(tokens=out_tokens, lengths=lengths, scores=scores, attention=out_attention)


def greedy(
    step: StepFn,
    state: Any,
    *,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    max_length: int,
    device: torch.device | str | None = None,
) -> DecodeResult:
    """Greedy decoding: at every step the most probable word; stops early when every row has finished.

    Args:
        step: ``step(tokens [B], state) -> (logprobs [B, V], state)``.
        state: the decoder state for ``batch_size`` rows (from ``decoder.init_state``).
        batch_size: ``B``.
        bos_id: the ``<start>`` token fed at the first step.
        eos_id: the ``<end>`` token that finishes a row (not included in the caption).
        pad_id: the padding of ``tokens`` after a caption ends.
        max_length: the most words per caption; rows without ``<end>`` stop there.
        device: where to create the token tensors; by default the device of the state's first tensor.

    Returns:
        :class:`DecodeResult` with ``scores`` the sum of the chosen words' log-probabilities (``<end>``
        included). Call under ``torch.no_grad()`` for inference.
    """

    def most_probable(logprobs: Tensor) -> Tensor:
        return logprobs.argmax(dim=-1)  # [B]

    return decode_path(
        step,
        state,
        most_probable,
        batch_size=batch_size,
        bos_id=bos_id,
        eos_id=eos_id,
        pad_id=pad_id,
        max_length=max_length,
        device=device,
    )
