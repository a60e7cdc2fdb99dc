"""Region features of the built-in ``shapes`` captions: one region per object, cropped from its exact box.

Every entry of ``dataset_shapes.json`` keeps the scene it was drawn from (``scene.objects``: shape, colour,
size and ``x, y, r``, a square box of half-width ``r`` centred at ``x, y`` in pixels; see
:class:`vltk.data.shape_scenes.ShapeObject`), so the objects' boxes ``x - r, y - r, x + r, y + r`` are
read from the annotations, exactly, with no detector: the bottom-up pipeline (Anderson et al. 2018) with
the ground-truth boxes in place of Faster R-CNN's. Each box, widened by ``margin`` (a fraction of ``r`` on
every side, clipped to the image), is cropped, resized by the crop encoder's own ``transforms()`` and
encoded; its grid, average-pooled to ``cells x cells`` and flattened (a 2x2 RoI pooling), is the region's
feature, and the whole image through the same encoder is the ``fc`` vector. Nothing is downloaded: the
crop encoder is a frozen CNN with seeded random weights unless ``weights`` name a file, which is enough here
(a random conv net keeps colours and outlines apart), and the box features (``model.encoder.box_features``)
tell the decoder where and how large each object is. The 2x2 cells matter: the mean over the grid loses the
outline that tells a star from a diamond (``vltk train captioning --config regions``, 15 epochs on the 3000
images, seed 42: test CIDEr 1.97 with the mean, 3.06 with 2x2 cells; the grid CNN of ``default``, trained
end to end: 3.36).

:func:`ensure_shapes_region_store` makes the store of ``data.region_store`` on first use, like the images
(:func:`vltk.data.generate_once.generate_once`: atomically, once, safe from several DDP ranks), and refuses
a store made from other images or other crop settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vltk.data.feature_cache import IDS_FILE, MANIFEST_FILE, resolve_device
from vltk.data.generate_once import generate_once
from vltk.data.json_file import read_json
from vltk.data.region_features import (
    RegionManifest,
    read_region_manifest,
    resolve_store_path,
    write_region_store,
)
from vltk.data.region_formats import RegionRecord
from vltk.encoders.cnns import CNN_ENCODERS
from vltk.errors import ConfigError, DataError
from vltk.registry import build, resolved_spec
from vltk.tasks.captioning.karpathy import parse_karpathy_entry
from vltk.types import ImageFeatures

CROP_ENCODER: dict[str, Any] = {
    "name": "small_cnn",
    "channels": [32, 64, 128, 128],
    "image_size": 32,
    "trainable": False,
}
"""The crop encoder of built-in stores: 32x32 crops, a 2x2 grid of 128 channels (512-dimensional regions)."""
FORMAT = "shapes-boxes"


@dataclass(frozen=True)
class CropSettings:
    """How the object crops become region vectors.

    Attributes:
        margin: context around each box, as a fraction of its half-width on every side.
        cells: the crop's grid is average-pooled to ``cells x cells`` and flattened (``D = channels *
            cells**2``); 1 is the encoder's pooled mean.
        seed: of the crop encoder's random weights (unused with pretrained weights).
    """

    margin: float = 0.25
    cells: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.margin < 0 or self.cells < 1:
            raise ConfigError(f"crop margin must be >= 0 and cells >= 1, got {self.margin} and {self.cells}")


def region_vectors(features: ImageFeatures, cells: int) -> torch.Tensor:
    """``[C, D * cells**2]``: each crop's grid average-pooled to ``cells x cells`` and flattened."""
    if cells == 1:
        return features.pooled  # [C, D]
    count, n, dim = features.grid.shape
    height, width = features.grid_size or (math.isqrt(n), math.isqrt(n))
    if height * width != n:
        raise ConfigError(f"crop encoder: a grid of {n} cells without its grid_size; use cells 1")
    maps = features.grid.transpose(1, 2).reshape(count, dim, height, width)  # [C, D, h, w]
    return F.adaptive_avg_pool2d(maps, cells).flatten(1)  # [C, D * cells^2]


