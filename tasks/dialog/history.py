"""Dialog history as one token sequence, as Das et al. 2017's late fusion encoder reads it: the caption,
then ``question answer`` of every earlier round, oldest words dropped first when it grows too long."""

from __future__ import annotations

from collections.abc import Sequence


def history_ids(caption: list[int], turns: Sequence[list[int]], max_length: int) -> list[list[int]]:
    """Histories before each of ``len(turns)`` rounds: ``caption`` then ``turns[0..r-1]`` (each already
    ``question answer``), keeping the last ``max_length`` ids."""
    histories, running = [], list(caption)
    for turn in turns:
        histories.append(running[-max_length:] if max_length > 0 else [])
        running = running[-max_length:] + turn  # older words never come back, so keep it short
    return histories
