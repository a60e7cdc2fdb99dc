"""The VQA datasets by ``data.name``: the rest of a ``data:`` section are the DataModule's arguments."""

from vltk.registry import Registry
from vltk.tasks.vqa.easy_vqa import EasyVqaDataModule
from vltk.tasks.vqa.vqa_v2 import VqaV2DataModule

VQA_DATASETS = Registry(
    "vqa dataset",
    {
        "easy_vqa": EasyVqaDataModule,
        "vqa_v2": VqaV2DataModule,
    },
)
