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
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vltk.attention import ATTENTIONS, AdditiveAttention
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

    # --- teacher forcing: everything that does not depend on the recurrent state runs outside the loop -----

    def teacher_forcing(self, features: ImageFeatures, tokens: Tensor) -> DecoderOutput:
        """Scores of the next word at every position given the ground-truth words (see the base class).

        The same model as :meth:`step` run ``T`` times (the tests check that they agree), rearranged so that
        the time loop holds only what depends on ``h_{t-1}``:

        - before the loop, one matmul over all ``T`` steps: the word part of the cell's input projection,
          ``W_ih[:, :E] E y_{t-1} + b_ih (+ b_hh for the LSTM)``;
        - in the loop, two matmuls per step: ``h_{t-1}`` times ``[W_q; W_hh; w_beta]`` (the attention query,
          the recurrent gates and the gate logit at once), then the context part ``W_ih[:, E:] beta z_t``;
        - after the loop, one matmul each: the deep output's ``L_h h_t`` and ``L_z z_t``, then ``L_o``.

        In the backward, the gradients of the two in-loop weights are one matmul each over all steps (see
        :class:`_DeferredWeightGrad`) rather than ``T`` thin ``[out, B] x [B, in]`` ones summed. The additive
        attention runs through :meth:`~vltk.attention.AdditiveAttention.loop`, whose backward sums the
        projected keys' gradient over the steps in place.
        """
        check_tokens(tokens)
        if type(self.rnn) not in (LSTMCell, GRUCell):  # a cell without torch's layout steps one by one
            return super().teacher_forcing(features, tokens)
        state = self.init_state(features)
        grid, projected, mask = state.grid, state.projected_keys, state.mask  # [B, N, D], [B, N, A], [B, N]
        rnn, lstm = self.rnn, self.rnn.state_size == 2
        additive = isinstance(self.attention, AdditiveAttention)
        gate_rows = rnn.gates * self.hidden_dim  # gH
        query_dim = self.attention.dim if additive else 0  # A: columns of W_q h in the fused matmul
        embedded = self.dropout(self.embedding(tokens)).transpose(0, 1)  # [T, B, E]
        word_weight, context_weight = rnn.weight_ih.split([self.embed_dim, self.feature_dim], dim=1)
        # the LSTM adds both biases to every gate, so b_hh joins the hoisted part; the GRU's candidate needs
        # r * (W_hn h + b_hn), so there b_hh stays with W_hh
        word_bias = rnn.bias_ih + rnn.bias_hh if lstm else rnn.bias_ih  # [gH]
        word_gates = F.linear(embedded, word_weight, word_bias)  # [T, B, gH]
        weights, biases = [rnn.weight_hh], [rnn.bias_hh if not lstm else None]
        if additive:
            weights.insert(0, self.attention.query_proj.weight)
            biases.insert(0, None)
        if self.f_beta is not None:
            weights.append(self.f_beta.weight)
            biases.append(self.f_beta.bias)
        fused_weight = torch.cat(weights)  # [A + gH + 1, H]
        fused_bias = torch.cat(
            [b if b is not None else w.new_zeros(w.shape[0]) for w, b in zip(weights, biases, strict=True)]
        )  # [A + gH + 1]
        steps = tokens.shape[1]
        fused_record, context_record = _StepInputs(steps), _StepInputs(steps)
        if fused_weight.requires_grad:  # (False under no_grad)
            fused_bias = _DeferredWeightGrad.apply(fused_bias, fused_weight, fused_record)
            fused_weight = fused_weight.detach()
        if context_weight.requires_grad:
            word_gates = _DeferredWeightGrad.apply(word_gates, context_weight, context_record)
            context_weight = context_weight.detach()
        fused_weight, context_weight = fused_weight.t(), context_weight.t()  # [H, A + gH + 1], [D, gH]
        if additive:
            attend = self.attention.loop(projected).attend  # projected keys' gradient summed in place
        h, c = state.h, state.c  # [B, H], [B, H]
        hiddens, contexts, attention, gates = [], [], [], []
        for t, word_gate in enumerate(word_gates.unbind(0)):
            fused = fused_record.capture(t, h, torch.addmm(fused_bias, h, fused_weight))  # [B, A + gH + 1]
            if additive:
                context, alpha = attend(fused[:, :query_dim], grid, mask)  # [B, D], [B, N]
            else:
                context, alpha = self.attention(h, grid, projected, mask)  # [B, D], [B, N]
            if self.f_beta is not None:
                gate = torch.sigmoid(fused[:, -1])  # [B]
                context = gate.unsqueeze(-1) * context  # [B, D]
                gates.append(gate)
            recurrent = fused[:, query_dim : query_dim + gate_rows]  # [B, gH]
            if lstm:
                pre = torch.addmm(word_gate + recurrent, context, context_weight)  # [B, 4H]
                h, c = _lstm_pointwise(context_record.capture(t, context, pre), c)
            else:
                pre = context_record.capture(t, context, torch.addmm(word_gate, context, context_weight))
                h = _gru_pointwise(pre, recurrent, h)  # [B, H]
            hiddens.append(h)
            contexts.append(context)
            attention.append(alpha)
        hidden = torch.stack(hiddens, dim=1)  # [B, T, H]
        deep = embedded.transpose(0, 1) + self.hidden_to_output(self.dropout(hidden))  # [B, T, E]
        deep = torch.tanh(deep + self.context_to_output(torch.stack(contexts, dim=1)))  # [B, T, E]
        return DecoderOutput(
            logits=self.output(self.dropout(deep)),  # [B, T, V]
            attention=torch.stack(attention, dim=1),  # [B, T, N]
            gates=torch.stack(gates, dim=1) if gates else None,  # [B, T]
        )


