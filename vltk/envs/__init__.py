"""Environments for the navigation task: BabyAI levels of ``minigrid``, its bot, exact shortest paths (SPL),
vectorised rollouts."""

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
from vltk.envs.expert import BotEpisode, bot_episode, bot_episodes
from vltk.envs.rollout import EpisodeResult, NavigationPolicy, rollout
from vltk.envs.shortest_path import ShortestPath, UnsupportedLevelError, shortest_path

__all__ = [
    "ACTION_NAMES",
    "NUM_ACTIONS",
    "OBSERVATIONS",
    "BabyAIEnv",
    "BotEpisode",
    "EpisodeResult",
    "NavigationPolicy",
    "Observation",
    "ShortestPath",
    "UnsupportedLevelError",
    "bot_episode",
    "bot_episodes",
    "check_level",
    "level_ids",
    "observation_shape",
    "quiet_stdout",
    "rollout",
    "shortest_path",
]
