"""The captioning system and model builders: every shipped config builds and runs a batch; the loss learns."""

from __future__ import annotations

import pytest
import torch

from vltk.config import to_dict
from vltk.errors import ConfigError
from vltk.tasks import CaptioningTask
from vltk.tasks.captioning.batch import CaptionBatch
from vltk.tasks.captioning.model import build_captioner, resolve_captioner_spec
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


@pytest.mark.parametrize("config", available_configs("captioning"))
def test_every_shipped_config_builds_and_trains_one_batch(config: str):
    torch.manual_seed(0)
    system = _tiny_system(config)
    loss, cross_entropy, _ = system._loss(_batch(size=64))
    assert torch.isfinite(loss) and cross_entropy > 0
    loss.backward()
    parts = [system.model.decoder] + ([] if system.model.blind else [system.model.encoder])
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


def test_captioner_spec_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"unknown config key 'model.encodr'.*did you mean 'model.encoder'"):
        resolve_captioner_spec({"name": "show_tell", "encodr": {}})
    with pytest.raises(ConfigError, match=r"model.decoder.name: the decoder is chosen by model.name"):
        resolve_captioner_spec({"name": "show_tell", "decoder": {"name": "x"}})
    with pytest.raises(ConfigError, match=r"unknown captioner at model.decoder.name 'show_tel'"):
        build_captioner({"name": "show_tel"}, vocab_size=10)
    with pytest.raises(ConfigError, match=r"model.blind"):
        resolve_captioner_spec({"name": "show_tell", "blind": "yes"})


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
