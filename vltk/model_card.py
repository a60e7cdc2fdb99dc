"""The ``README.md`` model card of an export directory: Hugging Face YAML front matter and a body.

The front matter follows the Hub's model card metadata (``huggingface_hub.ModelCardData`` reads it):
``library_name: vltk``, ``tags`` (vltk, the task, the decoder or model, the file formats),
``pipeline_tag`` when the task has one on the Hub (given by the caller: the library knows no task),
``datasets`` (the config's ``data.name``), ``metrics`` and a ``model-index`` with the run's metrics when
they were recorded. The body says what the model does, on which data, with which metrics, how to load
it, the full resolved config and where it came from (vltk version, git commit).

The metrics are those of the run that wrote the checkpoint: ``RUN/metrics.json`` (``{"split": ...,
"metrics": {...}}``, written by ``vltk train`` after testing; :func:`run_metrics` finds it beside
``RUN/checkpoints/``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

CARD_FILE = "README.md"
METRICS_FILE = "metrics.json"
VERSIONS = ("torch", "torchvision", "pytorch_lightning", "python", "created")
"""The provenance entries the card lists after vltk's version and commit."""


@dataclass(frozen=True)
class RunMetrics:
    """What a run recorded: the split scored, the metrics by name, and the file they come from."""

    split: str
    metrics: dict[str, float]
    path: Path


def run_metrics(checkpoint: Path) -> RunMetrics | None:
    """``RUN/metrics.json`` of a checkpoint at ``RUN/checkpoints/NAME.ckpt`` (the layout of ``vltk train``),
    or ``None`` when the checkpoint lies elsewhere or the run recorded none."""
    if checkpoint.parent.name != "checkpoints":
        return None
    path = checkpoint.parent.parent / METRICS_FILE
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        metrics = {str(name): float(value) for name, value in document["metrics"].items()}
        return RunMetrics(str(document.get("split", "test")), metrics, path)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        logger.warning(
            "%s is unreadable (%s); the model card says the metrics were not recorded", path, error
        )
        return None


def front_matter(
    name: str, task: str, config: Mapping[str, Any], metrics: RunMetrics | None, pipeline_tag: str | None,
    formats: list[str],
) -> dict[str, Any]:  # fmt: skip
    """The card's metadata (the YAML between the ``---`` lines)."""
    model = (config.get("model") or {}).get("name")
    dataset = (config.get("data") or {}).get("name")
    meta: dict[str, Any] = {
        "library_name": "vltk",
        "tags": ["vltk", task, *([model] if model else []), "pytorch", *formats],
    }
    if pipeline_tag:
        meta["pipeline_tag"] = pipeline_tag
    if dataset:
        meta["datasets"] = [dataset]
    if metrics is not None and metrics.metrics:
        meta["metrics"] = list(metrics.metrics)
        result = {
            "task": {"type": pipeline_tag or task, "name": task},
            "dataset": {"name": dataset or "unknown", "type": dataset or "unknown", "split": metrics.split},
            "metrics": [{"type": key, "value": value, "name": key} for key, value in metrics.metrics.items()],
        }
        meta["model-index"] = [{"name": name, "results": [result]}]
    return meta


def _metrics_section(metrics: RunMetrics | None) -> list[str]:
    if metrics is None or not metrics.metrics:
        return [
            "Not recorded: no `metrics.json` beside the checkpoint's run (`vltk evaluate CKPT` measures "
            "them)."
        ]
    rows = [f"| {key} | {value:.4f} |" for key, value in metrics.metrics.items()]
    source = f"`{metrics.path.parent.name}/{metrics.path.name}`"
    return [f"On the `{metrics.split}` split, as {source} of the run recorded them "
            "(`vltk train` tests its best checkpoint when it kept one):", "", "| metric | value |",
            "|---|---|", *rows]  # fmt: skip


def _load_section(name: str, task: str, onnx: bool) -> list[str]:
    python = [
        "```python",
        "import vltk",
        "",
        f'model = vltk.from_pretrained("{name}")  # {task} inference',
        "```",
    ]
    shell = ["```bash", f"vltk predict {name} INPUT ...", f"vltk evaluate {name}", "```"]
    cli = "From the command line (`vltk predict` takes this directory wherever it takes a checkpoint):"
    lines = [*python, "", cli, "", *shell]
    if onnx:
        graphs = (
            "The ONNX graphs in `onnx/` run without PyTorch (onnxruntime and numpy); "
            "`onnx/onnx_config.json` says what goes in and out of each (vltk's docs/export.md)."
        )
        lines += ["", graphs]
    return lines


def model_card(
    name: str,
    task: str,
    config: Mapping[str, Any],
    provenance: Mapping[str, Any] | None,
    metrics: RunMetrics | None,
    *,
    pipeline_tag: str | None = None,
    onnx: bool = False,
) -> str:
    """The text of ``README.md`` for an export named ``name`` (the directory's name).

    Args:
        task: the vltk task (``captioning``, ``vqa``, ...).
        config: the checkpoint's resolved config (every default written out).
        provenance: the checkpoint's provenance (``vltk``, ``git_commit``, ``torch``, ``created``), if any.
        metrics: the run's recorded metrics (:func:`run_metrics`), if any.
        pipeline_tag: the Hub's pipeline tag of the task (``image-to-text``), if it has one.
        onnx: the export holds ONNX graphs in ``onnx/``.
    """
    formats = ["safetensors", *(["onnx"] if onnx else [])]
    meta = front_matter(name, task, config, metrics, pipeline_tag, formats)
    data = config.get("data") or {}
    given = dict(provenance or {})
    commit = given.get("git_commit") or "not recorded"
    body = [
        f"# {name}", "",
        f"A `{task}` model ({(config.get('model') or {}).get('name', 'model')}) trained with vltk, the "
        "vision-language toolkit.", "",
        "## Task", "", f"`{task}`" + (f" (Hub pipeline `{pipeline_tag}`)" if pipeline_tag else "") + ".", "",
        "## Data", "", f"Dataset `{data.get('name', 'unknown')}`; its config section:", "",
        "```yaml", yaml.safe_dump({"data": dict(data)}, sort_keys=False).rstrip(), "```", "",
        "## Metrics", "", *_metrics_section(metrics), "",
        "## How to load", "", *_load_section(name, task, onnx), "",
        "## Config", "", "The full resolved config (`vltk train` reads it back to the same run):", "",
        "```yaml", yaml.safe_dump(dict(config), sort_keys=False).rstrip(), "```", "",
        "## Provenance", "",
        f"- vltk: {given.get('vltk') or 'not recorded'}",
        f"- git commit: {commit}",
        *(f"- {key}: {given[key]}" for key in VERSIONS if given.get(key)),
    ]  # fmt: skip
    header = yaml.safe_dump(meta, sort_keys=False).rstrip()
    return f"---\n{header}\n---\n\n" + "\n".join(body) + "\n"
