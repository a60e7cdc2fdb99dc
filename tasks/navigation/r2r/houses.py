"""R2R-houses: a built-in vision-and-language navigation dataset written in exactly the R2R layout.

Procedural houses (:mod:`.layout`: rooms of named kinds on one or two floors, doors, stairs, objects,
viewpoints), 36 rendered views per viewpoint (:mod:`.render`) featurised by a vltk CNN, shortest paths of
4-7 viewpoints between rooms and three generated instructions per path (:mod:`.instructions`). The files are
the published R2R formats, read by :func:`~.files.read_r2r` and :func:`~.graph.read_connectivity`::

    OUT/R2R_train.json R2R_val_seen.json R2R_val_unseen.json R2R_test.json  (test: path = [start])
    OUT/test_references.json               the test split with its full paths, to score test locally
    OUT/connectivity/{scan}_connectivity.json
    OUT/features/                          the view-feature store (:class:`~.features.ViewFeatureStore`)
    OUT/houses/{scan}.json                 rooms, doors, objects, stairs, viewpoint -> room
    OUT/houses/{scan}_example.png          the 12 level views of one viewpoint side by side (x4)
    OUT/stats.json                         the statistics beside R2R's (written last: the dataset is complete)

Splits as R2R's (Anderson et al. 2018, Vision-and-Language Navigation, section 4): train houses with train
paths; val_seen, other paths in the train houses; val_unseen and test, houses never in train (and not
shared with each other). The encoder is ``small_cnn`` from :data:`vltk.encoders.CNN_ENCODERS`, randomly
initialised from a fixed torch seed and frozen: no pretrained weights exist offline, so the features are
random convolutional projections of the views (informative: a different room kind gives a different image).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vltk.data.cache import default_cache_dir
from vltk.data.generate_once import generate_once, params_digest
from vltk.errors import ConfigError
from vltk.tasks.navigation.r2r.features import StoreWriter, encode_views
from vltk.tasks.navigation.r2r.files import read_r2r
from vltk.tasks.navigation.r2r.graph import ScanGraph, load_graphs, read_connectivity
from vltk.tasks.navigation.r2r.instructions import instructions_for_path
from vltk.tasks.navigation.r2r.layout import House, connectivity_items, house_record, make_house, scan_id
from vltk.tasks.navigation.r2r.render import FOV, panorama, render_house

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "v2"
SPLITS = ("train", "val_seen", "val_unseen", "test")
MIN_PATH_VIEWPOINTS, MAX_PATH_VIEWPOINTS = 4, 7  # R2R's paths have 4-7 viewpoints (4-6 edges)
MARKER = "stats.json"


@dataclass(frozen=True)
class HousesOptions:
    """The generator's parameters; the same options (and vltk version of the generator) give the same files.

    Attributes:
        seed: decides every house, path, heading and phrasing.
        train_houses, val_unseen_houses, test_houses: houses per split (val_seen uses the train houses).
        train_paths, val_seen_paths, val_unseen_paths, test_paths: paths per split (three instructions
            each), spread evenly over the split's houses.
        two_floor_fraction: the chance that a house has two floors joined by stairs.
        image_size: side of the rendered square views in pixels.
        encoder_channels: ``small_cnn`` channels per stage; the feature dimension is the last.
        encoder_seed: the torch seed of the encoder's random initialisation.
        feature_pool_grid: the encoder's grid is average-pooled to this many cells a side, their vectors
            concatenated (1: one mean vector a view, ``D`` = the last channels; 2: ``D`` = 4 x that).
        feature_dtype: ``float32`` or ``float16`` in the feature store.
        encode_batch_size: views encoded at once.
    """

    seed: int = 0
    train_houses: int = 100
    val_unseen_houses: int = 8
    test_houses: int = 8
    train_paths: int = 8000
    val_seen_paths: int = 300
    val_unseen_paths: int = 400
    test_paths: int = 400
    two_floor_fraction: float = 0.4
    image_size: int = 32
    encoder_channels: tuple[int, ...] = (16, 32, 64)
    encoder_seed: int = 0
    feature_pool_grid: int = 1
    feature_dtype: str = "float32"
    encode_batch_size: int = 512

    def __post_init__(self) -> None:
        for name in ("train_houses", "val_unseen_houses", "test_houses"):
            if getattr(self, name) < 1:
                raise ConfigError(f"R2R houses: {name} must be at least 1, got {getattr(self, name)}")
        for name in ("train_paths", "val_seen_paths", "val_unseen_paths", "test_paths"):
            if getattr(self, name) < 1:
                raise ConfigError(f"R2R houses: {name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.two_floor_fraction <= 1.0:
            raise ConfigError(
                f"R2R houses: two_floor_fraction must be in [0, 1], got {self.two_floor_fraction}"
            )
        if self.feature_pool_grid < 1:
            raise ConfigError(
                f"R2R houses: feature_pool_grid must be at least 1, got {self.feature_pool_grid}"
            )
        if self.image_size < 2 ** len(self.encoder_channels):
            raise ConfigError(
                f"R2R houses: image_size must be at least {2 ** len(self.encoder_channels)} for "
                f"{len(self.encoder_channels)} encoder stages, got {self.image_size}"
            )
        if self.feature_dtype not in ("float32", "float16"):
            raise ConfigError(
                f"R2R houses: feature_dtype must be float32 or float16, got {self.feature_dtype!r}"
            )

    def split_houses(self) -> dict[str, range]:
        """House indices of each split (val_seen: the train houses)."""
        train = range(self.train_houses)
        unseen = range(self.train_houses, self.train_houses + self.val_unseen_houses)
        test = range(unseen.stop, unseen.stop + self.test_houses)
        return {"train": train, "val_seen": train, "val_unseen": unseen, "test": test}


def houses_dir_name(options: HousesOptions) -> str:
    """``r2r_houses-<GENERATOR_VERSION>-<hash>``: the cache folder of a set of options."""
    return f"r2r_houses-{GENERATOR_VERSION}-{params_digest(asdict(options))}"


def ensure_houses(
    options: HousesOptions | None = None, cache_dir: str | Path | None = None, progress: bool = True
) -> Path:
    """The dataset's folder, generated on first use (:func:`generate_houses`) and reused after.

    The data lands in ``cache_dir / r2r_houses-<GENERATOR_VERSION>-<hash of the options>`` (default
    :func:`vltk.data.cache.default_cache_dir`), written into a temporary sibling and renamed into place
    (:func:`vltk.data.generate_once.generate_once`), so an interrupted run leaves no half dataset.
    """
    options = options or HousesOptions()
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    generate = functools.partial(generate_houses, options=options, progress=progress)
    return generate_once(root, houses_dir_name(options), MARKER, generate, what="R2R houses")


def generate_houses(out_dir: str | Path, options: HousesOptions | None = None, progress: bool = True) -> Path:
    """Write the whole dataset (module docstring) into ``out_dir``; ``stats.json`` is written last."""
    options = options or HousesOptions()
    out = Path(out_dir)
    started = time.perf_counter()
    for sub in ("connectivity", "houses"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    houses = _make_houses(options)
    graphs = {}
    for house in houses:
        _write_json(out / "connectivity" / f"{house.scan}_connectivity.json", connectivity_items(house))
        _write_json(out / "houses" / f"{house.scan}.json", house_record(house))
        graphs[house.scan] = read_connectivity(out / "connectivity", house.scan)
    _write_splits(out, options, houses, graphs)
    _write_features(out, options, houses, progress)
    seconds = time.perf_counter() - started
    stats = houses_statistics(out)
    stats["generation_seconds"] = round(seconds, 1)
    stats["options"] = asdict(options)
    _write_json(out / MARKER, stats)
    logger.info("generated %d R2R houses into %s in %.1f s", len(houses), out, seconds)
    return out


def _make_houses(options: HousesOptions) -> list[House]:
    total = options.train_houses + options.val_unseen_houses + options.test_houses
    houses = []
    for index in range(total):
        rng = np.random.default_rng([options.seed, index, 1])
        houses.append(make_house(scan_id(options.seed, index), rng, options.two_floor_fraction))
    return houses


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- paths, instructions and splits


def candidate_paths(house: House, graph: ScanGraph) -> list[list[int]]:
    """Shortest paths (viewpoint indices) of 4-7 viewpoints between room viewpoints of different rooms, in
    a fixed order (start, goal)."""
    index = {vp.image_id: i for i, vp in enumerate(house.viewpoints)}
    rooms = [i for i, vp in enumerate(house.viewpoints) if vp.place == "room"]
    paths = []
    for a in rooms:
        for b in rooms:
            if house.viewpoints[a].rooms == house.viewpoints[b].rooms:
                continue
            start, goal = house.viewpoints[a].image_id, house.viewpoints[b].image_id
            if not math.isfinite(graph.distance(start, goal)):
                continue
            path = graph.shortest_path(start, goal)
            if MIN_PATH_VIEWPOINTS <= len(path) <= MAX_PATH_VIEWPOINTS:
                paths.append([index[v] for v in path])
    return paths


def _quotas(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _write_splits(
    out: Path, options: HousesOptions, houses: list[House], graphs: dict[str, ScanGraph]
) -> None:
    split_houses = options.split_houses()
    wanted = {
        "train": options.train_paths,
        "val_seen": options.val_seen_paths,
        "val_unseen": options.val_unseen_paths,
        "test": options.test_paths,
    }
    chosen: dict[str, list[tuple[House, list[int]]]] = {split: [] for split in SPLITS}
    train_quota = _quotas(wanted["train"], len(split_houses["train"]))
    seen_quota = _quotas(wanted["val_seen"], len(split_houses["train"]))
    for k, h in enumerate(split_houses["train"]):  # train and val_seen: disjoint paths of the same houses
        picked = _sample_paths(houses[h], graphs, train_quota[k] + seen_quota[k], options.seed)
        chosen["train"] += [(houses[h], p) for p in picked[: train_quota[k]]]
        chosen["val_seen"] += [(houses[h], p) for p in picked[train_quota[k] :]]
    for split in ("val_unseen", "test"):
        quota = _quotas(wanted[split], len(split_houses[split]))
        for k, h in enumerate(split_houses[split]):
            chosen[split] += [
                (houses[h], p) for p in _sample_paths(houses[h], graphs, quota[k], options.seed)
            ]
    path_id = 1
    for split in SPLITS:
        episodes = []
        for house, path in chosen[split]:
            rng = np.random.default_rng([options.seed, path_id, 2])
            episodes.append(_episode(house, graphs[house.scan], path, path_id, rng))
            path_id += 1
        if split == "test":
            _write_json(out / "test_references.json", episodes)
            episodes = [{**episode, "path": episode["path"][:1]} for episode in episodes]
        _write_json(out / f"R2R_{split}.json", episodes)
        short = wanted[split] - len(episodes)
        if short > 0:
            logger.warning(
                "R2R houses: %s has %d paths, %d fewer than asked (small houses)", split, len(episodes), short
            )


def _sample_paths(house: House, graphs: dict[str, ScanGraph], count: int, seed: int) -> list[list[int]]:
    candidates = candidate_paths(house, graphs[house.scan])
    rng = np.random.default_rng([seed, int(house.scan.encode().hex()[:12], 16), 3])
    order = rng.permutation(len(candidates))[:count]
    return [candidates[i] for i in order]


def _episode(house: House, graph: ScanGraph, path: list[int], path_id: int, rng: np.random.Generator) -> dict:
    heading = float(rng.uniform(0.0, 2.0 * math.pi))
    ids = [house.viewpoints[i].image_id for i in path]
    distance = sum(graph.edge_length(a, b) for a, b in zip(ids, ids[1:]))
    return {
        "distance": distance,
        "scan": house.scan,
        "path_id": path_id,
        "path": ids,
        "heading": heading,
        "instructions": instructions_for_path(house, path, heading, rng),
    }


# ---------------------------------------------------------------- views and features


def make_encoder(options: HousesOptions):
    """The frozen ``small_cnn`` of the view features, initialised from ``options.encoder_seed``."""
    import torch

    from vltk.encoders import CNN_ENCODERS

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(options.encoder_seed)
        encoder = CNN_ENCODERS["small_cnn"](
            channels=tuple(options.encoder_channels), image_size=options.image_size, trainable=False
        )
    finally:
        torch.random.set_rng_state(state)
    return encoder.eval()


STANDARDISING_HOUSES = 5  # the first training houses, whose views give the per-dimension mean and std


def _write_features(out: Path, options: HousesOptions, houses: list[House], progress: bool) -> None:
    """Render every house's views and write their features into the store ``out/features``.

    The features of a randomly initialised CNN are tiny and uneven across dimensions (a std of about 0.04),
    so they are standardised per dimension with the mean and std of the views of the first
    :data:`STANDARDISING_HOUSES` training houses (never a val_unseen or test house): an agent then sees
    them on the scale of its angle features, as it sees the published ResNet features.
    """
    from tqdm import tqdm

    encoder = make_encoder(options)
    first = min(STANDARDISING_HOUSES, options.train_houses)
    meta = {
        "image_w": options.image_size,
        "image_h": options.image_size,
        "vfov": math.degrees(FOV),
        "source": f"R2R houses: small_cnn {list(options.encoder_channels)}, random init (torch seed "
        f"{options.encoder_seed}), grid mean-pooled to {options.feature_pool_grid}x"
        f"{options.feature_pool_grid} cells, standardised per dimension on {first} training houses",
    }
    dim = options.encoder_channels[-1] * options.feature_pool_grid**2
    writer = StoreWriter(out / "features", dim, options.feature_dtype, meta)
    encoded: list[np.ndarray] = []
    scale: tuple[np.ndarray, np.ndarray] | None = None
    with writer:
        for index, house in enumerate(
            tqdm(houses, desc="R2R houses: rendering and encoding views", disable=not progress)
        ):
            images = render_house(house, options.image_size)  # [V, 36, S, S, 3]
            encoded.append(
                encode_views(images, encoder, options.encode_batch_size, options.feature_pool_grid)
            )  # [V, 36, D]
            _write_example(out / "houses" / f"{house.scan}_example.png", house, images)
            if index + 1 == first:
                views = np.concatenate(encoded).reshape(-1, encoded[0].shape[-1])  # [N * 36, D]
                scale = (views.mean(axis=0), views.std(axis=0) + 1e-6)  # [D], [D]
            if scale is not None:
                for done, features in zip(houses[index + 1 - len(encoded) : index + 1], encoded):
                    standard = ((features - scale[0]) / scale[1]).astype(np.float32)  # [V, 36, D]
                    for vp, row in zip(done.viewpoints, standard):
                        writer.add(done.scan, vp.image_id, row)
                encoded = []
        writer.close()


def _write_example(path: Path, house: House, images: np.ndarray) -> None:
    from PIL import Image

    first = next(i for i, vp in enumerate(house.viewpoints) if vp.place == "room")
    strip = panorama(images[first])  # [S, 12*S, 3]
    Image.fromarray(strip.repeat(4, axis=0).repeat(4, axis=1)).save(path)


# ---------------------------------------------------------------- statistics

# Anderson et al. 2018, "Vision-and-Language Navigation: Interpreting visually-grounded navigation
# instructions in real environments" (CVPR), section 4 (the R2R dataset). ``checked``: the number was read
# in a quotation of the paper's text here; the others are from memory of the paper and not checked here.
R2R_PUBLISHED = {
    "paths": {"value": 7189, "checked": True, "where": "section 4"},
    "instructions": {"value": 21567, "checked": True, "where": "section 4"},
    "instruction_words_mean": {
        "value": 29,
        "checked": True,
        "where": "section 4 ('average length of 29 words')",
    },
    "vocabulary": {"value": 3100, "checked": True, "where": "section 4 ('around 3.1k words')"},
    "houses": {"value": 90, "checked": True, "where": "Matterport3D: 90 buildings"},
    "path_viewpoints": {"value": "5-7", "checked": False, "where": "section 4 (4-6 edges), not checked"},
    "path_length_m_mean": {
        "value": "~10",
        "checked": False,
        "where": "table 2 shortest-path agent, not checked",
    },
    "neighbours_per_viewpoint_mean": {"value": None, "checked": False, "where": "not published in the paper"},
    "split_instructions": {
        "value": {"train": 14025, "val_seen": 1020, "val_unseen": 2349, "test": 4173},
        "checked": False,
        "where": "section 4, not checked",
    },
}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def houses_statistics(out_dir: str | Path) -> dict:
    """The statistics of a generated dataset (from its files) beside R2R's published ones."""
    out = Path(out_dir)
    splits = {split: read_r2r(out / f"R2R_{split}.json") for split in SPLITS}
    splits["test"] = read_r2r(out / "test_references.json")
    scans = sorted({e.scan for episodes in splits.values() for e in episodes})
    graphs = load_graphs(out / "connectivity", scans)
    episodes = [e for split in SPLITS for e in splits[split]]
    instructions = [text for e in episodes for text in e.instructions]
    degrees = [len(g.neighbours(v)) for g in graphs.values() for v in g.viewpoints]
    vocabulary = {word for text in instructions for word in _words(text)}
    return {
        "houses": len(list((out / "connectivity").glob("*_connectivity.json"))),
        "viewpoints": int(sum(len(g.viewpoints) for g in graphs.values())),
        "paths": len(episodes),
        "instructions": len(instructions),
        "path_length_m_mean": round(float(np.mean([e.distance for e in episodes])), 3),
        "path_viewpoints_mean": round(float(np.mean([len(e.path) for e in episodes])), 3),
        "neighbours_per_viewpoint_mean": round(float(np.mean(degrees)), 3),
        "instruction_words_mean": round(float(np.mean([len(_words(t)) for t in instructions])), 3),
        "vocabulary": len(vocabulary),
        "splits": {
            split: {
                "houses": len({e.scan for e in splits[split]}),
                "paths": len(splits[split]),
                "instructions": sum(len(e.instructions) for e in splits[split]),
            }
            for split in SPLITS
        },
        "r2r_published": R2R_PUBLISHED,
    }


