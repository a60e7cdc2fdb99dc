"""``vltk export CKPT DIR [--onnx]``: the checkpoint's export directory (:mod:`vltk.export`: safetensors,
config.json, tokenizer files, the README.md model card with the task's Hub pipeline tag) and, with
``onnx``, the task's ONNX graphs in ``DIR/onnx/`` (``TASKS[task].onnx``: captioning and vqa).

Everything that can be refused is refused before a file is written: the directory (an earlier export
without ``overwrite``), the checkpoint, a task without ONNX graphs, missing ``onnx``/``onnxruntime``/
``onnxscript`` (one line: ``pip install 'vltk[onnx]'``) and a model the exporter cannot trace (the graphs
are made in a temporary folder first and moved in after the rest).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from vltk.errors import VltkError
from vltk.export import ONNX_DIR, check_export_directory, read_checkpoint, write_export
from vltk.onnx.runtime import EXPORT_MODULES, require_modules
from vltk.tasks import TASKS
from vltk.tasks.pretrained import build_pretrained, inference_entry


def onnx_tasks() -> list[str]:
    """The tasks whose models ``vltk export --onnx`` writes as ONNX graphs."""
    return [name for name, entry in TASKS.items() if entry.onnx is not None]


def export_model(checkpoint: str | Path, directory: str | Path, *, overwrite: bool = False,
                 onnx: bool = False) -> Path:  # fmt: skip
    """Write the export directory of ``checkpoint`` (and its ONNX graphs with ``onnx``); returns it."""
    path, out = Path(checkpoint), Path(directory)
    earlier = check_export_directory(out, overwrite)
    exported = read_checkpoint(path)
    entry = inference_entry(exported.task, path, exported.hyper_parameters.get("config"))
    if onnx and entry.onnx is None:
        raise VltkError(
            f"{path} holds a '{exported.task}' model; `vltk export --onnx` writes ONNX graphs of "
            f"{' and '.join(onnx_tasks())} models (export without --onnx)"
        )
    if onnx:
        require_modules(EXPORT_MODULES, "`vltk export --onnx`")
    with tempfile.TemporaryDirectory(prefix="vltk-onnx-") as staging:
        graphs = Path(staging) / ONNX_DIR  # made with the usual permissions (mkdtemp's folder is 0700)
        if onnx:
            inference = build_pretrained(exported.task, exported.hyper_parameters, exported.state_dict, path)
            entry.onnx(inference, graphs)
        write_export(exported, out, source=path, earlier=earlier, pipeline_tag=entry.pipeline_tag, onnx=onnx)
        if onnx:
            shutil.copytree(graphs, out / ONNX_DIR)
    return out
