"""Recurrent cells (Elman RNN, LSTM, GRU, MUT1-3 of Jozefowicz et al. 2015) and stacked layers over them.

``CELLS`` maps a cell name to its class (every class steps as ``h, state = cell(x, state)``);
``FUSED_CELLS`` names the cells that run on torch's fused sequence kernels in :class:`StackedRNN`.
"""

from vltk.registry import Registry
from vltk.rnn.cells import (
    ElmanCell,
    GRUCell,
    LSTMCell,
    MUT1Cell,
    MUT2Cell,
    MUT3Cell,
    RecurrentCell,
    State,
)
from vltk.rnn.stacked import StackedRNN, StackState

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
FUSED_CELLS = frozenset({"rnn", "lstm", "gru"})

__all__ = [
    "CELLS",
    "FUSED_CELLS",
    "ElmanCell",
    "GRUCell",
    "LSTMCell",
    "MUT1Cell",
    "MUT2Cell",
    "MUT3Cell",
    "RecurrentCell",
    "StackState",
    "StackedRNN",
    "State",
]
