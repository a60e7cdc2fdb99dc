"""Config inheritance (``base:``): the merge rules, chains, errors, and the shipped configs, whose resolved
configs must be what they were before they were rewritten as ``base: default`` plus the keys that differ."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.config import dump_yaml, from_dict, load_config, merge_config, read_config, read_yaml, to_dict
from vltk.errors import ConfigError
from vltk.tasks import TASKS, CaptioningConfig
from vltk.tasks.runner import available_configs, load_task_config, named_config_path

FIXTURE = Path(__file__).parent / "fixtures" / "shipped_configs_before_base.json"
SHIPPED = [f"{task}/{name}" for task in TASKS for name in available_configs(task)]
# the roots of the shipped configs: each task's default, and R2R houses (navigation's R2R family has its own
# config, so its configs cannot inherit BabyAI's default)
ROOTS = {f"{task}/default" for task in TASKS} | {"navigation/r2r_houses"}


# What shipped configs changed on purpose since the fixture was written: (dotted key, new value).
DELIBERATE_CHANGES = {
    # issue 19: the lm default's budget in updates, not passes (BENCHMARKS.md, lm_budget)
    "lm/default": [
        ("trainer.max_epochs", -1),
        ("trainer.max_steps", 600),
        ("trainer.check_val_every_n_epoch", None),
    ],
}


def before() -> dict[str, dict[str, Any]]:
    """Every shipped config as it was before inheritance: the file (``raw``) and its resolved config, with
    the :data:`DELIBERATE_CHANGES` made since applied to both."""
    configs = json.loads(FIXTURE.read_text(encoding="utf-8"))
    for shipped, changes in DELIBERATE_CHANGES.items():
        for form in ("raw", "resolved"):
            for dotted, value in changes:
                *sections, key = dotted.split(".")
                target = configs[shipped][form]
                for section in sections:
                    target = target.setdefault(section, {})
                target[key] = value
    return configs


def one_spelling(config: dict[str, Any]) -> dict[str, Any]:
    """``model.blind: x`` spelt ``model.use_image: not x``, so the comparison survives that one rename."""
    config = copy.deepcopy(config)
    model = config.get("model")
    if isinstance(model, dict) and "blind" in model:
        model["use_image"] = not model.pop("blind")
    return config


def current_spelling(raw: dict[str, Any]) -> dict[str, Any]:
    """An old file's keys as the current code spells them (``blind`` only while the models still take it)."""
    takes_blind = "blind" in to_dict(load_task_config("captioning")).get("model", {})
    return raw if takes_blind else one_spelling(raw)


def resolved(task_and_name: str) -> dict[str, Any]:
    task, name = task_and_name.split("/")
    return to_dict(load_task_config(task, name))


def test_the_fixture_covers_every_shipped_config_of_before_inheritance():
    """Every config shipped before inheritance is still shipped (configs added later are not in it)."""
    assert set(before()) <= set(SHIPPED)


