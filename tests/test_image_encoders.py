"""Image encoders: every registered encoder, frozen/trainable behaviour, transforms, weights loading."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from vltk.encoders import IMAGE_ENCODERS, SmallCNNEncoder, TorchvisionEncoder, resnet18_encoder
from vltk.errors import ConfigError, DataError
from vltk.registry import build
from vltk.types import ImageFeatures

# name -> (image size used in the test, expected out_dim, expected grid side for that size)
EXPECTED = {
    "small_cnn": (64, 128, 8),
    "resnet18": (64, 512, 2),
    "resnet34": (32, 512, 1),
    "resnet50": (32, 2048, 1),
    "resnet101": (32, 2048, 1),
    "resnet152": (32, 2048, 1),
    "vgg16": (32, 512, 2),
}


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly instead of downloading anything."""

    def refuse(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(f"test refused to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def test_registry_covers_every_backbone() -> None:
    # "cached" reads precomputed grids instead of images: tests/test_feature_cache.py covers it ("regions",
    # region stores: tests/test_region_features.py); "torchvision" takes any other backbone by name: the
    # tests at the end of this file.
    assert set(IMAGE_ENCODERS) - {"cached", "regions", "torchvision"} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_forward_shapes(name: str) -> None:
    torch.manual_seed(0)
    size, dim, side = EXPECTED[name]
    encoder = build(IMAGE_ENCODERS, {"name": name, "image_size": size}, path="model.encoder")
    assert encoder.out_dim == dim
    with torch.no_grad():
        features = encoder(torch.randn(2, 3, size, size))
    assert isinstance(features, ImageFeatures)
    assert features.grid.shape == (2, side * side, dim)
    assert features.pooled.shape == (2, dim)
    assert features.grid_size == (side, side)
    assert features.mask is None
    torch.testing.assert_close(features.pooled, features.grid.mean(dim=1))
    assert torch.isfinite(features.grid).all()


def test_resnet_grid_is_last_stage_at_224() -> None:
    torch.manual_seed(0)
    encoder = IMAGE_ENCODERS["resnet18"]()
    with torch.no_grad():
        features = encoder(torch.randn(1, 3, 224, 224))
    assert features.grid_size == (7, 7)
    assert features.grid.shape == (1, 49, 512)


def test_frozen_backbone_stays_in_eval_mode() -> None:
    encoder = resnet18_encoder(trainable=False)
    assert encoder.trainable is False
    assert not any(p.requires_grad for p in encoder.parameters())
    parent = nn.ModuleDict({"encoder": encoder, "head": nn.Linear(4, 4)})
    parent.train()
    assert parent["head"].training
    assert not any(m.training for m in encoder.backbone.modules())
    bn = encoder.backbone.bn1
    before = bn.running_mean.clone()
    encoder(torch.randn(2, 3, 64, 64) * 3 + 1)
    torch.testing.assert_close(bn.running_mean, before)


def test_trainable_backbone_trains_and_gets_gradients() -> None:
    torch.manual_seed(0)
    encoder = resnet18_encoder(trainable=True).train()
    assert encoder.backbone.training
    encoder(torch.randn(2, 3, 64, 64)).pooled.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_small_cnn_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    encoder = SmallCNNEncoder(channels=[8, 16], image_size=32).train()
    features = encoder(torch.randn(2, 3, 32, 32))
    assert features.grid_size == (8, 8)
    (features.grid.pow(2).mean() + features.pooled.sum()).backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_small_cnn_frozen_and_without_norm() -> None:
    frozen = SmallCNNEncoder(trainable=False)
    frozen.train()
    assert not frozen.training
    assert not any(p.requires_grad for p in frozen.parameters())
    plain = SmallCNNEncoder(norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert plain(torch.randn(1, 3, 64, 64)).grid.shape == (1, 64, 128)


def test_small_cnn_channels_last_is_the_same_computation() -> None:
    """NHWC storage changes the memory layout only: with the same weights, the grid, the pooled vector and
    every gradient agree with the NCHW encoder to float rounding, and the weights load either way."""
    torch.manual_seed(0)
    nchw = SmallCNNEncoder(channels=[8, 16], image_size=32, channels_last=False).train()
    nhwc = SmallCNNEncoder(channels=[8, 16], image_size=32).train()
    nhwc.load_state_dict(nchw.state_dict())
    conv = next(m for m in nhwc.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.randn(3, 3, 32, 32)
    outputs = []
    for encoder in (nchw, nhwc):
        features = encoder(images)
        (features.grid.pow(2).mean() + features.pooled.sum()).backward()
        outputs.append((features, dict(encoder.named_parameters())))
    (plain, plain_params), (last, last_params) = outputs
    torch.testing.assert_close(last.grid, plain.grid, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last.pooled, plain.pooled, rtol=1e-5, atol=1e-5)
    for name, param in plain_params.items():
        torch.testing.assert_close(last_params[name].grad, param.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_small_cnn_rejects_bad_channels() -> None:
    with pytest.raises(ConfigError, match="channels"):
        SmallCNNEncoder(channels=[])
    with pytest.raises(ConfigError, match="image_size"):
        SmallCNNEncoder(channels=[8, 8, 8], image_size=4)


@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "vgg16"])
def test_transforms_resize_odd_images_to_square(name: str) -> None:
    size = EXPECTED[name][0]
    transform = build(IMAGE_ENCODERS, {"name": name, "image_size": size}).transforms()
    for mode in ("RGB", "L", "RGBA", "P"):
        tensor = transform(Image.new(mode, (37, 91)))
        assert tensor.shape == (3, size, size), mode
        assert tensor.dtype == torch.float32


def test_transforms_use_the_normalisation() -> None:
    white = Image.new("RGB", (10, 13), (255, 255, 255))
    assert torch.allclose(SmallCNNEncoder().transforms()(white), torch.ones(3, 64, 64))
    imagenet = resnet18_encoder(image_size=32).transforms()(white)
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(imagenet[:, 0, 0], expected)


def _random_resnet18_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None)
    for param in model.parameters():
        param.data.normal_()
    return model.state_dict()


def _assert_backbone_equals(encoder: TorchvisionEncoder, state: dict[str, torch.Tensor]) -> None:
    own = encoder.backbone.state_dict()
    assert set(own) == {k for k in state if not k.startswith("fc.")}
    for key, value in own.items():
        torch.testing.assert_close(value, state[key], msg=key)


def test_named_weights_from_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    state = _random_resnet18_state(1)
    torch.save(state, checkpoints / Path(weights.url).name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    encoder = build(IMAGE_ENCODERS, {"name": "resnet18", "weights": "DEFAULT", "trainable": False})
    _assert_backbone_equals(encoder, state)
    assert encoder.mean == tuple(weights.transforms().mean)


def test_named_weights_missing_offline_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    file_name = Path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url).name
    with pytest.raises(DataError, match=file_name) as info:
        resnet18_encoder(weights="IMAGENET1K_V1")
    assert str(tmp_path / "hub" / "checkpoints") in str(info.value)


def test_weights_from_local_file(tmp_path: Path) -> None:
    state = _random_resnet18_state(2)
    path = tmp_path / "my_resnet18.pth"
    torch.save(state, path)
    encoder = resnet18_encoder(weights=str(path))
    _assert_backbone_equals(encoder, state)
    # A state dict saved from an encoder nested in a bigger model loads back too.
    nested = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    torch.save({"state_dict": nested}, tmp_path / "model.pt")
    _assert_backbone_equals(resnet18_encoder(weights=str(tmp_path / "model.pt")), state)


def test_weights_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing.pth"):
        resnet18_encoder(weights=str(tmp_path / "missing.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(DataError, match="wrong.pth"):
        resnet18_encoder(weights=str(wrong))


def test_unknown_weights_name_lists_choices() -> None:
    with pytest.raises(ConfigError, match="IMAGENET1K_V1") as info:
        build(IMAGE_ENCODERS, {"name": "resnet18", "weights": "IMAGENET"})
    assert "DEFAULT" in str(info.value)


def test_unknown_encoder_and_key() -> None:
    with pytest.raises(ConfigError, match="resnet50"):
        build(IMAGE_ENCODERS, {"name": "resnet5"})
    with pytest.raises(ConfigError, match="trainable"):
        build(IMAGE_ENCODERS, {"name": "resnet18", "trainabel": True})
    with pytest.raises(ConfigError, match="backbone"):
        TorchvisionEncoder("alexnett")


# ---- any torchvision classifier (name: torchvision, backbone: ...) ----------------------------------------
GRID_BACKBONES = ["convnext_tiny", "efficientnet_b0", "mobilenet_v3_small", "densenet121", "regnet_y_400mf",
                  "swin_t", "squeezenet1_0", "shufflenet_v2_x0_5", "vit_b_32"]  # fmt: skip


@pytest.mark.parametrize("backbone", GRID_BACKBONES)
def test_torchvision_classifiers_give_a_grid_of_their_last_feature_map(backbone: str) -> None:
    torch.manual_seed(0)
    encoder = build(IMAGE_ENCODERS, {"name": "torchvision", "backbone": backbone, "image_size": 64})
    with torch.no_grad():
        features = encoder(encoder.transforms()(Image.new("RGB", (80, 50), "red")).unsqueeze(0))
    height, width = features.grid_size
    assert features.grid.shape == (1, height * width, encoder.out_dim) and height * width >= 1
    torch.testing.assert_close(features.pooled, features.grid.mean(dim=1))
    assert not any(p.requires_grad for p in encoder.parameters())  # frozen by default


def test_vit_patch_tokens_are_its_encoder_output_without_the_class_token() -> None:
    from vltk.encoders import torchvision_encoder

    torch.manual_seed(0)
    encoder = torchvision_encoder(backbone="vit_b_32", image_size=64)
    vit = torchvision.models.vit_b_32(weights=None, image_size=64)
    vit.load_state_dict(encoder.backbone.state_dict(), strict=False)  # the trunk keeps torchvision's names
    vit.eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = vit._process_input(images)  # torchvision's own forward, up to the head
        tokens = vit.encoder(torch.cat([vit.class_token.expand(2, -1, -1), tokens], dim=1))
        features = encoder(images)
    assert features.grid_size == (2, 2)
    torch.testing.assert_close(features.grid, tokens[:, 1:])
    with pytest.raises(ConfigError, match="multiple of vit_b_32's patch size 32"):
        torchvision_encoder(backbone="vit_b_32", image_size=48)


def test_a_local_weights_file_loads_into_any_backbone(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = torchvision.models.mobilenet_v3_small(weights=None)
    for param in model.parameters():
        param.data.normal_()
    state = model.state_dict()
    torch.save(state, tmp_path / "mobilenet.pth")
    spec = {"name": "torchvision", "backbone": "mobilenet_v3_small", "image_size": 64}
    encoder = build(IMAGE_ENCODERS, {**spec, "weights": str(tmp_path / "mobilenet.pth")})
    for key, value in encoder.backbone.state_dict().items():
        torch.testing.assert_close(value, state[key], msg=key)
    trunk_only = {k: v for k, v in state.items() if not k.startswith("classifier.")}  # no head: fine
    torch.save(trunk_only, tmp_path / "trunk.pth")
    build(IMAGE_ENCODERS, {**spec, "weights": str(tmp_path / "trunk.pth")})
    lacking = {k: v for k, v in state.items() if not k.startswith("features.12.")}
    torch.save(lacking, tmp_path / "lacking.pth")
    with pytest.raises(DataError, match=r"lacking.pth' lacks \d+ mobilenet_v3_small backbone tensor"):
        build(IMAGE_ENCODERS, {**spec, "weights": str(tmp_path / "lacking.pth")})


def test_backbone_choices_are_torchvisions_classifiers_less_the_refused() -> None:
    from vltk.encoders import grid_backbones

    names = grid_backbones()
    assert {"resnet50", "convnext_tiny", "vit_b_16", "swin_t", "efficientnet_b0"} <= set(names)
    assert "googlenet" not in names and len(names) >= 70
    with pytest.raises(ConfigError, match="googlenet' is not offered as a grid encoder: its forward adds"):
        build(IMAGE_ENCODERS, {"name": "torchvision", "backbone": "googlenet"})
    with pytest.raises(ConfigError, match="did you mean 'convnext_tiny'"):
        build(IMAGE_ENCODERS, {"name": "torchvision", "backbone": "convnext_tiyn"})


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_the_transforms_v2_pipeline_is_bitwise_the_classic_one(mode):
    import numpy as np
    from torchvision import transforms as classic
    from torchvision.transforms import v2

    from vltk.data.images import ToRGB, default_image_transform, resize_normalize

    pixels = np.random.default_rng(7).integers(0, 256, (53, 91, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    transform = resize_normalize(40, mean, std)
    assert isinstance(transform, v2.Compose)
    before = classic.Compose([ToRGB(), classic.Resize((40, 40), antialias=True), classic.ToTensor(),
                              classic.Normalize(mean, std)])  # fmt: skip
    produced = transform(image)
    assert type(produced) is torch.Tensor and produced.shape == (3, 40, 40)
    assert torch.equal(produced, before(image))
    assert torch.equal(default_image_transform(32)(image.convert("RGB")),
                       classic.Compose([classic.Resize((32, 32), antialias=True), classic.ToTensor(),
                                        classic.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])(
                           image.convert("RGB")))  # fmt: skip
    tensor_input = transform(torch.from_numpy(pixels).permute(2, 0, 1))  # a uint8 [3, H, W] tensor works too
    assert type(tensor_input) is torch.Tensor and tensor_input.shape == (3, 40, 40)
