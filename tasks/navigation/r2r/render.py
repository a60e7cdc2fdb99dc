"""The 36 discretised views of every viewpoint of a built-in house, by a numpy ray caster over its floor plan.

Views follow Matterport3DSimulator ``scripts/precompute_img_features.py``: view ``ix = 12 * e + h`` looks at
heading ``h * 30°`` (heading 0 along +y, clockwise seen from above, :mod:`.graph`) and elevation
``(e - 1) * 30°``. Each image column casts one horizontal ray from the camera; the nearest wall segment it
hits gives the wall's distance, the room on the ray's side of that wall, and a coordinate along the wall.
Doorways are gaps in the walls, so a ray through a door shows the next room. A pixel row looks at elevation
``view elevation + its offset`` (a cylindrical projection, simpler than the simulator's pinhole camera) and
shows, at the height where it meets the wall's distance, the wall (``0 <= z <= CEILING_HEIGHT``), else the
floor or ceiling at the point where it meets that plane (room looked up on the grid). Objects are upright
boxes with a kind-specific footprint, height and accent band, drawn in their colour where nearer than the
wall; the stair strip is a striped box and a striped floor. Colours and textures are by room kind
(:data:`KIND_STYLES`) with a small per-house tint, shaded by distance.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from vltk.tasks.navigation.r2r.layout import (
    CAMERA_HEIGHT,
    CEILING_HEIGHT,
    COLOURS,
    FLOOR_HEIGHT,
    ROOM_KINDS,
    House,
)

HEADINGS, ELEVATIONS = 12, 3
_CHUNK = 16
FOV = math.radians(60.0)  # R2R's vfov; here the images are square, so also the horizontal field of view

# kind -> (wall RGB, wall pattern, floor RGB, floor pattern); patterns: plain, stripes, band, tiles, dots
KIND_STYLES = {
    "kitchen": ((0.92, 0.9, 0.55), "tiles", (0.75, 0.75, 0.78), "tiles"),
    "bedroom": ((0.55, 0.65, 0.9), "plain", (0.6, 0.42, 0.25), "stripes"),
    "bathroom": ((0.55, 0.88, 0.88), "tiles", (0.9, 0.9, 0.92), "tiles"),
    "living room": ((0.9, 0.6, 0.45), "band", (0.55, 0.35, 0.2), "stripes"),
    "dining room": ((0.75, 0.35, 0.35), "band", (0.45, 0.3, 0.2), "plain"),
    "hallway": ((0.85, 0.85, 0.8), "plain", (0.35, 0.35, 0.38), "plain"),
    "office": ((0.45, 0.6, 0.45), "stripes", (0.3, 0.3, 0.45), "plain"),
    "laundry room": ((0.8, 0.8, 0.95), "dots", (0.65, 0.65, 0.6), "tiles"),
    "family room": ((0.9, 0.78, 0.5), "stripes", (0.5, 0.55, 0.3), "plain"),
    "game room": ((0.6, 0.4, 0.7), "dots", (0.2, 0.45, 0.3), "plain"),
}
CEILING_RGB = np.array([0.95, 0.94, 0.9])
STAIRS_RGB = np.array([0.55, 0.4, 0.3])

# object kind -> (half width of the footprint in metres, bottom and top height above the floor)
OBJECT_SHAPES = {
    "fridge": (0.4, 0.0, 1.9),
    "stove": (0.4, 0.0, 0.9),
    "sink": (0.3, 0.6, 0.95),
    "counter": (0.7, 0.0, 0.95),
    "bed": (0.9, 0.0, 0.6),
    "wardrobe": (0.6, 0.0, 2.1),
    "dresser": (0.5, 0.0, 1.1),
    "toilet": (0.25, 0.0, 0.5),
    "bathtub": (0.8, 0.0, 0.6),
    "mirror": (0.35, 1.1, 1.9),
    "sofa": (0.9, 0.0, 0.8),
    "tv": (0.6, 0.8, 1.4),
    "armchair": (0.45, 0.0, 0.9),
    "fireplace": (0.7, 0.0, 1.2),
    "dining table": (0.8, 0.5, 0.78),
    "sideboard": (0.7, 0.0, 1.0),
    "chandelier": (0.4, 1.9, 2.5),
    "coat rack": (0.2, 0.0, 1.8),
    "bench": (0.6, 0.0, 0.45),
    "desk": (0.6, 0.45, 0.76),
    "bookshelf": (0.5, 0.0, 2.0),
    "computer": (0.25, 0.75, 1.2),
    "washing machine": (0.35, 0.0, 0.9),
    "dryer": (0.35, 0.0, 0.9),
    "ironing board": (0.6, 0.7, 0.9),
    "piano": (0.7, 0.0, 1.3),
    "pool table": (0.9, 0.6, 0.85),
    "arcade machine": (0.35, 0.0, 1.8),
    "dartboard": (0.25, 1.5, 1.9),
    "plant": (0.25, 0.0, 1.3),
    "table": (0.6, 0.5, 0.75),
    "lamp": (0.15, 0.0, 1.7),
    "painting": (0.5, 1.3, 1.9),
    "chair": (0.3, 0.0, 0.95),
    "vase": (0.15, 0.0, 0.5),
}


def render_house(house: House, image_size: int = 32) -> np.ndarray:
    """``uint8 [V, 36, S, S, 3]``: the 36 views of every viewpoint of ``house`` in viewpoint order."""
    images = np.zeros((len(house.viewpoints), HEADINGS * ELEVATIONS, image_size, image_size, 3), np.uint8)
    for floor in range(house.floors):
        members = [i for i, vp in enumerate(house.viewpoints) if vp.floor == floor]
        for start in range(0, len(members), _CHUNK):  # chunks bound the [V, 3*S, 12*S] work arrays
            chunk = members[start : start + _CHUNK]
            cameras = np.array([house.viewpoints[i].position[:2] for i in chunk])  # [V, 2]
            images[chunk] = render_views(house, floor, cameras, image_size)
    return images


def view_angles(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``headings [12 * S]`` of the columns of the 12 level views (view-major) and ``elevations [3, S]`` of
    the rows of the three elevations (top row first), in radians."""
    offsets = np.arctan(((np.arange(image_size) + 0.5) / image_size * 2 - 1) * math.tan(FOV / 2))  # [S]
    headings = (np.arange(HEADINGS)[:, None] * math.radians(30) + offsets[None, :]).reshape(-1)  # [12*S]
    rows = -offsets  # row 0 looks highest
    elevations = (np.arange(ELEVATIONS)[:, None] - 1) * math.radians(30) + rows[None, :]  # [3, S]
    return headings, elevations


