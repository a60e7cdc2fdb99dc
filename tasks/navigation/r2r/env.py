"""The batched R2R graph environment: episodes move on the connectivity graphs, no simulator, plain numpy.

State of an episode: ``(scan, viewpoint, heading, elevation)`` (radians, the simulator's convention, see
:mod:`.graph`: heading 0 looks along +y and grows clockwise seen from above; elevation positive up). Two
action spaces act on it.

**Low-level** (Anderson et al. 2018, *Vision-and-Language Navigation*), :data:`LOW_LEVEL_ACTIONS`
``left, right, up, down, forward, stop``. Restated from peteanderson80/Matterport3DSimulator
``src/lib/MatterSim.cpp`` with discretised views (``setDiscretizedViewingAngles(True)``, as
``tasks/R2R/env.py`` ``EnvBatch`` runs it) and the R2R camera (``vfov`` 60 deg, 640x480):

* ``Simulator::setHeadingElevation`` snaps the heading to the nearest multiple of 30 deg and the elevation
  to -30 / 0 / +30 deg (below -15 deg -> -30, above +15 deg -> +30), so an episode starts at the episode's
  heading snapped and elevation 0, ``left`` / ``right`` turn 30 deg and ``up`` / ``down`` change the
  elevation by 30 deg, a no-op at the +-30 deg limit (the snap clamps it back).
* ``Simulator::populateNavigable``: a neighbour is *navigable* (visible) when its horizontal direction is
  within half the horizontal field of view of the camera's, ``cos(rel_heading) >= cos(vfov * width /
  height / 2)`` (the simulator's own formula: 40 deg for the R2R camera; the elevation is not tested).
  Navigable locations are sorted by ``sqrt(rel_heading**2 + rel_elevation**2)`` (``ViewpointPtrComp`` in
  ``MatterSim.hpp``), the current viewpoint first at index 0.
* ``Simulator::makeAction(index, 0, 0)`` moves to ``navigableLocations[index]`` keeping heading and
  elevation; index 0 stays. ``forward`` is ``makeAction(1, 0, 0)`` (``EnvBatch.makeSimpleActions``): the
  navigable location nearest the view centre, a no-op when none is visible
  (:attr:`LowLevelObservation.forward_possible` says which; ``tasks/R2R/agent.py`` masks ``forward``
  there). ``stop`` ends the episode.

The low-level teacher restates ``R2RBatch._shortest_path_action`` (Matterport3DSimulator
``tasks/R2R/env.py``) as ``Seq2SeqAgent._teacher_action`` (``tasks/R2R/agent.py``) maps it to actions: at
the goal ``stop``; else, with ``next`` the next viewpoint on a shortest path, when ``next`` is navigable:
``right`` if its relative heading > 30 deg, ``left`` if < -30 deg, ``up`` if its relative elevation > 30
deg and the camera is not at the top, ``down`` if < -30 deg and not at the bottom, else ``forward``; when it
is not navigable: ``up`` from the bottom elevation, ``down`` from the top, else the turn towards it (``left``
when it lies in ``(-180, 0)`` deg relative, ``right`` otherwise). As in the original, ``forward`` can take
the agent to another neighbour nearer the view centre than ``next`` (the original's comment: "the agent
can't pick which forward move to make - just the one in the middle"); the teacher then continues from
there.

**Panoramic** (Fried et al. 2018, *Speaker-Follower Models*; Tan et al. 2019, *Learning to Navigate Unseen
Environments: Back Translation with Environmental Dropout*, airsplay/R2R-EnvDrop ``r2r_src/env.py``
``make_candidate``): every neighbour of the viewpoint is a candidate. Its view index is the discretised
view nearest its direction (the 36-view convention below), its angle features ``sin / cos`` of its
heading relative to the agent's and ``sin / cos`` of its (absolute) elevation. Choosing it moves there with
the heading set to the direction to it and elevation 0 (EnvDrop turns the camera to the candidate's view,
then moves; here the heading is the exact direction, not the 30 deg view's). Choosing index
``len(candidates)`` stops. The panoramic teacher (EnvDrop ``_shortest_path_action`` + ``_teacher_action``)
picks the candidate that is the next viewpoint on a shortest path to the goal (the reference path's last
viewpoint), or the stop index at the goal.

Views: 36 per viewpoint, ``ix = 12 * e + h``, heading ``h * 30`` deg, elevation ``(e - 1) * 30`` deg
(Matterport3DSimulator ``scripts/precompute_img_features.py``, the published feature TSVs; one
implementation, :mod:`vltk.tasks.navigation.r2r.features` ``view_heading``, ``view_elevation``,
``nearest_view``).

Per scan the candidates of every viewpoint (ids, absolute headings, elevations, view indices) and the
next-hop table are computed once; a step is array work and a short Python loop over the batch.
Trajectories are kept in the EvalAI layout, ``[[viewpoint, heading, elevation], ...]``: the start, then one
entry per action other than ``stop`` (turns and no-op moves repeat the viewpoint), as
``tasks/R2R/agent.py`` records them. An episode ends at ``stop`` or after ``max_steps`` such actions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vltk.errors import ConfigError, DataError
from vltk.metrics.r2r import R2RRecord
from vltk.tasks.navigation.r2r.features import (
    HEADINGS,
    VIEW_STEP,
    VIEWS,
    nearest_view,
    view_elevation,
    view_heading,
)
from vltk.tasks.navigation.r2r.files import R2REpisode
from vltk.tasks.navigation.r2r.graph import ScanGraph

LOW_LEVEL_ACTIONS = ("left", "right", "up", "down", "forward", "stop")
LEFT, RIGHT, UP, DOWN, FORWARD, STOP = range(len(LOW_LEVEL_ACTIONS))

_TWO_PI = 2.0 * math.pi
# R2R's camera (tasks/R2R/env.py EnvBatch, the ResNet TSV's image_w, image_h, vfov): 640x480, vfov 60 deg
CAMERA_VFOV = math.radians(60.0)
CAMERA_WIDTH, CAMERA_HEIGHT = 640, 480
COS_HALF_HFOV = math.cos(CAMERA_VFOV * CAMERA_WIDTH / CAMERA_HEIGHT / 2.0)  # populateNavigable's test
DEFAULT_MAX_STEPS = 30


class ViewFeatureSource(Protocol):
    """What the environment reads view features from (``features.ViewFeatureStore`` is one)."""

    @property
    def dim(self) -> int: ...

    def features(self, scan: str, viewpoint: str) -> np.ndarray:
        """The ``[36, D]`` float32 features of the 36 views of ``viewpoint``."""
        ...

    def check_covers(self, graphs: Mapping[str, ScanGraph]) -> None:
        """A DataError naming the first viewpoint of ``graphs`` without features."""
        ...


def _wrap(angle: np.ndarray | float) -> np.ndarray:
    """An angle in ``(-pi, pi]``."""
    wrapped = np.mod(np.asarray(angle, dtype=np.float64) + math.pi, _TWO_PI) - math.pi  # [-pi, pi)
    return np.where(wrapped == -math.pi, math.pi, wrapped)


def _snap_heading(heading: float) -> float:
    """``Simulator::setHeadingElevation`` with discretised views: the heading in ``[0, 2 pi)``, then the
    nearest multiple of 30 deg (halves round up, as ``std::lround`` of a non-negative number)."""
    heading = math.fmod(heading, _TWO_PI)
    if heading < 0.0:
        heading += _TWO_PI
    return (math.floor(heading / VIEW_STEP + 0.5) % HEADINGS) * VIEW_STEP


def _elevation_level(elevation: float) -> int:
    """0 (-30 deg), 1 (level) or 2 (+30 deg), the simulator's snap (thresholds at +-15 deg)."""
    if elevation < -VIEW_STEP / 2:
        return 0
    return 2 if elevation > VIEW_STEP / 2 else 1


