"""The navigation graph of one Matterport3D scan, read from ``connectivity/{scan}_connectivity.json``.

File layout: a JSON list, one item per panorama, ``{"image_id", "pose": 16 floats (a row-major 4x4
camera-to-world matrix; the position is ``pose[3], pose[7], pose[11]``), "included", "visible": [bool per
item], "unobstructed": [bool per item], "height"}``.

The graph restates peteanderson80/Matterport3DSimulator ``tasks/R2R/utils.py`` ``load_nav_graphs``: an
edge joins item ``i`` and item ``j`` when both are ``included`` and ``unobstructed[j]`` of item ``i`` is
set; its weight is the Euclidean distance of the two positions; the flags must be symmetric (the official
code asserts it; here it is a :class:`~vltk.errors.DataError`). One difference: every included viewpoint
is a node, also one without edges (``load_nav_graphs`` only adds viewpoints that have an edge); its
distance to any other node is ``inf``. The simulator's own neighbours (``src/lib/NavGraph.cpp``
``adjacentViewpointIndices``) are the same set.

Distances and shortest paths are all-pairs tables computed once per scan by Floyd-Warshall in numpy
(``O(n^3)`` in ``n`` vectorised steps; a few milliseconds for the 100-300 viewpoints of a scan), where
``tasks/R2R/eval.py`` runs ``networkx.all_pairs_dijkstra_path_length``. Both give the shortest-path length;
sums along a path may differ in the last bits of a float.

Heading convention (the simulator's, ``src/lib/MatterSim.cpp`` ``Simulator::populateNavigable`` and
``renderScene``): the world is z-up; heading 0 looks along +y, and heading grows clockwise seen from above
("positive heading will turn right"), so heading pi/2 looks along +x. The camera's horizontal direction is
``(sin h, cos h)``, a displacement ``(dx, dy)`` lies at absolute heading ``atan2(dx, dy)``, and its heading
relative to the agent is ``atan2(cross, dot)`` of the displacement with the camera direction, in
``(-pi, pi]``, positive to the right. Elevation is ``atan2(dz, horizontal distance)`` minus the agent's
elevation, positive up. The simulator holds positions in float32 (``glm::vec3``), here they are float64,
so angles agree to about 1e-6 rad.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from vltk.data.json_file import read_json
from vltk.errors import DataError


@dataclass(frozen=True)
class _Tables:
    distance: np.ndarray  # [n, n] float64, inf where unreachable
    next_hop: np.ndarray  # [n, n] int64, the node after i on a shortest path to j; -1 where unreachable


@dataclass
class ScanGraph:
    """The included viewpoints of one scan, their positions and the unobstructed edges between them."""

    scan: str
    viewpoints: tuple[str, ...]
    positions: dict[str, np.ndarray]  # viewpoint -> [3] float64 world position (metres, z up)
    _adjacency: dict[str, dict[str, float]] = field(repr=False)

    @cached_property
    def index(self) -> dict[str, int]:
        """Viewpoint -> its row in the distance table (the order of ``viewpoints``, the file's order)."""
        return {viewpoint: i for i, viewpoint in enumerate(self.viewpoints)}

    def __contains__(self, viewpoint: object) -> bool:
        return viewpoint in self.positions

    def neighbours(self, viewpoint: str) -> list[str]:
        """The viewpoints one edge from ``viewpoint``, in the connectivity file's order."""
        return list(self._edges_of(viewpoint))

    def has_edge(self, a: str, b: str) -> bool:
        return b in self._edges_of(a)

    def edge_length(self, a: str, b: str) -> float:
        """The length in metres of the edge ``a``-``b``; a DataError when they are not adjacent."""
        edges = self._edges_of(a)
        if b not in edges:
            self._check_viewpoint(b)
            raise DataError(f"scan {self.scan}: no edge between viewpoints {a} and {b}")
        return edges[b]

    def distance(self, a: str, b: str) -> float:
        """The shortest-path length in metres from ``a`` to ``b`` (``inf`` when unreachable)."""
        return float(self._tables.distance[self._node(a), self._node(b)])

    def shortest_path(self, a: str, b: str) -> list[str]:
        """The viewpoints of a shortest path from ``a`` to ``b``, both included; a DataError when ``b``
        cannot be reached from ``a``."""
        i, j = self._node(a), self._node(b)
        next_hop = self._tables.next_hop
        if next_hop[i, j] < 0:
            raise DataError(f"scan {self.scan}: viewpoint {b} cannot be reached from {a}")
        path = [i]
        while path[-1] != j:
            path.append(int(next_hop[path[-1], j]))
        return [self.viewpoints[k] for k in path]

    def next_step(self, a: str, goal: str) -> str | None:
        """The viewpoint after ``a`` on a shortest path to ``goal`` (the first hop of :meth:`shortest_path`),
        ``None`` when ``a`` is ``goal``; a DataError when ``goal`` cannot be reached from ``a``."""
        i, j = self._node(a), self._node(goal)
        if i == j:
            return None
        hop = int(self._tables.next_hop[i, j])
        if hop < 0:
            raise DataError(f"scan {self.scan}: viewpoint {goal} cannot be reached from {a}")
        return self.viewpoints[hop]

    @property
    def next_hop_table(self) -> np.ndarray:
        """``[n, n]`` int64, read-only: the node (row of :attr:`index`) after ``i`` on a shortest path to
        ``j``; ``j`` itself on the diagonal, -1 where ``j`` cannot be reached."""
        table = self._tables.next_hop.view()
        table.flags.writeable = False
        return table

    def relative_heading_elevation(
        self, viewpoint: str, heading: float, elevation: float, neighbour: str
    ) -> tuple[float, float]:
        """Where ``neighbour`` lies for an agent at ``viewpoint`` looking at ``heading`` / ``elevation``
        (radians): its heading relative to the agent's in ``(-pi, pi]`` (positive to the right) and its
        elevation relative to the agent's (positive up), as the simulator computes ``rel_heading`` and
        ``rel_elevation`` (module docstring). Any viewpoint of the scan may be named, adjacent or not."""
        dx, dy, dz = self.positions[self._checked(neighbour)] - self.positions[self._checked(viewpoint)]
        camera_x, camera_y = math.sin(heading), math.cos(heading)
        relative_heading = math.atan2(dx * camera_y - dy * camera_x, dx * camera_x + dy * camera_y)
        relative_elevation = math.atan2(dz, math.hypot(dx, dy)) - elevation
        return relative_heading, relative_elevation

    @cached_property
    def _tables(self) -> _Tables:
        return _floyd_warshall(self._weights())

    def _weights(self) -> np.ndarray:
        """[n, n] edge lengths, 0 on the diagonal, inf where there is no edge."""
        n = len(self.viewpoints)
        weights = np.full((n, n), np.inf)
        np.fill_diagonal(weights, 0.0)
        for a, edges in self._adjacency.items():
            for b, length in edges.items():
                weights[self.index[a], self.index[b]] = length
        return weights

    def _edges_of(self, viewpoint: str) -> dict[str, float]:
        return self._adjacency[self._checked(viewpoint)]

    def _node(self, viewpoint: str) -> int:
        return self.index[self._checked(viewpoint)]

    def _checked(self, viewpoint: str) -> str:
        self._check_viewpoint(viewpoint)
        return viewpoint

    def _check_viewpoint(self, viewpoint: str) -> None:
        if viewpoint not in self.positions:
            raise DataError(f"scan {self.scan}: viewpoint {viewpoint} is not an included viewpoint")


def connectivity_path(directory: str | Path, scan: str) -> Path:
    return Path(directory) / f"{scan}_connectivity.json"


def read_connectivity(directory: str | Path, scan: str) -> ScanGraph:
    """The graph of ``scan`` from ``DIRECTORY/{scan}_connectivity.json``.

    Raises:
        DataError: one line naming the scan and directory when the file is missing; naming the file and
            the item when an item is malformed, an ``image_id`` repeats, or the ``unobstructed`` flags of
            two included viewpoints disagree.
    """
    path = connectivity_path(directory, scan)
    if not path.is_file():
        raise DataError(f"no connectivity file for scan {scan} in {directory} (expected {path.name})")
    items = read_json(path, "connectivity")
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a JSON list of viewpoints, got {type(items).__name__}")
    for index, item in enumerate(items):
        _check_item(path, index, item, len(items))
    return _graph(path, scan, items)


def load_graphs(directory: str | Path, scans: Iterable[str]) -> dict[str, ScanGraph]:
    """The graph of every scan in ``scans`` (each read once), keyed by scan id."""
    return {scan: read_connectivity(directory, scan) for scan in dict.fromkeys(scans)}


def _graph(path: Path, scan: str, items: list[dict[str, Any]]) -> ScanGraph:
    included = [i for i, item in enumerate(items) if item["included"]]
    viewpoints = tuple(items[i]["image_id"] for i in included)
    if len(set(viewpoints)) < len(viewpoints):
        repeated = next(v for v in viewpoints if viewpoints.count(v) > 1)
        raise DataError(f"{path}: image_id {repeated} appears more than once")
    positions = {items[i]["image_id"]: _position(items[i]) for i in included}
    adjacency: dict[str, dict[str, float]] = {viewpoint: {} for viewpoint in viewpoints}
    for i in included:
        a = items[i]["image_id"]
        for j in included:
            if j == i or not items[i]["unobstructed"][j]:
                continue
            b = items[j]["image_id"]
            if not items[j]["unobstructed"][i]:
                raise DataError(f"{path}: item {i} ({a}) is unobstructed to item {j} ({b}) but not back")
            adjacency[a][b] = float(np.linalg.norm(positions[a] - positions[b]))
    return ScanGraph(scan=scan, viewpoints=viewpoints, positions=positions, _adjacency=adjacency)


def _position(item: dict[str, Any]) -> np.ndarray:
    pose = item["pose"]
    return np.array([pose[3], pose[7], pose[11]], dtype=np.float64)  # [3]


def _check_item(path: Path, index: int, item: Any, count: int) -> None:
    where = f"{path}: item {index}"
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected an object, got {type(item).__name__}")
    if isinstance(item.get("image_id"), str):
        where += f" ({item['image_id']})"
    missing = [key for key in ("image_id", "pose", "included", "unobstructed") if key not in item]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}")
    if not isinstance(item["image_id"], str) or not item["image_id"]:
        raise DataError(f"{where}: image_id must be a non-empty string, got {item['image_id']!r}")
    pose = item["pose"]
    if not isinstance(pose, list) or len(pose) != 16 or not all(_is_number(x) for x in pose):
        raise DataError(f"{where}: pose must be a list of 16 numbers (a row-major 4x4 matrix)")
    if not isinstance(item["included"], bool):
        raise DataError(f"{where}: included must be true or false, got {item['included']!r}")
    flags = item["unobstructed"]
    if not isinstance(flags, list) or len(flags) != count or not all(isinstance(f, bool) for f in flags):
        raise DataError(f"{where}: unobstructed must be a list of {count} booleans, one per item")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _floyd_warshall(weights: np.ndarray) -> _Tables:
    """All-pairs shortest paths of a [n, n] weight matrix (inf where no edge), with next-hop pointers."""
    n = weights.shape[0]
    distance = weights.copy()  # [n, n]
    next_hop = np.where(np.isfinite(weights), np.arange(n)[None, :], -1)  # [n, n]
    for k in range(n):
        through_k = distance[:, k, None] + distance[None, k, :]  # [n, n]
        shorter = through_k < distance
        distance = np.where(shorter, through_k, distance)
        next_hop = np.where(shorter, next_hop[:, k, None], next_hop)
    return _Tables(distance=distance, next_hop=next_hop.astype(np.int64))
