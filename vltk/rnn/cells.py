"""Recurrent cells with one interface: Elman (vanilla tanh) RNN, LSTM, GRU and the evolved MUT1-MUT3.

Every cell maps one input step and its state to the next state::

    h, state = cell(x, state)        # x [B, I], state a tuple of [B, H] tensors, h [B, H]

``state`` is ``(h,)`` for the single-vector cells and ``(h, c)`` for the LSTM (``c`` is its memory);
``cell.init_state(batch)`` gives zeros of the right shapes and ``cell.state_size`` says how many tensors.

The Elman, LSTM and GRU cells keep torch's parameter layout (``weight_ih [gH, I]``, ``weight_hh [gH, H]``,
``bias_ih``, ``bias_hh``, gates stacked in torch's order) and step with torch's fused cell kernels
(``torch.rnn_tanh_cell``, ``torch.lstm_cell``, ``torch.gru_cell``), so a stack of them is interchangeable
with ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (see :mod:`vltk.rnn.stacked`) and with ``nn.LSTMCell``/``nn.GRUCell``.
Their equations (which the unit tests check) are in each class docstring.

MUT1, MUT2 and MUT3 are the three architectures found by the evolutionary search of Jozefowicz, Zaremba &
Sutskever 2015, "An Empirical Exploration of Recurrent Network Architectures" (ICML), Section 3.4; they
have no fused kernel and step through their equations directly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vltk.errors import ConfigError
from vltk.registry import Registry

State = tuple[Tensor, ...]


class RecurrentCell(nn.Module):
    """Base of every cell: sizes, zero state, and a uniform ``U(-1/sqrt(H), 1/sqrt(H))`` initialisation
    (torch's default for its own recurrent modules).

    Args:
        input_dim: ``I``, size of each input step.
        hidden_dim: ``H``, size of the hidden state.
    """

    state_size = 1
    gates = 1

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        if input_dim <= 0 or hidden_dim <= 0:
            raise ConfigError(
                f"cell sizes must be positive, got input_dim={input_dim}, hidden_dim={hidden_dim}"
            )
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_dim)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """Zeros: ``state_size`` tensors of ``[B, H]``."""
        zeros = torch.zeros(batch, self.hidden_dim, device=device, dtype=dtype)  # [B, H]
        return tuple(zeros.clone() for _ in range(self.state_size))

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"{self.input_dim}, {self.hidden_dim}"


class _TorchLayoutCell(RecurrentCell):
    """Parameters named and shaped like torch's ``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell``."""

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__(input_dim, hidden_dim)
        rows = self.gates * hidden_dim
        self.weight_ih = nn.Parameter(torch.empty(rows, input_dim))  # [gH, I]
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_dim))  # [gH, H]
        self.bias_ih = nn.Parameter(torch.empty(rows))  # [gH]
        self.bias_hh = nn.Parameter(torch.empty(rows))  # [gH]
        self.reset_parameters()


class ElmanCell(_TorchLayoutCell):
    """Elman's vanilla RNN (Elman 1990, "Finding Structure in Time"), the min-char-rnn cell::

    h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
    """

    gates = 1

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        (h,) = state if state is not None else self.init_state(x.shape[0], x.device, x.dtype)
        h = torch.rnn_tanh_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)  # [B, H]
        return h, (h,)


