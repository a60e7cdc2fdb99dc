"""``vltk serve CKPT_OR_EXPORT...``: a local web demo (Gradio) of trained models, one tab per model.

Each model is loaded as ``vltk predict`` loads it (:mod:`vltk.tasks.pretrained`: a checkpoint or an export
directory, its own decoding settings) and shown by its task's tab (``TASKS[task].demo``, in
``tasks/<task>/demo.py``); several models share the process, each request runs on its model's device.
The server binds to 127.0.0.1 unless told otherwise and offers no public share link; uploads go to a
temporary folder of this run (``GRADIO_TEMP_DIR``), removed when the server stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vltk.errors import VltkError
from vltk.export import read_model
from vltk.tasks.pretrained import build_pretrained, inference_entry, warn_about_version
from vltk.tasks.webdemo import MAX_UPLOAD_MB, require_gradio

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


@dataclass
class ServedModel:
    """One loaded model and its tab.

    Attributes:
        source: the checkpoint or export directory it came from.
        task: its task name.
        inference: the task's inference object (on ``device``).
        demo: its tab (``TASKS[task].demo(inference)``).
        device: where its requests run.
    """

    source: Path
    task: str
    inference: Any
    demo: Any
    device: torch.device

    @property
    def label(self) -> str:
        """The tab's title: the task and the file (its run directory for ``best.ckpt``/``last.ckpt``)."""
        name = self.source.name
        if self.source.suffix == ".ckpt" and self.source.parent.name == "checkpoints":
            name = f"{self.source.parent.parent.name}/{name}"
        return f"{self.task}: {name}"


def pick_device(device: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto`` (a GPU when there is one) as a torch device; a
    device this machine lacks is one line naming it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise VltkError(f"--device: unknown device '{device}' (cpu, cuda, cuda:N, mps or auto)") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise VltkError(f"--device {device}: this machine has no CUDA GPU (torch sees none); use cpu")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise VltkError(f"--device {device}: MPS is not available here; use cpu")
    return chosen


def load_served_model(path: str | Path, device: torch.device) -> ServedModel:
    """A checkpoint or export directory as a :class:`ServedModel` on ``device``."""
    model = read_model(path)
    entry = inference_entry(model.task, path, model.hyper_parameters.get("config", {}))
    if entry.demo is None:
        raise VltkError(f"{path}: `vltk serve` has no tab for {model.task} models yet")
    warn_about_version(model, path)
    inference = build_pretrained(model.task, model.hyper_parameters, model.state_dict, path)
    inference.model.to(device)
    return ServedModel(Path(path), model.task, inference, entry.demo(inference), device)


def load_served_models(paths: Sequence[str | Path], device: str = "cpu") -> list[ServedModel]:
    """Every path loaded (each error names its path before anything is served)."""
    if not paths:
        raise VltkError("name at least one checkpoint or export directory to serve")
    chosen = pick_device(device)
    return [load_served_model(path, chosen) for path in paths]


def build_app(models: Sequence[ServedModel]) -> Any:
    """The Gradio app: a header and one tab per model (the tabs' element ids are ``tab0-...``,
    ``tab1-...`` in the order given)."""
    gr = require_gradio()
    with gr.Blocks(title="vltk demo", analytics_enabled=False) as app:
        gr.Markdown(
            "## vltk demo\n" + "\n".join(f"* **{m.label}** ({m.device.type}): {m.source}" for m in models)
        )
        with gr.Tabs():
            for index, model in enumerate(models):
                with gr.Tab(model.label, id=f"tab{index}", elem_id=f"tab{index}"):
                    gr.Markdown(f"### {model.demo.title}")
                    model.demo.build(gr, f"tab{index}")
    return app


@contextlib.contextmanager
def upload_folder() -> Iterator[Path]:
    """A temporary folder for Gradio's uploads and outputs (``GRADIO_TEMP_DIR``), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="vltk-serve-"))
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous
        shutil.rmtree(folder, ignore_errors=True)


def launch(app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, block: bool = True) -> Any:
    """Start serving ``app`` on ``host:port`` (no share link; uploads up to ``MAX_UPLOAD_MB``); returns
    the app's local URL. ``block``: serve until interrupted (Ctrl+C), then close."""
    try:
        app.launch(
            server_name=host,
            server_port=port,
            share=False,
            inbrowser=False,
            prevent_thread_lock=True,
            quiet=True,
            show_error=False,
            max_file_size=f"{MAX_UPLOAD_MB}mb",
            footer_links=[],
            ssr_mode=False,
        )
    except OSError as error:  # the port is taken
        raise VltkError(f"cannot serve on {host}:{port}: {' '.join(str(error).split())}") from None
    if block:
        try:
            app.block_thread()
        finally:
            app.close()
    return app.local_url


def serve(
    paths: Sequence[str | Path], host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, device: str = "cpu"
) -> None:
    """``vltk serve``: load every model, build the app, serve until interrupted, remove the uploads."""
    require_gradio()  # the missing extra is named before any model is read
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing is sent anywhere
    models = load_served_models(paths, device)
    with upload_folder() as folder:
        app = build_app(models)
        logger.info("uploads go to %s (removed at exit)", folder)
        print(f"vltk serve: {len(models)} model(s) at http://{host}:{port} (Ctrl+C stops)", flush=True)
        launch(app, host, port)
