"""The language-model tab of ``vltk serve``: a prime text, a sampled continuation, and the whole text
coloured by a chosen cell's activation after each symbol (Karpathy, Johnson & Fei-Fei 2016, "Visualizing and
Understanding Recurrent Networks"; :mod:`vltk.viz.rnn_activations`), with the cells that track a property of
the text (line position, quotes, brackets, ...) suggested."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vltk.errors import VltkError
from vltk.tasks.lm.inference import TextSampler
from vltk.tasks.lm.vocab import split_symbols
from vltk.tasks.webdemo import activation_text_html, shows_errors
from vltk.viz.rnn_activations import correlation_search, record_activations, text_features

MAX_LENGTH = 2000
STATES = ("auto", "h", "c")


@dataclass
class SampledText:
    """A prime, its sampled continuation, and every unit's activation after each symbol of both."""

    prime: str
    sample: str
    symbols: list[str]
    activations: np.ndarray  # [T, L * H]

    @property
    def units(self) -> int:
        return int(self.activations.shape[1])


class LmDemo:
    """The tab of one language model (:class:`~vltk.tasks.lm.inference.TextSampler`)."""

    title = "Sample text and look inside the cells"

    def __init__(self, sampler: TextSampler) -> None:
        self.sampler = sampler

    @property
    def separator(self) -> str:
        return "" if self.sampler.vocab.level == "char" else " "

    def sample(
        self, prime: str, length: int, temperature: float, seed: float | None, state: str = "auto"
    ) -> SampledText:
        """``length`` symbols after ``prime`` at ``temperature`` (``seed``: reproducible), and the
        activations of the ``state`` (``h``, ``c`` for an LSTM, ``auto``) over prime and sample."""
        if not 0 <= int(length) <= MAX_LENGTH:
            raise VltkError(f"the length must be between 0 and {MAX_LENGTH}, got {length}")
        if state not in STATES:
            raise VltkError(f"the state must be one of {', '.join(STATES)}, got {state}")
        chosen_seed = None if seed is None else int(seed)
        sample = self.sampler.sample(prime, int(length), float(temperature), seed=chosen_seed)
        text = prime + sample
        symbols = split_symbols(text, self.sampler.vocab.level)
        ids = torch.tensor(self.sampler.vocab.encode(text) or [0], dtype=torch.long)  # [T]
        model = self.sampler.model
        activations = record_activations(model, ids.to(model.output.weight.device), state=state)  # [T, U]
        return SampledText(prime, sample, symbols, activations)

    def coloured(self, text: SampledText, unit: float | int) -> str:
        """The text coloured by ``unit``'s activation after each symbol."""
        if unit is None or not 0 <= int(unit) < text.units:
            raise VltkError(f"the cell must be between 0 and {text.units - 1}, got {unit}")
        return activation_text_html(
            text.symbols, text.activations[: len(text.symbols), int(unit)], self.separator
        )

    def suggestions(self, text: SampledText) -> str:
        """The unit that best tracks each property of the text (Pearson r; char level only)."""
        if self.sampler.vocab.level != "char" or len(text.symbols) < 3:
            return ""
        matches = correlation_search(
            text.activations[: len(text.symbols)], text_features("".join(text.symbols)), 1
        )
        listed = ", ".join(f"{m.feature}: cell {m.unit} (r = {m.correlation:+.2f})" for m in matches)
        return f"cells that track this text: {listed}" if listed else ""

    def build(self, gr: Any, key: str) -> None:
        """The tab's components (ids prefixed by ``key``) and their events."""
        errors = shows_errors(gr)
        sampler = self.sampler
        with gr.Row():
            with gr.Column(scale=1):
                prime = gr.Textbox(value=sampler.prime, label="prime", lines=3, elem_id=f"{key}-prime")
                length = gr.Slider(0, MAX_LENGTH, value=min(int(sampler.length), MAX_LENGTH), step=1,
                                   label="symbols to sample", elem_id=f"{key}-length")  # fmt: skip
                temperature = gr.Slider(0.05, 2.0, value=float(sampler.temperature), step=0.05,
                                        label="temperature", elem_id=f"{key}-temperature")  # fmt: skip
                seed = gr.Number(value=0, precision=0, minimum=0, label="seed", elem_id=f"{key}-seed")
                state = gr.Radio(list(STATES), value="auto", label="state (auto: c for an LSTM, else h)")
                unit = gr.Number(value=0, precision=0, minimum=0, label="cell", elem_id=f"{key}-unit")
                run = gr.Button("Sample", variant="primary", elem_id=f"{key}-sample")
            with gr.Column(scale=2):
                sample = gr.Textbox(label="sample", lines=8, elem_id=f"{key}-text")
                hint = gr.Markdown(elem_id=f"{key}-hint")
                cells = gr.HTML(elem_id=f"{key}-cells")
        sampled = gr.State()

        @errors
        def on_sample(text: str, count: int, heat: float, chosen_seed: float, which: str, cell: float):
            shown = self.sample(text, count, heat, chosen_seed, which)
            return shown, shown.sample, self.suggestions(shown), self.coloured(shown, cell)

        @errors
        def on_unit(shown: SampledText | None, cell: float):
            return gr.update() if shown is None else self.coloured(shown, cell)

        run.click(on_sample, [prime, length, temperature, seed, state, unit], [sampled, sample, hint, cells])
        unit.change(on_unit, [sampled, unit], [cells])