_VIEW_HEADINGS = view_heading(np.arange(VIEWS)).astype(np.float64)  # [36]
_VIEW_ELEVATIONS = view_elevation(np.arange(VIEWS)).astype(np.float64)  # [36]


@dataclass(frozen=True)
class EnvEpisode:
    """One episode to play: ``path`` is the reference path (start first, goal last; ``(start,)`` when it is
    unknown, as in the test split: the goal is then the start)."""

    instr_id: str
    scan: str
    start: str
    heading: float
    path: tuple[str, ...]


def env_episodes(episodes: Iterable[R2REpisode]) -> list[EnvEpisode]:
    """One :class:`EnvEpisode` per instruction of each R2R episode, ``instr_id = "{path_id}_{k}"``."""
    return [
        EnvEpisode(f"{e.path_id}_{k}", e.scan, e.start, e.heading, e.path)
        for e in episodes
        for k in range(len(e.instructions))
    ]


@dataclass(frozen=True)
class PanoramicObservation:
    """What a panoramic agent sees, batch of ``B`` episodes, ``K`` the most candidates in the batch.

    Attributes:
        views: ``[B, 36, D]`` float32 features of the 36 views (``None`` without a feature source).
        view_angles: ``[B, 36, 4]`` float32 ``sin, cos`` of each view's heading relative to the agent's,
            ``sin, cos`` of the view's elevation.
        candidate_views: ``[B, K]`` int64 view index nearest each candidate's direction (0 where padded).
        candidate_angles: ``[B, K, 4]`` float32 ``sin, cos`` of the candidate's heading relative to the
            agent's, ``sin, cos`` of the elevation of the direction to it (0 where padded).
        candidate_mask: ``[B, K]`` bool, True for real candidates.
        candidates: the candidates' viewpoint ids per episode (``len(candidates[b])`` is the stop choice).
        done: ``[B]`` bool, episodes that ended (they ignore actions).
        view_index: ``[B]`` int64 the view nearest the agent's heading and elevation.
        heading: ``[B]`` float64 the agent's heading (radians, ``[0, 2 pi)``).
        elevation: ``[B]`` float64 the agent's elevation (radians).
    """

    views: np.ndarray | None
    view_angles: np.ndarray
    candidate_views: np.ndarray
    candidate_angles: np.ndarray
    candidate_mask: np.ndarray
    candidates: list[list[str]]
    done: np.ndarray
    view_index: np.ndarray
    heading: np.ndarray
    elevation: np.ndarray


