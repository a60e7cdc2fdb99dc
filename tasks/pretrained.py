"""Trained models ready for inference, from a ``vltk train`` checkpoint or a ``vltk export`` directory:
:func:`from_pretrained` (``vltk.from_pretrained``) and :func:`predict` (``vltk predict``).

Each task has one inference class, ``TASKS[task].inference``, in ``vltk.tasks.<task>.inference``; it holds
the network, the vocabulary and the checkpoint's own settings (its ``decoding`` section, the lengths it was
trained with, ...), and it is what the task's Lightning system decodes with in evaluation
(``system.inference()`` wraps the live network). Loading is one path for every task and both file kinds:
:func:`vltk.export.read_model` reads the task, the system's constructor arguments (``hyper_parameters``)
and its state dict; the task's config dataclass parses ``hyper_parameters["config"]`` exactly as the
system's constructor does; ``inference.from_checkpoint(config, hyper_parameters, state_dict, source)``
builds the network with the task's builder and loads the ``model.*`` weights (eval mode, CPU).

* captioning: :class:`~vltk.tasks.captioning.inference.ImageCaptioner` -- ``.caption(images)``;
* vqa: :class:`~vltk.tasks.vqa.inference.QuestionAnswerer` -- ``.answer(images, question, top_k=5)``;
* lm: :class:`~vltk.tasks.lm.inference.TextSampler` -- ``.sample(prime, length, temperature, seed)``;
* navigation: :class:`~vltk.tasks.navigation.inference.InstructionFollower` -- ``.play(seed, level=None)``;
* dialog: :class:`~vltk.tasks.dialog.inference.DialogAnswerer` -- ``.chat(image, caption).ask(question)``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import vltk
from vltk.config import from_dict
from vltk.errors import VltkError, check_output_path, unknown_choice_message
from vltk.export import ExportedModel, hyper_parameter, read_model
from vltk.tasks import TASKS, TaskEntry
from vltk.tasks.captioning.inference import ImageCaptioner
from vltk.tasks.training import check_decoding_options

logger = logging.getLogger(__name__)

PRETRAINED_LOADERS: dict[str, type] = {
    name: entry.inference for name, entry in TASKS.items() if entry.inference is not None
}
"""Task name -> its inference class (``TASKS[task].inference``; ``from_checkpoint`` loads it)."""


def inference_entry(task: str, source: str | Path, config: Any = None) -> TaskEntry:
    """The entry of ``task`` (of its family, for ``config`` when given) with an inference class."""
    entry = TASKS.get(task)
    if entry is not None and config is not None:
        try:
            entry = entry.for_config(config)
        except VltkError as error:
            raise VltkError(f"{source}: the checkpoint's config is not valid here ({error})") from None
    if entry is None or entry.inference is None:
        raise VltkError(
            f"{source} holds a '{task}' model: {unknown_choice_message('task', task, PRETRAINED_LOADERS)}"
        )
    return entry


def build_pretrained(
    task: str, hyper_parameters: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], source: str | Path
) -> Any:
    """The inference object of ``task`` from a system's constructor arguments and state dict."""
    inference_entry(task, source)  # an unknown task is named before anything is read
    config_data = hyper_parameter(hyper_parameters, "config", source)
    entry = inference_entry(task, source, config_data)
    try:
        config = from_dict(entry.config, config_data, old_keys=True)
    except VltkError as error:
        raise VltkError(f"{source}: the checkpoint's config is not valid here ({error})") from None
    return entry.inference.from_checkpoint(config, hyper_parameters, state_dict, Path(source))


def warn_about_version(model: ExportedModel, path: str | Path) -> None:
    """A warning when ``model`` was written by another vltk version than this one."""
    written_by = (model.provenance or {}).get("vltk")
    if written_by is not None and written_by != vltk.__version__:
        logger.warning("%s was written by vltk %s; this is vltk %s: results may differ",
                       path, written_by, vltk.__version__)  # fmt: skip


def from_pretrained(path: str | Path) -> Any:
    """The task's inference object (eval mode, CPU) from an export directory or a ``.ckpt`` file, with the
    checkpoint's own decoding settings (see the module docstring for each task's class)."""
    model = read_model(path)
    warn_about_version(model, path)
    return build_pretrained(model.task, model.hyper_parameters, model.state_dict, path)


def load_captioner(checkpoint: str | Path) -> ImageCaptioner:
    """:func:`from_pretrained` for a captioning checkpoint or export (another task's is an error)."""
    model = read_model(checkpoint)
    if model.task != "captioning":
        raise VltkError(f"{checkpoint} holds a '{model.task}' model, not a captioner")
    warn_about_version(model, checkpoint)
    return build_pretrained(model.task, model.hyper_parameters, model.state_dict, checkpoint)


# ----------------------------------------------------------------------------------------- vltk predict
def option_flag(name: str) -> str:
    """The CLI's name of a predict request field: ``beam_size`` -> ``--beam-size``."""
    return "INPUT arguments" if name == "inputs" else "--" + name.replace("_", "-")


def check_predict_values(options: Mapping[str, Any]) -> None:
    """The ``vltk predict`` values in range and the output paths writable, checked before a model is
    loaded (one line each)."""
    check_decoding_options(options.get("beam_size"), options.get("max_length"))
    if options.get("length") is not None and options["length"] < 0:
        raise VltkError(f"--length must be >= 0, got {options['length']}")
    if options.get("temperature") is not None and not options["temperature"] > 0:
        raise VltkError(f"--temperature must be > 0, got {options['temperature']}")
    if options.get("seed") is not None and options["seed"] < 0:
        raise VltkError(f"--seed must be >= 0, got {options['seed']}")
    for name in ("attention_map", "gif"):
        if options.get(name) is not None:
            check_output_path(Path(options[name]), option_flag(name))


def predict(path: str | Path, options: Mapping[str, Any]) -> list[str]:
    """``vltk predict PATH ...``: the lines to print (Rich markup).

    ``options`` are the given options by field name (``inputs``, ``beam_size``, ...; ``None`` or empty means
    not given); those the task's ``predict_request`` dataclass does not declare are refused by their CLI
    name, before the model is built.
    """
    given = {name: value for name, value in options.items() if value is not None and value != []}
    check_predict_values(given)
    model = read_model(path)
    entry = inference_entry(model.task, path, model.hyper_parameters.get("config", {}))
    if entry.predict is None or entry.predict_request is None:
        raise VltkError(f"`vltk predict` does not support {model.task} checkpoints yet")
    accepted = {f.name for f in dataclasses.fields(entry.predict_request)}
    unused = [option_flag(name) for name in given if name not in accepted]
    if unused:
        raise VltkError(f"{', '.join(unused)} do(es) not apply to a {model.task} checkpoint")
    warn_about_version(model, path)
    inference = build_pretrained(model.task, model.hyper_parameters, model.state_dict, path)
    return entry.predict(inference, entry.predict_request(**given))
