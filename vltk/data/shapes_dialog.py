"""The built-in ``shapes_dialog`` dataset: ten-round dialogs about procedural scenes of coloured shapes.

A scene holds two to five non-overlapping objects (colour, shape, size, position; drawn with
:mod:`vltk.data.shapes`). Its caption names only *some* of them, each by a short referring expression
("a circle", "a large red square"), so the questions need the image. Ten rounds follow, each of one type
(kept in the extra per-round key ``"type"``): ``count`` ("how many red shapes are there?"), ``colour``,
``shape``, ``position`` ("where is the blue star?"), ``existence`` ("is there a green cross?"), ``size``
and ``coreference`` ("what colour is it?", "is it large?", "and the one left of it?") about the object
named last, in the caption or in an earlier question or answer: those need the history *and* the image.

Every round has 100 candidate answers: the right one, its paraphrases ("yes there is" / "yes", "2" /
"two", "red" / "it is red"), near misses of the same kind (other colours, counts, descriptions that change
one attribute) and random answers of the dataset. Dense relevance (for NDCG) marks one round per dialog, as
in VisDial val: 1.0 for the answer and its paraphrases, 0.5 for a partly right one (an object description
with two of three attributes right, a position on the right side but the wrong height), 0 otherwise. The
layout is VisDial v1.0 (Das et al. 2017, *Visual Dialog*), so :mod:`vltk.data.visdial` reads it::

    visdial_1.0_{split}.json                       the dialogs, questions and answers
    visdial_1.0_{split}_dense_annotations.json     [{"image_id", "round_id" (1-based), "gt_relevance"}]
    images/ShapesDialog_{split}_{image_id:012d}.png

Generation is deterministic: dialog ``i`` of seed ``s`` depends only on ``(s, i)`` and the same parameters
give byte-identical files. :func:`ensure_shapes_dialog` generates once into a cache directory, atomically.
See ``docs/dialog.md`` for examples.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vltk.data.shapes import (
    BACKGROUNDS,
    COLOURS,
    PLURALS,
    SHAPES,
    ShapeObject,
    _place,
    default_cache_dir,
    draw_scene,
    position_phrase,
    position_zone,
    relations,
)
from vltk.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "v1"
NUM_ROUNDS = 10
NUM_OPTIONS = 100
SPLITS = ("train", "val", "test")
ROUND_TYPES = ("count", "colour", "shape", "position", "existence", "size", "coreference")
COUNT_WORDS = ("zero", "one", "two", "three", "four", "five")
COREFERENCE_SHARE = 0.3  # probability that a round refers back to the object in focus
NEAR_MISSES = 40  # options of the right kind before random ones fill the 100

# ---- answers and their meanings -----------------------------------------------------------------------
# A meaning is a tuple whose first item is its kind: ("yesno", bool), ("count", n), ("colour", c),
# ("shape", s), ("size", s), ("position", vertical, horizontal), ("object", size, colour, shape).

Meaning = tuple


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


# ---- scenes -------------------------------------------------------------------------------------------


def _sample_scene(rng: np.random.Generator, image_size: int) -> list[ShapeObject]:
    """2-5 objects, no two alike in (size, colour, shape), so every object can be referred to."""
    count = int(rng.integers(2, 6))
    gap = max(1.0, 0.03 * image_size)
    objects: list[ShapeObject] = []
    for _ in range(40):
        if len(objects) == count:
            break
        colour = str(rng.choice(list(COLOURS)))
        shape = str(rng.choice(SHAPES))
        if objects and rng.random() < 0.3:  # shared colours and shapes make counting and reference harder
            colour = objects[int(rng.integers(len(objects)))].colour
        if objects and rng.random() < 0.3:
            shape = objects[int(rng.integers(len(objects)))].shape
        size = "large" if rng.random() < 0.45 else "small"
        if any((o.size, o.colour, o.shape) == (size, colour, shape) for o in objects):
            continue
        placed = _place(rng, objects, size, image_size, gap)
        if placed is None and size == "large":
            size = "small"
            if any((o.size, o.colour, o.shape) == (size, colour, shape) for o in objects):
                continue
            placed = _place(rng, objects, size, image_size, gap)
        if placed is not None:
            objects.append(
                ShapeObject(shape=shape, colour=colour, size=size, x=placed[0], y=placed[1], r=placed[2])
            )
    return objects


def _zone(obj: ShapeObject, image_size: int) -> tuple[str | None, str | None]:
    return _canonical_zone(position_zone(obj, image_size))


def _meaning_of(obj: ShapeObject) -> Meaning:
    return ("object", obj.size, obj.colour, obj.shape)


# ---- dialogs ------------------------------------------------------------------------------------------


@dataclass
class _Round:
    question: str
    answer: str
    meaning: Meaning
    type: str


@dataclass
class _Dialog:
    """One image's caption and rounds, before the candidate answers are drawn."""

    caption: str
    rounds: list[_Round] = field(default_factory=list)


