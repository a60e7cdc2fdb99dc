"""Expert demonstrations from the BabyAI bot (``minigrid.utils.baby_ai_bot.BabyAIBot``), the planner that
Chevalier-Boisvert et al. 2019 (BabyAI) use to produce imitation-learning demonstrations.

:func:`bot_episode` plays one seeded episode with the bot and records what an imitation learner needs: the
observation before every action, the heading, the action, and the mission. :func:`bot_episodes` does a
range of seeds and is the unit of work of the parallel demo generator
(``vltk.tasks.navigation.babyai.demos``); it lives here, beside the environment, so worker processes import
minigrid and numpy only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vltk.tasks.navigation.babyai.env import BabyAIEnv, ObservationKind

logger = logging.getLogger(__name__)


@dataclass
class BotEpisode:
    """One episode solved by the bot.

    Attributes:
        seed: the episode's seed.
        mission: the instruction.
        images: ``uint8`` ``[T, *observation_shape]``, the observation before each action.
        directions: ``int8`` ``[T]`` headings.
        actions: ``int8`` ``[T]`` the bot's actions.
        reward: the episode's return (minigrid: ``1 - 0.9 * steps / max_steps`` on success, else 0).
        success: whether the bot finished the mission.
    """

    seed: int
    mission: str
    images: np.ndarray
    directions: np.ndarray
    actions: np.ndarray
    reward: float
    success: bool

    @property
    def num_steps(self) -> int:
        return int(self.actions.shape[0])


def bot_episode(env: BabyAIEnv, seed: int) -> BotEpisode:
    """Play the episode of ``seed`` with the BabyAI bot on ``env``."""
    from minigrid.utils.baby_ai_bot import BabyAIBot

    obs = env.reset(seed)
    bot = BabyAIBot(env.unwrapped)
    images, directions, actions = [], [], []
    reward, done, success = 0.0, False, False
    for _ in range(env.max_steps):
        try:
            action = int(bot.replan())
        except Exception as error:  # the bot fails on a few rare layouts; the episode is then dropped
            logger.debug("bot failed on %s seed %d: %s", env.level, seed, error)
            break
        images.append(obs.image)
        directions.append(obs.direction)
        actions.append(action)
        obs, reward, done = env.step(action)
        if done:
            success = reward > 0
            break
    return BotEpisode(
        seed=int(seed),
        mission=obs.mission,
        images=np.stack(images) if images else np.zeros((0, *obs.image.shape), np.uint8),
        directions=np.asarray(directions, dtype=np.int8),
        actions=np.asarray(actions, dtype=np.int8),
        reward=float(reward),
        success=success,
    )


def bot_episodes(level: str, observation: ObservationKind, seeds: list[int]) -> list[BotEpisode]:
    """The bot's episodes for ``seeds`` on a fresh environment (failed episodes included, flagged)."""
    env = BabyAIEnv(level, observation=observation)
    try:
        return [bot_episode(env, seed) for seed in seeds]
    finally:
        env.close()
