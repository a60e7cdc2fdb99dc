"""The batched R2R graph environment (vltk.tasks.navigation.r2r.env) on small hand-made graphs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vltk.errors import ConfigError, DataError
from vltk.metrics.r2r import score_episode, score_r2r
from vltk.tasks.navigation.r2r.env import (
    COS_HALF_HFOV,
    LOW_LEVEL_ACTIONS,
    EnvEpisode,
    R2REnv,
    env_episodes,
)
from vltk.tasks.navigation.r2r.features import nearest_view as _nearest_view
from vltk.tasks.navigation.r2r.features import view_elevation as _view_elevation
from vltk.tasks.navigation.r2r.features import view_heading as _view_heading
from vltk.tasks.navigation.r2r.files import R2REpisode
from vltk.tasks.navigation.r2r.graph import ScanGraph

A = {name: index for index, name in enumerate(LOW_LEVEL_ACTIONS)}
DIM = 8


def make_graph(scan: str, positions: dict, edges: set) -> ScanGraph:
    """A ScanGraph straight from positions and undirected edges (weights: Euclidean lengths)."""
    points = {name: np.asarray(p, dtype=np.float64) for name, p in positions.items()}
    adjacency: dict[str, dict[str, float]] = {name: {} for name in positions}
    for a, b in sorted(edges):  # the neighbours' order: sorted edges
        length = float(np.linalg.norm(points[a] - points[b]))
        adjacency[a][b] = adjacency[b][a] = length
    return ScanGraph(scan=scan, viewpoints=tuple(positions), positions=points, _adjacency=adjacency)


# a: start; b north (heading 0); c east of b; d south of a (behind an agent looking north); e up a stair
# from d (further south, 1.5 m higher: elevation 36.9 deg > 30 deg); f east of a; g included, no edges.
HOUSE = {
    "a": (0, 0, 0),
    "b": (0, 2, 0),
    "c": (2, 2, 0),
    "d": (0, -2, 0),
    "e": (0, -4, 1.5),
    "f": (3, 0, 0),
    "g": (9, 9, 0),
}
HOUSE_EDGES = {("a", "b"), ("b", "c"), ("a", "d"), ("d", "e"), ("a", "f")}
LINE = {"p": (0, 0, 0), "q": (1, 0, 0)}


class FakeFeatures:
    """A dict-backed ViewFeatureSource: each viewpoint's [36, DIM] features are distinct numbers."""

    def __init__(self, graphs: dict[str, ScanGraph], skip: tuple[str, str] | None = None) -> None:
        self.dim = DIM
        self.table = {}
        for scan, graph in graphs.items():
            for i, viewpoint in enumerate(graph.viewpoints):
                if (scan, viewpoint) != skip:
                    base = 1000.0 * len(self.table) + 36 * DIM * i
                    self.table[scan, viewpoint] = base + np.arange(36 * DIM, dtype=np.float32).reshape(
                        36, DIM
                    )

    def features(self, scan: str, viewpoint: str) -> np.ndarray:
        return self.table[scan, viewpoint].copy()

    def check_covers(self, graphs) -> None:
        for scan, graph in graphs.items():
            for viewpoint in graph.viewpoints:
                if (scan, viewpoint) not in self.table:
                    raise DataError(
                        f"view features: viewpoint {viewpoint} of scan {scan} is missing from FAKE"
                    )


@pytest.fixture
def graphs() -> dict[str, ScanGraph]:
    return {"house": make_graph("house", HOUSE, HOUSE_EDGES), "line": make_graph("line", LINE, {("p", "q")})}


@pytest.fixture
def env(graphs) -> R2REnv:
    return R2REnv(graphs, FakeFeatures(graphs))


def episode(start: str, goal_path: tuple[str, ...], heading: float = 0.0, scan: str = "house", k=0):
    return EnvEpisode(f"{k}_0", scan, start, heading, goal_path)


