"""``vltk predict`` for VQA checkpoints: the top-5 answers to a question about each image, and optionally
a picture of where each glimpse (attention model) or hop (stacked attention) looked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vltk.data.images import load_image
from vltk.errors import VltkError
from vltk.tasks.vqa.heads import PointwiseFusionHead
from vltk.tasks.vqa.inference import QuestionAnswerer
from vltk.viz import save_attention_map
from vltk.viz.attention_map import attention_map_path


@dataclass
class VqaRequest:
    """What ``vltk predict`` takes for a VQA model (its options; the CLI refuses the others).

    Attributes:
        inputs: the image files (the INPUT arguments).
        question: the question asked about each image.
        attention_map: where to write the picture of each glimpse/hop (one per image, suffixed when several).
    """

    inputs: list[Path] = field(default_factory=list)
    question: str | None = None
    attention_map: Path | None = None


@dataclass
class VqaPrediction:
    image: Path
    question: str
    answers: list[tuple[str, float]]
    unknown_words: list[str]
    attention_map: Path | None = None


def answer_questions(
    answerer: QuestionAnswerer,
    images: list[str | Path],
    question: str,
    *,
    top_k: int = 5,
    attention_map: str | Path | None = None,
) -> list[VqaPrediction]:
    """Answer ``question`` about each image file (:meth:`QuestionAnswerer.answer`, plus attention pictures).

    Args:
        answerer: the inference object (``vltk.from_pretrained(PATH)`` or ``system.inference()``).
        images: image paths; each is checked before any work starts.
        question: the question (words outside the vocabulary are read as ``<unk>`` and reported).
        top_k: how many answers to return, most probable first.
        attention_map: where to write the attention picture (one per image, suffixed when several).
    """
    ids, unknown = answerer.question_ids(question)
    pictures = [load_image(path) for path in images]  # fails early, naming the bad file
    if attention_map is not None and isinstance(answerer.model.head, PointwiseFusionHead):
        raise VltkError("this model (cnn_lstm) has no attention over image regions; drop --attention-map")
    predictions = []
    for index, (path, picture) in enumerate(zip(images, pictures)):
        output = answerer.forward(picture, ids)
        ranked = answerer.rank(output.logits[0], top_k)
        prediction = VqaPrediction(Path(path), question, ranked, unknown)
        if attention_map is not None and output.attention is not None and output.grid_size is not None:
            target = attention_map_path(Path(attention_map), index, len(images))
            glimpses = output.attention.shape[1]
            prediction.attention_map = save_attention_map(
                picture, [f"glimpse {g + 1}" for g in range(glimpses)], output.attention[0], output.grid_size,
                target,
            )  # fmt: skip
        predictions.append(prediction)
    return predictions


def predict_vqa_lines(answerer: QuestionAnswerer, request: VqaRequest) -> list[str]:
    """``vltk predict CKPT image.png --question Q``: the top-5 answers per image (Rich markup)."""
    if not request.inputs:
        raise VltkError("vqa: name at least one image file to ask about")
    if request.question is None:
        raise VltkError("vqa: ask a question with --question, e.g. --question 'what color is the shape?'")
    lines = []
    predictions = answer_questions(
        answerer, request.inputs, request.question, attention_map=request.attention_map
    )
    for prediction in predictions:
        lines.append(f"{prediction.image}: {prediction.question}")
        if prediction.unknown_words:
            lines.append(f"  (not in the vocabulary, read as <unk>: {', '.join(prediction.unknown_words)})")
        for rank, (answer, probability) in enumerate(prediction.answers, start=1):
            style = "bold" if rank == 1 else "none"
            lines.append(f"  {rank}. [{style}]{answer}[/] {probability:.3f}")
        if prediction.attention_map is not None:
            lines.append(f"  attention map: {prediction.attention_map}")
    return lines
