"""Every cell against its equations (written out here independently), and fused stacks against step cells."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vltk.errors import ConfigError
from vltk.rnn import (
    CELLS,
    FUSED_CELLS,
    ElmanCell,
    GRUCell,
    LSTMCell,
    MUT1Cell,
    MUT2Cell,
    MUT3Cell,
    StackedRNN,
)

B, IN, H = 3, 5, 4
sig = torch.sigmoid


def _x_h(input_dim: int = IN, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, input_dim, generator=g, dtype=torch.float64),
        torch.randn(B, H, generator=g, dtype=torch.float64),
        torch.randn(B, H, generator=g, dtype=torch.float64),
    )


def _lin(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    out = x @ layer.weight.T
    return out + layer.bias if layer.bias is not None else out


def test_elman_equation():
    cell = ElmanCell(IN, H).double()
    x, h, _ = _x_h()
    out, (h1,) = cell(x, (h,))
    expected = torch.tanh(x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh)
    torch.testing.assert_close(out, expected)
    assert out is h1


def test_lstm_equation():
    cell = LSTMCell(IN, H).double()
    x, h, c = _x_h()
    out, (h1, c1) = cell(x, (h, c))
    pre = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = pre.chunk(4, dim=1)
    c_expected = sig(f) * c + sig(i) * torch.tanh(g)
    torch.testing.assert_close(c1, c_expected)
    torch.testing.assert_close(h1, sig(o) * torch.tanh(c_expected))
    torch.testing.assert_close(out, h1)


def test_gru_equation():
    cell = GRUCell(IN, H).double()
    x, h, _ = _x_h()
    out, _ = cell(x, (h,))
    wi = (x @ cell.weight_ih.T + cell.bias_ih).chunk(3, dim=1)
    wh = (h @ cell.weight_hh.T + cell.bias_hh).chunk(3, dim=1)
    r, z = sig(wi[0] + wh[0]), sig(wi[1] + wh[1])
    n = torch.tanh(wi[2] + r * wh[2])
    torch.testing.assert_close(out, (1 - z) * n + z * h)


def test_mut1_equation():
    cell = MUT1Cell(H, H).double()
    x, h, _ = _x_h(H)
    out, _ = cell(x, (h,))
    z = sig(_lin(cell.W_xz, x))
    r = sig(_lin(cell.W_xr, x) + h @ cell.W_hr.weight.T)
    expected = torch.tanh((r * h) @ cell.W_hh.weight.T + torch.tanh(x) + cell.W_hh.bias) * z + h * (1 - z)
    torch.testing.assert_close(out, expected)


def test_mut2_equation():
    cell = MUT2Cell(H, H).double()
    x, h, _ = _x_h(H)
    out, _ = cell(x, (h,))
    z = sig(_lin(cell.W_xz, x) + h @ cell.W_hz.weight.T)
    r = sig(x + h @ cell.W_hr.weight.T + cell.W_hr.bias)
    candidate = torch.tanh((r * h) @ cell.W_hh.weight.T + x @ cell.W_xh.weight.T + cell.W_hh.bias)
    torch.testing.assert_close(out, candidate * z + h * (1 - z))


def test_mut3_equation():
    cell = MUT3Cell(IN, H).double()
    x, h, _ = _x_h()
    out, _ = cell(x, (h,))
    z = sig(_lin(cell.W_xz, x) + torch.tanh(h) @ cell.W_hz.weight.T)
    r = sig(_lin(cell.W_xr, x) + h @ cell.W_hr.weight.T)
    candidate = torch.tanh((r * h) @ cell.W_hh.weight.T + x @ cell.W_xh.weight.T + cell.W_hh.bias)
    torch.testing.assert_close(out, candidate * z + h * (1 - z))


@pytest.mark.parametrize("name", ["mut1", "mut2"])
def test_mut_cells_that_add_the_input_need_square_sizes(name):
    with pytest.raises(ConfigError, match="input_dim must equal hidden_dim"):
        CELLS[name](IN, H)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_cell_zero_state_backward(name):
    dim = H if name in ("mut1", "mut2") else IN
    cell = CELLS[name](dim, H)
    x = torch.randn(B, dim)
    out, state = cell(x)  # zero initial state
    assert out.shape == (B, H) and len(state) == cell.state_size
    out2, _ = cell(x, state)
    out2.sum().backward()
    for pname, p in cell.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", sorted(FUSED_CELLS))
def test_cells_equal_torch_cells(name):
    torch_cells = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
    ours = CELLS[name](IN, H)
    theirs = torch_cells[name](IN, H)
    theirs.load_state_dict(ours.state_dict())  # same parameter names and layout
    x, h, c = (t.float() for t in _x_h())
    if name == "lstm":
        torch.testing.assert_close(ours(x, (h, c))[0], theirs(x, (h, c))[0])
    else:
        torch.testing.assert_close(ours(x, (h,))[0], theirs(x, h))


@pytest.mark.parametrize("name", sorted(FUSED_CELLS))
def test_fused_stack_equals_step_stack(name):
    torch.manual_seed(0)
    fused = StackedRNN(name, IN, H, num_layers=2, fused=True)
    steps = StackedRNN(name, IN, H, num_layers=2, fused=False)
    assert fused.fused and not steps.fused
    steps.load_unfused(fused)
    x = torch.randn(B, 7, IN)
    state = tuple(torch.randn_like(s) for s in fused.init_state(B))
    out_f, state_f = fused(x, state)
    out_s, state_s = steps(x, state)
    torch.testing.assert_close(out_f, out_s, atol=1e-5, rtol=1e-5)
    for a, b in zip(state_f, state_s):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    back = StackedRNN(name, IN, H, num_layers=2, fused=True)
    back.load_unfused(steps)
    torch.testing.assert_close(back(x, state)[0], out_f)


@pytest.mark.parametrize("name", ["mut1", "mut3"])
def test_unfused_stack_runs_mut_cells(name):
    stack = StackedRNN(name, H, H, num_layers=2, dropout=0.1)
    assert not stack.fused
    out, state = stack(torch.randn(B, 6, H))
    assert out.shape == (B, 6, H) and state[0].shape == (2, B, H)
    h, _ = stack.step(torch.randn(B, H), state)
    assert h.shape == (B, H)


def test_unknown_cell_names_the_choices():
    with pytest.raises(ConfigError, match="did you mean 'lstm'"):
        StackedRNN("lstn", IN, H)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_decoder_cells_are_vltk_cells_with_torch_parameter_names(name):
    from vltk.decoders.base import cell_step, make_cell

    cell = make_cell(name, IN, H)
    torch_cell = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}[name](IN, H)
    assert isinstance(cell, CELLS[name])
    torch_cell.load_state_dict(cell.state_dict())  # old captioning checkpoints load unchanged
    x, h, c = (t.float() for t in _x_h())
    h1, c1 = cell_step(cell, x, h, c if name == "lstm" else None)
    expected = torch_cell(x, (h, c))[0] if name == "lstm" else torch_cell(x, h)
    torch.testing.assert_close(h1, expected)
    assert (c1 is None) == (name == "gru")
