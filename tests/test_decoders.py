"""Caption decoders: teacher forcing, gradients, step/loop agreement, attention, the registry, the state."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vltk.decoders import DECODERS, DecoderState, ShowAttendTellDecoder, ShowTellDecoder
from vltk.errors import ConfigError
from vltk.registry import build
from vltk.types import ImageFeatures

B, N, D, V, T = 3, 6, 10, 13, 5

VARIANTS = [
    ("show_tell", {"cell": "lstm"}),
    ("show_tell", {"cell": "gru"}),
    ("show_attend_tell", {"cell": "lstm"}),
    ("show_attend_tell", {"cell": "gru", "gating": False, "attention": {"name": "general"}}),
    ("show_attend_tell", {"cell": "lstm", "attention": {"name": "dot"}, "hidden_dim": D}),
]
IDS = ["tell-lstm", "tell-gru", "sat-lstm", "sat-gru-general-nogate", "sat-lstm-dot"]


def make_decoder(name: str, options: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    spec = {"name": name, "embed_dim": 8, "hidden_dim": 12, "dropout": 0.3, **options}
    return build(DECODERS, spec, path="model.decoder", vocab_size=V, feature_dim=D)


def make_features(with_mask: bool = True) -> ImageFeatures:
    torch.manual_seed(1)
    grid = torch.randn(B, N, D)  # [B, N, D]
    mask = torch.ones(B, N, dtype=torch.bool)  # [B, N]
    mask[1, 4:] = False
    return ImageFeatures(grid=grid, pooled=grid.mean(1), mask=mask if with_mask else None, grid_size=(2, 3))


def make_tokens() -> torch.Tensor:
    torch.manual_seed(2)
    tokens = torch.randint(3, V, (B, T))  # [B, T]
    tokens[:, 0] = 1
    tokens[2, 3:] = 0  # padding after a short caption
    return tokens


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_teacher_forcing_shapes(name: str, options: dict) -> None:
    decoder = make_decoder(name, options)
    out = decoder.teacher_forcing(make_features(), make_tokens())
    assert out.logits.shape == (B, T, V)
    assert decoder.vocab_size == V and decoder.hidden_dim == options.get("hidden_dim", 12)
    if name == "show_tell":
        assert out.attention is None and out.gates is None
    else:
        assert out.attention is not None and out.attention.shape == (B, T, N)
        assert (out.gates is not None) == options.get("gating", True)
        if out.gates is not None:
            assert out.gates.shape == (B, T) and ((out.gates > 0) & (out.gates < 1)).all()


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_every_parameter_gets_a_gradient(name: str, options: dict) -> None:
    decoder = make_decoder(name, options).train()
    features = make_features()
    tokens = make_tokens()
    out = decoder.teacher_forcing(features, tokens[:, :-1])
    loss = F.cross_entropy(out.logits.reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=0)
    if out.attention is not None:  # the doubly stochastic regulariser, as a training system would add it
        loss = loss + (1 - out.attention.sum(1)).pow(2).mean()
    loss.backward()
    for param_name, param in decoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name
    assert torch.equal(decoder.embedding.weight.grad[0], torch.zeros(8))  # pad embedding is frozen


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_step_by_step_equals_teacher_forcing_in_eval(name: str, options: dict) -> None:
    decoder = make_decoder(name, options).eval()
    features, tokens = make_features(), make_tokens()
    with torch.no_grad():
        out = decoder.teacher_forcing(features, tokens)
        state = decoder.init_state(features)
        for t in range(T):
            logprobs, state = decoder.step(tokens[:, t], state)
            assert logprobs.shape == (B, V)
            assert torch.allclose(logprobs, out.logits[:, t].log_softmax(-1), atol=1e-5), t
            if out.attention is not None:
                assert torch.allclose(state.attention, out.attention[:, t], atol=1e-6)


SAT_VARIANTS = [options for name, options in VARIANTS if name == "show_attend_tell"] + [
    {"cell": "gru"},  # GRU with additive attention and the gate
    {"cell": "lstm", "gating": False, "attention": {"name": "general"}},
]


@pytest.mark.parametrize(
    "options", SAT_VARIANTS, ids=["lstm", "gru-general-nogate", "lstm-dot", "gru", "lstm-general"]
)
def test_rearranged_teacher_forcing_equals_the_generic_loop_with_gradients(options: dict) -> None:
    """Show, Attend and Tell hoists the word projections and the deep output out of its time loop and
    fuses the matmuls of h_{t-1}: the outputs and every parameter's gradient equal the base class's loop of
    ``_advance`` (the same code as ``step``)."""
    decoder = make_decoder("show_attend_tell", options).double().eval()
    features = make_features()
    features = ImageFeatures(features.grid.double(), features.pooled.double(), features.mask)
    tokens = make_tokens()
    results = []
    for teacher_forcing in (decoder.teacher_forcing, super(ShowAttendTellDecoder, decoder).teacher_forcing):
        decoder.zero_grad(set_to_none=True)
        out = teacher_forcing(features, tokens)
        loss = F.cross_entropy(out.logits.reshape(-1, V), tokens.roll(-1, 1).reshape(-1), ignore_index=0)
        loss = loss + (1 - out.attention.sum(1)).pow(2).mean()
        if out.gates is not None:
            loss = loss + out.gates.sum()
        loss.backward()
        grads = {name: p.grad.clone() for name, p in decoder.named_parameters()}
        results.append((out, grads))
    (fused, fused_grads), (generic, generic_grads) = results
    assert torch.allclose(fused.logits, generic.logits, atol=1e-10)
    assert torch.allclose(fused.attention, generic.attention, atol=1e-10)
    assert (fused.gates is None) == (generic.gates is None)
    if fused.gates is not None:
        assert torch.allclose(fused.gates, generic.gates, atol=1e-10)
    assert fused_grads.keys() == generic_grads.keys()
    for name, grad in fused_grads.items():
        assert torch.allclose(grad, generic_grads[name], atol=1e-10), name


def test_rearranged_teacher_forcing_with_a_frozen_cell() -> None:
    """With the cell frozen, the fused matmul still gives the attention and the gate their gradients."""
    decoder = make_decoder("show_attend_tell", {}).double().eval()
    decoder.rnn.requires_grad_(False)
    grid = make_features().grid.double().requires_grad_(True)
    grads = []
    for teacher_forcing in (decoder.teacher_forcing, super(ShowAttendTellDecoder, decoder).teacher_forcing):
        decoder.zero_grad(set_to_none=True)
        grid.grad = None
        teacher_forcing(ImageFeatures(grid, grid.mean(1), None), make_tokens()).logits.sum().backward()
        grads.append([grid.grad] + [p.grad for p in decoder.parameters() if p.requires_grad])
    assert decoder.rnn.weight_hh.grad is None
    for fused, generic in zip(*grads, strict=True):
        assert torch.allclose(fused, generic, atol=1e-10)


def test_dropout_makes_training_stochastic_and_eval_deterministic() -> None:
    decoder = make_decoder("show_attend_tell", {})
    features, tokens = make_features(), make_tokens()
    decoder.train()
    assert not torch.allclose(decoder(features, tokens).logits, decoder(features, tokens).logits)
    decoder.eval()
    assert torch.equal(decoder(features, tokens).logits, decoder(features, tokens).logits)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_attention_weights_sum_to_one_and_skip_padding(cell: str) -> None:
    decoder = make_decoder("show_attend_tell", {"cell": cell}).eval()
    features = make_features()
    out = decoder.teacher_forcing(features, make_tokens())
    assert torch.allclose(out.attention.sum(-1), torch.ones(B, T), atol=1e-6)
    assert torch.equal(out.attention[1, :, 4:], torch.zeros(T, N - 4))


def test_padding_regions_do_not_change_the_output() -> None:
    decoder = make_decoder("show_attend_tell", {}).eval()
    features, tokens = make_features(), make_tokens()
    noisy = ImageFeatures(features.grid.clone(), features.pooled, features.mask, features.grid_size)
    noisy.grid[1, 4:] = 100.0  # garbage in padded regions (the mean feature is masked too)
    assert torch.allclose(decoder(features, tokens).logits[1], decoder(noisy, tokens).logits[1], atol=1e-5)


def test_show_tell_sees_the_image_first() -> None:
    decoder = make_decoder("show_tell", {}).eval()
    features, tokens = make_features(), make_tokens()
    other = ImageFeatures(features.grid, features.pooled.flip(0), None, None)
    assert not torch.allclose(decoder(features, tokens).logits, decoder(other, tokens).logits)


def test_registry_build_with_nested_attention_spec() -> None:
    spec = {"name": "show_attend_tell", "hidden_dim": 32, "attention": {"name": "general"}}
    decoder = build(DECODERS, spec, path="model.decoder", vocab_size=V, feature_dim=D)
    assert isinstance(decoder, ShowAttendTellDecoder)
    assert decoder.attention.key_proj.weight.shape == (32, D)
    default = build(
        DECODERS,
        {"name": "show_attend_tell"},
        path="model.decoder",
        vocab_size=V,
        feature_dim=D,
    )
    assert default.attention.dim == 256 and default.hidden_dim == 512
    bad = {"name": "show_attend_tell", "attention": {"name": "additive", "dimension": 4}}
    with pytest.raises(ConfigError, match=r"model\.decoder\.attention\.dimension"):
        build(DECODERS, bad, path="model.decoder", vocab_size=V, feature_dim=D)
    with pytest.raises(ConfigError, match=r"model\.decoder\.attention\.name"):
        build(
            DECODERS,
            {"name": "show_attend_tell", "attention": {"name": "dott"}},
            path="model.decoder",
            vocab_size=V,
            feature_dim=D,
        )
    with pytest.raises(ConfigError, match="derived"):
        build(
            DECODERS,
            {"name": "show_tell", "vocab_size": 4},
            path="model.decoder",
            vocab_size=V,
            feature_dim=D,
        )


def test_bad_cell_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="did you mean 'lstm'"):
        ShowTellDecoder(V, D, cell="lsmt")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"model\.decoder\.cell"):
        build(
            DECODERS,
            {"name": "show_tell", "cell": "rnn"},
            path="model.decoder",
            vocab_size=V,
            feature_dim=D,
        )


def test_works_in_float64() -> None:
    decoder = make_decoder("show_attend_tell", {}).double().eval()
    features = make_features()
    features = ImageFeatures(features.grid.double(), features.pooled.double(), features.mask)
    out = decoder(features, make_tokens())
    logprobs, _ = decoder.step(make_tokens()[:, 0], decoder.init_state(features))
    assert out.logits.dtype == torch.float64 and logprobs.dtype == torch.float64


def test_attention_keys_are_projected_once_per_image() -> None:
    decoder = make_decoder("show_attend_tell", {}).eval()
    calls = []
    decoder.attention.key_proj.register_forward_hook(lambda *_: calls.append(1))
    decoder.teacher_forcing(make_features(), make_tokens())
    assert len(calls) == 1


def test_state_expand_and_select() -> None:
    decoder = make_decoder("show_attend_tell", {}).eval()
    state = decoder.init_state(make_features())
    expanded = state.expand(2)
    assert expanded.batch_size == 2 * B
    assert torch.equal(expanded.h[0], state.h[0]) and torch.equal(expanded.h[1], state.h[0])
    assert torch.equal(expanded.h[2], state.h[1]) and torch.equal(expanded.grid[3], state.grid[1])
    # within-group selection: recurrent tensors follow, constants are left as they are (no copy)
    rows = torch.tensor([1, 1, 2, 3, 5, 4])
    selected = expanded.select(rows)
    assert torch.equal(selected.h, expanded.h[rows]) and torch.equal(selected.c, expanded.c[rows])
    assert selected.grid is expanded.grid and selected.projected_keys is expanded.projected_keys
    # a different number of rows re-indexes the constants too
    subset = expanded.select(torch.tensor([4, 0]))
    assert subset.batch_size == 2 and torch.equal(subset.grid, expanded.grid[[4, 0]])
    assert torch.equal(subset.mask, expanded.mask[[4, 0]])
    moved = expanded.select(torch.tensor([5, 4, 3, 2, 1, 0]), reindex_constants=True)
    assert torch.equal(moved.grid, expanded.grid.flip(0))


def test_state_extension_by_subclass() -> None:
    from dataclasses import dataclass, field

    from vltk.decoders.state import CONSTANT

    @dataclass
    class StackedState(DecoderState):
        layers: tuple[torch.Tensor, ...] = ()
        memory: torch.Tensor | None = field(default=None, metadata=CONSTANT)

    state = StackedState(
        h=torch.arange(2.0)[:, None],
        layers=(torch.arange(2.0), torch.arange(2.0) + 10),
        memory=torch.arange(2.0),
    )
    expanded = state.expand(3).select(torch.tensor([2, 2, 2, 3, 4, 5]))
    assert torch.equal(expanded.layers[1], torch.tensor([10.0, 10, 10, 11, 11, 11]))
    assert torch.equal(expanded.memory, torch.tensor([0.0, 0, 0, 1, 1, 1]))
