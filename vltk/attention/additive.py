"""Additive (concat / MLP) attention: Bahdanau, Cho and Bengio 2015, "Neural Machine Translation by Jointly
Learning to Align and Translate" (ICLR), eq. 6 ``e = v^T tanh(W_k k + W_q q)``; the form Xu et al. 2015
("Show, Attend and Tell") use for soft visual attention over CNN grid features.

Also home of :func:`masked_softmax` and :func:`weighted_sum`, the two operations every attention module here
shares: a softmax over regions in which padding (mask ``False``) gets exactly zero weight, and the context
vector as the weighted sum of the keys.

Every attention module follows the same two-method protocol:

- ``precompute(keys [B, N, D]) -> projected``: the part of the score that depends on the keys only, computed
  once per image (not once per decoding step);
- ``forward(query [B, Q], keys [B, N, D], projected, mask [B, N] | None)`` returning
  ``(context [B, D], weights [B, N])``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last dimension in which masked-out entries get exactly zero weight.

    Args:
        scores: ``[B, N]`` unnormalised attention scores.
        mask: ``[B, N]`` bool, ``True`` = real region; ``None`` means every region is real.

    A row whose regions are all padding gets all-zero weights (and so a zero context), never NaN.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)  # [B, N]
    # The most negative finite value (not -inf) keeps all-padding rows finite; the final masked_fill makes
    # padding exactly 0 even for those rows.
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # [B, N]
    weights = torch.softmax(scores, dim=-1)  # [B, N]
    return weights.masked_fill(~mask, 0.0)  # [B, N]


def weighted_sum(weights: Tensor, keys: Tensor) -> Tensor:
    """The context vector ``sum_n weights[b, n] * keys[b, n]``: ``[B, N]`` x ``[B, N, D]`` -> ``[B, D]``."""
    return torch.bmm(weights.unsqueeze(1), keys).squeeze(1)  # [B, D]


class AdditiveAttention(nn.Module):
    """Bahdanau et al. 2015 additive attention: ``e_n = v^T tanh(W_k k_n + W_q q)``, ``alpha = softmax(e)``.

    ``W_k k`` (with its bias) depends only on the image, so :meth:`precompute` computes it once per image
    and :meth:`forward` adds the query projection at each step.

    Args:
        query_dim: size ``Q`` of the query (the decoder's hidden state); wired by the decoder.
        key_dim: size ``D`` of the keys (the image region features); wired from the encoder's ``out_dim``.
        dim: size ``A`` of the hidden layer of the scoring MLP.
    """

    def __init__(self, query_dim: int, key_dim: int, *, dim: int = 256):
        super().__init__()
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.dim = dim
        self.out_dim = key_dim
        self.key_proj = nn.Linear(key_dim, dim)
        self.query_proj = nn.Linear(query_dim, dim, bias=False)  # the key projection's bias serves both
        self.score = nn.Linear(dim, 1, bias=False)

    def precompute(self, keys: Tensor) -> Tensor:
        """``W_k k + b`` for every region: ``[B, N, D]`` -> ``[B, N, A]``."""
        return self.key_proj(keys)  # [B, N, A]

    def forward(
        self, query: Tensor, keys: Tensor, projected: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Attend over ``keys`` with ``query``.

        Args:
            query: ``[B, Q]``.
            keys: ``[B, N, D]`` region features.
            projected: ``precompute(keys)`` ``[B, N, A]``; computed here when ``None``.
            mask: ``[B, N]`` bool, ``True`` = real region.

        Returns:
            ``(context [B, D], weights [B, N])``.
        """
        if projected is None:
            projected = self.precompute(keys)  # [B, N, A]
        return self.attend(self.query_proj(query), keys, projected, mask)  # [B, D], [B, N]

    def attend(
        self, query_projected: Tensor, keys: Tensor, projected: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The step after the query projection, for callers that compute ``W_q q`` themselves (e.g. fused
        with other projections of the same query in one matmul).

        Args:
            query_projected: ``W_q q`` ``[B, A]`` (any strides, e.g. a column slice of a wider matmul).
            keys: ``[B, N, D]`` region features.
            projected: ``precompute(keys)`` ``[B, N, A]``.
            mask: ``[B, N]`` bool, ``True`` = real region.

        Returns:
            ``(context [B, D], weights [B, N])``.
        """
        # tanh in place on the fresh sum: one [B, N, A] buffer per step instead of two (autograd keeps the
        # tanh output for the backward and the sum's backward needs neither input)
        hidden = torch.add(projected, query_projected.unsqueeze(1)).tanh_()  # [B, N, A]
        scores = self.score(hidden).squeeze(-1)  # [B, N]
        weights = masked_softmax(scores, mask)  # [B, N]
        return weighted_sum(weights, keys), weights  # [B, D], [B, N]

    def loop(self, projected: Tensor) -> AdditiveLoop:
        """An :meth:`attend` for every step of a time loop over the same ``projected`` keys ``[B, N, A]``,
        with a leaner forward and backward (see :class:`AdditiveLoop`)."""
        return AdditiveLoop(self, projected)

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, dim={self.dim}"


class AdditiveLoop:
    """:meth:`AdditiveAttention.attend` at every step of a time loop (teacher forcing) over the same keys.

    The same maths as ``attend`` with a custom forward and backward for the energies
    ``e = v^T tanh(K + q_t)``, the ``[B, N, A]`` work that dominates a step on large grids:

    - ``tanh(x) = 2 sigmoid(2 x) - 1``, so the forward keeps ``s = sigmoid(2 (K + q_t))`` and computes
      ``e = 2 s v - sum(v)`` (torch's CPU ``tanh`` kernel costs several times its ``sigmoid``);
    - ``1 - tanh(x)^2 = 4 s (1 - s)``, written over the saved ``s`` in the backward, so that
      ``dq_t = 4 v * (de^T s (1 - s))`` is a batched matrix-vector product and ``dv = 2 s^T de - sum(de)``
      one matvec, where autograd would write ``de v^T`` as an outer product and run ``tanh``'s backward;
    - ``dK = 4 v * sum_t de_t s_t (1 - s_t)`` is accumulated in place in one buffer and handed to autograd
      once, after the last step's backward, rather than one ``[B, N, A]`` gradient per step summed.

    Falls back to plain ``attend`` without gradients and under autocast.

    Args:
        attention: the module whose ``score`` weight ``v`` is used.
        projected: ``attention.precompute(keys)`` ``[B, N, A]``, the same at every step.
    """

    def __init__(self, attention: AdditiveAttention, projected: Tensor):
        self.attention = attention
        weight = attention.score.weight  # [1, A]
        self.fused = (
            torch.is_grad_enabled()
            and (projected.requires_grad or weight.requires_grad or attention.query_proj.weight.requires_grad)
            and not torch.is_autocast_enabled(projected.device.type)
        )
        self.accumulator = _KeyGrad()
        if self.fused and projected.requires_grad:
            projected = _KeyGradSink.apply(projected, self.accumulator)  # [B, N, A]
        self.projected = projected

    def attend(
        self, query_projected: Tensor, keys: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The same as ``attention.attend(query_projected, keys, projected, mask)``."""
        if not self.fused:
            return self.attention.attend(query_projected, keys, self.projected, mask)  # [B, D], [B, N]
        weight = self.attention.score.weight.squeeze(0)  # [A]
        scores = _Energies.apply(self.projected, query_projected, weight, self.accumulator)  # [B, N]
        weights = masked_softmax(scores, mask)  # [B, N]
        return weighted_sum(weights, keys), weights  # [B, D], [B, N]


class _KeyGrad:
    """The gradient of the shared keys: ``sum_t de_t s_t (1 - s_t)``, times ``4 v`` when handed out."""

    def __init__(self) -> None:
        self.total: Tensor | None = None  # [B, N, A]
        self.weight: Tensor | None = None  # [A]

    def add(self, de: Tensor, slope: Tensor, weight: Tensor) -> None:
        if self.total is None:
            self.total, self.weight = torch.mul(slope, de.unsqueeze(-1)), weight  # [B, N, A]
        else:
            self.total.addcmul_(slope, de.unsqueeze(-1))  # [B, N, A]

    def take(self) -> Tensor | None:
        total, weight = self.total, self.weight
        self.total = self.weight = None
        return None if total is None or weight is None else total.mul_(4 * weight)  # [B, N, A]


class _KeyGradSink(torch.autograd.Function):
    """Identity on the projected keys that every step reads; the steps give the keys no gradient of their
    own, and this node's backward (after all of theirs) returns the accumulated one."""

    @staticmethod
    def forward(ctx, projected: Tensor, accumulator: _KeyGrad) -> Tensor:  # type: ignore[override]
        ctx.accumulator = accumulator
        ctx.set_materialize_grads(False)
        return projected.view_as(projected)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor | None) -> tuple[Tensor | None, None]:  # type: ignore[override]
        total = ctx.accumulator.take()
        if total is None:
            return grad, None
        return total if grad is None else total.add_(grad), None


class _Energies(torch.autograd.Function):
    """``e = tanh(K + q) v`` ``[B, N]`` for ``K [B, N, A]``, ``q [B, A]``, ``v [A]``, computed as
    ``2 sigmoid(2 (K + q)) v - sum(v)``; ``K``'s gradient goes to the :class:`_KeyGrad` accumulator."""

    @staticmethod
    def forward(ctx, projected: Tensor, query: Tensor, weight: Tensor, accumulator: _KeyGrad) -> Tensor:  # type: ignore[override]
        gate = torch.add(query.unsqueeze(1) * 2, projected, alpha=2).sigmoid_()  # s = sigmoid(2 x) [B, N, A]
        ctx.save_for_backward(gate, weight)
        ctx.accumulator = accumulator
        return torch.matmul(gate, weight).mul_(2).sub_(weight.sum())  # [B, N]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, de: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:  # type: ignore[override]
        gate, weight = ctx.saved_tensors  # [B, N, A], [A]
        keys_grad, query_grad, weight_grad = ctx.needs_input_grad[:3]
        dv = dq = None
        if weight_grad:  # sum de tanh(x) = 2 s^T de - sum(de)
            dv = torch.mv(gate.reshape(-1, gate.shape[-1]).t(), de.reshape(-1)).mul_(2).sub_(de.sum())  # [A]
        if keys_grad or query_grad:
            # s (1 - s) = (1 - tanh(x)^2) / 4, written over the saved s (once_differentiable: read once)
            slope = torch.addcmul(gate, gate, gate, value=-1, out=gate)  # [B, N, A]
            if query_grad:
                dq = torch.bmm(de.unsqueeze(1), slope).squeeze(1).mul_(4 * weight)  # [B, A]
            if keys_grad:
                ctx.accumulator.add(de, slope, weight)
        return None, dq, dv, None