class _Dialogue:
    """Questions about one scene; every method returns a round that is true for it, or ``None``."""

    def __init__(self, rng: np.random.Generator, objects: list[ShapeObject], image_size: int) -> None:
        self.rng, self.objects, self.image_size = rng, objects, image_size
        self.focus: ShapeObject | None = None

    def pick(self, items: list | tuple):
        return items[int(self.rng.integers(len(items)))]

    def refer(self, obj: ShapeObject) -> str | None:
        """A short expression that picks out ``obj`` alone ("circle", "red circle", "large red circle")."""
        candidates = [
            (obj.shape, lambda o: o.shape == obj.shape),
            (f"{obj.colour} {obj.shape}", lambda o: (o.colour, o.shape) == (obj.colour, obj.shape)),
            (f"{obj.size} {obj.colour} {obj.shape}", lambda o: o == obj),
        ]
        unique = [words for words, same in candidates if sum(map(same, self.objects)) == 1]
        return unique[0] if unique and self.rng.random() < 0.6 else (self.pick(unique) if unique else None)

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

    def _about(self, obj: ShapeObject, question: str, meaning: Meaning, kind: str, form: int = 0) -> _Round:
        self.focus = obj
        return _Round(question, surface_forms(meaning)[form], meaning, kind)

    def count(self) -> _Round | None:
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
        return _Round(question, surface_forms(("count", n))[0], ("count", n), "count")

    def colour(self) -> _Round | None:
        obj = self.pick(self.objects)
        words = self.refer(obj)
        if words is None or obj.colour in words:
            return None
        return self._about(obj, f"what colour is the {words}?", ("colour", obj.colour), "colour")

    def shape(self) -> _Round | None:
        obj = self.pick(self.objects)
        if sum(o.colour == obj.colour for o in self.objects) != 1:
            return None
        return self._about(obj, f"what shape is the {obj.colour} one?", ("shape", obj.shape), "shape")

    def position(self) -> _Round | None:
        obj = self.pick(self.objects)
        words, zone = self.refer(obj), _zone(obj, self.image_size)
        if words is None or zone == (None, None):
            return None
        return self._about(obj, f"where is the {words}?", ("position", *zone), "position")

    def existence(self) -> _Round | None:
        if self.rng.random() < 0.5:
            obj = self.pick(self.objects)
            question = f"is there {_article(f'{obj.colour} {obj.shape}')}?"
            if sum((o.colour, o.shape) == (obj.colour, obj.shape) for o in self.objects) > 1:
                return _Round(question, "yes there is", ("yesno", True), "existence")  # no single "it"
            return self._about(obj, question, ("yesno", True), "existence", form=2)
        colour, shape = self.pick(list(COLOURS)), self.pick(SHAPES)
        if any((o.colour, o.shape) == (colour, shape) for o in self.objects):
            return None
        question = f"is there {_article(f'{colour} {shape}')}?"
        return _Round(question, "no there is not", ("yesno", False), "existence")

    def size(self) -> _Round | None:
        obj = self.pick(self.objects)
        words = self.refer(obj)
        if words is None or obj.size in words:
            return None
        if self.rng.random() < 0.5:
            return self._about(obj, f"what size is the {words}?", ("size", obj.size), "size")
        asked = self.pick(("large", "small"))
        return self._about(obj, f"is the {words} {asked}?", ("yesno", obj.size == asked), "size", form=1)

    def coreference(self) -> _Round | None:
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

    def rounds(self, count: int = NUM_ROUNDS) -> list[_Round]:
        families: list[Callable[[], _Round | None]] = [
            self.count,
            self.colour,
            self.shape,
            self.position,
            self.existence,
            self.size,
        ]
        rounds: list[_Round] = []
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
                or _Round(
                    "how many shapes are there?",
                    str(len(self.objects)),
                    ("count", len(self.objects)),
                    "count",
                )
            )
        return rounds


