"""The exact shortest path of SPL (vltk.tasks.navigation.babyai.shortest_path): hand-made grids whose shortest
solution is worked out by hand, replays of the search's plan in the real minigrid environment, a brute-force
search over copies of the real environment, the comparison with the BabyAI bot, and the levels it refuses."""

from __future__ import annotations

import copy

import gymnasium
import numpy as np
import pytest
from minigrid.core.grid import Grid
from minigrid.core.world_object import Ball, Box, Door, Key, Lava, Wall
from minigrid.envs.babyai.core import verifier
from minigrid.envs.babyai.core.verifier import (
    ActionInstr,
    AfterInstr,
    AndInstr,
    BeforeInstr,
    GoToInstr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)

from vltk.errors import VltkError
from vltk.tasks.navigation.babyai.env import BabyAIEnv, quiet_stdout
from vltk.tasks.navigation.babyai.expert import bot_episode
from vltk.tasks.navigation.babyai.shortest_path import (
    DROP,
    FORWARD,
    LEFT,
    PICKUP,
    RIGHT,
    TOGGLE,
    UnsupportedLevelError,
    shortest_path,
)


def hand_made(rows: list[str], objects: dict, instr, max_steps: int = 64):
    """A BabyAI level (minigrid's own GoToLocal environment, verifier and step) on a grid drawn by hand:
    ``#`` wall, ``.`` empty, ``> v < ^`` the agent facing east / south / west / north, other letters the
    objects of ``objects``; ``instr`` is verified as the level's mission."""
    env = gymnasium.make("BabyAI-GoToLocal-v0").unwrapped
    with quiet_stdout():
        env.reset(seed=0)
    grid = Grid(len(rows[0]), len(rows))
    for y, row in enumerate(rows):
        for x, char in enumerate(row):
            if char == "#":
                grid.set(x, y, Wall())
            elif char in "><v^":
                env.agent_pos, env.agent_dir = (x, y), ">v<^".index(char)
            elif char != ".":
                obj = objects[char]
                grid.set(x, y, obj)
                obj.init_pos = obj.cur_pos = (x, y)
    env.grid, env.carrying, env.step_count, env.max_steps = grid, None, 0, max_steps
    env.instrs = instr
    instr.reset_verifier(env)
    return env


def replay(env, actions) -> list[tuple[float, bool]]:
    """``(reward, terminated or truncated)`` per action, stepping ``env`` itself."""
    out = []
    for action in actions:
        _, reward, terminated, truncated, _ = env.step(action)
        out.append((float(reward), bool(terminated or truncated)))
    return out


def assert_plan_solves(env, path) -> None:
    """The plan ends the real episode with success on its last action and not before."""
    outcome = replay(env, path.actions)
    assert len(outcome) == path.length
    assert [done for _, done in outcome] == [False] * (path.length - 1) + [True]
    assert outcome[-1][0] > 0


ROOM = ["########", "#......#", "#......#", "#......#", "#......#", "#......#", "#......#", "########"]


def _draw(base: list[str], cells: dict[tuple[int, int], str]) -> list[str]:
    rows = [list(row) for row in base]
    for (x, y), char in cells.items():
        rows[y][x] = char
    return ["".join(row) for row in rows]


# ------------------------------------------------------------------------------------- hand-made grids
def test_go_to_an_object_behind_the_agent():
    # agent (4, 2) facing east, red ball (1, 2): turn twice, then two steps west leave it in front.
    env = hand_made(
        _draw(ROOM, {(4, 2): ">", (1, 2): "R"}), {"R": Ball("red")}, GoToInstr(ObjDesc("ball", "red"))
    )
    path = shortest_path(env)
    assert path.actions in ((LEFT, LEFT, FORWARD, FORWARD), (RIGHT, RIGHT, FORWARD, FORWARD))
    assert_plan_solves(env, path)


def test_facing_the_target_at_the_start_takes_one_action():
    # GoToInstr is verified after an action: even a no-op ends the episode.
    env = hand_made(
        _draw(ROOM, {(1, 1): ">", (2, 1): "R"}), {"R": Ball("red")}, GoToInstr(ObjDesc("ball", "red"))
    )
    path = shortest_path(env)
    assert path.length == 1
    assert_plan_solves(env, path)


