"""Lightning systems, one per task, and the registry the CLI reads (``vltk list``, ``vltk train TASK``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vltk.data import CAPTION_DATASETS
from vltk.tasks.captioning import CaptioningConfig, CaptioningTask


@dataclass(frozen=True)
class TaskEntry:
    """What the runner needs to know about a task: its config schema, its system and its datasets."""

    config: type
    system: type
    datasets: Mapping[str, Any]
    description: str


TASKS: dict[str, TaskEntry] = {
    "captioning": TaskEntry(
        CaptioningConfig,
        CaptioningTask,
        CAPTION_DATASETS,
        "image -> sentence (Show and Tell, Show, Attend and Tell)",
    ),
}

__all__ = ["TASKS", "TaskEntry", "CaptioningConfig", "CaptioningTask"]
