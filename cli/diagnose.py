"""``vltk diagnose``: look inside recurrent language models (cell activations, gradient flow through time).

Each command parses its options, calls :func:`vltk.tasks.lm.diagnose.diagnose_activations` or
:func:`~vltk.tasks.lm.diagnose.diagnose_gradients` (which load or train the models and draw the pictures),
and prints a table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vltk.cli.errors import user_errors
from vltk.errors import VltkError, check_output_path

diagnose_app = typer.Typer(
    help="Look inside RNN language models: cell activations over a text, gradient flow through time.",
    no_args_is_help=True,
)
console = Console()


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
    """Colour a text by the units of a char-RNN; find units tracking quotes, line position, indentation.

    Example: vltk diagnose activations runs/lm/RUN/checkpoints/best.ckpt --out activations
    """

    @user_errors
    def run() -> None:
        from vltk.tasks.lm.diagnose import diagnose_activations  # the tasks load only when a command runs

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
    """Plot ||dL_T/dh_t|| for t = T..1 (log scale): a vanilla RNN's vanishing gradient vs LSTM and GRU.

    Example: vltk diagnose gradients rnn.ckpt lstm.ckpt gru.ckpt --out gradient_flow
    """

    @user_errors
    def run() -> None:
        from vltk.tasks.lm.diagnose import diagnose_gradients

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
