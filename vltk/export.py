"""Export a trained checkpoint to a plain directory, and load it back without Lightning.

``vltk export CKPT DIR`` writes the Hugging Face layout::

    DIR/model.safetensors          the weights (safetensors: no pickle, memory-mappable)
    DIR/config.json                task, resolved config and the other constructor arguments, provenance
    DIR/tokenizer.json             the vocabulary (a ``tokenizers`` WordLevel model), when the task has one
                                   (the lm's character/word symbol list goes to ``vocab.json`` instead)
    DIR/tokenizer_config.json      so ``transformers.PreTrainedTokenizerFast.from_pretrained(DIR)`` loads it
    DIR/special_tokens_map.json
    DIR/README.md                  the model card: Hub metadata (library, task, dataset, metrics) and how to
                                   load it (:mod:`vltk.model_card`)
    DIR/onnx/                      with ``vltk export --onnx``: the ONNX graphs (:mod:`vltk.onnx`)

``vltk.from_pretrained(DIR)`` returns the task's inference object (``vltk.tasks.<task>.inference``), for
every task, and ``vltk predict`` / ``vltk evaluate`` accept the directory wherever they accept a checkpoint.
:func:`load_network` puts the weights of either into a freshly built network.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vltk.errors import VltkError
from vltk.model_card import CARD_FILE, model_card, run_metrics
from vltk.onnx.runtime import ONNX_DIR  # the folder of the ONNX graphs: guarded and replaced like the files

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
SYMBOLS_FILE = "vocab.json"  # the lm's symbol vocabulary (not a `tokenizers` document)
FORMAT_VERSION = 1
NETWORK_PREFIX = "model."  # a system's state dict holds its network under ``model.``


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


EXPORT_FILES = (WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE, SYMBOLS_FILE, "tokenizer_config.json",
                "special_tokens_map.json", CARD_FILE)  # fmt: skip
"""Every file an export may hold (what ``overwrite`` guards)."""


def _umask() -> int:
    """The process's umask (read by setting it, then restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def export_checkpoint(checkpoint: str | Path, directory: str | Path, *, overwrite: bool = False) -> Path:
    """Write the model of a ``vltk train`` checkpoint into ``directory`` (see the module docstring).

    A directory that already holds an export's files is refused unless ``overwrite`` (then the old files
    are replaced, and those of the old export that the new one does not write are removed, its ``onnx/``
    folder included). The files get the usual permissions of new files (``0o666`` less the umask),
    readable by whoever may read the folder. The model card has no Hub pipeline tag (the library knows no
    task): ``vltk export`` (:func:`vltk.tasks.export.export_model`) adds the task's, and ONNX graphs.
    """
    path, out = Path(checkpoint), Path(directory)
    earlier = check_export_directory(out, overwrite)
    return write_export(read_checkpoint(path), out, source=path, earlier=earlier)


