"""Sampling text from a language-model checkpoint (``vltk predict CKPT --prime "def " --length 500``)."""

from __future__ import annotations

from rich.markup import escape

from vltk.tasks.pretrained import PretrainedLanguageModel
from vltk.tasks.training import PredictRequest


def sample_text(system, prime: str, length: int, temperature: float, seed: int | None = None) -> str:
    """``length`` symbols sampled after ``prime`` at ``temperature`` (the prime is not included), by
    :meth:`vltk.tasks.pretrained.PretrainedLanguageModel.sample` (the model's train/eval mode is restored).

    Args:
        system: a loaded :class:`vltk.tasks.lm.system.LmTask`.
        prime: text fed to the model first; every symbol must be in the model's vocabulary. Empty: the
            sample starts after a newline (or the first symbol of the vocabulary).
        length: number of symbols to sample (characters or words).
        temperature: > 0; lower is more conservative, 1 samples the model's own distribution.
        seed: seed of the sampler (``None``: torch's global generator).
    """
    model = PretrainedLanguageModel(system.model, system.vocab, {})
    return model.sample(prime, length, temperature, seed=seed)


def predict_lm_lines(system, request: PredictRequest) -> list[str]:
    """``vltk predict`` for ``lm`` checkpoints: the prime, then the sampled continuation (Rich markup)."""
    defaults = system.config.sample
    prime = request.prime if request.prime is not None else defaults.prime
    length = request.length if request.length is not None else defaults.length
    temperature = request.temperature if request.temperature is not None else defaults.temperature
    text = sample_text(system, prime, length, temperature, seed=request.seed)
    return [f"[bold]{escape(prime)}[/]{escape(text)}"]
