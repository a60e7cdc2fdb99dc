"""The captioning inference object: a trained captioner, its vocabulary and its checkpoint's decoding.

:class:`ImageCaptioner` is the one place a caption is decoded: evaluation (``CaptioningTask.caption``, on
the validation/test batches), :func:`vltk.from_pretrained` (a ``.ckpt`` or an export directory) and
``vltk predict`` all call :meth:`ImageCaptioner.decode` with the checkpoint's ``decoding`` section, which
explicit overrides (``beam_size=``, ``max_length=``, ...; ``--beam-size``/``--max-length``) replace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import Tensor

from vltk.decoding import BeamResult, DecodeResult
from vltk.export import evaluating, hyper_parameter, load_network
from vltk.tasks.captioning.model import Captioner, build_captioner
from vltk.tasks.training import DecodingConfig, override_decoding
from vltk.text import Vocabulary
from vltk.types import ImageFeatures


@dataclass
class Caption:
    """One decoded caption: its text and words, its score (sum of log-probabilities; beam search: the
    ranking score) and, for attention decoders, the attention ``[L, N]`` over the ``grid_size`` regions
    that produced each word (``None`` otherwise)."""

    text: str
    words: list[str]
    score: float
    attention: Tensor | None
    grid_size: tuple[int, int] | None


@dataclass
class ImageCaptioner:
    """A trained captioner ready to caption images.

    Attributes:
        model: the network (:class:`vltk.tasks.captioning.model.Captioner`).
        vocab: its vocabulary.
        decoding: how captions are decoded: the checkpoint's ``decoding`` section (method, beam size,
            maximum length, ...); every method takes overrides of its fields as keywords.
    """

    task: ClassVar[str] = "captioning"

    model: Captioner
    vocab: Vocabulary
    decoding: DecodingConfig = dataclasses.field(default_factory=DecodingConfig)

    @classmethod
    def from_checkpoint(
        cls, config: Any, hyper_parameters: Mapping[str, Any], state_dict: Mapping[str, Tensor], source: Path
    ) -> ImageCaptioner:
        """The captioner of a checkpoint or export: ``config`` is its parsed ``CaptioningConfig``, the
        vocabulary comes from ``hyper_parameters``, the ``model.*`` weights from ``state_dict``."""
        vocab = Vocabulary.from_json(hyper_parameter(hyper_parameters, "vocab", source))
        network = build_captioner(
            config.model,
            vocab_size=len(vocab),
            start_id=vocab.start_id,
            end_id=vocab.end_id,
            pad_id=vocab.pad_id,
        )
        return cls(load_network(network, state_dict, source, cls.task), vocab, config.decoding)

    # --------------------------------------------------------------------------------------- decoding
    def settings(self, **overrides: Any) -> DecodingConfig:
        """The checkpoint's decoding with ``overrides``, e.g. ``beam_size=5`` (beam search of width 5),
        ``method="greedy"``, ``max_length=16`` (:func:`vltk.tasks.training.override_decoding`)."""
        return override_decoding(self.decoding, overrides)

    def decode(self, features: ImageFeatures, decoding: DecodingConfig) -> DecodeResult:
        """The best caption per image of encoded ``features`` (grid ``[B, N, D]``), decoded as ``decoding``
        says: the one decoding call of evaluation, ``from_pretrained`` and ``vltk predict``."""
        result = self.model.generate(
            features, **decoding.search_options(), temperature=decoding.temperature, top_k=decoding.top_k
        )
        return result.best() if isinstance(result, BeamResult) else result

    def texts(self, result: DecodeResult) -> list[str]:
        """The caption text of each row of a decoding result."""
        tokens, lengths = result.tokens.tolist(), result.lengths.tolist()
        return [self.vocab.decode(row[:length]) for row, length in zip(tokens, lengths)]

    def caption_batch(self, images: Tensor, **overrides: Any) -> list[str]:
        """Captions for a batch of preprocessed images ``[B, 3, H, W]`` (the datamodule's transform): what
        evaluation scores. The network's mode is left alone (Lightning's loops set it)."""
        return self.texts(self.decode(self.model.encode(images), self.settings(**overrides)))

    # ------------------------------------------------------------------------------------ PIL images
    def preprocess(self, images: Sequence[Image.Image]) -> Tensor:
        """PIL images of any size and mode as the encoder's input batch ``[B, 3, H, W]``."""
        transform = self.model.encoder.transforms()
        device = next(self.model.parameters()).device
        return torch.stack([transform(image.convert("RGB")) for image in images]).to(device)

    def caption(self, images: Sequence[Image.Image], **overrides: Any) -> list[str]:
        """Captions for PIL images, decoded with the checkpoint's ``decoding`` unless overridden, e.g.
        ``caption(images, beam_size=5, max_length=16)`` or ``caption(images, method="greedy")``."""
        return [caption.text for caption in self.captions(images, **overrides)]

    def captions(self, images: Sequence[Image.Image], **overrides: Any) -> list[Caption]:
        """:meth:`caption` with each caption's words, score and attention over the image regions."""
        decoding = self.settings(**overrides)
        with evaluating(self.model):
            features = self.model.encode(self.preprocess(images))  # grid [B, N, D]
            best = self.decode(features, decoding)
        return [self._caption(best, row, features) for row in range(len(images))]

    def beam(self, image: Image.Image, **overrides: Any) -> list[Caption]:
        """Every caption the beam finished for one PIL image, best first, with its score and attention (the
        beam's width of them; greedy or sampled decoding: the one caption)."""
        decoding = self.settings(**overrides)
        if decoding.method != "beam":
            return self.captions([image], **overrides)
        with evaluating(self.model):
            features = self.model.encode(self.preprocess([image]))  # grid [1, N, D]
            result = self.model.generate(features, **decoding.search_options(), n_best=decoding.beam_size)
        return [self._caption(result, (0, k), features) for k in range(result.n_best)]

    def _caption(self, result: DecodeResult | BeamResult, index: Any, features: ImageFeatures) -> Caption:
        """One hypothesis of a decoding result as a :class:`Caption`: ``index`` is a row of a
        :class:`DecodeResult` or ``(row, k)`` of a :class:`BeamResult`."""
        length = int(result.lengths[index])
        ids = result.tokens[index][:length].tolist()
        attention = None if result.attention is None else result.attention[index][:length]  # [L, N]
        words = [self.vocab.decode([i]) for i in ids]
        score = float(result.scores[index])
        return Caption(self.vocab.decode(ids), words, score, attention, features.grid_size)
