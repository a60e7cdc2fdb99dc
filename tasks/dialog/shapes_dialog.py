"""The built-in ``shapes_dialog`` dataset: ten-round dialogs about procedural scenes of coloured shapes.

A scene holds two to five non-overlapping objects (colour, shape, size, position; drawn with
:mod:`vltk.tasks.captioning.shapes`). Its caption names only *some* of them, each by a short referring
expression ("a circle", "a large red square"), so the questions need the image. Ten rounds follow, each of one
type (kept in the extra per-round key ``"type"``): ``count`` ("how many red shapes are there?"), ``colour``,
``shape``, ``position`` ("where is the blue star?"), ``existence`` ("is there a green cross?"), ``size`` and
``coreference`` ("what colour is it?", "is it large?", "and the one left of it?") about the object named last,
in the caption or in an earlier question or answer: those need the history *and* the image.

Every round has 100 candidate answers: the right one, its paraphrases ("yes there is" / "yes", "2" /
"two", "red" / "it is red"), near misses of the same kind (other colours, counts, descriptions that change
one attribute) and random answers of the dataset. Dense relevance (for NDCG) marks one round per dialog, as
in VisDial val: 1.0 for the answer and its paraphrases, 0.5 for a partly right one (an object description
with two of three attributes right, a position on the right side but the wrong height), 0 otherwise. The
layout is VisDial v1.0 (Das et al. 2017, *Visual Dialog*), so :mod:`vltk.tasks.dialog.visdial` reads it::

    visdial_1.0_{split}.json                       the dialogs, questions and answers
    visdial_1.0_{split}_dense_annotations.json     [{"image_id", "round_id" (1-based), "gt_relevance"}]
    images/ShapesDialog_{split}_{image_id:012d}.png

The questions, answers, paraphrases and relevance grades live in :mod:`vltk.tasks.dialog.shapes_dialog_words`.
Generation is deterministic: dialog ``i`` of seed ``s`` depends only on ``(s, i)`` and the same parameters
give byte-identical files. :func:`ensure_shapes_dialog` generates once into a cache directory, atomically.
See ``docs/dialog.md`` for examples.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vltk.data.cache import default_cache_dir
from vltk.data.generate_once import generate_once, params_digest
from vltk.data.shape_scenes import BACKGROUNDS, COLOURS, SHAPES, ShapeObject, _place, draw_scene
from vltk.errors import ConfigError
from vltk.tasks.dialog.shapes_dialog_words import (
    NUM_OPTIONS,
    NUM_ROUNDS,
    ROUND_TYPES,
    Dialogue,
    answer_universe,
    draw_options,
    relevance,
    surface_forms,
)

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "v1"
SPLITS = ("train", "val", "test")
__all__ = [
    "NUM_OPTIONS",
    "ROUND_TYPES",
    "answer_universe",
    "ensure_shapes_dialog",
    "generate_shapes_dialog",
    "relevance",
    "split_paths",
    "surface_forms",
]

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
        talk = Dialogue(rng, objects, image_size)
        caption = talk.caption()
        document = documents[split]
        questions, answers = document["questions"], document["answers"]
        entries = []
        dense_round = int(rng.integers(NUM_ROUNDS))
        for number, made in enumerate(talk.rounds()):
            options = draw_options(rng, made, universe, pool)
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
        document["dialogs"].append({"image_id": index, "caption": caption, "dialog": entries})
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
    return f"shapes_dialog-{GENERATOR_VERSION}-{params_digest(params)}"


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
    generate = functools.partial(
        generate_shapes_dialog,
        num_dialogs=num_dialogs,
        image_size=image_size,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )
    return generate_once(root, name, "params.json", generate, what="shapes_dialog")  # params.json: last
