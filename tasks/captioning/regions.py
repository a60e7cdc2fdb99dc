"""``vltk data regions``: make a region-feature store (:mod:`vltk.data.region_features`) from the bottom-up
TSV, from the per-image directories (:mod:`vltk.data.region_formats`) or from the object boxes of the
built-in shapes data (:mod:`vltk.tasks.captioning.shape_regions`), checked against a captioning config's
image ids. Train from it with ``model.encoder: {name: regions, path: OUT}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from vltk.data.region_features import RegionManifest, write_region_store
from vltk.data.region_formats import read_bottom_up_tsv, read_image_sizes, read_region_dirs, region_dir_files
from vltk.encoders.cnns import CNN_ENCODERS
from vltk.errors import ConfigError, DataError
from vltk.registry import build
from vltk.tasks.captioning.datasets import CAPTION_DATASETS
from vltk.tasks.captioning.shape_regions import CROP_ENCODER, CropSettings, write_shapes_region_store

Progress = Callable[[Iterable, int | None], Iterable]


def annotation_ids(cfg: Any) -> tuple[list[int], str, Any]:
    """The image ids of every split of a captioning config's dataset (in split order), what they came from
    (the annotation file), and the set-up datamodule."""
    if cfg.task != "captioning":
        raise ConfigError(f"vltk data regions checks captioning configs, not '{cfg.task}'")
    datamodule = build(CAPTION_DATASETS, cfg.data, path="data")
    if getattr(datamodule, "region_store", None) is not None:
        datamodule.region_store = None  # this command makes a store; the config's own is not needed
    datamodule.prepare_data()
    datamodule.setup("fit")
    ids: dict[int, None] = {}
    for role in ("train", "val", "test"):
        ids.update((record.image_id, None) for record in datamodule.records(role))
    source = getattr(datamodule, "annotations", None) or getattr(datamodule, "path", None)
    return list(ids), f"the annotations {source or type(datamodule).__name__}", datamodule


def check_ids(found: Iterable[int], expected: Sequence[int], where: str, expected_from: str) -> None:
    """A one-line DataError naming ``where`` and the first ids when the features' ids and the annotations'
    differ (either way)."""
    found, wanted = set(found), set(expected)
    extra, missing = sorted(found - wanted), sorted(wanted - found)
    if extra:
        raise DataError(
            f"{where}: {len(extra)} image id(s) are not in {expected_from}, e.g. "
            f"{', '.join(map(str, extra[:5]))}"
        )
    if missing:
        raise DataError(
            f"{where}: {len(missing)} image id(s) of {expected_from} have no region features, "
            f"e.g. {', '.join(map(str, missing[:5]))}"
        )


def crop_encoder_spec(cfg: Any, encoder: str | None, weights: str | None) -> dict[str, Any]:
    """``--encoder NAME [--weights W]``, else the config's image encoder when it is a CNN, else the
    built-in crop encoder (:data:`CROP_ENCODER`)."""
    if encoder is not None:
        return {"name": encoder, **({"weights": weights} if weights is not None else {})}
    if weights is not None:
        raise ConfigError("--weights goes with --encoder NAME")
    spec = dict(cfg.model.encoder) if cfg is not None else {}
    return spec if spec.get("name") in CNN_ENCODERS else dict(CROP_ENCODER)


def make_region_store(
    out: str | Path,
    *,
    tsv: Sequence[str | Path] = (),
    att_dir: str | Path | None = None,
    fc_dir: str | Path | None = None,
    box_dir: str | Path | None = None,
    sizes: Sequence[str | Path] = (),
    from_boxes: bool = False,
    cfg: Any = None,
    encoder: str | None = None,
    weights: str | None = None,
    crop: CropSettings = CropSettings(),  # noqa: B008 (frozen)
    batch_size: int = 64,
    device: str = "auto",
    progress: Progress | None = None,
) -> RegionManifest:
    """Convert one source into a region store at ``out``; with ``cfg``, its image ids must be the
    annotations' ids exactly.

    Args:
        out: the new store directory.
        tsv: bottom-up TSV files, read in order (one store).
        att_dir, fc_dir, box_dir: the per-image directories (``fc_dir``/``box_dir`` optional).
        sizes: with ``box_dir``: COCO-style JSONs of image sizes, merged (default: each image's largest box
            corner).
        from_boxes: encode the object boxes of ``cfg``'s data (the built-in shapes).
        cfg: a captioning config: its dataset's ids are checked (and, with ``from_boxes``, its images read).
        encoder, weights: with ``from_boxes``: the crop encoder (default: the config's CNN, else
            :data:`CROP_ENCODER`) and its weights.
        crop, batch_size, device: with ``from_boxes``: see
            :func:`vltk.tasks.captioning.shape_regions.write_shapes_region_store`.
        progress: ``(records, total) -> records``, e.g. a progress bar.

    Raises:
        ConfigError: not exactly one source, or options of another source.
        DataError: a malformed file, an image without regions, sizes that differ between images, ids that
            differ from the annotations (one line naming the file and the id).
    """
    sources = [
        name
        for name, given in (
            ("--tsv", bool(tsv)),
            ("--att-dir", att_dir is not None),
            ("--from-boxes", from_boxes),
        )
        if given
    ]
    if len(sources) != 1:
        given = f" (got {' and '.join(sources)})" if sources else ""
        raise ConfigError(
            f"give one source: --tsv FILE (repeatable), --att-dir DIR or --config C --from-boxes{given}"
        )
    if att_dir is None and (fc_dir is not None or box_dir is not None or sizes):
        raise ConfigError("--fc-dir, --box-dir and --sizes go with --att-dir")
    if sizes and box_dir is None:
        raise ConfigError("--sizes normalises boxes: it goes with --box-dir")
    if not from_boxes and (encoder is not None or weights is not None):
        raise ConfigError("--encoder and --weights go with --from-boxes")
    if from_boxes and cfg is None:
        raise ConfigError("--from-boxes needs --config: the captioning config whose images and boxes to use")
    ids, expected_from, datamodule = annotation_ids(cfg) if cfg is not None else (None, "", None)
    if from_boxes:
        if not getattr(datamodule, "annotations", None):
            raise ConfigError(
                f"--from-boxes reads the boxes kept in a Karpathy JSON's scenes (data.name: shapes), "
                f"not data.name: {cfg.data.get('name')}"
            )
        return write_shapes_region_store(
            datamodule.annotations,
            out,
            crop=crop,
            encoder=crop_encoder_spec(cfg, encoder, weights),
            image_ids=ids,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )
    if tsv:
        files = [Path(f) for f in tsv]
        records = (record for path in files for record in read_bottom_up_tsv(path))
        return write_region_store(
            records,
            out,
            format="bottom-up-tsv",
            dataset=", ".join(map(str, files)),
            sizes_from="tsv",
            expected_ids=ids,
            expected_from=expected_from,
            progress=progress,
            total=len(ids) if ids else None,
        )
    assert att_dir is not None
    found = list(region_dir_files(att_dir))
    if ids is not None:
        check_ids(found, ids, str(att_dir), expected_from)
    size_map = (
        {key: size for path in sizes for key, size in read_image_sizes(path).items()} if sizes else None
    )
    sizes_from = ", ".join(map(str, sizes))
    records = read_region_dirs(
        att_dir, fc_dir=fc_dir, box_dir=box_dir, sizes=size_map, sizes_from=sizes_from, image_ids=found
    )
    dataset = ", ".join(str(d) for d in (att_dir, fc_dir, box_dir) if d is not None)
    recorded = None if box_dir is None else sizes_from or "largest box corner"
    return write_region_store(
        records,
        out,
        format="directories",
        dataset=dataset,
        sizes_from=recorded,
        expected_ids=ids,
        expected_from=expected_from,
        progress=progress,
        total=len(found),
    )
