"""The captioning system and model builders: every shipped config builds and runs a batch; the loss learns."""

from __future__ import annotations

import pytest
import torch

from vltk.config import from_dict, to_dict
from vltk.errors import ConfigError
from vltk.tasks import CaptioningTask
from vltk.tasks.captioning.batch import CaptionBatch
from vltk.tasks.captioning.model import CaptionerConfig, build_captioner
from vltk.tasks.runner import available_configs, load_task_config
from vltk.text import Vocabulary

VOCAB = Vocabulary.build([["a", "red", "circle"], ["a", "blue", "square", "left", "of"]])


def _batch(size: int = 64, batch: int = 3, length: int = 6) -> CaptionBatch:
    generator = torch.Generator().manual_seed(0)
    captions = torch.randint(4, len(VOCAB), (batch, length), generator=generator)
    captions[:, 0] = VOCAB.start_id
    captions[:, -1] = VOCAB.end_id
    captions[0, -2:] = torch.tensor([VOCAB.end_id, VOCAB.pad_id])
    return CaptionBatch(
        images=torch.randn(batch, 3, size, size, generator=generator),
        captions=captions,
        caption_mask=captions != VOCAB.pad_id,
        image_ids=torch.arange(batch),
        references=[["a red circle"]] * batch,
    )


def _tiny_system(config: str, extra: list[str] = ()) -> CaptioningTask:
    overrides = ["model.encoder.weights=null"] if "resnet" in config else []
    cfg = load_task_config("captioning", config, overrides + list(extra))
    return CaptioningTask(config=to_dict(cfg), vocab=VOCAB.to_json())


def _reads_regions(config: str) -> bool:
    return load_task_config("captioning", config).model.encoder["name"] == "regions"


# Configs of the regions encoder read a region store, not images: tests/test_region_features.py makes one and
# trains them a batch.
@pytest.mark.parametrize(
    "config", [name for name in available_configs("captioning") if not _reads_regions(name)]
)
def test_every_shipped_config_builds_and_trains_one_batch(config: str):
    torch.manual_seed(0)
    system = _tiny_system(config)
    loss, cross_entropy, _ = system._loss(_batch(size=64))
    assert torch.isfinite(loss) and cross_entropy > 0
    loss.backward()
    parts = [system.model.decoder] + ([system.model.encoder] if system.model.use_image else [])
    trainable = [p for part in parts for p in part.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)


def test_blind_captioner_sees_zero_features():
    system = _tiny_system("image_blind")
    features = system.model.encode(torch.randn(2, 3, 64, 64))
    assert torch.count_nonzero(features.grid) == 0 and torch.count_nonzero(features.pooled) == 0


def test_attention_regulariser_is_zero_when_disabled_and_positive_otherwise():
    torch.manual_seed(0)
    _, _, with_reg = _tiny_system("default")._loss(_batch())
    _, _, without = _tiny_system("default", ["loss.attention_regularization=0"])._loss(_batch())
    assert with_reg > 0 and without == 0


def test_the_system_overfits_a_batch():
    torch.manual_seed(0)
    system = _tiny_system("default", ["model.decoder.dropout=0.0"])
    optimizer = torch.optim.Adam(system.parameters(), lr=3e-3)
    batch = _batch(batch=4)
    first = system._loss(batch)[1].item()
    for _ in range(60):
        optimizer.zero_grad()
        system._loss(batch)[0].backward()
        optimizer.step()
    assert system._loss(batch)[1].item() < 0.2 * first


def test_caption_decodes_strings_with_every_method():
    system = _tiny_system("default", ["decoding.max_length=5"]).eval()
    images = torch.randn(2, 3, 64, 64)
    for method in ("beam", "greedy", "sample"):
        system.config.decoding.method = method
        captions = system.caption(images)
        assert len(captions) == 2 and all(isinstance(c, str) and len(c.split()) <= 5 for c in captions)


def _captioner_config(section: dict) -> CaptionerConfig:
    return from_dict(CaptionerConfig, section, "model")