def check_export_directory(out: Path, overwrite: bool) -> list[str]:
    """The names of an earlier export's files and folders in ``out``; an error unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise VltkError(
            f"{out} exists and is not a directory; `vltk export` writes a directory ({WEIGHTS_FILE}, "
            f"{CONFIG_FILE}, ...): name a new or existing directory"
        )
    earlier = [name for name in (*EXPORT_FILES, ONNX_DIR) if (out / name).exists()]
    if earlier and not overwrite:
        raise VltkError(
            f"{out} already holds an export ({', '.join(earlier)}); choose another directory, or replace it "
            "with --overwrite (vltk.export.export_checkpoint(..., overwrite=True))"
        )
    return earlier


def write_export(
    exported: ExportedModel,
    out: Path,
    *,
    source: Path,
    earlier: Sequence[str] = (),
    pipeline_tag: str | None = None,
    onnx: bool = False,
) -> Path:
    """Write ``exported`` (read from ``source``) into ``out``, removing ``earlier`` (an earlier export's
    names, :func:`check_export_directory`) first; ``onnx`` says the card mentions ``out/onnx/``."""
    from safetensors.torch import save_file

    task, hyper_parameters, state_dict = exported.task, dict(exported.hyper_parameters), exported.state_dict
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # e.g. a parent is a file, or no permission
        raise VltkError(f"cannot create the export directory {out}: {error.strerror or error}") from None
    for name in earlier:  # overwrite: nothing of the earlier export stays beside the new one
        if (out / name).is_dir():
            shutil.rmtree(out / name)
        else:
            (out / name).unlink()
    vocab_json = hyper_parameters.pop("vocab", None)
    # safetensors refuses tensors that share memory (tied weights); a contiguous copy of each is exact.
    tensors = {name: tensor.detach().contiguous().clone() for name, tensor in state_dict.items()}
    save_file(tensors, str(out / WEIGHTS_FILE), metadata={"task": task, "format": "vltk"})
    (out / WEIGHTS_FILE).chmod(0o666 & ~_umask())  # safetensors creates it 0600, private to its writer
    # A caption/question vocabulary is a `tokenizers` document (transformers loads it); the lm's symbol
    # vocabulary (characters or words, nothing normalised) is not, and is written as vocab.json instead.
    is_tokenizer = vocab_json is not None and "model" in json.loads(vocab_json)
    vocab_file = None if vocab_json is None else TOKENIZER_FILE if is_tokenizer else SYMBOLS_FILE
    config = {
        "vltk_export_format": FORMAT_VERSION,
        "task": task,
        "hyper_parameters": hyper_parameters,
        "tokenizer_file": vocab_file,
        "provenance": exported.provenance,
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if vocab_json is not None:
        (out / vocab_file).write_text(vocab_json, encoding="utf-8")
    if is_tokenizer:
        _write_tokenizer_config(out, vocab_json)
    card = model_card(out.resolve().name, task, hyper_parameters.get("config") or {}, exported.provenance,
                      run_metrics(source), pipeline_tag=pipeline_tag, onnx=onnx)  # fmt: skip
    (out / CARD_FILE).write_text(card, encoding="utf-8")
    logger.info("exported %s (%s, %d tensors) to %s", source, task, len(tensors), out)
    return out


def _write_tokenizer_config(out: Path, vocab_json: str) -> None:
    """``tokenizer_config.json`` and ``special_tokens_map.json``, for ``transformers``."""
    special = _special_tokens(vocab_json)
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, **special}, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


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


ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive (since PyTorch 1.6)


def load_checkpoint(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The payload of a ``vltk train`` checkpoint, read with ``torch.load(weights_only=True)``: tensors and
    plain containers only, so no code in the file runs (vltk never falls back to ``weights_only=False``).

    Raises:
        VltkError: one line naming the file: not found, empty, truncated or not a PyTorch file, holding
            Python objects that a weights-only load refuses, or a PyTorch file that ``vltk train`` did not
            write (no ``hyper_parameters.config.task`` and ``state_dict``).
    """
    path = Path(checkpoint)
    if path.is_dir():
        raise VltkError(f"{path} is a directory, not a checkpoint file (nor a `vltk export` directory)")
    if not path.is_file():
        raise VltkError(f"checkpoint not found: {path}")
    problem = f"{path} is not a vltk checkpoint"
    try:
        with path.open("rb") as file:
            head = file.read(4)
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        if head == ZIP_MAGIC:
            raise VltkError(
                f"{problem}: it holds Python objects other than tensors and plain containers, which vltk "
                "does not unpickle (checkpoints are read weights-only, so that no code in a file runs)"
            ) from None
        raise VltkError(
            f"{problem}: not a PyTorch checkpoint file (torch.save writes a zip archive)"
        ) from None
    except EOFError:
        raise VltkError(f"{problem}: the file is empty or cut short") from None
    except RuntimeError as error:
        reason = "truncated or corrupted zip archive" if "zip archive" in str(error) else str(error)
        raise VltkError(
            f"{problem}: not a readable PyTorch file ({' '.join(reason.split())[:200]})"
        ) from None
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, OSError, UnicodeDecodeError):
        raise VltkError(f"{problem}: not a PyTorch checkpoint file") from None
    hyper_parameters = payload.get("hyper_parameters") if isinstance(payload, dict) else None
    config = hyper_parameters.get("config") if isinstance(hyper_parameters, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(task, str) or not isinstance(payload.get("state_dict"), dict):
        raise VltkError(
            f"{problem}: a PyTorch file without the hyper_parameters (config.task) and state_dict that "
            "`vltk train` checkpoints hold"
        )
    return payload


def read_checkpoint(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> ExportedModel:
    """The task, constructor arguments, weights and provenance of a ``vltk train`` checkpoint (read with
    ``weights_only``: no code runs; see :func:`load_checkpoint`)."""
    payload = load_checkpoint(checkpoint, map_location)
    hyper_parameters = dict(payload["hyper_parameters"])
    task = hyper_parameters["config"]["task"]
    return ExportedModel(task, hyper_parameters, payload["state_dict"], payload.get("vltk_provenance"))


def read_model(path: str | Path, map_location: str | torch.device = "cpu") -> ExportedModel:
    """:func:`read_export` for a directory, :func:`read_checkpoint` for a file."""
    path = Path(path)
    if path.is_dir():
        return read_export(path)
    return read_checkpoint(path, map_location=map_location)


def hyper_parameter(hyper_parameters: Mapping[str, Any], key: str, source: str | Path) -> Any:
    """``hyper_parameters[key]``, or one line naming ``source`` when a model file lacks it."""
    if key not in hyper_parameters:
        raise VltkError(
            f"{source} is not a complete vltk model: '{key}' is missing from its hyper-parameters"
        )
    return hyper_parameters[key]


_KEYS = re.compile(r'(Missing|Unexpected) key\(s\) in state_dict: ((?:"[^"]*"(?:, )?)+)')
_SHAPE = r"torch\.Size\(\[[^\]]*\]\)"
_SIZE_MISMATCH = re.compile(
    rf"size mismatch for ([^:]+): copying a param with shape ({_SHAPE}) from checkpoint, "
    rf"the shape in current model is ({_SHAPE})"
)


def weights_summary(error: Exception) -> str:
    """One line out of ``load_state_dict``'s multi-line error: the counts and first names of the missing
    and unexpected keys, and the first size mismatch."""
    text = str(error)
    parts = []
    for kind, names in _KEYS.findall(text):
        keys = re.findall(r'"([^"]*)"', names)
        shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
        parts.append(f"{len(keys)} {kind.lower()} ({shown})")
    mismatch = _SIZE_MISMATCH.search(text)
    if mismatch:
        name, stored, expected = mismatch.groups()
        parts.append(f"{name} has shape {stored} in the file, {expected} in the model")
    return "; ".join(parts) or " ".join(text.split())[:300]


def load_network(
    network: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str | Path, task: str = ""
) -> nn.Module:
    """Load the ``model.*`` weights of a system state dict into ``network`` (strictly); eval mode."""
    state = {k[len(NETWORK_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(NETWORK_PREFIX)}
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        model = f"{task} model" if task else "configured model"
        raise VltkError(f"{source}: the weights do not fit the {model} ({weights_summary(error)})") from None
    return network.eval()


@contextmanager
def evaluating(network: nn.Module) -> Iterator[nn.Module]:
    """``network`` in eval mode and without gradients for the block; its train/eval mode is restored after
    (an inference object built from a system in training leaves the training as it found it)."""
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            yield network
    finally:
        network.train(was_training)
