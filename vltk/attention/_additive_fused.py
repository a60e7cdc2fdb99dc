"""The additive attention of :mod:`vltk.attention.additive` at every step of a teacher-forced time loop,
with a custom forward and backward (:class:`AdditiveLoop`); the maths are those of
:meth:`AdditiveAttention.attend <vltk.attention.additive.AdditiveAttention.attend>`, bitwise in the forward
(``tests/test_additive_loop.py`` compares the two).

Machinery, not the paper: read :mod:`vltk.attention.additive` for the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from vltk.attention.masked import masked_softmax, weighted_sum

if TYPE_CHECKING:
    from vltk.attention.additive import AdditiveAttention


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
