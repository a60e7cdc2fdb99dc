"""The floor plans of the built-in R2R houses: rooms of named kinds on a grid, doors, objects, stairs and
the viewpoints of the navigation graph (positions in metres, z up, as the Matterport3D connectivity files).

A house has one or two floors of the same grid (rows x columns of cells 3.5-5 m wide); every cell is one
room of a kind (:data:`ROOM_KINDS`). Doors join adjacent rooms of a floor along a random spanning tree of
the grid plus a few extra doors, so most rooms offer a choice. Two-floor houses have a staircase in one cell
(a hallway on both floors): 2-3 viewpoints rising :data:`FLOOR_HEIGHT` metres. Each room holds 1-3 viewpoints
(by area) and 1-3 objects from its kind's list and a generic list; each door has a viewpoint in its doorway.

Edges of the graph (``unobstructed`` in the connectivity file): all pairs of viewpoints of one room, where a
doorway viewpoint belongs to both rooms it joins; consecutive stair viewpoints; the stair ends with the room
viewpoints of the stair hallway of their floor.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

FLOOR_HEIGHT = 3.0  # metres between floors
CAMERA_HEIGHT = 1.5  # metres above the floor, as R2R's connectivity "height"
CEILING_HEIGHT = 2.7  # metres above the floor
DOOR_WIDTH = 1.0

ROOM_KINDS = (
    "kitchen",
    "bedroom",
    "bathroom",
    "living room",
    "dining room",
    "hallway",
    "office",
    "laundry room",
    "family room",
    "game room",
)
# How often each kind is drawn for a cell (bedrooms, bathrooms and hallways are common in houses).
_KIND_WEIGHTS = np.array([1.0, 2.0, 1.6, 1.0, 0.9, 1.5, 0.9, 0.7, 0.8, 0.6])

ROOM_OBJECTS = {
    "kitchen": ("fridge", "stove", "sink", "counter"),
    "bedroom": ("bed", "wardrobe", "dresser"),
    "bathroom": ("toilet", "bathtub", "mirror"),
    "living room": ("sofa", "tv", "armchair", "fireplace"),
    "dining room": ("dining table", "sideboard", "chandelier"),
    "hallway": ("coat rack", "bench", "mirror"),
    "office": ("desk", "bookshelf", "computer"),
    "laundry room": ("washing machine", "dryer", "ironing board"),
    "family room": ("sofa", "tv", "piano"),
    "game room": ("pool table", "arcade machine", "dartboard"),
}
GENERIC_OBJECTS = ("plant", "table", "lamp", "painting", "chair", "vase")

COLOURS = {
    "red": (0.85, 0.15, 0.15),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.15, 0.3, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "white": (0.97, 0.97, 0.97),
    "black": (0.08, 0.08, 0.08),
    "orange": (1.0, 0.55, 0.05),
    "purple": (0.55, 0.2, 0.7),
    "brown": (0.5, 0.3, 0.12),
    "grey": (0.5, 0.5, 0.5),
}


@dataclass(frozen=True)
class Room:
    index: int
    kind: str
    floor: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in metres
    cell: tuple[int, int]  # grid row, column

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)


@dataclass(frozen=True)
class Door:
    rooms: tuple[int, int]
    floor: int
    centre: tuple[float, float]
    vertical: bool  # True: the wall runs along y (a door between columns), False: along x


@dataclass(frozen=True)
class HouseObject:
    kind: str
    colour: str
    room: int
    position: tuple[float, float, float]  # centre on the floor (z = the floor's height)


@dataclass(frozen=True)
class Viewpoint:
    image_id: str
    position: tuple[float, float, float]  # camera position (z = floor height + CAMERA_HEIGHT)
    place: str  # "room", "door" or "stairs"
    rooms: tuple[int, ...]  # the room (one), the two rooms of a door, () on the stairs
    floor: int


@dataclass
class House:
    scan: str
    floors: int
    xs: np.ndarray  # [columns + 1] x of the grid lines
    ys: np.ndarray  # [rows + 1] y of the grid lines
    rooms: list[Room]
    doors: list[Door]
    objects: list[HouseObject]
    viewpoints: list[Viewpoint]
    edges: set[tuple[int, int]]  # (i, j), i < j, indices into viewpoints
    stairs: tuple[float, float, float, float] | None  # x0, y0, x1, y1 of the stair strip (both floors)
    colour_jitter: dict[str, np.ndarray] = field(default_factory=dict)  # room kind -> [3] wall tint

    def room_at(self, floor: int, row: int, column: int) -> Room:
        return self.rooms[(floor * (len(self.ys) - 1) + row) * (len(self.xs) - 1) + column]

    def room_viewpoints(self, room: int) -> list[int]:
        return [i for i, vp in enumerate(self.viewpoints) if room in vp.rooms]


def scan_id(seed: int, index: int) -> str:
    """An 11-character Matterport-like scan id (letters and digits) from a hash of the seed and index."""
    digest = hashlib.sha256(f"r2r-houses-scan-{seed}-{index}".encode()).digest()
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    number = int.from_bytes(digest[:12], "big")
    chars = []
    for _ in range(11):
        number, rest = divmod(number, len(alphabet))
        chars.append(alphabet[rest])
    return "".join(chars)


def viewpoint_id(scan: str, index: int) -> str:
    """A 32-hex-digit viewpoint id, as Matterport's panorama ids."""
    return hashlib.sha256(f"{scan}-viewpoint-{index}".encode()).hexdigest()[:32]


