"""Teacher forcing of :class:`~vltk.decoders.show_attend_tell.ShowAttendTellDecoder` with everything that
does not depend on the recurrent state outside the time loop, and the two in-loop weights' gradients as one
matmul each (:class:`_DeferredWeightGrad`).

The same model as the decoder's ``step`` run ``T`` times (``tests/test_decoders.py`` and
``tests/test_additive_loop.py`` check that they agree), rearranged so that the time loop holds only what
depends on ``h_{t-1}``:

- before the loop, one matmul over all ``T`` steps: the word part of the cell's input projection,
  ``W_ih[:, :E] E y_{t-1} + b_ih (+ b_hh for the LSTM)``;
- in the loop, two matmuls per step: ``h_{t-1}`` times ``[W_q; W_hh; w_beta]`` (the attention query, the
  recurrent gates and the gate logit at once), then the context part ``W_ih[:, E:] beta z_t``;
- after the loop, one matmul each: the deep output's ``L_h h_t`` and ``L_z z_t``, then ``L_o``.

In the backward, the gradients of the two in-loop weights are one matmul each over all steps (see
:class:`_DeferredWeightGrad`) rather than ``T`` thin ``[out, B] x [B, in]`` ones summed. The additive
attention runs through :meth:`~vltk.attention.AdditiveAttention.loop`, whose backward sums the projected
keys' gradient over the steps in place.

Machinery, not the paper: read :mod:`vltk.decoders.show_attend_tell` for the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from vltk.attention.additive import AdditiveAttention
from vltk.decoders.base import DecoderOutput
from vltk.types import ImageFeatures

if TYPE_CHECKING:
    from vltk.decoders.show_attend_tell import ShowAttendTellDecoder


def fused_teacher_forcing(
    decoder: ShowAttendTellDecoder, features: ImageFeatures, tokens: Tensor
) -> DecoderOutput:
    """``decoder.teacher_forcing(features, tokens)`` for a decoder whose cell is :class:`vltk.rnn.LSTMCell` or
    :class:`vltk.rnn.GRUCell` (torch's weight layout); ``tokens [B, T]`` already checked."""
    state = decoder.init_state(features)
    grid, projected, mask = state.grid, state.projected_keys, state.mask  # [B, N, D], [B, N, A], [B, N]
    rnn, lstm = decoder.rnn, decoder.rnn.state_size == 2
    additive = isinstance(decoder.attention, AdditiveAttention)
    gate_rows = rnn.gates * decoder.hidden_dim  # gH
    query_dim = decoder.attention.dim if additive else 0  # A: columns of W_q h in the fused matmul
    embedded = decoder.dropout(decoder.embedding(tokens)).transpose(0, 1)  # [T, B, E]
    word_weight, context_weight = rnn.weight_ih.split([decoder.embed_dim, decoder.feature_dim], dim=1)
    # the LSTM adds both biases to every gate, so b_hh joins the hoisted part; the GRU's candidate needs
    # r * (W_hn h + b_hn), so there b_hh stays with W_hh
    word_bias = rnn.bias_ih + rnn.bias_hh if lstm else rnn.bias_ih  # [gH]
    word_gates = F.linear(embedded, word_weight, word_bias)  # [T, B, gH]
    weights, biases = [rnn.weight_hh], [rnn.bias_hh if not lstm else None]
    if additive:
        weights.insert(0, decoder.attention.query_proj.weight)
        biases.insert(0, None)
    if decoder.f_beta is not None:
        weights.append(decoder.f_beta.weight)
        biases.append(decoder.f_beta.bias)
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
        attend = decoder.attention.loop(projected).attend  # projected keys' gradient summed in place
    h, c = state.h, state.c  # [B, H], [B, H]
    hiddens, contexts, attention, gates = [], [], [], []
    for t, word_gate in enumerate(word_gates.unbind(0)):
        fused = fused_record.capture(t, h, torch.addmm(fused_bias, h, fused_weight))  # [B, A + gH + 1]
        if additive:
            context, alpha = attend(fused[:, :query_dim], grid, mask)  # [B, D], [B, N]
        else:
            context, alpha = decoder.attention(h, grid, projected, mask)  # [B, D], [B, N]
        if decoder.f_beta is not None:
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
    deep = embedded.transpose(0, 1) + decoder.hidden_to_output(decoder.dropout(hidden))  # [B, T, E]
    deep = torch.tanh(deep + decoder.context_to_output(torch.stack(contexts, dim=1)))  # [B, T, E]
    return DecoderOutput(
        logits=decoder.output(decoder.dropout(deep)),  # [B, T, V]
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
