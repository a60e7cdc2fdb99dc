"""RNN text encoder: shapes, packing ignores padding, directions, gradients, every cell."""

from __future__ import annotations

import pytest
import torch

from vltk.encoders import TEXT_ENCODERS, RNNTextEncoder
from vltk.errors import ConfigError, DataError
from vltk.registry import build
from vltk.types import TextFeatures

CELLS = ["lstm", "gru", "rnn"]


def _encoder(cell: str = "lstm", **kwargs: object) -> RNNTextEncoder:
    torch.manual_seed(0)
    options = {"embed_dim": 6, "hidden_dim": 5, "cell": cell, **kwargs}
    return RNNTextEncoder(20, **options).eval()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_shapes_and_mask(cell: str, bidirectional: bool) -> None:
    encoder = _encoder(cell, bidirectional=bidirectional, num_layers=2)
    tokens = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0], [9, 0, 0, 0]])
    out = encoder(tokens)
    width = 10 if bidirectional else 5
    assert encoder.out_dim == width
    assert isinstance(out, TextFeatures)
    assert out.states.shape == (3, 4, width)
    assert out.final.shape == (3, width)
    assert out.mask.tolist() == [[True] * 4, [True, True, False, False], [True, False, False, False]]
    assert torch.all(out.states[~out.mask] == 0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_the_encoding(cell: str, bidirectional: bool) -> None:
    encoder = _encoder(cell, bidirectional=bidirectional, num_layers=2)
    sentence = torch.tensor([[3, 4, 5]])
    alone = encoder(sentence)
    padded = encoder(torch.tensor([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6]]))
    torch.testing.assert_close(padded.final[0], alone.final[0])
    torch.testing.assert_close(padded.states[0, :3], alone.states[0])


def test_final_is_last_real_step_and_backward_first_step() -> None:
    encoder = _encoder("gru", bidirectional=True)
    out = encoder(torch.tensor([[3, 4, 5, 0], [6, 7, 8, 9]]))
    hidden = 5
    # forward half: output at the last real token; backward half: output at position 0.
    torch.testing.assert_close(out.final[0, :hidden], out.states[0, 2, :hidden])
    torch.testing.assert_close(out.final[1, :hidden], out.states[1, 3, :hidden])
    torch.testing.assert_close(out.final[:, hidden:], out.states[:, 0, hidden:])


def test_explicit_lengths_override_pad_detection() -> None:
    encoder = _encoder("lstm")
    tokens = torch.tensor([[3, 4, 5, 6]])
    short = encoder(tokens, lengths=torch.tensor([2]))
    torch.testing.assert_close(short.final, encoder(tokens[:, :2]).final)
    assert short.mask.tolist() == [[True, True, False, False]]
    with pytest.raises(DataError, match="lengths"):
        encoder(tokens, lengths=torch.tensor([5]))


def test_empty_rows_give_zeros() -> None:
    encoder = _encoder("lstm", bidirectional=True)
    out = encoder(torch.tensor([[3, 4], [0, 0]]))
    assert torch.all(out.final[1] == 0) and torch.all(out.states[1] == 0)
    assert not out.mask[1].any()
    assert out.final[0].abs().sum() > 0


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_reach_every_parameter(cell: str) -> None:
    encoder = _encoder(cell, bidirectional=True, num_layers=2, dropout=0.1).train()
    out = encoder(torch.tensor([[3, 4, 5], [6, 7, 0]]))
    (out.states.sum() + out.final.pow(2).sum()).backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert torch.all(encoder.embedding.weight.grad[0] == 0)  # the pad embedding never learns


def test_build_from_registry_and_errors() -> None:
    encoder = build(TEXT_ENCODERS, {"name": "rnn", "cell": "gru", "hidden_dim": 7}, vocab_size=11)
    assert isinstance(encoder.rnn, torch.nn.GRU)
    assert encoder.out_dim == 7
    with pytest.raises(ConfigError, match="derived"):
        build(TEXT_ENCODERS, {"name": "rnn", "vocab_size": 5}, vocab_size=11)
    with pytest.raises(ConfigError, match="gru"):
        RNNTextEncoder(11, cell="gur")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="pad_id"):
        RNNTextEncoder(11, pad_id=11)