def format_statistics(stats: dict) -> str:
    """A plain-text table of :func:`houses_statistics` beside R2R's numbers (``*``: not checked here)."""
    published = stats["r2r_published"]

    def r2r(key: str) -> str:
        entry = published.get(key)
        if entry is None or entry["value"] is None:
            return "-"
        return f"{entry['value']}{'' if entry['checked'] else ' *'}"

    rows = [
        ("houses (scans)", stats["houses"], r2r("houses")),
        ("paths", stats["paths"], r2r("paths")),
        ("instructions", stats["instructions"], r2r("instructions")),
        ("path length (m), mean", stats["path_length_m_mean"], r2r("path_length_m_mean")),
        ("path viewpoints, mean", stats["path_viewpoints_mean"], r2r("path_viewpoints")),
        (
            "neighbours per viewpoint, mean",
            stats["neighbours_per_viewpoint_mean"],
            r2r("neighbours_per_viewpoint_mean"),
        ),
        ("instruction words, mean", stats["instruction_words_mean"], r2r("instruction_words_mean")),
        ("vocabulary (words)", stats["vocabulary"], r2r("vocabulary")),
    ]
    split_r2r = published["split_instructions"]["value"]
    for split, counts in stats["splits"].items():
        rows.append(
            (
                f"{split}: houses / paths / instructions",
                f"{counts['houses']} / {counts['paths']} / {counts['instructions']}",
                f"instructions {split_r2r[split]} *",
            )
        )
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'statistic':<{width}}  {'R2R houses':>22}  R2R (Anderson et al. 2018)"]
    lines += [f"{name:<{width}}  {str(ours):>22}  {theirs}" for name, ours, theirs in rows]
    lines.append("* from the paper, not checked against it here")
    return "\n".join(lines)