def render_views(house: House, floor: int, cameras: np.ndarray, image_size: int) -> np.ndarray:
    """``uint8 [V, 36, S, S, 3]`` for cameras ``[V, 2]`` (x, y) at camera height on ``floor``."""
    s = image_size
    headings, elevations = view_angles(s)
    directions = np.stack([np.sin(headings), np.cos(headings)], axis=-1)  # [R, 2], R = 12*S
    wall = _cast_walls(house, floor, cameras, directions)
    tangent = np.tan(elevations).reshape(-1)  # [E*S] rows of all three elevations
    tangent = tangent.astype(np.float32)
    height = CAMERA_HEIGHT + wall["distance"][:, None, :] * tangent[None, :, None]  # [V, E*S, R]
    rgb = _wall_colour(house, wall, height)  # [V, E*S, R, 3]
    below, above = height < 0.0, height > CEILING_HEIGHT
    down, up = np.nonzero(tangent < 0)[0], np.nonzero(tangent > 0)[0]  # rows that can see floor / ceiling
    floor_distance = (CAMERA_HEIGHT / -tangent[down]).astype(np.float32)  # [F]
    ceiling_distance = ((CEILING_HEIGHT - CAMERA_HEIGHT) / tangent[up]).astype(np.float32)  # [U]
    points = cameras[:, None, None, :] + floor_distance[None, :, None, None] * directions[None, None, :, :]
    floor_rgb = _floor_colour(house, floor, points.astype(np.float32))  # [V, F, R, 3]
    floor_rgb *= _shade(floor_distance)[None, :, None, None]
    rgb[:, down] = np.where(below[:, down, :, None], floor_rgb, rgb[:, down])
    ceiling_rgb = (CEILING_RGB[None, :] * _shade(ceiling_distance)[:, None]).astype(np.float32)  # [U, 3]
    rgb[:, up] = np.where(above[:, up, :, None], ceiling_rgb[None, :, None, :], rgb[:, up])
    plane = np.full(len(tangent), np.inf, dtype=np.float32)
    plane[down], plane[up] = floor_distance, ceiling_distance
    depth = np.where(below | above, plane[None, :, None], wall["distance"][:, None, :])  # [V, E*S, R]
    rgb = _draw_boxes(house, floor, cameras, directions, tangent, depth, rgb)
    v = len(cameras)
    image = rgb.reshape(v, ELEVATIONS, s, HEADINGS, s, 3).transpose(0, 1, 3, 2, 4, 5)  # [V, E, H, S, S, 3]
    image = image.reshape(v, ELEVATIONS * HEADINGS, s, s, 3)  # view index 12 * e + h
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def wall_segments(house: House, floor: int) -> dict[str, np.ndarray]:
    """The walls of ``floor`` split around the doorways: ``start``/``end [W, 2]``, ``left``/``right [W]`` (the
    room index on each side seen from start to end, -1 outside) and ``offset [W]`` (metres from the wall's
    start, for textures)."""
    rows, columns = len(house.ys) - 1, len(house.xs) - 1
    gaps: dict[tuple[bool, float], list[float]] = {}
    for door in house.doors:
        if door.floor == floor:
            line = door.centre[0] if door.vertical else door.centre[1]
            along = door.centre[1] if door.vertical else door.centre[0]
            gaps.setdefault((door.vertical, round(line, 6)), []).append(along)
    segments: list[tuple[float, float, float, float, int, int, float]] = []

    def room(row: int, column: int) -> int:
        if 0 <= row < rows and 0 <= column < columns:
            return house.room_at(floor, row, column).index
        return -1

    for c in range(columns + 1):  # walls along y, x = xs[c]; left of +y is -x
        x = float(house.xs[c])
        for r in range(rows):
            pieces = _split(float(house.ys[r]), float(house.ys[r + 1]), gaps.get((True, round(x, 6)), []))
            for a, b in pieces:
                segments.append((x, a, x, b, room(r, c - 1), room(r, c), a))
    for r in range(rows + 1):  # walls along x, y = ys[r]; left of +x is +y
        y = float(house.ys[r])
        for c in range(columns):
            pieces = _split(float(house.xs[c]), float(house.xs[c + 1]), gaps.get((False, round(y, 6)), []))
            for a, b in pieces:
                segments.append((a, y, b, y, room(r, c), room(r - 1, c), a))
    table = np.array(segments)
    return {
        "start": table[:, 0:2],
        "end": table[:, 2:4],
        "left": table[:, 4].astype(np.int64),
        "right": table[:, 5].astype(np.int64),
        "offset": table[:, 6],
    }


