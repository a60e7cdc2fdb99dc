"""The ``vltk`` command line: each command parses its arguments, calls an importable function, prints.

User errors (``vltk.errors.VltkError``: a bad config key, a missing file, an unreadable image, a misspelt
task) are printed as one line and exit with status 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vltk.cli.diagnose import diagnose_app
from vltk.cli.errors import err_console, user_errors
from vltk.errors import VltkError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Built-in datasets: synthesise, generate demos, inspect.", no_args_is_help=True)
config_app = typer.Typer(
    help="Configs: the resolved config of a task, with each key's help.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")
app.add_typer(diagnose_app, name="diagnose")
console = Console()


def _print_version(value: bool) -> None:
    if value:
        from vltk.cli.environment import version_line

        console.print(version_line(), highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print vltk's version and exit."
        ),
    ] = False,
) -> None:
    """vltk: vision-language toolkit (CNN encoders + RNN decoders with attention) on PyTorch Lightning.

    Start with vltk train captioning; vltk list shows every task, dataset
    and model; vltk env prints what a bug report needs.
    """


SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override a config value, e.g. --set trainer.max_epochs=5 (repeatable)."
    ),
]


def device_overrides(
    accelerator: str | None,
    devices: str | None,
    strategy: str | None,
    num_nodes: int | None,
    precision: str | None,
    seed: int | None,
    deterministic: bool | None,
) -> list[str]:
    """Lightning device flags as config overrides, so they are validated and recorded like the rest."""
    overrides = []
    for key, value in (
        ("trainer.accelerator", accelerator),
        ("trainer.devices", devices),
        ("trainer.strategy", strategy),
        ("trainer.num_nodes", num_nodes),
        ("trainer.precision", precision),
        ("seed", seed),
        ("trainer.deterministic", deterministic),
    ):
        if value is not None:
            overrides.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    return overrides


def print_metrics(split: str, metrics: dict[str, float], title: str | None = None) -> None:
    table = Table(title=title or f"{split} metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)


def print_samples(rows: list[dict[str, str]], title: str = "samples") -> None:
    """A table of a few evaluated examples (``system.sample_rows()``: the same columns in every row)."""
    if not rows:
        return
    table = Table(title=title, show_lines=True)
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    console.print(table)


def write_json_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


@app.command()
@user_errors
def train(
    task: Annotated[
        str,
        typer.Argument(help="Task to train: captioning, vqa, dialog, lm or navigation (see `vltk list`)."),
    ],
    config: Annotated[str | None, typer.Option(help="Config file, or the name of a shipped config.")] = None,
    overrides: SetOption = None,
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (default runs/TASK/TIMESTAMP).")] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Checkpoint to resume from; 'last': the run directory's last.ckpt; 'auto': that file when "
            "it exists, else a fresh start (what a requeued cluster job runs)."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (overrides the config's).")] = None,
    accelerator: Annotated[str | None, typer.Option(help="cpu | gpu | auto (Lightning).")] = None,
    devices: Annotated[str | None, typer.Option(help="Number of devices, or 'auto' (Lightning).")] = None,
    strategy: Annotated[str | None, typer.Option(help="auto | ddp | ... (Lightning).")] = None,
    num_nodes: Annotated[int | None, typer.Option(help="Number of nodes (Lightning).")] = None,
    precision: Annotated[
        str | None, typer.Option(help="32-true | bf16-mixed | 16-mixed (Lightning).")
    ] = None,
    deterministic: Annotated[bool | None, typer.Option(help="Lightning's deterministic mode.")] = None,
) -> None:
    """Train a task (its default config on built-in data when given nothing else), then test it.

    Tasks and their shipped configs (--config NAME; `vltk config show TASK`
    prints one with each key's help):
    captioning: default, show_tell, image_blind, resnet_coco, regions, updown,
    adaptive, scst (--set model.init_from=CKPT), updown_coco, scst_coco;
    vqa: default, cnn_lstm, stacked_attention, question_only, vqa_v2;
    dialog: default, generative, no_history, question_only;
    lm: default, min_char_rnn, linux_rnn, linux_lstm, word;
    navigation: default, gotolocal, pickuploc, redball_rgb (BabyAI),
    r2r_houses, r2r_houses_seq2seq, r2r (R2R).

    Example: vltk train vqa --config stacked_attention --set trainer.max_epochs=3 --seed 1
    """
    from vltk.tasks.runner import end_process_group, global_rank, launcher_run_dir, load_task_config
    from vltk.tasks.runner import train as run_training

    extra = device_overrides(accelerator, devices, strategy, num_nodes, precision, seed, deterministic)
    this_run = run_dir or (launcher_run_dir(task) if resume is not None else None)
    own_config = resume is not None and config is None and this_run is not None
    own_config = own_config and (this_run / "config.yaml").is_file()
    if own_config:
        config = str(this_run / "config.yaml")  # resuming: the run's own resolved config, plus any --set
    cfg = load_task_config(task, config, list(overrides or []) + extra, old_keys=own_config)
    result = run_training(cfg, run_dir=run_dir, resume=resume)
    end_process_group()
    if global_rank() != 0:  # DDP: every rank runs this command; one prints
        return
    if result.metrics:
        print_metrics("test", result.metrics, title=f"test metrics ({task})")
        print_samples(result.samples)
    console.print(f"run directory: [bold]{result.run_dir}[/]")


@app.command()
@user_errors
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by `vltk train`.")],
    split: Annotated[str, typer.Option(help="Dataset split to evaluate: val | test | train.")] = "test",
    overrides: SetOption = None,
    output: Annotated[Path | None, typer.Option(help="Write {split, metrics} JSON here.")] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(help="Write predictions here, in the task's official results format."),
    ] = None,
    accelerator: Annotated[str | None, typer.Option(help="cpu | gpu | auto (Lightning).")] = None,
    devices: Annotated[str | None, typer.Option(help="Number of devices (Lightning).")] = None,
    strategy: Annotated[str | None, typer.Option(help="auto | ddp | ... (Lightning).")] = None,
    episodes: Annotated[
        int | None, typer.Option(help="navigation: number of held-out episodes to play (fresh seeds).")
    ] = None,
) -> None:
    """Evaluate a checkpoint on a split and print the metrics (several processes give the same numbers).

    Example: vltk evaluate runs/captioning/RUN/checkpoints/best.ckpt --split test --output metrics.json
    """
    from vltk.errors import check_output_path
    from vltk.tasks.runner import end_process_group, global_rank, write_metrics
    from vltk.tasks.runner import evaluate as run_evaluation

    for path, what in ((output, "--output"), (predictions, "--predictions")):
        if path is not None:
            check_output_path(path, what)
    extra = device_overrides(accelerator, devices, strategy, None, None, None, None)
    if episodes is not None:
        extra.append(episodes_override(checkpoint, split, episodes))
    result = run_evaluation(checkpoint, split=split, overrides=list(overrides or []) + extra)
    end_process_group()
    if global_rank() != 0:  # DDP: every rank evaluates its shard; the metrics are gathered; one prints
        return
    print_metrics(split, result.metrics)
    print_samples(result.samples)
    if output is not None:
        write_metrics(output, split, result.metrics)
        console.print(f"metrics written to {output}")
    if predictions is not None:
        write_json_rows(predictions, result.predictions)
        console.print(f"{len(result.predictions)} predictions written to {predictions}")


def episodes_override(checkpoint: Path, split: str, episodes: int) -> str:
    """``--episodes N`` as the config override of a navigation checkpoint (an error for other tasks)."""
    from vltk.tasks.runner import load_system

    config = load_system(checkpoint).config
    if config.task != "navigation":
        raise VltkError(
            f"--episodes applies to navigation checkpoints; {checkpoint} is a {config.task} checkpoint"
        )
    if config.data.get("name") != "babyai":
        raise VltkError(
            f"--episodes applies to BabyAI checkpoints; {checkpoint} follows R2R instructions: choose them "
            "with --split (train, val_seen, val_unseen, test)"
        )
    if episodes < 1:
        raise VltkError(f"--episodes must be >= 1, got {episodes}")
    if split not in ("val", "test"):
        raise VltkError(f"unknown split '{split}' for navigation (choices: val, test)")
    return f"data.{split}_episodes={episodes}"


@app.command()
@user_errors
def predict(
    checkpoint: Annotated[
        Path, typer.Argument(help="A checkpoint from `vltk train`, or a `vltk export` directory.")
    ],
    inputs: Annotated[
        list[Path] | None, typer.Argument(help="Input file(s): images for captioning and VQA.")
    ] = None,
    question: Annotated[
        str | None, typer.Option(help="vqa/dialog: the question to ask about the image.")
    ] = None,
    caption: Annotated[
        str | None, typer.Option(help="dialog: the image's caption (the history starts with it).")
    ] = None,
    beam_size: Annotated[
        int | None, typer.Option(help="Beam size (1 = greedy; default: the checkpoint's).")
    ] = None,
    max_length: Annotated[int | None, typer.Option(help="Maximum output length in words.")] = None,
    attention_map: Annotated[
        Path | None,
        typer.Option(
            help="Write a picture of the attention (per word / per glimpse; R2R: the paths seen from above "
            "and the attention over the instruction per step)."
        ),
    ] = None,
    prime: Annotated[str | None, typer.Option(help="lm: text to start sampling from.")] = None,
    length: Annotated[int | None, typer.Option(help="lm: number of characters/words to sample.")] = None,
    temperature: Annotated[
        float | None, typer.Option(help="lm: sampling temperature (lower = more conservative).")
    ] = None,
    level: Annotated[str | None, typer.Option(help="navigation: BabyAI level id.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="navigation/lm: random seed of the episode/sample.")
    ] = None,
    gif: Annotated[
        Path | None, typer.Option(help="navigation: write the episode as an animated GIF.")
    ] = None,
    episode: Annotated[
        str | None,
        typer.Option(
            help="navigation (R2R): the instruction id PATHID_K to follow (default: the split's first)."
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="navigation (R2R): the split holding --episode (default: the checkpoint's test split)."
        ),
    ] = None,
) -> None:
    """Run a trained model on new input: caption images, answer a question, sample text, play an episode.

    Decoding follows the checkpoint's own config (its `decoding` section; lm: its `sample` section) unless
    an option overrides it. Each task takes only its own options (`vltk.tasks.TASKS[task].predict_request`).

    Example: vltk predict runs/vqa/RUN/checkpoints/best.ckpt image.png --question "what color is the shape?"
    """
    from vltk.tasks.pretrained import predict as run_predict

    options = dict(
        inputs=list(inputs or []),
        question=question,
        caption=caption,
        beam_size=beam_size,
        max_length=max_length,
        attention_map=attention_map,
        prime=prime,
        length=length,
        temperature=temperature,
        level=level,
        seed=seed,
        gif=gif,
        episode=episode,
        split=split,
    )
    for line in run_predict(checkpoint, options):
        console.print(line, highlight=False)


@app.command()
@user_errors
def chat(
    checkpoint: Annotated[
        Path, typer.Argument(help="A dialog checkpoint from `vltk train dialog` (or an export directory).")
    ],
    image: Annotated[Path, typer.Argument(help="The image to talk about.")],
    caption: Annotated[
        str | None,
        typer.Option(help="The image's caption (the dialog history starts with it); asked for when omitted."),
    ] = None,
    beam_size: Annotated[
        int | None, typer.Option(help="Beam size of a generative model (default: the checkpoint's).")
    ] = None,
    max_length: Annotated[int | None, typer.Option(help="Longest answer in words.")] = None,
) -> None:
    """Talk about an image with a dialog model: one question per line, answered with the history so far.

    A generative model writes its answers (beam search); a discriminative one picks the best of its training
    answers. Type /reset to forget the history, quit (or Ctrl+D) to stop. Questions can also be piped in:
    `printf 'how many shapes are there?\\nwhat colour is it?\\n' | vltk chat CKPT image.png --caption '...'`.

    Example: vltk chat runs/dialog/RUN/checkpoints/best.ckpt image.png --caption "a red square"
    """
    from vltk.tasks.dialog.predict import chat_rounds, open_session
    from vltk.tasks.dialog.session import DialogAnswer
    from vltk.tasks.pretrained import from_pretrained

    answerer = from_pretrained(checkpoint)
    if answerer.task != "dialog":
        raise VltkError(f"vltk chat needs a dialog checkpoint; {checkpoint} is a {answerer.task} one")
    interactive = sys.stdin.isatty()
    if caption is None and interactive:
        caption = console.input("[bold]caption[/] (describe the image; Enter for none): ")
    session = open_session(answerer, image, caption or "", beam_size=beam_size, max_length=max_length)
    kind = "generates" if answerer.generative else "ranks its training answers for"
    console.print(f"[bold]{image}[/] - caption: {caption or '(none)'}", highlight=False)
    console.print(f"[dim]the model {kind} each answer; /reset forgets the history, quit stops[/]")
    for reply in chat_rounds(session, _question_lines(interactive)):
        if isinstance(reply, DialogAnswer):
            prefix = "" if interactive else f"[bold]Q:[/] {reply.question}\n"
            console.print(f"{prefix}[bold green]A:[/] {reply.answer}", highlight=False)
            if reply.unknown_words:
                console.print(f"[yellow]words the model never saw: {', '.join(reply.unknown_words)}[/]")
        else:
            console.print(f"[yellow]{reply}[/]", highlight=False)


def _question_lines(interactive: bool):
    """Lines typed at a prompt (until Ctrl+D / Ctrl+C), or read from a pipe."""
    if not interactive:
        yield from sys.stdin
        return
    while True:
        try:
            yield console.input("[bold]Q:[/] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return


@app.command()
@user_errors
def score(
    task: Annotated[
        str, typer.Argument(help="Task whose metrics to compute: captioning, vqa, dialog or navigation.")
    ],
    predictions: Annotated[
        Path, typer.Option(help="Predictions in the task's official results format (JSON).")
    ],
    references: Annotated[
        Path | None,
        typer.Option(
            help="captioning: COCO captions_*.json or Karpathy dataset JSON (with --split); "
            "dialog: the VisDial v1.0 dialogs JSON; navigation: R2R_<split>.json."
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="Split of a Karpathy JSON to score against.")] = None,
    questions: Annotated[Path | None, typer.Option(help="vqa: questions JSON (VQA v2 layout).")] = None,
    annotations: Annotated[
        Path | None,
        typer.Option(help="vqa: annotations JSON (VQA v2 layout); dialog: dense annotations JSON (NDCG)."),
    ] = None,
    rule: Annotated[
        str | None,
        typer.Option(
            help="vqa: the official vqaEval.py rule: a013f00 (its head since 2021, the default) | "
            "pre-a013f00 (the earlier rule, behind numbers published before 2021)."
        ),
    ] = None,
    connectivity: Annotated[
        Path | None,
        typer.Option(help="navigation: the Matterport connectivity folder ({scan}_connectivity.json files)."),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write {split, metrics} JSON here.")] = None,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial",
            help="dialog: score the good dialogs when the references hold malformed ones (else an error); "
            "the result is labelled partial.",
        ),
    ] = False,
) -> None:
    """Score a predictions file against references, without a model (e.g. re-score a submission).

    What each task takes besides --predictions:
    captioning: --references (COCO captions JSON, or a Karpathy JSON with --split);
    vqa: --questions and --annotations (VQA v2), --rule;
    dialog: --references (VisDial v1.0), --annotations (dense, for NDCG), --allow-partial;
    navigation: --references (R2R_<split>.json) and --connectivity (folder).
    lm has no predictions file to score (vltk evaluate reports bits per character).

    Example: vltk score captioning --predictions results.json --references captions_val2014.json
    """
    from vltk.errors import check_output_path
    from vltk.tasks.runner import task_entry, write_metrics
    from vltk.tasks.training import ScoreRequest

    entry = task_entry(task)
    if output is not None:
        check_output_path(output, "--output")
    if entry.score is None:
        raise VltkError(f"`vltk score` does not support {task} yet")
    request = ScoreRequest(
        predictions,
        references,
        split,
        questions,
        annotations,
        rule=rule,
        allow_partial=allow_partial,
        connectivity=connectivity,
    )
    given = {"references": references, "split": split, "questions": questions, "annotations": annotations}
    given["rule"] = rule
    given["allow_partial"] = allow_partial or None
    given["connectivity"] = connectivity
    unused = [
        f"--{name.replace('_', '-')}"
        for name, value in given.items()
        if value is not None and name not in entry.score_options
    ]
    if unused:
        raise VltkError(f"{', '.join(unused)} do(es) not apply to `vltk score {task}`")
    result = entry.score(request)
    for note in result.notes:
        err_console.print(note, highlight=False)
    title = f"{task} metrics: {predictions}"
    if result.partial is not None:
        scored, skipped = result.partial["scored_dialogs"], result.partial["skipped_dialogs"]
        title += f" (PARTIAL: {scored} of {scored + skipped} dialogs)"
    print_metrics(split or "scored", result.metrics, title=title)
    if output is not None:
        write_metrics(output, split or "scored", result.metrics, partial=result.partial)
        console.print(f"metrics written to {output}")


@app.command()
@user_errors
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by `vltk train`.")],
    directory: Annotated[Path, typer.Argument(help="Output directory (Hugging Face layout).")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an export already in DIRECTORY.")
    ] = False,
    onnx: Annotated[
        bool,
        typer.Option(
            "--onnx",
            help="Also write ONNX graphs to DIRECTORY/onnx (captioning, vqa; pip install 'vltk\\[onnx]').",
        ),
    ] = False,
) -> None:
    """Write model.safetensors + config.json + tokenizer files + a README.md model card; load with
    vltk.from_pretrained(DIR).

    With --onnx also DIRECTORY/onnx: the captioner's encoder.onnx and
    decoder_step.onnx (beam search runs on them in onnxruntime) or the VQA
    model.onnx, and onnx_config.json (inputs, outputs, special ids,
    preprocessing). See docs/export.md. A directory that already holds an
    export is refused unless --overwrite.

    Example: vltk export runs/captioning/RUN/checkpoints/best.ckpt exports/captioner --onnx
    """
    from vltk.tasks.export import export_model

    out = export_model(checkpoint, directory, overwrite=overwrite, onnx=onnx)
    console.print(f"exported to [bold]{out}[/]: " + ", ".join(sorted(p.name for p in out.iterdir())))


@app.command()
@user_errors
def serve(
    models: Annotated[
        list[Path],
        typer.Argument(help="Checkpoints from `vltk train` or `vltk export` directories: one tab each."),
    ],
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    device: Annotated[
        str, typer.Option(help="Where the models run: cpu | cuda | cuda:N | mps | auto (a GPU if any).")
    ] = "cpu",
) -> None:
    """Start a local web demo of trained models (Gradio: pip install 'vltk\\[demo]').

    One tab per model: captioning (upload an image; the beam's captions and
    each word's attention over it), VQA (an image and a question; the top-5
    answers and each glimpse's attention), dialog (an image, its caption,
    then a conversation), navigation (a BabyAI level and seed, or an R2R
    instruction, watched step by step with the attention over its words)
    and lm (a sample, coloured by a cell's activation).

    Example: vltk serve runs/captioning/RUN/checkpoints/best.ckpt exports/vqa
    then open http://127.0.0.1:7860. No public link is made; uploads stay in
    a temporary folder removed at exit. See docs/serve.md.
    """
    from vltk.tasks.serve import serve as run_server

    run_server(models, host=host, port=port, device=device)


@config_app.command("show")
@user_errors
def config_show(
    task: Annotated[str, typer.Argument(help="The task: captioning, vqa, dialog, lm or navigation.")],
    config: Annotated[str | None, typer.Option(help="Config file, or the name of a shipped config.")] = None,
    overrides: SetOption = None,
) -> None:
    """Print the fully resolved config (every default written out) with each key's help.

    The output is YAML that `vltk train TASK --config FILE` reads back to the
    same run; each key's comment is its help (from the docstring of the class
    that takes it), or its type where the class says nothing.

    Example: vltk config show captioning --config show_tell --set optim.lr=5e-4
    """
    from vltk.config_doc import annotated_yaml
    from vltk.tasks.runner import load_task_config
    from vltk.tasks.training import RUN_KEY_HELP

    cfg = load_task_config(task, config, list(overrides or []))
    given = [task, *([f"--config {config}"] if config else []), *(f"--set {o}" for o in overrides or [])]
    title = f"vltk config show {' '.join(given)}: the resolved config; each key's help"
    shown = annotated_yaml(cfg, title, fallback=RUN_KEY_HELP)
    print(shown.text, end="")


@app.command("env")
def env(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Print this installation's versions, devices and folders, for a bug report.

    vltk and the packages it runs on, Python and the platform, CPU threads,
    the CUDA devices torch sees (and bf16), MPS, Java (for METEOR) and the
    cache folders. Nothing is downloaded or written.

    Example: vltk env --json > env.json
    """
    from vltk.cli.environment import environment_report

    report = environment_report()
    if as_json:
        print(json.dumps({section: dict(rows) for section, rows in report.items()}, indent=1))
        return
    for section, rows in report.items():
        table = Table(title=section, show_header=False, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("value", overflow="fold")
        for name, value in rows:
            table.add_row(name, value)
        console.print(table)


@app.command("list")
def list_components() -> None:
    """List every registry (tasks, datasets, encoders, attention, decoders, cells, task models, data formats)
    with a line about each entry, and the shipped configs of each task.

    Example: vltk list
    """
    from vltk.tasks import TASKS
    from vltk.tasks.registries import all_registries
    from vltk.tasks.runner import available_configs

    table = Table(title="vltk components")
    table.add_column("kind", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("about")
    for registry in all_registries():
        for row, name in enumerate(registry):
            last = row == len(registry) - 1
            table.add_row(registry.kind if row == 0 else "", name, registry.describe(name), end_section=last)
    for row, task in enumerate(TASKS):
        table.add_row("shipped configs" if row == 0 else "", task, ", ".join(available_configs(task)))
    table.add_row(
        "decoding", "greedy, sample, beam", "decoding.method of captioning and dialog", end_section=True
    )
    console.print(table)


@data_app.command("synth")
@user_errors
def data_synth(
    dataset: Annotated[str, typer.Argument(help="Built-in dataset to generate: shapes, shapes_dialog.")],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    num_images: Annotated[int, typer.Option(help="shapes: number of images.")] = 3000,
    num_dialogs: Annotated[int, typer.Option(help="shapes_dialog: dialogs (= images), all splits.")] = 4000,
    image_size: Annotated[int, typer.Option(help="Image side in pixels.")] = 64,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same dataset).")] = 0,
) -> None:
    """Generate a built-in dataset in its standard layout (shapes: Karpathy JSON + PNG images;
    shapes_dialog: VisDial v1.0 JSON + dense annotations + PNG images, see docs/dialog.md).

    Example: vltk data synth shapes --out data/shapes --num-images 500
    """
    from vltk.errors import check_output_path, unknown_choice_message
    from vltk.tasks.captioning.shapes import generate_shapes
    from vltk.tasks.dialog.shapes_dialog import generate_shapes_dialog

    check_output_path(out, "--out", directory=True)

    generators = {
        "shapes": lambda: generate_shapes(out, num_images=num_images, image_size=image_size, seed=seed),
        "shapes_dialog": lambda: generate_shapes_dialog(
            out, num_dialogs=num_dialogs, image_size=image_size, seed=seed
        ),
    }
    if dataset not in generators:
        raise VltkError(unknown_choice_message("dataset", dataset, generators))
    path = generators[dataset]()
    console.print(f"wrote {path}")


@data_app.command("cache-features")
@user_errors
def data_cache_features(
    out: Annotated[Path, typer.Option(help="Cache directory (features.npy + manifest.json).")],
    config: Annotated[
        str | None, typer.Option(help="Captioning config whose encoder and data to use.")
    ] = None,
    overrides: SetOption = None,
    batch_size: Annotated[int, typer.Option(help="Images encoded at once.")] = 64,
    num_workers: Annotated[
        int | None, typer.Option(help="DataLoader workers reading images [default: min(4, CPU cores)].")
    ] = None,
    device: Annotated[
        str, typer.Option(help="Where the encoder runs: auto (a GPU if any), cpu, cuda, cuda:N, mps.")
    ] = "auto",
    precision: Annotated[
        str, typer.Option(help="32, or autocast: 16-mixed, bf16-mixed (the cache is float16 either way).")
    ] = "32",
) -> None:
    """Run the config's image encoder once over its dataset and store the grids (float16, memory-mapped).

    Images are read by DataLoader workers; the encoder runs on a GPU when there is one. Resumable: run it
    again after an interruption and it continues. Train from the cache with
    --set model.encoder.name=cached --set model.encoder.path=OUT (see docs/captioning.md).

    Example: vltk data cache-features --config resnet_coco --out features/coco --device cuda
    """
    from rich.progress import track

    from vltk.errors import check_output_path
    from vltk.tasks.captioning.feature_cache import cache_caption_features
    from vltk.tasks.runner import load_task_config

    check_output_path(out, "--out", directory=True)

    cfg = load_task_config("captioning", config, list(overrides or []))

    def progress(batches, total):
        return track(batches, total=total, description="caching features", console=err_console)

    manifest = cache_caption_features(cfg, out, batch_size=batch_size, num_workers=num_workers,
                                      device=device, precision=precision, progress=progress)  # fmt: skip
    console.print(
        f"{out}: {manifest.num_images} grids {manifest.grid} from {manifest.encoder['name']} on "
        f"{manifest.device} ({manifest.precision}; sha256 {manifest.checksum[:12]}...)"
    )
    console.print(f"train from it: --set model.encoder.name=cached --set model.encoder.path={out}")


@data_app.command("regions")
@user_errors
def data_regions(
    out: Annotated[Path, typer.Option(help="Store directory (features.npy, offsets.npy, manifest.json...).")],
    tsv: Annotated[
        list[Path] | None, typer.Option(help="A bottom-up-attention TSV (repeatable: one store of all).")
    ] = None,
    att_dir: Annotated[
        Path | None, typer.Option(help="Per-image region features: ID.npz (key feat) or ID.npy [N, D].")
    ] = None,
    fc_dir: Annotated[Path | None, typer.Option(help="With --att-dir: ID.npy global vectors [D].")] = None,
    box_dir: Annotated[Path | None, typer.Option(help="With --att-dir: ID.npy boxes [N, 4], pixels.")] = None,
    sizes: Annotated[
        list[Path] | None,
        typer.Option(help="With --box-dir: JSONs of images [{id, width, height}] (else: box corners)."),
    ] = None,
    from_boxes: Annotated[
        bool, typer.Option("--from-boxes", help="Encode the object boxes of the config's shapes images.")
    ] = False,
    config: Annotated[
        str | None, typer.Option(help="Captioning config: its image ids must match; --from-boxes reads it.")
    ] = None,
    overrides: SetOption = None,
    encoder: Annotated[
        str | None,
        typer.Option(help="With --from-boxes: crop encoder (small_cnn, resnet18...; else: the config's)."),
    ] = None,
    weights: Annotated[str | None, typer.Option(help="With --encoder: its weights (DEFAULT, .pth).")] = None,
    margin: Annotated[
        float, typer.Option(help="With --from-boxes: context around a box, a fraction of its half-width.")
    ] = 0.25,
    cells: Annotated[
        int, typer.Option(help="With --from-boxes: a crop's grid pooled to CELLS x CELLS (1: the mean).")
    ] = 2,
    batch_size: Annotated[int, typer.Option(help="With --from-boxes: images encoded at once.")] = 64,
    device: Annotated[str, typer.Option(help="With --from-boxes: auto, cpu, cuda, cuda:N, mps.")] = "auto",
) -> None:
    """Make a region-feature store (a variable number of regions per image) to train captioning on.

    From bottom-up-attention TSVs, from per-image directories (cocobu_att/ID.npz,
    cocobu_fc/ID.npy, cocobu_box/ID.npy), or from the object boxes of the built-in
    shapes images (--config C --from-boxes: each box cropped and encoded). With --config,
    the store's image ids must be the dataset's. Train from it with
    --set model.encoder.name=regions --set model.encoder.path=OUT (see docs/captioning.md).

    Example: vltk data regions --tsv bu/trainval_resnet101_faster_rcnn_genome_36.tsv --out features/cocobu
    """
    from rich.progress import Progress

    from vltk.errors import check_output_path
    from vltk.tasks.captioning.regions import make_region_store
    from vltk.tasks.captioning.shape_regions import CropSettings
    from vltk.tasks.runner import load_task_config

    check_output_path(out, "--out", directory=True)
    given = config or overrides or from_boxes  # --from-boxes reads a config: the default one by default
    cfg = load_task_config("captioning", config, list(overrides or [])) if given else None

    def progress(records, total):  # transient: an error is then the only line left
        with Progress(*Progress.get_default_columns(), console=err_console, transient=True) as bar:
            yield from bar.track(records, total=total, description="writing regions")

    manifest = make_region_store(
        out, tsv=tsv or (), att_dir=att_dir, fc_dir=fc_dir, box_dir=box_dir, sizes=sizes or (),
        from_boxes=from_boxes, cfg=cfg, encoder=encoder, weights=weights, batch_size=batch_size,
        crop=CropSettings(margin=margin, cells=cells), device=device, progress=progress,
    )  # fmt: skip
    held = [name for name, has in (("fc", manifest.has_fc), ("boxes", manifest.has_boxes)) if has]
    console.print(
        f"{out}: {manifest.num_images} images, {manifest.num_regions} regions ({manifest.min_regions}.."
        f"{manifest.max_regions} per image) x {manifest.dim}" + (f"; with {', '.join(held)}" if held else ""),
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"train from it: --set model.encoder.name=regions --set model.encoder.path={out}")


@data_app.command("shards")
@user_errors
def data_shards(
    out: Annotated[Path, typer.Option(help="Shard directory (SPLIT-NNNNNN.tar, shards.json, word counts).")],
    config: Annotated[str | None, typer.Option(help="Captioning config whose data section to write.")] = None,
    overrides: SetOption = None,
    shard_size: Annotated[int, typer.Option(help="Images per shard (~1,000 COCO images: ~160 MB).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the training split's shuffled order.")] = 0,
) -> None:
    """Write a captioning dataset (any data.name) into WebDataset tar shards, to train from them by
    streaming: --set data.name=webdataset --set data.path=OUT (see docs/datasets.md).

    Example: vltk data shards --config resnet_coco --out shards/coco
    """
    from rich.progress import track

    from vltk.errors import check_output_path
    from vltk.tasks.captioning.feature_cache import dataset_description
    from vltk.tasks.captioning.shards import write_caption_shards
    from vltk.tasks.runner import build_datamodule, load_task_config, task_entry

    check_output_path(out, "--out", directory=True)
    cfg = load_task_config("captioning", config, list(overrides or []))
    if cfg.data.get("name") == "webdataset":
        raise VltkError("data.name is already 'webdataset': give the config of the dataset to write")
    datamodule = build_datamodule(task_entry("captioning"), cfg)

    def progress(records, total):
        return track(records, total=total, description="writing shards", console=err_console)

    index = write_caption_shards(datamodule, out, shard_size=shard_size, seed=seed,
                                 source=dataset_description(datamodule), progress=progress)  # fmt: skip
    for split, shards in index.splits.items():
        console.print(f"{split}: {index.samples(split)} images, {index.items(split)} captions in "
                      f"{len(shards)} shard(s)")  # fmt: skip
    console.print(f"train from them: --set data.name=webdataset --set data.path={out}")


@data_app.command("r2r-features")
@user_errors
def data_r2r_features(
    out: Annotated[Path, typer.Option(help="Store directory (views.npy + index.json + manifest.json).")],
    tsv: Annotated[
        list[Path] | None, typer.Option(help="A published view-feature TSV (repeatable), e.g. ResNet-152.")
    ] = None,
    images: Annotated[
        Path | None, typer.Option(help="Folder of view images IMAGES/SCAN/VIEWPOINT_IX.png (IX = 00..35).")
    ] = None,
    encoder: Annotated[
        str | None, typer.Option(help="With --images: the image encoder (small_cnn, resnet152, ...).")
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="With --images: the encoder's weights (DEFAULT, or a .pth file).")
    ] = None,
    dtype: Annotated[str, typer.Option(help="float32 | float16 (half the disk).")] = "float32",
    batch_size: Annotated[int, typer.Option(help="With --images: view images encoded at once.")] = 256,
) -> None:
    """Make the R2R view-feature store the R2R loaders read (36 views per viewpoint, memory-mapped).

    Either convert the published TSVs (scanId, viewpointId, image_w, image_h, vfov, base64 float32 [36, D]):

        vltk data r2r-features --tsv img_features/ResNet-152-imagenet.tsv --out r2r_features

    or encode your own 36 view images per viewpoint with a vltk CNN:

        vltk data r2r-features --images views/ --encoder resnet152 --weights DEFAULT --out r2r_features

    Example: vltk data r2r-features --tsv ResNet-152-imagenet.tsv --out R2R/features
    """
    from vltk.errors import check_output_path
    from vltk.tasks.navigation.r2r.features import convert_tsv, featurise_view_images

    check_output_path(out, "--out", directory=True)
    if bool(tsv) == (images is not None):
        raise VltkError(
            "give either --tsv FILE (repeatable) or --images DIR --encoder NAME, not both or neither"
        )
    if tsv and (encoder is not None or weights is not None):
        raise VltkError("--encoder and --weights go with --images; a --tsv file holds its features already")
    if images is not None and encoder is None:
        raise VltkError("--images needs --encoder NAME (e.g. small_cnn, resnet152)")
    if tsv:
        store = convert_tsv(tsv, out, dtype=dtype)
    else:
        spec = {"name": encoder, **({"weights": weights} if weights is not None else {})}
        store = featurise_view_images(images, out, spec, batch_size=batch_size, dtype=dtype)
    console.print(
        f"wrote {out}: {len(store)} viewpoints x 36 views x {store.dim} ({store.manifest['dtype']})",
        highlight=False,
        soft_wrap=True,
    )


@data_app.command("validate")
@user_errors
def data_validate(
    dataset: Annotated[
        str,
        typer.Argument(
            help="A Karpathy-split JSON, a VQA v2 questions JSON, a VisDial v1.0 JSON, or a built-in "
            "dataset name (shapes, shapes_dialog)."
        ),
    ],
    image_root: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the images (Karpathy: of filepath/filename; VQA v2: the split's images; VisDial: "
            "default images/ next to the JSON). Default: the JSON's folder."
        ),
    ] = None,
    annotations: Annotated[
        Path | None, typer.Option(help="VQA v2: the annotations JSON of the questions' split (answers).")
    ] = None,
    format: Annotated[
        str,
        typer.Option("--format", help="auto (from the JSON's top-level keys) | karpathy | vqa_v2 | visdial."),
    ] = "auto",
    show: Annotated[int, typer.Option(help="How many problems of each kind to list.")] = 20,
) -> None:
    """Read every annotation entry and decode every image once; list malformed entries and bad images.

    Exits 1 when anything is wrong, so scripts can stop before a long run.

    Example: vltk data validate data/shapes/dataset_shapes.json --image-root data/shapes/images
    """

    from vltk.tasks.captioning.shapes import ensure_shapes
    from vltk.tasks.dialog.shapes_dialog import ensure_shapes_dialog, split_paths

    paths = [Path(dataset)]
    if not paths[0].is_file():
        if dataset == "shapes":
            paths = [ensure_shapes()]
        elif dataset == "shapes_dialog":
            root = ensure_shapes_dialog()
            paths = [split_paths(root, split)[0] for split in ("train", "val", "test")]
        else:
            raise VltkError(
                f"{dataset}: neither a file nor a built-in dataset (built-in: shapes, shapes_dialog)"
            )
    all_ok = True
    for path in paths:
        all_ok &= _validate_one(path, format, image_root, annotations, show)
    if not all_ok:
        raise typer.Exit(1)
    console.print("[bold green]no problems found[/]")


