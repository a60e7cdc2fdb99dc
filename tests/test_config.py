"""Config loading, overrides and registry errors: the messages must name the key and the valid choices."""

from __future__ import annotations

import pytest

from vltk.config import apply_overrides, from_dict, load_config, parse_yaml, read_yaml
from vltk.errors import ConfigError
from vltk.tasks import CaptioningConfig
from vltk.tasks.runner import available_configs, load_task_config, named_config_path


def test_default_captioning_config_resolves_every_default():
    cfg = load_task_config("captioning")
    assert cfg.task == "captioning"
    assert cfg.model["name"] == "show_attend_tell"
    # defaults of the constructors are written out, so the run dir records every value
    assert "dropout" in cfg.model["decoder"] and "trainable" in cfg.model["encoder"]
    assert cfg.model["decoder"]["attention"]["name"] == "additive"
    assert cfg.data["name"] == "shapes" and "batch_size" in cfg.data


@pytest.mark.parametrize("name", available_configs("captioning"))
def test_every_shipped_config_validates(name):
    cfg = load_task_config("captioning", name)
    assert cfg.task == "captioning"


def test_unknown_top_level_key_suggests_the_nearest():
    with pytest.raises(ConfigError, match=r"unknown config key 'trainr'.*did you mean 'trainer'"):
        from_dict(CaptioningConfig, {"trainr": {}})


def test_unknown_nested_key_suggests_the_nearest():
    with pytest.raises(ConfigError, match=r"'trainer.max_epoch'.*did you mean 'trainer.max_epochs'"):
        load_task_config("captioning", overrides=["trainer.max_epoch=3"])


def test_unknown_spec_key_names_the_path():
    with pytest.raises(
        ConfigError, match=r"model.decoder.hiden_dim.*did you mean 'model.decoder.hidden_dim'"
    ):
        load_task_config("captioning", overrides=["model.decoder.hiden_dim=3"])


def test_unknown_attention_choice_lists_choices():
    with pytest.raises(
        ConfigError, match=r"'addtive'.*did you mean 'additive'.*choices: additive, dot, general"
    ):
        load_task_config("captioning", overrides=["model.decoder.attention.name=addtive"])


def test_wired_keys_are_rejected():
    with pytest.raises(ConfigError, match="model.decoder.vocab_size is derived"):
        load_task_config("captioning", overrides=["model.decoder.vocab_size=10"])


def test_override_types_are_checked():
    with pytest.raises(ConfigError, match=r"trainer.max_epochs = 'abc' has the wrong type: expected int"):
        load_task_config("captioning", overrides=["trainer.max_epochs=abc"])
    with pytest.raises(ConfigError, match="model.decoder.hidden_dim"):
        load_task_config("captioning", overrides=["model.decoder.hidden_dim=1.5"])


def test_overrides_parse_yaml_values():
    cfg = load_task_config(
        "captioning",
        overrides=[
            "optim.lr=1e-4",
            "trainer.devices=2",
            "model.encoder.channels=[4, 8]",
            "optim.grad_clip=null",
        ],
    )
    assert cfg.optim.lr == pytest.approx(1e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.trainer.devices == 2
    assert cfg.model["encoder"]["channels"] == [4, 8]
    assert cfg.optim.grad_clip is None


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="must look like key.path=value"):
        apply_overrides({}, ["trainer.max_epochs"])
    with pytest.raises(ConfigError, match="'seed' is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: captioning\nmodel: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        read_yaml(path)


def test_missing_config_file_and_unknown_named_config(tmp_path):
    with pytest.raises(ConfigError, match="neither a file nor a shipped captioning config"):
        load_task_config("captioning", str(tmp_path / "nope.yaml"))


def test_task_mismatch_and_unknown_task(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: vqa\n")
    with pytest.raises(ConfigError, match="captioning config"):
        load_config(CaptioningConfig, path)
    with pytest.raises(ConfigError, match=r"unknown task 'captionin'; did you mean 'captioning'"):
        load_task_config("captionin")


def test_scientific_notation_is_a_float():
    assert parse_yaml("1e-3") == pytest.approx(1e-3)
    assert parse_yaml("-2.5E+2") == pytest.approx(-250.0)
    assert named_config_path("captioning").is_file()


def test_switching_a_component_starts_its_section_afresh():
    data = {"data": {"name": "shapes", "num_images": 10, "batch_size": 4}, "seed": 1}
    apply_overrides(data, ["data.annotations=x.json", "data.name=karpathy", "seed=2"])
    assert data == {"data": {"name": "karpathy", "annotations": "x.json"}, "seed": 2}
    same = {"data": {"name": "shapes", "num_images": 10}}
    apply_overrides(same, ["data.name=shapes"])
    assert same == {"data": {"name": "shapes", "num_images": 10}}
    cfg = load_task_config("captioning", overrides=["data.name=karpathy", "data.annotations=a.json"])
    assert cfg.data["name"] == "karpathy" and cfg.data["annotations"] == "a.json"


def test_union_types_are_spelled_out_in_errors():
    from typing import Literal

    from vltk.registry import describe_type

    assert describe_type(bool | Literal["auto"]) == "bool | 'auto'"
    assert describe_type(int | None) == "int | None"
    assert describe_type(list[int]) == "list[int]"
