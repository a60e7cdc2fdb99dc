"""Show, Attend and Tell: Xu, Ba, Kiros, Cho, Courville, Salakhutdinov, Zemel and Bengio 2015, "Show, Attend
and Tell: Neural Image Caption Generation with Visual Attention" (ICML), soft ("deterministic") attention.

At every step the previous hidden state attends over the image grid (additive attention by default, as in
the paper), the context is scaled by the gating scalar ``beta = sigmoid(f_beta(h_{t-1}))`` (section 4.2.1),
and the cell reads ``[E y_{t-1}; beta * z_t]``. The initial ``h_0`` / ``c_0`` come from two MLPs of the
mean region feature (section 3.1.2).

Output layer: the paper's *deep output* (eq. 7), as in the authors' arctic-captions code:
``p(y_t) = softmax(L_o tanh(E y_{t-1} + L_h h_t + L_z z_t))``, with dropout on ``h_t`` and before ``L_o``.
``L_o`` is the base class's vocabulary projection, so the per-step output has size ``E``.

The per-step attention weights are returned (``DecoderOutput.attention [B, T, N]``) for the doubly
stochastic regulariser ``lambda * sum_n (1 - sum_t alpha_tn)^2`` that the training system computes, and for
attention maps.

:meth:`ShowAttendTellDecoder._advance` is one step of the model in plain torch; teacher forcing runs the
same model over the whole caption in :mod:`vltk.decoders._show_attend_tell_fused` (the tests check that
they agree).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vltk.attention import ATTENTIONS
from vltk.decoders._show_attend_tell_fused import fused_teacher_forcing
from vltk.decoders.base import CaptionDecoder, DecoderOutput, cell_step, check_tokens, make_cell
from vltk.decoders.state import DecoderState
from vltk.registry import build
from vltk.rnn import GRUCell, LSTMCell
from vltk.types import ImageFeatures

logger = logging.getLogger(__name__)

DEFAULT_ATTENTION = {"name": "additive", "dim": 256}


def masked_mean(grid: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over the real regions: ``grid [B, N, D]``, ``mask [B, N]`` (``True`` = real) -> ``[B, D]``."""
    if mask is None:
        return grid.mean(dim=1)  # [B, D]
    weights = mask.unsqueeze(-1).to(grid.dtype)  # [B, N, 1]
    return (grid * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # [B, D]


class ShowAttendTellDecoder(CaptionDecoder):
    """Xu et al. 2015 soft-attention decoder with the gating scalar ``beta`` and a deep output layer.

    Args:
        vocab_size: ``V`` (wired from the vocabulary).
        feature_dim: ``D`` of the region features (wired from the encoder's ``out_dim``).
        embed_dim: ``E``, size of the word embeddings and of the deep output layer.
        hidden_dim: ``H``, recurrent hidden size (the attention query size).
        attention: spec of the attention module, a key of :data:`vltk.attention.ATTENTIONS` with its own
            options (``query_dim``/``key_dim`` are wired); default ``{"name": "additive", "dim": 256}``.
        cell: ``"lstm"`` (the paper) or ``"gru"`` (cells of :mod:`vltk.rnn`).
        gating: scale the context by ``beta = sigmoid(f_beta(h_{t-1}))``; ``False`` uses the raw context.
        dropout: dropout on word embeddings, on ``h_t`` in the deep output, and before the vocabulary layer.
        pad_id: the padding token (zero embedding, no gradient).
    """

    def __init__(
        self,
        vocab_size: int,
        feature_dim: int,
        *,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        attention: dict[str, Any] | None = None,
        cell: Literal["lstm", "gru"] = "lstm",
        gating: bool = True,
        dropout: float = 0.5,
        pad_id: int = 0,
    ):
        attention_module = build(
            ATTENTIONS,
            DEFAULT_ATTENTION if attention is None else attention,
            path="model.decoder.attention",
            query_dim=hidden_dim,
            key_dim=feature_dim,
        )
        super().__init__(
            vocab_size,
            embed_dim=embed_dim,
            output_dim=embed_dim,
            hidden_dim=hidden_dim,
            dropout=dropout,
            pad_id=pad_id,
            attention=attention_module,
        )
        self.feature_dim = feature_dim
        self.gating = gating
        self.rnn = make_cell(cell, embed_dim + feature_dim, hidden_dim)
        self.init_h = nn.Linear(feature_dim, hidden_dim)
        self.init_c = nn.Linear(feature_dim, hidden_dim) if self.rnn.state_size == 2 else None
        self.f_beta = nn.Linear(hidden_dim, 1) if gating else None
        self.hidden_to_output = nn.Linear(hidden_dim, embed_dim)  # L_h
        self.context_to_output = nn.Linear(feature_dim, embed_dim, bias=False)  # L_z

    def _init_state(self, features: ImageFeatures) -> DecoderState:
        """``h_0 = tanh(f_init_h(mean_n a_n))`` and ``c_0 = tanh(f_init_c(mean_n a_n))``."""
        mean = masked_mean(features.grid, features.mask)  # [B, D]
        h = torch.tanh(self.init_h(mean))  # [B, H]
        c = torch.tanh(self.init_c(mean)) if self.init_c is not None else None  # [B, H]
        return DecoderState(h=h, c=c)

    def _advance(self, embedded: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Attend with ``h_{t-1}``, gate the context, step the cell, compute the deep output."""
        keys, projected, mask = state.grid, state.projected_keys, state.mask  # [B, N, D], [B, N, A], [B, N]
        context, weights = self.attention(state.h, keys, projected, mask)  # [B, D], [B, N]
        gate = None
        if self.f_beta is not None:
            gate = torch.sigmoid(self.f_beta(state.h)).squeeze(-1)  # [B]
            context = gate.unsqueeze(-1) * context  # [B, D]
        inputs = torch.cat([embedded, context], dim=-1)  # [B, E + D]
        h, c = cell_step(self.rnn, inputs, state.h, state.c)  # [B, H], [B, H]
        deep = embedded + self.hidden_to_output(self.dropout(h)) + self.context_to_output(context)  # [B, E]
        return torch.tanh(deep), replace(state, h=h, c=c, attention=weights, gate=gate)  # [B, E]

    def teacher_forcing(self, features: ImageFeatures, tokens: Tensor) -> DecoderOutput:
        """Scores of the next word at every position given the ground-truth words (see the base class).

        The same model as :meth:`step` run ``T`` times (the tests check that they agree), rearranged so that
        the time loop holds only what depends on ``h_{t-1}``, with a leaner backward:
        :func:`vltk.decoders._show_attend_tell_fused.fused_teacher_forcing`. A cell of another type (a
        subclass of the two, or one swapped in) steps one by one through the base class.
        """
        check_tokens(tokens)
        if type(self.rnn) not in (LSTMCell, GRUCell):  # a cell without torch's layout steps one by one
            return super().teacher_forcing(features, tokens)
        return fused_teacher_forcing(self, features, tokens)