def _validate_one(
    path: Path, format: str, image_root: Path | None, annotations: Path | None, show: int
) -> bool:
    """Validate one dataset file and print its problems; ``True`` when there are none."""
    from rich.progress import track

    from vltk.tasks.validate import validate_dataset

    def progress(items):
        return track(items, description=f"validating {path.name}", console=err_console, transient=True)

    report = validate_dataset(
        path, format=format, image_root=image_root, annotations=annotations, progress=progress
    )
    splits = ", ".join(f"{name}={count}" for name, count in sorted(report.splits.items()))
    console.print(f"{report.source}: {report.entries} entries, {report.images} images read ({splits})")
    for kind, problems in (
        ("malformed entries", report.bad_entries),
        ("unreadable images", report.bad_images),
    ):
        if problems:
            console.print(f"[bold red]{len(problems)} {kind}[/]:", highlight=False)
            for problem in problems[:show]:
                console.print(f"  {problem}", highlight=False, soft_wrap=True)
            if len(problems) > show:
                console.print(f"  ... and {len(problems) - show} more (--show N lists more)")
    return report.ok


@data_app.command("demos")
@user_errors
def data_demos(
    out: Annotated[Path, typer.Option(help="Output folder (a Hugging Face datasets Arrow dataset).")],
    level: Annotated[str, typer.Option(help="BabyAI level id.")] = "BabyAI-GoToRedBall-v0",
    episodes: Annotated[int, typer.Option(help="Number of bot demonstrations.")] = 5000,
    seed: Annotated[int, typer.Option(help="First episode seed (seeds seed, seed+1, ... are used).")] = 0,
    observation: Annotated[str, typer.Option(help="symbolic (7x7x3) | rgb (56x56x3).")] = "symbolic",
    workers: Annotated[
        int | None, typer.Option(help="Processes (default: one per CPU from 5,000 episodes, else 1).")
    ] = None,
) -> None:
    """Generate BabyAI expert demonstrations with the BabyAI bot (train on them with data.demos_dir=OUT).

    Example: vltk data demos --out demos/gotolocal --level BabyAI-GoToLocal-v0 --episodes 5000
    """
    from vltk.errors import check_output_path
    from vltk.tasks.navigation.babyai.demos import generate_demos

    check_output_path(out, "--out", directory=True)

    stats = generate_demos(
        out,
        level=level,
        episodes=episodes,
        seed=seed,
        observation=observation,
        workers=workers,
    )
    console.print(
        f"wrote {stats.episodes} demos ({stats.steps} steps, {stats.failed} bot failures skipped) to {out} "
        f"in {stats.seconds:.1f}s: {stats.demos_per_second:.0f} demos/s, {stats.steps_per_second:.0f} steps/s"
    )