class LSTMCell(_TorchLayoutCell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000)::

        i = sigm(W_ii x + b_ii + W_hi h + b_hi)
        f = sigm(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)
        o = sigm(W_io x + b_io + W_ho h + b_ho)
        c' = f * c + i * g
        h' = o * tanh(c')

    The rows of ``weight_ih``/``weight_hh`` are the gates in torch's order ``i, f, g, o``.
    """

    gates = 4
    state_size = 2

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        h, c = state if state is not None else self.init_state(x.shape[0], x.device, x.dtype)
        h, c = torch.lstm_cell(x, (h, c), self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h, (h, c)  # [B, H], [B, H]


class GRUCell(_TorchLayoutCell):
    """Gated recurrent unit (Cho et al. 2014), torch's formulation::

        r = sigm(W_ir x + b_ir + W_hr h + b_hr)
        z = sigm(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    The rows of ``weight_ih``/``weight_hh`` are the gates in torch's order ``r, z, n``.
    """

    gates = 3

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        (h,) = state if state is not None else self.init_state(x.shape[0], x.device, x.dtype)
        h = torch.gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)  # [B, H]
        return h, (h,)


class _MutCell(RecurrentCell):
    """Shared parts of MUT1-3: the candidate ``tanh(W_hh (r * h) + ... + b_h)`` and the update gate mix."""

    needs_square = False

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__(input_dim, hidden_dim)
        if self.needs_square and input_dim != hidden_dim:
            raise ConfigError(
                f"{type(self).__name__} adds the input to hidden-sized terms, so input_dim must equal "
                f"hidden_dim (got input_dim={input_dim}, hidden_dim={hidden_dim}; in an lm config set "
                "model.embed_dim to model.hidden_dim)"
            )
        self.W_hh = nn.Linear(hidden_dim, hidden_dim, bias=True)  # its bias is b_h

    @staticmethod
    def _mix(candidate: Tensor, z: Tensor, h: Tensor) -> Tensor:
        return candidate * z + h * (1.0 - z)  # [B, H]


class MUT1Cell(_MutCell):
    """MUT1 of Jozefowicz et al. 2015 (input_dim must equal hidden_dim)::

    z  = sigm(W_xz x + b_z)
    r  = sigm(W_xr x + W_hr h + b_r)
    h' = tanh(W_hh (r * h) + tanh(x) + b_h) * z + h * (1 - z)
    """

    needs_square = True

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__(input_dim, hidden_dim)
        self.W_xz = nn.Linear(input_dim, hidden_dim, bias=True)  # bias b_z
        self.W_xr = nn.Linear(input_dim, hidden_dim, bias=True)  # bias b_r
        self.W_hr = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.reset_parameters()

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        (h,) = state if state is not None else self.init_state(x.shape[0], x.device, x.dtype)
        z = torch.sigmoid(self.W_xz(x))  # [B, H]
        r = torch.sigmoid(self.W_xr(x) + self.W_hr(h))  # [B, H]
        candidate = torch.tanh(self.W_hh(r * h) + torch.tanh(x))  # [B, H]
        h = self._mix(candidate, z, h)  # [B, H]
        return h, (h,)


class MUT2Cell(_MutCell):
    """MUT2 of Jozefowicz et al. 2015 (input_dim must equal hidden_dim)::

    z  = sigm(W_xz x + W_hz h + b_z)
    r  = sigm(x + W_hr h + b_r)
    h' = tanh(W_hh (r * h) + W_xh x + b_h) * z + h * (1 - z)
    """

    needs_square = True

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__(input_dim, hidden_dim)
        self.W_xz = nn.Linear(input_dim, hidden_dim, bias=True)  # bias b_z
        self.W_hz = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.W_hr = nn.Linear(hidden_dim, hidden_dim, bias=True)  # bias b_r
        self.W_xh = nn.Linear(input_dim, hidden_dim, bias=False)
        self.reset_parameters()

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        (h,) = state if state is not None else self.init_state(x.shape[0], x.device, x.dtype)
        z = torch.sigmoid(self.W_xz(x) + self.W_hz(h))  # [B, H]
        r = torch.sigmoid(x + self.W_hr(h))  # [B, H]
        candidate = torch.tanh(self.W_hh(r * h) + self.W_xh(x))  # [B, H]
        h = self._mix(candidate, z, h)  # [B, H]
        return h, (h,)


class MUT3Cell(_MutCell):
    """MUT3 of Jozefowicz et al. 2015::

    z  = sigm(W_xz x + W_hz tanh(h) + b_z)
    r  = sigm(W_xr x + W_hr h + b_r)
    h' = tanh(W_hh (r * h) + W_xh x + b_h) * z + h * (1 - z)
    """

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__(input_dim, hidden_dim)
        self.W_xz = nn.Linear(input_dim, hidden_dim, bias=True)  # bias b_z
        self.W_hz = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.W_xr = nn.Linear(input_dim, hidden_dim, bias=True)  # bias b_r
        self.W_hr = nn.Linear(hidden_dim, hidden_dim, bias=False)
        self.W_xh = nn.Linear(input_dim, hidden_dim, bias=False)
        self.reset_parameters()

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        (h,) = state if state is not None else self.init_state(x.shape[0], x.device, x.dtype)
        z = torch.sigmoid(self.W_xz(x) + self.W_hz(torch.tanh(h)))  # [B, H]
        r = torch.sigmoid(self.W_xr(x) + self.W_hr(h))  # [B, H]
        candidate = torch.tanh(self.W_hh(r * h) + self.W_xh(x))  # [B, H]
        h = self._mix(candidate, z, h)  # [B, H]
        return h, (h,)


CELLS: Registry[type[RecurrentCell]] = Registry(
    "recurrent cell",
    {
        "rnn": ElmanCell,
        "lstm": LSTMCell,
        "gru": GRUCell,
        "mut1": MUT1Cell,
        "mut2": MUT2Cell,
        "mut3": MUT3Cell,
    },
)
"""Cell name -> class (the ``cell`` of :class:`vltk.rnn.StackedRNN` and the decoders)."""

FUSED_CELLS = frozenset({"rnn", "lstm", "gru"})
"""The cells with a torch sequence kernel (``nn.RNN``/``nn.LSTM``/``nn.GRU``) that a stack can run on."""
