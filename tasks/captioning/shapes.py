"""The built-in ``shapes`` caption dataset: procedural scenes of coloured shapes with five captions each.

Each image shows one to three non-overlapping objects on a plain neutral background. An object has a
colour (red, green, blue, yellow, purple, orange), a shape (circle, square, triangle, star, cross,
diamond), a size (small or large: large objects are about twice as wide) and a position. Five reference
captions per image come from several sentence families (enumeration, counting, relative position,
absolute position, size comparison; see ``docs/datasets.md``), all true for the image, so a captioner
has to look at the picture to name colours, shapes, counts, sizes and positions. The layout is the
Karpathy split JSON (Karpathy & Fei-Fei 2015, *Deep Visual-Semantic Alignments for Generating Image
Descriptions*), so the same reader serves ``shapes`` and COCO.

Generation is deterministic: image ``i`` of seed ``s`` depends only on ``(s, i)``, and the same
parameters give byte-identical JSON and PNG files. :func:`ensure_shapes` generates once into a cache
directory, atomically, so concurrent processes (DDP ranks) can call it safely.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vltk.data.cache import default_cache_dir
from vltk.data.generate_once import generate_once, params_digest
from vltk.data.shape_scenes import (
    BACKGROUNDS,
    COUNT_WORDS,
    PLURALS,
    RELATION_WORDS,
    SIZE_WORDS,
    ShapeObject,
    _sample_scene,
    draw_scene,
    position_phrase,
    position_zone,
    relations,
)
from vltk.errors import ConfigError
from vltk.text.vocab import tokenize

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "v3"
CAPTIONS_PER_IMAGE = 5

_INTROS = ("", "there is ", "a picture of ", "an image of ", "this image shows ", "the image contains ",
           "we can see ")  # fmt: skip


_CANONICAL_INTROS = ("", "", "there is ")


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def canonical_description(objects: Sequence[ShapeObject]) -> str:
    """Every object with its size, colour and shape, named from left to right ("a small red circle and
    a large blue square"); one reference of every image starts from this."""
    ordered = sorted(objects, key=lambda o: o.x)
    return _join([_article(f"{o.size} {o.colour} {o.shape}") for o in ordered])


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


class _Captioner:
    """Sentence families for one scene; every method returns a caption that is true for it."""

    def __init__(self, rng: np.random.Generator, objects: list[ShapeObject], image_size: int) -> None:
        self.rng, self.objects, self.image_size = rng, objects, image_size

    def pick(self, options: tuple[str, ...] | list[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def noun(self, obj: ShapeObject, size: bool | None = None) -> str:
        with_size = self.rng.random() < 0.6 if size is None else size
        words = [self.pick(SIZE_WORDS[obj.size])] if with_size else []
        return " ".join([*words, obj.colour, obj.shape])

    def np(self, obj: ShapeObject, size: bool | None = None) -> str:
        return _article(self.noun(obj, size))

    def enumeration(self) -> str:
        """The canonical description: every object with its size, named from left to right.

        Every image gets one, so the references share a consensus a model can learn (as most COCO
        references name the main objects); reading objects left to right also tests where they are.
        """
        return self.pick(_CANONICAL_INTROS) + canonical_description(self.objects)

    def counting(self) -> str:
        objects, n = self.objects, len(self.objects)
        if n == 1:
            noun = self.noun(objects[0])
            forms = (f"a single {noun}", f"only one shape, {_article(noun)}", f"just one {noun}",
                     f"one {noun} on its own", f"a lone {noun}")  # fmt: skip
            return self.pick(forms)
        family = self.pick(("total", "colour", "shape"))
        if family == "total":
            obj = objects[int(self.rng.integers(n))]
            forms = (f"{COUNT_WORDS[n]} shapes and one of them is {self.np(obj)}",
                     f"there are {COUNT_WORDS[n]} shapes including {self.np(obj)}",
                     f"{COUNT_WORDS[n]} objects including {self.np(obj)}")  # fmt: skip
            return self.pick(forms)
        groups: dict[str, list[ShapeObject]] = {}
        for i in self.rng.permutation(n):
            obj = objects[i]
            groups.setdefault(obj.colour if family == "colour" else obj.shape, []).append(obj)
        parts = []
        for members in groups.values():
            if len(members) == 1:
                parts.append(self.np(members[0]))
                continue
            words = [COUNT_WORDS[len(members)]]
            if len({m.size for m in members}) == 1 and self.rng.random() < 0.5:
                words.append(self.pick(SIZE_WORDS[members[0].size]))
            # A group shares its key (colour or shape); the other attribute is named only when shared.
            if len({m.colour for m in members}) == 1 and (family == "colour" or self.rng.random() < 0.5):
                words.append(members[0].colour)
            same_shape = len({m.shape for m in members}) == 1
            if same_shape and (family == "shape" or self.rng.random() < 0.5):
                words.append(PLURALS[members[0].shape])
            else:
                words.append(self.pick(("shapes", "objects")))
            parts.append(" ".join(words))
        first_plural = not parts[0].startswith(("a ", "an "))
        return self.pick(("", "there are " if first_plural else "there is ")) + _join(parts)

    def relation(self) -> str | None:
        pairs = [
            (a, b, rel)
            for a in self.objects
            for b in self.objects
            if a is not b and (a.colour, a.shape) != (b.colour, b.shape)
            for rel in relations(a, b)
        ]
        if not pairs:
            return None
        a, b, rel = pairs[int(self.rng.integers(len(pairs)))]
        first, words, second = self.np(a), self.pick(RELATION_WORDS[rel]), self.np(b)
        return self.pick((f"{first} {words} {second}", f"there is {first} {words} {second}",
                          f"{first} is {words} {second}"))  # fmt: skip

    def position(self) -> str | None:
        placed = [(o, position_phrase(*position_zone(o, self.image_size))) for o in self.objects]
        placed = [(o, phrase) for o, phrase in placed if phrase is not None]
        if not placed:
            return None
        obj, phrase = placed[int(self.rng.integers(len(placed)))]
        return self.pick(("", "there is ")) + f"{self.np(obj)} {phrase}"

    def size_comparison(self) -> str | None:
        large = [o for o in self.objects if o.size == "large"]
        pairs = [(a, b) for a in large for b in self.objects if b.size == "small"
                 and (a.colour, a.shape) != (b.colour, b.shape)]  # fmt: skip
        if not pairs:
            return None
        a, b = pairs[int(self.rng.integers(len(pairs)))]
        forms = [f"{self.np(a, False)} is bigger than {self.np(b, False)}",
                 f"{self.np(b, False)} is smaller than {self.np(a, False)}"]  # fmt: skip
        if len(large) == 1:
            forms.append(f"the largest shape is {self.np(a, False)}")
        return self.pick(forms)


def describe_scene(
    rng: np.random.Generator, objects: list[ShapeObject], image_size: int, count: int = CAPTIONS_PER_IMAGE
) -> list[str]:
    """``count`` different captions for a scene: the canonical enumeration once, then the varied
    families in turn. Two captions that differ only by a leading "there is/are" count as the same."""
    captioner = _Captioner(rng, objects, image_size)
    varied = [captioner.counting, captioner.relation, captioner.position, captioner.size_comparison]
    order = [varied[i] for i in rng.permutation(len(varied))]
    captions = [captioner.enumeration()]
    seen = {_without_intro(captions[0])}
    for attempt in range(200):
        if len(captions) >= count:
            break
        caption = order[attempt % len(order)]()
        if caption is not None and _without_intro(caption) not in seen:
            captions.append(caption)
            seen.add(_without_intro(caption))
    return captions[:count]


def _without_intro(caption: str) -> str:
    for intro in ("there is ", "there are "):
        if caption.startswith(intro):
            return caption[len(intro) :]
    return caption


def _check_params(num_images: int, image_size: int, val_fraction: float, test_fraction: float) -> None:
    if num_images < 1:
        raise ConfigError(f"shapes: num_images must be >= 1, got {num_images}")
    if image_size < 16:
        raise ConfigError(f"shapes: image_size must be >= 16 pixels, got {image_size}")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"shapes: {name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(
            f"shapes: val_fraction + test_fraction must be < 1 (got {val_fraction} + {test_fraction}), "
            "otherwise nothing is left for training"
        )


def generate_shapes(
    out_dir: str | Path,
    *,
    num_images: int = 3000,
    image_size: int = 64,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Path:
    """Write ``images/*.png`` and ``dataset_shapes.json`` (Karpathy layout) into ``out_dir``.

    Every image entry carries an extra ``scene`` key (background and objects) that the captions were
    generated from. The last ``test_fraction`` of the images form the ``test`` split, the
    ``val_fraction`` before them ``val``, the rest ``train``.

    Args:
        out_dir: destination directory (created if needed).
        num_images: number of images.
        image_size: width and height in pixels.
        seed: random seed; image ``i`` depends only on ``(seed, i)``.
        val_fraction: share of images in the ``val`` split.
        test_fraction: share of images in the ``test`` split.

    Returns:
        The path of ``dataset_shapes.json``.
    """
    _check_params(num_images, image_size, val_fraction, test_fraction)
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    num_test = round(num_images * test_fraction)
    num_val = round(num_images * val_fraction)
    num_train = num_images - num_val - num_test
    entries = []
    progress = tqdm(range(num_images), desc="generating shapes", unit="img", disable=num_images < 2000)
    for index in progress:
        rng = np.random.default_rng([seed, index])
        background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
        objects = _sample_scene(rng, image_size)
        jitter = int(rng.integers(-12, 13))
        filename = f"{index:06d}.png"
        draw_scene(objects, background, image_size, colour_jitter=jitter).save(image_dir / filename)
        raws = describe_scene(rng, objects, image_size, CAPTIONS_PER_IMAGE)
        split = "train" if index < num_train else "val" if index < num_train + num_val else "test"
        sentids = list(range(index * CAPTIONS_PER_IMAGE, index * CAPTIONS_PER_IMAGE + len(raws)))
        entries.append(
            {
                "imgid": index,
                "filepath": "images",
                "filename": filename,
                "split": split,
                "sentences": [
                    {"tokens": tokenize(raw), "raw": raw, "imgid": index, "sentid": sentid}
                    for raw, sentid in zip(raws, sentids, strict=True)
                ],
                "sentids": sentids,
                "scene": {"background": list(background), "objects": [asdict(o) for o in objects]},
            }
        )
    params = {
        "num_images": num_images,
        "image_size": image_size,
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "version": GENERATOR_VERSION,
    }
    document = {"images": entries, "dataset": "shapes", "params": params}
    json_path = out_dir / "dataset_shapes.json"
    json_path.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    logger.info("wrote %d shapes images (%d train, %d val, %d test) to %s", num_images, num_train,
                num_val, num_test, out_dir)  # fmt: skip
    return json_path


def shapes_dir_name(
    *, num_images: int, image_size: int, seed: int, val_fraction: float, test_fraction: float
) -> str:
    """``shapes-v1-<hash>``: the cache folder name for a set of generator parameters."""
    params = {
        "num_images": int(num_images),
        "image_size": int(image_size),
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
    }
    return f"shapes-{GENERATOR_VERSION}-{params_digest(params)}"


def ensure_shapes(
    cache_dir: str | Path | None = None,
    *,
    num_images: int = 3000,
    image_size: int = 64,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Path:
    """Generate the shapes dataset on first use and return the path of its JSON; later calls only look.

    The data lands in ``cache_dir / shapes-v1-<hash of the parameters>``. Generation happens in a
    temporary sibling folder that is renamed into place, so a reader never sees a half-written dataset;
    when another process finishes first, its copy is kept and ours is discarded.

    Args:
        cache_dir: parent folder of the cached datasets (``None``: :func:`default_cache_dir`).
        num_images, image_size, seed, val_fraction, test_fraction: see :func:`generate_shapes`.
    """
    _check_params(num_images, image_size, val_fraction, test_fraction)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = shapes_dir_name(
        num_images=num_images,
        image_size=image_size,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )
    final = generate_once(
        root,
        name,
        "dataset_shapes.json",
        lambda work: generate_shapes(
            work,
            num_images=num_images,
            image_size=image_size,
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
        ),
        what="shapes",
    )
    return final / "dataset_shapes.json"