@data_app.command("r2r-houses")
@user_errors
def data_r2r_houses(
    out: Annotated[
        Path, typer.Option(help="Output directory (R2R_<split>.json, connectivity/, features/, ...).")
    ],
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same dataset).")] = 0,
    train_houses: Annotated[int, typer.Option(help="Houses of train and val_seen.")] = 50,
    val_unseen_houses: Annotated[int, typer.Option(help="Houses of val_unseen.")] = 8,
    test_houses: Annotated[int, typer.Option(help="Houses of test.")] = 8,
    train_paths: Annotated[int, typer.Option(help="Paths of train (three instructions each).")] = 4000,
    val_seen_paths: Annotated[int, typer.Option(help="Paths of val_seen.")] = 300,
    val_unseen_paths: Annotated[int, typer.Option(help="Paths of val_unseen.")] = 400,
    test_paths: Annotated[int, typer.Option(help="Paths of test.")] = 400,
    image_size: Annotated[int, typer.Option(help="Side of the rendered views in pixels.")] = 32,
) -> None:
    """Generate the built-in R2R houses in the R2R layout (docs/navigation.md); print their statistics.

    Example: vltk data r2r-houses --out r2r_houses --train-houses 10
    """
    from vltk.errors import check_output_path
    from vltk.tasks.navigation.r2r.houses import HousesOptions, format_statistics, generate_houses

    check_output_path(out, "--out", directory=True)
    options = HousesOptions(
        seed=seed,
        train_houses=train_houses,
        val_unseen_houses=val_unseen_houses,
        test_houses=test_houses,
        train_paths=train_paths,
        val_seen_paths=val_seen_paths,
        val_unseen_paths=val_unseen_paths,
        test_paths=test_paths,
        image_size=image_size,
    )
    if out.is_dir() and any(out.iterdir()):
        raise VltkError(f"--out {out} is not empty; choose a new directory")
    generate_houses(out, options)
    console.print(format_statistics(json.loads((out / "stats.json").read_text(encoding="utf-8"))))
    console.print(f"wrote {out}")