def test_the_step_budget_bounds_the_search():
    rows = _draw(ROOM, {(4, 2): ">", (1, 2): "R"})
    env = hand_made(rows, {"R": Ball("red")}, GoToInstr(ObjDesc("ball", "red")), max_steps=3)
    assert shortest_path(env).length is None and shortest_path(env).actions == ()
    env = hand_made(rows, {"R": Ball("red")}, GoToInstr(ObjDesc("ball", "red")), max_steps=4)
    path = shortest_path(env)
    assert path.length == 4
    assert_plan_solves(env, path)  # success on the last allowed step still counts (reward > 0)
    fresh = hand_made(rows, {"R": Ball("red")}, GoToInstr(ObjDesc("ball", "red")))
    assert shortest_path(fresh, max_steps=3).length is None and shortest_path(fresh).length == 4


def test_an_enclosed_target_has_no_shortest_path():
    rows = _draw(ROOM, {(1, 1): ">", (5, 5): "R", (4, 5): "#", (6, 5): "#", (5, 4): "#", (5, 6): "#"})
    path = shortest_path(hand_made(rows, {"R": Ball("red")}, GoToInstr(ObjDesc("ball", "red"))))
    assert path.length is None and path.states > 100  # every reachable state was tried


CORRIDOR = ["########", "#......#", "#.######", "########", "########", "########", "########", "########"]


def test_go_to_past_a_blocker_by_carrying_it():
    # A 1-wide corridor: agent (1, 1) east, a key at (2, 1), the red ball at (4, 1). Picking the key up
    # clears the way and carrying it does not matter for GoTo: pickup, forward, forward.
    rows = _draw(CORRIDOR, {(1, 1): ">", (2, 1): "k", (4, 1): "R", (1, 2): "#"})
    env = hand_made(rows, {"k": Key("blue"), "R": Ball("red")}, GoToInstr(ObjDesc("ball", "red")))
    path = shortest_path(env)
    assert path.actions == (PICKUP, FORWARD, FORWARD)
    assert_plan_solves(env, path)


def test_pick_up_behind_an_obstacle_that_must_be_dropped_elsewhere():
    # Corridor (1, 1)-(3, 1) with a pocket at (1, 2). Agent (1, 1) east, a blue key at (2, 1), the red
    # ball at (3, 1), reachable only from (2, 1). The agent must hold nothing to pick the ball up, so the
    # key has to be dropped off the way: pickup key, right (face the pocket), drop, left, forward, pickup.
    rows = _draw(CORRIDOR, {(1, 1): ">", (2, 1): "k", (3, 1): "R", (4, 1): "#"})
    objects = {"k": Key("blue"), "R": Ball("red")}
    env = hand_made(rows, objects, PickupInstr(ObjDesc("ball", "red")))
    path = shortest_path(env)
    assert path.length == 6
    assert path.actions == (PICKUP, RIGHT, DROP, LEFT, FORWARD, PICKUP)
    assert_plan_solves(env, path)
    assert env.grid.get(1, 2) is objects["k"] and env.carrying is objects["R"]


def test_a_box_in_the_way_is_toggled_away():
    # The same corridor with a box as the obstacle: Box.toggle replaces it by its contents (nothing),
    # one action instead of three: toggle, forward, pickup.
    rows = _draw(CORRIDOR, {(1, 1): ">", (2, 1): "b", (3, 1): "R", (4, 1): "#"})
    env = hand_made(rows, {"b": Box("green"), "R": Ball("red")}, PickupInstr(ObjDesc("ball", "red")))
    path = shortest_path(env)
    assert path.actions == (TOGGLE, FORWARD, PICKUP)
    assert_plan_solves(env, path)


LOCKED = {(1, 1): ">", (2, 1): "k", (3, 1): "#", (3, 2): "D", (3, 3): "#", (3, 4): "#", (3, 5): "#"}
LOCKED_ROOM = _draw(ROOM, {**LOCKED, (3, 6): "#", (5, 2): "R"})


