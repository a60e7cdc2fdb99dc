"""The captioning datasets by ``data.name``; the rest of a ``data:`` section are the DataModule's options."""

from vltk.registry import Registry
from vltk.tasks.captioning.datamodule import (
    HFCaptionsDataModule,
    KarpathyCaptionsDataModule,
    ShapesCaptionsDataModule,
)
from vltk.tasks.captioning.shards import ShardedCaptionsDataModule

CAPTION_DATASETS = Registry(
    "caption dataset",
    {
        "shapes": ShapesCaptionsDataModule,
        "karpathy": KarpathyCaptionsDataModule,
        "hf": HFCaptionsDataModule,
        "webdataset": ShardedCaptionsDataModule,
    },
)
