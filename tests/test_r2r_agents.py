"""The R2R agents (seq2seq, panoramic follower) and their rollouts in the graph environment, on a hand-made
house: shapes, masks, teacher forcing along the shortest path, and imitation that learns to follow it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vltk.errors import ConfigError
from vltk.metrics.r2r import R2RRecord, score_episode
from vltk.tasks.navigation.r2r.agents import PanoramicFollower, Seq2SeqAgent, StepOutput, build_r2r_agent
from vltk.tasks.navigation.r2r.env import EnvEpisode, R2REnv
from vltk.tasks.navigation.r2r.graph import ScanGraph
from vltk.tasks.navigation.r2r.rollout import check_feedback, mask_visited, run_episodes
from vltk.tasks.navigation.r2r.system import R2RConfig

DIM = 6
# a cross: a in the middle, b north, c east, d south, e west; f north of b
POSITIONS = {"a": (0, 0, 0), "b": (0, 2, 0), "c": (2, 0, 0), "d": (0, -2, 0), "e": (-2, 0, 0), "f": (0, 4, 0)}
EDGES = {("a", "b"), ("a", "c"), ("a", "d"), ("a", "e"), ("b", "f")}


def make_graph() -> ScanGraph:
    points = {name: np.asarray(p, dtype=np.float64) for name, p in POSITIONS.items()}
    adjacency: dict[str, dict[str, float]] = {name: {} for name in POSITIONS}
    for a, b in sorted(EDGES):
        adjacency[a][b] = adjacency[b][a] = float(np.linalg.norm(points[a] - points[b]))
    return ScanGraph(scan="x", viewpoints=tuple(POSITIONS), positions=points, _adjacency=adjacency)


class Features:
    """Every viewpoint's 36 views: small random numbers, fixed by the seed."""

    dim = DIM

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.table = {v: rng.normal(size=(36, DIM)).astype(np.float32) for v in POSITIONS}

    def features(self, scan: str, viewpoint: str) -> np.ndarray:
        return self.table[viewpoint].copy()

    def check_covers(self, graphs) -> None:
        pass


# instruction words 1..4 name the goals: "north" -> f (2 moves), "east" -> c, "south" -> d, "west" -> e
GOALS = {1: ("a", "b", "f"), 2: ("a", "c"), 3: ("a", "d"), 4: ("a", "e")}


def batch(words: list[int]) -> tuple[torch.Tensor, torch.Tensor, list[EnvEpisode]]:
    tokens = torch.tensor([[w, 5] for w in words])  # [B, 2]; 5 is a filler word
    mask = torch.ones_like(tokens, dtype=torch.bool)
    episodes = [EnvEpisode(f"{i}_0", "x", "a", 0.0, GOALS[w]) for i, w in enumerate(words)]
    return tokens, mask, episodes


def small(name: str, **options):
    spec = {"name": name, "embed_dim": 8, "hidden_dim": 16, "dropout": 0.0, **options}
    if name == "panoramic":
        spec.update(text_hidden_dim=8, action_dim=8, angle_repeat=2, feature_dropout=0.0)
    else:
        spec.update(action_dim=4)
    return build_r2r_agent(spec, vocab_size=8, feature_dim=DIM, pad_id=0)


@pytest.fixture
def env() -> R2REnv:
    return R2REnv({"x": make_graph()}, Features(), max_steps=12)


def test_registry_builds_both_agents_with_their_action_space():
    assert (
        isinstance(small("panoramic"), PanoramicFollower) and small("panoramic").action_space == "panoramic"
    )
    assert isinstance(small("seq2seq"), Seq2SeqAgent) and small("seq2seq").action_space == "low_level"
    with pytest.raises(ConfigError, match="dropout"):
        small("seq2seq", dropout=1.5)
    with pytest.raises(ConfigError, match="feedback"):
        check_feedback("oracle")


@pytest.mark.parametrize("name", ["panoramic", "seq2seq"])
def test_teacher_forcing_walks_the_shortest_path_and_scores_perfectly(env, name):
    torch.manual_seed(0)
    tokens, mask, episodes = batch([1, 2, 3, 4])
    env.reset(episodes)
    rollout = run_episodes(small(name), env, tokens, mask, feedback="teacher", max_steps=12)
    assert rollout.steps > 0 and torch.isfinite(rollout.loss)
    graph = make_graph()
    for episode, trajectory in zip(episodes, env.trajectories()):
        nodes = [step[0] for step in trajectory]
        scores = score_episode(R2RRecord(episode.instr_id, "x", list(episode.path), nodes), graph.distance)
        assert scores["success_rate"] == 1.0 and scores["SPL"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["panoramic", "seq2seq"])
def test_recorded_attention_has_one_row_per_decision(env, name):
    tokens, mask, episodes = batch([1, 2])
    env.reset(episodes)
    agent = small(name)
    rollout = run_episodes(
        agent, env, tokens, mask, feedback="argmax", max_steps=12, teacher_loss=False, record=True
    )
    assert rollout.steps == 0  # no teacher loss asked
    for rows in rollout.attention:
        assert rows and all(row.shape == (2,) and row.sum() == pytest.approx(1.0, abs=1e-5) for row in rows)