@dataclass(frozen=True)
class LowLevelObservation:
    """What a low-level (seq2seq) agent sees: ``view`` ``[B, D]`` float32 the feature of the current view
    (``None`` without a feature source), ``forward_possible`` ``[B]`` bool (a neighbour is visible),
    ``done`` ``[B]`` bool, ``view_index`` ``[B]`` int64, ``heading`` / ``elevation`` ``[B]`` float64."""

    view: np.ndarray | None
    forward_possible: np.ndarray
    done: np.ndarray
    view_index: np.ndarray
    heading: np.ndarray
    elevation: np.ndarray


@dataclass(frozen=True)
class _ScanTables:
    """Per scan, computed once: every viewpoint's neighbours and the shortest-path next hops."""

    graph: ScanGraph
    neighbours: tuple[np.ndarray, ...]  # per node: [k] int64 neighbour nodes, the connectivity file's order
    names: tuple[tuple[str, ...], ...]  # per node: the neighbours' viewpoint ids
    headings: tuple[np.ndarray, ...]  # per node: [k] float64 absolute heading of the direction, [0, 2 pi)
    elevations: tuple[np.ndarray, ...]  # per node: [k] float64 elevation of the direction
    views: tuple[np.ndarray, ...]  # per node: [k] int64 nearest view index
    slots: tuple[dict[int, int], ...]  # per node: neighbour node -> its candidate index
    next_hop: np.ndarray  # [n, n] int64 (ScanGraph.next_hop_table)