def _lstm_pointwise(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """:class:`vltk.rnn.LSTMCell` after its matmuls: ``gates [B, 4H]`` in torch's order ``i, f, g, o``."""
    i, f, g, o = gates.unsafe_chunk(4, dim=1)  # [B, H] each
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # [B, H]
    return torch.sigmoid(o) * torch.tanh(c), c  # [B, H], [B, H]


def _gru_pointwise(inputs: Tensor, recurrent: Tensor, h: Tensor) -> Tensor:
    """:class:`vltk.rnn.GRUCell` after its matmuls: ``W_i x + b_i`` and ``W_h h + b_h`` ``[B, 3H]`` in torch's
    order ``r, z, n``."""
    i_r, i_z, i_n = inputs.unsafe_chunk(3, dim=1)  # [B, H] each
    h_r, h_z, h_n = recurrent.unsafe_chunk(3, dim=1)  # [B, H] each
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)  # [B, H]
    n = torch.tanh(i_n + r * h_n)  # [B, H]
    return n + z * (h - n)  # [B, H]


class _StepInputs:
    """The inputs and output gradients of one weight's matmul at every step of a time loop, so that the
    weight's gradient is one ``[out, T B] x [T B, in]`` matmul instead of ``T`` thin ones summed.

    Args:
        steps: ``T``.
    """

    def __init__(self, steps: int):
        self.inputs: list[Tensor | None] = [None] * steps
        self.grads: list[Tensor | None] = [None] * steps
        self.active = False  # set by _DeferredWeightGrad.forward: the weight needs a gradient

    def capture(self, t: int, inputs: Tensor, outputs: Tensor) -> Tensor:
        """Keep step ``t``'s ``inputs [B, in]`` and, in the backward, the gradient of its ``outputs``."""
        if self.active and outputs.requires_grad:
            self.inputs[t] = inputs.detach()
            outputs.register_hook(lambda grad: self.grads.__setitem__(t, grad))
        return outputs

    def weight_grad(self, dtype: torch.dtype) -> Tensor | None:
        """``sum_t grad_t^T inputs_t`` ``[out, in]`` in the weight's ``dtype`` (under autocast the steps ran
        in lower precision); ``None`` when no step got a gradient."""
        pairs = [(x, g) for x, g in zip(self.inputs, self.grads, strict=True) if g is not None]
        if not pairs:
            return None
        inputs = torch.cat([x for x, _ in pairs]).to(dtype)  # [T B, in]
        grads = torch.cat([g for _, g in pairs]).to(dtype)  # [T B, out]
        return grads.t().mm(inputs)  # [out, in]


class _DeferredWeightGrad(torch.autograd.Function):
    """Identity on ``anchor`` (a tensor every step reads, so its backward runs after all steps'); the
    backward also returns ``weight``'s gradient from a :class:`_StepInputs` that the steps filled. The steps
    multiply by ``weight.detach()``, so autograd computes only their input gradients."""

    @staticmethod
    def forward(ctx, anchor: Tensor, weight: Tensor, record: _StepInputs) -> Tensor:  # type: ignore[override]
        ctx.record, ctx.dtype = record, weight.dtype
        record.active = True
        ctx.set_materialize_grads(False)
        return anchor.view_as(anchor)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor | None) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        weight_grad = ctx.record.weight_grad(ctx.dtype) if ctx.needs_input_grad[1] else None
        return grad, weight_grad, None
