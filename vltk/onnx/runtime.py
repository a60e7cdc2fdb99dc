"""Running exported graphs with ONNX Runtime (no torch): sessions, named inputs and outputs, and a decoder
step graph as the numpy step function :func:`vltk.onnx.beam.beam_search` decodes with.

The numpy step protocol mirrors :data:`vltk.decoding.StepFn`: ``step(tokens [R], state) -> (logprobs
[R, V], state)`` where ``state`` is a ``dict`` of arrays with the rows first (``R`` = images times beams):
the recurrent tensors (``h``, ``c``), the per-image constants the step reads (``regions``,
``projected_keys``, ``mask``) and, after a step of a decoder with attention, ``attention [R, N]``.
Expanding a state repeats every row ``k`` times consecutively; selecting re-indexes every array.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vltk.errors import VltkError

ONNX_DIR = "onnx"
"""The folder of an export directory that holds the ONNX graphs."""
CONFIG_FILE = "onnx_config.json"
"""What the graphs take and return, the vocabulary's special ids, the image preprocessing."""
ONNX_EXTRA = "pip install 'vltk[onnx]'"
EXPORT_MODULES = ("onnx", "onnxruntime", "onnxscript")
"""What ``torch.onnx.export(dynamo=True)`` and the parity check need."""
RUNTIME_MODULES = ("onnxruntime",)

State = dict[str, np.ndarray]


def require_modules(modules: Iterable[str], purpose: str) -> None:
    """Raise one line naming the missing ``modules`` and the extra that installs them."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise VltkError(f"{purpose} needs {', '.join(missing)}, which is not installed: {ONNX_EXTRA}")


def load_session(path: str | Path) -> Any:
    """An ``onnxruntime.InferenceSession`` of the graph at ``path`` on the CPU."""
    require_modules(RUNTIME_MODULES, "running ONNX graphs")
    import onnxruntime

    if not Path(path).is_file():
        raise VltkError(f"ONNX graph not found: {path}")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_session(session: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``session`` on the arrays of ``feeds`` it takes (others are ignored); its outputs by name."""
    names = [node.name for node in session.get_inputs()]
    missing = [name for name in names if name not in feeds]
    if missing:
        raise VltkError(f"the ONNX graph needs the inputs {', '.join(missing)}")
    outputs = session.run(None, {name: feeds[name] for name in names})
    return {node.name: value for node, value in zip(session.get_outputs(), outputs, strict=True)}


class OnnxStep:
    """A decoder step graph as a numpy step function: the state's arrays that the graph takes go in; an
    output ``next_X`` becomes the state's ``X``, and the others (``attention``) join the state.

    Args:
        session: the ``decoder_step.onnx`` session (inputs ``tokens`` and state arrays; outputs
            ``logprobs``, ``next_h``, ``next_c``, ... and, with attention, ``attention``).
    """

    def __init__(self, session: Any) -> None:
        self.session = session

    def __call__(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        outputs = run_session(self.session, {**state, "tokens": tokens.astype(np.int64)})
        logprobs = outputs.pop("logprobs")  # [R, V]
        new = {name.removeprefix("next_"): value for name, value in outputs.items()}
        return logprobs, {**state, **new}


def read_onnx_config(directory: str | Path) -> dict[str, Any]:
    """``onnx_config.json`` of an ``onnx/`` folder (or of the export directory that holds one)."""
    folder = Path(directory)
    if not (folder / CONFIG_FILE).is_file() and (folder / ONNX_DIR / CONFIG_FILE).is_file():
        folder = folder / ONNX_DIR
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise VltkError(f"{folder} holds no {CONFIG_FILE} (make one with `vltk export CKPT DIR --onnx`)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise VltkError(f"{path}: not JSON ({error})") from None


def graph_signature(session: Any) -> dict[str, Any]:
    """The inputs and outputs of a session's graph: name -> ``{"shape": [...], "dtype": ...}`` (a
    dynamic axis is its name, e.g. ``"batch"``)."""

    def describe(nodes: Any) -> dict[str, Any]:
        return {
            node.name: {"shape": list(node.shape), "dtype": DTYPES.get(node.type, node.type)}
            for node in nodes
        }

    return {"inputs": describe(session.get_inputs()), "outputs": describe(session.get_outputs())}


DTYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(bool)": "bool"}


def preprocess_images(images: Sequence[Any], preprocessing: Mapping[str, Any]) -> np.ndarray:
    """PIL images as an encoder graph's ``images [B, 3, H, W]`` float32, as ``preprocessing`` (the
    ``onnx_config.json`` entry) describes: RGB, resize with PIL (what torchvision does to a PIL image),
    scale to [0, 1], normalise."""
    from PIL import Image

    resize = preprocessing.get("resize")
    mean = np.float32(preprocessing.get("mean", [0.0] * 3)).reshape(3, 1, 1)  # [3, 1, 1]
    std = np.float32(preprocessing.get("std", [1.0] * 3)).reshape(3, 1, 1)  # [3, 1, 1]
    batch = []
    for image in images:
        image = image.convert("RGB")
        if resize is not None:
            filters = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}
            image = image.resize((resize["width"], resize["height"]), filters[resize["interpolation"]])
        pixels = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)  # [3, H, W]
        batch.append((pixels.astype(np.float32) / np.float32(255) - mean) / std)  # [3, H, W]
    return np.stack(batch)  # [B, 3, H, W]
