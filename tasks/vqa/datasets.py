"""The VQA datasets by ``data.name``: the rest of a ``data:`` section are the DataModule's arguments."""

from vltk.tasks.vqa.easy_vqa import EasyVqaDataModule
from vltk.tasks.vqa.vqa_v2 import VqaV2DataModule

VQA_DATASETS = {
    "easy_vqa": EasyVqaDataModule,
    "vqa_v2": VqaV2DataModule,
}
