"""The recurrent state a caption decoder carries from one decoding step to the next.

Decoding functions (:mod:`vltk.decoding`) treat the state as opaque except for three things: ``expand(k)``
(one copy per beam), ``select(rows)`` (follow beam back-pointers) and the optional ``attention`` of the last
step. Everything else belongs to the decoder that made the state.

Two kinds of tensors live in a state, both with the batch first:

- *recurrent* tensors change at every step (``h``, ``c``, the last ``attention`` and ``gate``);
- *per-image constants* are computed once in ``init_state`` and only read afterwards (``grid``,
  ``projected_keys``, ``mask``). They are marked with ``metadata={"constant": True}``.

Other decoders extend the state by subclassing and adding fields (a tensor, ``None``, or a tuple/list/dict of
tensors for stacked layers); :meth:`DecoderState.expand` and :meth:`DecoderState.select` handle every field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor

CONSTANT = {"constant": True}


def _map(value: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """Apply ``fn`` to every tensor inside ``value`` (a tensor, ``None``, or a tuple/list/dict of them)."""
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map(v, fn) for k, v in value.items()}
    return value


def _first_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else ()
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


@dataclass
class DecoderState:
    """Recurrent tensors and per-image constants of a decoder, every tensor with the batch (row) first.

    Attributes:
        h: ``[B, H]`` hidden state (``[B, layers, H]`` for stacked decoders).
        c: ``[B, H]`` LSTM memory cell; ``None`` for GRU/vanilla cells.
        attention: ``[B, N]`` attention weights of the last step; ``None`` before the first step or for
            decoders without attention. Decoding functions keep traces of it.
        gate: ``[B]`` the last step's gate on the attended context (Xu et al.'s ``beta``); ``None`` if unused.
        grid: ``[B, N, D]`` image region features (per-image constant).
        projected_keys: the attention module's ``precompute(grid)`` (per-image constant).
        mask: ``[B, N]`` bool, ``True`` = real region; ``None`` = all real (per-image constant).

    Invariant relied on by :meth:`select`: after ``expand(k)`` the rows of one image form a contiguous group
    of ``k`` identical copies of its constants. Beam search only ever selects, for each row, a row *of the
    same group* (a beam of the same image), so the constants of the selected rows are already correct and
    are not copied. A caller that moves rows across images, or changes the number of rows, gets the constants
    re-indexed too (the latter automatically, the former by passing ``reindex_constants=True``).
    """

    h: Tensor | None = None
    c: Tensor | None = None
    attention: Tensor | None = None
    gate: Tensor | None = None
    grid: Tensor | None = field(default=None, metadata=CONSTANT)
    projected_keys: Tensor | None = field(default=None, metadata=CONSTANT)
    mask: Tensor | None = field(default=None, metadata=CONSTANT)

    @property
    def batch_size(self) -> int:
        """The number of rows (images times beams)."""
        for f in fields(self):
            tensor = _first_tensor(getattr(self, f.name))
            if tensor is not None:
                return tensor.shape[0]
        raise ValueError(f"{type(self).__name__} holds no tensor, so it has no batch size")

    @property
    def device(self) -> torch.device:
        for f in fields(self):
            tensor = _first_tensor(getattr(self, f.name))
            if tensor is not None:
                return tensor.device
        return torch.device("cpu")

    def _apply(self, fn: Callable[[Tensor], Tensor], constants: bool) -> DecoderState:
        changes = {
            f.name: _map(getattr(self, f.name), fn)
            for f in fields(self)
            if constants or not f.metadata.get("constant", False)
        }
        return replace(self, **changes)

    def expand(self, k: int) -> DecoderState:
        """Repeat each row ``k`` times consecutively (rows ``[b0, b0, .., b1, b1, ..]``): ``B`` -> ``B*k``."""
        if k == 1:
            return self
        return self._apply(lambda t: t.repeat_interleave(k, dim=0), constants=True)  # [B * k, ...]

    def select(self, rows: Tensor, *, reindex_constants: bool = False) -> DecoderState:
        """Keep/reorder rows: row ``i`` of the result is row ``rows[i]`` of this state.

        Args:
            rows: ``[B']`` long row indices.
            reindex_constants: also re-index the per-image constants. Not needed (and skipped, saving a copy
                of the grid per step) when ``B' == B`` and every ``rows[i]`` lies in the same image group as
                ``i`` (see the class invariant); always done when ``B' != B``.
        """
        reindex_constants = reindex_constants or rows.shape[0] != self.batch_size
        return self._apply(lambda t: t.index_select(0, rows), constants=reindex_constants)  # [B', ...]

    def to(self, device: torch.device | str) -> DecoderState:
        """The state with every tensor moved to ``device``."""
        return self._apply(lambda t: t.to(device), constants=True)