class _DropAdverts(logging.Filter):
    """Lightning logs product tips at INFO level on every run; they are not about the user's run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def main() -> None:
    """The ``vltk`` command in this process: returns, or raises ``SystemExit`` (Typer's way), like any
    function; safe to call from another program. The installed command is :func:`run`."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropAdverts())
    logging.basicConfig(
        level=os.environ.get("VLTK_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s"
    )
    app(prog_name="vltk")


def run() -> None:
    """Console-script and ``python -m vltk`` entry point: :func:`main`, then :func:`exit_process`."""
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = exit_status(stop.code)
    exit_process(code)


def exit_status(code: object) -> int:
    """The status ``SystemExit(code)`` stands for (``None``: 0; a message: printed, 1), as in Python."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def exit_process(code: int) -> None:
    """End the process with ``code`` once everything that must end has: the ``atexit`` handlers (which
    stop DataLoader worker processes, run ``weakref.finalize`` and ``tempfile`` clean-ups), logging and the
    standard streams; then ``os._exit``, skipping the interpreter's teardown of every module and object,
    about 0.9 s after importing torch and Lightning on the 2-core machine (``BENCHMARKS.md``, *vltk predict
    latency*). Files are closed by the code that writes them (``with`` blocks, Lightning's logger and
    checkpoint finalisation), never by that teardown. ``VLTK_FULL_EXIT=1``, or a Python without
    ``atexit._run_exitfuncs``, exits the ordinary way (for tools that write their report at interpreter
    exit, such as ``python -m cProfile``)."""
    import atexit

    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if os.environ.get("VLTK_FULL_EXIT") == "1" or run_exit_functions is None:
        sys.exit(code)
    run_exit_functions()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