def _locked(instr, key_color: str = "red"):
    return hand_made(
        LOCKED_ROOM, {"k": Key(key_color), "D": Door("red", is_locked=True), "R": Ball("red")}, instr
    )


def test_a_locked_door_opens_with_the_key_of_its_colour():
    # pickup the key, forward, right, forward, left (face the door), toggle (unlock and open), forward
    # (into the doorway), forward: the ball at (5, 2) is in front.
    env = _locked(GoToInstr(ObjDesc("ball", "red")))
    path = shortest_path(env)
    assert path.length == 8
    assert path.actions[0] == PICKUP and TOGGLE in path.actions
    assert_plan_solves(env, path)
    assert shortest_path(_locked(GoToInstr(ObjDesc("ball", "red")), key_color="blue")).length is None


def test_open_a_door():
    env = _locked(OpenInstr(ObjDesc("door", "red")))
    path = shortest_path(env)
    assert path.length == 6 and path.actions[-1] == TOGGLE
    assert_plan_solves(env, path)
    rows = _draw(ROOM, {(1, 1): ">", (2, 1): "D"})
    closed = hand_made(rows, {"D": Door("red")}, OpenInstr(ObjDesc("door", "red")))
    assert shortest_path(closed).actions == (TOGGLE,)


def test_put_next_to():
    # The red ball in front, the blue key at (5, 3): pickup, four steps east, right (face (5, 2), beside
    # the key), drop (or the same length by (4, 2) facing south).
    rows = _draw(ROOM, {(1, 1): ">", (2, 1): "R", (5, 3): "K"})
    objects = {"R": Ball("red"), "K": Key("blue")}
    env = hand_made(rows, objects, PutNextInstr(ObjDesc("ball", "red"), ObjDesc("key", "blue")))
    path = shortest_path(env)
    assert path.length == 7 and path.actions[0] == PICKUP and path.actions[-1] == DROP
    assert_plan_solves(env, path)
    x, y = objects["R"].cur_pos
    assert abs(x - 5) + abs(y - 3) == 1


@pytest.mark.parametrize("kind", ["before", "after", "and"])
def test_sequences(kind):
    # Go to the red ball at (3, 1) (one step east) and pick up the blue key at (1, 3): forward, right,
    # forward, forward, right, pickup = 6, whichever order the instruction allows.
    rows = _draw(ROOM, {(1, 1): ">", (3, 1): "R", (1, 3): "K"})
    go, pick = GoToInstr(ObjDesc("ball", "red")), PickupInstr(ObjDesc("key", "blue"))
    instr = {"before": BeforeInstr(go, pick), "after": AfterInstr(pick, go), "and": AndInstr(go, pick)}[kind]
    env = hand_made(rows, {"R": Ball("red"), "K": Key("blue")}, instr)
    path = shortest_path(env)
    assert path.length == 6
    assert_plan_solves(env, path)


def test_then_waits_for_the_first_part():
    # "pick up the key, then go to the ball" with the ball one step ahead: going to the ball first does not
    # count, so the plan must fetch the key first (longer than either part alone).
    rows = _draw(ROOM, {(1, 1): ">", (3, 1): "R", (1, 3): "K"})
    go, pick = GoToInstr(ObjDesc("ball", "red")), PickupInstr(ObjDesc("key", "blue"))
    env = hand_made(rows, {"R": Ball("red"), "K": Key("blue")}, BeforeInstr(pick, go))
    path = shortest_path(env)
    assert path.length > 6 and path.actions.index(PICKUP) < path.length - 1
    assert_plan_solves(env, path)


