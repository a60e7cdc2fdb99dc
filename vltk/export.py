"""Export a trained checkpoint to a plain directory, and load it back without Lightning.

``vltk export CKPT DIR`` writes the Hugging Face layout::

    DIR/model.safetensors          the weights (safetensors: no pickle, memory-mappable)
    DIR/config.json                task, resolved config and the other constructor arguments, provenance
    DIR/tokenizer.json             the vocabulary (a ``tokenizers`` WordLevel model), when the task has one
    DIR/tokenizer_config.json      so ``transformers.PreTrainedTokenizerFast.from_pretrained(DIR)`` loads it
    DIR/special_tokens_map.json

``vltk.from_pretrained(DIR)`` returns a model ready for inference in Python (for captioning, a
:class:`vltk.models.pretrained.PretrainedCaptioner`), and ``vltk predict`` / ``vltk evaluate`` accept the
directory wherever they accept a checkpoint.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vltk.errors import VltkError

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
FORMAT_VERSION = 1


@dataclass
class ExportedModel:
    """What an export directory holds: the task, the system's constructor arguments and its weights."""

    task: str
    hyper_parameters: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    provenance: dict[str, Any] | None


def _special_tokens(vocab_json: str) -> dict[str, str]:
    """The vocabulary's special tokens under the names ``transformers`` uses."""
    from vltk.text.vocab import END, PAD, START, UNK

    tokens = {token["content"] for token in json.loads(vocab_json).get("added_tokens", [])}
    names = {"pad_token": PAD, "bos_token": START, "eos_token": END, "unk_token": UNK}
    return {name: token for name, token in names.items() if token in tokens}


def export_checkpoint(checkpoint: str | Path, directory: str | Path) -> Path:
    """Write the model of a ``vltk train`` checkpoint into ``directory`` (see the module docstring)."""
    from safetensors.torch import save_file

    path = Path(checkpoint)
    if not path.is_file():
        raise VltkError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        hyper_parameters = dict(payload["hyper_parameters"])
        task = hyper_parameters["config"]["task"]
        state_dict = payload["state_dict"]
    except (RuntimeError, KeyError, TypeError, EOFError, OSError, pickle.UnpicklingError) as error:
        raise VltkError(f"{path} is not a vltk checkpoint ({type(error).__name__}: {error})") from None
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    vocab_json = hyper_parameters.pop("vocab", None)
    # safetensors refuses tensors that share memory (tied weights); a contiguous copy of each is exact.
    tensors = {name: tensor.detach().contiguous().clone() for name, tensor in state_dict.items()}
    save_file(tensors, str(out / WEIGHTS_FILE), metadata={"task": task, "format": "vltk"})
    config = {
        "vltk_export_format": FORMAT_VERSION,
        "task": task,
        "hyper_parameters": hyper_parameters,
        "tokenizer_file": TOKENIZER_FILE if vocab_json is not None else None,
        "provenance": payload.get("vltk_provenance"),
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if vocab_json is not None:
        (out / TOKENIZER_FILE).write_text(vocab_json, encoding="utf-8")
        special = _special_tokens(vocab_json)
        tokenizer_config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": False,
        }
        (out / "tokenizer_config.json").write_text(
            json.dumps({**tokenizer_config, **special}, indent=2) + "\n"
        )
        (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    logger.info("exported %s (%s, %d tensors) to %s", path, task, len(tensors), out)
    return out


def read_export(directory: str | Path) -> ExportedModel:
    """Read an export directory back (the vocabulary returns to ``hyper_parameters["vocab"]``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    out = Path(directory)
    config_path, weights_path = out / CONFIG_FILE, out / WEIGHTS_FILE
    for required in (config_path, weights_path):
        if not required.is_file():
            raise VltkError(
                f"{out} is not a vltk export: {required.name} is missing (make one with `vltk export`)"
            )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        task, hyper_parameters = config["task"], dict(config["hyper_parameters"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise VltkError(
            f"{config_path}: not a vltk export config ({type(error).__name__}: {error})"
        ) from None
    if config.get("tokenizer_file"):
        tokenizer_path = out / config["tokenizer_file"]
        if not tokenizer_path.is_file():
            raise VltkError(f"{out}: {tokenizer_path.name} is missing")
        hyper_parameters["vocab"] = tokenizer_path.read_text(encoding="utf-8")
    try:
        state_dict = load_file(str(weights_path))
    except (SafetensorError, OSError) as error:
        raise VltkError(f"{weights_path}: unreadable weights ({error})") from None
    return ExportedModel(task, hyper_parameters, state_dict, config.get("provenance"))


def from_pretrained(directory: str | Path) -> Any:
    """A model ready for inference from an export directory (or a ``.ckpt`` file).

    Captioning gives a :class:`vltk.models.pretrained.PretrainedCaptioner` (``.caption(images)``).
    """
    from vltk.models.pretrained import PretrainedCaptioner, captioner_from_parts

    path = Path(directory)
    if path.is_file():  # a Lightning checkpoint
        from vltk.models.pretrained import load_captioner

        return load_captioner(path)
    exported = read_export(path)
    if exported.task == "captioning":
        model, vocab = captioner_from_parts(
            exported.hyper_parameters["config"], exported.hyper_parameters["vocab"], exported.state_dict, path
        )
        return PretrainedCaptioner(model, vocab)
    raise VltkError(
        f"{path} holds a '{exported.task}' model; vltk.from_pretrained builds captioners so far. "
        "Load any task with vltk.tasks.runner.load_system(DIR)."
    )
