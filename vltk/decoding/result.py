"""What the decoding functions return, and the step protocol they decode with.

The protocol (:data:`StepFn`): ``step(tokens [B], state) -> (logprobs [B, V], state)``, where ``state``
has ``expand(k)`` (each row repeated ``k`` times consecutively), ``select(rows)`` (re-index rows) and
optionally an ``attention`` attribute (``[B, N]`` weights of the step just taken, or ``None``). Decoding
functions know nothing else about the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor


class State(Protocol):
    """The decoder state as decoding functions see it (see :class:`vltk.decoders.state.DecoderState`)."""

    def expand(self, k: int) -> State: ...

    def select(self, rows: Tensor) -> State: ...


StepFn = Callable[[Tensor, Any], tuple[Tensor, Any]]


@dataclass
class DecodeResult:
    """One caption per input row.

    Attributes:
        tokens: ``[B, L]`` long, the generated words: no ``<start>``, no ``<end>``, padded with ``pad_id``;
            ``L`` is the longest caption in the batch (``L <= max_length``).
        lengths: ``[B]`` long, the number of words of each caption.
        scores: ``[B]`` the caption's score: the sum of its log-probabilities (``<end>`` included when it was
            generated); for beam search, the ranking score (length-normalised when a penalty is set).
        attention: ``[B, L, N]`` the attention weights that produced each word (zero at padding), or ``None``
            when the decoder has no attention.
    """

    tokens: Tensor
    lengths: Tensor
    scores: Tensor
    attention: Tensor | None = None

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def to_lists(self) -> list[list[int]]:
        """The captions as Python lists of token ids, padding removed."""
        return [row[:n].tolist() for row, n in zip(self.tokens, self.lengths.tolist(), strict=True)]


@dataclass
class BeamResult:
    """The ``n_best`` finished hypotheses per image from beam search, sorted best first.

    Attributes:
        tokens: ``[B, n_best, L]`` long, words without ``<start>``/``<end>``, padded with ``pad_id``.
        lengths: ``[B, n_best]`` long.
        scores: ``[B, n_best]`` ranking scores (sum of log-probabilities divided by the length penalty),
            descending along ``n_best``.
        attention: ``[B, n_best, L, N]`` attention weights aligned with ``tokens``, or ``None``.
    """

    tokens: Tensor
    lengths: Tensor
    scores: Tensor
    attention: Tensor | None = None

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def n_best(self) -> int:
        return self.tokens.shape[1]

    def best(self) -> DecodeResult:
        """The top hypothesis of every image, trimmed to its own longest caption."""
        lengths = self.lengths[:, 0]  # [B]
        width = int(lengths.max()) if lengths.numel() else 0
        attention = self.attention[:, 0, :width] if self.attention is not None else None  # [B, L, N]
        return DecodeResult(
            tokens=self.tokens[:, 0, :width],  # [B, L]
            lengths=lengths,
            scores=self.scores[:, 0],  # [B]
            attention=attention,
        )

    def to_lists(self) -> list[list[list[int]]]:
        """Per image, its ``n_best`` captions as Python lists of token ids, padding removed."""
        return [
            [row[:n].tolist() for row, n in zip(hyps, lens.tolist(), strict=True)]
            for hyps, lens in zip(self.tokens, self.lengths, strict=True)
        ]


def trim(tokens: Tensor, lengths: Tensor, attention: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Cut the time axis (last of ``tokens``, the matching one of ``attention``) to the longest length."""
    width = int(lengths.max()) if lengths.numel() else 0
    tokens = tokens[..., :width]  # [..., L]
    if attention is not None:
        attention = attention[..., :width, :]  # [..., L, N]
    return tokens, attention


def infer_device(state: Any, device: torch.device | str | None) -> torch.device:
    """``device`` if given, else the device of the first tensor found in ``state`` (CPU if none)."""
    if device is not None:
        return torch.device(device)
    found = getattr(state, "device", None)
    if isinstance(found, torch.device):
        return found
    values = vars(state).values() if hasattr(state, "__dict__") else ()
    for value in values:
        if isinstance(value, Tensor):
            return value.device
    return torch.device("cpu")
