"""ONNX graphs of vltk models and what runs them without PyTorch.

``vltk export CKPT DIR --onnx`` writes ``DIR/onnx/`` (the task's graphs and ``onnx_config.json``, which
says what goes in and comes out of each). This package is the task-free part:

- :mod:`vltk.onnx.runtime`: ONNX Runtime sessions, named inputs and outputs, a decoder step graph as a
  step function over numpy arrays, the ``onnx_config.json`` reader, the install hint;
- :mod:`vltk.onnx.beam`: batched beam search over such a step function, in numpy (the algorithm of
  :mod:`vltk.decoding.beam`, restated line for line, so it returns the same captions);
- :mod:`vltk.onnx.exporter`: ``torch.onnx.export`` with dynamic batch axes, a parity check of each graph
  against the PyTorch module, the description of an image preprocessing (needs torch).

``vltk.onnx``, ``vltk.onnx.runtime`` and ``vltk.onnx.beam`` import numpy only (onnxruntime when a session
is opened), never torch: a deployment needs numpy, onnxruntime and these two files. The task parts (which
modules make the graphs, their inputs) are ``vltk.tasks.captioning.onnx`` and ``vltk.tasks.vqa.onnx``.
"""

from vltk.onnx.beam import NumpyBeamResult, beam_search
from vltk.onnx.runtime import (
    CONFIG_FILE,
    ONNX_DIR,
    ONNX_EXTRA,
    OnnxStep,
    load_session,
    read_onnx_config,
    require_modules,
    run_session,
)

__all__ = [
    "CONFIG_FILE",
    "ONNX_DIR",
    "ONNX_EXTRA",
    "NumpyBeamResult",
    "OnnxStep",
    "beam_search",
    "load_session",
    "read_onnx_config",
    "require_modules",
    "run_session",
]