def make_house(scan: str, rng: np.random.Generator, two_floor_fraction: float) -> House:
    """One random house (module docstring); ``rng`` decides everything."""
    floors = 2 if rng.random() < two_floor_fraction else 1
    rows, columns = 3, int(rng.integers(3, 5))
    xs = np.concatenate([[0.0], np.cumsum(rng.uniform(3.5, 5.0, size=columns))])
    ys = np.concatenate([[0.0], np.cumsum(rng.uniform(3.5, 5.0, size=rows))])
    stair_cell = (int(rng.integers(rows)), int(rng.integers(columns))) if floors == 2 else None
    rooms = _rooms(rng, floors, xs, ys, stair_cell)
    doors = [door for floor in range(floors) for door in _doors(rng, floor, rooms, rows, columns)]
    stairs = _stair_strip(xs, ys, stair_cell) if stair_cell else None
    house = House(scan, floors, xs, ys, rooms, doors, [], [], set(), stairs)
    _add_viewpoints(house, rng, stair_cell)
    house.objects = _objects(house, rng)
    house.colour_jitter = {kind: rng.normal(0.0, 0.035, size=3) for kind in ROOM_KINDS}
    return house


def _rooms(
    rng: np.random.Generator, floors: int, xs: np.ndarray, ys: np.ndarray, stair_cell: tuple[int, int] | None
) -> list[Room]:
    rooms: list[Room] = []
    p = _KIND_WEIGHTS / _KIND_WEIGHTS.sum()
    cells = (len(ys) - 1) * (len(xs) - 1)
    for floor in range(floors):
        # Each floor: distinct kinds in a weighted random order, the cells beyond the 10 kinds common ones.
        kinds = [str(k) for k in rng.choice(ROOM_KINDS, size=len(ROOM_KINDS), replace=False, p=p)][:cells]
        kinds += [str(rng.choice(("bedroom", "bathroom", "hallway"))) for _ in range(cells - len(kinds))]
        kinds = [kinds[i] for i in rng.permutation(cells)]
        for row in range(len(ys) - 1):
            for column in range(len(xs) - 1):
                kind = "hallway" if (row, column) == stair_cell else kinds[row * (len(xs) - 1) + column]
                box = (float(xs[column]), float(ys[row]), float(xs[column + 1]), float(ys[row + 1]))
                rooms.append(Room(len(rooms), kind, floor, box, (row, column)))
    return rooms