def rollout(env: R2REnv, low_level: bool, limit: int = 100) -> None:
    for _ in range(limit):
        if env.done.all():
            return
        if low_level:
            env.observe_low_level()
            env.step_low_level(env.teacher_low_level())
        else:
            env.observe()
            env.step_panoramic(env.teacher_panoramic())
    raise AssertionError("the teacher did not finish")


def test_view_geometry_helpers():
    assert _view_heading(15) == pytest.approx(math.radians(90))
    assert _view_elevation(15) == 0.0 and _view_elevation(3) == pytest.approx(math.radians(-30))
    assert _view_elevation(27) == pytest.approx(math.radians(30))
    for ix in range(36):
        assert _nearest_view(_view_heading(ix), _view_elevation(ix)) == ix
    assert _nearest_view(math.radians(359), 0.0) == 12
    assert _nearest_view(math.radians(100), math.radians(80)) == 24 + 3  # elevation clamped to the top row
    assert COS_HALF_HFOV == pytest.approx(math.cos(math.radians(40)))  # vfov 60 deg * 640 / 480 / 2


def test_candidates_relative_heading_elevation_match_the_graph(env, graphs):
    env.reset([episode("a", ("a", "d", "e"), heading=math.radians(10))])  # snapped to 0 as the simulator
    obs = env.observe()
    assert obs.candidates == [["b", "d", "f"]]
    assert obs.heading[0] == 0.0 and obs.view_index[0] == 12
    np.testing.assert_array_equal(obs.candidate_views, [[12, 18, 15]])  # north, south, east (level)
    house = graphs["house"]
    for k, neighbour in enumerate(obs.candidates[0]):
        sin_h, cos_h, sin_e, cos_e = obs.candidate_angles[0, k]
        heading, elevation = house.relative_heading_elevation("a", 0.0, 0.0, neighbour)
        assert math.atan2(sin_h, cos_h) == pytest.approx(heading, abs=1e-6)
        assert math.atan2(sin_e, cos_e) == pytest.approx(elevation, abs=1e-6)
    env.step_panoramic([1])  # to d: heading the direction to it (south), elevation 0
    obs = env.observe()
    assert obs.heading[0] == pytest.approx(math.pi) and obs.elevation[0] == 0.0
    assert obs.candidates == [["a", "e"]]
    e = obs.candidates[0].index("e")
    heading, elevation = house.relative_heading_elevation("d", math.pi, 0.0, "e")
    assert heading == pytest.approx(0.0, abs=1e-9) and elevation == pytest.approx(math.atan2(1.5, 2.0))
    sin_h, cos_h, sin_e, cos_e = obs.candidate_angles[0, e]
    assert math.atan2(sin_h, cos_h) == pytest.approx(heading, abs=1e-6)
    assert math.atan2(sin_e, cos_e) == pytest.approx(elevation, abs=1e-6)
    assert obs.candidate_views[0, e] == 24 + 6  # south, top row (36.9 deg rounds to +30)


def test_view_angles_are_relative_to_the_agent_heading(env):
    env.reset([episode("a", ("a",), heading=math.pi / 2)])
    angles = env.observe().view_angles[0]  # [36, 4]
    assert angles.shape == (36, 4) and angles.dtype == np.float32
    np.testing.assert_allclose(angles[12 + 3], [0, 1, 0, 1], atol=1e-6)  # view 15 looks where the agent does
    np.testing.assert_allclose(angles[12 + 6], [1, 0, 0, 1], atol=1e-6)  # south: 90 deg to the right
    np.testing.assert_allclose(angles[0, 2:], [-0.5, math.sqrt(3) / 2], atol=1e-6)  # bottom row: -30 deg
    np.testing.assert_allclose(angles[24, 2:], [0.5, math.sqrt(3) / 2], atol=1e-6)


