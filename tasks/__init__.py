"""Lightning systems, one per task, and the registry the CLI reads (``vltk list``, ``vltk train TASK``).

Adding a task means: a config dataclass (with ``task``, ``seed``, ``data``, ``trainer``, ``monitor`` and
optionally ``monitor_mode``), a LightningModule following :class:`vltk.tasks.training.TaskSystem`, a dataset
registry, optionally an inference class (``tasks/<task>/inference.py``: what ``vltk.from_pretrained``
returns), a ``vltk predict`` request dataclass and function, a ``score`` function, a ``vltk serve`` tab
(``tasks/<task>/demo.py``), shipped configs in ``configs/<task>/`` and one entry below. The runner
(train/evaluate) and the CLI need nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vltk.errors import ConfigError, unknown_choice_message
from vltk.registry import Registry
from vltk.tasks.captioning.datasets import CAPTION_DATASETS
from vltk.tasks.captioning.demo import CaptioningDemo
from vltk.tasks.captioning.inference import ImageCaptioner
from vltk.tasks.captioning.onnx import export_captioner_onnx
from vltk.tasks.captioning.predict import CaptionRequest, predict_captions_lines
from vltk.tasks.captioning.score import score_captioning
from vltk.tasks.captioning.system import CaptioningConfig, CaptioningTask
from vltk.tasks.dialog.datasets import DIALOG_DATASETS
from vltk.tasks.dialog.demo import DialogDemo
from vltk.tasks.dialog.inference import DialogAnswerer
from vltk.tasks.dialog.predict import DialogRequest, predict_dialog_lines
from vltk.tasks.dialog.score import score_dialog
from vltk.tasks.dialog.system import DialogConfig, DialogTask
from vltk.tasks.lm.datasets import LM_DATASETS
from vltk.tasks.lm.demo import LmDemo
from vltk.tasks.lm.inference import TextSampler
from vltk.tasks.lm.predict import SampleRequest, predict_lm_lines
from vltk.tasks.lm.system import LmConfig, LmTask
from vltk.tasks.navigation.datasets import BABYAI_DATASETS
from vltk.tasks.navigation.demo import NavigationDemo
from vltk.tasks.navigation.inference import InstructionFollower
from vltk.tasks.navigation.predict import EpisodeRequest, predict_navigation_lines
from vltk.tasks.navigation.r2r.datasets import R2R_DATASETS
from vltk.tasks.navigation.r2r.demo import R2RDemo
from vltk.tasks.navigation.r2r.inference import R2RFollower
from vltk.tasks.navigation.r2r.predict import R2REpisodeRequest, predict_r2r_lines
from vltk.tasks.navigation.r2r.score import score_navigation
from vltk.tasks.navigation.r2r.system import R2RConfig, R2RNavigationTask
from vltk.tasks.navigation.system import NavigationConfig, NavigationTask
from vltk.tasks.vqa.datasets import VQA_DATASETS
from vltk.tasks.vqa.demo import VqaDemo
from vltk.tasks.vqa.inference import QuestionAnswerer
from vltk.tasks.vqa.onnx import export_vqa_onnx
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
        demo: the class of the task's ``vltk serve`` tab (``tasks/<task>/demo.py``): ``demo(inference)``
            holds an inference object; its ``build(gr, key)`` lays out the tab (:mod:`vltk.tasks.serve`).
        onnx: ``onnx(inference_object, directory) -> dict`` writes the model's ONNX graphs and their
            ``onnx_config.json`` (``vltk export --onnx``; ``tasks/<task>/onnx.py``); ``None``: not offered.
        pipeline_tag: the Hugging Face pipeline tag of the task, for the export's model card.
        family: for a task with families of datasets that need their own config and system (navigation:
            BabyAI grid worlds, R2R graphs), ``family(config) -> TaskEntry | None`` picks the entry of a
            config (a mapping or a parsed config) by its ``data.name``; ``None``: this entry.
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
    family: Callable[[Any], TaskEntry | None] | None = None
    demo: type | None = None
    onnx: Callable[[Any, Any], dict[str, Any]] | None = None
    pipeline_tag: str | None = None

    def for_config(self, config: Any) -> TaskEntry:
        """The entry that handles ``config`` (a config mapping or a parsed config dataclass): this one,
        or its family's (:attr:`family`)."""
        chosen = self.family(config) if self.family is not None else None
        return chosen if chosen is not None else self


def data_name(config: Any) -> str | None:
    """``config``'s ``data.name`` (a mapping or a parsed config), ``None`` when it has none."""
    data = config.get("data") if isinstance(config, Mapping) else getattr(config, "data", None)
    name = data.get("name") if isinstance(data, Mapping) else None
    return name if isinstance(name, str) else None


R2R_NAVIGATION = TaskEntry(
    R2RConfig,
    R2RNavigationTask,
    R2R_DATASETS,
    "instruction + panoramic views -> moves on a navigation graph (R2R, R2R-houses; seq2seq, panoramic)",
    inference=R2RFollower,
    predict_request=R2REpisodeRequest,
    predict=predict_r2r_lines,
    score=score_navigation,
    score_options=frozenset({"references", "connectivity"}),
    demo=R2RDemo,
)
"""The R2R family of the navigation task (``data.name`` in ``R2R_DATASETS``)."""


def navigation_family(config: Any) -> TaskEntry | None:
    """R2R-layout datasets have their own config and system; BabyAI's are the navigation entry's own."""
    name = data_name(config)
    if name in R2R_DATASETS:
        return R2R_NAVIGATION
    if name is not None and name not in BABYAI_DATASETS:
        raise ConfigError(unknown_choice_message("data.name", name, [*BABYAI_DATASETS, *R2R_DATASETS]))
    return None


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
        demo=CaptioningDemo,
        onnx=export_captioner_onnx,
        pipeline_tag="image-to-text",
    ),
    "lm": TaskEntry(
        LmConfig,
        LmTask,
        LM_DATASETS,
        "text -> next character/word (char-RNN: Elman RNN, LSTM, GRU, MUT1-3; bits per char, perplexity)",
        inference=TextSampler,
        predict_request=SampleRequest,
        predict=predict_lm_lines,
        demo=LmDemo,
        pipeline_tag="text-generation",
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
        demo=VqaDemo,
        onnx=export_vqa_onnx,
        pipeline_tag="visual-question-answering",
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
        demo=DialogDemo,
    ),
    "navigation": TaskEntry(
        NavigationConfig,
        NavigationTask,
        BABYAI_DATASETS,
        "instruction + view -> actions (BabyAI grid worlds: behaviour cloning of the bot; R2R graphs: "
        "seq2seq and panoramic followers)",
        inference=InstructionFollower,
        predict_request=EpisodeRequest,
        predict=predict_navigation_lines,
        score=score_navigation,
        score_options=frozenset({"references", "connectivity"}),
        family=navigation_family,
        demo=NavigationDemo,
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
    "R2RConfig",
    "R2RNavigationTask",
    "VqaConfig",
    "VqaTask",
]
