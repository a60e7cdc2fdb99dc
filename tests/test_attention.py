"""Attention modules: shapes, normalisation, masking, gradients, the registry and the key precompute."""

from __future__ import annotations

import pytest
import torch

from vltk.attention import ATTENTIONS, AdditiveAttention, DotAttention, GeneralAttention, masked_softmax
from vltk.errors import ConfigError
from vltk.registry import build

B, N, Q, D = 3, 5, 6, 8


def make(name: str, query_dim: int = Q, key_dim: int = D) -> torch.nn.Module:
    return build(
        ATTENTIONS,
        {"name": name},
        path="model.decoder.attention",
        query_dim=query_dim,
        key_dim=key_dim,
    )


def inputs(query_dim: int = Q, key_dim: int = D) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    query = torch.randn(B, query_dim, requires_grad=True)  # [B, Q]
    keys = torch.randn(B, N, key_dim, requires_grad=True)  # [B, N, D]
    mask = torch.ones(B, N, dtype=torch.bool)  # [B, N]
    mask[1, 3:] = False
    mask[2, 1:] = False
    return query, keys, mask


DIMS = {"additive": (Q, D), "general": (Q, D), "dot": (D, D)}


@pytest.mark.parametrize("name", sorted(ATTENTIONS))
def test_shapes_and_normalisation(name: str) -> None:
    query_dim, key_dim = DIMS[name]
    attention = make(name, query_dim, key_dim)
    query, keys, _ = inputs(query_dim, key_dim)
    context, weights = attention(query, keys, attention.precompute(keys), None)
    assert attention.out_dim == key_dim
    assert context.shape == (B, key_dim)
    assert weights.shape == (B, N)
    assert torch.allclose(weights.sum(-1), torch.ones(B), atol=1e-6)
    assert torch.allclose(context, torch.einsum("bn,bnd->bd", weights, keys), atol=1e-6)


@pytest.mark.parametrize("name", sorted(ATTENTIONS))
def test_masked_regions_get_exactly_zero_weight(name: str) -> None:
    query_dim, key_dim = DIMS[name]
    attention = make(name, query_dim, key_dim)
    query, keys, mask = inputs(query_dim, key_dim)
    _, weights = attention(query, keys, attention.precompute(keys), mask)
    assert torch.equal(weights[~mask], torch.zeros(int((~mask).sum())))
    assert torch.allclose(weights.sum(-1), torch.ones(B), atol=1e-6)
    assert weights[2, 0].item() == pytest.approx(1.0)  # the only real region takes all the weight


@pytest.mark.parametrize("name", sorted(ATTENTIONS))
def test_gradients_reach_every_parameter_and_the_inputs(name: str) -> None:
    query_dim, key_dim = DIMS[name]
    attention = make(name, query_dim, key_dim)
    query, keys, mask = inputs(query_dim, key_dim)
    context, weights = attention(query, keys, attention.precompute(keys), mask)
    (context.pow(2).sum() + weights.pow(2).sum()).backward()
    for param_name, param in attention.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name
    assert query.grad is not None and query.grad.abs().sum() > 0
    assert keys.grad is not None and keys.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(ATTENTIONS))
def test_forward_without_precomputed_keys_matches(name: str) -> None:
    query_dim, key_dim = DIMS[name]
    attention = make(name, query_dim, key_dim)
    query, keys, mask = inputs(query_dim, key_dim)
    expected = attention(query, keys, attention.precompute(keys), mask)
    got = attention(query, keys, None, mask)
    assert torch.allclose(expected[0], got[0]) and torch.allclose(expected[1], got[1])


def test_additive_matches_bahdanau_formula() -> None:
    attention = AdditiveAttention(Q, D, dim=7)
    query, keys, _ = inputs()
    projected = attention.precompute(keys)  # [B, N, A]
    assert projected.shape == (B, N, 7)
    hidden = torch.tanh(
        keys @ attention.key_proj.weight.T
        + attention.key_proj.bias
        + (query @ attention.query_proj.weight.T)[:, None]
    )
    scores = (hidden @ attention.score.weight.T).squeeze(-1)  # [B, N]
    _, weights = attention(query, keys, projected, None)
    assert torch.allclose(weights, torch.softmax(scores, -1), atol=1e-6)


def test_general_matches_luong_formula() -> None:
    attention = GeneralAttention(Q, D)
    query, keys, _ = inputs()
    assert attention.precompute(keys).shape == (B, N, Q)
    scores = torch.einsum("bq,qd,bnd->bn", query, attention.key_proj.weight, keys)
    _, weights = attention(query, keys, attention.precompute(keys), None)
    assert torch.allclose(weights, torch.softmax(scores, -1), atol=1e-6)


def test_dot_precompute_is_identity_and_scaled_option() -> None:
    query, keys, _ = inputs(D, D)
    plain, scaled = DotAttention(D, D), DotAttention(D, D, scaled=True)
    assert plain.precompute(keys) is keys
    scores = torch.einsum("bd,bnd->bn", query, keys)
    assert torch.allclose(plain(query, keys)[1], torch.softmax(scores, -1), atol=1e-6)
    assert torch.allclose(scaled(query, keys)[1], torch.softmax(scores / D**0.5, -1), atol=1e-6)


def test_dot_with_mismatched_dims_is_a_config_error_naming_both() -> None:
    with pytest.raises(ConfigError, match=r"query_dim=6.*key_dim=8"):
        make("dot", query_dim=6, key_dim=8)


def test_registry_build_checks_keys() -> None:
    attention = build(
        ATTENTIONS,
        {"name": "additive", "dim": 11},
        path="model.decoder.attention",
        query_dim=Q,
        key_dim=D,
    )
    assert isinstance(attention, AdditiveAttention) and attention.dim == 11
    with pytest.raises(ConfigError, match="model.decoder.attention.dimm"):
        build(
            ATTENTIONS,
            {"name": "additive", "dimm": 3},
            path="model.decoder.attention",
            query_dim=Q,
            key_dim=D,
        )
    with pytest.raises(ConfigError, match="derived"):
        build(
            ATTENTIONS,
            {"name": "general", "key_dim": 3},
            path="model.decoder.attention",
            query_dim=Q,
            key_dim=D,
        )
    with pytest.raises(ConfigError, match="additive"):
        build(
            ATTENTIONS,
            {"name": "addtive"},
            path="model.decoder.attention",
            query_dim=Q,
            key_dim=D,
        )


def test_masked_softmax_all_padding_row_is_zero_not_nan() -> None:
    scores = torch.randn(2, 4)
    mask = torch.tensor([[True, False, True, False], [False, False, False, False]])
    weights = masked_softmax(scores, mask)
    assert torch.isfinite(weights).all()
    assert torch.equal(weights[1], torch.zeros(4))
    assert weights[0].sum().item() == pytest.approx(1.0)


def test_half_precision_masking() -> None:
    scores = torch.randn(2, 4, dtype=torch.bfloat16)
    mask = torch.tensor([[True, False, True, True], [True, True, True, False]])
    weights = masked_softmax(scores, mask)
    assert weights.dtype == torch.bfloat16
    assert torch.equal(weights[~mask].float(), torch.zeros(2))