def _split(a: float, b: float, doors: list[float]) -> list[tuple[float, float]]:
    pieces, start = [], a
    for centre in sorted(d for d in doors if a < d < b):
        pieces.append((start, centre - 0.5 * 1.0))
        start = centre + 0.5 * 1.0
    pieces.append((start, b))
    return [(p, q) for p, q in pieces if q - p > 1e-6]


def _cast_walls(
    house: House, floor: int, cameras: np.ndarray, directions: np.ndarray
) -> dict[str, np.ndarray]:
    """Nearest wall hit of every ray: ``distance``, ``room`` (the room facing the camera), ``along`` (metres
    along the wall) and ``axis`` (0: a wall along y, 1: along x), each ``[V, R]``."""
    walls = wall_segments(house, floor)
    edge = walls["end"] - walls["start"]  # [W, 2]
    rel = walls["start"][None, :, :] - cameras[:, None, :]  # [V, W, 2]
    denom = directions[:, None, 0] * edge[None, :, 1] - directions[:, None, 1] * edge[None, :, 0]  # [R, W]
    safe = np.where(np.abs(denom) < 1e-12, np.inf, denom)
    cross_rel_edge = rel[:, :, 0] * edge[None, :, 1] - rel[:, :, 1] * edge[None, :, 0]  # [V, W]
    t = cross_rel_edge[:, None, :] / safe[None, :, :]  # [V, R, W]
    cross_rel_dir = (
        rel[:, None, :, 0] * directions[None, :, None, 1] - rel[:, None, :, 1] * directions[None, :, None, 0]
    )  # [V, R, W]
    u = cross_rel_dir / safe[None, :, :]
    t = np.where((t > 1e-6) & (u >= -1e-9) & (u <= 1 + 1e-9), t, np.inf)
    hit = np.argmin(t, axis=-1)  # [V, R]
    distance = np.take_along_axis(t, hit[..., None], axis=-1)[..., 0]
    u_hit = np.take_along_axis(u, hit[..., None], axis=-1)[..., 0]
    # The ray crosses the wall from its left side when cross(direction, edge) > 0.
    rays = np.broadcast_to(np.arange(len(directions))[None, :], hit.shape)
    from_left = denom[rays, hit] > 0
    room = np.where(from_left, walls["left"][hit], walls["right"][hit])
    length = np.linalg.norm(edge, axis=-1)
    along = walls["offset"][hit] + u_hit * length[hit]
    axis = (np.abs(edge[hit, 1]) < 1e-9).astype(np.int64)
    return {
        "distance": np.minimum(distance, 100.0).astype(np.float32),
        "room": room,
        "along": along.astype(np.float32),
        "axis": axis,
    }


