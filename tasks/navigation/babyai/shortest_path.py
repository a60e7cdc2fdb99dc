"""The exact shortest solution of a BabyAI episode: SPL's ``l`` (Anderson et al. 2018, On Evaluation of
Embodied Navigation Agents, ``SPL = S * l / max(p, l)``, ``l`` the shortest path from the start to the goal).

In BabyAI the "goal" is the mission, so ``l`` is the minimal number of actions from the episode's start
state after which the level's verifier reports success. :func:`shortest_path` finds it by breadth-first
search over a compact copy of the state: the agent's cell and heading, what it carries, where every
movable object stands (the agent may pick up an obstacle and drop it elsewhere, as the BabyAI bot does, or
toggle a box away), every door's open / closed / locked state, and the verifier's own memory. It never
calls the bot, and it returns the action plan, so that replaying the plan in the real environment checks
the length (``tests/test_navigation_shortest_path.py`` does, on hundreds of seeds).

The simulation restates minigrid's dynamics (Farama-Foundation/Minigrid 3.2.0 as installed; its
``verifier.py`` is the same at the repository's commit 1d55ae8):

* ``minigrid/minigrid_env.py`` ``MiniGridEnv.step``: left / right turn; forward moves when the front cell
  is empty or ``can_overlap()`` (an open door, a floor tile); pickup takes the front object when it
  ``can_pickup()`` and nothing is carried; drop puts the carried object on an *empty* front cell; toggle
  calls the front object's ``toggle``; done does nothing; the episode is truncated at ``max_steps``.
* ``minigrid/core/world_object.py``: balls, keys and boxes can be picked up, walls and doors cannot; a
  door can be walked through only when open; ``Door.toggle`` opens a locked door only while carrying a key
  of the door's colour (it is then unlocked and open) and otherwise flips open / closed; ``Box.toggle``
  replaces the box by its contents (nothing, in BabyAI), so a box can be removed in one action.
* ``minigrid/envs/babyai/core/roomgrid_level.py`` ``RoomGridLevel.step``: after the move, a drop action
  refreshes the positions the instruction tracks (``update_objs_poss``), then ``instrs.verify(action)``
  decides: "success" ends the episode with a positive reward (also on the last allowed step), "failure"
  ends it with none.
* ``minigrid/envs/babyai/core/verifier.py``, restated per instruction below (:class:`_GoTo`,
  :class:`_Pickup`, :class:`_Open`, :class:`_PutNext`, :class:`_Before`, :class:`_After`, :class:`_And`),
  with the verifier's memory (the positions a ``GoToInstr`` compares with, which change only on drop
  actions; what ``PickupInstr`` / ``PutNextInstr`` saw carried the step before; which part of a sequence
  is done) part of the searched state.

Supported: every level whose instruction is built from ``GoToInstr``, ``PickupInstr``, ``OpenInstr``,
``PutNextInstr``, ``BeforeInstr``, ``AfterInstr`` and ``AndInstr`` (strict or not) over a grid of walls,
doors, balls, keys and empty boxes, among them the shipped configs' GoToRedBall, GoToLocal and PickupLoc.
Anything else raises :class:`UnsupportedLevelError` naming it (an instruction class, a goal or lava tile,
a box with contents, ``BABYAI_DONE_ACTIONS``) rather than returning a number that could be wrong, and a
search that outgrows ``max_states`` raises too (large multi-room levels with many doors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vltk.errors import VltkError

LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)  # minigrid's Actions enum
ACTIONS = (LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE)
CARRIED, GONE = -1, -2  # object "positions" besides a cell: in the agent's hands; toggled away (a box)
OPEN, CLOSED, LOCKED = 0, 1, 2  # minigrid's door states (STATE_TO_IDX)
NOTHING = -1  # "carrying nothing"
SUCCESS, FAILURE, CONTINUE = "success", "failure", "continue"
DEFAULT_MAX_STATES = 500_000
SUPPORTED_INSTRUCTIONS = (
    "GoToInstr", "PickupInstr", "OpenInstr", "PutNextInstr", "BeforeInstr", "AfterInstr", "AndInstr",
)  # fmt: skip


class UnsupportedLevelError(VltkError):
    """The episode holds something the shortest-path search does not model exactly (named in the message)."""


@dataclass(frozen=True)
class ShortestPath:
    """The result of :func:`shortest_path`.

    Attributes:
        length: the minimal number of actions to success, ``None`` when no plan succeeds within the
            episode's remaining step budget.
        actions: one shortest plan (minigrid action ids), empty when ``length`` is ``None``.
        states: the number of distinct states the search reached (its cost).
    """

    length: int | None
    actions: tuple[int, ...]
    states: int


# ---------------------------------------------------------------------------------------------- the world
@dataclass
class _Physics:
    """What an action does to ``(agent, heading, carried, objects, doors)``, on cells numbered ``x + y * W``.

    Attributes:
        blocked: per cell, 1 for a wall (nothing moves into it, nothing is dropped on it).
        floor: per cell, 1 for a floor tile (walkable, but not empty: nothing can be dropped on it).
        door_at: cell -> door index; ``door_color[d]`` its colour.
        kinds, colors: per movable object (balls, keys, boxes), its type and colour.
        steps: the cell offset of one step east, south, west, north (minigrid's ``DIR_TO_VEC``).
    """

    width: int
    blocked: bytearray
    floor: bytearray
    door_at: dict[int, int]
    door_color: list[str]
    kinds: list[str]
    colors: list[str]

    def __post_init__(self) -> None:
        self.steps = (1, self.width, -1, -self.width)

    def act(self, state: tuple, action: int) -> tuple:
        """The physical state after ``action`` (``MiniGridEnv.step`` and the objects' ``toggle``)."""
        agent, heading, carried, objects, doors = state
        if action == LEFT:
            return agent, (heading - 1) % 4, carried, objects, doors
        if action == RIGHT:
            return agent, (heading + 1) % 4, carried, objects, doors
        front = agent + self.steps[heading]
        door = self.door_at.get(front)
        thing = objects.index(front) if front in objects else None
        if action == FORWARD:
            walkable = (door is None or doors[door] == OPEN) and thing is None and not self.blocked[front]
            return (front, heading, carried, objects, doors) if walkable else state
        if action == PICKUP:
            if thing is None or carried != NOTHING:
                return state
            return agent, heading, thing, _replace(objects, thing, CARRIED), doors
        if action == DROP:
            empty = door is None and thing is None and not self.blocked[front] and not self.floor[front]
            if carried == NOTHING or not empty:
                return state
            return agent, heading, NOTHING, _replace(objects, carried, front), doors
        if action == TOGGLE:
            if door is not None:
                if doors[door] == LOCKED:
                    has_key = carried != NOTHING and self.kinds[carried] == "key"
                    if not (has_key and self.colors[carried] == self.door_color[door]):
                        return state
                    return agent, heading, carried, objects, _replace(doors, door, OPEN)
                return agent, heading, carried, objects, _replace(doors, door, CLOSED - doors[door])
            if thing is not None and self.kinds[thing] == "box":  # Box.toggle: its contents (None) replace it
                return agent, heading, carried, _replace(objects, thing, GONE), doors
            return state
        return state  # done


def _replace(values: tuple, index: int, value: int) -> tuple:
    return values[:index] + (value,) + values[index + 1 :]


def _adjacent(a: int, b: int, width: int) -> bool:
    """``verifier.pos_next_to``: the cells share a side (never across the grid's edge: walls line it)."""
    return a >= 0 and b >= 0 and (abs(a - b) == width or (abs(a - b) == 1 and a // width == b // width))


# ------------------------------------------------------------------------------------------ the verifier
# Each node restates one verifier class: ``verify(memory, action, after) -> (status, memory)`` with
# ``after`` the physical state the action led to and ``memory`` what the verifier object keeps between
# steps, and ``dropped(memory, after)`` the ``update_objs_poss`` that a drop action triggers on every node
# before verification.
class _Node:
    def initial(self) -> Any:
        raise NotImplementedError

    def dropped(self, memory: Any, after: tuple) -> Any:
        return memory

    def verify(self, memory: Any, action: int, after: tuple) -> tuple[str, Any]:
        raise NotImplementedError


@dataclass
class _GoTo(_Node):
    """``GoToInstr``: success when the front cell is one of the tracked positions ``desc.obj_poss``, which
    are the matching objects' cells at reset and are re-read from the grid only on drop actions (so a
    picked-up target still counts at its old cell until something is dropped)."""

    targets: tuple[int, ...]  # tracked movable objects (indices)
    door_cells: tuple[int, ...]  # tracked doors' cells (doors never move)
    start: tuple[int, ...]
    steps: tuple[int, ...]

    def initial(self) -> tuple[int, ...]:
        return self.start

    def dropped(self, memory: Any, after: tuple) -> tuple[int, ...]:
        objects = after[3]
        return tuple(sorted([objects[i] for i in self.targets if objects[i] >= 0] + list(self.door_cells)))

    def verify(self, memory: Any, action: int, after: tuple) -> tuple[str, Any]:
        front = after[0] + self.steps[after[1]]
        return (SUCCESS if front in memory else CONTINUE), memory


@dataclass
class _Pickup(_Node):
    """``PickupInstr``: on a pickup action, success when nothing was carried at the previous verification
    (``preCarrying``) and a tracked object is carried now; strict: carrying anything else is failure."""

    targets: frozenset[int]
    strict: bool
    start: int

    def initial(self) -> int:
        return self.start

    def verify(self, memory: Any, action: int, after: tuple) -> tuple[str, Any]:
        carried = after[2]
        if action != PICKUP:
            return CONTINUE, carried
        if memory == NOTHING and carried in self.targets:
            return SUCCESS, carried
        if self.strict and carried != NOTHING:
            return FAILURE, carried
        return CONTINUE, carried


@dataclass
class _Open(_Node):
    """``OpenInstr``: on a toggle action, success when the front cell is a tracked door and it is open
    now; strict: toggling any other door is failure."""

    doors: frozenset[int]  # door indices
    door_at: dict[int, int]
    steps: tuple[int, ...]
    strict: bool

    def initial(self) -> None:
        return None

    def verify(self, memory: Any, action: int, after: tuple) -> tuple[str, Any]:
        if action != TOGGLE:
            return CONTINUE, memory
        door = self.door_at.get(after[0] + self.steps[after[1]])
        if door is not None and door in self.doors and after[4][door] == OPEN:
            return SUCCESS, memory
        return (FAILURE if self.strict and door is not None else CONTINUE), memory


@dataclass
class _PutNext(_Node):
    """``PutNextInstr``: on a drop action, success when a tracked moving object was carried at the previous
    verification and now lies next to (sharing a side with) a tracked fixed object's cell as re-read from
    the grid by that drop; strict: a pickup that leaves something carried is failure."""

    moving: tuple[int, ...]
    fixed: tuple[int, ...]  # tracked movable objects
    fixed_doors: tuple[int, ...]  # tracked doors' cells
    width: int
    strict: bool
    start: int

    def initial(self) -> int:
        return self.start

    def verify(self, memory: Any, action: int, after: tuple) -> tuple[str, Any]:
        carried, objects = after[2], after[3]
        if self.strict and action == PICKUP and carried != NOTHING:
            return FAILURE, carried
        if action != DROP or memory not in self.moving:
            return CONTINUE, carried
        cell = objects[memory]  # CARRIED when the drop failed: next to nothing (cur_pos is (-1, -1))
        others = [objects[i] for i in self.fixed] + list(self.fixed_doors)
        if any(_adjacent(cell, other, self.width) for other in others):
            return SUCCESS, carried
        return CONTINUE, carried


@dataclass
class _Before(_Node):
    """``BeforeInstr`` ("a, then b"): b is verified from the step a succeeds (that step included); strict:
    b succeeding while a is not done is failure. Memory: ``(a done, a's memory, b's memory)``."""

    a: _Node
    b: _Node
    strict: bool
    start: tuple  # (first part done, its memory, the other's), from the live verifier

    def initial(self) -> tuple:
        return self.start

    def dropped(self, memory: Any, after: tuple) -> tuple:
        return (memory[0], self.a.dropped(memory[1], after), self.b.dropped(memory[2], after))

    def verify(self, memory: Any, action: int, after: tuple) -> tuple[str, Any]:
        done, mem_a, mem_b = memory
        if not done:
            status, mem_a = self.a.verify(mem_a, action, after)
            if status == FAILURE:
                return FAILURE, (False, mem_a, mem_b)
            if status != SUCCESS:
                if self.strict:
                    status, mem_b = self.b.verify(mem_b, action, after)
                    if status == SUCCESS:
                        return FAILURE, (False, mem_a, mem_b)
                return CONTINUE, (False, mem_a, mem_b)
        status, mem_b = self.b.verify(mem_b, action, after)
        return (status if status in (SUCCESS, FAILURE) else CONTINUE), (True, mem_a, mem_b)


@dataclass
class _After(_Node):
    """``AfterInstr`` ("a after you b"): :class:`_Before` with the parts' order swapped."""

    a: _Node
    b: _Node
    strict: bool
    start: tuple  # (b done, b's memory, a's memory)

    def __post_init__(self) -> None:
        self._before = _Before(self.b, self.a, self.strict, self.start)

    def initial(self) -> tuple:
        return self._before.initial()

    def dropped(self, memory: Any, after: tuple) -> tuple:
        return self._before.dropped(memory, after)

    def verify(self, memory: Any, action: int, after: tuple) -> tuple[str, Any]:
        return self._before.verify(memory, action, after)


@dataclass
class _And(_Node):
    """``AndInstr``: each part is verified until it succeeds; success once both have (a part's failure is
    ignored without done actions). Memory: ``(a done, b done, a's memory, b's memory)``."""

    a: _Node
    b: _Node
    start: tuple

    def initial(self) -> tuple:
        return self.start

    def dropped(self, memory: Any, after: tuple) -> tuple:
        return (memory[0], memory[1], self.a.dropped(memory[2], after), self.b.dropped(memory[3], after))

    def verify(self, memory: Any, action: int, after: tuple) -> tuple[str, Any]:
        done_a, done_b, mem_a, mem_b = memory
        if not done_a:
            status, mem_a = self.a.verify(mem_a, action, after)
            done_a = status == SUCCESS
        if not done_b:
            status, mem_b = self.b.verify(mem_b, action, after)
            done_b = status == SUCCESS
        return (SUCCESS if done_a and done_b else CONTINUE), (done_a, done_b, mem_a, mem_b)


# ------------------------------------------------------------------------------------- reading the env
class _Reader:
    """Builds :class:`_Physics`, the start state and the verifier tree from a reset BabyAI environment."""

    def __init__(self, env: Any, where: str):
        self.where = where
        width, height = env.grid.width, env.grid.height
        self.width = width
        blocked, floor = bytearray(width * height), bytearray(width * height)
        self.doors: list[Any] = []  # the door objects, in grid order
        self.door_cells: list[int] = []
        self.movables: list[Any] = []  # balls, keys, boxes (and what the agent carries)
        cells: list[int] = []
        for j in range(height):
            for i in range(width):
                cell, index = env.grid.get(i, j), i + j * width
                if cell is None:
                    continue
                if cell.type == "wall":
                    blocked[index] = 1
                elif cell.type == "floor":
                    floor[index] = 1
                elif cell.type == "door":
                    if cell.is_open and cell.is_locked:
                        self.unsupported(f"a door both open and locked at ({i}, {j})")
                    self.doors.append(cell)
                    self.door_cells.append(index)
                elif cell.type in ("ball", "key", "box"):
                    if cell.type == "box" and cell.contains is not None:
                        self.unsupported(f"a box holding a {cell.contains.type} at ({i}, {j})")
                    self.movables.append(cell)
                    cells.append(index)
                else:
                    self.unsupported(
                        f"a {cell.type} tile at ({i}, {j}) (only walls, floors, doors, balls, keys, boxes)"
                    )
        carried = NOTHING
        if env.carrying is not None:
            carried = len(self.movables)
            self.movables.append(env.carrying)
            cells.append(CARRIED)
        doors = tuple(OPEN if d.is_open else LOCKED if d.is_locked else CLOSED for d in self.doors)
        self.door_at = {cell: d for d, cell in enumerate(self.door_cells)}
        kinds, colors = [o.type for o in self.movables], [o.color for o in self.movables]
        self.physics = _Physics(
            width, blocked, floor, self.door_at, [d.color for d in self.doors], kinds, colors
        )
        agent = int(env.agent_pos[0]) + int(env.agent_pos[1]) * width
        self.start = (agent, int(env.agent_dir), carried, tuple(cells), doors)

    def unsupported(self, what: str) -> None:
        raise UnsupportedLevelError(f"{self.where}: the shortest-path search (SPL) does not model {what}")

    def _find(self, obj: Any, among: list[Any]) -> int:
        """The index of ``obj`` in ``among`` by identity, as the verifier compares (``NOTHING`` for None)."""
        if obj is None:
            return NOTHING
        for i, other in enumerate(among):
            if other is obj:
                return i
        self.unsupported(f"a tracked {obj.type} that is not in the grid")
        raise AssertionError  # unreachable

    def _tracked(self, objects: list[Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """An instruction's tracked objects (``desc.obj_set``) as (movable indices, doors' cells)."""
        movable = tuple(self._find(o, self.movables) for o in objects if o.type != "door")
        doors = tuple(self.door_cells[self._find(o, self.doors)] for o in objects if o.type == "door")
        return movable, doors

    def node(self, instr: Any) -> _Node:
        """The verifier tree of ``instr`` (``env.instrs``), its memory read from the live verifier."""
        from minigrid.envs.babyai.core import verifier

        if verifier.use_done_actions:
            self.unsupported("BABYAI_DONE_ACTIONS (instructions that end with the done action)")
        steps, kind, strict = self.physics.steps, type(instr), bool(getattr(instr, "strict", False))
        if kind is verifier.GoToInstr:
            movable, doors = self._tracked(instr.desc.obj_set)
            start = tuple(sorted(int(x) + int(y) * self.width for x, y in instr.desc.obj_poss))
            return _GoTo(movable, doors, start, steps)
        if kind is verifier.PickupInstr:
            movable, _ = self._tracked(instr.desc.obj_set)
            return _Pickup(frozenset(movable), strict, self._find(instr.preCarrying, self.movables))
        if kind is verifier.OpenInstr:
            doors = frozenset(self._find(o, self.doors) for o in instr.desc.obj_set)
            return _Open(doors, self.door_at, steps, strict)
        if kind is verifier.PutNextInstr:
            moving, _ = self._tracked(instr.desc_move.obj_set)
            fixed, fixed_doors = self._tracked(instr.desc_fixed.obj_set)
            pre = self._find(instr.preCarrying, self.movables)
            return _PutNext(moving, fixed, fixed_doors, self.width, strict, pre)
        if kind in (verifier.BeforeInstr, verifier.AfterInstr, verifier.AndInstr):
            a, b = self.node(instr.instr_a), self.node(instr.instr_b)
            if kind is verifier.AndInstr:
                return _And(
                    a, b, (instr.a_done == SUCCESS, instr.b_done == SUCCESS, a.initial(), b.initial())
                )
            if kind is verifier.BeforeInstr:
                return _Before(a, b, strict, (instr.a_done == SUCCESS, a.initial(), b.initial()))
            return _After(a, b, strict, (instr.b_done == SUCCESS, b.initial(), a.initial()))
        self.unsupported(
            f"the instruction type {kind.__name__} (supported: {', '.join(SUPPORTED_INSTRUCTIONS)})"
        )
        raise AssertionError  # unreachable


# --------------------------------------------------------------------------------------------- search
def shortest_path(
    env: Any, *, max_steps: int | None = None, max_states: int = DEFAULT_MAX_STATES, where: str = ""
) -> ShortestPath:
    """The fewest actions from ``env``'s current state (a reset BabyAI level) to the verifier's success.

    Breadth-first: every state of depth ``d`` is expanded before depth ``d + 1``, so the first action that
    the verifier would call a success ends the shortest plan. ``env`` is read, never stepped.

    Args:
        env: a BabyAI environment (``vltk.tasks.navigation.babyai.env.BabyAIEnv``, a gymnasium wrapper or
            the minigrid level).
        max_steps: the step budget (default: the steps the episode has left, ``max_steps - step_count``);
            no plan longer than this counts, as the episode would be truncated first.
        max_states: stop with :class:`UnsupportedLevelError` after reaching this many states.
        where: how to name the episode in errors (e.g. ``"BabyAI-GoToLocal-v0 seed 7"``).
    """
    env = getattr(env, "unwrapped", env)
    where = where or type(env).__name__
    if not hasattr(env, "instrs"):
        raise UnsupportedLevelError(f"{where}: not a BabyAI level (no instruction to verify)")
    reader = _Reader(env, where)
    verifier = reader.node(env.instrs)
    budget = int(env.max_steps - env.step_count) if max_steps is None else int(max_steps)
    start = (*reader.start, verifier.initial())
    act: Callable[[tuple, int], tuple] = reader.physics.act
    parents: dict[tuple, tuple[tuple, int] | None] = {start: None}
    frontier = [start]
    for _ in range(budget):
        following: list[tuple] = []
        for state in frontier:
            before, memory = state[:5], state[5]
            for action in ACTIONS:
                after = act(before, action)
                mem = verifier.dropped(memory, after) if action == DROP else memory
                status, mem = verifier.verify(mem, action, after)
                if status == SUCCESS:
                    plan = _plan(parents, state) + (action,)
                    return ShortestPath(len(plan), plan, len(parents))
                if status == FAILURE:
                    continue
                successor = (*after, mem)
                if successor not in parents:
                    parents[successor] = (state, action)
                    following.append(successor)
            if len(parents) > max_states:
                raise UnsupportedLevelError(
                    f"{where}: the shortest-path search (SPL) reached more than {max_states:,} states; "
                    "this level is too large to search exactly"
                )
        if not following:
            break
        frontier = following
    return ShortestPath(None, (), len(parents))


def _plan(parents: dict[tuple, tuple[tuple, int] | None], state: tuple) -> tuple[int, ...]:
    actions: list[int] = []
    link = parents[state]
    while link is not None:
        state, action = link
        actions.append(action)
        link = parents[state]
    return tuple(reversed(actions))