def _scan_tables(graph: ScanGraph) -> _ScanTables:
    neighbours, names, headings, elevations, views, slots = [], [], [], [], [], []
    for viewpoint in graph.viewpoints:
        adjacent = graph.neighbours(viewpoint)
        delta = np.array([graph.positions[b] - graph.positions[viewpoint] for b in adjacent]).reshape(-1, 3)
        heading = np.mod(np.arctan2(delta[:, 0], delta[:, 1]), _TWO_PI)  # [k]
        elevation = np.arctan2(delta[:, 2], np.hypot(delta[:, 0], delta[:, 1]))  # [k]
        nodes = np.array([graph.index[b] for b in adjacent], dtype=np.int64)  # [k]
        neighbours.append(nodes)
        names.append(tuple(adjacent))
        headings.append(heading)
        elevations.append(elevation)
        views.append(nearest_view(heading, elevation).astype(np.int64))
        slots.append({int(node): k for k, node in enumerate(nodes)})
    return _ScanTables(
        graph=graph,
        neighbours=tuple(neighbours),
        names=tuple(names),
        headings=tuple(headings),
        elevations=tuple(elevations),
        views=tuple(views),
        slots=tuple(slots),
        next_hop=graph.next_hop_table,
    )


class R2REnv:
    """A batch of R2R episodes on the navigation graphs (module docstring for the rules).

    Args:
        graphs: scan id -> its :class:`~.graph.ScanGraph` (every scan an episode may name).
        features: the view features (a ``ViewFeatureStore``), or ``None`` to play without views
            (observations then carry ``views=None``). It must cover every viewpoint of ``graphs``.
        max_steps: the most actions (other than ``stop``) an episode takes; it ends then
            (``tasks/R2R/agent.py`` plays 20 low-level steps).

    Raises:
        DataError: a viewpoint of ``graphs`` has no features (``features.check_covers``).
        ConfigError: ``max_steps`` < 1.
    """

    def __init__(
        self,
        graphs: Mapping[str, ScanGraph],
        features: ViewFeatureSource | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
    ) -> None:
        if max_steps < 1:
            raise ConfigError(f"R2R environment: max_steps must be at least 1, got {max_steps}")
        if features is not None:
            features.check_covers(dict(graphs))
        self.graphs = dict(graphs)
        self.features = features
        self.max_steps = max_steps
        self._tables: dict[str, _ScanTables] = {}
        self._episodes: list[EnvEpisode] = []

    # ------------------------------------------------------------------------------------------ episodes
    def reset(self, episodes: Sequence[EnvEpisode]) -> None:
        """Start a batch of episodes at their starts, heading snapped to 30 deg, elevation 0.

        Raises:
            DataError: naming the episode, when its scan has no graph, a viewpoint of its path is not in the
                graph, the path does not begin at the start, or the goal cannot be reached from the start.
        """
        if not episodes:
            raise ValueError("R2REnv.reset needs at least one episode")
        tables = [self._checked(episode) for episode in episodes]
        batch = len(episodes)
        self._episodes = list(episodes)
        self._batch_tables = tables
        self._node = np.array([t.graph.index[e.start] for t, e in zip(tables, episodes)], dtype=np.int64)
        self._goal = np.array([t.graph.index[e.path[-1]] for t, e in zip(tables, episodes)], dtype=np.int64)
        self._heading = np.array([_snap_heading(e.heading) for e in episodes], dtype=np.float64)
        self._elevation = np.zeros(batch, dtype=np.float64)
        self._done = np.zeros(batch, dtype=bool)
        self._steps = np.zeros(batch, dtype=np.int64)
        self._trajectories = [[[e.start, float(h), 0.0]] for e, h in zip(episodes, self._heading)]

    @property
    def batch_size(self) -> int:
        return len(self._episodes)

    @property
    def done(self) -> np.ndarray:
        """``[B]`` bool: episodes that stopped or ran out of steps (a copy)."""
        self._require_reset()
        return self._done.copy()

    @property
    def steps(self) -> np.ndarray:
        """``[B]`` int64: actions (other than ``stop``) each episode has taken (a copy)."""
        self._require_reset()
        return self._steps.copy()

    @property
    def viewpoints(self) -> list[str]:
        """Each episode's current viewpoint id."""
        self._require_reset()
        return [t.graph.viewpoints[n] for t, n in zip(self._batch_tables, self._node)]

    def trajectories(self) -> list[list[list]]:
        """Per episode, ``[[viewpoint, heading, elevation], ...]`` (the EvalAI layout; module docstring)."""
        self._require_reset()
        return [[list(entry) for entry in trajectory] for trajectory in self._trajectories]

    def predictions(self) -> list[dict]:
        """The EvalAI submission entries ``{"instr_id", "trajectory"}`` of the batch."""
        return [
            {"instr_id": episode.instr_id, "trajectory": trajectory}
            for episode, trajectory in zip(self._episodes, self.trajectories())
        ]

    def records(self) -> list[R2RRecord]:
        """The batch as :class:`~vltk.metrics.r2r.R2RRecord` for ``score_r2r`` / ``R2RMetrics``."""
        self._require_reset()
        return [
            R2RRecord(e.instr_id, e.scan, list(e.path), [entry[0] for entry in trajectory])
            for e, trajectory in zip(self._episodes, self._trajectories)
        ]

    # -------------------------------------------------------------------------------------- panoramic
    def observe(self) -> PanoramicObservation:
        """The panoramic observation of the batch (:class:`PanoramicObservation`)."""
        self._require_reset()
        batch = self.batch_size
        counts = [len(t.neighbours[n]) for t, n in zip(self._batch_tables, self._node)]
        width = max(counts)
        candidate_views = np.zeros((batch, width), dtype=np.int64)  # [B, K]
        candidate_heading = np.zeros((batch, width), dtype=np.float64)  # [B, K]
        candidate_elevation = np.zeros((batch, width), dtype=np.float64)  # [B, K]
        mask = np.zeros((batch, width), dtype=bool)  # [B, K]
        candidates = []
        for b, (tables, node, count) in enumerate(zip(self._batch_tables, self._node, counts)):
            candidate_views[b, :count] = tables.views[node]
            candidate_heading[b, :count] = tables.headings[node]
            candidate_elevation[b, :count] = tables.elevations[node]
            mask[b, :count] = True
            candidates.append(list(tables.names[node]))
        relative = candidate_heading - self._heading[:, None]  # [B, K]
        candidate_angles = _angle_features(relative, candidate_elevation) * mask[..., None]  # [B, K, 4]
        view_relative = _VIEW_HEADINGS[None, :] - self._heading[:, None]  # [B, 36]
        view_angles = _angle_features(view_relative, np.broadcast_to(_VIEW_ELEVATIONS, view_relative.shape))
        return PanoramicObservation(
            views=self._views(),
            view_angles=view_angles,
            candidate_views=candidate_views,
            candidate_angles=candidate_angles,
            candidate_mask=mask,
            candidates=candidates,
            done=self._done.copy(),
            view_index=nearest_view(self._heading, self._elevation).astype(np.int64),
            heading=self._heading.copy(),
            elevation=self._elevation.copy(),
        )

    def step_panoramic(self, choices: Sequence[int] | np.ndarray) -> None:
        """Move each running episode to candidate ``choices[b]`` (heading the direction to it, elevation
        0), or stop it for ``choices[b] >= len(candidates[b])``. Done episodes ignore their choice."""
        choices = self._actions(choices, "choices")
        for b in np.flatnonzero(~self._done):
            tables, node, choice = self._batch_tables[b], self._node[b], int(choices[b])
            if choice < 0:
                raise ValueError(f"step_panoramic: choice {choice} of episode {b} is negative")
            if choice >= len(tables.neighbours[node]):
                self._done[b] = True
                continue
            self._node[b] = tables.neighbours[node][choice]
            self._heading[b] = tables.headings[node][choice]
            self._elevation[b] = 0.0
            self._record(b)

    def teacher_panoramic(self) -> np.ndarray:
        """``[B]`` int64: the candidate that is the next viewpoint on a shortest path to the goal, or the stop
        index ``len(candidates[b])`` at the goal (also for done episodes; agents mask them by ``done``)."""
        self._require_reset()
        choices = np.empty(self.batch_size, dtype=np.int64)  # [B]
        for b, (tables, node, goal) in enumerate(zip(self._batch_tables, self._node, self._goal)):
            if self._done[b] or node == goal:
                choices[b] = len(tables.neighbours[node])
            else:
                choices[b] = tables.slots[node][int(tables.next_hop[node, goal])]
        return choices

    # -------------------------------------------------------------------------------------- low-level
    def observe_low_level(self) -> LowLevelObservation:
        """The low-level observation of the batch (:class:`LowLevelObservation`)."""
        self._require_reset()
        view_index = nearest_view(self._heading, self._elevation).astype(np.int64)  # [B]
        view = None
        if self.features is not None:
            view = np.empty((self.batch_size, self.features.dim), dtype=np.float32)  # [B, D]
            for b, (episode, viewpoint) in enumerate(zip(self._episodes, self.viewpoints)):
                view[b] = self.features.features(episode.scan, viewpoint)[view_index[b]]
        forward = np.array([self._forward_target(b) is not None for b in range(self.batch_size)])
        return LowLevelObservation(
            view=view,
            forward_possible=forward,
            done=self._done.copy(),
            view_index=view_index,
            heading=self._heading.copy(),
            elevation=self._elevation.copy(),
        )

    def step_low_level(self, actions: Sequence[int] | np.ndarray) -> None:
        """Apply ``LOW_LEVEL_ACTIONS[actions[b]]`` to each running episode; done episodes ignore theirs."""
        actions = self._actions(actions, "actions")
        for b in np.flatnonzero(~self._done):
            action = int(actions[b])
            if not 0 <= action < len(LOW_LEVEL_ACTIONS):
                raise ValueError(f"step_low_level: action {action} of episode {b} is not in 0..5")
            if action == STOP:
                self._done[b] = True
                continue
            heading, level = self._heading[b], _elevation_level(self._elevation[b])
            if action in (LEFT, RIGHT):
                heading += VIEW_STEP if action == RIGHT else -VIEW_STEP
            elif action in (UP, DOWN):
                level = min(level + 1, 2) if action == UP else max(level - 1, 0)
            else:
                target = self._forward_target(b)
                if target is not None:
                    self._node[b] = target
            self._heading[b] = _snap_heading(heading)
            self._elevation[b] = (level - 1) * VIEW_STEP
            self._record(b)

    def teacher_low_level(self) -> np.ndarray:
        """``[B]`` int64 indices into :data:`LOW_LEVEL_ACTIONS`: ``R2RBatch._shortest_path_action``
        (module docstring); ``stop`` at the goal and for done episodes."""
        self._require_reset()
        return np.array([self._low_level_teacher(b) for b in range(self.batch_size)], dtype=np.int64)

    def _low_level_teacher(self, b: int) -> int:
        tables, node, goal = self._batch_tables[b], self._node[b], self._goal[b]
        if self._done[b] or node == goal:
            return STOP
        slot = tables.slots[node][int(tables.next_hop[node, goal])]
        relative = float(_wrap(tables.headings[node][slot] - self._heading[b]))
        level = _elevation_level(self._elevation[b])
        if math.cos(relative) >= COS_HALF_HFOV:  # navigable: look straight at it, then move
            rel_elevation = tables.elevations[node][slot] - self._elevation[b]
            if relative > VIEW_STEP:
                return RIGHT
            if relative < -VIEW_STEP:
                return LEFT
            if rel_elevation > VIEW_STEP and level < 2:
                return UP
            if rel_elevation < -VIEW_STEP and level > 0:
                return DOWN
            return FORWARD
        if level != 1:  # not visible: level the camera first
            return UP if level == 0 else DOWN
        return LEFT if -math.pi < relative < 0 else RIGHT

    def _forward_target(self, b: int) -> int | None:
        """The node ``forward`` moves episode ``b`` to (``navigableLocations[1]``), None when none is
        visible."""
        tables, node = self._batch_tables[b], self._node[b]
        if len(tables.neighbours[node]) == 0:
            return None
        relative = _wrap(tables.headings[node] - self._heading[b])  # [k]
        visible = np.cos(relative) >= COS_HALF_HFOV  # [k]
        if not visible.any():
            return None
        offset = np.hypot(relative, tables.elevations[node] - self._elevation[b])  # [k]
        return int(tables.neighbours[node][np.argmin(np.where(visible, offset, np.inf))])

    # ---------------------------------------------------------------------------------------- helpers
    def _record(self, b: int) -> None:
        """One action taken by episode ``b``: its trajectory entry, its step count, the step limit."""
        viewpoint = self._batch_tables[b].graph.viewpoints[self._node[b]]
        self._trajectories[b].append([viewpoint, float(self._heading[b]), float(self._elevation[b])])
        self._steps[b] += 1
        if self._steps[b] >= self.max_steps:
            self._done[b] = True

    def _views(self) -> np.ndarray | None:
        if self.features is None:
            return None
        views = np.empty((self.batch_size, VIEWS, self.features.dim), dtype=np.float32)  # [B, 36, D]
        for b, (episode, viewpoint) in enumerate(zip(self._episodes, self.viewpoints)):
            views[b] = self.features.features(episode.scan, viewpoint)
        return views

    def _actions(self, actions: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
        self._require_reset()
        actions = np.asarray(actions).reshape(-1)  # [B]
        if actions.shape != (self.batch_size,):
            raise ValueError(f"expected {self.batch_size} {name}, one per episode, got {actions.shape[0]}")
        return actions

    def _require_reset(self) -> None:
        if not self._episodes:
            raise RuntimeError("R2REnv: call reset(episodes) first")

    def _checked(self, episode: EnvEpisode) -> _ScanTables:
        where = f"R2R episode {episode.instr_id!r}"
        graph = self.graphs.get(episode.scan)
        if graph is None:
            raise DataError(f"{where}: no navigation graph for scan {episode.scan!r}")
        if not episode.path or episode.path[0] != episode.start:
            raise DataError(f"{where}: the path must begin at the start {episode.start!r}")
        for viewpoint in episode.path:
            if viewpoint not in graph:
                raise DataError(f"{where}: viewpoint {viewpoint} is not in scan {episode.scan}'s graph")
        if not math.isfinite(graph.distance(episode.start, episode.path[-1])):
            raise DataError(f"{where}: the goal {episode.path[-1]} cannot be reached from {episode.start}")
        if episode.scan not in self._tables:
            self._tables[episode.scan] = _scan_tables(graph)
        return self._tables[episode.scan]


def _angle_features(relative_heading: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """``[..., 4]`` float32 ``sin h, cos h, sin e, cos e``."""
    return np.stack(
        [np.sin(relative_heading), np.cos(relative_heading), np.sin(elevation), np.cos(elevation)], axis=-1
    ).astype(np.float32)
