"""Registries: objects that know their kind, and ``vltk list`` shows every one of them."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from typer.testing import CliRunner

from vltk.attention import ATTENTIONS
from vltk.cli.main import app
from vltk.errors import ConfigError
from vltk.registry import Registry, build, resolve
from vltk.tasks.registries import all_registries

PACKAGES = ("vltk", "vltk.tasks", "vltk.cli")


def registries_defined_anywhere() -> dict[str, Registry]:
    """Every :class:`Registry` bound to a module-level name in any module of the package, by ``module.NAME``
    (a registry imported elsewhere appears under each name)."""
    found: dict[str, Registry] = {}
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        modules = [package_name]
        modules += [info.name for info in pkgutil.walk_packages(package.__path__, f"{package_name}.")]
        for module_name in modules:
            for attribute, value in vars(importlib.import_module(module_name)).items():
                if isinstance(value, Registry):
                    found[f"{module_name}.{attribute}"] = value
    return found


def test_the_walk_finds_the_registries_of_library_and_tasks():
    names = set(registries_defined_anywhere())
    assert {"vltk.attention.ATTENTIONS", "vltk.tasks.TASKS", "vltk.tasks.vqa.model.VQA_MODELS"} <= names
    assert "vltk.tasks.navigation.babyai.observation_encoder.OBSERVATION_ENCODERS" in names


def test_every_registry_is_gathered_once():
    gathered = all_registries()
    assert len({id(r) for r in gathered}) == len(gathered)
    missing = [name for name, r in registries_defined_anywhere().items() if all(r is not g for g in gathered)]
    assert not missing, f"add these to vltk.tasks.registries.all_registries: {missing}"


def test_list_shows_every_registry_kind_and_name():
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    kinds = [registry.kind for registry in all_registries()]
    assert len(set(kinds)) == len(kinds), "two registries of one kind would be indistinguishable in the list"
    for registry in all_registries():
        assert registry.kind in result.output
        for name in registry:
            assert name in result.output, (registry.kind, name)
    assert "Elqursh" in result.output  # a word of a description taken from a docstring
    assert "min_char_rnn" in result.output  # the shipped configs


def test_a_registry_is_a_read_only_mapping_that_names_its_kind():
    registry = Registry("widget", {"round": dict, "square": list})
    assert list(registry) == ["round", "square"] and len(registry) == 2 and registry["round"] is dict
    with pytest.raises(TypeError):
        registry["oval"] = set  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"unknown widget 'rond'; did you mean 'round'\?"):
        resolve(registry, "rond")
    assert "widget" in repr(registry)


def test_messages_take_the_kind_from_the_registry_unless_the_call_names_one():
    with pytest.raises(ConfigError, match=r"^unknown attention at model\.attention\.name 'addtive'"):
        build(ATTENTIONS, {"name": "addtive"}, path="model.attention", query_dim=4, key_dim=4)
    with pytest.raises(ConfigError, match=r"^unknown scorer at model\.attention\.name 'addtive'"):
        build(ATTENTIONS, {"name": "addtive"}, path="model.attention", what="scorer", query_dim=4, key_dim=4)
    with pytest.raises(ConfigError, match=r"in model\.attention \(attention 'additive'\)"):
        build(ATTENTIONS, {"name": "additive", "dimm": 3}, path="model.attention", query_dim=4, key_dim=4)


def test_describe_reads_a_description_or_the_first_sentence_of_the_docstring():
    class Documented:
        """First sentence with ``code`` and :mod:`vltk.registry`. Second sentence.

        Details.
        """

    class Undocumented(Documented):
        pass

    class Entry:
        description = "a task"

    registry = Registry("thing", {"documented": Documented, "undocumented": Undocumented, "entry": Entry})
    assert registry.describe("documented") == "First sentence with code and vltk.registry."
    assert registry.describe("undocumented") == ""  # a docstring is not inherited
    assert registry.describe("entry") == "a task"
