"""A captioner as two ONNX graphs, and the ONNX Runtime captioner that decodes with them.

``vltk export CKPT DIR --onnx`` writes, for every decoder of :data:`vltk.decoders.DECODERS` (Show and Tell,
Show, Attend and Tell) and every image encoder::

    DIR/onnx/encoder.onnx        images [B, 3, S, S] -> regions [B, N, D], pooled [B, D] (mask [B, N] when
                                 the encoder has one) and everything else computed once per image: the
                                 decoder's state before the first word (h [B, H], c [B, H] for an LSTM) and
                                 the attention keys projected once per image (projected_keys [B, N, A])
    DIR/onnx/decoder_step.onnx   ONE step: tokens [R] (the previous words), the recurrent state (h, c) and
                                 the per-image constants (regions, projected_keys, mask) of R rows ->
                                 logprobs [R, V], next_h, next_c and, with attention, attention [R, N]
    DIR/onnx/onnx_config.json    inputs/outputs of both, the vocabulary's special ids, the preprocessing
                                 (size, mean, std) and the checkpoint's decoding settings

``B`` (images) and ``R`` (rows: images times beams) are dynamic axes. A captioner on ``cached`` features
needs no image encoder: the rows of its feature cache are its input, so ``encoder.onnx`` takes
``features [B, N, D]`` (``N`` dynamic) and does what the cached encoder does (``pooled`` is their mean)
before the decoder's initial state; there is no image preprocessing then.

:class:`OnnxCaptioner` runs the graphs in ONNX Runtime with the numpy beam search of
:mod:`vltk.onnx.beam`; at the same settings it returns the captions of
:meth:`vltk.tasks.captioning.inference.ImageCaptioner.caption` (the tests check it at beam size 3).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

import vltk
from vltk.decoders.state import DecoderState
from vltk.encoders.cached import CachedFeatureEncoder
from vltk.errors import VltkError
from vltk.onnx.beam import NumpyBeamResult, beam_search
from vltk.onnx.exporter import describe_preprocessing, export_graph
from vltk.onnx.runtime import (
    CONFIG_FILE,
    OnnxStep,
    graph_signature,
    load_session,
    preprocess_images,
    read_onnx_config,
    run_session,
)
from vltk.tasks.captioning.inference import ImageCaptioner
from vltk.tasks.captioning.model import Captioner
from vltk.text import Vocabulary
from vltk.types import ImageFeatures

ENCODER_FILE = "encoder.onnx"
STEP_FILE = "decoder_step.onnx"
TENSOR_NAMES = {"grid": "regions"}
"""Decoder state field -> its name in the graphs (the others keep their field's name)."""
FORMAT = 1


def tensor_name(field: str) -> str:
    return TENSOR_NAMES.get(field, field)


@dataclass(frozen=True)
class StateLayout:
    """Which fields of a decoder's state the step graph carries (read off one real state).

    Attributes:
        state_class: the decoder's state class (:class:`vltk.decoders.state.DecoderState` or a subclass).
        recurrent: fields that change at every step (``h``, ``c``).
        constants: per-image fields that the step reads (``grid``, ``projected_keys``, ``mask``).
        attention: the step sets ``attention [R, N]``.
    """

    state_class: type
    recurrent: tuple[str, ...]
    constants: tuple[str, ...]
    attention: bool

    @property
    def step_inputs(self) -> list[str]:
        return ["tokens", *(tensor_name(f) for f in (*self.recurrent, *self.constants))]


def _tensor_fields(state: DecoderState, decoder: str) -> list[tuple[str, bool]]:
    """``(field, is_constant)`` of every tensor field of ``state``; other values cannot be graph inputs."""
    found = []
    for item in fields(state):
        value = getattr(state, item.name)
        if value is None:
            continue
        if not isinstance(value, Tensor):
            raise VltkError(
                f"cannot export the {decoder} decoder to ONNX: its state field '{item.name}' holds a "
                f"{type(value).__name__}, and the step graph takes tensors only"
            )
        found.append((item.name, bool(item.metadata.get("constant", False))))
    return found


def state_layout(model: Captioner, features: ImageFeatures, decoder: str) -> StateLayout:
    """The :class:`StateLayout` of ``model``'s decoder, from its state before and after one step."""
    state = model.decoder.init_state(features)
    found = _tensor_fields(state, decoder)
    recurrent = tuple(name for name, constant in found if not constant)
    tokens = torch.full((features.grid.shape[0],), model.start_id, dtype=torch.long)  # [B]
    _, after = model.decoder.step(tokens, state)
    changed = {name for name, constant in _tensor_fields(after, decoder) if not constant}
    if not set(recurrent) <= changed or changed - set(recurrent) - {"attention", "gate"}:
        raise VltkError(
            f"cannot export the {decoder} decoder to ONNX: its state carries {sorted(recurrent)} into the "
            f"first step and {sorted(changed)} out of it; the step graph needs the same tensors in and out"
        )
    constants = tuple(name for name, constant in found if constant)
    return StateLayout(type(state), recurrent, constants, after.attention is not None)


class CaptionEncoderGraph(nn.Module):
    """``encoder.onnx``: the image (or its cached features) -> features and the decoder's initial state."""

    def __init__(self, model: Captioner, layout: StateLayout, with_mask: bool) -> None:
        super().__init__()
        self.model, self.layout, self.with_mask = model, layout, with_mask

    def output_names(self) -> list[str]:
        extra = [tensor_name(f) for f in self.layout.constants if f not in ("grid", "mask")]
        return ["regions", "pooled", *(["mask"] if self.with_mask else []), *self.layout.recurrent, *extra]

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        features = self.model.encode(inputs[0])  # grid [B, N, D], pooled [B, D]
        state = self.model.decoder.init_state(features)
        extra = [getattr(state, f) for f in self.layout.constants if f not in ("grid", "mask")]  # [B, N, A]
        mask = [features.mask] if self.with_mask else []  # [B, N]
        recurrent = [getattr(state, f) for f in self.layout.recurrent]  # [B, H] each
        # Copies: an output may not be the graph's input (a cached grid) nor another output (dot attention's
        # keys are the regions), or the exporter merges their names.
        return (features.grid.clone(), features.pooled, *mask, *recurrent, *(t.clone() for t in extra))


class CaptionStepGraph(nn.Module):
    """``decoder_step.onnx``: one :meth:`vltk.decoders.base.CaptionDecoder.step` on ``R`` rows."""

    def __init__(self, model: Captioner, layout: StateLayout) -> None:
        super().__init__()
        self.decoder, self.layout = model.decoder, layout

    def output_names(self) -> list[str]:
        attention = ["attention"] if self.layout.attention else []
        return ["logprobs", *(f"next_{tensor_name(f)}" for f in self.layout.recurrent), *attention]

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        tokens, arrays = inputs[0], inputs[1:]  # [R], then the state's tensors in layout order
        names = (*self.layout.recurrent, *self.layout.constants)
        state = self.layout.state_class(**dict(zip(names, arrays, strict=True)))
        logprobs, state = self.decoder.step(tokens, state)  # [R, V]
        attention = [state.attention] if self.layout.attention else []  # [R, N]
        return (logprobs, *(getattr(state, f) for f in self.layout.recurrent), *attention)


# ---------------------------------------------------------------------------------------------- export
def encoder_inputs(model: Captioner, batch: int, regions: int) -> tuple[str, Tensor, dict[int, str]]:
    """The encoder graph's input: its name, a random example of ``batch`` rows, its dynamic axes."""
    encoder = model.encoder
    if isinstance(encoder, CachedFeatureEncoder):
        return "features", torch.randn(batch, regions, encoder.out_dim), {0: "batch", 1: "regions"}
    resize = describe_preprocessing(encoder.transforms()).get("resize")
    if resize is None:
        raise VltkError(f"cannot export {type(encoder).__name__} to ONNX: its transforms() resize nothing")
    images = torch.randn(batch, 3, resize["height"], resize["width"])  # [B, 3, S, S]
    return "images", images, {0: "batch"}


def step_example(graph: CaptionEncoderGraph, inputs: Tensor, beams: int) -> dict[str, Tensor]:
    """Step inputs of ``beams`` rows per image of ``inputs``, from the encoder graph's own outputs."""
    with torch.no_grad():
        outputs = dict(zip(graph.output_names(), graph(inputs), strict=True))
    rows = {key: outputs[key].repeat_interleave(beams, dim=0) for key in graph.layout.step_inputs[1:]}
    vocab = graph.model.decoder.vocab_size
    tokens = torch.randint(0, vocab, (inputs.shape[0] * beams,), generator=torch.Generator().manual_seed(0))
    return {"tokens": tokens, **rows}


def step_axes(layout: StateLayout, cached: bool) -> dict[str, dict[int, str]]:
    axes = {name: {0: "rows"} for name in layout.step_inputs}
    if cached:
        for name in ("regions", "projected_keys", "mask"):
            axes[name] = {0: "rows", 1: "regions"}
    return axes


def export_captioner_onnx(captioner: ImageCaptioner, directory: str | Path) -> dict[str, Any]:
    """Write ``encoder.onnx``, ``decoder_step.onnx`` and ``onnx_config.json`` of ``captioner`` into
    ``directory`` (see the module docstring); returns the config written.

    Raises:
        VltkError: one line naming the part that cannot be exported.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model = captioner.model.eval()
    cached = isinstance(model.encoder, CachedFeatureEncoder)
    name, example, axes = encoder_inputs(model, 2, 4)
    _, check, _ = encoder_inputs(model, 3, 5)
    decoder = type(model.decoder).__name__
    with torch.no_grad():
        features = model.encode(example)  # grid [2, N, D]
        layout = state_layout(model, features, decoder)
    encoder = CaptionEncoderGraph(model, layout, with_mask=features.mask is not None)
    parity = {"encoder": export_graph(
        encoder, {name: example}, {name: check}, out / ENCODER_FILE, output_names=encoder.output_names(),
        axes={name: axes}, what=f"the captioner's encoder ({type(model.encoder).__name__})",
    )}  # fmt: skip
    step = CaptionStepGraph(model, layout)
    parity["decoder_step"] = export_graph(
        step, step_example(encoder, example, 2), step_example(encoder, check, 3), out / STEP_FILE,
        output_names=step.output_names(), axes=step_axes(layout, cached), what=f"one step of {decoder}",
    )  # fmt: skip
    config = onnx_config(captioner, out, layout, None if cached else model.encoder.transforms(), parity)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return config


def onnx_config(
    captioner: ImageCaptioner, out: Path, layout: StateLayout, transform: Any, parity: dict[str, float]
) -> dict[str, Any]:
    """``onnx_config.json``: what a program without vltk needs to caption with the graphs."""
    vocab = captioner.vocab
    decoding = captioner.decoding
    return {
        "format": FORMAT,
        "task": "captioning",
        "vltk": vltk.__version__,
        "graphs": {
            "encoder": {"file": ENCODER_FILE, **graph_signature(load_session(out / ENCODER_FILE))},
            "decoder_step": {"file": STEP_FILE, **graph_signature(load_session(out / STEP_FILE))},
        },
        "state": {
            "recurrent": [tensor_name(f) for f in layout.recurrent],
            "constants": [tensor_name(f) for f in layout.constants],
            "attention": layout.attention,
            "next": "an output next_X is the new value of the state's X; feed every other array back as is",
        },
        "vocabulary": {
            "file": "../tokenizer.json",
            "size": len(vocab),
            "pad_id": vocab.pad_id,
            "start_id": vocab.start_id,
            "end_id": vocab.end_id,
            "unk_id": vocab.unk_id,
        },  # fmt: skip
        "preprocessing": None if transform is None else describe_preprocessing(transform),
        "decoding": {
            "method": decoding.method,
            "beam_size": decoding.beam_size,
            "max_length": decoding.max_length,
            "min_length": decoding.min_length,
            "length_penalty": decoding.length_penalty,
            "block_trigrams": decoding.block_trigrams,
        },  # fmt: skip
        "parity_max_abs_difference": parity,
    }


# --------------------------------------------------------------------------------------------- runtime
class OnnxCaptioner:
    """Captions from the ONNX graphs of an export, with ONNX Runtime and the numpy beam search.

    Args:
        directory: an export directory holding ``onnx/`` (or the ``onnx/`` folder itself).
    """

    SEARCH_OPTIONS = ("beam_size", "max_length", "min_length", "length_penalty", "block_trigrams")

    def __init__(self, directory: str | Path) -> None:
        self.config = read_onnx_config(directory)
        if self.config.get("task") != "captioning":
            raise VltkError(f"{directory} holds the ONNX graphs of a '{self.config.get('task')}' model")
        folder = Path(directory)
        folder = folder if (folder / CONFIG_FILE).is_file() else folder / "onnx"
        graphs = self.config["graphs"]
        self.encoder = load_session(folder / graphs["encoder"]["file"])
        self.step = OnnxStep(load_session(folder / graphs["decoder_step"]["file"]))
        self.step_inputs = [node.name for node in self.step.session.get_inputs()]
        vocab_file = folder / self.config["vocabulary"]["file"]
        self.vocab = Vocabulary.load(vocab_file) if vocab_file.is_file() else None

    def encode(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """The encoder graph's outputs that the step reads, for ``inputs`` (images or cached features)."""
        name = self.encoder.get_inputs()[0].name
        outputs = run_session(self.encoder, {name: inputs.astype(np.float32)})
        return {key: value for key, value in outputs.items() if key in self.step_inputs}

    def beam(self, inputs: np.ndarray, **overrides: Any) -> NumpyBeamResult:
        """Beam search over ``inputs`` with the checkpoint's settings, unless overridden (``beam_size=5``,
        ``max_length=16``, ``n_best=3``, ...; options of :func:`vltk.onnx.beam.beam_search`)."""
        options = {key: self.config["decoding"][key] for key in self.SEARCH_OPTIONS}
        options.update(overrides)
        if self.config["decoding"]["method"] != "beam" and "beam_size" not in overrides:
            options["beam_size"] = 1  # greedy decoding is beam search of width 1 (with no length penalty)
        vocab = self.config["vocabulary"]
        return beam_search(
            self.step, self.encode(inputs), batch_size=len(inputs), bos_id=vocab["start_id"],
            eos_id=vocab["end_id"], pad_id=vocab["pad_id"], **options,
        )  # fmt: skip

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        """PIL images as the encoder graph's ``images [B, 3, S, S]``."""
        if self.config["preprocessing"] is None:
            raise VltkError("this captioner reads cached features, not images: pass its feature rows")
        return preprocess_images(images, self.config["preprocessing"])

    def caption(self, images: Sequence[Image.Image], **overrides: Any) -> list[str]:
        """The best caption of each PIL image (as :meth:`ImageCaptioner.caption` at the same settings)."""
        if self.vocab is None:
            raise VltkError("the export's tokenizer.json is missing beside onnx/")
        best = self.beam(self.preprocess(images), **overrides).best()
        return [self.vocab.decode(ids) for ids in best]
