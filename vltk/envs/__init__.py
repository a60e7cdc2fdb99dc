"""Environments for the navigation task: BabyAI levels of ``minigrid``, its bot, vectorised rollouts."""

from vltk.envs.babyai import (
    ACTION_NAMES,
    NUM_ACTIONS,
    OBSERVATIONS,
    BabyAIEnv,
    Observation,
    check_level,
    level_ids,
    observation_shape,
    quiet_stdout,
)
from vltk.envs.expert import BotEpisode, bot_episode, bot_episodes, bot_path_length
from vltk.envs.rollout import EpisodeResult, NavigationPolicy, rollout

__all__ = [
    "ACTION_NAMES",
    "NUM_ACTIONS",
    "OBSERVATIONS",
    "BabyAIEnv",
    "BotEpisode",
    "EpisodeResult",
    "NavigationPolicy",
    "Observation",
    "bot_episode",
    "bot_episodes",
    "bot_path_length",
    "check_level",
    "level_ids",
    "observation_shape",
    "quiet_stdout",
    "rollout",
]
