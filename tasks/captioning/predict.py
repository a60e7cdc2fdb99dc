"""Captioning single images from a checkpoint, with optional attention-map pictures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vltk.data.images import load_image
from vltk.decoding import BeamResult
from vltk.errors import VltkError, check_output_path
from vltk.tasks.training import PredictRequest
from vltk.viz import save_attention_map


@dataclass
class CaptionPrediction:
    image: Path
    caption: str
    score: float
    attention_map: Path | None = None


def check_predict_request(request: PredictRequest) -> None:
    """The numeric ``vltk predict`` options in range, checked before a model is loaded (one line each)."""
    check_decoding_options(request.beam_size, request.max_length)
    if request.length is not None and request.length < 0:
        raise VltkError(f"--length must be >= 0, got {request.length}")
    if request.temperature is not None and not request.temperature > 0:
        raise VltkError(f"--temperature must be > 0, got {request.temperature}")
    if request.seed is not None and request.seed < 0:
        raise VltkError(f"--seed must be >= 0, got {request.seed}")
    for option, path in (("--attention-map", request.attention_map), ("--gif", request.gif)):
        if path is not None:
            check_output_path(Path(path), option)


def check_decoding_options(beam_size: int | None, max_length: int | None) -> None:
    """A beam size and a maximum length, when given, are at least 1 (0 used to mean 'the default')."""
    if beam_size is not None and beam_size < 1:
        raise VltkError(f"--beam-size must be >= 1 (1 = greedy), got {beam_size}")
    if max_length is not None and max_length < 1:
        raise VltkError(f"--max-length must be >= 1 (words), got {max_length}")


def attention_map_path(base: Path, index: int, count: int) -> Path:
    """``att.png`` for one image; ``att-0.png``, ``att-1.png``, ... for several."""
    return base if count == 1 else base.with_name(f"{base.stem}-{index}{base.suffix or '.png'}")


@torch.no_grad()
def predict_captions(
    system,
    images: list[str | Path],
    *,
    beam_size: int | None = None,
    max_length: int | None = None,
    attention_map: str | Path | None = None,
) -> list[CaptionPrediction]:
    """Caption each image file with the system's model (beam search by default).

    Args:
        system: a loaded :class:`vltk.tasks.captioning.system.CaptioningTask` (see ``runner.load_system``).
        images: image paths; each is checked before any work starts.
        beam_size: overrides the checkpoint's decoding beam size (1 = greedy).
        max_length: overrides the checkpoint's maximum caption length.
        attention_map: where to write the attention picture (one per image, suffixed when several).
    """
    check_decoding_options(beam_size, max_length)
    pictures = [load_image(path) for path in images]  # fails early, naming the bad file
    model = system.model.eval()
    transform = model.encoder.transforms()
    decoding = system.config.decoding
    predictions = []
    for index, (path, picture) in enumerate(zip(images, pictures)):
        batch = transform(picture).unsqueeze(0)  # [1, 3, H, W]
        features = model.encode(batch)
        result = model.generate(
            features,
            method="beam",
            beam_size=decoding.beam_size if beam_size is None else beam_size,
            max_length=decoding.max_length if max_length is None else max_length,
            min_length=decoding.min_length,
            length_penalty=decoding.length_penalty,
            block_trigrams=decoding.block_trigrams,
        )
        best = result.best() if isinstance(result, BeamResult) else result
        length = int(best.lengths[0])
        ids = best.tokens[0, :length].tolist()
        words = [system.vocab.decode([i]) for i in ids]
        prediction = CaptionPrediction(Path(path), system.vocab.decode(ids), float(best.scores[0]))
        if attention_map is not None:
            if best.attention is None or features.grid_size is None:
                raise VltkError(
                    "this model has no attention over image regions (e.g. show_tell); drop --attention-map"
                )
            target = attention_map_path(Path(attention_map), index, len(images))
            prediction.attention_map = save_attention_map(
                picture, words, best.attention[0, :length], features.grid_size, target
            )
        predictions.append(prediction)
    return predictions


def predict_captions_lines(system, request: PredictRequest) -> list[str]:
    """``vltk predict`` for captioning checkpoints: one line per image (and its attention map)."""
    if not request.inputs:
        raise VltkError("captioning: name at least one image file to caption")
    lines = []
    for prediction in predict_captions(
        system,
        request.inputs,
        beam_size=request.beam_size,
        max_length=request.max_length,
        attention_map=request.attention_map,
    ):
        lines.append(f"{prediction.image}: [bold]{prediction.caption}[/]")
        if prediction.attention_map is not None:
            lines.append(f"  attention map: {prediction.attention_map}")
    return lines