def _doors(rng: np.random.Generator, floor: int, rooms: list[Room], rows: int, columns: int) -> list[Door]:
    """A random spanning tree of the floor's grid (Kruskal over shuffled walls) plus 1-3 extra doors."""
    base = floor * rows * columns
    walls = [(r * columns + c, r * columns + c + 1) for r in range(rows) for c in range(columns - 1)]
    walls += [(r * columns + c, (r + 1) * columns + c) for r in range(rows - 1) for c in range(columns)]
    order = rng.permutation(len(walls))
    parent = list(range(rows * columns))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    chosen, spare = [], []
    for k in order:
        a, b = walls[k]
        if root(a) != root(b):
            parent[root(a)] = root(b)
            chosen.append(walls[k])
        else:
            spare.append(walls[k])
    chosen += spare[: int(rng.integers(1, 4))]
    return [_door(rng, floor, rooms[base + a], rooms[base + b]) for a, b in sorted(chosen)]


def _door(rng: np.random.Generator, floor: int, a: Room, b: Room) -> Door:
    vertical = a.cell[0] == b.cell[0]  # same row: the shared wall runs along y
    if vertical:
        y0, y1 = a.box[1], a.box[3]
        centre = (a.box[2], float(rng.uniform(y0 + 1.0, y1 - 1.0)))
    else:
        x0, x1 = a.box[0], a.box[2]
        centre = (float(rng.uniform(x0 + 1.0, x1 - 1.0)), a.box[3])
    return Door((a.index, b.index), floor, centre, vertical)


def _stair_strip(xs: np.ndarray, ys: np.ndarray, cell: tuple[int, int]) -> tuple[float, float, float, float]:
    """A 1 m wide strip along the south wall of the stair cell, 0.5 m from the side walls."""
    row, column = cell
    return (float(xs[column]) + 0.5, float(ys[row]) + 0.2, float(xs[column + 1]) - 0.5, float(ys[row]) + 1.2)


def _add_viewpoints(house: House, rng: np.random.Generator, stair_cell: tuple[int, int] | None) -> None:
    places: list[tuple[tuple[float, float, float], str, tuple[int, ...], int]] = []
    for room in house.rooms:
        for x, y in _room_points(rng, room, house.stairs if room.cell == stair_cell else None):
            places.append(
                ((x, y, room.floor * FLOOR_HEIGHT + CAMERA_HEIGHT), "room", (room.index,), room.floor)
            )
    for door in house.doors:
        x, y = door.centre
        places.append(((x, y, door.floor * FLOOR_HEIGHT + CAMERA_HEIGHT), "door", door.rooms, door.floor))
    if house.stairs is not None:
        x0, y0, x1, y1 = house.stairs
        steps = int(rng.integers(2, 4))
        for k in range(1, steps + 1):
            t = k / (steps + 1)
            z = CAMERA_HEIGHT + t * FLOOR_HEIGHT
            places.append(((x0 + t * (x1 - x0), (y0 + y1) / 2, z), "stairs", (), int(t >= 0.5)))
    house.viewpoints = [
        Viewpoint(viewpoint_id(house.scan, i), position, place, rooms, floor)
        for i, (position, place, rooms, floor) in enumerate(places)
    ]
    house.edges = _edges(house, stair_cell)


def _room_points(
    rng: np.random.Generator, room: Room, stairs: tuple[float, float, float, float] | None
) -> list[tuple[float, float]]:
    """1-3 points 0.8 m inside the walls, 1.5 m apart, away from the stair strip."""
    count = 1 if room.area < 15.0 else 2 if room.area < 20.0 else 3
    x0, y0, x1, y1 = room.box
    if stairs is not None:
        y0 = stairs[3] + 0.2
    points: list[tuple[float, float]] = []
    for _ in range(200):
        if len(points) == count:
            break
        x, y = float(rng.uniform(x0 + 0.8, x1 - 0.8)), float(rng.uniform(y0 + 0.8, y1 - 0.8))
        if all(math.hypot(x - px, y - py) >= 1.5 for px, py in points):
            points.append((x, y))
    return points


