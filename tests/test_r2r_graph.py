"""R2R files and navigation graphs (vltk.tasks.navigation.r2r) on small hand-made connectivity files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vltk.errors import DataError
from vltk.tasks.navigation.r2r.files import R2REpisode, instruction_ids, read_r2r
from vltk.tasks.navigation.r2r.graph import ScanGraph, load_graphs, read_connectivity


def _pose(x: float, y: float, z: float) -> list[float]:
    """A row-major 4x4 camera-to-world matrix, identity rotation, translation at [3], [7], [11]."""
    return [1.0, 0.0, 0.0, x, 0.0, 1.0, 0.0, y, 0.0, 0.0, 1.0, z, 0.0, 0.0, 0.0, 1.0]


def _items(positions: dict, edges: set, excluded: frozenset = frozenset()) -> list[dict]:
    names = list(positions)
    joined = {frozenset(edge) for edge in edges}
    return [
        {
            "image_id": a,
            "pose": _pose(*positions[a]),
            "included": a not in excluded,
            "visible": [a != b for b in names],
            "unobstructed": [frozenset((a, b)) in joined for b in names],
            "height": 1.5,
        }
        for a in names
    ]


def _write(directory, scan: str, items) -> None:
    (directory / f"{scan}_connectivity.json").write_text(json.dumps(items))


LINE = {"v0": (0, 0, 0), "v1": (1, 0, 0), "v2": (3, 0, 0), "v3": (6, 0, 0), "v4": (10, 0, 0)}
LINE_EDGES = {("v0", "v1"), ("v1", "v2"), ("v2", "v3"), ("v3", "v4")}

# a quadrilateral a-b-c-d with an obstructed diagonal a-c, a hub e joined to all but not included (through
# it a-c would be 5 m), and an included viewpoint f without edges.
QUAD = {"a": (0, 0, 0), "b": (3, 0, 0), "c": (3, 4, 0), "d": (0, 5, 0), "e": (1.5, 2, 0), "f": (9, 9, 0)}
QUAD_EDGES = {("a", "b"), ("b", "c"), ("c", "d"), ("d", "a"), ("e", "a"), ("e", "b"), ("e", "c"), ("e", "d")}


@pytest.fixture
def line(tmp_path) -> ScanGraph:
    _write(tmp_path, "line", _items(LINE, LINE_EDGES))
    return read_connectivity(tmp_path, "line")


@pytest.fixture
def quad(tmp_path) -> ScanGraph:
    _write(tmp_path, "quad", _items(QUAD, QUAD_EDGES, excluded=frozenset({"e"})))
    return read_connectivity(tmp_path, "quad")


def test_line_distances_and_paths(line):
    assert line.viewpoints == ("v0", "v1", "v2", "v3", "v4")
    np.testing.assert_array_equal(line.positions["v3"], [6.0, 0.0, 0.0])
    assert line.neighbours("v2") == ["v1", "v3"]
    assert line.neighbours("v0") == ["v1"]
    assert line.edge_length("v3", "v4") == 4.0
    assert line.distance("v0", "v4") == 10.0
    assert line.distance("v4", "v1") == 9.0
    assert line.distance("v2", "v2") == 0.0
    assert line.shortest_path("v0", "v4") == ["v0", "v1", "v2", "v3", "v4"]
    assert line.shortest_path("v3", "v1") == ["v3", "v2", "v1"]
    assert line.shortest_path("v2", "v2") == ["v2"]


def test_obstructed_pair_is_not_joined(line, quad):
    assert not line.has_edge("v0", "v2")
    with pytest.raises(DataError, match="no edge between viewpoints v0 and v2"):
        line.edge_length("v0", "v2")
    assert not quad.has_edge("a", "c")
    assert quad.has_edge("a", "b") and quad.has_edge("b", "a")


def test_quad_shortest_paths_by_hand(quad):
    assert quad.distance("a", "c") == 7.0  # a-b-c (3 + 4); a-d-c is 5 + sqrt(10)
    assert quad.shortest_path("a", "c") == ["a", "b", "c"]
    assert quad.distance("b", "d") == pytest.approx(4 + math.sqrt(10))  # b-c-d; b-a-d is 8
    assert quad.shortest_path("b", "d") == ["b", "c", "d"]
    assert quad.edge_length("c", "d") == pytest.approx(math.sqrt(10))


def test_excluded_viewpoint_is_not_in_the_graph(quad):
    assert "e" not in quad and "e" not in quad.positions
    assert quad.viewpoints == ("a", "b", "c", "d", "f")
    assert quad.neighbours("a") == ["b", "d"]
    with pytest.raises(DataError, match="viewpoint e is not an included viewpoint"):
        quad.neighbours("e")
    with pytest.raises(DataError, match="viewpoint e is not an included viewpoint"):
        quad.distance("a", "e")


def test_isolated_included_viewpoint_is_unreachable(quad):
    assert "f" in quad and quad.neighbours("f") == []
    assert quad.distance("a", "f") == math.inf
    with pytest.raises(DataError, match="viewpoint f cannot be reached from a"):
        quad.shortest_path("a", "f")


def test_edge_weight_is_3d_euclidean(tmp_path):
    _write(tmp_path, "stairs", _items({"x": (1, 2, 3), "y": (2, 4, 5)}, {("x", "y")}))
    graph = read_connectivity(tmp_path, "stairs")
    assert graph.edge_length("x", "y") == pytest.approx(3.0)  # sqrt(1 + 4 + 4)


def test_distances_agree_with_networkx_dijkstra_on_a_random_graph(tmp_path):
    """The official scorer's tables (tasks/R2R/eval.py: networkx all_pairs_dijkstra_path_length over the
    load_nav_graphs graph), rebuilt independently here."""
    nx = pytest.importorskip("networkx")
    rng = np.random.default_rng(0)
    names = [f"p{i}" for i in range(40)]
    positions = {name: tuple(rng.uniform(0, 20, 3)) for name in names}
    edges = {(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if rng.random() < 0.08}
    _write(tmp_path, "random", _items(positions, edges, excluded=frozenset(names[:3])))
    graph = read_connectivity(tmp_path, "random")
    reference = nx.Graph()
    for a, b in edges:
        if a not in names[:3] and b not in names[:3]:
            reference.add_edge(a, b, weight=float(np.linalg.norm(np.subtract(positions[a], positions[b]))))
    lengths = dict(nx.all_pairs_dijkstra_path_length(reference))
    for a in graph.viewpoints:
        for b in graph.viewpoints:
            expected = lengths.get(a, {}).get(b, 0.0 if a == b else math.inf)
            assert graph.distance(a, b) == pytest.approx(expected, abs=1e-9)
            if math.isfinite(expected):
                path = graph.shortest_path(a, b)
                assert path[0] == a and path[-1] == b
                walked = sum(graph.edge_length(u, v) for u, v in zip(path, path[1:]))
                assert walked == pytest.approx(expected, abs=1e-9)


STAR = {"o": (0, 0, 0), "n": (0, 2, 0), "e": (2, 0, 0), "s": (0, -2, 0), "w": (-2, 0, 0), "up": (0, 2, 2)}


@pytest.mark.parametrize(
    ("heading_degrees", "expected"),
    [
        (0, {"n": 0, "e": 90, "s": 180, "w": -90}),
        (90, {"n": -90, "e": 0, "s": 90, "w": 180}),
        (180, {"n": 180, "e": -90, "s": 0, "w": 90}),
        (270, {"n": 90, "e": 180, "s": -90, "w": 0}),
    ],
)
def test_relative_heading_of_neighbours(tmp_path, heading_degrees, expected):
    """Matterport convention: heading 0 looks along +y, heading grows clockwise (pi/2 looks along +x)."""
    _write(tmp_path, "star", _items(STAR, {("o", name) for name in STAR if name != "o"}))
    graph = read_connectivity(tmp_path, "star")
    for neighbour, degrees in expected.items():
        heading, elevation = graph.relative_heading_elevation(
            "o", math.radians(heading_degrees), 0.0, neighbour
        )
        if abs(degrees) == 180:
            assert abs(heading) == pytest.approx(math.pi)
        else:
            assert heading == pytest.approx(math.radians(degrees), abs=1e-12)
        assert elevation == pytest.approx(0.0)


def test_relative_elevation(tmp_path):
    _write(tmp_path, "star", _items(STAR, {("o", name) for name in STAR if name != "o"}))
    graph = read_connectivity(tmp_path, "star")
    heading, elevation = graph.relative_heading_elevation("o", 0.0, 0.0, "up")
    assert heading == pytest.approx(0.0) and elevation == pytest.approx(math.pi / 4)
    _, elevation = graph.relative_heading_elevation("o", 0.0, 0.1, "up")
    assert elevation == pytest.approx(math.pi / 4 - 0.1)
    _, elevation = graph.relative_heading_elevation("up", 0.0, 0.0, "o")
    assert elevation == pytest.approx(-math.pi / 4)


def test_load_graphs_reads_each_scan_once(tmp_path):
    _write(tmp_path, "line", _items(LINE, LINE_EDGES))
    _write(tmp_path, "star", _items(STAR, {("o", "n")}))
    graphs = load_graphs(tmp_path, ["line", "star", "line"])
    assert list(graphs) == ["line", "star"]
    assert graphs["star"].neighbours("o") == ["n"]


def _error(callable_, *args) -> str:
    with pytest.raises(DataError) as caught:
        callable_(*args)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_connectivity_file_names_scan_and_directory(tmp_path):
    message = _error(load_graphs, tmp_path, ["nosuchscan"])
    assert "nosuchscan" in message and str(tmp_path) in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda items: items[1].update(pose=[0.0] * 12), "item 1 (v1): pose must be a list of 16 numbers"),
        (lambda items: items[2].pop("included"), "item 2 (v2): missing key(s) included"),
        (
            lambda items: items[0]["unobstructed"].pop(),
            "item 0 (v0): unobstructed must be a list of 5 booleans",
        ),
        (lambda items: items[3].update(image_id=7), "item 3: image_id must be a non-empty string"),
        (lambda items: items[4].update(image_id="v0"), "image_id v0 appears more than once"),
        (
            lambda items: items[0]["unobstructed"].__setitem__(3, True),
            "item 0 (v0) is unobstructed to item 3",
        ),
        (lambda items: items.__setitem__(1, "v1"), "item 1: expected an object"),
    ],
)
def test_bad_connectivity_file_names_the_file_and_item(tmp_path, change, expected):
    items = _items(LINE, LINE_EDGES)
    change(items)
    _write(tmp_path, "bad", items)
    message = _error(read_connectivity, tmp_path, "bad")
    assert message.startswith(str(tmp_path / "bad_connectivity.json"))
    assert expected in message


def test_connectivity_file_not_json_or_not_a_list(tmp_path):
    (tmp_path / "broken_connectivity.json").write_text("[{")
    assert "broken_connectivity.json: not valid JSON" in _error(read_connectivity, tmp_path, "broken")
    (tmp_path / "object_connectivity.json").write_text("{}")
    assert "expected a JSON list of viewpoints" in _error(read_connectivity, tmp_path, "object")


TRAIN_ENTRY = {
    "distance": 9.5,
    "scan": "quad",
    "path_id": 4332,
    "path": ["a", "b", "c"],
    "heading": 1.5,
    "instructions": ["Walk to the kitchen.", "Go past the table.", "Stop by the sink."],
}
TEST_ENTRY = {
    "distance": 7.25,
    "scan": "line",
    "path_id": 17,
    "path": ["v0"],
    "heading": 0.0,
    "instructions": ["Go down the hall.", "Walk straight ahead.", "Head to the end of the corridor."],
}


def test_read_r2r_with_a_test_split_entry(tmp_path):
    path = tmp_path / "R2R_mixed.json"
    path.write_text(json.dumps([TRAIN_ENTRY, TEST_ENTRY]))
    train, test = read_r2r(path)
    assert train == R2REpisode(
        path_id=4332,
        scan="quad",
        path=("a", "b", "c"),
        heading=1.5,
        distance=9.5,
        instructions=tuple(TRAIN_ENTRY["instructions"]),
    )
    assert (train.start, train.goal) == ("a", "c")
    assert (test.start, test.goal) == ("v0", None)
    assert instruction_ids([train, test]) == ["4332_0", "4332_1", "4332_2", "17_0", "17_1", "17_2"]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({**TRAIN_ENTRY, "path": []}, "entry 1 (path_id 4332): path must be a non-empty list of strings"),
        (
            {k: v for k, v in TRAIN_ENTRY.items() if k != "scan"},
            "entry 1 (path_id 4332): missing key(s) scan",
        ),
        ({**TRAIN_ENTRY, "heading": "north"}, "entry 1 (path_id 4332): heading must be a number"),
        ({**TRAIN_ENTRY, "path_id": "4332"}, "entry 1: path_id must be an integer"),
        ({**TRAIN_ENTRY, "instructions": "Walk."}, "instructions must be a non-empty list of strings"),
        ({**TRAIN_ENTRY, "path_id": 17}, "entry 1: path_id 17 repeats entry 0"),
        ([TRAIN_ENTRY], "entry 1: expected an object"),
    ],
)
def test_bad_r2r_entry_names_the_file_and_entry(tmp_path, entry, expected):
    path = tmp_path / "R2R_val_seen.json"
    path.write_text(json.dumps([TEST_ENTRY, entry]))
    message = _error(read_r2r, path)
    assert message.startswith(str(path)) and expected in message


def test_r2r_file_missing_or_not_a_list(tmp_path):
    assert "R2R_train.json: R2R instructions file not found" in _error(read_r2r, tmp_path / "R2R_train.json")
    path = tmp_path / "R2R_test.json"
    path.write_text(json.dumps(TRAIN_ENTRY))
    assert "expected a JSON list of R2R episodes" in _error(read_r2r, path)


def test_next_step_and_next_hop_table(line, quad):
    assert line.next_step("v0", "v4") == "v1"
    assert line.next_step("v3", "v1") == "v2"
    assert line.next_step("v2", "v2") is None
    table = line.next_hop_table
    assert table[line.index["v0"], line.index["v4"]] == line.index["v1"]
    assert table[line.index["v2"], line.index["v2"]] == line.index["v2"]
    assert not table.flags.writeable
    assert quad.next_hop_table[quad.index["a"], quad.index["f"]] == -1
    with pytest.raises(DataError, match="viewpoint f cannot be reached from a"):
        quad.next_step("a", "f")
