"""The command line's conveniences: ``--version``, ``python -m vltk``, ``vltk env`` and shell completion."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from typer.testing import CliRunner

import vltk
from vltk.cli.main import app


def test_version_names_vltk_torch_and_lightning():
    import pytorch_lightning

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    line = result.output.strip()
    assert line.startswith(f"vltk {vltk.__version__} (torch ")
    assert f"pytorch-lightning {pytorch_lightning.__version__}" in line and "\n" not in line


def test_python_dash_m_vltk_is_the_command():
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "vltk"]
    result = subprocess.run([*command, "--version"], capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"vltk {vltk.__version__} ")
    listed = subprocess.run([*command, "list"], capture_output=True, text=True, env=environment)
    assert listed.returncode == 0 and "captioning" in listed.stdout


EXIT_PROBE = """
import atexit, sys, tempfile
from pathlib import Path
from vltk.cli.main import exit_process
marker, folder = Path(sys.argv[1]), Path(tempfile.mkdtemp())
atexit.register(marker.write_text, "atexit ran")
finalizer = tempfile.TemporaryDirectory(dir=folder)  # removed by its weakref.finalize at exit
Path(finalizer.name, "f").write_text("x")
print("printed before the exit", end="")  # buffered, not yet written
sys.stderr.write(str(Path(finalizer.name)))
exit_process(3)
"""


def test_the_command_ends_fast_after_its_atexit_handlers_and_streams(tmp_path):
    """``exit_process`` skips the interpreter's teardown (``os._exit``), but what must end still does:
    the ``atexit`` handlers, ``weakref.finalize`` (a temporary folder), the buffered output, the status;
    ``VLTK_FULL_EXIT=1`` ends the ordinary way with the same results."""
    for full in ("0", "1"):
        marker = tmp_path / f"marker-{full}"
        environment = dict(os.environ, OMP_NUM_THREADS="1", VLTK_FULL_EXIT=full)
        probe = [sys.executable, "-c", EXIT_PROBE, str(marker)]
        result = subprocess.run(probe, capture_output=True, text=True, env=environment)
        assert result.returncode == 3, result.stderr
        assert result.stdout == "printed before the exit"
        assert marker.read_text() == "atexit ran"
        assert not Path(result.stderr.strip().splitlines()[-1]).exists()
    failed = subprocess.run([sys.executable, "-m", "vltk", "train", "nope"], capture_output=True, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))  # fmt: skip
    assert failed.returncode == 2 and "unknown task 'nope'" in failed.stderr


def test_env_reports_versions_devices_and_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("VLTK_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {"vltk", "packages", "system", "accelerators", "folders"}
    assert report["vltk"]["version"] == vltk.__version__
    assert torch.__version__.startswith(report["packages"]["torch"])  # 2.14.1 of 2.14.1+cu130
    assert report["packages"]["pytorch-lightning"] != "not installed"
    assert report["system"]["torch threads"] == str(torch.get_num_threads())
    assert report["accelerators"]["CUDA"].startswith("available" if torch.cuda.is_available() else "not")
    assert report["folders"]["datasets (VLTK_CACHE)"] == str(tmp_path / "cache" / "datasets")
    assert not (tmp_path / "cache").exists()  # nothing written
    shown = CliRunner().invoke(app, ["env"])
    assert shown.exit_code == 0 and "pytorch-lightning" in shown.output and "accelerators" in shown.output


def test_the_package_version_of_a_missing_distribution_is_said_plainly():
    from vltk.cli.environment import package_version

    assert package_version("surely-not-a-distribution-vltk") == "not installed"


def test_shell_completion_is_offered():
    help_text = CliRunner().invoke(app, ["--help"]).output
    assert "--install-completion" in help_text and "--show-completion" in help_text
    assert "vltk env" in help_text and "--version" in help_text


def _commands():
    """Every leaf command of the CLI as (words after ``vltk``, click command)."""
    import typer.main

    found = []

    def walk(command, words):
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*words, name])
        else:
            found.append((words, command))

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_has_an_example_that_parses():
    import shlex

    commands = _commands()
    assert len(commands) >= 18
    for words, command in commands:
        example = [line for line in (command.help or "").splitlines() if line.strip().startswith("Example:")]
        assert example, f"vltk {' '.join(words)} --help has no example"
        shown = re.split(r" then | > | \| ", example[0].split("Example:", 1)[1])[0]  # no redirection
        argv = shlex.split(shown)
        assert argv[: 1 + len(words)] == ["vltk", *words], example[0]
        command.make_context(" ".join(words), argv[1 + len(words) :])  # unknown options would raise


def test_train_and_score_help_name_every_task_and_what_each_takes():
    from vltk.tasks import TASKS
    from vltk.tasks.runner import available_configs

    train_help = CliRunner().invoke(app, ["train", "--help"], terminal_width=200).output
    score_help = CliRunner().invoke(app, ["score", "--help"], terminal_width=200).output
    for task, entry in TASKS.items():
        assert task in train_help and task in score_help
        missing = [name for name in available_configs(task) if name not in train_help]
        assert not missing, f"vltk train --help does not name {task}'s configs {missing}"
        for option in entry.score_options:
            assert f"--{option.replace('_', '-')}" in score_help, (task, option)
