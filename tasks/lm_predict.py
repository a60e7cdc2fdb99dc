"""Sampling text from a language-model checkpoint (``vltk predict CKPT --prime "def " --length 500``)."""

from __future__ import annotations

import copy

import torch
from rich.markup import escape

from vltk.errors import VltkError
from vltk.tasks.common import PredictRequest


def sample_text(system, prime: str, length: int, temperature: float, seed: int | None = None) -> str:
    """``length`` symbols sampled after ``prime`` at ``temperature`` (the prime is not included).

    Args:
        system: a loaded :class:`vltk.tasks.lm.LmTask`.
        prime: text fed to the model first; every symbol must be in the model's vocabulary. Empty: the
            sample starts after a newline (or the first symbol of the vocabulary).
        length: number of symbols to sample (characters or words).
        temperature: > 0; lower is more conservative, 1 samples the model's own distribution.
        seed: seed of the sampler (``None``: torch's global generator).
    """
    if length < 0:
        raise VltkError(f"--length must be >= 0, got {length}")
    if temperature <= 0:
        raise VltkError(f"--temperature must be > 0, got {temperature}")
    vocab = system.vocab
    unknown = vocab.unknown(prime)
    if unknown:
        shown = ", ".join(repr(s) for s in unknown[:10])
        raise VltkError(f"--prime contains symbols the model never saw in training: {shown}")
    ids = vocab.encode(prime) or vocab.encode("\n") or [1]
    generator = None
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
    model = system.model
    if model.output.weight.device.type != "cpu":
        model = copy.deepcopy(model).cpu()  # sampling is sequential and small: the CPU is fine
    was_training = model.training
    model.eval()
    try:
        prime_ids = torch.tensor(ids, dtype=torch.long)  # [P]
        sampled = model.generate(prime_ids, length, temperature=temperature, generator=generator)  # [length]
    finally:
        model.train(was_training)
    return vocab.decode(sampled.tolist())


def predict_lm_lines(system, request: PredictRequest) -> list[str]:
    """``vltk predict`` for ``lm`` checkpoints: the prime, then the sampled continuation (Rich markup)."""
    defaults = system.config.sample
    prime = request.prime if request.prime is not None else defaults.prime
    length = request.length if request.length is not None else defaults.length
    temperature = request.temperature if request.temperature is not None else defaults.temperature
    text = sample_text(system, prime, length, temperature, seed=request.seed)
    return [f"[bold]{escape(prime)}[/]{escape(text)}"]
