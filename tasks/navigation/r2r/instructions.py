"""R2R-style instructions for a path through a built-in house, from a small grammar with synonyms.

"Walk out of the bedroom and turn left into the hallway. Go past the green plant and enter the kitchen.
Stop next to the fridge." The path is read as a sequence of room transitions (through a doorway or up/down
the stairs). Every instruction names the start room, each room entered and the goal room (with an object
of it when the house has another room of that kind), and ends at the object nearest the goal viewpoint, so
an agent that ignores the words cannot know where to go. Turns ("turn left", "turn right", "go straight",
from the change of heading in the doorway, positive clockwise as :mod:`.graph`) are told at about half of
the transitions only, so counting turns without looking does not find the way either.
"""

from __future__ import annotations

import math

import numpy as np

from vltk.tasks.navigation.r2r.layout import House

ROOM_WORDS = {
    "kitchen": ("kitchen",),
    "bedroom": ("bedroom",),
    "bathroom": ("bathroom", "restroom"),
    "living room": ("living room", "lounge"),
    "dining room": ("dining room", "dining area"),
    "hallway": ("hallway", "hall", "corridor"),
    "office": ("office", "study"),
    "laundry room": ("laundry room", "laundry"),
    "family room": ("family room", "den"),
    "game room": ("game room", "playroom"),
}
OBJECT_WORDS = {
    "fridge": ("fridge", "refrigerator"),
    "sofa": ("sofa", "couch"),
    "tv": ("tv", "television"),
    "plant": ("plant", "potted plant"),
    "wardrobe": ("wardrobe", "closet"),
    "bathtub": ("bathtub", "tub"),
    "table": ("table",),
    "lamp": ("lamp", "floor lamp"),
    "painting": ("painting", "picture"),
}
_TURN_MENTION_PROBABILITY = 0.5


def instructions_for_path(
    house: House, path: list[int], heading: float, rng: np.random.Generator, count: int = 3
) -> list[str]:
    """``count`` different phrasings of the route along ``path`` (viewpoint indices into ``house``) for an
    agent starting at ``heading`` (radians)."""
    route = route_events(house, path)
    texts: list[str] = []
    for _ in range(20 * count):
        text = _instruction(house, path, heading, route, rng)
        if text not in texts:
            texts.append(text)
        if len(texts) == count:
            break
    while len(texts) < count:  # a very short route may have fewer distinct phrasings than asked
        texts.append(texts[len(texts) % max(1, len(texts))])
    return texts


def route_events(house: House, path: list[int]) -> list[dict]:
    """The room transitions of ``path``: ``{"room", "via": "door"|"up"|"down", "turn": radians or None}``,
    ``turn`` the heading change in the doorway (positive to the right)."""
    vps = house.viewpoints
    current = vps[path[0]].rooms[0]
    events: list[dict] = []
    stairs: str | None = None
    for k in range(1, len(path)):
        vp = vps[path[k]]
        if vp.place == "stairs":
            dz = vp.position[2] - vps[path[k - 1]].position[2]
            stairs = "up" if dz > 0 else "down"
            continue
        if vp.place == "room":
            after, turn = vp.rooms[0], None
        else:
            after = _room_after_door(house, path, k)
            turn = _turn(house, path[k - 1], path[k], path[k + 1])
        if after != current:
            events.append({"room": after, "via": stairs or "door", "turn": None if stairs else turn})
            current, stairs = after, None
    return events


def _room_after_door(house: House, path: list[int], k: int) -> int:
    door, after = house.viewpoints[path[k]], house.viewpoints[path[k + 1]]
    if after.place == "room":
        return after.rooms[0]
    shared = set(door.rooms) & set(after.rooms)
    return min(shared) if shared else door.rooms[1]


def _heading(house: House, a: int, b: int) -> float:
    (ax, ay, _), (bx, by, _) = house.viewpoints[a].position, house.viewpoints[b].position
    return math.atan2(bx - ax, by - ay)  # heading 0 along +y, clockwise (graph.py)


def _wrap(angle: float) -> float:
    return math.atan2(math.sin(angle), math.cos(angle))


def _turn(house: House, before: int, at: int, after: int) -> float:
    return _wrap(_heading(house, at, after) - _heading(house, before, at))


def _turn_words(turn: float) -> str:
    if turn > math.radians(40):
        return "turn right"
    if turn < -math.radians(40):
        return "turn left"
    return "go straight"


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _room_word(house: House, room: int, rng: np.random.Generator) -> str:
    return _pick(rng, ROOM_WORDS[house.rooms[room].kind])