def test_panoramic_teacher_reaches_a_goal_behind_and_up_stairs(env, graphs):
    env.reset([episode("a", ("a", "d", "e"))])
    assert env.teacher_panoramic().tolist() == [1]  # d, behind the agent
    rollout(env, low_level=False)
    trajectory = env.trajectories()[0]
    assert [entry[0] for entry in trajectory] == ["a", "d", "e"]
    assert trajectory[0] == ["a", 0.0, 0.0]
    assert trajectory[2][1] == pytest.approx(math.pi) and trajectory[2][2] == 0.0
    assert env.steps.tolist() == [2]
    scores = score_episode(env.records()[0], graphs["house"].distance)
    assert scores["success_rate"] == 1.0 and scores["SPL"] == 1.0 and scores["navigation_error"] == 0.0


def test_low_level_teacher_turns_looks_up_and_reaches_the_goal(env, graphs):
    env.reset([episode("a", ("a", "d", "e"))])
    actions = []
    while not env.done.all():
        action = int(env.teacher_low_level()[0])
        actions.append(LOW_LEVEL_ACTIONS[action])
        env.step_low_level([action])
    # d is behind: turn right until it is within 30 deg, forward; e is 36.9 deg up: look up, forward; stop
    assert actions[:5] == ["right"] * 5 and actions[-3:] == ["up", "forward", "stop"]
    assert actions.count("forward") == 2 and set(actions) == {"right", "forward", "up", "stop"}
    trajectory = env.trajectories()[0]
    assert len(trajectory) == len(actions)  # the start, one entry per action but stop
    assert trajectory[-1][0] == "e" and trajectory[-1][2] == pytest.approx(math.radians(30))
    assert all(
        entry[1] == pytest.approx(round(entry[1] / (math.pi / 6)) * math.pi / 6) for entry in trajectory
    )
    metrics = score_r2r(env.records(), {"house": graphs["house"].distance})
    assert metrics["success_rate"] == 1.0 and metrics["SPL"] == 1.0 and metrics["navigation_error"] == 0.0


def test_low_level_teacher_turns_the_short_way(env):
    env.reset([episode("a", ("a", "b"), heading=math.pi / 2), episode("a", ("a", "f"), heading=0.0, k=1)])
    assert [LOW_LEVEL_ACTIONS[a] for a in env.teacher_low_level()] == ["left", "right"]
    env.reset([episode("a", ("a", "b"), heading=math.pi / 2)])
    env.step_low_level([A["down"]])  # camera down, b not in view: level the camera first
    assert env.observe_low_level().forward_possible.tolist() == [True]  # f, straight ahead
    assert LOW_LEVEL_ACTIONS[env.teacher_low_level()[0]] == "up"


def test_forward_is_a_no_op_with_nothing_in_view(env):
    env.reset([episode("c", ("c", "b"), heading=math.pi / 2)])  # c's only neighbour b lies west, behind
    obs = env.observe_low_level()
    assert obs.forward_possible.tolist() == [False]
    env.step_low_level([A["forward"]])
    assert env.viewpoints == ["c"] and env.steps.tolist() == [1]
    (start, after) = env.trajectories()[0]
    assert start[0] == after[0] == "c" and start[1] == after[1] == pytest.approx(math.pi / 2)
    for _ in range(6):
        env.step_low_level([A["left"]])  # 90 -> 270 deg: now looking west at b
    assert env.observe_low_level().forward_possible.tolist() == [True]
    env.step_low_level([A["forward"]])
    assert env.viewpoints == ["b"] and env.observe_low_level().heading[0] == pytest.approx(1.5 * math.pi)


def test_forward_moves_to_the_neighbour_nearest_the_view_centre(graphs):
    fan = make_graph(
        "fan", {"o": (0, 0, 0), "n1": (0.3, 2, 0), "n2": (-0.1, 2, 0)}, {("o", "n1"), ("o", "n2")}
    )
    env = R2REnv({"fan": fan})
    env.reset([EnvEpisode("1_0", "fan", "o", 0.0, ("o", "n1"))])
    assert LOW_LEVEL_ACTIONS[env.teacher_low_level()[0]] == "forward"  # n1 within 30 deg: "forward"
    env.step_low_level([A["forward"]])
    assert env.viewpoints == ["n2"]  # ... which takes the one in the middle, as in R2R


