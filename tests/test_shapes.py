"""The procedural shapes dataset: determinism, splits, captions true to the scene, cached generation."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vltk.tasks.captioning.shapes as shapes
from vltk.data.shape_scenes import COLOURS, PLURALS, SHAPES
from vltk.errors import ConfigError
from vltk.tasks.captioning.shapes import ensure_shapes, generate_shapes

SIZE_OF = {"small": "small", "little": "small", "large": "large", "big": "large"}
SHAPE_OF = {**{s: s for s in SHAPES}, **{p: s for s, p in PLURALS.items()}}
NP = rf"(?:a|an) (?:({'|'.join(SIZE_OF)}) )?({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})"  # size, colour, shape
COUNT = (
    rf"\b(one|two|three) (?:({'|'.join(SIZE_OF)}) )?(?:({'|'.join(COLOURS)}) )?"
    rf"({'|'.join(SHAPE_OF)}|shapes?|objects)\b"
)
RELATION_WORDS = "to the left of|on the left side of|to the right of|on the right side of|above|below|under"
RELATION = rf"({NP}) (?:is )?({RELATION_WORDS}) ({NP})"
PLACE_WORDS = (
    r"in the (top|bottom) (left|right) corner|on the (left|right)(?! side)|at the (top|bottom)|in the middle"
)
PLACE = rf"({NP}) ({PLACE_WORDS})"
COMPARE = rf"({NP}) is (bigger|smaller) than ({NP})"


def _matches(obj: dict, size: str | None, colour: str | None, shape: str | None) -> bool:
    return (
        (size is None or obj["size"] == SIZE_OF[size])
        and (colour is None or obj["colour"] == colour)
        and (shape is None or shape in ("shape", "shapes", "objects") or obj["shape"] == SHAPE_OF[shape])
    )


def _left_of(a: dict, b: dict) -> bool:
    return a["x"] + a["r"] <= b["x"] - b["r"]


def _above(a: dict, b: dict) -> bool:
    return a["y"] + a["r"] <= b["y"] - b["r"]


RELATION_TEST = {
    "left": _left_of,
    "right": lambda a, b: _left_of(b, a),
    "above": _above,
    "below": lambda a, b: _above(b, a),
    "under": lambda a, b: _above(b, a),
}


def check_caption(text: str, objects: list[dict], image_size: int) -> None:
    """Fail when any claim of ``text`` is false for the scene."""
    words = text.split()
    assert {w for w in words if w in COLOURS} <= {o["colour"] for o in objects}, text
    assert {SHAPE_OF[w] for w in words if w in SHAPE_OF} <= {o["shape"] for o in objects}, text
    assert {SIZE_OF[w] for w in words if w in SIZE_OF} <= {o["size"] for o in objects}, text
    for size, colour, shape in re.findall(NP, text):
        assert any(_matches(o, size or None, colour, shape) for o in objects), (text, size, colour, shape)
    for number, size, colour, noun in re.findall(COUNT, text):
        expected = {"one": 1, "two": 2, "three": 3}[number]
        assert sum(_matches(o, size or None, colour or None, noun) for o in objects) == expected, text
    if re.search(r"\b(single|lone|just one|only one|on its own)\b", text):
        assert len(objects) == 1, text
    for match in re.finditer(RELATION, text):
        first, relation, second = match.group(2, 3, 4), match.group(5), match.group(7, 8, 9)
        holds = next(RELATION_TEST[w] for w in relation.split() if w in RELATION_TEST)
        assert any(
            holds(a, b)
            for a in objects
            for b in objects
            if a is not b
            and _matches(a, first[0] or None, *first[1:])
            and _matches(b, second[0] or None, *second[1:])
        ), text
    half = image_size / 2
    for match in re.finditer(PLACE, text):
        size, colour, shape = match.group(2, 3, 4)
        place = match.group(5)
        candidates = [o for o in objects if _matches(o, size or None, colour, shape)]
        checks = {
            "left": lambda o: o["x"] < half,
            "right": lambda o: o["x"] > half,
            "top": lambda o: o["y"] < half,
            "bottom": lambda o: o["y"] > half,
            "middle": lambda o: (
                abs(o["x"] - half) < 0.15 * image_size and abs(o["y"] - half) < 0.15 * image_size
            ),
        }
        assert any(all(checks[w](o) for w in place.split() if w in checks) for o in candidates), text
    for match in re.finditer(COMPARE, text):
        first, comparison, second = match.group(2, 3, 4), match.group(5), match.group(7, 8, 9)
        bigger = comparison == "bigger"
        assert any(
            (a["r"] > b["r"]) == bigger and a["size"] != b["size"]
            for a in objects
            for b in objects
            if _matches(a, None, *first[1:]) and _matches(b, None, *second[1:])
        ), text
    largest = re.search(rf"the largest shape is ({NP})", text)
    if largest:
        winner = max(objects, key=lambda o: o["r"])
        assert [o["size"] for o in objects].count("large") == 1, text
        assert _matches(winner, None, largest.group(3), largest.group(4)), text


def _digest(folder: Path) -> str:
    digest = hashlib.sha256((folder / "dataset_shapes.json").read_bytes())
    for image in sorted((folder / "images").iterdir()):
        digest.update(image.read_bytes())
    return digest.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path) -> None:
    paths = [
        generate_shapes(tmp_path / name, num_images=25, seed=seed)
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    ]
    assert _digest(paths[0].parent) == _digest(paths[1].parent)
    assert paths[0].read_bytes() != paths[2].read_bytes()
    # Image i depends only on (seed, i): a smaller dataset is a prefix of a larger one.
    small = json.loads(generate_shapes(tmp_path / "d", num_images=5, seed=0).read_text())
    large = json.loads(paths[0].read_text())
    assert [e["sentences"] for e in small["images"]] == [e["sentences"] for e in large["images"][:5]]


def test_karpathy_layout_and_split_sizes(tmp_path) -> None:
    path = generate_shapes(tmp_path, num_images=40, seed=3)
    document = json.loads(path.read_text())
    assert document["dataset"] == "shapes"
    images = document["images"]
    assert [e["split"] for e in images] == ["train"] * 32 + ["val"] * 4 + ["test"] * 4
    sentids = [s["sentid"] for e in images for s in e["sentences"]]
    assert len(set(sentids)) == len(sentids) == 200
    for entry in images:
        assert (tmp_path / entry["filepath"] / entry["filename"]).is_file()
        assert entry["sentids"] == [s["sentid"] for s in entry["sentences"]]
        assert len(entry["sentences"]) == 5 and len({s["raw"] for s in entry["sentences"]}) == 5
        for sentence in entry["sentences"]:
            assert sentence["imgid"] == entry["imgid"]
            assert sentence["tokens"] == sentence["raw"].replace(",", "").split()
    other = json.loads(
        generate_shapes(tmp_path / "b", num_images=40, val_fraction=0.25, test_fraction=0.0).read_text()
    )
    assert [e["split"] for e in other["images"]].count("val") == 10
    assert "test" not in {e["split"] for e in other["images"]}


def test_every_caption_is_true_for_its_scene(tmp_path) -> None:
    document = json.loads(generate_shapes(tmp_path, num_images=300, seed=11).read_text())
    counts = set()
    for entry in document["images"]:
        objects = entry["scene"]["objects"]
        counts.add(len(objects))
        assert 1 <= len(objects) <= 3
        for sentence in entry["sentences"]:
            check_caption(" ".join(sentence["tokens"]), objects, 64)
    assert counts == {1, 2, 3}
    raws = [s["raw"] for e in document["images"] for s in e["sentences"]]
    assert any(" to the left of " in r for r in raws) and any(" above " in r for r in raws)
    assert any(re.match(r"(there are )?two \w+ shapes", r) for r in raws)
    assert len(set(raws)) > 0.8 * len(raws)


def test_checker_catches_false_captions() -> None:
    objects = [
        {"shape": "circle", "colour": "red", "size": "small", "x": 10.0, "y": 30.0, "r": 5.0},
        {"shape": "square", "colour": "blue", "size": "large", "x": 45.0, "y": 30.0, "r": 11.0},
    ]
    check_caption("a small red circle to the left of a big blue square", objects, 64)
    for false in (
        "a blue circle",
        "a small red circle to the right of a blue square",
        "three shapes",
        "a red circle is bigger than a blue square",
        "a red circle on the right",
        "a green star",
    ):
        with pytest.raises(AssertionError):
            check_caption(false, objects, 64)


def test_objects_do_not_overlap_and_pixels_match_the_scene(tmp_path) -> None:
    path = generate_shapes(tmp_path, num_images=60, image_size=64, seed=5)
    for entry in json.loads(path.read_text())["images"]:
        objects = entry["scene"]["objects"]
        for i, a in enumerate(objects):
            for b in objects[i + 1 :]:
                apart = max(abs(a["x"] - b["x"]), abs(a["y"] - b["y"])) - a["r"] - b["r"]
                assert apart >= 1.0
        pixels = np.asarray(Image.open(tmp_path / "images" / entry["filename"]))  # [H, W, 3]
        assert pixels.shape == (64, 64, 3)
        assert np.all(pixels[0, 0] == entry["scene"]["background"])
        for obj in objects:
            centre = pixels[int(obj["y"]), int(obj["x"])].astype(int)
            assert np.abs(centre - np.array(COLOURS[obj["colour"]])).max() <= 16, (entry["filename"], obj)
        small = [o["r"] for o in objects if o["size"] == "small"]
        large = [o["r"] for o in objects if o["size"] == "large"]
        if small and large:
            assert min(large) > 1.6 * max(small)


def test_larger_images(tmp_path) -> None:
    path = generate_shapes(tmp_path, num_images=4, image_size=160)
    entry = json.loads(path.read_text())["images"][0]
    assert Image.open(tmp_path / "images" / entry["filename"]).size == (160, 160)
    for sentence in entry["sentences"]:
        check_caption(" ".join(sentence["tokens"]), entry["scene"]["objects"], 160)


@pytest.mark.parametrize(
    "params",
    [
        {"num_images": 0},
        {"image_size": 8},
        {"val_fraction": 0.6, "test_fraction": 0.5},
        {"val_fraction": -0.1},
    ],
)
def test_bad_parameters(tmp_path, params) -> None:
    with pytest.raises(ConfigError):
        generate_shapes(tmp_path, **params)


def test_ensure_shapes_generates_once(tmp_path, monkeypatch) -> None:
    path = ensure_shapes(tmp_path, num_images=12, seed=2)
    assert path.name == "dataset_shapes.json" and path.parent.parent == tmp_path
    assert path.parent.name.startswith(f"shapes-{shapes.GENERATOR_VERSION}-")
    assert [p.name for p in tmp_path.iterdir()] == [path.parent.name]  # no temporary folder left

    def fail(*args, **kwargs):
        raise AssertionError("must not generate again")

    monkeypatch.setattr(shapes, "generate_shapes", fail)
    assert ensure_shapes(tmp_path, num_images=12, seed=2) == path
    with pytest.raises(AssertionError, match="must not generate"):
        ensure_shapes(tmp_path, num_images=12, seed=3)  # other parameters, other folder


def test_ensure_shapes_keeps_the_copy_of_a_faster_process(tmp_path, monkeypatch) -> None:
    real = shapes.generate_shapes
    final = tmp_path / shapes.shapes_dir_name(
        num_images=6, image_size=64, seed=0, val_fraction=0.1, test_fraction=0.1
    )

    def racing(out_dir, **params):
        real(final, **params)  # another process finishes first
        (final / "winner").write_text("kept")
        return real(out_dir, **params)

    monkeypatch.setattr(shapes, "generate_shapes", racing)
    path = ensure_shapes(tmp_path, num_images=6)
    assert path == final / "dataset_shapes.json" and (final / "winner").read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_default_cache_dir_follows_vltk_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VLTK_CACHE", str(tmp_path))
    assert shapes.default_cache_dir() == tmp_path / "datasets"
    path = ensure_shapes(None, num_images=3)
    assert path.is_file() and path.parent.parent == tmp_path / "datasets"
