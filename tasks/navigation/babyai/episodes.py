"""Reading BabyAI demo folders (``vltk.tasks.navigation.babyai.demos``) for behaviour cloning: whole episodes
as batches.

:func:`load_demos` opens a demo folder (memory-mapped Arrow) and checks it, naming the path when a file is
missing, truncated or corrupt; :class:`DemoEpisodes` unpacks it once into flat numpy arrays (the
observations of every step, back to back, with per-episode offsets) so an epoch reads no Arrow at all;
:func:`collate_episodes` pads a list of episodes into a :class:`NavigationBatch`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vltk.errors import DataError
from vltk.tasks.navigation.babyai.demos import META_FILE
from vltk.text import Vocabulary

logger = logging.getLogger(__name__)


@dataclass
class DemoSet:
    """An opened demo folder: the Arrow dataset and its ``vltk_demos.json`` metadata."""

    path: Path
    dataset: Any
    meta: dict[str, Any]

    @property
    def level(self) -> str:
        return str(self.meta["level"])

    @property
    def observation(self) -> str:
        return str(self.meta["observation"])

    def seeds(self) -> set[int]:
        return {int(s) for s in self.dataset["seed"]}


def load_demos(path: str | Path) -> DemoSet:
    """Open a demo folder written by :func:`vltk.tasks.navigation.babyai.demos.generate_demos`; errors name
    the path."""
    from datasets import load_from_disk

    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise DataError(
            f"{path}: not a vltk demo folder ({META_FILE} is missing); make one with `vltk data demos`"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        level, observation = meta["level"], meta["observation"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DataError(f"{meta_path}: corrupt demo metadata ({type(error).__name__}: {error})") from None
    try:
        dataset = load_from_disk(str(path))
        dataset = dataset.with_format(None)
        rows = len(dataset)
        last = dataset[rows - 1] if rows else None  # touches the end of the last Arrow file
    except Exception as error:  # pyarrow/datasets raise many types for truncated or damaged files
        raise DataError(
            f"{path}: the demo dataset is corrupt or truncated ({type(error).__name__}: {error}); "
            "delete the folder and generate it again"
        ) from None
    if rows != int(meta.get("episodes", rows)) or last is None:
        raise DataError(f"{path}: expected {meta.get('episodes')} episodes, found {rows} (truncated?)")
    logger.info("opened %d %s demos (%s observations) from %s", rows, level, observation, path)
    return DemoSet(path, dataset, meta)


class DemoEpisodes(Dataset):
    """Demo episodes in memory as flat arrays; item ``i`` is one whole episode.

    Args:
        demos: an opened demo folder.
        vocab: the vocabulary that encodes the missions (built from these missions when training).
    """

    def __init__(self, demos: DemoSet, vocab: Vocabulary) -> None:
        shape = tuple(demos.meta["observation_shape"])
        cell = int(np.prod(shape))
        table = demos.dataset.data.table if hasattr(demos.dataset.data, "table") else demos.dataset.data
        try:
            steps = np.asarray(table.column("num_steps").to_numpy(), dtype=np.int64)  # [episodes]
            blobs = table.column("images").to_pylist()
            actions = table.column("actions").to_pylist()
            directions = table.column("directions").to_pylist()
            self.seeds = np.asarray(table.column("seed").to_numpy(), dtype=np.int64)
            missions = table.column("mission").to_pylist()
        except Exception as error:
            raise DataError(
                f"{demos.path}: unreadable demo columns ({type(error).__name__}: {error})"
            ) from None
        for i, (blob, n, acts) in enumerate(zip(blobs, steps, actions)):
            if len(blob) != n * cell or len(acts) != n or len(directions[i]) != n or n == 0:
                raise DataError(
                    f"{demos.path}: episode {i} (seed {int(self.seeds[i])}) is damaged: {len(blob)} image "
                    f"bytes and {len(acts)} actions for {int(n)} steps of shape {shape}"
                )
        self.offsets = np.concatenate([[0], np.cumsum(steps)])  # [episodes + 1]
        self.images = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(-1, *shape)  # [steps, *obs]
        self.actions = np.fromiter((a for acts in actions for a in acts), dtype=np.int64)  # [steps]
        self.directions = np.fromiter((d for ds in directions for d in ds), dtype=np.int64)  # [steps]
        self.missions = missions
        self.instructions = vocab.encode_batch(missions, add_special=False)
        self.path = demos.path

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int) -> dict[str, Any]:
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return {
            "seed": int(self.seeds[index]),
            "images": self.images[start:end],
            "directions": self.directions[start:end],
            "actions": self.actions[start:end],
            "instruction": self.instructions[index],
        }


@dataclass
class NavigationBatch:
    """Whole episodes, right-padded in time.

    Attributes:
        images: ``uint8`` ``[B, T, *obs]`` observations (``obs`` = ``7, 7, 3`` or ``56, 56, 3``).
        directions: ``[B, T]`` long headings.
        actions: ``[B, T]`` long expert actions (0 at padding).
        step_mask: ``[B, T]`` bool, ``True`` = a real step.
        instructions: ``[B, L]`` long mission token ids (no start/end tokens), 0-padded.
        instruction_mask: ``[B, L]`` bool, ``True`` = a real token.
        seeds: ``[B]`` long episode seeds.
    """

    images: Tensor
    directions: Tensor
    actions: Tensor
    step_mask: Tensor
    instructions: Tensor
    instruction_mask: Tensor
    seeds: Tensor

    def to(self, device: torch.device | str) -> NavigationBatch:
        return NavigationBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __len__(self) -> int:
        return self.images.shape[0]


def collate_episodes(items: list[dict[str, Any]]) -> NavigationBatch:
    """Pad episodes (time) and instructions (tokens) into one :class:`NavigationBatch`."""
    size, steps = len(items), max(len(item["actions"]) for item in items)
    words = max(max(len(item["instruction"]) for item in items), 1)
    obs_shape = items[0]["images"].shape[1:]
    images = np.zeros((size, steps, *obs_shape), dtype=np.uint8)  # [B, T, *obs]
    directions = np.zeros((size, steps), dtype=np.int64)  # [B, T]
    actions = np.zeros((size, steps), dtype=np.int64)  # [B, T]
    step_mask = np.zeros((size, steps), dtype=bool)  # [B, T]
    instructions = np.zeros((size, words), dtype=np.int64)  # [B, L]
    instruction_mask = np.zeros((size, words), dtype=bool)  # [B, L]
    for b, item in enumerate(items):
        n, m = len(item["actions"]), len(item["instruction"])
        images[b, :n] = item["images"]
        directions[b, :n] = item["directions"]
        actions[b, :n] = item["actions"]
        step_mask[b, :n] = True
        instructions[b, :m] = item["instruction"]
        instruction_mask[b, :m] = True
    return NavigationBatch(
        images=torch.from_numpy(images),
        directions=torch.from_numpy(directions),
        actions=torch.from_numpy(actions),
        step_mask=torch.from_numpy(step_mask),
        instructions=torch.from_numpy(instructions),
        instruction_mask=torch.from_numpy(instruction_mask),
        seeds=torch.tensor([item["seed"] for item in items], dtype=torch.long),
    )