# ------------------------------------------------------------------------------------ real BabyAI levels
def _reference_length(env, limit: int) -> int | None:
    """Brute force: breadth-first over deep copies of the real environment, stepped by minigrid itself."""

    def key(e):
        descs = [e.instrs.desc]
        cells = []
        for j in range(e.grid.height):
            for i in range(e.grid.width):
                cell = e.grid.get(i, j)
                if cell is not None:
                    cells.append(
                        (i, j, cell.encode(), tuple(any(cell is o for o in d.obj_set) for d in descs))
                    )
        carried = None if e.carrying is None else any(e.carrying is o for o in descs[0].obj_set)
        memory = tuple(map(tuple, descs[0].obj_poss)), getattr(e.instrs, "preCarrying", None) is None
        return tuple(cells), tuple(e.agent_pos), e.agent_dir, carried, memory

    frontier, seen = [env], {key(env)}
    for depth in range(1, limit + 1):
        following = []
        for state in frontier:
            for action in range(7):
                child = copy.deepcopy(state)
                _, reward, terminated, truncated, _ = child.step(action)
                if terminated and reward > 0:
                    return depth
                if not (terminated or truncated) and key(child) not in seen:
                    seen.add(key(child))
                    following.append(child)
        frontier = following
    return None


@pytest.mark.parametrize("level", ["BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0"])
def test_the_search_agrees_with_a_brute_force_search_of_the_real_environment(level):
    env, checked = BabyAIEnv(level), 0
    for seed in range(20):
        env.reset(seed)
        length = shortest_path(env).length
        if length is not None and length <= 6:
            assert _reference_length(env.unwrapped, 6) == length, seed
            checked += 1
    assert checked >= 12


@pytest.mark.parametrize("level", ["BabyAI-GoToRedBall-v0", "BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0"])
def test_never_longer_than_the_bot_and_shorter_on_some_seeds_and_every_plan_replays(level):
    env, real = BabyAIEnv(level), BabyAIEnv(level)
    seeds = range(300 if level != "BabyAI-PickupLoc-v0" else 100)
    ours, bots = [], []
    for seed in seeds:
        env.reset(seed)
        path = shortest_path(env)
        real.reset(seed)
        assert_plan_solves(real.env, path)  # through the gymnasium wrappers, as rollouts step it
        episode = bot_episode(env, seed)
        if episode.success:
            ours.append(path.length)
            bots.append(episode.num_steps)
    ours_, bots_ = np.asarray(ours), np.asarray(bots)
    assert len(ours) >= 0.95 * len(seeds)
    assert (ours_ <= bots_).all()
    assert 0.1 < (ours_ < bots_).mean() < 0.5  # measured 0.25, 0.23, 0.25
    assert ours_.mean() < bots_.mean()


# ----------------------------------------------------------------------------------------- refused
def test_unsupported_instructions_and_tiles_are_named():
    class StandStill(ActionInstr):
        def surface(self, env):
            return "stand still"

        def verify_action(self, action):
            return "continue"

    rows = _draw(ROOM, {(1, 1): ">", (3, 1): "R"})
    with pytest.raises(UnsupportedLevelError, match="instruction type StandStill .*supported: GoToInstr"):
        shortest_path(hand_made(rows, {"R": Ball("red")}, StandStill()), where="hand-made")
    assert issubclass(UnsupportedLevelError, VltkError)  # the CLI prints it on one line, exit 2
    boxed = Box("red", contains=Key("blue"))
    with pytest.raises(UnsupportedLevelError, match="box holding a key at \\(3, 1\\)"):
        shortest_path(hand_made(rows, {"R": boxed}, GoToInstr(ObjDesc("box", "red"))))
    lava = _draw(rows, {(4, 4): "L"})
    with pytest.raises(UnsupportedLevelError, match="lava tile at \\(4, 4\\)"):
        shortest_path(hand_made(lava, {"R": Ball("red"), "L": Lava()}, GoToInstr(ObjDesc("ball", "red"))))
    with pytest.raises(UnsupportedLevelError, match="not a BabyAI level"):
        shortest_path(gymnasium.make("MiniGrid-Empty-5x5-v0").unwrapped)


def test_done_actions_and_oversized_searches_are_refused(monkeypatch):
    with pytest.raises(UnsupportedLevelError, match="more than 10 states"):
        shortest_path(_locked(GoToInstr(ObjDesc("ball", "red"))), max_states=10, where="hand-made")
    monkeypatch.setattr(verifier, "use_done_actions", True)
    with pytest.raises(UnsupportedLevelError, match="BABYAI_DONE_ACTIONS"):
        shortest_path(_locked(GoToInstr(ObjDesc("ball", "red"))))
