"""``vltk config show``: every shipped config as commented YAML that reads back to the same config, each key
with its help (from the docstring of the class that takes it) or at least its type."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from test_cli_errors import assert_one_line_error
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.config import to_dict
from vltk.config_doc import annotated_yaml, docstring_help
from vltk.tasks import TASKS
from vltk.tasks.runner import available_configs, load_task_config

SHIPPED = [(task, name) for task in sorted(TASKS) for name in available_configs(task)]


@pytest.mark.parametrize(("task", "name"), SHIPPED, ids=[f"{t}-{n}" for t, n in SHIPPED])
def test_every_shipped_config_reads_back_and_every_key_has_a_comment(task, name):
    config = load_task_config(task, name, [])
    shown = annotated_yaml(config, f"{task} {name}")
    assert yaml.safe_load(shown.text) == to_dict(config)
    keys = [line for line in shown.text.splitlines() if not line.lstrip().startswith("#")]
    assert len(keys) == shown.keys
    assert [line for line in keys if "  # " not in line] == []
    assert shown.with_prose >= 10  # the shared sections (optim, trainer, decoding or loaders) are documented


def test_the_cli_prints_a_config_that_trains_the_same(tmp_path):
    given = ["config", "show", "captioning", "--config", "show_tell", "--set", "optim.lr=5e-4"]
    result = CliRunner().invoke(app, given)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# vltk config show captioning --config show_tell --set optim.lr=5e-4")
    assert "  max_epochs: " in result.output and "# passes over the training split" in result.output
    saved = tmp_path / "shown.yaml"
    saved.write_text(result.output, encoding="utf-8")
    expected = load_task_config("captioning", "show_tell", ["optim.lr=5e-4"])
    assert to_dict(load_task_config("captioning", str(saved), [])) == to_dict(expected)


def test_bad_keys_and_tasks_are_one_line():
    result = CliRunner().invoke(app, ["config", "show", "vqa", "--set", "optim.lrr=1"])
    assert_one_line_error(result, "optim.lrr", "did you mean 'optim.lr'")
    assert_one_line_error(CliRunner().invoke(app, ["config", "show", "captionin"]), "captionin")


def test_help_is_read_from_args_attributes_and_inline_docstrings():
    class Builder:
        """A thing.

        ``depth``: how deep it goes. ``width`` is not a definition.

        Args:
            start_id, end_id: the special ids,
                continued here.
            size: the size.
        """

        def __init__(self, start_id: int, end_id: int, size: int = 3, depth: int = 1) -> None: ...

    found = docstring_help(Builder)
    assert found == {
        "start_id": "the special ids, continued here.",
        "end_id": "the special ids, continued here.",
        "size": "the size.",
        "depth": "how deep it goes.",
    }

    @dataclasses.dataclass
    class Section:
        """A section.

        Attributes:
            lr: the rate.
        """

        lr: float = 1.0

    assert docstring_help(Section) == {"lr": "the rate."}
