"""Config loading, overrides and registry errors: the messages must name the key and the valid choices."""

from __future__ import annotations

import logging
import re

import pytest

from vltk.config import apply_overrides, from_dict, load_config, parse_yaml, read_yaml
from vltk.errors import ConfigError
from vltk.tasks import CaptioningConfig
from vltk.tasks.runner import available_configs, load_task_config, named_config_path


def test_default_captioning_config_resolves_every_default():
    cfg = load_task_config("captioning")
    assert cfg.task == "captioning"
    assert cfg.model.name == "show_attend_tell"
    # defaults of the constructors are written out, so the run dir records every value
    assert "dropout" in cfg.model.decoder and "trainable" in cfg.model.encoder
    assert cfg.model.decoder["attention"]["name"] == "additive"
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
        ConfigError,
        match=r"unknown config key 'model.decoder.hiden_dim'; did you mean 'model.decoder.hidden_dim'",
    ):
        load_task_config("captioning", overrides=["model.decoder.hiden_dim=3"])


@pytest.mark.parametrize(
    ("task", "override", "message"),
    [
        (
            "captioning",
            "model.encoder.chanels=[4]",
            "'model.encoder.chanels'; did you mean 'model.encoder.channels'",
        ),
        ("captioning", "model.use_imag=false", "'model.use_imag'; did you mean 'model.use_image'"),
        ("vqa", "model.head.glimpse=1", "'model.head.glimpse'; did you mean 'model.head.glimpses'"),
        ("vqa", "model.text.hiden_dim=8", "'model.text.hiden_dim'; did you mean 'model.text.hidden_dim'"),
        ("dialog", "model.attention.dimm=8", "'model.attention.dimm'; did you mean 'model.attention.dim'"),
        ("dialog", "model.use_histroy=false", "'model.use_histroy'; did you mean 'model.use_history'"),
        ("lm", "model.hiden_dim=8", "'model.hiden_dim'; did you mean 'model.hidden_dim'"),
        ("navigation", "model.memory_dims=8", "'model.memory_dims'; did you mean 'model.memory_dim'"),
        ("lm", "data.seqlen=8", "'data.seqlen'; did you mean 'data.seq_len'"),
    ],
)
def test_every_model_section_is_checked_with_one_wording(task, override, message):
    with pytest.raises(ConfigError, match=r"^unknown config key " + re.escape(message)):
        load_task_config(task, overrides=[override])


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
    assert cfg.model.encoder["channels"] == [4, 8]
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


def test_switching_a_component_keeps_the_options_it_takes_and_drops_the_others(caplog):
    data = {"data": {"name": "shapes", "num_images": 10, "batch_size": 4}, "seed": 1}
    apply_overrides(data, ["data.annotations=x.json", "data.name=karpathy", "seed=2"])
    assert data == {
        "data": {"name": "karpathy", "num_images": 10, "batch_size": 4, "annotations": "x.json"},
        "seed": 2,
    }
    same = {"data": {"name": "shapes", "num_images": 10}}
    apply_overrides(same, ["data.name=shapes"])
    assert same == {"data": {"name": "shapes", "num_images": 10}}
    with caplog.at_level(logging.WARNING, logger="vltk.config"):
        cfg = from_dict(CaptioningConfig, data)
    assert (
        cfg.data["name"] == "karpathy" and cfg.data["annotations"] == "x.json" and cfg.data["batch_size"] == 4
    )
    assert "num_images" not in cfg.data
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        len(warnings) == 1 and "--set data.name=karpathy" in warnings[0] and "data.num_images" in warnings[0]
    )
    assert "data.batch_size" not in warnings[0]


def test_options_given_with_set_after_a_switch_are_still_checked():
    with pytest.raises(ConfigError, match="'data.num_images'"):
        load_task_config(
            "captioning", overrides=["data.name=karpathy", "data.annotations=a.json", "data.num_images=3"]
        )


def test_switching_lm_data_to_text_keeps_min_char_rnn_settings(caplog):
    with caplog.at_level(logging.WARNING, logger="vltk.config"):
        cfg = load_task_config("lm", "min_char_rnn", ["data.name=text", "data.files=[my.txt]"])
    assert cfg.data["name"] == "text" and cfg.data["files"] == ["my.txt"]
    assert cfg.data["seq_len"] == 25 and cfg.data["batch_size"] == 1 and cfg.data["eval_batch_size"] == 16
    assert cfg.data["level"] == "char" and cfg.data["max_chars"] == 400000
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # text takes every one of them


def test_switching_a_model_keeps_its_other_parts_and_the_decoder_options_the_new_one_takes(caplog):
    with caplog.at_level(logging.WARNING, logger="vltk.config"):
        cfg = load_task_config("captioning", overrides=["model.name=show_tell"])
    assert cfg.model.name == "show_tell"
    assert cfg.model.decoder["hidden_dim"] == 256 and cfg.model.decoder["dropout"] == 0.2
    assert "attention" not in cfg.model.decoder and "gating" not in cfg.model.decoder
    assert cfg.model.encoder["channels"] == [32, 64, 128]  # the encoder is not the component switched
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "model.decoder.attention" in warning and "model.decoder.hidden_dim" not in warning
    with pytest.raises(ConfigError, match="'model.decoder.gating'"):  # given with --set: the user's, checked
        load_task_config("captioning", overrides=["model.name=show_tell", "model.decoder.gating=false"])