def _kind_index(house: House) -> np.ndarray:
    return np.array([ROOM_KINDS.index(room.kind) for room in house.rooms] + [ROOM_KINDS.index("hallway")])


def _wall_colour(house: House, wall: dict[str, np.ndarray], height: np.ndarray) -> np.ndarray:
    """``[V, E*S, R, 3]`` wall colours by the kind of the room facing the camera, textured and shaded."""
    kinds = _kind_index(house)[wall["room"]]  # [V, R] (room -1 -> the extra "hallway" entry)
    base = np.array([KIND_STYLES[k][0] for k in ROOM_KINDS]) + np.array(
        [house.colour_jitter[k] for k in ROOM_KINDS]
    )  # [K, 3]
    patterns = np.array([_PATTERN_IDS[KIND_STYLES[k][1]] for k in ROOM_KINDS])[kinds]  # [V, R]
    along = wall["along"][:, None, :]  # [V, 1, R]
    factor = _pattern(patterns[:, None, :], along, height)  # [V, E*S, R]
    orientation = np.where(wall["axis"] == 1, 0.88, 1.0)[:, None, :]
    shade = _shade(wall["distance"])[:, None, :] * orientation * factor
    return base[kinds].astype(np.float32)[:, None, :, :] * shade[..., None]


_PATTERN_IDS = {"plain": 0, "stripes": 1, "band": 2, "tiles": 3, "dots": 4}