def _options(
    rng: np.random.Generator, right: _Round, universe: dict[str, Meaning], pool: list[str]
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


# ---- writing ------------------------------------------------------------------------------------------


def image_file_name(split: str, image_id: int) -> str:
    """``ShapesDialog_{split}_{image_id:012d}.png``: the VisDial naming (id zero-padded at the end)."""
    return f"ShapesDialog_{split}_{image_id:012d}.png"


def split_sizes(num_dialogs: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    num_test = round(num_dialogs * test_fraction)
    num_val = round(num_dialogs * val_fraction)
    return {"train": num_dialogs - num_val - num_test, "val": num_val, "test": num_test}


def _check_params(num_dialogs: int, image_size: int, val_fraction: float, test_fraction: float) -> None:
    if num_dialogs < 1:
        raise ConfigError(f"shapes_dialog: num_dialogs must be >= 1, got {num_dialogs}")
    if image_size < 32:
        raise ConfigError(f"shapes_dialog: image_size must be >= 32 pixels, got {image_size}")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"shapes_dialog: {name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(
            f"shapes_dialog: val_fraction + test_fraction must be < 1 (got {val_fraction} + "
            f"{test_fraction}), otherwise nothing is left for training"
        )


def _dump(value: object, path: Path) -> None:
    path.write_text(json.dumps(value, separators=(",", ":")), encoding="utf-8")


def generate_shapes_dialog(
    out_dir: str | Path,
    *,
    num_dialogs: int = 4000,
    image_size: int = 64,
    seed: int = 0,
    val_fraction: float = 0.125,
    test_fraction: float = 0.125,
) -> Path:
    """Write the images, the VisDial v1.0 JSON and the dense annotations of every split into ``out_dir``.

    The first dialogs form ``train``, then ``val``, then ``test`` (3000 / 500 / 500 by default). Image ids
    are the dialog's index (unique across splits).

    Args:
        out_dir: destination directory (created if needed).
        num_dialogs: dialogs (= images) in all splits together.
        image_size: width and height of the PNG images in pixels.
        seed: random seed; dialog ``i`` depends only on ``(seed, i)``.
        val_fraction: share of dialogs in ``val``.
        test_fraction: share of dialogs in ``test``.

    Returns:
        ``out_dir``.
    """
    _check_params(num_dialogs, image_size, val_fraction, test_fraction)
    out = Path(out_dir)
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    sizes = split_sizes(num_dialogs, val_fraction, test_fraction)
    universe = answer_universe()
    pool = list(universe)
    bounds = np.cumsum([sizes[s] for s in SPLITS])
    documents = {s: {"questions": {}, "answers": {}, "dialogs": [], "dense": []} for s in SPLITS}
    progress = tqdm(
        range(num_dialogs), desc="generating shapes_dialog", unit="dialog", disable=num_dialogs < 500
    )
    for index in progress:
        split = SPLITS[int(np.searchsorted(bounds, index, side="right"))]
        rng = np.random.default_rng([seed, index])
        objects: list[ShapeObject] = []
        while len(objects) < 2:
            objects = _sample_scene(rng, image_size)
        background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
        jitter = int(rng.integers(-12, 13))
        draw_scene(objects, background, image_size, colour_jitter=jitter).save(
            image_dir / image_file_name(split, index)
        )
        talk = _Dialogue(rng, objects, image_size)
        dialog = _Dialog(caption=talk.caption())
        dialog.rounds = talk.rounds()
        document = documents[split]
        questions, answers = document["questions"], document["answers"]
        entries = []
        dense_round = int(rng.integers(NUM_ROUNDS))
        for number, made in enumerate(dialog.rounds):
            options = _options(rng, made, universe, pool)
            ids = [answers.setdefault(option, len(answers)) for option in options]
            entries.append(
                {
                    "question": questions.setdefault(made.question, len(questions)),
                    "answer": answers.setdefault(made.answer, len(answers)),
                    "answer_options": ids,
                    "gt_index": options.index(made.answer),
                    "type": made.type,
                }
            )
            if number == dense_round:
                scores = [relevance(made.meaning, universe[option]) for option in options]
                document["dense"].append({"image_id": index, "round_id": number + 1, "gt_relevance": scores})
        document["dialogs"].append({"image_id": index, "caption": dialog.caption, "dialog": entries})
    for split in SPLITS:
        document = documents[split]
        data = {
            "questions": list(document["questions"]),
            "answers": list(document["answers"]),
            "dialogs": document["dialogs"],
        }
        _dump({"version": "1.0", "split": split, "data": data}, out / f"visdial_1.0_{split}.json")
        _dump(document["dense"], out / f"visdial_1.0_{split}_dense_annotations.json")
    params = {
        "num_dialogs": num_dialogs,
        "image_size": image_size,
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "version": GENERATOR_VERSION,
    }
    (out / "params.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    logger.info(
        "wrote %d shapes_dialog dialogs (%s) to %s",
        num_dialogs,
        ", ".join(f"{s}={n}" for s, n in sizes.items()),
        out,
    )
    return out


def split_paths(root: str | Path, split: str) -> tuple[Path, Path]:
    """``(dialogs JSON, dense annotations JSON)`` of ``split`` in a generated folder."""
    root = Path(root)
    return root / f"visdial_1.0_{split}.json", root / f"visdial_1.0_{split}_dense_annotations.json"


def shapes_dialog_dir_name(**params: float) -> str:
    """``shapes_dialog-v1-<hash>``: the cache folder name for a set of generator parameters."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return f"shapes_dialog-{GENERATOR_VERSION}-{digest}"


def ensure_shapes_dialog(
    cache_dir: str | Path | None = None,
    *,
    num_dialogs: int = 4000,
    image_size: int = 64,
    seed: int = 0,
    val_fraction: float = 0.125,
    test_fraction: float = 0.125,
) -> Path:
    """Generate the dataset on first use and return its folder; later calls only look.

    The data lands in ``cache_dir / shapes_dialog-v1-<hash of the parameters>``, generated in a temporary
    sibling folder renamed into place, so a reader never sees a half-written dataset; when another process
    (DDP rank) finishes first, its copy is kept and ours discarded.

    Args:
        cache_dir: parent folder of the cached datasets (``None``: ``default_cache_dir()`` of shapes).
        num_dialogs, image_size, seed, val_fraction, test_fraction: see :func:`generate_shapes_dialog`.
    """
    _check_params(num_dialogs, image_size, val_fraction, test_fraction)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = shapes_dialog_dir_name(
        num_dialogs=int(num_dialogs),
        image_size=int(image_size),
        seed=int(seed),
        val_fraction=float(val_fraction),
        test_fraction=float(test_fraction),
    )
    final = root / name
    marker = final / "params.json"  # written last
    if marker.is_file():
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{name}-tmp-", dir=root))
    except OSError as error:
        raise DataError(f"{root}: cannot create the shapes_dialog cache directory ({error})") from error
    try:
        logger.info("generating the shapes_dialog dataset (%d dialogs) into %s", num_dialogs, final)
        generate_shapes_dialog(
            work,
            num_dialogs=num_dialogs,
            image_size=image_size,
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
        )
        if final.exists() and not marker.is_file():
            logger.warning("removing incomplete shapes_dialog folder %s", final)
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(work, final)
        except OSError:
            if not marker.is_file():
                raise
            logger.info("another process generated %s first; keeping its copy", final)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return final
