"""The captioning tab of ``vltk serve``: upload an image, read the beam's captions with their scores, and
step through the best caption's words with each word's attention drawn over the image (Xu et al. 2015's
figure, one word at a time; :func:`vltk.viz.overlay_attention`)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vltk.tasks.captioning.inference import Caption, ImageCaptioner
from vltk.tasks.webdemo import read_upload, shows_errors, weighted_words_html
from vltk.viz.attention_map import overlay_attention, resize_panel

PANEL_SIZE = 320  # the longer side of the picture the attention is drawn over
MAX_BEAM = 10
EMPTY_CAPTION = "(empty)"  # the cell of a caption that ended at once


@dataclass
class CaptionView:
    """What the tab shows for one upload: the picture (at panel size) and the beam's captions, best first."""

    picture: Image.Image
    captions: list[Caption]

    @property
    def best(self) -> Caption:
        return self.captions[0]


class CaptioningDemo:
    """The tab of one captioner (:class:`~vltk.tasks.captioning.inference.ImageCaptioner`)."""

    title = "Caption an image"

    def __init__(self, captioner: ImageCaptioner) -> None:
        self.captioner = captioner

    @property
    def default_beam_size(self) -> int:
        decoding = self.captioner.decoding
        return int(decoding.beam_size) if decoding.method == "beam" else 1

    # ----------------------------------------------------------------------------------- computing
    def describe(self, path: str | Path | None, beam_size: int | None = None) -> CaptionView:
        """The beam's captions of the uploaded image (``beam_size`` 1: greedy)."""
        image = read_upload(path)
        captions = self.captioner.beam(image, beam_size=int(beam_size or self.default_beam_size))
        return CaptionView(resize_panel(image, PANEL_SIZE), captions)

    @staticmethod
    def caption_cell(caption: Caption) -> str:
        """A caption as its table cell shows it (an undertrained model may end at once: "(empty)")."""
        return caption.text or EMPTY_CAPTION

    @classmethod
    def captions_html(cls, view: CaptionView) -> str:
        """The captions as a table: rank, caption, score (sum of log-probabilities; beam: ranking score)."""
        rows = "".join(
            f'<tr><td>{rank}</td><td class="vltk-caption">{html.escape(cls.caption_cell(caption))}</td>'
            f"<td>{caption.score:.3f}</td></tr>"
            for rank, caption in enumerate(view.captions, start=1)
        )
        return f'<table class="vltk-captions"><tr><th>#</th><th>caption</th><th>score</th></tr>{rows}</table>'

    @staticmethod
    def word_frame(view: CaptionView, step: int) -> tuple[np.ndarray | Image.Image, str]:
        """The picture under the attention of the best caption's word ``step`` (1-based), and the caption
        with that word marked. A model without attention (Show and Tell) shows the plain picture."""
        caption = view.best
        if not caption.words:
            return view.picture, "<p>(the caption is empty)</p>"
        step = min(max(int(step), 1), len(caption.words))
        marks = [1.0 if i == step - 1 else 0.0 for i in range(len(caption.words))]
        words = weighted_words_html(caption.words, marks)
        if caption.attention is None or caption.grid_size is None:
            return view.picture, words + "<p>this model has no attention over image regions</p>"
        picture = overlay_attention(view.picture, caption.attention[step - 1], caption.grid_size)
        return picture, words  # [H, W, 3]

    @staticmethod
    def word_steps(count: int) -> dict[str, Any]:
        """The word slider's settings for a best caption of ``count`` words. Gradio refuses a slider whose
        minimum is not below its maximum, so a caption of one word (or none) keeps 1..2, frozen."""
        return {"value": 1, "maximum": max(count, 2), "interactive": count > 1}

    # -------------------------------------------------------------------------------------- layout
    def build(self, gr: Any, key: str) -> None:
        """The tab's components (ids prefixed by ``key``) and their events."""
        errors = shows_errors(gr)
        with gr.Row():
            with gr.Column():
                upload = gr.File(
                    label="image (PNG, JPEG, ...)", file_types=["image"], type="filepath",
                    elem_id=f"{key}-upload",
                )  # fmt: skip
                beam = gr.Slider(
                    1, MAX_BEAM, value=self.default_beam_size, step=1, label="beam size (1 = greedy)",
                    elem_id=f"{key}-beam",
                )  # fmt: skip
                gr.Markdown("Upload an image to caption it; change the beam size to caption it again.")
            with gr.Column():
                captions = gr.HTML(elem_id=f"{key}-captions")
                word = gr.Slider(
                    1, 20, value=1, step=1, label="word of the best caption", elem_id=f"{key}-word"
                )
                caption_words = gr.HTML(elem_id=f"{key}-words")
                heat = gr.Image(
                    label="where it looked for this word", interactive=False, elem_id=f"{key}-heat"
                )
        view = gr.State()

        @errors
        def on_image(path: str | None, beam_size: int):
            shown = self.describe(path, beam_size)
            picture, words = self.word_frame(shown, 1)
            steps = gr.update(**self.word_steps(len(shown.best.words)))
            return shown, self.captions_html(shown), steps, words, picture

        @errors
        def on_word(shown: CaptionView | None, step: int):
            if shown is None:
                return gr.update(), gr.update()
            picture, words = self.word_frame(shown, step)
            return words, picture

        outputs = [view, captions, word, caption_words, heat]
        upload.upload(on_image, [upload, beam], outputs)
        beam.release(on_image, [upload, beam], outputs)
        word.change(on_word, [view, word], [caption_words, heat])
