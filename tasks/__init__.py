"""Lightning systems, one per task, and the registry the CLI reads (``vltk list``, ``vltk train TASK``).

Adding a task means: a config dataclass (with ``task``, ``seed``, ``data``, ``trainer``, ``monitor`` and
optionally ``monitor_mode``), a LightningModule following :class:`vltk.tasks.training.TaskSystem`, a dataset
registry, optionally an inference class (``tasks/<task>/inference.py``: what ``vltk.from_pretrained``
returns), a ``vltk predict`` request dataclass and function, a ``score`` function, shipped configs in
``configs/<task>/`` and one entry below. The runner (train/evaluate) and the CLI need nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vltk.registry import Registry
from vltk.tasks.captioning.datasets import CAPTION_DATASETS
from vltk.tasks.captioning.inference import ImageCaptioner
from vltk.tasks.captioning.predict import CaptionRequest, predict_captions_lines
from vltk.tasks.captioning.score import score_captioning
from vltk.tasks.captioning.system import CaptioningConfig, CaptioningTask
from vltk.tasks.dialog.datasets import DIALOG_DATASETS
from vltk.tasks.dialog.inference import DialogAnswerer
from vltk.tasks.dialog.predict import DialogRequest, predict_dialog_lines
from vltk.tasks.dialog.score import score_dialog
from vltk.tasks.dialog.system import DialogConfig, DialogTask
from vltk.tasks.lm.datasets import LM_DATASETS
from vltk.tasks.lm.inference import TextSampler
from vltk.tasks.lm.predict import SampleRequest, predict_lm_lines
from vltk.tasks.lm.system import LmConfig, LmTask
from vltk.tasks.navigation.datasets import NAVIGATION_DATASETS
from vltk.tasks.navigation.inference import InstructionFollower
from vltk.tasks.navigation.predict import EpisodeRequest, predict_navigation_lines
from vltk.tasks.navigation.r2r.score import score_navigation
from vltk.tasks.navigation.system import NavigationConfig, NavigationTask
from vltk.tasks.vqa.datasets import VQA_DATASETS
from vltk.tasks.vqa.inference import QuestionAnswerer
from vltk.tasks.vqa.predict import VqaRequest, predict_vqa_lines
from vltk.tasks.vqa.score import score_vqa
from vltk.tasks.vqa.system import VqaConfig, VqaTask


@dataclass(frozen=True)
class TaskEntry:
    """What the runner and the CLI need to know about a task.

    Attributes:
        config: the config dataclass (``vltk.config.from_dict`` validates YAML against it).
        system: the LightningModule class; ``system.from_data(cfg, datamodule)`` builds it for training and
            ``system(**checkpoint["hyper_parameters"])`` rebuilds it from a checkpoint.
        datasets: the dataset registry (``data.name`` picks one).
        description: one line for ``vltk list``.
        inference: the inference class (``tasks/<task>/inference.py``):
            ``inference.from_checkpoint(config, hyper_parameters, state_dict, source)`` builds it from a
            checkpoint or an export (``config`` parsed with the config dataclass above); it is what
            ``vltk.from_pretrained`` and ``system.inference()`` return, and what evaluation decodes with.
        predict_request: the dataclass of the task's ``vltk predict`` options, declared once: its fields are
            the CLI options it takes (``inputs`` the INPUT arguments, ``beam_size`` ``--beam-size``, ...);
            the CLI refuses the others by name.
        predict: ``predict(inference_object, request) -> list[str]`` (lines to print, Rich markup).
        score: ``score(request: ScoreRequest) -> ScoreResult``: metrics on prediction files, no model.
        score_options: the ``ScoreRequest`` fields the task reads.
    """

    config: type
    system: type
    datasets: Registry[type]
    description: str
    inference: type | None = None
    predict_request: type | None = None
    predict: Callable[..., list[str]] | None = None
    score: Callable[..., Any] | None = None
    score_options: frozenset[str] = field(default_factory=frozenset)


_TASK_ENTRIES: dict[str, TaskEntry] = {
    "captioning": TaskEntry(
        CaptioningConfig,
        CaptioningTask,
        CAPTION_DATASETS,
        "image -> sentence (Show and Tell, Show, Attend and Tell)",
        inference=ImageCaptioner,
        predict_request=CaptionRequest,
        predict=predict_captions_lines,
        score=score_captioning,
        score_options=frozenset({"references", "split"}),
    ),
    "lm": TaskEntry(
        LmConfig,
        LmTask,
        LM_DATASETS,
        "text -> next character/word (char-RNN: Elman RNN, LSTM, GRU, MUT1-3; bits per char, perplexity)",
        inference=TextSampler,
        predict_request=SampleRequest,
        predict=predict_lm_lines,
    ),
    "vqa": TaskEntry(
        VqaConfig,
        VqaTask,
        VQA_DATASETS,
        "image + question -> answer (CNN+LSTM, Show Ask Attend and Answer, stacked attention)",
        inference=QuestionAnswerer,
        predict_request=VqaRequest,
        predict=predict_vqa_lines,
        score=score_vqa,
        score_options=frozenset({"questions", "annotations", "rule"}),
    ),
    "dialog": TaskEntry(
        DialogConfig,
        DialogTask,
        DIALOG_DATASETS,
        "image + caption + history + question -> ranked/generated answer (late fusion, VisDial metrics)",
        inference=DialogAnswerer,
        predict_request=DialogRequest,
        predict=predict_dialog_lines,
        score=score_dialog,
        score_options=frozenset({"references", "annotations", "allow_partial"}),
    ),
    "navigation": TaskEntry(
        NavigationConfig,
        NavigationTask,
        NAVIGATION_DATASETS,
        "instruction + egocentric view -> actions (BabyAI, behaviour cloning of the bot)",
        inference=InstructionFollower,
        predict_request=EpisodeRequest,
        predict=predict_navigation_lines,
        score=score_navigation,
        score_options=frozenset({"references", "connectivity"}),
    ),
}
TASKS: Registry[TaskEntry] = Registry("task", _TASK_ENTRIES)

__all__ = [
    "TASKS",
    "TaskEntry",
    "CaptioningConfig",
    "CaptioningTask",
    "DialogConfig",
    "DialogTask",
    "LmConfig",
    "LmTask",
    "NavigationConfig",
    "NavigationTask",
    "VqaConfig",
    "VqaTask",
]
