"""The VQA tab of ``vltk serve``: an image and a question, the five most probable answers with their
probabilities, and one heat map per glimpse (attention model) or hop (stacked attention) over the image."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vltk.errors import VltkError
from vltk.tasks.vqa.inference import QuestionAnswerer
from vltk.tasks.webdemo import read_upload, shows_errors
from vltk.viz.attention_map import overlay_attention, resize_panel

PANEL_SIZE = 256
TOP_K = 5


@dataclass
class AnswerView:
    """The answers to one question about one image, and a heat map per glimpse (none without attention)."""

    answers: list[tuple[str, float]]
    glimpses: list[tuple[np.ndarray, str]] = field(default_factory=list)
    unknown_words: list[str] = field(default_factory=list)


class VqaDemo:
    """The tab of one VQA model (:class:`~vltk.tasks.vqa.inference.QuestionAnswerer`)."""

    title = "Ask a question about an image"

    def __init__(self, answerer: QuestionAnswerer) -> None:
        self.answerer = answerer

    def ask(self, path: str | Path | None, question: str | None) -> AnswerView:
        """The top-5 answers to ``question`` about the uploaded image, with the attention of each glimpse."""
        image = read_upload(path)
        if not (question or "").strip():
            raise VltkError("type a question, e.g. 'what color is the shape?'")
        ids, unknown = self.answerer.question_ids(question)
        output = self.answerer.forward(image, ids)
        view = AnswerView(self.answerer.rank(output.logits[0], TOP_K), unknown_words=unknown)
        if output.attention is not None and output.grid_size is not None:
            picture = resize_panel(image, PANEL_SIZE)
            for g, weights in enumerate(output.attention[0]):  # [G, N]
                view.glimpses.append(
                    (overlay_attention(picture, weights, output.grid_size), f"glimpse {g + 1}")
                )
        return view

    @staticmethod
    def note(view: AnswerView) -> str:
        """What the page says under the answers: words read as unknown, a model without attention."""
        lines = []
        if view.unknown_words:
            lines.append(f"not in the vocabulary, read as `<unk>`: {', '.join(view.unknown_words)}")
        if not view.glimpses:
            lines.append("this model (cnn_lstm) has no attention over image regions")
        return "\n\n".join(lines)

    def build(self, gr: Any, key: str) -> None:
        """The tab's components (ids prefixed by ``key``) and their events."""
        errors = shows_errors(gr)
        with gr.Row():
            with gr.Column():
                upload = gr.File(
                    label="image (PNG, JPEG, ...)", file_types=["image"], type="filepath",
                    elem_id=f"{key}-upload",
                )  # fmt: skip
                question = gr.Textbox(
                    label="question", placeholder="what color is the shape?", elem_id=f"{key}-question"
                )
                ask = gr.Button("Ask", variant="primary", elem_id=f"{key}-ask")
            with gr.Column():
                answers = gr.Label(num_top_classes=TOP_K, label="answers", elem_id=f"{key}-answers")
                note = gr.Markdown(elem_id=f"{key}-note")
                glimpses = gr.Gallery(label="where each glimpse looked", columns=2, elem_id=f"{key}-glimpses")

        @errors
        def on_ask(path: str | None, text: str):
            view = self.ask(path, text)
            return (
                {answer: probability for answer, probability in view.answers},
                self.note(view),
                view.glimpses,
            )

        ask.click(on_ask, [upload, question], [answers, note, glimpses])
        question.submit(on_ask, [upload, question], [answers, note, glimpses])
