"""The additive attention's time-loop path (custom energies forward/backward, keys' gradient summed in place)
against plain autograd over ``AdditiveAttention.attend``: outputs and every gradient."""

from __future__ import annotations

import pytest
import torch

from vltk.attention import AdditiveAttention
from vltk.attention._additive_fused import _Energies, _KeyGrad, _KeyGradSink
from vltk.decoders import DECODERS, ShowAttendTellDecoder
from vltk.registry import build
from vltk.types import ImageFeatures

B, N, D, Q, A, T = 3, 7, 5, 6, 8, 4


def make_inputs(dtype: torch.dtype):
    torch.manual_seed(0)
    attention = AdditiveAttention(Q, D, dim=A).to(dtype)
    keys = torch.randn(B, N, D, dtype=dtype, requires_grad=True)  # [B, N, D]
    queries = torch.randn(T, B, Q, dtype=dtype, requires_grad=True)  # [T, B, Q]
    mask = torch.ones(B, N, dtype=torch.bool)  # [B, N]
    mask[1, 5:] = False
    targets = torch.randn(T, B, D, dtype=dtype)  # [T, B, D]
    return attention, keys, queries, mask, targets


def run(looped: bool, dtype: torch.dtype, frozen: tuple[str, ...] = ()):
    """Outputs and gradients of ``T`` steps over the same keys, each query depending on the last context."""
    attention, keys, queries, mask, targets = make_inputs(dtype)
    for name in frozen:
        getattr(attention, name).requires_grad_(False)
    projected = attention.precompute(keys)  # [B, N, A]
    attend = attention.loop(projected).attend if looped else None
    contexts, weights, carry = [], [], 0
    for t in range(T):
        query = attention.query_proj(queries[t] + carry)  # [B, A]
        if looped:
            context, alpha = attend(query, keys, mask)
        else:
            context, alpha = attention.attend(query, keys, projected, mask)
        carry = context.sum(-1, keepdim=True)  # [B, 1]: the next query depends on this step
        contexts.append(context)
        weights.append(alpha)
    context, alpha = torch.stack(contexts), torch.stack(weights)  # [T, B, D], [T, B, N]
    loss = (context * targets).sum() + alpha.pow(2).sum()
    loss.backward()
    grads = {"keys": keys.grad, "queries": queries.grad}
    grads.update({name: p.grad for name, p in attention.named_parameters() if p.requires_grad})
    return context, alpha, grads


@pytest.mark.parametrize(
    "frozen", [(), ("key_proj",), ("score",), ("query_proj", "score")], ids=["all", "keys", "v", "q-v"]
)
def test_loop_equals_plain_autograd_in_float64(frozen: tuple[str, ...]) -> None:
    fused_context, fused_alpha, fused_grads = run(True, torch.float64, frozen)
    context, alpha, grads = run(False, torch.float64, frozen)
    assert torch.allclose(fused_context, context, atol=1e-12)
    assert torch.allclose(fused_alpha, alpha, atol=1e-12)
    assert fused_grads.keys() == grads.keys() and len(grads) >= 2
    for name, grad in grads.items():
        assert grad is not None and fused_grads[name] is not None, name
        assert torch.allclose(fused_grads[name], grad, atol=1e-12), name


def test_loop_is_close_in_float32() -> None:
    """``tanh`` computed as ``2 sigmoid(2x) - 1`` differs from torch's ``tanh`` by rounding only."""
    fused_context, fused_alpha, fused_grads = run(True, torch.float32)
    context, alpha, grads = run(False, torch.float32)
    assert torch.allclose(fused_context, context, atol=1e-5)
    assert torch.allclose(fused_alpha, alpha, atol=1e-6)
    for name, grad in grads.items():
        assert torch.allclose(fused_grads[name], grad, atol=1e-5, rtol=1e-4), name


def test_loop_without_gradients_is_plain_attend() -> None:
    attention, keys, queries, mask, _ = make_inputs(torch.float32)
    with torch.no_grad():
        projected = attention.precompute(keys)  # [B, N, A]
        loop = attention.loop(projected)
        query = attention.query_proj(queries[0])  # [B, A]
        got = loop.attend(query, keys, mask)
        expected = attention.attend(query, keys, projected, mask)
    assert not loop.fused
    assert all(torch.equal(g, e) for g, e in zip(got, expected, strict=True))


def test_second_backward_through_the_loop_raises() -> None:
    """The backward reuses the saved activations' memory, so a retained graph cannot be replayed silently."""
    attention, keys, queries, mask, _ = make_inputs(torch.float64)
    loop = attention.loop(attention.precompute(keys))
    context, _ = loop.attend(attention.query_proj(queries[0]), keys, mask)
    context.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        context.sum().backward()


def test_decoder_with_frozen_attention_keys_matches_the_generic_loop() -> None:
    """Show, Attend and Tell's teacher forcing (the loop path) with frozen keys and image features that
    need no gradient: the same gradients as the base class's step-by-step loop."""
    torch.manual_seed(0)
    spec = {"name": "show_attend_tell", "embed_dim": 8, "hidden_dim": 12, "dropout": 0.0}
    decoder = build(DECODERS, spec, path="model.decoder", vocab_size=11, feature_dim=D).double()
    decoder.attention.key_proj.requires_grad_(False)
    grid = torch.randn(B, N, D, dtype=torch.float64)  # [B, N, D]
    tokens = torch.randint(3, 11, (B, T))  # [B, T]
    results = []
    for teacher_forcing in (decoder.teacher_forcing, super(ShowAttendTellDecoder, decoder).teacher_forcing):
        decoder.zero_grad(set_to_none=True)
        out = teacher_forcing(ImageFeatures(grid, grid.mean(1), None), tokens)
        (out.logits.sum() + out.attention.pow(2).sum()).backward()
        results.append((out.logits, {n: p.grad for n, p in decoder.named_parameters() if p.requires_grad}))
    (fused, fused_grads), (generic, generic_grads) = results
    assert torch.allclose(fused, generic, atol=1e-10)
    assert fused_grads.keys() == generic_grads.keys()
    for name, grad in generic_grads.items():
        assert torch.allclose(fused_grads[name], grad, atol=1e-10), name


def test_energies_with_any_upstream_gradient_in_float64() -> None:
    """The energies alone (no softmax after them, whose gradient sums to zero over regions) against
    ``tanh(K + q) v`` under autograd, with the keys' gradient summed over steps."""
    torch.manual_seed(0)
    weight = torch.randn(A, dtype=torch.float64, requires_grad=True)  # [A]
    results = []
    for fused in (True, False):
        torch.manual_seed(1)
        projected = torch.randn(B, N, A, dtype=torch.float64, requires_grad=True)  # [B, N, A]
        queries = torch.randn(T, B, A, dtype=torch.float64, requires_grad=True)  # [T, B, A]
        upstream = torch.randn(T, B, N, dtype=torch.float64)  # [T, B, N]
        weight.grad = None
        accumulator = _KeyGrad()
        keys = _KeyGradSink.apply(projected, accumulator) if fused else projected  # [B, N, A]
        energies = torch.stack(
            [
                _Energies.apply(keys, queries[t], weight, accumulator)
                if fused
                else torch.tanh(keys + queries[t].unsqueeze(1)) @ weight
                for t in range(T)
            ]
        )  # [T, B, N]
        (energies * upstream).sum().backward()
        results.append((energies, projected.grad, queries.grad, weight.grad))
    for got, expected in zip(*results, strict=True):
        assert torch.allclose(got, expected, atol=1e-12)
