"""The BabyAI DataModule: bot demonstrations for training, held-out episode seeds for validation and test.

Training batches are whole demo episodes (:class:`~vltk.tasks.navigation.babyai.episodes.NavigationBatch`).
Validation and test "datasets" are lists of episode seeds: each batch is a list of seeds that the navigation
system plays out (a vectorised rollout), so Lightning's loops, distributed samplers and DDP work unchanged.
Validation and test seeds start far above the demo seeds and the DataModule refuses any overlap.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from vltk.data.datamodule import DataModule, check_at_least
from vltk.errors import ConfigError, DataError
from vltk.tasks.navigation.babyai.demos import ensure_demos
from vltk.tasks.navigation.babyai.env import ObservationKind, check_level, check_observation
from vltk.tasks.navigation.babyai.episodes import DemoEpisodes, DemoSet, collate_episodes, load_demos
from vltk.text import Vocabulary
from vltk.text.vocab import tokenize

logger = logging.getLogger(__name__)


class SeedDataset(Dataset):
    """Episode seeds ``first, first + 1, ..., first + count - 1`` (one evaluation episode each)."""

    def __init__(self, first: int, count: int) -> None:
        self.first, self.count = int(first), int(count)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> int:
        return self.first + index

    def seeds(self) -> range:
        return range(self.first, self.first + self.count)


def collate_seeds(seeds: list[int]) -> torch.Tensor:
    return torch.tensor(seeds, dtype=torch.long)  # [B]


class BabyAIDataModule(DataModule):
    """Behaviour-cloning data for one BabyAI level.

    The ``train`` split is the demo folder (read for ``fit`` only); ``val`` and ``test`` are the seeds of
    held-out episodes (:class:`SeedDataset`), the only splits :meth:`dataloader_for` serves. The mission
    vocabulary travels in the system's hyper-parameters, so nothing is added to the checkpoint here.

    Args:
        level: BabyAI level id.
        episodes: number of bot demonstrations to train on.
        seed: first demo seed (demos use ``seed, seed + 1, ...``, skipping the bot's rare failures).
        observation: ``"symbolic"`` (7x7x3) or ``"rgb"`` (56x56x3).
        demos_dir: an existing demo folder (``vltk data demos --out``); ``None`` generates the demos on first
            use into ``$VLTK_CACHE/datasets`` and reuses them afterwards.
        batch_size: episodes per training batch.
        val_episodes: held-out episodes played at each validation.
        test_episodes: held-out episodes played at test (``vltk evaluate --episodes N`` changes it).
        val_seed: first validation seed.
        test_seed: first test seed.
        rollout_batch_size: episodes per evaluation batch (environments stepped together).
        workers: processes that generate demos (``None``: one per CPU).
        progress: show a progress bar while generating demos.
    """

    def __init__(
        self,
        *,
        level: str = "BabyAI-GoToRedBall-v0",
        episodes: int = 5000,
        seed: int = 0,
        observation: ObservationKind = "symbolic",
        demos_dir: str | None = None,
        batch_size: int = 64,
        val_episodes: int = 200,
        test_episodes: int = 500,
        val_seed: int = 1_000_000_000,
        test_seed: int = 2_000_000_000,
        rollout_batch_size: int = 100,
        workers: int | None = None,
        progress: bool = True,
    ) -> None:
        check_observation(observation)
        sizes = {"episodes": episodes, "batch_size": batch_size, "val_episodes": val_episodes,
                 "test_episodes": test_episodes, "rollout_batch_size": rollout_batch_size}  # fmt: skip
        check_at_least(**{name: (value, 1) for name, value in sizes.items()})
        super().__init__(batch_size=batch_size)
        if max(val_seed, test_seed) + max(val_episodes, test_episodes) >= 2**32:
            raise ConfigError("data.val_seed/test_seed + episodes must stay below 2**32 (numpy seeds)")
        self.level = check_level(level)
        self.episodes, self.seed, self.observation = episodes, seed, observation
        self.demos_dir = demos_dir
        self.rollout_batch_size = rollout_batch_size
        self.val = SeedDataset(val_seed, val_episodes)
        self.test = SeedDataset(test_seed, test_episodes)
        self.workers, self.progress = workers, progress
        self.demos: DemoSet | None = None
        self.train_set: DemoEpisodes | None = None
        nominal = range(seed, seed + 2 * episodes + 100)  # the demo seeds, with room for bot failures
        for name, seeds in (("val_seed", self.val.seeds()), ("test_seed", self.test.seeds())):
            if _ranges_overlap(nominal, seeds):
                raise ConfigError(
                    f"data.{name}: evaluation seeds {seeds.start}.. would overlap the demo seeds starting at "
                    f"data.seed={seed}"
                )
        if _ranges_overlap(self.val.seeds(), self.test.seeds()):
            raise ConfigError(
                f"data.val_seed/test_seed: validation seeds {self.val.seeds()} overlap test seeds"
            )

    # ---------------------------------------------------------------------------------------------- data
    def demo_path(self) -> Path:
        if self.demos_dir is not None:
            return Path(self.demos_dir)
        return ensure_demos(
            level=self.level,
            episodes=self.episodes,
            seed=self.seed,
            observation=self.observation,
            workers=self.workers,
            progress=self.progress,
        )

    def prepare_data(self) -> None:
        """Nothing: demos are generated in ``setup("fit")`` (atomically into the cache, so concurrent DDP
        ranks are safe), and evaluation plays episodes without any demos."""

    def setup(self, stage: str | None = None) -> None:
        """For ``fit`` (or no stage): read the demos, build the vocabulary of their missions, encode them."""
        if stage in (None, "fit") and self.train_set is None:
            super().setup(stage)
            self.train_set = DemoEpisodes(self.demos, self.vocab)

    def read_splits(self) -> dict[str, DemoSet | SeedDataset]:
        self.demos = load_demos(self.demo_path())
        return {"train": self.demos, "val": self.val, "test": self.test}

    def check_splits(self, splits: dict[str, DemoSet | SeedDataset]) -> None:
        self._check_demos(splits["train"])

    def build_vocab(self, splits: dict[str, DemoSet | SeedDataset]) -> Vocabulary:
        return Vocabulary.build(tokenize(m) for m in self.missions())

    def describe(self, splits: dict[str, DemoSet | SeedDataset]) -> str:
        evaluation = f"{len(self.val)} validation and {len(self.test)} test episodes"
        return f"{self.level} demos from {splits['train'].path}; {evaluation}; {len(self.vocab)} words"

    def evaluation_splits(self) -> list[str]:
        """Navigation is evaluated by playing held-out episodes, never on the demos."""
        return ["val", "test"]

    def state_dict(self) -> dict[str, Any]:
        return {}  # the vocabulary is in the system's hyper-parameters

    def missions(self) -> list[str]:
        return list(self.demos.dataset["mission"]) if self.demos is not None else []

    def _check_demos(self, demos: DemoSet) -> None:
        where = demos.path
        if demos.level != self.level:
            raise DataError(f"{where}: demos are of {demos.level}, but data.level is {self.level}")
        if demos.observation != self.observation:
            raise DataError(
                f"{where}: demos have {demos.observation} observations; data.observation is "
                f"{self.observation}"
            )
        low, high = int(demos.meta["min_seed"]), int(demos.meta["max_seed"])
        for name, seeds in (("validation", self.val.seeds()), ("test", self.test.seeds())):
            if _ranges_overlap(range(low, high + 1), seeds):
                raise ConfigError(
                    f"{where}: demo seeds {low}..{high} overlap the {name} seeds {seeds.start}.."
                    f"{seeds.stop - 1}; move data.val_seed/data.test_seed or the demo seed"
                )
        if len(demos.dataset) < self.episodes:
            logger.warning(
                "%s holds %d demos, fewer than data.episodes=%d", where, len(demos.dataset), self.episodes
            )

    # ------------------------------------------------------------------------------------------- loaders
    def loader(self, split: str, training: bool) -> DataLoader:
        """Training: whole demo episodes in the resumable shuffled order; ``val`` / ``test``: seeds in
        batches of ``rollout_batch_size``, which the system plays out."""
        if split == "train":
            if self.train_set is None:
                self.setup("fit")
            return DataLoader(
                self.train_set,
                batch_size=self.batch_size,
                sampler=self.training_sampler(len(self.train_set)),  # resumable mid-epoch
                generator=torch.Generator().manual_seed(self.shuffle_seed),
                collate_fn=collate_episodes,
            )
        seeds = self.val if split == "val" else self.test
        return DataLoader(seeds, batch_size=self.rollout_batch_size, shuffle=False, collate_fn=collate_seeds)


def _ranges_overlap(a: range, b: range) -> bool:
    return a.start < b.stop and b.start < a.stop
