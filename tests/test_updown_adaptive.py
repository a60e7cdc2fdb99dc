"""Up-Down (Anderson et al. 2018) and adaptive attention with a visual sentinel (Lu et al. 2017): stepping
equals teacher forcing, padded regions are invisible, every parameter learns, the decoding functions run
through the captioner builder, beta is the sentinel's share of the attention, the "when did it look" plot,
and the shipped ``adaptive`` config trains."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from vltk.cli.main import app
from vltk.decoders import DECODERS, AdaptiveAttentionDecoder, AdaptiveState, UpDownDecoder, UpDownState
from vltk.decoding import greedy
from vltk.errors import ConfigError
from vltk.registry import build
from vltk.tasks.captioning.model import build_captioner
from vltk.tasks.runner import load_task_config, train
from vltk.types import ImageFeatures
from vltk.viz import save_sentinel_plot, sentinel_weights

B, N, D, V, T = 3, 6, 10, 13, 5
NAMES = ["updown", "adaptive"]
OPTIONS = {
    "updown": {"attention": {"name": "additive", "dim": 7}},
    "adaptive": {"attention_dim": 7},
}


# the paper's models and the options that add the reference code bases' layers
CASES = [
    ("updown", {}),
    ("updown", {"region_embed_dim": 9}),
    ("adaptive", {}),
    ("adaptive", {"variant": "authors"}),
]


def make_decoder(name: str, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    spec = {"name": name, "embed_dim": 8, "hidden_dim": 12, "dropout": 0.3, **OPTIONS[name], **options}
    return build(DECODERS, spec, path="model.decoder", vocab_size=V, feature_dim=D)


def make_features() -> ImageFeatures:
    torch.manual_seed(1)
    grid = torch.randn(B, N, D)  # [B, N, D]
    mask = torch.ones(B, N, dtype=torch.bool)  # [B, N]
    mask[1, 4:] = False
    return ImageFeatures(grid=grid, pooled=grid.mean(1), mask=mask, grid_size=(2, 3))


def make_tokens() -> torch.Tensor:
    torch.manual_seed(2)
    tokens = torch.randint(3, V, (B, T))  # [B, T]
    tokens[:, 0] = 1
    tokens[2, 3:] = 0  # padding after a short caption
    return tokens


def test_the_registry_builds_both_with_their_state_and_vltk_list_shows_them():
    assert isinstance(make_decoder("updown"), UpDownDecoder)
    assert isinstance(make_decoder("adaptive"), AdaptiveAttentionDecoder)
    assert isinstance(make_decoder("updown").init_state(make_features()), UpDownState)
    assert isinstance(make_decoder("adaptive").init_state(make_features()), AdaptiveState)
    default = build(DECODERS, {"name": "updown"}, path="model.decoder", vocab_size=V, feature_dim=D)
    assert default.attention.dim == 512 and default.attention.key_dim == D  # query/key dims wired
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert "updown" in result.output and "adaptive" in result.output


@pytest.mark.parametrize(("name", "options"), CASES)
def test_step_by_step_equals_teacher_forcing_in_eval(name: str, options: dict):
    decoder = make_decoder(name, **options).eval()
    features, tokens = make_features(), make_tokens()
    with torch.no_grad():
        out = decoder.teacher_forcing(features, tokens)
        state = decoder.init_state(features)
        for t in range(T):
            logprobs, state = decoder.step(tokens[:, t], state)
            assert torch.allclose(logprobs, out.logits[:, t].log_softmax(-1), atol=1e-5), t
            assert torch.allclose(state.attention, out.attention[:, t], atol=1e-6), t
            if name == "adaptive":
                assert torch.allclose(state.gate, out.gates[:, t], atol=1e-6), t
    assert out.logits.shape == (B, T, V) and out.attention.shape == (B, T, N)
    assert (out.gates is None) == (name == "updown")


@pytest.mark.parametrize(("name", "options"), CASES)
def test_padded_regions_get_zero_weight_and_do_not_change_the_output(name: str, options: dict):
    decoder = make_decoder(name, **options).eval()
    features, tokens = make_features(), make_tokens()
    noisy = ImageFeatures(features.grid.clone(), features.pooled, features.mask, features.grid_size)
    noisy.grid[1, 4:] = 100.0  # garbage in the padded regions (the mean feature is masked too)
    clean, garbage = decoder(features, tokens), decoder(noisy, tokens)
    assert torch.equal(clean.attention[1, :, 4:], torch.zeros(T, N - 4))
    assert torch.equal(garbage.attention[1, :, 4:], torch.zeros(T, N - 4))
    assert torch.allclose(clean.logits[1], garbage.logits[1], atol=1e-5)
    real = torch.ones(B, N, dtype=torch.bool)
    unmasked = ImageFeatures(noisy.grid, noisy.pooled, real, noisy.grid_size)
    assert not torch.allclose(decoder(unmasked, tokens).logits[1], clean.logits[1], atol=1e-3)  # it can see


@pytest.mark.parametrize(("name", "options"), CASES)
def test_every_parameter_gets_a_gradient(name: str, options: dict):
    decoder = make_decoder(name, **options).train()
    tokens = make_tokens()
    out = decoder.teacher_forcing(make_features(), tokens[:, :-1])
    F.cross_entropy(out.logits.reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=0).backward()
    for param_name, param in decoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, param_name
    assert torch.equal(decoder.embedding.weight.grad[0], torch.zeros(8))  # pad embedding is frozen


def test_updown_region_embedding_sizes_what_the_lstms_and_the_attention_read():
    decoder = make_decoder("updown", region_embed_dim=9).eval()
    assert decoder.top_down.input_dim == 12 + 9 + 8 and decoder.attention.key_dim == 9  # H + R + E
    state = decoder.init_state(make_features())
    assert state.grid.shape == (B, N, 9) and state.mean.shape == (B, 9)
    assert (state.grid >= 0).all()  # ReLU(W_r v)
    with pytest.raises(ConfigError, match="region_embed_dim"):
        make_decoder("updown", region_embed_dim=0)


def test_adaptive_variant_is_a_choice_and_the_authors_layers_change_the_output():
    with pytest.raises(ConfigError, match="model.decoder.variant 'author'; did you mean 'authors'"):
        make_decoder("adaptive", variant="author")
    paper, authors = make_decoder("adaptive").eval(), make_decoder("adaptive", variant="authors").eval()
    assert {"sentinel_embed.weight", "hidden_embed.weight", "output_embed.weight"} <= dict(
        authors.named_parameters()
    ).keys()
    assert not any(name.startswith("output_embed") for name, _ in paper.named_parameters())
    out = authors(make_features(), make_tokens())
    assert torch.allclose(out.attention.sum(-1) + out.gates, torch.ones(B, T), atol=1e-6)
    # the shared layers start equal (same seed, built first), so only the authors' layers differ
    shared = dict(authors.named_parameters())
    assert all(torch.equal(param, shared[name]) for name, param in paper.named_parameters())
    assert not torch.allclose(paper(make_features(), make_tokens()).logits, out.logits, atol=1e-3)


def test_updown_attention_sums_to_one_and_its_states_start_at_zero():
    decoder = make_decoder("updown").eval()
    state = decoder.init_state(make_features())
    for tensor in (state.h, state.c, state.top_down_h, state.top_down_c):
        assert tensor.shape == (B, 12) and torch.count_nonzero(tensor) == 0
    out = decoder(make_features(), make_tokens())
    assert torch.allclose(out.attention.sum(-1), torch.ones(B, T), atol=1e-6)


def test_adaptive_region_weights_and_beta_sum_to_one():
    decoder = make_decoder("adaptive").eval()
    out = decoder(make_features(), make_tokens())
    assert out.gates is not None and out.gates.shape == (B, T)
    assert ((out.gates >= 0) & (out.gates <= 1)).all()
    assert torch.allclose(out.attention.sum(-1) + out.gates, torch.ones(B, T), atol=1e-6)
    assert torch.allclose(torch.from_numpy(sentinel_weights(out.attention[0])), out.gates[0], atol=1e-6)
    # the sentinel competes with the regions: scored far above them it takes all the weight, far below none
    with torch.no_grad():
        decoder.score.weight.fill_(1.0)
        for sign, beta in ((1.0, 1.0), (-1.0, 0.0)):
            decoder.sentinel_key.bias.fill_(50.0 * sign)
            decoder.visual_key.bias.fill_(-50.0 * sign)
            gates = decoder(make_features(), make_tokens()).gates
            assert torch.allclose(gates, torch.full((B, T), beta), atol=1e-4), sign


@pytest.mark.parametrize("name", NAMES)
def test_greedy_sample_and_beam_search_through_the_captioner(name: str):
    spec = {"name": name, "encoder": {"name": "small_cnn", "channels": [4, 8], "image_size": 32},
            "decoder": {"embed_dim": 8, "hidden_dim": 12, **OPTIONS[name]}}  # fmt: skip
    torch.manual_seed(0)
    model = build_captioner(spec, vocab_size=V).eval()
    features = model.encode(torch.randn(2, 3, 32, 32))
    greedy = model.generate(features, method="greedy", max_length=6)
    beam1 = model.generate(features, method="beam", beam_size=1, max_length=6).best()
    beam3 = model.generate(features, method="beam", beam_size=3, n_best=2, max_length=6)
    sampled = model.generate(
        features, method="sample", max_length=6, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(beam1.tokens, greedy.tokens) and torch.allclose(beam1.scores, greedy.scores)
    assert beam3.tokens.shape[:2] == (2, 2) and (beam3.scores[:, 0] >= beam3.scores[:, 1]).all()
    assert (beam3.scores[:, 0] >= greedy.scores - 1e-5).all()  # beam 3 finds at least greedy's caption
    n = features.grid.shape[1]
    for result in (greedy, sampled, beam3.best()):
        assert result.attention is not None and result.attention.shape[-1] == n
        assert result.tokens.shape[1] <= 6 and (result.lengths <= 6).all()


def test_a_greedy_trace_keeps_the_beta_of_teacher_forcing_on_its_caption():
    """Decoding keeps the region weights of every word; for the adaptive decoder they sum to 1 - beta."""
    decoder = make_decoder("adaptive").eval()
    features = make_features()
    with torch.no_grad():  # an end token it never emits: every caption has T words
        result = greedy(decoder.step, decoder.init_state(features), batch_size=B, bos_id=1, eos_id=V + 1,
                        pad_id=0, max_length=T)  # fmt: skip
        inputs = torch.cat([torch.full((B, 1), 1), result.tokens[:, :-1]], dim=1)  # [B, T]
        out = decoder.teacher_forcing(features, inputs)
    assert result.tokens.shape == (B, T) and result.attention.shape == (B, T, N)
    for row in range(B):
        beta = torch.from_numpy(sentinel_weights(result.attention[row]))  # [T]
        assert torch.allclose(beta, out.gates[row], atol=1e-5), row


def test_the_sentinel_plot_writes_a_png_and_refuses_mismatched_lengths(tmp_path):
    words = ["a", "red", "circle", "of", "it"]
    path = save_sentinel_plot(words, torch.tensor([0.9, 0.1, 0.2, 0.8, 0.5]), tmp_path / "plots" / "beta.png")
    data = path.read_bytes()
    assert path.exists() and len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="beta has 4 values but there are 5 words"):
        save_sentinel_plot(words, [0.1, 0.2, 0.3, 0.4], tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\]"):
        save_sentinel_plot(words, [0.1, 0.2, 1.5, 0.4, 0.0], tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"beta must be \[L\]"):
        save_sentinel_plot(words, torch.zeros(5, 2), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_the_adaptive_config_fits_a_few_batches(tmp_path, tiny_captioning_overrides):
    tiny = [o for o in tiny_captioning_overrides if not o.startswith("model.")]
    sizes = ["model.encoder.channels=[8, 16, 16]", "model.decoder.embed_dim=16",
             "model.decoder.hidden_dim=32", "model.decoder.attention_dim=16"]  # fmt: skip
    cfg = load_task_config("captioning", "adaptive", [*tiny, *sizes, "data.num_images=32", "seed=1"])
    assert cfg.model.name == "adaptive" and cfg.loss.attention_regularization == 0.0
    assert cfg.model.decoder["hidden_dim"] == 32 and cfg.model.decoder["variant"] == "authors"
    result = train(cfg, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    assert result.split == "test" and "CIDEr" in result.metrics
    # vltk predict --attention-map on this model also writes the "when did it look" plot beside the map
    from PIL import Image

    from vltk.tasks.captioning.predict import CaptionRequest, predict_captions_lines
    from vltk.tasks.runner import load_system

    Image.new("RGB", (64, 64), (200, 40, 40)).save(tmp_path / "red.png")
    captioner = load_system(tmp_path / "run" / "checkpoints" / "last.ckpt").inference()
    request = CaptionRequest(inputs=[tmp_path / "red.png"], attention_map=tmp_path / "map.png")
    # a 2-epoch model may say nothing: min_length 3 makes it word a caption
    captioner.decoding = dataclasses.replace(captioner.decoding, min_length=3)
    lines = predict_captions_lines(captioner, request)
    assert any("when it looked" in line for line in lines)
    assert (tmp_path / "map-sentinel.png").stat().st_size > 0
    # an empty caption: the map alone, no sentinel plot, and a line that says why (no traceback)
    (tmp_path / "map-sentinel.png").unlink()
    real_captions = captioner.captions

    def empty_captions(images, **overrides):
        return [dataclasses.replace(c, text="", words=[], attention=c.attention[:0])
                for c in real_captions(images, **overrides)]  # fmt: skip

    captioner.captions = empty_captions
    lines = predict_captions_lines(captioner, request)
    assert any("the caption is empty" in line for line in lines)
    assert not (tmp_path / "map-sentinel.png").exists() and (tmp_path / "map.png").stat().st_size > 0
