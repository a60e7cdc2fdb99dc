"""``vltk export --onnx`` and the model card: the ONNX graphs of a captioner (image encoder, one decoder
step) and of a VQA model agree with the PyTorch models to 1e-4 in ONNX Runtime, the numpy beam search over
the step graph returns vltk's beam-3 captions, the README.md card parses with huggingface_hub, and what
cannot be exported is refused in one line.

Models are tiny and built in-process (untrained: their weights are the initialisation), saved as the
checkpoints ``vltk train`` writes; each export is made once per module (about 3 s per graph).
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

import vltk
from vltk.cli.main import app
from vltk.config import to_dict
from vltk.decoders.show_tell import ShowTellDecoder
from vltk.decoders.state import DecoderState
from vltk.decoding import beam_search as torch_beam_search
from vltk.errors import VltkError
from vltk.onnx import OnnxStep, beam_search, load_session, read_onnx_config, run_session
from vltk.onnx.exporter import TOLERANCE
from vltk.tasks import CaptioningTask, VqaTask
from vltk.tasks.captioning.model import build_captioner
from vltk.tasks.captioning.onnx import OnnxCaptioner, state_layout
from vltk.tasks.export import export_model
from vltk.tasks.reliability import provenance
from vltk.tasks.runner import load_task_config
from vltk.tasks.vqa.onnx import export_vqa_onnx
from vltk.text import Vocabulary
from vltk.types import ImageFeatures

WORDS = [
    ["a", "red", "circle", "above", "the", "blue", "square"],
    ["a", "green", "triangle", "left", "of", "it"],
]
VOCAB = Vocabulary.build(WORDS)
QUESTIONS = Vocabulary.build([["what", "color", "is", "the", "shape"], ["is", "there", "a", "red", "circle"]])
ANSWERS = ["yes", "no", "red", "blue", "circle"]
CAPTIONER = [
    "model.encoder={name: resnet18, weights: null, image_size: 64}",  # a 2x2 grid of 512 features
    "model.decoder.embed_dim=16",
    "model.decoder.hidden_dim=32",
    "model.decoder.attention.dim=16",
    "decoding.max_length=8",
]
METRICS = {"BLEU-4": 0.125, "CIDEr": 0.5}


def _save_checkpoint(system, run: Path, metrics: dict[str, float] | None = None) -> Path:
    """``system`` as ``vltk train`` saves it: ``RUN/checkpoints/best.ckpt`` (+ ``RUN/metrics.json``)."""
    path = run / "checkpoints" / "best.ckpt"
    path.parent.mkdir(parents=True)
    payload = {"hyper_parameters": dict(system.hparams), "state_dict": system.state_dict(),
               "vltk_provenance": provenance()}  # fmt: skip
    torch.save(payload, path)
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps({"split": "test", "metrics": metrics}))
    return path


def _images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)) for _ in range(count)]


def _max_difference(onnx_outputs: dict[str, np.ndarray], torch_outputs: dict[str, torch.Tensor]) -> float:
    return max(float(np.abs(onnx_outputs[k] - v.numpy()).max()) for k, v in torch_outputs.items())


# ------------------------------------------------------------------ Show, Attend and Tell, via the CLI
@pytest.fixture(scope="module")
def attend_export(tmp_path_factory) -> tuple[Path, Path]:
    """A Show, Attend and Tell captioner (ResNet-18, LSTM) exported with ``vltk export CKPT DIR --onnx``
    (the small CNN is the VQA model's encoder below)."""
    torch.manual_seed(0)
    cfg = load_task_config("captioning", "default", CAPTIONER)
    system = CaptioningTask(config=to_dict(cfg), vocab=VOCAB.to_json())
    root = tmp_path_factory.mktemp("attend")
    checkpoint = _save_checkpoint(system, root / "run", METRICS)
    result = CliRunner().invoke(app, ["export", str(checkpoint), str(root / "export"), "--onnx"])
    assert result.exit_code == 0, result.output
    return checkpoint, root / "export"


def test_the_onnx_export_holds_the_graphs_and_files_readable_by_others(attend_export):
    _, out = attend_export
    names = {path.relative_to(out).as_posix() for path in out.rglob("*")}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "onnx", "onnx/encoder.onnx",
            "onnx/decoder_step.onnx", "onnx/onnx_config.json"} <= names  # fmt: skip
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("README.md", "model.safetensors", "onnx/encoder.onnx", "onnx/onnx_config.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o666 & ~umask, name
    assert stat.S_IMODE((out / "onnx").stat().st_mode) == 0o777 & ~umask
    config = read_onnx_config(out)
    assert config["state"] == {**config["state"], "recurrent": ["h", "c"], "attention": True}
    assert set(config["state"]["constants"]) == {"regions", "projected_keys"}
    assert config["graphs"]["encoder"]["inputs"] == {
        "images": {"shape": ["batch", 3, 64, 64], "dtype": "float32"}
    }
    step = config["graphs"]["decoder_step"]
    assert step["inputs"]["tokens"] == {"shape": ["rows"], "dtype": "int64"}
    assert step["outputs"]["logprobs"]["shape"] == ["rows", len(VOCAB)]
    assert {"next_h", "next_c", "attention"} <= set(step["outputs"])
    assert (config["vocabulary"]["start_id"], config["vocabulary"]["end_id"]) == (
        VOCAB.start_id,
        VOCAB.end_id,
    )
    assert config["preprocessing"]["resize"]["height"] == 64 and config["preprocessing"]["mean"] == [
        0.485,
        0.456,
        0.406,
    ]
    assert max(config["parity_max_abs_difference"].values()) <= TOLERANCE


def test_the_encoder_and_the_decoder_step_agree_with_pytorch(attend_export):
    _, out = attend_export
    model = vltk.from_pretrained(out).model
    images = torch.randn(5, 3, 64, 64)  # another batch size than the graphs were traced with
    encoder = load_session(out / "onnx" / "encoder.onnx")
    encoded = run_session(encoder, {"images": images.numpy()})
    with torch.no_grad():
        features = model.encode(images)
        state = model.decoder.init_state(features)
        expected = {"regions": features.grid, "pooled": features.pooled, "h": state.h, "c": state.c,
                    "projected_keys": state.projected_keys}  # fmt: skip
        assert _max_difference(encoded, expected) <= 1e-4
        rows = state.expand(3)  # beam 3: 15 rows
        tokens = torch.randint(0, len(VOCAB), (15,), generator=torch.Generator().manual_seed(1))
        logprobs, after = model.decoder.step(tokens, rows)
    feeds = {"tokens": tokens.numpy(), "h": rows.h.numpy(), "c": rows.c.numpy(), "regions": rows.grid.numpy(),
             "projected_keys": rows.projected_keys.numpy()}  # fmt: skip
    stepped = run_session(load_session(out / "onnx" / "decoder_step.onnx"), feeds)
    expected = {"logprobs": logprobs, "next_h": after.h, "next_c": after.c, "attention": after.attention}
    assert _max_difference(stepped, expected) <= 1e-4


def test_beam_search_in_onnxruntime_returns_the_captions_of_vltk(attend_export):
    checkpoint, out = attend_export
    images = _images(6)
    captioner, onnx_captioner = vltk.from_pretrained(out), OnnxCaptioner(out)
    pixels = onnx_captioner.preprocess(images)  # numpy, without torchvision
    assert np.abs(pixels - captioner.preprocess(images).numpy()).max() <= 1e-6
    expected = vltk.from_pretrained(checkpoint).caption(images, beam_size=3)
    assert onnx_captioner.caption(images, beam_size=3) == captioner.caption(images, beam_size=3) == expected
    with torch.no_grad():  # every hypothesis of the beam, its score and its attention
        reference = captioner.model.generate(captioner.model.encode(torch.from_numpy(pixels)), beam_size=3,
                                             max_length=8, n_best=3)  # fmt: skip
    mine = onnx_captioner.beam(pixels, beam_size=3, n_best=3)
    assert mine.to_lists() == reference.to_lists()
    assert np.abs(mine.scores - reference.scores.numpy()).max() <= 1e-4
    assert np.abs(mine.attention - reference.attention.numpy()).max() <= 1e-4


def test_the_model_card_parses_with_huggingface_hub_and_the_export_still_loads(attend_export):
    from huggingface_hub import ModelCard

    checkpoint, out = attend_export
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert (data.library_name, data.pipeline_tag, data.datasets) == ("vltk", "image-to-text", ["shapes"])
    assert {"vltk", "captioning", "show_attend_tell", "safetensors", "onnx"} <= set(data.tags)
    assert data.datasets == ["shapes"] and data.metrics == list(METRICS)
    results = {(r.task_type, r.dataset_name, r.metric_type): r.metric_value for r in data.eval_results}
    assert results == {("image-to-text", "shapes", name): value for name, value in METRICS.items()}
    config = json.loads((out / "config.json").read_text())["hyper_parameters"]["config"]
    blocks = card.text.split("```yaml\n")
    assert yaml.safe_load(blocks[2].split("```")[0]) == config  # the full resolved config
    commit = provenance()["git_commit"]
    assert f"git commit: {commit or 'not recorded'}" in card.text and f"vltk: {vltk.__version__}" in card.text
    assert "vltk.from_pretrained" in card.text and "| BLEU-4 | 0.1250 |" in card.text
    images = _images(2, seed=3)
    assert vltk.from_pretrained(out).caption(images) == vltk.from_pretrained(checkpoint).caption(images)


def test_an_overwritten_export_keeps_nothing_of_the_earlier_one(attend_export, tmp_path):
    checkpoint, out = attend_export
    runner = CliRunner()
    copy = tmp_path / "copy"
    assert runner.invoke(app, ["export", str(checkpoint), str(copy)]).exit_code == 0
    (copy / "onnx").mkdir()  # as if an earlier export had graphs
    (copy / "onnx" / "encoder.onnx").write_bytes((out / "onnx" / "encoder.onnx").read_bytes())
    refused = runner.invoke(app, ["export", str(checkpoint), str(copy)])
    assert refused.exit_code == 2 and "README.md" in refused.output and "onnx" in refused.output
    assert runner.invoke(app, ["export", str(checkpoint), str(copy), "--overwrite"]).exit_code == 0
    assert not (copy / "onnx").exists() and (copy / "README.md").is_file()


# ------------------------------------------------------------- Show and Tell (GRU) on cached features
@pytest.fixture(scope="module")
def cached_export(tmp_path_factory) -> tuple[Path, Path, torch.Tensor]:
    """A Show and Tell captioner with a GRU on a feature cache, exported with the Python API."""
    from vltk.data.feature_cache import cache_features, read_manifest
    from vltk.encoders import IMAGE_ENCODERS
    from vltk.registry import build

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("cached")
    spec = {"name": "small_cnn", "channels": [8, 16], "trainable": False}
    images = {image_id: torch.randn(3, 64, 64) for image_id in range(10, 15)}
    cache_features(build(IMAGE_ENCODERS, spec), spec, list(images), list(images.values()), root / "cache",
                   dataset="d", transform="t", batch_size=5)  # fmt: skip
    assert read_manifest(root / "cache").complete
    decoder = "model.decoder={embed_dim: 16, hidden_dim: 32, cell: gru}"
    overrides = ["model.name=show_tell", f"model.encoder={{name: cached, path: {root / 'cache'}}}", decoder,
                 "decoding.max_length=8"]  # fmt: skip
    system = CaptioningTask(config=to_dict(load_task_config("captioning", "default", overrides)),
                            vocab=VOCAB.to_json())  # fmt: skip
    checkpoint = _save_checkpoint(system, root / "run")
    out = export_model(checkpoint, root / "export", onnx=True)
    grids = torch.stack([system.model.encoder.transforms().lookup(i) for i in images])  # [5, N, D]
    return checkpoint, out, grids


def test_a_cached_feature_captioner_needs_no_image_encoder(cached_export):
    checkpoint, out, grids = cached_export
    config = read_onnx_config(out / "onnx")
    assert config["preprocessing"] is None
    assert config["graphs"]["encoder"]["inputs"] == {
        "features": {"shape": ["batch", "regions", 16], "dtype": "float32"}
    }
    assert config["state"] == {**config["state"], "recurrent": ["h"], "constants": [], "attention": False}
    assert set(config["graphs"]["decoder_step"]["outputs"]) == {"logprobs", "next_h"}
    model = vltk.from_pretrained(checkpoint).model
    with torch.no_grad():
        features = model.encode(grids)
        state = model.decoder.init_state(features)
        encoded = run_session(load_session(out / "onnx" / "encoder.onnx"), {"features": grids.numpy()})
        assert _max_difference(encoded, {"pooled": features.pooled, "h": state.h}) <= 1e-4
        tokens = torch.arange(len(grids)) % len(VOCAB)
        logprobs, after = model.decoder.step(tokens, state)
    logprobs_onnx, after_onnx = OnnxStep(load_session(out / "onnx" / "decoder_step.onnx"))(
        tokens.numpy(), encoded
    )
    assert (
        _max_difference({"lp": logprobs_onnx, "h": after_onnx["h"]}, {"lp": logprobs, "h": after.h}) <= 1e-4
    )
    with torch.no_grad():
        reference = model.generate(features, beam_size=3, max_length=8, n_best=2)
    onnx_captioner = OnnxCaptioner(out)
    assert onnx_captioner.beam(grids.numpy(), beam_size=3, n_best=2).to_lists() == reference.to_lists()
    with pytest.raises(VltkError, match="reads cached features, not images"):
        onnx_captioner.caption(_images(1))


# ---------------------------------------------------------------------------------------------- VQA
def test_vqa_answer_scores_agree_with_pytorch(tmp_path):
    torch.manual_seed(0)
    tiny = ["model.encoder.channels=[4, 8]", "model.encoder.image_size=16", "model.text.embed_dim=8",
            "model.text.hidden_dim=8", "model.head.attention_dim=8", "model.head.hidden_dim=16",
            "data.max_question_length=6"]  # fmt: skip
    system = VqaTask(config=to_dict(load_task_config("vqa", "default", tiny)), vocab=QUESTIONS.to_json(),
                     answers=ANSWERS)  # fmt: skip
    out = export_model(_save_checkpoint(system, tmp_path / "run"), tmp_path / "export", onnx=True)
    config = read_onnx_config(out)
    assert config["answers"] == ANSWERS and config["max_question_length"] == 6
    assert config["graphs"]["model"]["inputs"]["questions"]["shape"] == ["batch", 6]
    answerer = vltk.from_pretrained(out)
    images = _images(3, seed=5)
    pixels = np.concatenate([answerer.model.encoder.transforms()(i).unsqueeze(0).numpy() for i in images])
    questions = ["what color is the shape?", "is there a red circle", "what shape"]
    ids = [answerer.question_ids(q)[0] for q in questions]
    padded = np.array([row + [QUESTIONS.pad_id] * (6 - len(row)) for row in ids], dtype=np.int64)
    lengths = np.array([len(row) for row in ids], dtype=np.int64)
    scores = run_session(load_session(out / "onnx" / "model.onnx"),
                         {"images": pixels, "questions": padded, "lengths": lengths})  # fmt: skip
    for row, (image, question) in enumerate(zip(images, ids, strict=True)):
        expected = answerer.forward(image, question)  # the unpadded question, as vltk predict runs it
        assert np.abs(scores["logits"][row] - expected.logits[0].numpy()).max() <= 1e-4
        assert np.abs(scores["attention"][row] - expected.attention[0].numpy()).max() <= 1e-4
    card = (out / "README.md").read_text()
    assert "pipeline_tag: visual-question-answering" in card and "Not recorded" in card


def test_a_bidirectional_question_encoder_is_refused_in_one_line(tmp_path):
    from vltk.tasks.vqa.inference import QuestionAnswerer
    from vltk.tasks.vqa.model import build_vqa_model

    model = build_vqa_model({"text": {"name": "rnn", "embed_dim": 4, "hidden_dim": 4, "bidirectional": True},
                             "encoder": {"name": "small_cnn", "channels": [4], "image_size": 8}},
                            vocab_size=len(QUESTIONS), num_answers=3)  # fmt: skip
    with pytest.raises(VltkError, match="question encoder is bidirectional"):
        export_vqa_onnx(QuestionAnswerer(model, QUESTIONS, ["a", "b", "c"]), tmp_path)
    assert not list(tmp_path.iterdir())


# -------------------------------------------------------------------------------- refusals, no graphs
def test_other_tasks_and_missing_packages_are_one_line_and_write_nothing(
    attend_export, tmp_path, monkeypatch
):
    from vltk.tasks.lm.system import LmTask
    from vltk.tasks.lm.vocab import SymbolVocabulary

    text = tmp_path / "text.txt"
    text.write_text("def f(x):\n    return x\n")
    cfg = load_task_config("lm", None, ["data.name=text", f"data.files=[{text}]", "model.hidden_dim=8",
                                        "model.embed_dim=4"])  # fmt: skip
    symbols = SymbolVocabulary.build(text.read_text()).to_json()
    lm = _save_checkpoint(LmTask(config=to_dict(cfg), vocab=symbols),
                          tmp_path / "lm")  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(lm), str(tmp_path / "lm-export"), "--onnx"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "'lm' model" in result.output and "captioning and vqa" in " ".join(result.output.split())
    assert not (tmp_path / "lm-export").exists()
    card = runner.invoke(app, ["export", str(lm), str(tmp_path / "lm-export")])  # without --onnx: fine
    assert (
        card.exit_code == 0
        and "pipeline_tag: text-generation" in (tmp_path / "lm-export/README.md").read_text()
    )
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    checkpoint, _ = attend_export
    result = runner.invoke(app, ["export", str(checkpoint), str(tmp_path / "no-runtime"), "--onnx"])
    assert result.exit_code == 2 and "pip install 'vltk[onnx]'" in result.output
    assert "onnxruntime" in result.output and not (tmp_path / "no-runtime").exists()


@dataclass
class _LayeredState(DecoderState):
    layers: tuple = field(default_factory=tuple)


class _LayeredDecoder(ShowTellDecoder):
    """A decoder whose state holds a tuple of tensors (stacked layers), which a graph input cannot be."""

    def _init_state(self, features):
        state = super()._init_state(features)
        return _LayeredState(h=state.h, c=state.c, layers=(state.h, state.h))

    def _advance(self, embedded, state):
        output, new = super()._advance(embedded, state)
        return output, replace(new, layers=state.layers)


def test_a_decoder_state_that_is_not_tensors_is_refused_by_name():
    spec = {"name": "show_tell", "encoder": {"name": "small_cnn", "channels": [4]},
            "decoder": {"embed_dim": 4, "hidden_dim": 4}}  # fmt: skip
    model = build_captioner(spec, vocab_size=len(VOCAB))
    model.decoder = _LayeredDecoder(len(VOCAB), 4, embed_dim=4, hidden_dim=4)
    grid = torch.randn(2, 4, 4)
    features = ImageFeatures(grid=grid, pooled=grid.mean(1), mask=None, grid_size=(2, 2))
    with pytest.raises(VltkError, match="state field 'layers' holds a tuple"):
        state_layout(model, features, "_LayeredDecoder")


# ----------------------------------------------------------------------------------- the numpy beam
class _TinyStep:
    """A random recurrent step with attention, for torch's beam search and (through numpy) the other."""

    def __init__(self, vocab: int = 9, hidden: int = 6, regions: int = 4) -> None:
        generator = torch.Generator().manual_seed(0)
        self.embed = torch.randn(vocab, hidden, generator=generator)
        self.recur = torch.randn(hidden, hidden, generator=generator)
        self.out = torch.randn(hidden, vocab, generator=generator) * 2
        self.attend = torch.randn(hidden, regions, generator=generator)

    def __call__(self, tokens: torch.Tensor, state: DecoderState):
        h = torch.tanh(self.embed[tokens] + state.h @ self.recur)  # [R, H]
        attention = torch.softmax(h @ self.attend, dim=-1)  # [R, N]
        return torch.log_softmax(h @ self.out, dim=-1), replace(state, h=h, attention=attention)

    def numpy(self, tokens: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
        logprobs, after = self(torch.from_numpy(tokens), DecoderState(h=torch.from_numpy(state["h"])))
        return logprobs.numpy(), {**state, "h": after.h.numpy(), "attention": after.attention.numpy()}


OPTIONS = [
    dict(zip(("beam_size", "max_length", "min_length", "length_penalty", "n_best", "block_trigrams"), v))
    for v in itertools.product([1, 3, 4], [1, 7], [0, 2], [0.0, 0.7], [1, 2], [False, True])
    if v[4] <= v[0]
]


def test_the_numpy_beam_search_is_vltks_beam_search():
    step, h0 = _TinyStep(), torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    ids = {"batch_size": 5, "bos_id": 1, "eos_id": 2, "pad_id": 0}
    early = 0
    for options in OPTIONS:
        expected = torch_beam_search(step, DecoderState(h=h0), **ids, **options)
        mine = beam_search(step.numpy, {"h": h0.numpy()}, **ids, **options)
        assert mine.to_lists() == expected.to_lists(), options
        assert np.array_equal(mine.scores, expected.scores.numpy()), options
        assert np.array_equal(mine.attention, expected.attention.numpy()), options
        early += int(expected.lengths.max()) < options["max_length"]
    assert early > 0  # some searches finished before max_length (step 4 of the algorithm ran)
    with pytest.raises(VltkError, match="n_best \\(3\\) cannot exceed beam_size \\(2\\)"):
        beam_search(step.numpy, {"h": h0.numpy()}, **ids, beam_size=2, max_length=3, n_best=3)


def test_the_runtime_modules_import_without_torch():
    code = "import sys, vltk.onnx, vltk.onnx.beam, vltk.onnx.runtime; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "options",
    [dict(beam_size=0), dict(max_length=0), dict(n_best=4), dict(length_penalty=-1.0), dict(min_length=-1)],
)
def test_the_numpy_search_refuses_what_the_torch_search_refuses_with_its_words(options):
    """``vltk.onnx.beam.check_options`` restates ``vltk.decoding.beam_search``'s checks (torch-free)."""
    from vltk.decoding import beam_search as torch_beam_search
    from vltk.errors import ConfigError
    from vltk.onnx.beam import check_options

    given = dict(beam_size=3, max_length=5, min_length=0, length_penalty=0.0, n_best=1) | options
    with pytest.raises(ConfigError) as numpy_error:
        check_options(**given)
    with pytest.raises(ConfigError) as torch_error:
        torch_beam_search(None, None, batch_size=1, bos_id=1, eos_id=2, pad_id=0, **given)
    assert str(numpy_error.value) == str(torch_error.value)
