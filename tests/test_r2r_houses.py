"""The built-in R2R houses: files in the R2R formats, shortest paths, disjoint splits, instructions,
determinism, the renderer and the statistics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.errors import ConfigError
from vltk.tasks.navigation.r2r.features import ViewFeatureStore
from vltk.tasks.navigation.r2r.files import read_r2r
from vltk.tasks.navigation.r2r.graph import load_graphs, read_connectivity
from vltk.tasks.navigation.r2r.houses import (
    SPLITS,
    HousesOptions,
    ensure_houses,
    format_statistics,
    generate_houses,
    houses_statistics,
)
from vltk.tasks.navigation.r2r.instructions import ROOM_WORDS, route_events
from vltk.tasks.navigation.r2r.layout import Door, House, Room, Viewpoint, make_house
from vltk.tasks.navigation.r2r.render import render_views

SMALL = HousesOptions(
    seed=3,
    train_houses=2,
    val_unseen_houses=1,
    test_houses=1,
    train_paths=24,
    val_seen_paths=6,
    val_unseen_paths=6,
    test_paths=6,
    two_floor_fraction=0.5,
    image_size=16,
    encoder_channels=(8, 16),
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate_houses(tmp_path_factory.mktemp("houses") / "small", SMALL, progress=False)


def _episodes(root: Path) -> dict[str, list]:
    episodes = {split: read_r2r(root / f"R2R_{split}.json") for split in SPLITS}
    episodes["test_references"] = read_r2r(root / "test_references.json")
    return episodes


def test_files_read_back_in_the_r2r_formats(dataset):
    episodes = _episodes(dataset)
    assert all(len(episodes[split]) == getattr(SMALL, f"{split}_paths") for split in SPLITS)
    assert all(len(e.instructions) == 3 for split in episodes.values() for e in split)
    assert all(len(e.path) == 1 for e in episodes["test"])
    ids = [e.path_id for split in SPLITS for e in episodes[split]]
    assert len(ids) == len(set(ids))
    scans = {e.scan for split in episodes.values() for e in split}
    graphs = load_graphs(dataset / "connectivity", scans)
    assert all(len(scan) == 11 for scan in scans)
    for graph in graphs.values():
        assert all(len(v) == 32 and int(v, 16) >= 0 for v in graph.viewpoints)
    store = ViewFeatureStore.open(dataset / "features")
    store.check_covers(graphs)
    assert store.dim == 16
    assert store.features(*store.keys()[0]).shape == (36, 16)
    record = json.loads((dataset / "houses" / f"{sorted(scans)[0]}.json").read_text())
    assert set(record) >= {"rooms", "doors", "objects", "viewpoints"}
    assert set(record["viewpoints"]) == set(graphs[sorted(scans)[0]].viewpoints)


def test_edges_are_symmetric_and_poses_hold_positions(dataset):
    for path in (dataset / "connectivity").glob("*_connectivity.json"):
        items = json.loads(path.read_text())
        flags = np.array([item["unobstructed"] for item in items])
        assert (flags == flags.T).all() and not flags.diagonal().any()
        for item in items:
            pose = np.array(item["pose"]).reshape(4, 4)
            assert np.allclose(pose[:3, :3], np.eye(3)) and item["included"] and item["height"] == 1.5
        graph = read_connectivity(path.parent, path.name.split("_")[0])
        distances = [graph.distance(graph.viewpoints[0], v) for v in graph.viewpoints]
        assert all(math.isfinite(d) for d in distances)  # one connected house


def test_paths_are_shortest_paths_of_four_to_seven_viewpoints(dataset):
    episodes = _episodes(dataset)
    graphs = load_graphs(
        dataset / "connectivity", {e.scan for e in episodes["train"] + episodes["test_references"]}
    )
    for split in ("train", "val_seen", "val_unseen", "test_references"):
        for episode in episodes[split]:
            graph = graphs.get(episode.scan) or read_connectivity(dataset / "connectivity", episode.scan)
            assert 4 <= len(episode.path) <= 7
            length = sum(graph.edge_length(a, b) for a, b in zip(episode.path, episode.path[1:]))
            assert episode.distance == pytest.approx(length, abs=1e-6)
            assert length == pytest.approx(graph.distance(episode.start, episode.goal), abs=1e-6)
            assert 0.0 <= episode.heading < 2 * math.pi


def test_splits_are_disjoint(dataset):
    episodes = _episodes(dataset)
    train_scans = {e.scan for e in episodes["train"]}
    assert {e.scan for e in episodes["val_seen"]} <= train_scans
    unseen, test = {e.scan for e in episodes["val_unseen"]}, {e.scan for e in episodes["test"]}
    assert not unseen & train_scans and not test & train_scans and not unseen & test
    train_paths = {e.path for e in episodes["train"]}
    assert not train_paths & {e.path for e in episodes["val_seen"]}
    assert [e.path[0] for e in episodes["test_references"]] == [e.start for e in episodes["test"]]


def test_instructions_name_the_goal_room(dataset):
    episodes = _episodes(dataset)
    for split in ("train", "val_unseen", "test_references"):
        for episode in episodes[split]:
            record = json.loads((dataset / "houses" / f"{episode.scan}.json").read_text())
            goal_room = record["viewpoints"][episode.goal]["rooms"][0]
            words = ROOM_WORDS[record["rooms"][goal_room]["kind"]]
            for text in episode.instructions:
                assert any(word in text for word in words), (text, words)
                assert text.endswith(".") and text[0].isupper()
            assert len(set(episode.instructions)) > 1


def test_same_seed_same_files(dataset, tmp_path):
    again = generate_houses(tmp_path / "again", SMALL, progress=False)
    names = [f"R2R_{split}.json" for split in SPLITS] + ["test_references.json"]
    names += [f"connectivity/{p.name}" for p in (dataset / "connectivity").iterdir()]
    names += [f"houses/{p.name}" for p in (dataset / "houses").glob("*.json")]
    for name in names:
        assert (again / name).read_bytes() == (dataset / name).read_bytes(), name
    assert np.array_equal(np.load(again / "features/views.npy"), np.load(dataset / "features/views.npy"))


def test_another_seed_other_houses(tmp_path):
    first = make_house("a" * 11, np.random.default_rng(0), 0.5)
    second = make_house("a" * 11, np.random.default_rng(1), 0.5)
    assert [r.kind for r in first.rooms] != [r.kind for r in second.rooms]


def _one_room_house(kind: str) -> House:
    room = Room(0, kind, 0, (0.0, 0.0, 4.0, 4.0), (0, 0))
    jitter = {k: np.zeros(3) for k in ROOM_WORDS}
    vp = Viewpoint("v" * 32, (2.0, 2.0, 1.5), "room", (0,), 0)
    return House(
        "s" * 11, 1, np.array([0.0, 4.0]), np.array([0.0, 4.0]), [room], [], [], [vp], set(), None, jitter
    )


def test_room_kinds_give_different_views():
    images = {
        kind: render_views(_one_room_house(kind), 0, np.array([[2.0, 2.0]]), 16)
        for kind in ("kitchen", "bedroom", "bathroom")
    }
    assert images["kitchen"].shape == (1, 36, 16, 16, 3)
    assert not np.array_equal(images["kitchen"], images["bedroom"])
    assert not np.array_equal(images["bedroom"], images["bathroom"])
    level, down, up = images["kitchen"][0, 12], images["kitchen"][0, 0], images["kitchen"][0, 24]
    assert not np.array_equal(level, down) and not np.array_equal(level, up)


def test_a_door_shows_the_next_room():
    rooms = [
        Room(0, "kitchen", 0, (0.0, 0.0, 4.0, 4.0), (0, 0)),
        Room(1, "bedroom", 0, (4.0, 0.0, 8.0, 4.0), (0, 1)),
    ]
    jitter = {k: np.zeros(3) for k in ROOM_WORDS}
    closed = House(
        "s" * 11, 1, np.array([0.0, 4.0, 8.0]), np.array([0.0, 4.0]), rooms, [], [], [], set(), None, jitter
    )
    opened = House(
        "s" * 11,
        1,
        closed.xs,
        closed.ys,
        rooms,
        [Door((0, 1), 0, (4.0, 2.0), True)],
        [],
        [],
        set(),
        None,
        jitter,
    )
    camera = np.array([[2.0, 2.0]])
    east = 12 + 3  # level view at heading 90 degrees: +x, towards the door
    a, b = render_views(closed, 0, camera, 16)[0, east], render_views(opened, 0, camera, 16)[0, east]
    assert not np.array_equal(a, b)
    assert np.array_equal(
        render_views(closed, 0, camera, 16)[0, 12 + 9], render_views(opened, 0, camera, 16)[0, 21]
    )


def test_turns_follow_the_heading_convention():
    rooms = [Room(0, "kitchen", 0, (0, 0, 4, 4), (0, 0)), Room(1, "bedroom", 0, (0, 4, 4, 8), (1, 0))]
    vps = [
        Viewpoint("a", (2.0, 1.0, 1.5), "room", (0,), 0),
        Viewpoint("d", (2.0, 4.0, 1.5), "door", (0, 1), 0),
        Viewpoint("b", (3.5, 5.0, 1.5), "room", (1,), 0),  # north then east: a right turn
    ]
    house = House("s", 1, np.array([0.0, 4.0]), np.array([0.0, 4.0, 8.0]), rooms, [], [], vps, set(), None)
    (event,) = route_events(house, [0, 1, 2])
    assert event["room"] == 1 and event["via"] == "door" and event["turn"] > 0


def test_statistics(dataset):
    stats = houses_statistics(dataset)
    for key in (
        "path_length_m_mean",
        "path_viewpoints_mean",
        "neighbours_per_viewpoint_mean",
        "instruction_words_mean",
        "vocabulary",
        "splits",
        "r2r_published",
    ):
        assert key in stats
    assert stats["splits"]["train"]["paths"] == SMALL.train_paths
    assert 4 <= stats["path_viewpoints_mean"] <= 7
    saved = json.loads((dataset / "stats.json").read_text())
    assert saved["vocabulary"] == stats["vocabulary"] and "generation_seconds" in saved
    table = format_statistics(stats)
    assert "vocabulary" in table and "21567" in table


def test_ensure_houses_generates_once(tmp_path, monkeypatch):
    options = HousesOptions(**{**SMALL.__dict__, "train_paths": 4, "val_seen_paths": 2})
    first = ensure_houses(options, cache_dir=tmp_path, progress=False)
    assert (first / "stats.json").is_file()
    import vltk.tasks.navigation.r2r.houses as houses

    monkeypatch.setattr(houses, "generate_houses", lambda *a, **k: pytest.fail("generated twice"))
    assert ensure_houses(options, cache_dir=tmp_path, progress=False) == first
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_houses": 0}, "train_houses"),
        ({"test_paths": 0}, "test_paths"),
        ({"two_floor_fraction": 1.5}, "two_floor_fraction"),
        ({"image_size": 4}, "image_size"),
        ({"feature_dtype": "int8"}, "feature_dtype"),
    ],
)
def test_bad_options_are_one_line_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        HousesOptions(**change)


def test_cli_writes_a_dataset(tmp_path):
    out = tmp_path / "cli"
    args = ["data", "r2r-houses", "--out", str(out), "--train-houses", "1", "--val-unseen-houses", "1"]
    args += ["--test-houses", "1", "--train-paths", "3", "--val-seen-paths", "1", "--val-unseen-paths", "1"]
    args += ["--test-paths", "1", "--image-size", "16", "--seed", "5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "stats.json").is_file() and "vocabulary" in result.output
    bad = CliRunner().invoke(app, ["data", "r2r-houses", "--out", str(tmp_path / "x"), "--train-houses", "0"])
    assert bad.exit_code == 2 and "train_houses" in bad.output
