"""The one caption decoder base: it owns the word embedding, dropout, the vocabulary projection, the
teacher-forced loop and the decoding step; each model is a small recurrent *core*.

The split follows ruotianluo/ImageCaptioning.pytorch (``AttModel``: a base that owns the loops, cores with a
fixed step), without string-dispatched modes: decoding lives in :mod:`vltk.decoding` as functions over
:meth:`CaptionDecoder.step`.

A subclass implements two methods:

- ``_init_state(features) -> DecoderState``: the state before the first word (e.g. Show and Tell feeds the
  image to the RNN here; Show, Attend and Tell predicts ``h0``/``c0`` from the mean feature);
- ``_advance(embedded [B, E], state) -> (output [B, H'], state)``: one recurrent step on an embedded word.
  It may set ``state.attention`` ``[B, N]`` and ``state.gate`` ``[B]``.

The base precomputes the attention key projection once per image in :meth:`CaptionDecoder.init_state`
(when the subclass passes an ``attention`` module) and applies the vocabulary projection to ``output``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vltk.decoders.state import DecoderState
from vltk.errors import ConfigError, unknown_choice_message
from vltk.rnn import CELLS as RNN_CELLS
from vltk.rnn import RecurrentCell
from vltk.types import ImageFeatures

logger = logging.getLogger(__name__)

CELLS = ("lstm", "gru")


def make_cell(cell: str, input_dim: int, hidden_dim: int) -> RecurrentCell:
    """A cell of :mod:`vltk.rnn` by name; ``lstm`` and ``gru`` step on torch's fused cell kernels and keep
    ``nn.LSTMCell``/``nn.GRUCell``'s parameter names, so older checkpoints load unchanged. A
    :class:`ConfigError` lists the choices."""
    if cell not in CELLS:
        raise ConfigError(unknown_choice_message("decoder cell", str(cell), CELLS))
    return RNN_CELLS[cell](input_dim, hidden_dim)


def cell_step(cell: RecurrentCell, inputs: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, Any]:
    """One step: ``(h [B, H], c [B, H])`` for an LSTM (``c`` its memory), ``(h, None)`` otherwise."""
    if cell.state_size == 2:
        h, (h, c) = cell(inputs, (h, c))  # [B, H], [B, H]
        return h, c
    h, _ = cell(inputs, (h,))  # [B, H]
    return h, None


def check_tokens(tokens: Tensor) -> None:
    """The words of :meth:`CaptionDecoder.teacher_forcing` must be ``[B, T]`` with ``T >= 1``."""
    if tokens.dim() != 2 or tokens.shape[1] == 0:
        raise ValueError(f"teacher_forcing expects tokens [B, T] with T >= 1, got {tuple(tokens.shape)}")


@dataclass
class DecoderOutput:
    """Result of :meth:`CaptionDecoder.teacher_forcing`.

    Attributes:
        logits: ``[B, T, V]`` unnormalised scores of the next word at every position.
        attention: ``[B, T, N]`` attention weights per step, or ``None`` for decoders without attention.
        gates: ``[B, T]`` the attention gate per step (Xu et al.'s ``beta``), or ``None``.
    """

    logits: Tensor
    attention: Tensor | None = None
    gates: Tensor | None = None


class CaptionDecoder(nn.Module):
    """Base of every caption decoder: embedding -> core -> dropout -> vocabulary projection.

    Dropout is applied to the word embeddings fed to the core and to the core's output before the vocabulary
    projection (as in neuraltalk2 and ruotianluo's ``AttModel``).

    Args:
        vocab_size: ``V``, number of words (wired from the vocabulary).
        embed_dim: ``E``, word embedding size.
        output_dim: ``H'``, size of the core's per-step output that the vocabulary projection reads.
        hidden_dim: ``H``, the recurrent hidden size (exposed as ``hidden_dim``).
        dropout: dropout probability on embeddings and on the output before the projection.
        pad_id: the padding token; its embedding is the zero vector and receives no gradient.
        attention: the attention module of the core, if any; its ``precompute`` runs once per image in
            :meth:`init_state`.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        embed_dim: int,
        output_dim: int,
        hidden_dim: int,
        dropout: float = 0.5,
        pad_id: int = 0,
        attention: nn.Module | None = None,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(output_dim, vocab_size)
        self.attention = attention

    # --- the core: implemented by subclasses -------------------------------------------------------------

    def _init_state(self, features: ImageFeatures) -> DecoderState:
        raise NotImplementedError

    def _advance(self, embedded: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        raise NotImplementedError

    # --- the protocol ------------------------------------------------------------------------------------

    def init_state(self, features: ImageFeatures) -> DecoderState:
        """The state before the first word, with the attention keys projected once per image.

        Args:
            features: ``grid [B, N, D]``, ``pooled [B, D]``, ``mask [B, N] | None``.
        """
        state = self._init_state(features)
        if self.attention is not None:
            state.grid = features.grid  # [B, N, D]
            state.mask = features.mask  # [B, N] or None
            state.projected_keys = self.attention.precompute(features.grid)  # [B, N, A]
        return state

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """One decoding step: the log-probabilities of the next word after ``tokens``.

        Args:
            tokens: ``[B]`` long, the previous word of every row (``<start>`` at the first step).
            state: from :meth:`init_state` or the previous step.

        Returns:
            ``(logprobs [B, V], state)``; log-probabilities are float32 (or float64) whatever the model dtype,
            so that decoding sums of scores stay accurate under mixed precision.
        """
        embedded = self.dropout(self.embedding(tokens))  # [B, E]
        output, state = self._advance(embedded, state)  # [B, H']
        logits = self.output(self.dropout(output))  # [B, V]
        dtype = torch.promote_types(logits.dtype, torch.float32)
        return torch.log_softmax(logits, dim=-1, dtype=dtype), state  # [B, V]

    def teacher_forcing(self, features: ImageFeatures, tokens: Tensor) -> DecoderOutput:
        """Scores of the next word at every position given the ground-truth words.

        The caller passes ``captions[:, :-1]`` (``<start> w1 .. wn``) and scores the logits against
        ``captions[:, 1:]``. The vocabulary projection runs once on the stacked outputs, after the time loop.

        Args:
            features: the encoded images (``grid [B, N, D]``, ``pooled [B, D]``).
            tokens: ``[B, T]`` long input words.

        Returns:
            :class:`DecoderOutput` with ``logits [B, T, V]``, ``attention [B, T, N] | None`` and
            ``gates [B, T] | None``.
        """
        check_tokens(tokens)
        state = self.init_state(features)
        embedded = self.dropout(self.embedding(tokens))  # [B, T, E]
        outputs: list[Tensor] = []
        attention: list[Tensor] = []
        gates: list[Tensor] = []
        for t in range(tokens.shape[1]):
            output, state = self._advance(embedded[:, t], state)  # [B, H']
            outputs.append(output)
            if state.attention is not None:
                attention.append(state.attention)  # [B, N]
            if state.gate is not None:
                gates.append(state.gate)  # [B]
        hidden = torch.stack(outputs, dim=1)  # [B, T, H']
        logits = self.output(self.dropout(hidden))  # [B, T, V]
        return DecoderOutput(
            logits=logits,
            attention=torch.stack(attention, dim=1) if attention else None,  # [B, T, N]
            gates=torch.stack(gates, dim=1) if gates else None,  # [B, T]
        )

    def scheduled_sampling(
        self,
        features: ImageFeatures,
        tokens: Tensor,
        probability: float,
        *,
        generator: torch.Generator | None = None,
    ) -> DecoderOutput:
        """Teacher forcing where each input word after ``<start>`` is, with ``probability``, replaced by a
        word drawn from the model's own prediction at the previous step: scheduled sampling (Bengio, Vinyals,
        Jaitly and Shazeer 2015, "Scheduled Sampling for Sequence Prediction with Recurrent Neural
        Networks", NeurIPS), as ruotianluo/ImageCaptioning.pytorch ``AttModel._forward`` does it (one coin per
        row and step; the draw from the detached previous distribution, so no gradient flows through it).

        Steps one by one through :meth:`_advance` (a fused teacher-forcing path cannot feed its own words
        back). ``probability = 0`` gives the logits of :meth:`teacher_forcing`.

        Args:
            features: the encoded images.
            tokens: ``[B, T]`` long, the ground-truth input words (``<start> w1 .. wn``).
            probability: the chance that a row's input word is the model's sample, in ``[0, 1]``.
            generator: the random generator of the coins and draws.
        """
        check_tokens(tokens)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"scheduled sampling probability must lie in [0, 1], got {probability}")
        state = self.init_state(features)
        logits: list[Tensor] = []
        attention: list[Tensor] = []
        gates: list[Tensor] = []
        inputs = tokens[:, 0]  # [B]
        for t in range(tokens.shape[1]):
            if t > 0:
                inputs = tokens[:, t]  # [B]
                if probability > 0.0:
                    coins = torch.rand(inputs.shape, generator=generator, device=inputs.device)  # [B]
                    probs = torch.softmax(logits[-1].detach().float(), dim=-1)  # [B, V]
                    drawn = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # [B]
                    inputs = torch.where(coins < probability, drawn, inputs)  # [B]
            output, state = self._advance(self.dropout(self.embedding(inputs)), state)  # [B, H']
            logits.append(self.output(self.dropout(output)))  # [B, V]
            if state.attention is not None:
                attention.append(state.attention)  # [B, N]
            if state.gate is not None:
                gates.append(state.gate)  # [B]
        return DecoderOutput(
            logits=torch.stack(logits, dim=1),  # [B, T, V]
            attention=torch.stack(attention, dim=1) if attention else None,  # [B, T, N]
            gates=torch.stack(gates, dim=1) if gates else None,  # [B, T]
        )

    def forward(self, features: ImageFeatures, tokens: Tensor) -> DecoderOutput:
        """Same as :meth:`teacher_forcing` (scores of given words); generation uses :mod:`vltk.decoding`."""
        return self.teacher_forcing(features, tokens)
