"""A VQA model as one ONNX graph: image + question -> answer scores.

``vltk export CKPT DIR --onnx`` writes::

    DIR/onnx/model.onnx          images [B, 3, S, S], questions [B, T] int64 (word ids right-padded with
                                 pad_id to T = the checkpoint's max_question_length), lengths [B] int64
                                 -> logits [B, A] (answer scores; softmax for probabilities) and, for the
                                 attention heads, attention [B, G, N]
    DIR/onnx/onnx_config.json    inputs/outputs, the question vocabulary's special ids, the answers in
                                 class order, the longest question, the image preprocessing (size, mean, std)

``B`` is dynamic; question ``b`` is about image ``b`` (the graph pairs them one to one). ``T`` is fixed:
``torch.export`` specialises the length of an ``nn.LSTM``'s input to its example, and questions are cut
to ``max_question_length`` words anyway. The padding changes nothing: the question encoder is exported
through its padded path (:class:`vltk.encoders.text.RNNTextEncoder` reads each row's state at its last
real word, and later steps never reach earlier ones), so the answers are those of the unpadded question;
a bidirectional question encoder, which packs its sequences, is refused. A model on ``cached`` features
takes ``features [B, N, D]`` (rows of its feature cache) instead of images.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import vltk
from vltk.encoders.cached import CachedFeatureEncoder
from vltk.errors import VltkError
from vltk.onnx.exporter import describe_preprocessing, export_graph
from vltk.onnx.runtime import CONFIG_FILE, graph_signature, load_session
from vltk.tasks.vqa.inference import QuestionAnswerer
from vltk.tasks.vqa.model import VqaModel

MODEL_FILE = "model.onnx"
FORMAT = 1


class VqaGraph(nn.Module):
    """``model.onnx``: :meth:`VqaModel.forward` with one image per question, its checks left out (they
    read tensor values, which a graph cannot branch on)."""

    def __init__(self, model: VqaModel, with_attention: bool) -> None:
        super().__init__()
        self.model, self.with_attention = model, with_attention

    def output_names(self) -> list[str]:
        return ["logits", *(["attention"] if self.with_attention else [])]

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        images, questions, lengths = inputs  # [B, 3, H, W] (or [B, N, D]), [B, T], [B]
        features = self.model.encode(images)  # grid [B, N, D]
        text = self.model.text_encoder
        steps = questions.shape[1]
        mask = torch.arange(steps, device=questions.device)[None, :] < lengths[:, None]  # [B, T]
        embedded = text.dropout(text.embedding(questions))  # [B, T, E]
        question = text._forward_padded(embedded, lengths, mask).final  # [B, H]
        index = torch.arange(questions.shape[0], device=questions.device)  # [B]: question b, image b
        logits, attention = self.model.head(features.grid, features.pooled, features.mask, index, question)
        return (logits, attention) if self.with_attention else (logits,)  # [B, A], [B, G, N]


def example_inputs(model: VqaModel, batch: int, steps: int, vocab_size: int) -> dict[str, Tensor]:
    """Random inputs of ``batch`` questions of at most ``steps`` words (lengths from 1 to ``steps``)."""
    generator = torch.Generator().manual_seed(batch)
    encoder = model.encoder
    if isinstance(encoder, CachedFeatureEncoder):
        images = {"features": torch.randn(batch, 4, encoder.out_dim, generator=generator)}  # [B, N, D]
    else:
        resize = describe_preprocessing(encoder.transforms()).get("resize")
        if resize is None:
            raise VltkError(
                f"cannot export {type(encoder).__name__} to ONNX: its transforms() resize nothing"
            )
        size = (batch, 3, resize["height"], resize["width"])
        images = {"images": torch.randn(*size, generator=generator)}  # [B, 3, S, S]
    questions = torch.randint(4, vocab_size, (batch, steps), generator=generator)  # [B, T]
    lengths = torch.arange(batch) % steps + 1  # [B]
    questions = questions.masked_fill(torch.arange(steps)[None, :] >= lengths[:, None], 0)  # right-padded
    return {**images, "questions": questions, "lengths": lengths}


def export_vqa_onnx(answerer: QuestionAnswerer, directory: str | Path) -> dict[str, Any]:
    """Write ``model.onnx`` and ``onnx_config.json`` of ``answerer`` into ``directory``; returns the config.

    Raises:
        VltkError: one line naming what cannot be exported (a bidirectional question encoder).
    """
    model = answerer.model.eval()
    if model.text_encoder.num_directions != 1:
        raise VltkError(
            "cannot export this VQA model to ONNX: its question encoder is bidirectional (model.text."
            "bidirectional: true packs its sequences, which the ONNX graph does not); one direction exports"
        )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = len(answerer.vocab)
    steps = answerer.max_question_length
    example, check = example_inputs(model, 2, steps, vocab_size), example_inputs(model, 3, steps, vocab_size)
    names = list(example)
    axes = {names[0]: {0: "batch", **({1: "regions"} if names[0] == "features" else {})},
            "questions": {0: "batch"}, "lengths": {0: "batch"}}  # fmt: skip
    graph = VqaGraph(model, with_attention=has_attention(model, example))
    difference = export_graph(
        graph, example, check, out / MODEL_FILE, output_names=graph.output_names(), axes=axes,
        what=f"the VQA model ({type(model.head).__name__})",
    )  # fmt: skip
    config = onnx_config(answerer, out, None if names[0] == "features" else model.encoder.transforms())
    config["parity_max_abs_difference"] = {"model": difference}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return config


def has_attention(model: VqaModel, example: dict[str, Tensor]) -> bool:
    """Whether the model's head returns attention maps (read off one forward pass)."""
    with torch.no_grad():
        graph = VqaGraph(model, with_attention=True)
        _, attention = graph(*example.values())
    return attention is not None


def onnx_config(answerer: QuestionAnswerer, out: Path, transform: Any) -> dict[str, Any]:
    """``onnx_config.json``: what a program without vltk needs to answer with the graph."""
    vocab = answerer.vocab
    return {
        "format": FORMAT,
        "task": "vqa",
        "vltk": vltk.__version__,
        "graphs": {"model": {"file": MODEL_FILE, **graph_signature(load_session(out / MODEL_FILE))}},
        "vocabulary": {
            "file": "../tokenizer.json",
            "size": len(vocab),
            "pad_id": vocab.pad_id,
            "unk_id": vocab.unk_id,
            "questions": "word ids without <start>/<end>, right-padded with pad_id to max_question_length",
        },  # fmt: skip
        "max_question_length": answerer.max_question_length,
        "answers": list(answerer.answers),
        "preprocessing": None if transform is None else describe_preprocessing(transform),
    }
