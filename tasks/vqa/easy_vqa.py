"""easy-VQA (Zhou 2020, https://github.com/vzhou842/easy-VQA), built in through the ``easy-vqa`` package.

5,000 64x64 images of one coloured shape each; 38,575 training and 9,673 test questions ("what color is
the shape?", "is there not a red circle?") with one answer each among 13 (yes, no, 3 shapes, 8 colours).
The package ships no validation split, so :func:`read_easy_vqa` carves one out of train *by image* (a
fixed set of training images, the same for every run and seed): no validation image is ever trained on.
Test is the package's test split.

Answer types are ``yes/no``, ``color`` and ``shape``; question types are ``what color``, ``what shape``,
``yes/no`` and ``yes/no negated`` (questions with *not* / *no*, the harder half of the yes/no ones).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vltk.errors import ConfigError, DataError
from vltk.tasks.vqa.datamodule import VqaDataModule, VqaOptions
from vltk.tasks.vqa.records import VqaExample

logger = logging.getLogger(__name__)

SHAPES = frozenset({"circle", "rectangle", "triangle"})
YES_NO = frozenset({"yes", "no"})
VAL_SEED = 0  # the validation images are fixed, whatever the run's seed


def easy_vqa_answer_type(answer: str) -> str:
    """``yes/no``, ``shape`` or ``color``."""
    if answer in YES_NO:
        return "yes/no"
    return "shape" if answer in SHAPES else "color"


def easy_vqa_question_type(question: str) -> str:
    """``what color`` (``what is the color of the shape?`` too), ``what shape`` (``what is the blue
    shape?`` asks for a shape), ``yes/no`` or ``yes/no negated``."""
    words = question.lower().rstrip("?").split()
    if words and words[0] == "what":
        return "what color" if "color" in words else "what shape"
    return "yes/no negated" if {"not", "no"} & set(words) else "yes/no"


def _package():
    try:
        import easy_vqa
    except ImportError as error:  # a dependency of vltk, but say what to do if it was removed
        raise DataError("the easy_vqa dataset needs the 'easy-vqa' package: pip install easy-vqa") from error
    return easy_vqa


def _examples(split: str) -> list[VqaExample]:
    package = _package()
    if split == "train":
        texts, answers, image_ids = package.get_train_questions()
        paths = package.get_train_image_paths()
    else:
        texts, answers, image_ids = package.get_test_questions()
        paths = package.get_test_image_paths()
    examples = []
    missing = 0
    for question_id, (text, answer, image_id) in enumerate(zip(texts, answers, image_ids)):
        if image_id not in paths:
            missing += 1
            continue
        examples.append(
            VqaExample(
                question_id=question_id,
                image_id=int(image_id),
                question=text,
                answers=(answer,),
                image_path=Path(paths[image_id]),
                answer_type=easy_vqa_answer_type(answer),
                question_type=easy_vqa_question_type(text),
            )
        )
    if missing:
        logger.warning("easy_vqa %s: %d questions refer to images the package lacks; skipped", split, missing)
    return examples


def read_easy_vqa(val_images: int = 500) -> dict[str, list[VqaExample]]:
    """``{"train", "val", "test"}`` examples; ``val`` holds every question of ``val_images`` training
    images chosen once with a fixed seed."""
    train = _examples("train")
    image_ids = sorted({e.image_id for e in train})
    if not 0 <= val_images < len(image_ids):
        raise ConfigError(f"data.val_images must be in [0, {len(image_ids)}), got {val_images}")
    held_out = set(random.Random(VAL_SEED).sample(image_ids, val_images))
    return {
        "train": [e for e in train if e.image_id not in held_out],
        "val": [e for e in train if e.image_id in held_out],
        "test": _examples("test"),
    }


@dataclass(frozen=True)
class EasyVqaOptions(VqaOptions):
    """easy-VQA's defaults: 13 answers, small 64x64 images kept in memory (about 50 KB each).

    Attributes:
        batch_size: questions per training batch (images per batch with ``group_by_image``, each with
            its ~10 questions); evaluation batches hold ``batch_size`` images with all their questions.
    """

    batch_size: int = 64
    top_k_answers: int = 1000
    in_memory: bool = True


class EasyVqaDataModule(VqaDataModule):
    """The built-in easy-VQA dataset (train / a fixed validation split by image / test).

    Args:
        val_images: training images held out (with all their questions) for validation.
        options: the fields of :class:`EasyVqaOptions` (``batch_size``, ``top_k_answers``, ...).
    """

    options_type = EasyVqaOptions

    def __init__(self, *, val_images: int = 500, **options: Any) -> None:
        super().__init__(**options)
        self.val_images = val_images

    def read_examples(self) -> dict[str, list[VqaExample]]:
        return read_easy_vqa(self.val_images)