@pytest.mark.parametrize("name", ["panoramic", "seq2seq"])
def test_imitation_with_student_forcing_learns_to_follow_the_words(env, name):
    """After training on the four instructions the greedy agent reaches every goal (the words decide it)."""
    torch.manual_seed(0)
    agent = small(name)
    optimiser = torch.optim.Adam(agent.parameters(), lr=0.02)
    words = [1, 2, 3, 4] * 4
    for _ in range(150):
        tokens, mask, episodes = batch(words)
        env.reset(episodes)
        rollout = run_episodes(agent, env, tokens, mask, feedback="student", max_steps=12)
        optimiser.zero_grad()
        rollout.loss.backward()
        optimiser.step()
    tokens, mask, episodes = batch([1, 2, 3, 4])
    env.reset(episodes)
    agent.eval()
    with torch.no_grad():
        run_episodes(agent, env, tokens, mask, feedback="argmax", max_steps=12, teacher_loss=False)
    ends = [trajectory[-1][0] for trajectory in env.trajectories()]
    assert ends == ["f", "c", "d", "e"]


def test_without_the_instruction_the_agent_cannot_tell_the_goals_apart(env):
    """use_instruction=false: the same network with zero word context does the same for every instruction."""
    torch.manual_seed(0)
    agent = small("panoramic", use_instruction=False).eval()
    tokens, mask, episodes = batch([1, 2, 3, 4])
    env.reset(episodes)
    with torch.no_grad():
        run_episodes(agent, env, tokens, mask, feedback="argmax", max_steps=12, teacher_loss=False)
    assert len({tuple(step[0] for step in t) for t in env.trajectories()}) == 1


def test_without_vision_the_view_features_do_not_matter(env):
    torch.manual_seed(0)
    agent = small("panoramic", use_vision=False).eval()
    views = torch.randn(2, 36, DIM)
    angles = torch.randn(2, 36, 4)
    assert torch.equal(agent.options(views, angles), agent.options(torch.randn(2, 36, DIM), angles))


def test_random_walk_turns_then_makes_at_most_five_moves_along_edges(env):
    from vltk.tasks.navigation.r2r.baselines import random_walk, stay_at_start

    graph = make_graph()
    episodes = [EnvEpisode(f"{i}_0", "x", "a", 0.0, GOALS[1 + i % 4]) for i in range(12)]
    trajectories = random_walk(env, episodes, seed=3)
    moved = set()
    for trajectory in trajectories:
        nodes = [step[0] for step in trajectory]
        assert nodes[0] == "a"
        hops = [(u, v) for u, v in zip(nodes, nodes[1:]) if u != v]
        assert 1 <= len(hops) <= 5 and all(graph.has_edge(u, v) for u, v in hops)
        moved.add(hops[0][1])
    assert len(moved) >= 2  # the random headings lead different ways
    assert random_walk(env, episodes, seed=3) == trajectories  # seeded
    assert all(len(t) == 1 and t[0][0] == "a" for t in stay_at_start(env, episodes))


def always_first_neighbour(agent: PanoramicFollower) -> PanoramicFollower:
    """The agent with its scores replaced: the first real candidate first, the stop choice (last) last."""
    step = agent.step

    def first(views, candidates, candidate_mask, previous, state):
        out = step(views, candidates, candidate_mask, previous, state)
        preference = -torch.arange(candidate_mask.shape[1], dtype=torch.float32)  # [K + 1]
        logits = preference.expand_as(out.logits).masked_fill(~candidate_mask, float("-inf"))  # [B, K + 1]
        return StepOutput(logits, out.attention, out.state)

    agent.step = first
    return agent


def test_mask_visited_switches_off_visited_candidates_but_never_the_stop_choice():
    choice_mask = torch.tensor([[True, True, True, True], [True, False, False, True]])  # K = 3, stop last
    masked = mask_visited(choice_mask, [["a", "b", "c"], ["c"]], [{"b", "z"}, {"c"}])
    assert masked.tolist() == [[True, False, True, True], [False, False, False, True]]


def test_avoiding_revisits_ends_a_walk_that_would_go_back_and_forth(env):
    tokens, mask, episodes = batch([1, 2])
    agent = always_first_neighbour(small("panoramic"))
    env.reset(episodes)
    run_episodes(agent, env, tokens, mask, feedback="argmax", max_steps=12, teacher_loss=False)
    looping = [[step[0] for step in trajectory] for trajectory in env.trajectories()]
    assert all(len(nodes) == 13 and len(set(nodes)) < len(nodes) for nodes in looping)  # back and forth
    env.reset(episodes)
    run_episodes(
        agent, env, tokens, mask, feedback="argmax", max_steps=12, teacher_loss=False, avoid_revisits=True
    )
    for trajectory in env.trajectories():
        nodes = [step[0] for step in trajectory]
        assert len(set(nodes)) == len(nodes) < 13  # never back; stopped early
        graph = make_graph()
        assert all(graph.has_edge(a, b) for a, b in zip(nodes, nodes[1:]))


def test_avoid_revisits_is_for_panoramic_agents_only(env):
    tokens, mask, episodes = batch([1])
    env.reset(episodes)
    with pytest.raises(ConfigError, match="avoid_revisits"):
        run_episodes(small("seq2seq"), env, tokens, mask, feedback="argmax", max_steps=4, avoid_revisits=True)
    with pytest.raises(ConfigError, match="avoid_revisits: 'seq2seq'"):
        R2RConfig(model={"name": "seq2seq"}, avoid_revisits=True)
    assert R2RConfig(model={"name": "panoramic"}, avoid_revisits=True).avoid_revisits