def test_switching_a_nested_spec_drops_only_what_the_new_component_does_not_take():
    cfg = load_task_config("dialog", overrides=["model.encoder.name=resnet18"])
    assert cfg.model.encoder["name"] == "resnet18" and cfg.model.encoder["image_size"] == 64
    assert "channels" not in cfg.model.encoder
    assert cfg.model.text["hidden_dim"] == 256  # the rest of the model section is untouched


def test_a_switch_in_a_dataclass_section_keeps_every_option():
    data = {"optim": {"name": "adam", "lr": 0.5, "weight_decay": 0.1}}
    cfg = from_dict(CaptioningConfig, apply_overrides(data, ["optim.name=sgd"]))
    assert cfg.optim.name == "sgd" and cfg.optim.lr == 0.5 and cfg.optim.weight_decay == 0.1


def test_union_types_are_spelled_out_in_errors():
    from typing import Literal

    from vltk.registry import describe_type

    assert describe_type(bool | Literal["auto"]) == "bool | 'auto'"
    assert describe_type(int | None) == "int | None"
    assert describe_type(list[int]) == "list[int]"


def test_a_run_directory_config_with_an_old_spelling_is_translated_only_when_vltk_wrote_it(tmp_path):
    import yaml

    from vltk.config import to_dict

    cfg = load_task_config("vqa", "question_only")
    old = to_dict(cfg)
    old["model"]["blind"] = not old["model"].pop("use_image")
    path = tmp_path / "config.yaml"  # a run directory's resolved config, written before the rename
    path.write_text(yaml.safe_dump(old, sort_keys=False))
    assert "blind: true" in path.read_text()
    assert to_dict(load_task_config("vqa", path, old_keys=True)) == to_dict(cfg)
    with pytest.raises(ConfigError, match=r"'model.blind' is now spelled 'model.use_image'"):
        load_task_config("vqa", path)


def test_the_trainer_section_takes_every_argument_of_lightnings_trainer():
    import dataclasses
    import inspect

    import pytorch_lightning as pl

    from vltk.tasks.training import VLTK_ONLY, TrainerConfig

    lightning = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
    fields = {f.name for f in dataclasses.fields(TrainerConfig)} - VLTK_ONLY
    assert fields | set(TrainerConfig.MANAGED) == lightning  # a new Lightning argument fails here
    assert not fields & set(TrainerConfig.MANAGED)
    defaults = {n: p.default for n, p in inspect.signature(pl.Trainer.__init__).parameters.items()}
    chosen = {"max_epochs", "log_every_n_steps", "num_sanity_val_steps", "precision", "deterministic",
              "enable_progress_bar"}  # fmt: skip
    differ = {
        f.name
        for f in dataclasses.fields(TrainerConfig)
        if f.name in defaults and f.default != defaults[f.name]
    }
    assert differ == chosen  # everything else is Lightning's own default


def test_trainer_keys_are_checked_and_vltks_own_are_refused_with_where_to_set_them():
    config = load_task_config(
        "captioning", None, ["trainer.accumulate_grad_batches=4", "trainer.max_time={hours: 1}"]
    )
    assert config.trainer.accumulate_grad_batches == 4 and config.trainer.max_time == {"hours": 1}
    with pytest.raises(
        ConfigError, match=r"'trainer.acumulate_grad_batches'.*did you mean 'trainer.accumulate_grad_batches'"
    ):
        load_task_config("captioning", None, ["trainer.acumulate_grad_batches=4"])
    with pytest.raises(
        ConfigError, match=r"'trainer.gradient_clip_val' is not a setting: set optim.grad_clip"
    ):
        load_task_config("captioning", None, ["trainer.gradient_clip_val=1.0"])
    with pytest.raises(ConfigError, match=r"trainer.profiler"):
        load_task_config("captioning", None, ["trainer.profiler=fancy"])


def test_every_trainer_setting_reaches_lightning(tmp_path):
    from pytorch_lightning.callbacks import Timer

    from vltk.tasks.runner import build_trainer

    overrides = [
        "trainer.accumulate_grad_batches=3", "trainer.min_epochs=2", "trainer.max_time=00:01:00:00",
        "trainer.detect_anomaly=true", "trainer.gradient_clip_algorithm=value", "optim.grad_clip=0.5",
    ]  # fmt: skip
    trainer = build_trainer(load_task_config("captioning", None, overrides), tmp_path)
    assert trainer.accumulate_grad_batches == 3 and trainer.fit_loop.min_epochs == 2
    assert [c._duration for c in trainer.callbacks if isinstance(c, Timer)] == [3600.0]  # max_time
    assert trainer._detect_anomaly
    assert trainer.gradient_clip_val == 0.5 and trainer.gradient_clip_algorithm == "value"
