"""Embedding + recurrent text encoder for questions, captions and dialog history.

Word embeddings followed by a (bi)directional LSTM (Hochreiter & Schmidhuber 1997), GRU (Cho et al. 2014)
or Elman RNN (Elman 1990), run over packed sequences so padding never enters the recurrence. This is the
question encoder of Antol et al. 2015, *VQA: Visual Question Answering* (LSTM Q + norm I) and the history
/ question encoder of Das et al. 2017, *Visual Dialog* (late fusion); the bidirectional variant is the
encoder of Bahdanau et al. 2015, *Neural Machine Translation by Jointly Learning to Align and Translate*.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vltk.errors import ConfigError, DataError, unknown_choice_message
from vltk.types import TextFeatures

logger = logging.getLogger(__name__)

CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class RNNTextEncoder(nn.Module):
    """Embed right-padded token ids and run a recurrent network over the real tokens only.

    Rows of length 0 (only padding) are run as length 1 to keep ``pack_padded_sequence`` happy and then
    zeroed: their ``states`` and ``final`` are all zeros and their ``mask`` is all ``False``.

    Args:
        vocab_size: number of token ids (wired from the vocabulary, not set in configs).
        embed_dim: word embedding size ``E``.
        hidden_dim: recurrent hidden size ``H`` per direction; ``out_dim = H * directions``.
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"`` (Elman, tanh).
        num_layers: stacked recurrent layers.
        bidirectional: also read right to left; outputs of both directions are concatenated.
        dropout: dropout on the embeddings and between stacked layers.
        pad_id: the padding token id (its embedding is fixed at zero).
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        embed_dim: int = 300,
        hidden_dim: int = 512,
        cell: Literal["lstm", "gru", "rnn"] = "lstm",
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ConfigError(unknown_choice_message("text encoder cell", str(cell), CELLS))
        for name, value in (
            ("vocab_size", vocab_size),
            ("embed_dim", embed_dim),
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"text encoder {name} must be a positive integer, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"text encoder dropout must be in [0, 1), got {dropout!r}")
        if not 0 <= pad_id < vocab_size:
            raise ConfigError(f"text encoder pad_id {pad_id} is outside the vocabulary [0, {vocab_size})")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.rnn = CELLS[cell](
            input_size=embed_dim,
            hidden_size=hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            # torch applies this dropout between layers only; it warns when there is a single layer.
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.vocab_size = vocab_size
        self.cell = cell
        self.pad_id = pad_id
        self.num_directions = 2 if bidirectional else 1
        self.out_dim = hidden_dim * self.num_directions

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> TextFeatures:
        """Encode ``tokens [B, T]`` (right-padded with ``pad_id``).

        Args:
            tokens: long token ids ``[B, T]``.
            lengths: ``[B]`` real lengths; by default the number of non-``pad_id`` tokens of each row.
        """
        if tokens.dim() != 2:
            raise ValueError(f"text encoder expects tokens [B, T], got shape {tuple(tokens.shape)}")
        batch, steps = tokens.shape
        if lengths is None:
            lengths = (tokens != self.pad_id).sum(dim=1)  # [B]
        lengths = lengths.to(device=tokens.device, dtype=torch.long)  # [B]
        if lengths.shape != (batch,) or bool((lengths < 0).any()) or bool((lengths > steps).any()):
            raise DataError(
                f"text encoder lengths must be {batch} values in [0, {steps}], got {lengths.tolist()}"
            )
        mask = torch.arange(steps, device=tokens.device)[None, :] < lengths[:, None]  # [B, T]
        embedded = self.dropout(self.embedding(tokens))  # [B, T, E]
        if self.num_directions == 1:
            return self._forward_padded(embedded, lengths, mask)
        packed = pack_padded_sequence(
            embedded, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, hidden = self.rnn(packed)  # packed [sum(lengths), H'], [layers * dirs, B, H]
        states, _ = pad_packed_sequence(outputs, batch_first=True, total_length=steps)  # [B, T, H']
        h_n = hidden[0] if isinstance(hidden, tuple) else hidden  # [layers * dirs, B, H]
        # Last layer: forward direction at the last real step, backward direction after reading back to t=0.
        final = h_n[-self.num_directions :].transpose(0, 1).reshape(batch, self.out_dim)  # [B, H']
        empty = lengths == 0  # [B]
        if bool(empty.any()):
            states = states.masked_fill(empty[:, None, None], 0.0)  # [B, T, H']
            final = final.masked_fill(empty[:, None], 0.0)  # [B, H']
        return TextFeatures(states=states, final=final, mask=mask)

    def _forward_padded(self, embedded: Tensor, lengths: Tensor, mask: Tensor) -> TextFeatures:
        """One direction: run over the padded batch and read each row's state at its last real step.

        Steps after a row's end never influence its earlier steps, so this equals the packed computation;
        it is used because torch's packed RNN backward on CPU slices its packed input once per time step and
        zero-fills a full-size gradient for each slice, which made a 320 x 86-token LSTM's backward pass about
        10x slower than its forward (measured in benchmarks/text_encoder_speed.py).
        """
        outputs, _ = self.rnn(embedded)  # [B, T, H]
        states = outputs.masked_fill(~mask[:, :, None], 0.0)  # [B, T, H]
        last = (lengths - 1).clamp(min=0)  # [B]
        final = outputs[torch.arange(outputs.shape[0], device=outputs.device), last]  # [B, H]
        final = final.masked_fill((lengths == 0)[:, None], 0.0)  # [B, H]
        return TextFeatures(states=states, final=final, mask=mask)

    def extra_repr(self) -> str:
        return f"cell={self.cell!r}, out_dim={self.out_dim}, pad_id={self.pad_id}"
