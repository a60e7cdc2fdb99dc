"""Look inside recurrent language models: cell activations over a text, gradient flow through time.

``vltk diagnose activations`` and ``vltk diagnose gradients`` (:mod:`vltk.cli.diagnose`) parse their options
and call :func:`diagnose_activations` and :func:`diagnose_gradients`; the pictures are made by
:mod:`vltk.viz.rnn_activations` and :mod:`vltk.viz.gradient_flow`. Karpathy, Johnson and Fei-Fei 2016,
"Visualizing and Understanding Recurrent Networks" (the interpretable cells); Bengio, Simard and Frasconi
1994 and Hochreiter and Schmidhuber 1997 (the vanishing gradient that the LSTM and GRU avoid).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vltk.errors import DataError, VltkError, unknown_choice_message
from vltk.rnn import CELLS
from vltk.tasks.lm.model import RNNLanguageModel
from vltk.tasks.lm.vocab import SymbolVocabulary
from vltk.tasks.runner import build_datamodule, load_system, task_entry
from vltk.viz.gradient_flow import gradient_norms_through_time, quick_fit, save_gradient_flow_plot
from vltk.viz.rnn_activations import (
    activations_html,
    correlation_search,
    record_activations,
    save_activation_png,
    text_features,
)

DIAGNOSE_CELLS = ("rnn", "lstm", "gru")
"""The cells compared by default when no checkpoints are given."""


def _lm_system(checkpoint: Path) -> Any:
    system = load_system(checkpoint)
    if system.config.task != "lm":
        raise VltkError(f"{checkpoint} is a {system.config.task} checkpoint; diagnose needs an lm checkpoint")
    return system


def _read_text(text: Path | None, system: Any, chars: int) -> str:
    """The ``--text`` file, or the held-out (val) split of the checkpoint's own data."""
    if text is not None:
        if not text.is_file():
            raise DataError(f"text file not found: {text}")
        content = text.read_text(encoding="utf-8", errors="replace")
    else:
        datamodule = build_datamodule(task_entry("lm"), system.config)
        system.attach_data(datamodule)
        content = datamodule.text("val")
    content = content[:chars]
    if len(content) < 2:
        raise DataError("the text to diagnose has fewer than 2 characters")
    return content


@dataclass
class ActivationReport:
    html: Path
    pngs: list[Path]
    matches: list[Any]


def diagnose_activations(
    checkpoint: Path,
    out: Path,
    *,
    text: Path | None = None,
    chars: int = 3000,
    top: int = 2,
    state: str = "auto",
) -> ActivationReport:
    """Record every unit over the text, find units that track the text's properties, write HTML + PNGs."""
    system = _lm_system(checkpoint)
    if system.vocab.level != "char":
        raise VltkError("activation pictures need a char-level model (one activation per character)")
    content = _read_text(text, system, chars)
    ids = torch.tensor(system.vocab.encode(content), dtype=torch.long)  # [T]
    activations = record_activations(system.model, ids, state=state)  # [T, U]
    matches = correlation_search(activations, text_features(content), top=top)
    out.mkdir(parents=True, exist_ok=True)
    page = out / "activations.html"
    title = (
        f"{system.model.cell.upper()} cells over {text.name if text else 'held-out text'} ({checkpoint.name})"
    )
    page.write_text(activations_html(content, activations, matches, title), encoding="utf-8")
    pngs, drawn = [], set()
    for match in matches:
        if match.feature in drawn:
            continue  # the best unit of each property
        drawn.add(match.feature)
        pngs.append(
            save_activation_png(content, activations, match, out / f"cell-{match.feature}-{match.unit}.png")
        )
    (out / "correlations.json").write_text(
        json.dumps([m.__dict__ for m in matches], indent=2) + "\n", encoding="utf-8"
    )
    return ActivationReport(page, pngs, matches)


def _fresh_models(content: str, cells: list[str], hidden: int, train_steps: int, seed: int) -> dict[str, Any]:
    vocab = SymbolVocabulary.build(content)
    ids = torch.tensor(vocab.encode(content), dtype=torch.long)  # [N]
    models = {}
    for cell in cells:
        torch.manual_seed(seed)
        model = RNNLanguageModel(
            len(vocab), cell=cell, hidden_dim=hidden, embed_dim=32 if cell != "mut1" else hidden
        )
        if train_steps > 0:
            if ids.numel() < 60:
                raise DataError("--train-steps needs a text of at least 60 characters")
            quick_fit(model, ids, steps=train_steps, seq_len=min(50, ids.numel() - 2))
        models[cell] = (model, vocab)
    return models


def diagnose_gradients(
    out: Path,
    *,
    checkpoints: list[Path] | None = None,
    text: Path | None = None,
    cells: list[str] | None = None,
    hidden: int = 128,
    steps: int = 100,
    train_steps: int = 200,
    windows: int = 8,
    seed: int = 0,
) -> tuple[Path, dict[str, np.ndarray]]:
    """``||dL_T/dh_t||`` for t = T..1 for each model (checkpoints, or fresh ones of each cell trained for
    ``train_steps`` on the text), averaged over ``windows`` windows of ``steps`` symbols; a log-scale plot."""
    if checkpoints:
        systems = [_lm_system(path) for path in checkpoints]
        content = _read_text(text, systems[0], 200_000)
        models = {
            f"{s.model.cell} ({p.parent.parent.name or p.name})": (s.model, s.vocab)
            for s, p in zip(systems, checkpoints)
        }
    else:
        if text is None:
            raise VltkError("give --text FILE (or lm checkpoints) to measure gradient flow on")
        content = _read_text(text, None, 200_000)
        cells = cells or list(DIAGNOSE_CELLS)
        for cell in cells:
            if cell not in CELLS:
                raise VltkError(unknown_choice_message("cell", cell, CELLS))
        models = _fresh_models(content, cells, hidden, train_steps, seed)
    curves = {}
    generator = torch.Generator().manual_seed(seed)
    for name, (model, vocab) in models.items():
        ids = torch.tensor(vocab.encode(content), dtype=torch.long)  # [N]
        if ids.numel() < steps + 2:
            raise DataError(f"the text has {ids.numel()} symbols, fewer than --steps {steps} + 2")
        starts = torch.randint(0, ids.numel() - steps - 1, (windows,), generator=generator).tolist()
        window = torch.stack([ids[s : s + steps + 1] for s in starts])  # [W, T+1]
        curves[name] = gradient_norms_through_time(model, window[:, :-1], window[:, 1:])
    out.mkdir(parents=True, exist_ok=True)
    plot = save_gradient_flow_plot(
        curves, out / "gradient_flow.png", f"gradient flow through time ({steps} steps)"
    )
    (out / "gradient_flow.json").write_text(
        json.dumps({name: values.tolist() for name, values in curves.items()}, indent=1) + "\n",
        encoding="utf-8",
    )
    return plot, curves