def _edges(house: House, stair_cell: tuple[int, int] | None) -> set[tuple[int, int]]:
    edges: set[tuple[int, int]] = set()
    for room in house.rooms:
        members = house.room_viewpoints(room.index)
        edges |= {(a, b) for a in members for b in members if a < b}
    stair = [i for i, vp in enumerate(house.viewpoints) if vp.place == "stairs"]
    edges |= {(a, b) for a, b in zip(stair, stair[1:])}
    if stair:
        for end, floor in ((stair[0], 0), (stair[-1], 1)):
            hall = house.room_at(floor, *stair_cell)
            edges |= {
                tuple(sorted((end, i)))
                for i in house.room_viewpoints(hall.index)
                if house.viewpoints[i].place == "room"
            }
    return edges


def _objects(house: House, rng: np.random.Generator) -> list[HouseObject]:
    """1-3 objects per room, kind-specific ones first, kept 0.7 m clear of viewpoints and each other."""
    objects = []
    for room in house.rooms:
        count = int(rng.integers(1, 4))
        pool = list(ROOM_OBJECTS[room.kind])
        kinds = [str(k) for k in rng.choice(pool, size=min(count, len(pool)), replace=False)]
        if count >= 2 and rng.random() < 0.5:
            kinds[-1] = str(rng.choice(GENERIC_OBJECTS))
        taken = [vp.position[:2] for vp in house.viewpoints if room.index in vp.rooms]
        x0, y0, x1, y1 = room.box
        if house.stairs is not None and _inside(house.stairs, room):
            y0 = house.stairs[3]
        for kind in kinds:
            for _ in range(100):
                x, y = float(rng.uniform(x0 + 0.5, x1 - 0.5)), float(rng.uniform(y0 + 0.5, y1 - 0.5))
                if all(math.hypot(x - px, y - py) >= 1.0 for px, py in taken):
                    colour = str(rng.choice(list(COLOURS)))
                    objects.append(HouseObject(kind, colour, room.index, (x, y, room.floor * FLOOR_HEIGHT)))
                    taken.append((x, y))
                    break
    return objects


def _inside(strip: tuple[float, float, float, float], room: Room) -> bool:
    x0, y0, x1, y1 = room.box
    return x0 <= strip[0] <= x1 and y0 <= strip[1] <= y1


def house_record(house: House) -> dict:
    """The ``houses/{scan}.json`` record: rooms, doors, objects, stairs and viewpoint -> room."""
    return {
        "scan": house.scan,
        "floors": house.floors,
        "rooms": [
            {"index": r.index, "kind": r.kind, "floor": r.floor, "box": list(r.box), "cell": list(r.cell)}
            for r in house.rooms
        ],
        "doors": [{"rooms": list(d.rooms), "floor": d.floor, "centre": list(d.centre)} for d in house.doors],
        "objects": [
            {"kind": o.kind, "colour": o.colour, "room": o.room, "position": list(o.position)}
            for o in house.objects
        ],
        "stairs": list(house.stairs) if house.stairs else None,
        "viewpoints": {
            vp.image_id: {"place": vp.place, "rooms": list(vp.rooms), "floor": vp.floor}
            for vp in house.viewpoints
        },
    }


def connectivity_items(house: House) -> list[dict]:
    """The ``connectivity/{scan}_connectivity.json`` items (graph.py's layout): identity rotation, the
    position in ``pose[3], pose[7], pose[11]``, symmetric ``unobstructed`` (``visible`` the same)."""
    n = len(house.viewpoints)
    flags = np.zeros((n, n), dtype=bool)
    for a, b in house.edges:
        flags[a, b] = flags[b, a] = True
    items = []
    for i, vp in enumerate(house.viewpoints):
        x, y, z = (round(v, 6) for v in vp.position)
        pose = [1.0, 0.0, 0.0, x, 0.0, 1.0, 0.0, y, 0.0, 0.0, 1.0, z, 0.0, 0.0, 0.0, 1.0]
        row = [bool(f) for f in flags[i]]
        items.append(
            {
                "image_id": vp.image_id,
                "pose": pose,
                "included": True,
                "visible": row,
                "unobstructed": row,
                "height": CAMERA_HEIGHT,
            }
        )
    return items