def object_boxes(entry: dict[str, Any], where: str) -> np.ndarray:
    """``[n, 4]`` float32 ``x1, y1, x2, y2`` in pixels of an entry's ``scene.objects``."""
    scene = entry.get("scene")
    objects = scene.get("objects") if isinstance(scene, dict) else None
    if not isinstance(objects, list):
        raise DataError(
            f"{where}: no scene.objects; region features from boxes need annotations that keep "
            "each object's box (the built-in shapes data)"
        )
    boxes = []
    for number, obj in enumerate(objects):
        values = [obj.get(key) for key in ("x", "y", "r")] if isinstance(obj, dict) else []
        if len(values) != 3 or not all(isinstance(v, int | float) for v in values) or values[2] <= 0:
            raise DataError(f"{where}.scene.objects[{number}]: expected numbers x, y and r > 0")
        x, y, r = values
        boxes.append((x - r, y - r, x + r, y + r))
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def crop_box(box: np.ndarray, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The pixel rectangle of ``box`` widened by ``margin`` times its half-width on every side, clipped to
    the image and at least one pixel wide."""
    x1, y1, x2, y2 = (float(v) for v in box)
    pad = margin * (x2 - x1) / 2
    left, top = max(0, math.floor(x1 - pad)), max(0, math.floor(y1 - pad))
    right, bottom = min(width, math.ceil(x2 + pad)), min(height, math.ceil(y2 + pad))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def build_crop_encoder(spec: dict[str, Any] | None = None, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """The crop encoder (default :data:`CROP_ENCODER`), built with seeded weights, frozen, in eval mode, and
    its resolved spec."""
    spec = dict(spec or CROP_ENCODER)
    resolved = resolved_crop_encoder(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build(CNN_ENCODERS, spec, path="crop encoder", what="image encoder")
    return encoder.eval().requires_grad_(False), resolved


def resolved_crop_encoder(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """The crop encoder's spec (default :data:`CROP_ENCODER`) with every default written out."""
    return resolved_spec(CNN_ENCODERS, dict(spec or CROP_ENCODER), path="crop encoder", what="image encoder")


@torch.no_grad()
def shapes_region_records(
    annotations: str | Path,
    encoder: torch.nn.Module,
    *,
    crop: CropSettings = CropSettings(),  # noqa: B008 (frozen)
    batch_size: int = 64,
    device: str = "cpu",
    image_ids: Collection[int] | None = None,
) -> Iterator[RegionRecord]:
    """One record per image of a Karpathy JSON with scenes: the encoded object crops, their boxes, the image
    size and the whole image's vector as ``fc``; ``batch_size`` images are encoded at once.

    Raises:
        DataError: an entry without ``scene.objects`` or with a malformed one, an unreadable image (naming
            the file and the entry).
    """
    path = Path(annotations)
    document = read_json(path)
    entries = document.get("images") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a Karpathy-split JSON object with an 'images' list")
    target = resolve_device(device)
    encoder.to(target)
    transform = encoder.transforms()
    wanted = None if image_ids is None else set(image_ids)
    chunk: list[tuple[int, str, np.ndarray, Image.Image]] = []

    def encode(chunk: list[tuple[int, str, np.ndarray, Image.Image]]) -> Iterator[RegionRecord]:
        crops = [
            transform(image.crop(crop_box(box, crop.margin, *image.size)))
            for _, _, boxes, image in chunk
            for box in boxes
        ]
        wholes = [transform(image) for *_, image in chunk]
        encoded = encoder(torch.stack(crops + wholes).to(target))  # grid [C + I, N, D]
        pooled = region_vectors(encoded, crop.cells).float().cpu().numpy()  # [C + I, D']
        start = 0
        for number, (image_id, where, boxes, image) in enumerate(chunk):
            features = pooled[start : start + len(boxes)]  # [n, D']
            start += len(boxes)
            yield RegionRecord(
                image_id,
                features,
                where,
                boxes=boxes,
                fc=pooled[len(crops) + number],
                size=(float(image.size[0]), float(image.size[1])),
            )

    for index, entry in enumerate(entries):
        where = f"{path}: images[{index}]"
        _, record = parse_karpathy_entry(entry, where, path.parent)
        if wanted is not None and record.image_id not in wanted:
            continue
        boxes = object_boxes(entry, f"{where} (image id {record.image_id})")
        if len(boxes) == 0:
            raise DataError(f"{where}: image id {record.image_id} has no objects, so no regions")
        chunk.append((record.image_id, where, boxes, record.load_image()))
        if len(chunk) == batch_size:
            yield from encode(chunk)
            chunk = []
    if chunk:
        yield from encode(chunk)


def shapes_source(annotations: str | Path, encoder_spec: dict, crop: CropSettings) -> dict[str, Any]:
    """What makes a store's rows what they are (recorded in its manifest): the images' generator
    parameters that fix image ``i`` (``params`` of the JSON: seed, size, version; not the count or the
    split), the crop encoder and the crop settings."""
    document = read_json(annotations)
    params = document.get("params") if isinstance(document, dict) else None
    params = params if isinstance(params, dict) else {}
    images = {key: params.get(key) for key in ("seed", "image_size", "version")}
    return {"images": images, "encoder": encoder_spec, **asdict(crop)}


def write_shapes_region_store(
    annotations: str | Path,
    out_dir: str | Path,
    *,
    encoder: dict[str, Any] | None = None,
    crop: CropSettings = CropSettings(),  # noqa: B008 (frozen)
    batch_size: int = 64,
    device: str = "cpu",
    image_ids: Collection[int] | None = None,
    progress: Callable[[Iterable, int | None], Iterable] | None = None,
) -> RegionManifest:
    """The region store of a shapes dataset's object boxes (see the module docstring).

    Args:
        annotations: ``dataset_shapes.json`` (any Karpathy JSON whose entries keep ``scene.objects``).
        out_dir: the new store.
        encoder: the crop encoder's spec (a CNN of :data:`vltk.encoders.cnns.CNN_ENCODERS`; default
            :data:`CROP_ENCODER`).
        crop: the margin, the cells and the weights' seed.
        batch_size: images encoded at once (with all their objects).
        device: where the crop encoder runs (``cpu``, ``auto``, ``cuda``, ...).
        image_ids: store only these images (and require every one of them).
        progress: ``(records, total) -> records``, e.g. a progress bar.
    """
    network, resolved = build_crop_encoder(encoder, crop.seed)
    records = shapes_region_records(
        annotations, network, crop=crop, batch_size=batch_size, device=device, image_ids=image_ids
    )
    total = len(image_ids) if image_ids is not None else None
    return write_region_store(
        records,
        out_dir,
        format=FORMAT,
        dataset=str(Path(annotations).resolve()),
        sizes_from="image",
        expected_ids=image_ids,
        expected_from=f"the annotations {annotations}",
        source=shapes_source(annotations, resolved, crop),
        progress=progress,
        total=total,
    )


def ensure_shapes_region_store(annotations: str | Path, store: str) -> Path:
    """The store ``store`` (a directory or ``cache:NAME``) of a shapes dataset's boxes, made on first use
    with the built-in crop settings (:data:`CROP_ENCODER`, the defaults of :class:`CropSettings`).

    Raises:
        DataError: ``store`` holds a store of other images or settings, or lacks some of the dataset's
            images (a store made for fewer images): one line naming it.
    """
    path = resolve_store_path(store)
    if not (path / MANIFEST_FILE).is_file():
        generate_once(
            path.parent,
            path.name,
            MANIFEST_FILE,
            lambda work: write_shapes_region_store(annotations, work),
            what="shapes region-feature",
        )
    manifest = read_region_manifest(path)
    wanted = shapes_source(annotations, resolved_crop_encoder(), CropSettings())
    fix = f"delete {path} or name another store in data.region_store (and model.encoder.path)"
    if manifest.format != FORMAT or manifest.source != wanted:
        raise DataError(
            f"data.region_store {store}: {path} holds region features of other images or crop "
            f"settings ({manifest.dataset}); {fix}"
        )
    entries = read_json(annotations).get("images", [])
    ids = {entry.get("cocoid", entry.get("imgid")) for entry in entries}
    stored = set(map(int, read_json(path / IDS_FILE, "image-id")))
    missing = sorted(ids - stored)
    if missing:
        raise DataError(
            f"data.region_store {store}: {path} has {len(stored)} images, not images "
            f"{', '.join(map(str, missing[:5]))} of {annotations}; {fix}"
        )
    return path
