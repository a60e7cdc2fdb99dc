"""Vectorised evaluation rollouts: one policy call per step for a whole batch of seeded episodes.

The environments of a batch step in lockstep in this process (BabyAI steps cost microseconds; the policy's
forward pass is what is worth batching). Each episode is scored by SPL (Anderson et al. 2018, On Evaluation
of Embodied Navigation Agents): ``SPL = success * l / max(p, l)`` with ``p`` the agent's number of actions
and ``l`` the fewest actions that solve the episode, found by breadth-first search from its start state
(:func:`vltk.tasks.navigation.babyai.shortest_path.shortest_path`). Earlier versions took the BabyAI bot's
length for ``l``, which is longer in about a quarter of the episodes and overstated SPL (docs/navigation.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from vltk.metrics.navigation import EpisodeResult
from vltk.tasks.navigation.babyai.env import BabyAIEnv, ObservationKind
from vltk.tasks.navigation.babyai.shortest_path import UnsupportedLevelError, shortest_path

logger = logging.getLogger(__name__)


class NavigationPolicy(Protocol):
    """What :func:`rollout` needs from an agent (``vltk.tasks.navigation.agent.AgentPolicy`` is one)."""

    def begin(self, missions: Sequence[str]) -> Any:
        """The recurrent state for a new batch of episodes with these instructions."""

    def act(
        self, images: np.ndarray, directions: np.ndarray, state: Any
    ) -> tuple[np.ndarray, np.ndarray | None, Any]:
        """``(actions [B], word attention [B, T] or None, new state)`` for observations ``[B, ...]``."""


def rollout(
    policy: NavigationPolicy,
    level: str,
    seeds: Sequence[int],
    *,
    observation: ObservationKind = "symbolic",
    batch_size: int = 64,
    record: bool = False,
    shortest_paths: bool = True,
) -> list[EpisodeResult]:
    """Play one greedy episode per seed, ``batch_size`` environments at a time.

    Args:
        policy: the agent (:class:`NavigationPolicy`).
        level: BabyAI level id.
        seeds: episode seeds (held out from the demonstrations).
        observation: ``"symbolic"`` or ``"rgb"``, as the agent was trained.
        batch_size: environments stepped together (one policy call per step for all of them).
        record: keep actions, word attention and full-grid frames per step (for ``vltk predict --gif``).
        shortest_paths: search each episode's shortest solution from its start state, for SPL.

    Raises:
        UnsupportedLevelError: ``shortest_paths`` on a level the search cannot solve exactly (a
            :class:`vltk.errors.VltkError` naming the instruction type or what else is missing).
    """
    results: list[EpisodeResult] = []
    envs = [BabyAIEnv(level, observation=observation) for _ in range(min(batch_size, max(len(seeds), 1)))]
    try:
        for start in range(0, len(seeds), batch_size):
            chunk = [int(s) for s in seeds[start : start + batch_size]]
            results.extend(_rollout_chunk(policy, envs[: len(chunk)], chunk, record, shortest_paths))
    finally:
        for env in envs:
            env.close()
    return results


def _rollout_chunk(
    policy: NavigationPolicy, envs: list[BabyAIEnv], seeds: list[int], record: bool, shortest_paths: bool
) -> list[EpisodeResult]:
    observations = [env.reset(seed) for env, seed in zip(envs, seeds)]
    results = [
        EpisodeResult(seed, obs.mission, False, 0.0, 0, None, env.level)
        for env, seed, obs in zip(envs, seeds, observations)
    ]
    searched = shortest_paths and _search_shortest(envs, results)  # from the start state
    if record:
        for env, result in zip(envs, results):
            result.frames.append(env.render_rgb())
    state = policy.begin([obs.mission for obs in observations])
    active = np.ones(len(envs), dtype=bool)
    max_steps = max(env.max_steps for env in envs)
    for _ in range(max_steps):
        if not active.any():
            break
        images = np.stack([obs.image for obs in observations])  # [B, *obs]
        directions = np.asarray([obs.direction for obs in observations], dtype=np.int64)  # [B]
        actions, attention, state = policy.act(images, directions, state)
        for i in np.flatnonzero(active):
            obs, reward, done = envs[i].step(int(actions[i]))
            observations[i] = obs
            result = results[i]
            result.length += 1
            if record:
                result.actions.append(int(actions[i]))
                if attention is not None:
                    result.attention.append([float(w) for w in attention[i]])
                result.frames.append(envs[i].render_rgb())
            if done:
                result.reward = reward
                result.success = reward > 0
                active[i] = False
    if searched:
        for result in results:
            _check_shortest(result)
    return results


def _search_shortest(envs: list[BabyAIEnv], results: list[EpisodeResult]) -> bool:
    """Fill each result's ``shortest`` by the search; False (SPL unknown: NaN for successes) when the
    level holds something the search does not model, which is logged once per reason rather than raised,
    so that training and evaluation on such a level go on with the other metrics."""
    try:
        for env, result in zip(envs, results):
            result.shortest = shortest_path(env, where=f"{env.level} seed {result.seed}").length
            result.searched = True
    except UnsupportedLevelError as error:
        for result in results:
            result.shortest, result.searched = None, False
        if str(error) not in _UNSEARCHABLE_REPORTED:
            _UNSEARCHABLE_REPORTED.add(str(error))
            logger.warning("SPL is not computed (reported as NaN): %s", error)
        return False
    return True


_UNSEARCHABLE_REPORTED: set[str] = set()


def _check_shortest(result: EpisodeResult) -> None:
    """An agent's success in fewer steps than the search's shortest (or where it found none) would mean
    that the search does not match minigrid: stop rather than report a wrong SPL."""
    if result.success and (result.shortest is None or result.length < result.shortest):
        raise RuntimeError(
            f"{result.level} seed {result.seed}: the agent succeeded in {result.length} steps but the "
            f"shortest-path search found {result.shortest} (vltk.tasks.navigation.babyai.shortest_path "
            "disagrees with minigrid)"
        )
