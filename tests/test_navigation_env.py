"""The BabyAI wrapper, the bot, rollouts and navigation metrics."""

from __future__ import annotations

import numpy as np
import pytest

from vltk.envs import (
    BabyAIEnv,
    EpisodeResult,
    bot_episode,
    check_level,
    level_ids,
    observation_shape,
    rollout,
)
from vltk.errors import ConfigError
from vltk.metrics.navigation import NavigationMetrics, merge_episodes, navigation_scores

LEVEL = "BabyAI-GoToRedBall-v0"


def test_levels_are_listed_and_unknown_ids_suggest_close_matches():
    assert LEVEL in level_ids() and "BabyAI-GoToLocal-v0" in level_ids()
    assert check_level(LEVEL) == LEVEL
    with pytest.raises(
        ConfigError, match="unknown BabyAI level 'BabyAI-GoToRedBal-v0'.*BabyAI-GoToRedBall-v0"
    ):
        check_level("BabyAI-GoToRedBal-v0")
    with pytest.raises(ConfigError, match="BabyAI-GoToLocal-v0"):
        BabyAIEnv("gotolocal")


@pytest.mark.parametrize("kind", ["symbolic", "rgb"])
def test_observations_have_the_documented_shape_and_reset_is_quiet(kind, capfd):
    env = BabyAIEnv(LEVEL, observation=kind)
    observations = [env.reset(seed) for seed in range(40)]  # some seeds make minigrid print rejections
    out, _ = capfd.readouterr()
    assert out == ""
    assert observations[0].image.shape == observation_shape(kind) and observations[0].image.dtype == np.uint8
    assert observations[0].mission.startswith("go to")
    again = env.reset(7)
    assert np.array_equal(again.image, observations[7].image) and again.mission == observations[7].mission


def test_bot_solves_an_episode_and_records_what_it_saw():
    env = BabyAIEnv(LEVEL)
    episode = bot_episode(env, 5)
    assert episode.success and episode.reward > 0
    assert episode.images.shape == (episode.num_steps, 7, 7, 3)
    assert episode.directions.shape == episode.actions.shape == (episode.num_steps,)
    replay = BabyAIEnv(LEVEL)  # the recorded actions replay the same episode
    replay.reset(5)
    for action in episode.actions:
        _, reward, done = replay.step(int(action))
    assert done and reward == pytest.approx(episode.reward)


class _ReplayBotPolicy:
    """Plays the bot's recorded actions per seed: a perfect policy, to check rollout bookkeeping."""

    def __init__(self, plans: dict[str, list[list[int]]]):
        self.plans = plans

    def begin(self, missions):
        return {"t": 0, "n": len(missions)}

    def act(self, images, directions, state):
        t = state["t"]
        actions = np.array([plan[t] if t < len(plan) else 6 for plan in self.plans["order"]])
        return actions, np.full((len(actions), 5), 0.2), {"t": t + 1, "n": state["n"]}


def test_rollout_scores_a_perfect_policy_with_spl_one_and_records_frames():
    env = BabyAIEnv(LEVEL)
    seeds = [11, 12, 13]
    plans = [bot_episode(env, s).actions.tolist() for s in seeds]
    results = rollout(_ReplayBotPolicy({"order": plans}), LEVEL, seeds, batch_size=3, record=True)
    assert [r.seed for r in results] == seeds
    assert all(r.success and r.shortest == r.length == len(p) for r, p in zip(results, plans))
    scores = navigation_scores(results)
    assert scores["success_rate"] == 1.0 and scores["SPL"] == pytest.approx(1.0)
    assert len(results[0].frames) == results[0].length + 1 and len(results[0].attention) == results[0].length


def test_spl_and_metrics_deduplicate_by_seed():
    good = EpisodeResult(1, "m", True, 0.9, 10, 5)
    bad = EpisodeResult(2, "m", False, 0.0, 64, 4)
    assert good.spl == pytest.approx(0.5) and bad.spl == 0.0
    metrics = NavigationMetrics()
    metrics.update([good, bad])
    metrics.update([EpisodeResult(1, "m", False, 0.0, 64, 5)])  # a padded repeat of seed 1: ignored
    scores = metrics.compute()
    assert scores == pytest.approx(
        {"success_rate": 0.5, "mean_reward": 0.45, "SPL": 0.25, "episode_length": 37.0}
    )
    assert [e.seed for e in merge_episodes([[bad], [good, bad]])] == [1, 2]
