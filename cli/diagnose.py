"""``vltk diagnose``: look inside recurrent language models (cell activations, gradient flow through time).

Each command parses its options and calls a function below that tests call directly; the pictures are made
by :mod:`vltk.viz.rnn_activations` and :mod:`vltk.viz.gradient_flow`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vltk.errors import DataError, VltkError, check_output_path

if TYPE_CHECKING:
    import numpy as np

diagnose_app = typer.Typer(
    help="Look inside RNN language models: cell activations over a text, gradient flow through time.",
    no_args_is_help=True,
)
console = Console()
DIAGNOSE_CELLS = ("rnn", "lstm", "gru")


def _user_errors(command):
    from vltk.cli.main import user_errors

    return user_errors(command)


def _lm_system(checkpoint: Path) -> Any:
    from vltk.tasks.runner import load_system

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
        from vltk.tasks.runner import build_datamodule, task_entry

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
    import torch

    from vltk.viz.rnn_activations import (
        activations_html,
        correlation_search,
        record_activations,
        save_activation_png,
        text_features,
    )

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
    import torch

    from vltk.tasks.lm.model import RNNLanguageModel
    from vltk.tasks.lm.vocab import SymbolVocabulary
    from vltk.viz.gradient_flow import quick_fit

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
    import torch

    from vltk.errors import unknown_choice_message
    from vltk.viz.gradient_flow import gradient_norms_through_time, save_gradient_flow_plot

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
        from vltk.rnn import CELLS

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


@diagnose_app.command("activations")
def activations_command(
    checkpoint: Annotated[Path, typer.Argument(help="A char-level lm checkpoint.")],
    out: Annotated[Path, typer.Option(help="Directory for activations.html, cell-*.png, correlations.json.")],
    text: Annotated[
        Path | None, typer.Option(help="Text to read (default: the held-out split of the checkpoint's data).")
    ] = None,
    chars: Annotated[int, typer.Option(help="Read at most this many characters.")] = 3000,
    top: Annotated[int, typer.Option(help="Units shown per text property.")] = 2,
    state: Annotated[
        str, typer.Option(help="auto | h | c (LSTM cell state; auto = c for an LSTM).")
    ] = "auto",
) -> None:
    """Colour a text by the units of a char-RNN; find units tracking quotes, line position, indentation."""

    @_user_errors
    def run() -> None:
        if state not in ("auto", "h", "c"):
            raise VltkError(f"--state must be auto, h or c, got {state!r}")
        check_output_path(out, "--out", directory=True)
        report = diagnose_activations(checkpoint, out, text=text, chars=chars, top=top, state=state)
        table = Table(title="units that track the text (Pearson r)")
        for column in ("property", "unit", "r"):
            table.add_column(column)
        for match in report.matches:
            table.add_row(match.feature, str(match.unit), f"{match.correlation:+.3f}")
        console.print(table)
        console.print(f"wrote {report.html} and {len(report.pngs)} PNG(s) in {out}")

    run()


@diagnose_app.command("gradients")
def gradients_command(
    checkpoints: Annotated[
        list[Path] | None, typer.Argument(help="lm checkpoints to compare (default: fresh rnn, lstm, gru).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory for gradient_flow.png and gradient_flow.json.")] = Path(
        "diagnose"
    ),
    text: Annotated[
        Path | None, typer.Option(help="Text to measure on (required without checkpoints).")
    ] = None,
    cells: Annotated[
        str, typer.Option(help="Cells to compare without checkpoints, comma separated.")
    ] = "rnn,lstm,gru",
    hidden: Annotated[int, typer.Option(help="Hidden size of the fresh models.")] = 128,
    steps: Annotated[int, typer.Option(help="T: the window length (steps back to measure).")] = 100,
    train_steps: Annotated[int, typer.Option(help="Adam updates given to each fresh model first.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed (models and windows).")] = 0,
) -> None:
    """Plot ||dL_T/dh_t|| for t = T..1 (log scale): a vanilla RNN's vanishing gradient vs LSTM and GRU."""

    @_user_errors
    def run() -> None:
        check_output_path(out, "--out", directory=True)
        for option, value in (("--steps", steps), ("--hidden", hidden)):
            if value < 1:
                raise VltkError(f"{option} must be >= 1, got {value}")
        if train_steps < 0:
            raise VltkError(f"--train-steps must be >= 0, got {train_steps}")
        plot, curves = diagnose_gradients(
            out,
            checkpoints=checkpoints or None,
            text=text,
            cells=[c.strip() for c in cells.split(",") if c.strip()],
            hidden=hidden,
            steps=steps,
            train_steps=train_steps,
            seed=seed,
        )
        table = Table(title="||dL_T/dh_t|| relative to t = T")
        table.add_column("model")
        backs = [b for b in (10, 25, 50, 100, 200) if b < steps]
        for b in backs:
            table.add_column(f"T-{b}")
        for name, norms in curves.items():
            last = max(norms[-1], 1e-30)
            table.add_row(name, *[f"{norms[-1 - b] / last:.1e}" for b in backs])
        console.print(table)
        console.print(f"wrote {plot}")

    run()
