"""The one-direction RNN text encoder runs on the padded batch (commit ecd14c0); it must be the same
computation as the packed one it replaced, forward *and* backward, for every cell, several layers and rows
of every length (0 included), or VQA / dialog / navigation training would silently learn something else.

The reference is torch's own packed path (``pack_padded_sequence`` -> RNN -> ``h_n`` of the last layer),
i.e. what ``RNNTextEncoder`` computed before that commit. In float64 the two agree to rounding; in float32
they differ by rounding only, which is why a retrained model is not bit-identical to one trained before.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vltk.encoders import RNNTextEncoder
from vltk.types import TextFeatures


def _packed_reference(encoder: RNNTextEncoder, tokens: torch.Tensor, lengths: torch.Tensor) -> TextFeatures:
    """The encoder's computation through a packed sequence (one direction)."""
    batch, steps = tokens.shape
    embedded = encoder.dropout(encoder.embedding(tokens))  # [B, T, E]
    packed = pack_padded_sequence(embedded, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
    outputs, hidden = encoder.rnn(packed)  # packed [sum(lengths), H], [layers, B, H]
    states, _ = pad_packed_sequence(outputs, batch_first=True, total_length=steps)  # [B, T, H]
    h_n = hidden[0] if isinstance(hidden, tuple) else hidden  # [layers, B, H]
    empty = lengths == 0  # [B]
    final = h_n[-1].masked_fill(empty[:, None], 0.0)  # [B, H]
    states = states.masked_fill(empty[:, None, None], 0.0)  # [B, T, H]
    mask = torch.arange(steps)[None, :] < lengths[:, None]  # [B, T]
    return TextFeatures(states=states, final=final, mask=mask)


def _loss(features: TextFeatures) -> torch.Tensor:
    # weights every position and unit differently, so a state read from the wrong step cannot cancel out
    weights = torch.linspace(-1.0, 2.0, features.states[0].numel(), dtype=features.states.dtype)
    return features.final.pow(2).sum() + (features.states.flatten(1) * weights).sum()


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_padded_path_equals_packed_forward_and_gradients(cell: str, num_layers: int) -> None:
    torch.manual_seed(0)
    options: dict = {"embed_dim": 8, "hidden_dim": 12, "cell": cell, "num_layers": num_layers}
    encoder = RNNTextEncoder(30, **options).double()
    lengths = torch.tensor([9, 1, 0, 5, 9, 3, 7, 2])  # [B]: full, single word, empty, in between
    tokens = torch.randint(1, 30, (len(lengths), 9))  # [B, T]
    tokens = tokens.masked_fill(torch.arange(9)[None, :] >= lengths[:, None], 0)  # right-padded with 0

    params = list(encoder.parameters())
    padded = encoder(tokens, lengths)
    padded_grads = torch.autograd.grad(_loss(padded), params)
    packed = _packed_reference(encoder, tokens, lengths)
    packed_grads = torch.autograd.grad(_loss(packed), params)

    torch.testing.assert_close(padded.final, packed.final, rtol=0, atol=1e-12)
    torch.testing.assert_close(padded.states, packed.states, rtol=0, atol=1e-12)
    assert torch.equal(padded.mask, packed.mask)
    for (name, _), got, want in zip(encoder.named_parameters(), padded_grads, packed_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=name)
    # the last real state of every row, not the state after the padding
    for row, length in enumerate(lengths.tolist()):
        if length:
            torch.testing.assert_close(padded.final[row], padded.states[row, length - 1])


def test_padding_steps_would_change_the_state() -> None:
    """The check above is not vacuous: running on through the padding gives a different final state."""
    torch.manual_seed(0)
    encoder = RNNTextEncoder(30, embed_dim=8, hidden_dim=12, cell="gru").double()
    tokens = torch.tensor([[5, 6, 7, 0, 0, 0]])
    outputs, _ = encoder.rnn(encoder.embedding(tokens))  # [1, T, H]
    final = encoder(tokens).final  # [1, H]
    torch.testing.assert_close(final[0], outputs[0, 2])
    assert (final[0] - outputs[0, -1]).abs().max() > 1e-3
