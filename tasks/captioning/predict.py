"""``vltk predict`` for captioning: caption image files with an
:class:`~vltk.tasks.captioning.inference.ImageCaptioner`, with optional attention-map pictures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vltk.data.images import load_image
from vltk.decoders.adaptive import AdaptiveAttentionDecoder
from vltk.errors import VltkError
from vltk.tasks.captioning.inference import ImageCaptioner
from vltk.viz import save_attention_map
from vltk.viz.attention_map import attention_map_path
from vltk.viz.sentinel import save_sentinel_plot, sentinel_weights


@dataclass
class CaptionRequest:
    """What ``vltk predict`` takes for a captioning model (its options; the CLI refuses the others).

    Attributes:
        inputs: the image files (the INPUT arguments).
        beam_size: beam search of this width (1 = greedy); ``None``: the checkpoint's ``decoding``.
        max_length: the longest caption in words; ``None``: the checkpoint's ``decoding.max_length``.
        attention_map: where to write the attention picture (one per image, suffixed when several).
    """

    inputs: list[Path] = field(default_factory=list)
    beam_size: int | None = None
    max_length: int | None = None
    attention_map: Path | None = None


@dataclass
class CaptionPrediction:
    image: Path
    caption: str
    score: float
    attention_map: Path | None = None
    sentinel_plot: Path | None = None


def predict_captions(
    captioner: ImageCaptioner,
    images: list[str | Path],
    *,
    beam_size: int | None = None,
    max_length: int | None = None,
    attention_map: str | Path | None = None,
) -> list[CaptionPrediction]:
    """Caption each image file, one at a time, decoded as the checkpoint's ``decoding`` says unless
    overridden.

    Args:
        captioner: the inference object (``vltk.from_pretrained(PATH)`` or ``system.inference()``).
        images: image paths; each is checked before any work starts.
        beam_size: beam search of this width instead of the checkpoint's decoding (1 = greedy).
        max_length: overrides the checkpoint's maximum caption length.
        attention_map: where to write the attention picture (one per image, suffixed when several); for
            the ``adaptive`` decoder also the "when did it look" plot beside it (``NAME-sentinel.png``:
            per word, the weight ``1 - beta`` given to the image rather than the visual sentinel).
    """
    captioner.settings(beam_size=beam_size, max_length=max_length)  # bad values fail before any image
    pictures = [load_image(path) for path in images]  # fails early, naming the bad file
    predictions = []
    for index, (path, picture) in enumerate(zip(images, pictures)):
        (caption,) = captioner.captions([picture], beam_size=beam_size, max_length=max_length)
        prediction = CaptionPrediction(Path(path), caption.text, caption.score)
        if attention_map is not None:
            if caption.attention is None or caption.grid_size is None:
                raise VltkError(
                    "this model has no attention over image regions (e.g. show_tell); drop --attention-map"
                )
            target = attention_map_path(Path(attention_map), index, len(images))
            prediction.attention_map = save_attention_map(
                picture, caption.words, caption.attention, caption.grid_size, target
            )
            # the region weights sum to 1 - beta; an empty caption has no word to plot (the map says so)
            if isinstance(captioner.model.decoder, AdaptiveAttentionDecoder) and caption.words:
                beta = sentinel_weights(caption.attention)  # [L]
                sentinel = target.with_name(f"{target.stem}-sentinel.png")
                prediction.sentinel_plot = save_sentinel_plot(caption.words, beta, sentinel)
        predictions.append(prediction)
    return predictions


def predict_captions_lines(captioner: ImageCaptioner, request: CaptionRequest) -> list[str]:
    """``vltk predict`` for captioning models: one line per image (and its attention map)."""
    if not request.inputs:
        raise VltkError("captioning: name at least one image file to caption")
    lines = []
    for prediction in predict_captions(
        captioner,
        request.inputs,
        beam_size=request.beam_size,
        max_length=request.max_length,
        attention_map=request.attention_map,
    ):
        lines.append(f"{prediction.image}: [bold]{prediction.caption}[/]")
        if prediction.attention_map is not None:
            lines.append(f"  attention map: {prediction.attention_map}")
            if not prediction.caption:
                lines.append("  (the caption is empty: the map shows the image alone, no word to plot)")
        if prediction.sentinel_plot is not None:
            lines.append(f"  when it looked (1 - sentinel weight per word): {prediction.sentinel_plot}")
    return lines