def test_up_down_limits_and_view_index(env):
    env.reset([episode("a", ("a",), heading=math.pi / 2)])
    seen = []
    for action in ("up", "up", "down", "down", "down", "right", "left", "left"):
        env.step_low_level([A[action]])
        obs = env.observe_low_level()
        seen.append((int(obs.view_index[0]), round(math.degrees(obs.elevation[0]))))
    assert seen == [(27, 30), (27, 30), (15, 0), (3, -30), (3, -30), (4, -30), (3, -30), (2, -30)]
    assert env.viewpoints == ["a"] and env.steps.tolist() == [8]


def test_low_level_view_is_the_feature_of_the_current_view(env):
    features = env.features
    env.reset([episode("a", ("a",), heading=math.pi / 2), episode("p", ("p",), scan="line", k=1)])
    env.step_low_level([A["up"], A["down"]])
    obs = env.observe_low_level()
    assert obs.view.shape == (2, DIM) and obs.view.dtype == np.float32
    np.testing.assert_array_equal(obs.view[0], features.features("house", "a")[27])
    np.testing.assert_array_equal(obs.view[1], features.features("line", "p")[0])
    pano = env.observe()
    assert pano.views.shape == (2, 36, DIM)
    np.testing.assert_array_equal(pano.views[1], features.features("line", "p"))


def test_done_episodes_ignore_actions(env):
    env.reset([episode("a", ("a", "b")), episode("a", ("a", "b"), k=1)])
    env.step_panoramic([3, 0])  # the first stops (3 candidates: index 3 is stop), the second moves to b
    assert env.done.tolist() == [True, False]
    env.step_panoramic([0, 0])
    env.step_low_level([A["forward"], A["right"]])
    assert env.viewpoints[0] == "a" and env.steps.tolist() == [0, 3]
    assert env.trajectories()[0] == [["a", 0.0, 0.0]]
    assert env.teacher_panoramic()[0] == 3 and env.teacher_low_level()[0] == A["stop"]
    env.step_low_level([A["forward"], A["stop"]])
    assert env.done.all() and env.steps.tolist() == [0, 3]


def test_batch_in_different_scans_pads_the_candidates(env):
    env.reset([episode("p", ("p", "q"), scan="line"), episode("a", ("a", "f"), k=1)])
    obs = env.observe()
    assert obs.candidates == [["q"], ["b", "d", "f"]]
    np.testing.assert_array_equal(obs.candidate_mask, [[True, False, False], [True, True, True]])
    assert obs.candidate_views.shape == (2, 3) and obs.candidate_views.dtype == np.int64
    assert obs.candidate_views[0].tolist() == [15, 0, 0]  # q lies east; padding 0
    assert obs.candidate_angles.shape == (2, 3, 4)
    np.testing.assert_array_equal(obs.candidate_angles[0, 1:], 0.0)
    assert obs.done.tolist() == [False, False]
    assert env.teacher_panoramic().tolist() == [0, 2]
    rollout(env, low_level=False)
    assert env.viewpoints == ["q", "f"]
    assert [len(t) for t in env.trajectories()] == [2, 2]


def test_max_steps_ends_episodes(graphs):
    env = R2REnv(graphs, max_steps=2)
    env.reset([episode("a", ("a", "e"))])
    env.step_low_level([A["left"]])
    assert not env.done[0]
    env.step_low_level([A["left"]])
    assert env.done[0] and env.steps.tolist() == [2] and len(env.trajectories()[0]) == 3
    assert env.observe().views is None and env.observe_low_level().view is None
    with pytest.raises(ConfigError, match="max_steps"):
        R2REnv(graphs, max_steps=0)


