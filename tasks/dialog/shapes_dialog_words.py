"""The words of ``shapes_dialog`` (:mod:`vltk.tasks.dialog.shapes_dialog`): captions, questions, answers,
options.

Every answer string has a *meaning*, a tuple whose first item is its kind: ``("yesno", bool)``,
``("count", n)``, ``("colour", c)``, ``("shape", s)``, ``("size", s)``, ``("position", vertical,
horizontal)``, ``("object", size, colour, shape)``. A meaning has a few surface forms, all fully right
(:func:`surface_forms`: "yes" / "yes it is" / "yes there is", "2" / "two", "red" / "it is red"); the form a
right answer takes is fixed by the question's template ("is there ...?" -> "yes there is", "is it ...?" ->
"yes" or "yes it is"), the others appear among the candidates. :func:`relevance` grades one meaning against
another for the dense annotations (1, 0.5 for partly right, 0).

:class:`Dialogue` asks the questions of one scene and keeps the object in *focus* (named last, in the
caption, a question or an answer) that the coreference questions ("what colour is it?", "and the one left
of it?") are about.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vltk.data.shape_scenes import (
    COLOURS,
    PLURALS,
    SHAPES,
    ShapeObject,
    position_phrase,
    position_zone,
    relations,
)

NUM_ROUNDS = 10
NUM_OPTIONS = 100
ROUND_TYPES = ("count", "colour", "shape", "position", "existence", "size", "coreference")
COUNT_WORDS = ("zero", "one", "two", "three", "four", "five")
COREFERENCE_SHARE = 0.3  # probability that a round refers back to the object in focus
NEAR_MISSES = 40  # options of the right kind before random ones fill the 100

# ---- answers and their meanings -----------------------------------------------------------------------

Meaning = tuple  # ("colour", "red"), ("object", "small", "red", "circle"): see the module docstring


def _positions() -> list[tuple[str | None, str | None]]:
    zones = [(v, h) for v in ("top", "centre", "bottom", None) for h in ("left", "centre", "right", None)]
    return [z for z in zones if position_phrase(*z) is not None and _canonical_zone(z) == z]


def _canonical_zone(zone: tuple[str | None, str | None]) -> tuple[str | None, str | None]:
    """The zone its phrase names: ``("centre", "left")`` reads "on the left", i.e. ``(None, "left")``."""
    vertical, horizontal = zone
    if horizontal in ("left", "right"):
        return (vertical if vertical in ("top", "bottom") else None, horizontal)
    if vertical in ("top", "bottom"):
        return (vertical, None)
    return zone if zone == ("centre", "centre") else (None, None)


def surface_forms(meaning: Meaning) -> list[str]:
    """Every string that states ``meaning``; all of them are fully right (relevance 1)."""
    kind = meaning[0]
    if kind == "yesno":
        return (
            ["yes", "yes it is", "yes there is"] if meaning[1] else ["no", "no it is not", "no there is not"]
        )
    if kind == "count":
        return [str(meaning[1]), COUNT_WORDS[meaning[1]]]
    if kind in ("colour", "size"):
        return [meaning[1], f"it is {meaning[1]}"]
    if kind == "shape":
        return [meaning[1], f"it is a {meaning[1]}"]
    if kind == "position":
        phrase = position_phrase(meaning[1], meaning[2])
        return [phrase, f"it is {phrase}"]
    if kind == "object":
        description = _article(f"{meaning[1]} {meaning[2]} {meaning[3]}")
        return [description, f"it is {description}"]
    raise ValueError(f"unknown answer kind {kind!r}")


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def answer_universe() -> dict[str, Meaning]:
    """Every answer string the generator can produce, with its meaning (insertion order is fixed)."""
    meanings: list[Meaning] = [("yesno", True), ("yesno", False)]
    meanings += [("count", n) for n in range(len(COUNT_WORDS))]
    meanings += [("colour", c) for c in COLOURS] + [("shape", s) for s in SHAPES]
    meanings += [("size", s) for s in ("small", "large")]
    meanings += [("position", v, h) for v, h in _positions()]
    meanings += [("object", z, c, s) for z in ("small", "large") for c in COLOURS for s in SHAPES]
    return {form: meaning for meaning in meanings for form in surface_forms(meaning)}


def relevance(right: Meaning, other: Meaning) -> float:
    """Dense relevance of an answer meaning ``other`` when ``right`` is the truth: 1 (same meaning), 0.5
    (partly right: an object with two of its three attributes right; a position right on one axis that the
    right answer names, wrong or unnamed on the other), else 0."""
    if right == other:
        return 1.0
    if right[0] != other[0]:
        return 0.0
    if right[0] == "object":
        return 0.5 if sum(a == b for a, b in zip(right[1:], other[1:], strict=True)) == 2 else 0.0
    if right[0] == "position":
        shared = [a == b and a is not None for a, b in zip(right[1:], other[1:], strict=True)]
        return 0.5 if any(shared) else 0.0
    return 0.0


def _zone(obj: ShapeObject, image_size: int) -> tuple[str | None, str | None]:
    return _canonical_zone(position_zone(obj, image_size))


def _meaning_of(obj: ShapeObject) -> Meaning:
    return ("object", obj.size, obj.colour, obj.shape)


# ---- dialogs ------------------------------------------------------------------------------------------


@dataclass
class Round:
    """A generated question with its right answer, the answer's meaning and the question's type."""

    question: str
    answer: str
    meaning: Meaning
    type: str


class Dialogue:
    """Questions about one scene; every method returns a round that is true for it, or ``None``."""

    def __init__(self, rng: np.random.Generator, objects: list[ShapeObject], image_size: int) -> None:
        self.rng, self.objects, self.image_size = rng, objects, image_size
        self.focus: ShapeObject | None = None

    def pick(self, items: list | tuple):
        return items[int(self.rng.integers(len(items)))]

    def refer(self, obj: ShapeObject, without: str | None = None) -> str | None:
        """A short expression that picks out ``obj`` alone ("circle", "small circle", "red circle", "large
        red circle"), not naming the attribute ``without`` (the one a question asks about)."""
        candidates = [
            (obj.shape, lambda o: o.shape == obj.shape, ()),
            (f"{obj.size} {obj.shape}", lambda o: (o.size, o.shape) == (obj.size, obj.shape), ("size",)),
            (
                f"{obj.colour} {obj.shape}",
                lambda o: (o.colour, o.shape) == (obj.colour, obj.shape),
                ("colour",),
            ),
            (f"{obj.size} {obj.colour} {obj.shape}", lambda o: o == obj, ("size", "colour")),
        ]
        unique = [
            words
            for words, same, names in candidates
            if without not in names and sum(map(same, self.objects)) == 1
        ]
        if not unique:
            return None
        return unique[0] if self.rng.random() < 0.6 else self.pick(unique)

    def caption(self) -> str:
        """Names 1 to n-1 objects (never all): the rest is for the questions to find."""
        count = int(self.rng.integers(1, min(3, len(self.objects) - 1) + 1))
        chosen = [self.objects[i] for i in sorted(self.rng.permutation(len(self.objects))[:count])]
        named = [(o, self.refer(o)) for o in chosen]
        named = [(o, words) for o, words in named if words is not None]
        if not named:
            return self.pick(("a picture of some shapes", "an image with a few shapes"))
        self.focus = named[-1][0]
        intro = self.pick(("", "there is ", "a picture of ", "an image with ", "we can see "))
        parts = [_article(words) for _, words in named]
        text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        return intro + text + self.pick(("", " among other shapes", " and more"))

    def _about(self, obj: ShapeObject, question: str, meaning: Meaning, kind: str, form: int = 0) -> Round:
        self.focus = obj
        return Round(question, surface_forms(meaning)[form], meaning, kind)

    def count(self) -> Round | None:
        family = self.pick(("all", "colour", "shape"))
        if family == "all":
            n = len(self.objects)
            question = self.pick(("how many shapes are there?", "how many objects are in the image?"))
        elif family == "colour":
            colour = self.pick(list(COLOURS))
            n = sum(o.colour == colour for o in self.objects)
            question = f"how many {colour} shapes are there?"
        else:
            shape = self.pick(SHAPES)
            n = sum(o.shape == shape for o in self.objects)
            question = f"how many {PLURALS[shape]} are there?"
        return Round(question, surface_forms(("count", n))[0], ("count", n), "count")

    def colour(self) -> Round | None:
        obj = self.pick(self.objects)
        words = self.refer(obj, without="colour")
        if words is None:
            return None
        return self._about(obj, f"what colour is the {words}?", ("colour", obj.colour), "colour")

    def shape(self) -> Round | None:
        obj = self.pick(self.objects)
        if sum(o.colour == obj.colour for o in self.objects) != 1:
            return None
        return self._about(obj, f"what shape is the {obj.colour} one?", ("shape", obj.shape), "shape")

    def position(self) -> Round | None:
        obj = self.pick(self.objects)
        words, zone = self.refer(obj), _zone(obj, self.image_size)
        if words is None or zone == (None, None):
            return None
        return self._about(obj, f"where is the {words}?", ("position", *zone), "position")

    def existence(self) -> Round | None:
        if self.rng.random() < 0.5:
            obj = self.pick(self.objects)
            question = f"is there {_article(f'{obj.colour} {obj.shape}')}?"
            if sum((o.colour, o.shape) == (obj.colour, obj.shape) for o in self.objects) > 1:
                return Round(question, "yes there is", ("yesno", True), "existence")  # no single "it"
            return self._about(obj, question, ("yesno", True), "existence", form=2)
        colour, shape = self.pick(list(COLOURS)), self.pick(SHAPES)
        if any((o.colour, o.shape) == (colour, shape) for o in self.objects):
            return None
        question = f"is there {_article(f'{colour} {shape}')}?"
        return Round(question, "no there is not", ("yesno", False), "existence")

    def size(self) -> Round | None:
        obj = self.pick(self.objects)
        words = self.refer(obj, without="size")
        if words is None:
            return None
        if self.rng.random() < 0.5:
            return self._about(obj, f"what size is the {words}?", ("size", obj.size), "size")
        asked = self.pick(("large", "small"))
        return self._about(obj, f"is the {words} {asked}?", ("yesno", obj.size == asked), "size", form=1)

    def coreference(self) -> Round | None:
        obj = self.focus
        if obj is None:
            return None
        family = self.pick(("colour", "shape", "size", "is_colour", "where", "neighbour", "neighbour"))
        if family == "colour":
            return self._about(obj, "what colour is it?", ("colour", obj.colour), "coreference")
        if family == "shape":
            return self._about(obj, "what shape is it?", ("shape", obj.shape), "coreference")
        if family == "size":
            asked = self.pick(("large", "small"))
            return self._about(obj, f"is it {asked}?", ("yesno", obj.size == asked), "coreference", form=1)
        if family == "is_colour":
            asked = obj.colour if self.rng.random() < 0.5 else self.pick(list(COLOURS))
            return self._about(obj, f"is it {asked}?", ("yesno", obj.colour == asked), "coreference")
        if family == "where":
            zone = _zone(obj, self.image_size)
            if zone == (None, None):
                return None
            return self._about(obj, "where is it?", ("position", *zone), "coreference")
        relation = self.pick(("left", "right", "above", "below"))
        others = [o for o in self.objects if o is not obj and relation in relations(o, obj)]
        if len(others) != 1:
            return None
        words = {"left": "left of", "right": "right of", "above": "above", "below": "below"}[relation]
        question = self.pick((f"and the one {words} it?", f"what is {words} it?"))
        return self._about(others[0], question, _meaning_of(others[0]), "coreference")

    def rounds(self, count: int = NUM_ROUNDS) -> list[Round]:
        families: list[Callable[[], Round | None]] = [
            self.count,
            self.colour,
            self.shape,
            self.position,
            self.existence,
            self.size,
        ]
        rounds: list[Round] = []
        asked: set[tuple[str, ShapeObject | None]] = set()
        for _ in range(400):
            if len(rounds) == count:
                break
            focus = self.focus
            use_history = focus is not None and self.rng.random() < COREFERENCE_SHARE
            made = self.coreference() if use_history else self.pick(families)()
            # a coreference question may come back once "it" is another object
            key = (made.question, focus if use_history else None) if made is not None else None
            if made is None or key in asked:
                self.focus = focus
                continue
            rounds.append(made)
            asked.add(key)
        while len(rounds) < count:  # practically never: counting questions always exist
            rounds.append(
                self.count()
                or Round(
                    "how many shapes are there?",
                    str(len(self.objects)),
                    ("count", len(self.objects)),
                    "count",
                )
            )
        return rounds


def draw_options(
    rng: np.random.Generator, right: Round, universe: dict[str, Meaning], pool: list[str]
) -> list[str]:
    """100 distinct candidates: the answer and its paraphrases, near misses of its kind, random answers."""
    chosen = list(dict.fromkeys(surface_forms(right.meaning)))
    same_kind = [s for s in pool if universe[s][0] == right.meaning[0] and s not in chosen]
    for index in rng.permutation(len(same_kind)):
        if len(chosen) >= NEAR_MISSES:
            break
        chosen.append(same_kind[index])
    taken = set(chosen)
    for index in rng.permutation(len(pool)):
        if len(chosen) == NUM_OPTIONS:
            break
        if pool[index] not in taken:
            chosen.append(pool[index])
            taken.add(pool[index])
    return [chosen[i] for i in rng.permutation(len(chosen))]
