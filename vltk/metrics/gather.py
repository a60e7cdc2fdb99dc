"""Gathering a metric's examples from every DDP rank, and dropping the repeats distributed samplers add.

``DistributedSampler`` pads the last batches with repeated examples so that every rank gets the same number;
the metric objects gather every rank's examples (a collective) and keep the first of each example id, so a
split is scored once per example whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

import torch.distributed as dist

Record = TypeVar("Record")


def distributed() -> bool:
    """A process group of more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_parts(local: list[Record], sync_across_ranks: bool = True) -> list[list[Record]]:
    """Every rank's ``local`` list, in rank order (a collective under DDP); ``[local]`` otherwise."""
    if not (sync_across_ranks and distributed()):
        return [local]
    gathered: list[list[Record] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, local)
    return [part or [] for part in gathered]


def first_per_key(parts: Iterable[Iterable[Record]], key: Callable[[Record], Hashable]) -> list[Record]:
    """Concatenate ``parts``, keeping the first record of each ``key(record)``, in order of appearance."""
    merged: dict[Hashable, Record] = {}
    for part in parts:
        for record in part:
            merged.setdefault(key(record), record)
    return list(merged.values())