def _pattern(pattern: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Brightness factor of a texture at surface coordinates ``u``, ``v`` (metres)."""
    one = np.float32(1.0)
    stripes = np.where((np.floor(u / 0.4) % 2) == 0, one, np.float32(0.78))
    band = np.where((v > 0.8) & (v < 1.0), np.float32(0.6), one)
    tiles = np.where(((np.floor(u / 0.5) + np.floor(v / 0.5)) % 2) == 0, one, np.float32(0.82))
    dots = np.where(((u % 0.6) - 0.3) ** 2 + ((v % 0.6) - 0.3) ** 2 < 0.015, np.float32(0.55), one)
    return np.select(
        [pattern == 1, pattern == 2, pattern == 3, pattern == 4], [stripes, band, tiles, dots], one
    )


def _shade(distance: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + 0.06 * distance)


def _floor_colour(house: House, floor: int, points: np.ndarray) -> np.ndarray:
    """``[..., 3]`` floor colours at ``points [..., 2]`` by the kind of the room there (stairs striped)."""
    columns, rows = len(house.xs) - 1, len(house.ys) - 1
    column = np.clip(np.searchsorted(house.xs, points[..., 0]) - 1, 0, columns - 1)
    row = np.clip(np.searchsorted(house.ys, points[..., 1]) - 1, 0, rows - 1)
    room = (floor * rows + row) * columns + column
    kinds = _kind_index(house)[room]
    base = np.array([KIND_STYLES[k][2] for k in ROOM_KINDS], dtype=np.float32)[kinds]  # [..., 3]
    patterns = np.array([_PATTERN_IDS[KIND_STYLES[k][3]] for k in ROOM_KINDS])[kinds]
    rgb = base * _pattern(patterns, points[..., 0], points[..., 1])[..., None]
    if house.stairs is not None:
        x0, y0, x1, y1 = house.stairs
        on = (points[..., 0] >= x0) & (points[..., 0] <= x1) & (points[..., 1] >= y0) & (points[..., 1] <= y1)
        steps = np.where((np.floor(points[..., 0] / 0.25) % 2) == 0, 1.0, 0.45)
        rgb = np.where(on[..., None], STAIRS_RGB.astype(np.float32) * steps[..., None], rgb)
    return rgb


def _boxes(
    house: House, floor: int
) -> list[tuple[np.ndarray, np.ndarray, float, float, np.ndarray, float, bool]]:
    """(min [2], max [2], bottom, top, RGB, accent, striped) of the objects and stairs of ``floor``."""
    boxes = []
    for obj in house.objects:
        if house.rooms[obj.room].floor != floor:
            continue
        half, bottom, top = OBJECT_SHAPES[obj.kind]
        centre = np.array(obj.position[:2])
        accent = int(hashlib.md5(obj.kind.encode()).hexdigest()[:2], 16) / 255.0
        boxes.append(
            (centre - half, centre + half, bottom, top, np.array(COLOURS[obj.colour]), accent, False)
        )
    if house.stairs is not None:
        x0, y0, x1, y1 = house.stairs
        bottom, top = (0.0, 0.4) if floor == 0 else (-0.3, 0.1)
        boxes.append((np.array([x0, y0]), np.array([x1, y1]), bottom, top, STAIRS_RGB, 0.5, True))
    return boxes


def _draw_boxes(
    house: House,
    floor: int,
    cameras: np.ndarray,
    directions: np.ndarray,
    tangent: np.ndarray,
    depth: np.ndarray,
    rgb: np.ndarray,
) -> np.ndarray:
    """Paint each box where it is nearer than ``depth [V, E*S, R]`` (slab test per ray, painter by depth)."""
    with np.errstate(divide="ignore"):
        inverse = 1.0 / np.where(np.abs(directions) < 1e-12, 1e-12, directions)  # [R, 2]
    for low, high, bottom, top, colour, accent, striped in _boxes(house, floor):
        t0 = (low[None, None, :] - cameras[:, None, :]) * inverse[None, :, :]  # [V, R, 2]
        t1 = (high[None, None, :] - cameras[:, None, :]) * inverse[None, :, :]
        near = np.minimum(t0, t1).max(axis=-1)  # [V, R]
        far = np.maximum(t0, t1).min(axis=-1)
        v_hit, r_hit = np.nonzero((near > 0.05) & (near <= far))  # only the rays that meet the box
        if len(v_hit) == 0:
            continue
        distance = near[v_hit, r_hit]  # [n]
        z = CAMERA_HEIGHT + distance[:, None] * tangent[None, :]  # [n, E*S]
        old_depth = depth[v_hit, :, r_hit]  # [n, E*S]
        covers = (z >= bottom) & (z <= top) & (distance[:, None] < old_depth)
        if not covers.any():
            continue
        if striped:
            factor = np.where((np.floor(z / 0.1) % 2) == 0, 1.0, 0.5)
            paint = colour * factor[..., None]  # [n, E*S, 3]
        else:
            band = (z - bottom) / max(top - bottom, 1e-6) > 0.8  # top fifth in a kind-specific grey
            paint = np.where(band[..., None], np.full(3, accent), colour)
        paint = paint * _shade(distance)[:, None, None]
        rgb[v_hit, :, r_hit] = np.where(covers[..., None], paint, rgb[v_hit, :, r_hit])
        depth[v_hit, :, r_hit] = np.where(covers, distance[:, None], old_depth)
    return rgb


def panorama(images: np.ndarray) -> np.ndarray:
    """``uint8 [S, 12 * S, 3]``: the 12 level views (elevation 0) of one viewpoint's ``[36, S, S, 3]`` side by
    side, heading 0 first."""
    return np.concatenate(list(images[HEADINGS : 2 * HEADINGS]), axis=1)


__all__ = ["FLOOR_HEIGHT", "KIND_STYLES", "OBJECT_SHAPES", "panorama", "render_house", "view_angles"]
