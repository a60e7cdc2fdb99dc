"""The BabyAI wrapper, the bot, rollouts and navigation metrics."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from vltk.errors import ConfigError
from vltk.metrics.navigation import EpisodeResult, NavigationMetrics, merge_episodes, navigation_scores
from vltk.tasks.navigation.babyai.env import BabyAIEnv, check_level, level_ids, observation_shape
from vltk.tasks.navigation.babyai.expert import bot_episode
from vltk.tasks.navigation.babyai.rollout import rollout
from vltk.tasks.navigation.babyai.shortest_path import ShortestPath, shortest_path

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


class _ReplayPolicy:
    """Plays a fixed action plan per episode (then "done"), to check rollout bookkeeping and SPL."""

    def __init__(self, plans: list[list[int]]):
        self.plans, self.next = plans, 0

    def begin(self, missions):  # rollouts begin batches in seed order
        batch = self.plans[self.next : self.next + len(missions)]
        self.next += len(missions)
        return batch, 0

    def act(self, images, directions, state):
        batch, t = state
        actions = np.array([plan[t] if t < len(plan) else 6 for plan in batch])
        return actions, np.full((len(actions), 5), 0.2), (batch, t + 1)


def _plans(seeds: list[int]) -> list[list[int]]:
    env = BabyAIEnv(LEVEL)
    plans = []
    for seed in seeds:
        env.reset(seed)
        plans.append(list(shortest_path(env).actions))
    return plans


def test_rollout_scores_the_shortest_plans_with_spl_one_and_records_frames():
    seeds = [11, 12, 13]
    plans = _plans(seeds)
    results = rollout(_ReplayPolicy(plans), LEVEL, seeds, batch_size=3, record=True)
    assert [r.seed for r in results] == seeds and {r.level for r in results} == {LEVEL}
    assert all(r.success and r.shortest == r.length == len(p) for r, p in zip(results, plans))
    scores = navigation_scores(results)
    assert scores["success_rate"] == 1.0 and scores["SPL"] == 1.0
    assert len(results[0].frames) == results[0].length + 1 and len(results[0].attention) == results[0].length


def test_a_detour_of_two_steps_scores_l_over_l_plus_two():
    seeds = [21, 22, 23, 24]
    plans = _plans(seeds)
    assert min(map(len, plans)) > 1  # the target is not in front at the start: two no-ops do not finish
    results = rollout(_ReplayPolicy([[6, 6, *plan] for plan in plans]), LEVEL, seeds, batch_size=2)
    assert [r.length for r in results] == [len(p) + 2 for p in plans] and all(r.success for r in results)
    expected = [len(p) / (len(p) + 2) for p in plans]
    assert [r.spl for r in results] == pytest.approx(expected)
    assert navigation_scores(results)["SPL"] == pytest.approx(sum(expected) / 4) and max(expected) < 1


def test_the_bot_scores_below_one_where_its_path_is_longer_than_the_shortest():
    env, seeds = BabyAIEnv(LEVEL), list(range(30))
    bot = [bot_episode(env, seed).actions.tolist() for seed in seeds]
    results = rollout(_ReplayPolicy(bot), LEVEL, seeds, batch_size=30)
    assert all(r.success and r.length == len(p) and r.shortest <= r.length for r, p in zip(results, bot))
    longer = [r for r in results if r.shortest < r.length]
    assert len(longer) >= 3  # the bot's SPL was 1 by construction before; here it is not
    assert all(r.spl == r.shortest / r.length < 1 for r in longer)
    assert navigation_scores(results)["SPL"] < 1


def test_a_success_shorter_than_the_search_is_an_error(monkeypatch):
    rollout_module = importlib.import_module(
        "vltk.tasks.navigation.babyai.rollout"
    )  # vltk.tasks.navigation.babyai.rollout is also the function

    def too_long(env, **kwargs):
        return ShortestPath(64, (), 0)

    monkeypatch.setattr(rollout_module, "shortest_path", too_long)
    seeds = [11]
    with pytest.raises(
        RuntimeError, match="seed 11: the agent succeeded in .* shortest-path search found 64"
    ):
        rollout(_ReplayPolicy(_plans(seeds)), LEVEL, seeds)
    assert rollout(_ReplayPolicy(_plans(seeds)), LEVEL, seeds, shortest_paths=False)[0].shortest is None


def test_spl_and_metrics_deduplicate_by_seed():
    good = EpisodeResult(1, "m", True, 0.9, 10, 5)
    bad = EpisodeResult(2, "m", False, 0.0, 64, 4)
    assert good.spl == 0.5 and bad.spl == 0.0
    assert EpisodeResult(3, "m", True, 0.9, 4, 4).spl == 1.0
    assert EpisodeResult(4, "m", False, 0.0, 64, None).spl == 0.0  # no solution within the budget
    assert math.isnan(EpisodeResult(5, "m", True, 0.9, 4, None).spl)  # a success that was not searched
    metrics = NavigationMetrics()
    metrics.update([good, bad])
    metrics.update([EpisodeResult(1, "m", False, 0.0, 64, 5)])  # a padded repeat of seed 1: ignored
    scores = metrics.compute()
    assert scores == pytest.approx(
        {"success_rate": 0.5, "mean_reward": 0.45, "SPL": 0.25, "episode_length": 37.0}
    )
    assert [e.seed for e in merge_episodes([[bad], [good, bad]])] == [1, 2]
