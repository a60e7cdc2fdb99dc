"""The visual dialog tab of ``vltk serve``: an image and its caption, then a conversation whose history the
model reads (:class:`vltk.tasks.dialog.session.DialogSession`, as ``vltk chat``), each answer shown with the
question-guided attention over the image it was read from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vltk.errors import VltkError
from vltk.tasks.dialog.inference import DialogAnswerer
from vltk.tasks.dialog.session import DialogAnswer, DialogSession
from vltk.tasks.webdemo import PageError, read_upload, shows_errors
from vltk.viz.attention_map import overlay_attention, resize_panel

PANEL_SIZE = 256


class DialogConversation:
    """One browser session's conversation: the picture (at panel size), the model's session, the rounds."""

    def __init__(self, session: DialogSession, picture: Image.Image) -> None:
        self.session = session
        self.picture = picture
        self.rounds: list[DialogAnswer] = []

    def ask(self, question: str) -> DialogAnswer:
        answer = self.session.ask(question)
        self.rounds.append(answer)
        return answer

    def attention_picture(self, answer: DialogAnswer) -> np.ndarray | None:
        """The picture under the attention an answer was read from (``None`` for a blind model)."""
        if answer.attention is None or answer.grid_size is None:
            return None
        return overlay_attention(self.picture, answer.attention, answer.grid_size)  # [H, W, 3]

    def messages(self) -> list[dict[str, str]]:
        """The rounds as chat messages (the caption first)."""
        shown = [{"role": "assistant", "content": f"caption: {self.session.caption or '(none)'}"}]
        for answer in self.rounds:
            shown.append({"role": "user", "content": answer.question})
            shown.append({"role": "assistant", "content": answer.answer})
        return shown

    def gallery(self) -> list[tuple[np.ndarray, str]]:
        """One attention picture per round, captioned with its question and answer."""
        pictures = []
        for number, answer in enumerate(self.rounds, start=1):
            picture = self.attention_picture(answer)
            if picture is not None:
                pictures.append((picture, f"{number}. {answer.question} -> {answer.answer}"))
        return pictures


class DialogDemo:
    """The tab of one dialog model (:class:`~vltk.tasks.dialog.inference.DialogAnswerer`)."""

    title = "Talk about an image"

    def __init__(self, answerer: DialogAnswerer) -> None:
        self.answerer = answerer

    def start(self, path: str | Path | None, caption: str | None) -> DialogConversation:
        """A new conversation about the uploaded image, its history starting with ``caption``."""
        image = read_upload(path)
        return DialogConversation(
            self.answerer.chat(image, (caption or "").strip()), resize_panel(image, PANEL_SIZE)
        )

    @staticmethod
    def reply(conversation: DialogConversation | None, question: str | None) -> DialogAnswer:
        """The answer to ``question``, read with the history so far (which it then joins)."""
        if conversation is None:
            raise PageError("upload an image first (and give its caption), then ask")
        if not (question or "").strip():
            raise VltkError("type a question, e.g. 'how many shapes are there?'")
        return conversation.ask(question)

    def build(self, gr: Any, key: str) -> None:
        """The tab's components (ids prefixed by ``key``) and their events."""
        errors = shows_errors(gr)
        kind = (
            "writes its answers"
            if self.answerer.generative
            else "picks each answer from its training answers"
        )
        with gr.Row():
            with gr.Column():
                upload = gr.File(
                    label="image (PNG, JPEG, ...)", file_types=["image"], type="filepath",
                    elem_id=f"{key}-upload",
                )  # fmt: skip
                caption = gr.Textbox(
                    label="caption (the history starts with it)", elem_id=f"{key}-caption",
                    placeholder="a red circle above a blue square",
                )  # fmt: skip
                restart = gr.Button("Start a new conversation", elem_id=f"{key}-restart")
                gr.Markdown(
                    f"The model {kind}; each question is read with the caption and the rounds so far."
                )
            with gr.Column():
                chat = gr.Chatbot(label="conversation", elem_id=f"{key}-chat", height=320)
                question = gr.Textbox(
                    label="question", placeholder="how many shapes are there?", elem_id=f"{key}-question"
                )
                ask = gr.Button("Ask", variant="primary", elem_id=f"{key}-ask")
                looked = gr.Gallery(label="where it looked, per answer", columns=3, elem_id=f"{key}-looked")
        conversation = gr.State()

        @errors
        def on_start(path: str | None, text: str):
            started = self.start(path, text)
            return started, started.messages(), []

        @errors
        def on_ask(current: DialogConversation | None, text: str):
            self.reply(current, text)
            return current, current.messages(), current.gallery(), ""

        start_outputs = [conversation, chat, looked]
        upload.upload(on_start, [upload, caption], start_outputs)
        restart.click(on_start, [upload, caption], start_outputs)
        ask_outputs = [conversation, chat, looked, question]
        ask.click(on_ask, [conversation, question], ask_outputs)
        question.submit(on_ask, [conversation, question], ask_outputs)