def test_captioner_spec_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"unknown config key 'model.encodr'.*did you mean 'model.encoder'"):
        _captioner_config({"name": "show_tell", "encodr": {}})
    with pytest.raises(ConfigError, match=r"model.decoder.name: the decoder is chosen by model.name"):
        _captioner_config({"name": "show_tell", "decoder": {"name": "x"}})
    with pytest.raises(ConfigError, match=r"at model.name 'show_tel'; did you mean 'show_tell'"):
        build_captioner({"name": "show_tel"}, vocab_size=10)
    with pytest.raises(ConfigError, match=r"model.use_image = 'yes' has the wrong type"):
        _captioner_config({"name": "show_tell", "use_image": "yes"})
    with pytest.raises(
        ConfigError, match=r"model.decoder.attention.dimm'; did you mean 'model.decoder.attention.dim'"
    ):
        _captioner_config({"decoder": {"attention": {"name": "additive", "dimm": 3}}})


def test_captioner_config_completes_every_default_and_rebuilds_from_it():
    resolved = to_dict(_captioner_config({"decoder": {"attention": {"name": "additive"}}}))
    assert list(resolved) == ["name", "encoder", "decoder", "use_image", "init_from"]
    assert resolved["decoder"]["attention"] == {"name": "additive", "dim": 256}
    assert resolved["encoder"]["name"] == "small_cnn" and "trainable" in resolved["encoder"]
    assert to_dict(_captioner_config(resolved)) == resolved
    assert to_dict(_captioner_config({"name": "show_tell"}))["decoder"].keys() >= {"hidden_dim", "cell"}


def _old_spelling(config: dict) -> dict:
    """``config`` as a checkpoint written before ``blind`` became ``use_image`` holds it."""
    old = {**config, "model": dict(config["model"])}
    old["model"]["blind"] = not old["model"].pop("use_image")
    return old


def test_a_checkpoint_with_the_old_blind_spelling_loads_and_predicts_the_same(tmp_path):
    from vltk.tasks.pretrained import from_pretrained
    from vltk.tasks.runner import load_system

    torch.manual_seed(0)
    system = _tiny_system("image_blind", ["decoding.max_length=4"]).eval()
    path = tmp_path / "old.ckpt"
    hyper_parameters = {"config": _old_spelling(dict(system.hparams["config"])), "vocab": VOCAB.to_json()}
    torch.save({"hyper_parameters": hyper_parameters, "state_dict": system.state_dict()}, path)
    loaded = load_system(path)
    assert loaded.config.model.use_image is False and loaded.model.use_image is False
    assert to_dict(loaded.config) == to_dict(system.config)
    images = torch.randn(2, 3, 64, 64)
    assert loaded.caption(images) == system.caption(images)
    assert from_pretrained(path).model.use_image is False


def test_the_old_blind_spelling_in_a_config_is_one_line_naming_the_new_one(tmp_path):
    from typer.testing import CliRunner

    from vltk.cli.main import app

    with pytest.raises(
        ConfigError, match=r"'model.blind' is now spelled 'model.use_image': write 'use_image: false'"
    ):
        load_task_config("captioning", overrides=["model.blind=true"])
    path = tmp_path / "blind.yaml"
    path.write_text("task: captioning\nmodel: {name: show_tell, blind: false}\n")
    result = CliRunner().invoke(app, ["train", "captioning", "--config", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    new_spelling = (
        "'model.blind' is now spelled 'model.use_image': write 'use_image: true' instead of 'blind: false'"
    )
    assert line.endswith(new_spelling)
    assert build_captioner({"blind": False}, vocab_size=10).use_image is True


def test_predict_without_attention_model_explains_attention_maps(tmp_path):
    from PIL import Image

    from vltk.errors import VltkError
    from vltk.tasks.captioning.predict import predict_captions

    system = _tiny_system("show_tell", ["decoding.max_length=4"]).eval()
    image = tmp_path / "x.png"
    Image.new("RGB", (40, 30), "red").save(image)
    (prediction,) = predict_captions(system.inference(), [image], beam_size=2)
    assert isinstance(prediction.caption, str) and len(prediction.caption.split()) <= 4
    with pytest.raises(VltkError, match="no attention over image regions"):
        predict_captions(system.inference(), [image], attention_map=tmp_path / "att.png")