def known_keys(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """``new`` with only the keys ``old`` has (sections recursively): what existed when the fixture was."""
    return {
        key: known_keys(new[key], value) if isinstance(value, dict) and isinstance(new.get(key), dict)
        else new.get(key, "<missing>")
        for key, value in old.items()
    }  # fmt: skip


def added_keys(new: dict[str, Any], old: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``dotted key -> value`` of the keys of ``new`` that ``old`` lacks (keys added to vltk since)."""
    found = {}
    for key, value in new.items():
        if key not in old:
            found[f"{prefix}{key}"] = value
        elif isinstance(value, dict) and isinstance(old[key], dict):
            found.update(added_keys(value, old[key], f"{prefix}{key}."))
    return found


def class_default(task: str, dotted: str) -> Any:
    """The value of ``dotted`` in the task's config built from nothing (its dataclasses' defaults)."""
    value: Any = to_dict(from_dict(TASKS[task].config, {"task": task}))
    for part in dotted.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("shipped", sorted(before()))
def test_every_shipped_config_resolves_to_what_it_was_before_inheritance(shipped):
    """The keys of then resolve as then; keys added to vltk since take their defaults (a new trainer
    argument does not change what a shipped config trains)."""
    now, then = one_spelling(resolved(shipped)), one_spelling(before()[shipped]["resolved"])
    assert known_keys(now, then) == then
    task = shipped.split("/")[0]
    added = added_keys(now, then)
    assert added == {key: class_default(task, key) for key in added}


@pytest.mark.parametrize("shipped", sorted(before()))
def test_every_shipped_config_resolves_like_its_old_whole_copy(shipped):
    """The same through today's resolvers: the old file, validated now, gives the new file's config."""
    task = shipped.split("/")[0]
    old = to_dict(from_dict(TASKS[task].config, current_spelling(before()[shipped]["raw"])))
    assert resolved(shipped) == old


@pytest.mark.parametrize("shipped", [s for s in SHIPPED if s not in ROOTS])
def test_every_shipped_variant_inherits_and_keeps_its_header(shipped):
    path = named_config_path(*shipped.split("/"))
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# "), f"{path}: the header comment says what the config is"
    assert "base" in read_yaml(path), f"{path}: write it as `base: default` plus the keys that differ"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_merge_rules():
    base = {
        "seed": 1,
        "data": {"name": "shapes", "batch_size": 8, "num_images": 30},
        "model": {"decoder": "discriminative", "encoder": {"name": "small_cnn", "channels": [1, 2]}},
        "optim": {"name": "adam", "lr": 0.1, "clip_norm": 5.0},
    }
    child = {
        "data": {"batch_size": 4},  # mappings merge key by key
        "model": {
            "decoder": {"name": "generative"},  # a mapping over a scalar replaces it
            "encoder": {"channels": [3]},  # a list replaces the base's list
        },
        "optim": {"name": "adagrad", "lr": 0.5},  # another name: the section is replaced whole
        "trainer": None,  # null is a value like any other
    }
    merged = merge_config(base, child)
    assert merged == {
        "seed": 1,
        "data": {"name": "shapes", "batch_size": 4, "num_images": 30},
        "model": {"decoder": {"name": "generative"}, "encoder": {"name": "small_cnn", "channels": [3]}},
        "optim": {"name": "adagrad", "lr": 0.5},
        "trainer": None,
    }
    assert base["data"]["batch_size"] == 8 and child["data"] == {"batch_size": 4}  # inputs unchanged
    merged["model"]["encoder"]["name"] = "x"
    assert base["model"]["encoder"]["name"] == "small_cnn"  # no shared nested values


def test_a_section_with_the_same_name_merges():
    base = {"data": {"name": "shapes", "batch_size": 8}}
    assert merge_config(base, {"data": {"name": "shapes", "in_memory": True}}) == {
        "data": {"name": "shapes", "batch_size": 8, "in_memory": True}
    }


def test_chains_and_relative_paths(tmp_path):
    write(tmp_path / "a" / "grand.yaml", "task: captioning\nseed: 1\ntrainer: {max_epochs: 3}\n")
    write(tmp_path / "b" / "parent.yaml", "base: ../a/grand.yaml\nseed: 2\n")
    child = write(tmp_path / "child.yaml", "base: b/parent.yaml\ntrainer: {max_epochs: 7}\n")
    assert read_config(child) == {"task": "captioning", "seed": 2, "trainer": {"max_epochs": 7}}


def test_a_bare_name_is_a_shipped_config_of_the_task(tmp_path):
    write(tmp_path / "default.yaml", "task: captioning\nseed: 999\n")  # a sibling of that name is not it
    child = write(tmp_path / "mine.yaml", "base: default\ntrainer: {max_epochs: 1}\n")
    cfg = load_task_config("captioning", str(child))
    assert cfg.seed == load_task_config("captioning").seed
    assert cfg.trainer.max_epochs == 1
    assert cfg.model == load_task_config("captioning").model
    # without a task (plain load_config), a bare name is the file of that name beside the child
    assert load_config(CaptioningConfig, child).seed == 999


def test_overrides_apply_after_the_merge(tmp_path):
    child = write(tmp_path / "c.yaml", "base: no_history\nmodel: {use_history: false}\n")
    cfg = load_task_config("dialog", str(child), ["model.use_history=true", "seed=7"])
    assert cfg.model.use_history is True and cfg.seed == 7


def test_the_resolved_config_is_expanded_without_base(tmp_path):
    cfg = load_task_config("dialog", "no_history")
    dump_yaml(cfg, tmp_path / "config.yaml")
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert "base" not in written and written == to_dict(cfg)
    assert written["model"]["use_history"] is False and written["data"]["name"] == "shapes_dialog"


def test_a_cycle_is_one_error_naming_the_files_in_order(tmp_path):
    a = write(tmp_path / "a.yaml", "base: b.yaml\nseed: 1\n")
    b = write(tmp_path / "b.yaml", "base: ./a.yaml\n")
    with pytest.raises(ConfigError) as info:
        read_config(a)
    assert str(info.value) == f"config base cycle: {a} -> {b} -> {b.parent / 'a.yaml'}"
    itself = write(tmp_path / "self.yaml", "base: self.yaml\n")
    with pytest.raises(ConfigError, match="config base cycle: .*self.yaml -> .*self.yaml"):
        read_config(itself)


def test_a_missing_base_names_the_file(tmp_path):
    child = write(tmp_path / "c.yaml", "base: other/nope.yaml\n")
    with pytest.raises(
        ConfigError, match=r"c\.yaml: base 'other/nope\.yaml' not found \(no file .*nope\.yaml\)"
    ):
        read_config(child)
    child = write(tmp_path / "d.yaml", "base: defualt\n")
    with pytest.raises(ConfigError, match=r"d\.yaml: base 'defualt' not found"):
        read_config(child)
    with pytest.raises(
        ConfigError, match=r"d\.yaml: unknown shipped captioning config 'defualt'; did you mean 'default'\?"
    ):
        load_task_config("captioning", str(child))


def test_a_base_that_is_not_a_name_or_not_a_mapping_names_the_file(tmp_path):
    child = write(tmp_path / "c.yaml", "base: [default]\n")
    with pytest.raises(
        ConfigError, match=r"c\.yaml: base must be the name of a shipped config .* got \['default'\]"
    ):
        read_config(child)
    write(tmp_path / "list.yaml", "- 1\n- 2\n")
    child = write(tmp_path / "d.yaml", "base: list.yaml\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: expected a mapping at the top level, got list"):
        read_config(child)


def test_the_cli_reports_a_base_cycle_in_one_line(tmp_path):
    a = write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    result = CliRunner().invoke(app, ["train", "captioning", "--config", str(a)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "config base cycle:" in lines[0] and "b.yaml" in lines[0], result.output
