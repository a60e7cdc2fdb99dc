"""``vltk predict`` for language models: sample text with a
:class:`~vltk.tasks.lm.inference.TextSampler` (``vltk predict CKPT --prime "def " --length 500``)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape

from vltk.tasks.lm.inference import TextSampler


@dataclass
class SampleRequest:
    """What ``vltk predict`` takes for a language model (its options; the CLI refuses the others).

    Attributes:
        prime: the text to start from; ``None``: the checkpoint's ``sample.prime``.
        length: how many characters/words to sample; ``None``: the checkpoint's ``sample.length``.
        temperature: > 0; ``None``: the checkpoint's ``sample.temperature``.
        seed: the sampler's seed (``None``: torch's global generator).
    """

    prime: str | None = None
    length: int | None = None
    temperature: float | None = None
    seed: int | None = None


def predict_lm_lines(sampler: TextSampler, request: SampleRequest) -> list[str]:
    """``vltk predict`` for ``lm`` models: the prime, then the sampled continuation (Rich markup)."""
    prime = sampler.prime if request.prime is None else request.prime
    text = sampler.sample(prime, request.length, request.temperature, seed=request.seed)
    return [f"[bold]{escape(prime)}[/]{escape(text)}"]
