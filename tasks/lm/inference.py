"""The language-model inference object: a trained RNN language model, its symbols and its sampling
defaults.

:class:`TextSampler` is the one place text is sampled: the sample shown after training and by
``vltk evaluate`` (``LmTask.sample_rows``), :func:`vltk.from_pretrained` and ``vltk predict`` call
:meth:`TextSampler.sample`, with the checkpoint's ``sample`` section (prime, length, temperature) unless
overridden.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from vltk.errors import VltkError
from vltk.export import evaluating, hyper_parameter, load_network
from vltk.registry import build
from vltk.tasks.lm.model import LANGUAGE_MODELS
from vltk.tasks.lm.vocab import SymbolVocabulary


@dataclass
class TextSampler:
    """A language model ready for sampling (:class:`vltk.tasks.lm.model.RNNLanguageModel`).

    Attributes:
        model: the network.
        vocab: its :class:`vltk.tasks.lm.vocab.SymbolVocabulary` (characters or words).
        prime, length, temperature: the defaults of :meth:`sample`: the checkpoint's ``sample`` section.
    """

    task: ClassVar[str] = "lm"

    model: Any
    vocab: SymbolVocabulary
    prime: str = "\n"
    length: int = 300
    temperature: float = 0.8

    @classmethod
    def from_checkpoint(
        cls, config: Any, hyper_parameters: Mapping[str, Any], state_dict: Mapping[str, Tensor], source: Path
    ) -> TextSampler:
        """The sampler of a checkpoint or export: ``config`` is its parsed ``LmConfig``, the symbols come
        from ``hyper_parameters``, the ``model.*`` weights from ``state_dict``."""
        vocab = SymbolVocabulary.from_json(hyper_parameter(hyper_parameters, "vocab", source))
        network = build(
            LANGUAGE_MODELS, config.model, path="model", what="language model", vocab_size=len(vocab)
        )
        sample = config.sample
        network = load_network(network, state_dict, source, cls.task)
        return cls(network, vocab, sample.prime, sample.length, sample.temperature)

    def sample(
        self,
        prime: str | None = None,
        length: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> str:
        """``length`` symbols sampled after ``prime`` at ``temperature`` (the prime is not included).

        Args:
            prime: text fed to the model first; every symbol must be in the vocabulary. Empty: the sample
                starts after a newline (or the first symbol of the vocabulary). ``None``: the default.
            length: number of symbols to sample (characters or words); ``None``: the default.
            temperature: > 0; lower is more conservative, 1 samples the model's own distribution.
            seed: seed of the sampler (``None``: torch's global generator).
        """
        prime = self.prime if prime is None else prime
        length = int(self.length) if length is None else length
        temperature = float(self.temperature) if temperature is None else temperature
        if length < 0:
            raise VltkError(f"--length must be >= 0, got {length}")
        if temperature <= 0:
            raise VltkError(f"--temperature must be > 0, got {temperature}")
        unknown = self.vocab.unknown(prime)
        if unknown:
            shown = ", ".join(repr(s) for s in unknown[:10])
            raise VltkError(f"--prime contains symbols the model never saw in training: {shown}")
        ids = self.vocab.encode(prime) or self.vocab.encode("\n") or [1]
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        model = self.model
        if model.output.weight.device.type != "cpu":
            model = copy.deepcopy(model).cpu()  # sampling is sequential and small: the CPU is fine
        with evaluating(model):
            prime_ids = torch.tensor(ids, dtype=torch.long)  # [P]
            sampled = model.generate(prime_ids, length, temperature=temperature, generator=generator)
        return self.vocab.decode(sampled.tolist())
