"""Stacked recurrent layers over whole sequences, on torch's fused kernels where a cell has one.

``StackedRNN("lstm", 64, 128, num_layers=2)`` runs ``nn.LSTM`` (cuDNN on GPU, the fused CPU kernel
otherwise); cells without a fused kernel (MUT1-3), or ``fused=False``, run the same equations one step and
one layer at a time through the cells of :mod:`vltk.rnn.cells`. The two paths share a state layout and
parameter names map one to one (``weight_ih_l0`` <-> ``layers.0.weight_ih``), so
:meth:`StackedRNN.load_unfused` copies a fused stack into a step-by-step one (used by the diagnostics,
which need every hidden state of every step).

State, in both paths: a tuple of ``[L, B, H]`` tensors, ``(h,)`` or, for the LSTM, ``(h, c)``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from vltk.errors import ConfigError, unknown_choice_message
from vltk.rnn.cells import CELLS, FUSED_CELLS, RecurrentCell

logger = logging.getLogger(__name__)

StackState = tuple[Tensor, ...]


def _fused_module(cell: str, input_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> nn.RNNBase:
    if cell == "rnn":
        return nn.RNN(
            input_dim, hidden_dim, num_layers, nonlinearity="tanh", batch_first=True, dropout=dropout
        )
    if cell == "lstm":
        return nn.LSTM(input_dim, hidden_dim, num_layers, batch_first=True, dropout=dropout)
    return nn.GRU(input_dim, hidden_dim, num_layers, batch_first=True, dropout=dropout)


class StackedRNN(nn.Module):
    """``num_layers`` recurrent layers of one cell type, with dropout between layers.

    Args:
        cell: a name in :data:`vltk.rnn.CELLS` (``rnn``, ``lstm``, ``gru``, ``mut1``, ``mut2``, ``mut3``).
        input_dim: ``I``, size of each input step.
        hidden_dim: ``H``, hidden size of every layer.
        num_layers: ``L``.
        dropout: dropout on the outputs of every layer but the last (as ``nn.LSTM`` does).
        fused: use ``nn.RNN``/``nn.LSTM``/``nn.GRU`` when the cell has one (the fast path).
    """

    def __init__(
        self,
        cell: str = "lstm",
        input_dim: int = 64,
        hidden_dim: int = 128,
        *,
        num_layers: int = 1,
        dropout: float = 0.0,
        fused: bool = True,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ConfigError(unknown_choice_message("recurrent cell", str(cell), CELLS))
        if num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
        self.cell = cell
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.fused = fused and cell in FUSED_CELLS
        self.state_size = CELLS[cell].state_size
        if self.fused:
            self.rnn = _fused_module(cell, input_dim, hidden_dim, num_layers, dropout)
        else:
            dims = [input_dim] + [hidden_dim] * (num_layers - 1)
            self.layers = nn.ModuleList(CELLS[cell](dim, hidden_dim) for dim in dims)
            self.dropout = nn.Dropout(dropout)

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> StackState:
        zeros = torch.zeros(self.num_layers, batch, self.hidden_dim, device=device, dtype=dtype)  # [L, B, H]
        return tuple(zeros.clone() for _ in range(self.state_size))

    def forward(self, x: Tensor, state: StackState | None = None) -> tuple[Tensor, StackState]:
        """Run the whole sequence.

        Args:
            x: ``[B, T, I]`` inputs.
            state: a tuple of ``[L, B, H]`` tensors, or ``None`` for zeros.

        Returns:
            ``(outputs [B, T, H] of the last layer, final state)``.
        """
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        if self.fused:
            if self.state_size == 2:
                outputs, (h, c) = self.rnn(x, (state[0].contiguous(), state[1].contiguous()))  # [B, T, H]
                return outputs, (h, c)
            outputs, h = self.rnn(x, state[0].contiguous())  # [B, T, H]
            return outputs, (h,)
        per_layer = [tuple(s[layer] for s in state) for layer in range(self.num_layers)]
        steps: list[Tensor] = []
        for t in range(x.shape[1]):
            inputs = x[:, t]  # [B, I]
            for layer, cell in enumerate(self.layers):
                if layer > 0:
                    inputs = self.dropout(inputs)
                inputs, per_layer[layer] = cell(inputs, per_layer[layer])  # [B, H]
            steps.append(inputs)
        outputs = torch.stack(steps, dim=1)  # [B, T, H]
        final = tuple(torch.stack([s[k] for s in per_layer]) for k in range(self.state_size))  # [L, B, H]
        return outputs, final

    def step(self, x: Tensor, state: StackState | None = None) -> tuple[Tensor, StackState]:
        """One step: ``x [B, I]`` -> ``(h [B, H] of the last layer, state)``."""
        outputs, state = self(x.unsqueeze(1), state)  # [B, 1, H]
        return outputs[:, 0], state

    def cells(self) -> list[RecurrentCell]:
        """Per-layer step cells with this stack's weights (copies when the stack is fused)."""
        if not self.fused:
            return list(self.layers)
        cells = []
        for layer in range(self.num_layers):
            dim = self.input_dim if layer == 0 else self.hidden_dim
            cell = CELLS[self.cell](dim, self.hidden_dim).to(self.rnn.weight_hh_l0.device)
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(self.rnn, f"{name}_l{layer}"))
            cells.append(cell)
        return cells

    def load_unfused(self, other: StackedRNN) -> None:
        """Copy the weights of another stack of the same cell and sizes (fused or not) into this one."""
        if (other.cell, other.input_dim, other.hidden_dim, other.num_layers) != (
            self.cell,
            self.input_dim,
            self.hidden_dim,
            self.num_layers,
        ):
            raise ConfigError("load_unfused: the stacks differ in cell, sizes or number of layers")
        sources = other.cells()
        with torch.no_grad():
            if self.fused:
                for layer, cell in enumerate(sources):
                    for name, value in cell.named_parameters():
                        getattr(self.rnn, f"{name}_l{layer}").copy_(value)
            else:
                for target, cell in zip(self.layers, sources):
                    target.load_state_dict(cell.state_dict())

    def extra_repr(self) -> str:
        return f"cell={self.cell}, layers={self.num_layers}, fused={self.fused}"
