"""The R2R baselines that need no training: the random walk and the agent that stops at once.

Restated from peteanderson80/Matterport3DSimulator ``tasks/R2R/agent.py``: ``RandomAgent`` "picks a random
direction then tries to go straight for five viewpoint steps and then stops" -- it turns right a random 0 to
11 times (``random.sample(range(-11, 1), ...)``: one of the 12 headings), then moves ``forward`` five times,
turning right whenever nothing is in view, within the episode's step budget; ``StopAgent`` never moves. Both
play the low-level action space of :class:`~vltk.tasks.navigation.r2r.env.R2REnv`. They read neither the
instruction nor the views: what they score is the floor an agent must beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vltk.tasks.navigation.r2r.env import LOW_LEVEL_ACTIONS, EnvEpisode, R2REnv

FORWARD_STEPS = 5  # RandomAgent: five viewpoint steps
TURN, FORWARD, STOP = (LOW_LEVEL_ACTIONS.index(name) for name in ("right", "forward", "stop"))


def random_walk(env: R2REnv, episodes: Sequence[EnvEpisode], seed: int = 1) -> list[list[list]]:
    """Play ``RandomAgent`` on ``episodes``: the EvalAI trajectories (start included)."""
    rng = np.random.default_rng(seed)
    env.reset(episodes)
    counters = rng.integers(-11, 1, size=len(episodes))  # < 0: turns left to take; 0..4: moves made
    while not env.done.all():
        forward_possible = env.observe_low_level().forward_possible
        actions = np.full(len(episodes), TURN)
        actions[counters >= FORWARD_STEPS] = STOP
        moving = (counters >= 0) & (counters < FORWARD_STEPS) & forward_possible
        actions[moving] = FORWARD
        counters[(counters < 0) | moving] += 1
        env.step_low_level(actions)
    return env.trajectories()


def stay_at_start(env: R2REnv, episodes: Sequence[EnvEpisode]) -> list[list[list]]:
    """Play ``StopAgent``: every episode stops where it starts."""
    env.reset(episodes)
    env.step_low_level(np.full(len(episodes), STOP))
    return env.trajectories()