def _object_words(house: House, obj, rng: np.random.Generator, colour: bool) -> str:
    noun = _pick(rng, OBJECT_WORDS.get(obj.kind, (obj.kind,)))
    return f"{obj.colour} {noun}" if colour else noun


def _room_objects(house: House, room: int) -> list:
    return [obj for obj in house.objects if obj.room == room]


def _instruction(house: House, path: list[int], heading: float, route: list[dict], rng) -> str:
    clauses = [_start_clause(house, path, heading, route, rng)]
    for event in route[:-1]:
        clauses.append(_transition_clause(house, event, rng, goal=False))
    clauses.append(_transition_clause(house, route[-1], rng, goal=True))
    sentences, current = [], [clauses[0]]
    for clause in clauses[1:]:
        if len(current) < 2 and rng.random() < 0.6:
            current.append(clause)
        else:
            sentences.append(current)
            current = [clause]
    sentences.append(current)
    text = [_sentence(_pick(rng, (" and ", ", then ", ", ")).join(parts)) for parts in sentences]
    text.append(_sentence(_stop_clause(house, path, route, rng)))
    return " ".join(text)


def _sentence(clause: str) -> str:
    return clause[0].upper() + clause[1:] + "."


def _start_clause(house: House, path: list[int], heading: float, route: list[dict], rng) -> str:
    room = _room_word(house, house.viewpoints[path[0]].rooms[0], rng)
    if route[0]["via"] != "door":
        leave = _pick(rng, ("start in the {r}", "from the {r}, get ready", "you are in the {r}")).format(
            r=room
        )
    else:
        leave = _pick(
            rng,
            (
                "walk out of the {r}",
                "exit the {r}",
                "leave the {r}",
                "go out of the {r}",
                "head out of the {r}",
            ),
        ).format(r=room)
    if rng.random() < 0.4:
        first = _wrap(_heading(house, path[0], path[1]) - heading)
        if abs(first) > math.radians(135):
            return f"turn around and {leave}"
        if abs(first) > math.radians(45):
            return f"turn {'right' if first > 0 else 'left'} and {leave}"
    return leave


def _transition_clause(house: House, event: dict, rng: np.random.Generator, goal: bool) -> str:
    room = _room_word(house, event["room"], rng)
    if event["via"] in ("up", "down"):
        way = event["via"]
        verb = _pick(
            rng, (f"go {way} the stairs to", f"take the stairs {way} to", f"walk {way} the stairs to")
        )
        clause = f"{verb} the {room}"
    elif event["turn"] is not None and rng.random() < _TURN_MENTION_PROBABILITY:
        clause = f"{_turn_words(event['turn'])} into the {room}"
    elif goal:
        clause = _pick(
            rng, ("enter the {r}", "go into the {r}", "walk into the {r}", "head into the {r}")
        ).format(r=room)
    else:
        clause = _pick(
            rng,
            (
                "walk into the {r}",
                "go through the {r}",
                "enter the {r}",
                "continue into the {r}",
                "pass through the {r}",
            ),
        ).format(r=room)
    objects = _room_objects(house, event["room"])
    if goal and objects and _ambiguous(house, event["room"]):
        obj = objects[int(rng.integers(len(objects)))]
        clause += _pick(rng, (" with the {o}", " that has the {o}")).format(
            o=_object_words(house, obj, rng, True)
        )
    elif not goal and objects and rng.random() < 0.35:
        obj = objects[int(rng.integers(len(objects)))]
        clause += _pick(rng, (" past the {o}", ", passing the {o}")).format(
            o=_object_words(house, obj, rng, True)
        )
    return clause


def _ambiguous(house: House, room: int) -> bool:
    kind = house.rooms[room].kind
    return sum(r.kind == kind for r in house.rooms) > 1


def _stop_clause(house: House, path: list[int], route: list[dict], rng: np.random.Generator) -> str:
    goal = house.viewpoints[path[-1]]
    objects = _room_objects(house, route[-1]["room"])
    gx, gy, _ = goal.position
    if not objects:
        room = _room_word(house, route[-1]["room"], rng)
        return _pick(rng, ("stop in the {r}", "wait in the {r}")).format(r=room)
    nearest = min(objects, key=lambda obj: math.hypot(obj.position[0] - gx, obj.position[1] - gy))
    words = _object_words(house, nearest, rng, colour=rng.random() < 0.5)
    return _pick(
        rng,
        (
            "stop next to the {o}",
            "stop in front of the {o}",
            "wait by the {o}",
            "stop near the {o}",
            "wait next to the {o}",
        ),
    ).format(o=words)
