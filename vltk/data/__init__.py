"""Datasets, collation and Lightning DataModules, one per data format, plus the built-in generators.

``CAPTION_DATASETS`` maps the ``data.name`` of a captioning config to its DataModule; the rest of a
``data:`` section are that class's constructor arguments.
"""

from vltk.data.babyai_datamodule import BabyAIDataModule
from vltk.data.babyai_demos import DemoEpisodes, NavigationBatch, collate_episodes, load_demos
from vltk.data.captions_datamodule import (
    CaptionsDataModule,
    HFCaptionsDataModule,
    KarpathyCaptionsDataModule,
    ShapesCaptionsDataModule,
)
from vltk.data.collate import CaptionItem, collate_captions, truncate_caption
from vltk.data.demos import ensure_demos, generate_demos
from vltk.data.dialog_batch import DialogBatch
from vltk.data.dialog_datamodule import DialogDataModule, ShapesDialogDataModule, VisDialDataModule
from vltk.data.dialog_dataset import DialogDataset, collate_dialogs
from vltk.data.easy_vqa import EasyVqaDataModule, read_easy_vqa
from vltk.data.hf_captions import read_hf_captions, records_from_hf
from vltk.data.images import default_image_transform, load_image, to_rgb
from vltk.data.karpathy import CaptionEvalDataset, CaptionRecord, CaptionTrainDataset, read_karpathy
from vltk.data.shapes import default_cache_dir, ensure_shapes, generate_shapes
from vltk.data.shapes_dialog import ensure_shapes_dialog, generate_shapes_dialog
from vltk.data.text import LM_DATASETS, LmBatch, PythonSourceDataModule, TextFilesDataModule
from vltk.data.visdial import DialogRecord, DialogRound, VisDialSplit, read_visdial
from vltk.data.vqa_datamodule import VqaDataModule
from vltk.data.vqa_dataset import VqaBatch, VqaDataset, collate_vqa
from vltk.data.vqa_records import AnswerVocabulary, VqaExample, soft_scores
from vltk.data.vqa_v2 import VqaV2DataModule, read_vqa_v2, write_vqa_v2

CAPTION_DATASETS = {
    "shapes": ShapesCaptionsDataModule,
    "karpathy": KarpathyCaptionsDataModule,
    "hf": HFCaptionsDataModule,
}

VQA_DATASETS = {
    "easy_vqa": EasyVqaDataModule,
    "vqa_v2": VqaV2DataModule,
}
NAVIGATION_DATASETS = {"babyai": BabyAIDataModule}
DIALOG_DATASETS = {
    "shapes_dialog": ShapesDialogDataModule,
    "visdial": VisDialDataModule,
}

__all__ = [
    "DIALOG_DATASETS",
    "DialogBatch",
    "DialogDataModule",
    "DialogDataset",
    "DialogRecord",
    "DialogRound",
    "ShapesDialogDataModule",
    "VisDialDataModule",
    "VisDialSplit",
    "collate_dialogs",
    "ensure_shapes_dialog",
    "generate_shapes_dialog",
    "read_visdial",
    "BabyAIDataModule",
    "CAPTION_DATASETS",
    "LM_DATASETS",
    "LmBatch",
    "PythonSourceDataModule",
    "TextFilesDataModule",
    "VQA_DATASETS",
    "AnswerVocabulary",
    "EasyVqaDataModule",
    "VqaBatch",
    "VqaDataModule",
    "VqaDataset",
    "VqaExample",
    "VqaV2DataModule",
    "collate_vqa",
    "read_easy_vqa",
    "read_vqa_v2",
    "soft_scores",
    "write_vqa_v2",
    "DemoEpisodes",
    "NAVIGATION_DATASETS",
    "NavigationBatch",
    "collate_episodes",
    "ensure_demos",
    "generate_demos",
    "load_demos",
    "CaptionEvalDataset",
    "CaptionItem",
    "CaptionRecord",
    "CaptionTrainDataset",
    "CaptionsDataModule",
    "HFCaptionsDataModule",
    "KarpathyCaptionsDataModule",
    "ShapesCaptionsDataModule",
    "collate_captions",
    "default_cache_dir",
    "default_image_transform",
    "ensure_shapes",
    "generate_shapes",
    "load_image",
    "read_hf_captions",
    "read_karpathy",
    "records_from_hf",
    "to_rgb",
    "truncate_caption",
]