def test_trajectories_layout_and_predictions(env):
    env.reset([episode("a", ("a", "b"), k=7)])
    rollout(env, low_level=True)
    (trajectory,) = env.trajectories()
    assert all(isinstance(v, str) and isinstance(h, float) and isinstance(e, float) for v, h, e in trajectory)
    predictions = env.predictions()
    assert predictions == [{"instr_id": "7_0", "trajectory": trajectory}]
    assert json.loads(json.dumps(predictions)) == predictions


def test_missing_feature_is_a_data_error(graphs):
    with pytest.raises(DataError, match="viewpoint c of scan house is missing"):
        R2REnv(graphs, FakeFeatures(graphs, skip=("house", "c")))


def test_reset_errors_name_the_episode(env):
    with pytest.raises(DataError, match="'0_0': no navigation graph for scan 'attic'"):
        env.reset([episode("a", ("a",), scan="attic")])
    with pytest.raises(DataError, match="viewpoint zz is not in scan house"):
        env.reset([episode("a", ("a", "zz"))])
    with pytest.raises(DataError, match="the goal g cannot be reached from a"):
        env.reset([episode("a", ("a", "g"))])
    with pytest.raises(DataError, match="must begin at the start"):
        env.reset([episode("a", ("b", "c"))])
    with pytest.raises(RuntimeError, match="reset"):
        R2REnv({}).observe()
    env.reset([episode("a", ("a",))])
    with pytest.raises(ValueError, match="expected 1 choices"):
        env.step_panoramic([0, 0])
    with pytest.raises(ValueError, match="not in 0..5"):
        env.step_low_level([6])


def test_env_episodes_one_per_instruction():
    r2r = R2REpisode(
        path_id=12, scan="house", path=("a", "d"), heading=1.0, distance=2.0, instructions=("x", "y")
    )
    assert env_episodes([r2r]) == [
        EnvEpisode("12_0", "house", "a", 1.0, ("a", "d")),
        EnvEpisode("12_1", "house", "a", 1.0, ("a", "d")),
    ]


def random_graph(scan: str, rng: np.random.Generator, side: int = 6) -> ScanGraph:
    """A jittered grid joined to its 4-neighbours, some edges dropped, one random z step per row."""
    names = [f"{scan}_{i}" for i in range(side * side)]
    positions = {
        name: (
            i % side * 2.0 + rng.uniform(-0.5, 0.5),
            i // side * 2.0 + rng.uniform(-0.5, 0.5),
            i // side * 0.3,
        )
        for i, name in enumerate(names)
    }
    edges = {(names[i], names[i + 1]) for i in range(len(names)) if i % side < side - 1}
    edges |= {
        (names[i], names[i + side]) for i in range(len(names) - side) if rng.random() < 0.7 or i % side == 0
    }
    return make_graph(scan, positions, edges)


def test_teachers_follow_shortest_paths_on_random_graphs():
    rng = np.random.default_rng(0)
    graphs = {f"s{i}": random_graph(f"s{i}", rng) for i in range(3)}
    episodes = []
    for k in range(24):
        scan = f"s{k % 3}"
        start, goal = rng.choice(graphs[scan].viewpoints, size=2, replace=False)
        path = tuple(graphs[scan].shortest_path(start, goal))
        episodes.append(EnvEpisode(f"{k}_0", scan, start, float(rng.uniform(0, 2 * math.pi)), path))
    env = R2REnv(graphs, max_steps=200)
    distances = {scan: graph.distance for scan, graph in graphs.items()}
    for low_level in (False, True):
        env.reset(episodes)
        rollout(env, low_level=low_level, limit=300)
        metrics = score_r2r(env.records(), distances)
        assert metrics["success_rate"] == 1.0 and metrics["navigation_error"] == 0.0
        if not low_level:  # the panoramic teacher walks exactly the shortest paths
            assert metrics["SPL"] == pytest.approx(1.0)
            assert [[e[0] for e in t] for t in env.trajectories()] == [list(e.path) for e in episodes]
