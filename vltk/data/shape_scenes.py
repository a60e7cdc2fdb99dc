"""Procedural scenes of coloured shapes and the words for them, shared by the built-in ``shapes`` captions
(:mod:`vltk.tasks.captioning.shapes`) and ``shapes_dialog`` (:mod:`vltk.tasks.dialog.shapes_dialog`).

A scene is one to three non-overlapping :class:`ShapeObject` s on a plain neutral background: a colour,
a shape, a size (small or large: large objects are about twice as wide) and a position. This module samples
scenes, draws them, and names what is true of them (counts, plurals, sizes, relative and absolute
positions); the datasets build their sentences from these words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "green": (35, 165, 55),
    "blue": (40, 70, 225),
    "yellow": (240, 215, 25),
    "purple": (140, 45, 175),
    "orange": (245, 135, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond")
SIZES: dict[str, tuple[float, float]] = {"small": (0.08, 0.095), "large": (0.165, 0.19)}  # half-width / S
BACKGROUNDS: tuple[tuple[int, int, int], ...] = ((250, 250, 250), (225, 225, 225), (70, 70, 70), (30, 30, 30))
_COUNT_PROBS = (0.25, 0.4, 0.35)  # one, two, three objects


@dataclass(frozen=True)
class ShapeObject:
    """One object of a scene, in pixel units of the output image.

    Attributes:
        shape: one of :data:`SHAPES`.
        colour: one of :data:`COLOURS`.
        size: ``"small"`` or ``"large"``.
        x: centre column.
        y: centre row (grows downwards).
        r: half-width of the object's square bounding box.
    """

    shape: str
    colour: str
    size: str
    x: float
    y: float
    r: float


def _sample_scene(rng: np.random.Generator, image_size: int) -> list[ShapeObject]:
    count = int(rng.choice(3, p=_COUNT_PROBS)) + 1
    gap = max(1.0, 0.03 * image_size)
    objects: list[ShapeObject] = []
    for index in range(count):
        colour = str(rng.choice(list(COLOURS)))
        shape = str(rng.choice(SHAPES))
        # Shared colours or shapes make the counting captions ("two red shapes") common.
        if index > 0 and rng.random() < 0.35:
            colour = objects[int(rng.integers(len(objects)))].colour
        if index > 0 and rng.random() < 0.35:
            shape = objects[int(rng.integers(len(objects)))].shape
        size = "large" if rng.random() < 0.5 else "small"
        placed = _place(rng, objects, size, image_size, gap)
        if placed is None and size == "large":
            size = "small"
            placed = _place(rng, objects, size, image_size, gap)
        if placed is None:
            continue
        x, y, r = placed
        objects.append(ShapeObject(shape=shape, colour=colour, size=size, x=x, y=y, r=r))
    return objects


def _place(
    rng: np.random.Generator, objects: list[ShapeObject], size: str, image_size: int, gap: float
) -> tuple[float, float, float] | None:
    low, high = SIZES[size]
    r = round(float(rng.uniform(low, high)) * image_size, 2)
    for _ in range(100):
        x = round(float(rng.uniform(r + 1, image_size - r - 1)), 2)
        y = round(float(rng.uniform(r + 1, image_size - r - 1)), 2)
        if all(abs(x - o.x) >= r + o.r + gap or abs(y - o.y) >= r + o.r + gap for o in objects):
            return x, y, r
    return None


def _outline(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    """Polygon vertices of ``shape`` inside the box ``[x - r, x + r] x [y - r, y + r]``."""
    if shape == "square":
        return [(x - r, y - r), (x + r, y - r), (x + r, y + r), (x - r, y + r)]
    if shape == "triangle":
        return [(x, y - r), (x + r, y + r), (x - r, y + r)]
    if shape == "diamond":
        return [(x, y - r), (x + 0.8 * r, y), (x, y + r), (x - 0.8 * r, y)]
    if shape == "cross":
        w = 0.36 * r
        return [
            (x - w, y - r), (x + w, y - r), (x + w, y - w), (x + r, y - w), (x + r, y + w), (x + w, y + w),
            (x + w, y + r), (x - w, y + r), (x - w, y + w), (x - r, y + w), (x - r, y - w), (x - w, y - w),
        ]  # fmt: skip
    if shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else 0.45 * r
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((x + radius * math.cos(angle), y + 0.05 * r + radius * math.sin(angle)))
        return points
    raise ValueError(f"unknown shape {shape!r}")


def draw_scene(
    objects: list[ShapeObject], background: tuple[int, int, int], image_size: int, colour_jitter: int = 0
) -> Image.Image:
    """Render a scene; drawn at up to 4x resolution and box-filtered down for anti-aliased edges.

    Args:
        objects: the scene's objects, in output pixel units.
        background: RGB of the plain background.
        image_size: width and height of the output image.
        colour_jitter: offset added to every channel of every object colour (varies the exact shade).
    """
    factor = 4 if image_size <= 96 else 2 if image_size <= 256 else 1
    canvas = Image.new("RGB", (image_size * factor, image_size * factor), background)
    draw = ImageDraw.Draw(canvas)
    for obj in objects:
        fill = tuple(min(255, max(0, c + colour_jitter)) for c in COLOURS[obj.colour])
        x, y, r = obj.x * factor, obj.y * factor, obj.r * factor
        if obj.shape == "circle":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        else:
            draw.polygon(_outline(obj.shape, x, y, r), fill=fill)
    if factor == 1:
        return canvas
    return canvas.resize((image_size, image_size), Image.Resampling.BOX)


# ---- captions -------------------------------------------------------------------------------------------

COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
PLURALS = {s: s + "es" if s.endswith("s") else s + "s" for s in SHAPES}
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
RELATION_WORDS = {
    "left": ("to the left of", "on the left side of"),
    "right": ("to the right of", "on the right side of"),
    "above": ("above",),
    "below": ("below", "under"),
}


def relations(a: ShapeObject, b: ShapeObject) -> list[str]:
    """Relations of ``a`` to ``b`` that are clearly true: boxes apart on that axis, not a mostly
    perpendicular offset (``"left"`` means ``a`` is to the left of ``b``)."""
    dx, dy = b.x - a.x, b.y - a.y
    found = []
    if abs(dx) >= a.r + b.r and abs(dx) >= 0.5 * abs(dy):
        found.append("left" if dx > 0 else "right")
    if abs(dy) >= a.r + b.r and abs(dy) >= 0.5 * abs(dx):
        found.append("above" if dy > 0 else "below")
    return found


def position_zone(obj: ShapeObject, image_size: int) -> tuple[str | None, str | None]:
    """``(vertical, horizontal)`` zone of an object: top/centre/bottom and left/centre/right, or
    ``None`` on an axis where the centre lies near a zone border (too close to call)."""

    def zone(value: float, low: str, high: str) -> str | None:
        fraction = value / image_size
        if fraction < 0.36:
            return low
        if fraction > 0.64:
            return high
        return "centre" if 0.42 < fraction < 0.58 else None

    return zone(obj.y, "top", "bottom"), zone(obj.x, "left", "right")


def position_phrase(vertical: str | None, horizontal: str | None) -> str | None:
    """Words for a zone (``"in the top left corner"``), or ``None`` when there is nothing clear to say."""
    sides = ("left", "right")
    if vertical in ("top", "bottom") and horizontal in sides:
        return f"in the {vertical} {horizontal} corner"
    if horizontal in sides:
        return f"on the {horizontal}"
    if vertical in ("top", "bottom"):
        return f"at the {vertical}"
    if vertical == "centre" and horizontal == "centre":
        return "in the middle"
    return None
