"""Navigation metrics of instruction following (Anderson et al. 2018, On Evaluation of Embodied Navigation
Agents; Chevalier-Boisvert et al. 2019, BabyAI):

* ``success_rate``: fraction of episodes whose mission was accomplished;
* ``mean_reward``: mean return (minigrid: ``1 - 0.9 * steps / max_steps`` on success, else 0);
* ``SPL``: success weighted by path length, ``mean(success * l / max(p, l))`` with ``p`` the agent's number
  of steps and ``l`` the fewest steps that solve the episode, by breadth-first search from its start
  state (``vltk.tasks.navigation.babyai.shortest_path``; not the BabyAI bot's length, which earlier versions
  used and which is longer in about a quarter of the episodes); an episode without a solution in its step
  budget scores 0;
* ``episode_length``: mean number of steps the agent took.

:class:`NavigationMetrics` is correct under DDP like ``vltk.metrics.caption.CaptionMetrics``: ``compute``
gathers every rank's episodes and drops the repeats that distributed samplers add (by episode seed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vltk.metrics.gather import distributed, gather_parts

logger = logging.getLogger(__name__)

NAVIGATION_METRIC_NAMES = ("success_rate", "mean_reward", "SPL", "episode_length")


@dataclass
class EpisodeResult:
    """One evaluated episode.

    Attributes:
        seed: the episode's seed (the id metrics de-duplicate by).
        mission: the instruction.
        success: the mission was accomplished (positive reward).
        reward: the return.
        length: the agent's number of steps.
        shortest: the fewest steps that solve this episode (SPL's ``l``, by breadth-first search);
            ``None`` when no plan succeeds within the episode's step budget, or when not searched.
        level: the BabyAI level played.
        searched: the shortest path was searched (False: not asked for, or the level holds something
            the search does not model), so ``shortest = None`` means "no solution" only when True.
        actions: the agent's actions.
        attention: per step, the weights over the instruction's tokens (when recorded).
        frames: per step, a full-grid render (when recorded, for GIFs).
    """

    seed: int
    mission: str
    success: bool
    reward: float
    length: int
    shortest: int | None
    level: str = ""
    searched: bool = False
    actions: list[int] = field(default_factory=list)
    attention: list[list[float]] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)

    @property
    def spl(self) -> float:
        """``success * l / max(p, l)``: 0 for a failed episode (so also when no solution exists, as then the
        agent cannot succeed); NaN for a success whose shortest path was not searched (unknown)."""
        if not self.success:
            return 0.0
        if self.shortest is None:
            return float("nan")
        return self.shortest / max(self.length, self.shortest)


def merge_episodes(parts: Iterable[Sequence[EpisodeResult]]) -> list[EpisodeResult]:
    """Concatenate per-rank episode lists, keeping the first episode of each seed, sorted by seed."""
    seen: dict[int, EpisodeResult] = {}
    for part in parts:
        for episode in part:
            seen.setdefault(int(episode.seed), episode)
    return [seen[seed] for seed in sorted(seen)]


def navigation_scores(episodes: Sequence[EpisodeResult]) -> dict[str, float]:
    """The four metrics over ``episodes`` (zeros when there are none)."""
    if not episodes:
        return {name: 0.0 for name in NAVIGATION_METRIC_NAMES}
    n = len(episodes)
    return {
        "success_rate": sum(e.success for e in episodes) / n,
        "mean_reward": sum(e.reward for e in episodes) / n,
        "SPL": sum(e.spl for e in episodes) / n,
        "episode_length": sum(e.length for e in episodes) / n,
    }


class NavigationMetrics:
    """Episodes of one evaluation (``update`` per batch, ``compute`` once, ``reset``).

    Args:
        sync_across_ranks: gather episodes from every DDP rank in :meth:`episodes` (a collective).
    """

    def __init__(self, sync_across_ranks: bool = True) -> None:
        self.sync_across_ranks = sync_across_ranks
        self._episodes: dict[int, EpisodeResult] = {}

    def update(self, episodes: Iterable[EpisodeResult]) -> None:
        """Add played episodes; a seed seen before (a padded repeat) is ignored."""
        for episode in episodes:
            self._episodes.setdefault(int(episode.seed), episode)

    def reset(self) -> None:
        self._episodes.clear()

    def __len__(self) -> int:
        return len(self._episodes)

    def episodes(self) -> list[EpisodeResult]:
        """Every episode of the split, gathered from all ranks (a collective under DDP), one per seed."""
        local = list(self._episodes.values())
        if not (self.sync_across_ranks and distributed()):
            return merge_episodes([local])
        light = [
            EpisodeResult(e.seed, e.mission, e.success, e.reward, e.length, e.shortest, e.level, e.searched)
            for e in local
        ]  # without the per-step records
        return merge_episodes(gather_parts(light))

    def compute(self) -> dict[str, float]:
        """``{"success_rate", "mean_reward", "SPL", "episode_length"}``; the same on every rank."""
        episodes = self.episodes()
        if not episodes:
            logger.warning("NavigationMetrics.compute() called before any update(); returning zeros")
        return navigation_scores(episodes)
