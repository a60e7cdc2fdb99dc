"""Writing ONNX graphs of PyTorch modules: :func:`export_graph` (dynamic row axes, a parity check against
the module on inputs of another batch size) and :func:`describe_preprocessing` (an encoder's
``transforms()`` as data, so that the graphs can be fed without torchvision).

The exporter is ``torch.onnx.export(..., dynamo=True)``: the graph is captured with ``torch.export`` and
translated by ``onnxscript``'s torchlib. It is PyTorch's default and maintained exporter; the TorchScript
one (``dynamo=False``) warns on torch 2.14 that it will be removed, and it traces Python numbers read off
tensors (``int(height)``, ``bool((lengths < 0).any())``) into constants silently, where ``torch.export``
either keeps the batch symbolic or fails with a message. The price is speed: about 3 s per graph on a CPU
core (building torchlib's registry, once per call, and the decompositions), against a fraction of a
second for the TorchScript exporter; an export is made once, so correctness wins. onnxscript's graph
optimiser is left out (``optimize=False``): it took as long again as the rest of the export (measured on
the VQA graph: 7-10 s with it, 3.5-4 s without), and ONNX Runtime folds constants and fuses nodes itself
when it opens a session.

Every graph is checked after writing: ONNX Runtime runs it on inputs with a batch size other than the one
it was traced with, and the largest absolute difference from the module's outputs must stay within
:data:`TOLERANCE`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vltk.errors import VltkError
from vltk.onnx.runtime import EXPORT_MODULES, load_session, require_modules, run_session

logger = logging.getLogger(__name__)

TOLERANCE = 1e-4
"""The largest absolute difference allowed between a graph's outputs and its module's (float32)."""
OPSET = 18


def dynamic_shapes(
    names: Sequence[str], axes: Mapping[str, Mapping[int, str]]
) -> tuple[tuple[dict[int, Any] | None, ...]]:
    """``torch.export`` dims of a ``forward(*inputs)`` taking the inputs ``names`` in order:
    ``axes[name] = {axis: dim name}``; inputs that share a dim name share one ``torch.export.Dim`` (the rows
    of every input of a step are the same rows)."""
    dims: dict[str, Any] = {}
    shapes: list[dict[int, Any] | None] = []
    for name in names:
        given = axes.get(name) or {}
        specs = {axis: dims.setdefault(dim, torch.export.Dim(dim, min=1)) for axis, dim in given.items()}
        shapes.append(specs or None)
    return (tuple(shapes),)  # one entry: the ``*inputs`` of ``forward``


def export_graph(
    module: nn.Module,
    example: Mapping[str, Tensor],
    check: Mapping[str, Tensor],
    path: Path,
    *,
    output_names: Sequence[str],
    axes: Mapping[str, Mapping[int, str]],
    what: str,
) -> float:
    """Write ``module`` (eval mode; ``forward(*inputs)`` takes the tensors of ``example`` in order and
    returns a tuple of ``output_names``) to ``path`` and check it against the module on ``check`` (other
    sizes along the dynamic ``axes``). Returns the largest absolute difference found.

    Raises:
        VltkError: one line naming ``what`` when torch cannot export it, or when ONNX Runtime's outputs
            differ from the module's by more than :data:`TOLERANCE`.
    """
    require_modules(EXPORT_MODULES, "ONNX export")
    module = module.eval()
    names = list(example)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the exporter's progress and deprecation notes
            # torch.export first, by hand: given a module, torch.onnx.export falls back to other capture
            # strategies when it fails, and those may fix a dynamic axis to its example size silently.
            captured = torch.export.export(
                module, tuple(example.values()), dynamic_shapes=dynamic_shapes(names, axes), strict=False
            )
            program = torch.onnx.export(
                captured, dynamo=True, input_names=names, output_names=list(output_names),
                opset_version=OPSET, optimize=False, verbose=False,
            )  # fmt: skip
    except Exception as error:  # torch.export's and onnxscript's errors have no common base class
        reason = " ".join(str(error).split())[:300]
        raise VltkError(f"cannot export {what} to ONNX ({type(error).__name__}: {reason})") from None
    program.save(str(path), external_data=False)
    name_dynamic_axes(path, names, axes)
    difference = parity(module, check, path, output_names)
    if not difference <= TOLERANCE:
        raise VltkError(
            f"the ONNX graph of {what} differs from the PyTorch model by {difference:.2e} (> {TOLERANCE})"
        )
    logger.info("wrote %s (%s; max abs difference %.1e)", path, what, difference)
    return difference


def name_dynamic_axes(path: Path, names: Sequence[str], axes: Mapping[str, Mapping[int, str]]) -> None:
    """Give the graph's symbolic dims the names of ``axes`` (``torch.export`` calls them ``s0``, ``s21``,
    ...), in its inputs, outputs and intermediate values, so ``onnx_config.json`` says ``batch``/``rows``."""
    import onnx

    model = onnx.load(str(path))
    inputs = {value.name: value for value in model.graph.input}
    renamed: dict[str, str] = {}
    for name in names:
        dims = inputs[name].type.tensor_type.shape.dim
        for axis, dim in (axes.get(name) or {}).items():
            if dims[axis].dim_param:
                renamed[dims[axis].dim_param] = dim
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renamed:
                dim.dim_param = renamed[dim.dim_param]
    onnx.save(model, str(path))


def parity(module: nn.Module, inputs: Mapping[str, Tensor], path: Path, output_names: Sequence[str]) -> float:
    """The largest absolute difference between ``module(*inputs)`` and the graph at ``path`` on them."""
    with torch.no_grad():
        expected = module(*inputs.values())
    feeds = {name: tensor.numpy() for name, tensor in inputs.items()}
    outputs = run_session(load_session(path), feeds)
    return max(
        float(np.abs(outputs[name].astype(np.float64) - value.double().numpy()).max(initial=0.0))
        for name, value in zip(output_names, expected, strict=True)
    )


def describe_preprocessing(transform: Any) -> dict[str, Any]:
    """What a torchvision ``Compose`` of an encoder's ``transforms()`` does to a PIL image, as data.

    Known steps (``transforms.v2``, which vltk's encoders use, or the classic ``transforms``): RGB
    conversion, ``Resize`` (size, interpolation, antialias; torchvision resizes a PIL image with PIL itself,
    so ``PIL.Image.resize(size[::-1], BILINEAR)`` reproduces it), ``ToImage`` (HWC uint8 -> CHW, no change
    of values), ``ToUnitFloat`` / ``ToTensor`` (uint8 -> float32 / 255) and ``Normalize`` (mean, std).
    Anything else is listed by name under ``"other"`` (the graphs then expect what that step makes).
    """
    from torchvision import transforms as classic
    from torchvision.transforms import v2

    steps = getattr(transform, "transforms", [transform])
    described: dict[str, Any] = {"color": "RGB", "layout": "NCHW float32"}
    for step in steps:
        if isinstance(step, (v2.Resize, classic.Resize)):
            size = [step.size, step.size] if isinstance(step.size, int) else list(step.size)
            interpolation, antialias = step.interpolation.value, step.antialias
            described["resize"] = {"height": size[0], "width": size[1], "interpolation": interpolation,
                                   "antialias": antialias}  # fmt: skip
        elif isinstance(step, classic.ToTensor) or type(step).__name__ == "ToUnitFloat":
            described["scale"] = 1 / 255
        elif isinstance(step, (v2.Normalize, classic.Normalize)):
            described["mean"], described["std"] = list(step.mean), list(step.std)
        elif not isinstance(step, (v2.ToImage, v2.PILToTensor)) and type(step).__name__ != "ToRGB":
            described.setdefault("other", []).append(repr(step))
    return described
