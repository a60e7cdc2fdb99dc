"""Visual dialog models: Das et al. 2017, *Visual Dialog* (CVPR), section 5: a late fusion encoder with a
discriminative or a generative answer decoder.

The ``model:`` section of a dialog config is a :class:`DialogModelConfig`::

    name: late_fusion                  # the encoder (a key of DIALOG_ENCODERS)
    decoder: discriminative            # or generative, or {name: generative, hidden_dim: 512, ...}
    use_image: true                    # false: no image (with use_history false: the question-only model)
    use_history: true                  # false: the no-history ablation (image + question)
    share_embeddings: true             # one word embedding for questions, history and answers
    encoder: {name: small_cnn, ...}    # the image encoder, a spec for vltk.encoders.IMAGE_ENCODERS
    text: {name: rnn, embed_dim: 300, hidden_dim: 512}   # question and history encoders (one LSTM each)
    attention: {name: additive, dim: 512}                # question-guided attention over the image grid
    fusion: {dim: 512, dropout: 0.2}   # the late fusion layer (vltk.tasks.dialog.encoders)

Defaults are sized for VisDial (300-d embeddings, 512-d LSTMs and fusion, as Das et al.); the built-in
``shapes_dialog`` needs far less (embed 64-128, hidden 256). With ``share_embeddings`` the question, history
and answer encoders and the generative decoder share one ``nn.Embedding`` (Das et al.'s released code shares
the word embedding between encoder and decoder); the decoders' ``embed_dim`` is always ``text.embed_dim``.

Whatever ``use_image`` says, the image encoder is built (the data pipeline reads its ``transforms()``);
without the image it is frozen and never run, so no parameter goes without a gradient.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from vltk.attention import ATTENTIONS
from vltk.config import from_dict, options_field, spec_field
from vltk.decoding import BeamResult, DecodeResult, beam_search, greedy
from vltk.encoders import IMAGE_ENCODERS, TEXT_ENCODERS
from vltk.errors import ConfigError, unknown_choice_message
from vltk.registry import Registry, build
from vltk.tasks.dialog.decoders import (
    DiscriminativeDecoder,
    GenerativeDecoder,
    discriminative_loss,
    generative_loss,
)
from vltk.tasks.dialog.encoders import FusionOutput, LateFusionEncoder
from vltk.types import ImageFeatures

if TYPE_CHECKING:
    from vltk.tasks.dialog.batch import DialogBatch

logger = logging.getLogger(__name__)

DIALOG_ENCODERS = Registry("dialog encoder", {"late_fusion": LateFusionEncoder})
DIALOG_DECODERS = Registry(
    "dialog decoder", {"discriminative": DiscriminativeDecoder, "generative": GenerativeDecoder}
)
FUSION_WIRED = ("question_encoder", "history_encoder", "image_dim", "attention")
DECODER_WIRED = ("vocab_size", "input_dim", "embed_dim", "pad_id")
TEXT_WIRED = ("vocab_size", "pad_id")
DEFAULT_TEXT = {"name": "rnn", "embed_dim": 300, "hidden_dim": 512}
DEFAULT_ATTENTION = {"name": "additive", "dim": 512}
ATTENTION_WIRED = ("query_dim", "key_dim")


@dataclass
class DialogModelConfig:
    """The ``model:`` section of a dialog config (see the module docstring).

    Attributes:
        name: the encoder, a key of :data:`DIALOG_ENCODERS`.
        decoder: a spec of :data:`DIALOG_DECODERS` (a bare name is enough: ``decoder: generative``).
        use_image, use_history: ``false`` gives the no-image / no-history ablations.
        share_embeddings: one word embedding for questions, history and answers.
        encoder: a spec of :data:`vltk.encoders.IMAGE_ENCODERS`.
        text: a spec of :data:`vltk.encoders.TEXT_ENCODERS` (the question and history encoders).
        attention: a spec of :data:`vltk.attention.ATTENTIONS` (question-guided attention over the image).
        fusion: the options of encoder ``name`` (the late fusion layer).
    """

    name: str = "late_fusion"
    decoder: dict = spec_field(DIALOG_DECODERS, {"name": "discriminative"}, wired=DECODER_WIRED)
    use_image: bool = True
    use_history: bool = True
    share_embeddings: bool = True
    encoder: dict = spec_field(IMAGE_ENCODERS, {"name": "small_cnn"})
    text: dict = spec_field(TEXT_ENCODERS, DEFAULT_TEXT, wired=TEXT_WIRED)
    attention: dict = spec_field(ATTENTIONS, DEFAULT_ATTENTION, wired=ATTENTION_WIRED)
    fusion: dict = options_field(DIALOG_ENCODERS, wired=FUSION_WIRED)


@dataclass
class DialogOutput:
    """What :meth:`DialogModel.forward` returns.

    Attributes:
        scores: ``[B, R, O]`` option scores, higher = better (dot products for the discriminative decoder,
            log-likelihoods for the generative one).
        fused: ``[B*R, F]`` the fused encodings (for generation without re-encoding).
        attention: ``[B, R, N]`` question-guided attention over the image regions, or ``None`` without image.
        grid_size: ``(H', W')`` of the image grid, to draw attention maps; ``None`` without image.
    """

    scores: Tensor
    fused: Tensor
    attention: Tensor | None
    grid_size: tuple[int, int] | None


class DialogModel(nn.Module):
    """Image encoder + late fusion encoder + answer decoder (Das et al. 2017).

    Args:
        image_encoder: an image encoder (``forward(images) -> ImageFeatures``, ``out_dim``, ``transforms()``).
        encoder: a :class:`LateFusionEncoder`.
        decoder: a :class:`DiscriminativeDecoder` or :class:`GenerativeDecoder` with ``input_dim =
            encoder.out_dim``.
        start_id, end_id, pad_id: special token ids of the vocabulary.
        length_normalise: the generative decoder ranks options by mean (not summed) token log-probability.
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        encoder: LateFusionEncoder,
        decoder: DiscriminativeDecoder | GenerativeDecoder,
        *,
        start_id: int = 1,
        end_id: int = 2,
        pad_id: int = 0,
        length_normalise: bool = False,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.encoder = encoder
        self.decoder = decoder
        self.start_id, self.end_id, self.pad_id = start_id, end_id, pad_id
        self.length_normalise = length_normalise
        if not encoder.use_image:
            image_encoder.requires_grad_(False)

    @property
    def generative(self) -> bool:
        return isinstance(self.decoder, GenerativeDecoder)

    def transforms(self) -> Any:
        """The image encoder's preprocessing (what the data pipeline applies to images)."""
        return self.image_encoder.transforms()

    def encode_images(self, images: Tensor) -> ImageFeatures | None:
        """Run the CNN once per image ``[B, 3, H, W]``; ``None`` when the model does not use the image."""
        if not self.encoder.use_image:
            return None
        return self.image_encoder(images)  # grid [B, N, D]

    def encode(
        self,
        images: Tensor,
        questions: Tensor,
        question_lengths: Tensor,
        history: Tensor,
        history_lengths: Tensor,
    ) -> tuple[FusionOutput, ImageFeatures | None]:
        """Fused encodings ``[B*R, F]`` of every round (see :meth:`LateFusionEncoder.forward`)."""
        features = self.encode_images(images)
        grid = features.grid if features is not None else None  # [B, N, D]
        mask = features.mask if features is not None else None  # [B, N]
        fusion = self.encoder(grid, questions, question_lengths, history, history_lengths, grid_mask=mask)
        return fusion, features

    def score(self, fused: Tensor, option_tokens: Tensor, option_lengths: Tensor, options: Tensor) -> Tensor:
        """Option scores ``[M, O]`` of ``M`` rounds from their fused encodings ``[M, F]``."""
        if self.generative:
            return self.decoder.score_options(
                fused, option_tokens, option_lengths, options, length_normalise=self.length_normalise
            )  # [M, O]
        return self.decoder(fused, option_tokens, option_lengths, options)  # [M, O]

    def forward(
        self,
        images: Tensor,
        questions: Tensor,
        question_lengths: Tensor,
        history: Tensor,
        history_lengths: Tensor,
        option_tokens: Tensor,
        option_lengths: Tensor,
        options: Tensor,
    ) -> DialogOutput:
        """Inference: the scores ``[B, R, O]`` of every option of every round (higher = better).

        Args: the tensors of :class:`vltk.tasks.dialog.batch.DialogBatch` of the same names: ``images [B, 3,
        H, W]``, ``questions [B, R, Tq]``, ``question_lengths [B, R]``, ``history [B, R, Th]``,
        ``history_lengths [B, R]``, ``option_tokens [U, Ta]``, ``option_lengths [U]``, ``options [B, R, O]``.
        """
        B, R, n_options = options.shape
        fusion, features = self.encode(images, questions, question_lengths, history, history_lengths)
        scores = self.score(
            fusion.fused, option_tokens, option_lengths, options.reshape(B * R, n_options)
        )  # [B*R, O]
        attention = fusion.attention.view(B, R, -1) if fusion.attention is not None else None  # [B, R, N]
        grid_size = features.grid_size if features is not None else None
        return DialogOutput(scores.view(B, R, n_options), fusion.fused, attention, grid_size)

    def loss(
        self,
        images: Tensor,
        questions: Tensor,
        question_lengths: Tensor,
        history: Tensor,
        history_lengths: Tensor,
        option_tokens: Tensor,
        option_lengths: Tensor,
        options: Tensor,
        gt_index: Tensor,
        round_mask: Tensor,
    ) -> Tensor:
        """The training loss: cross-entropy over the options (discriminative) or the mean token NLL of the
        ground-truth answers under teacher forcing (generative). Rounds with ``gt_index == -1`` or
        ``round_mask == False`` are ignored."""
        fusion, _ = self.encode(images, questions, question_lengths, history, history_lengths)
        return self.decoder_loss(fusion.fused, option_tokens, option_lengths, options, gt_index, round_mask)

    def decoder_loss(
        self,
        fused: Tensor,
        option_tokens: Tensor,
        option_lengths: Tensor,
        options: Tensor,
        gt_index: Tensor,
        round_mask: Tensor,
    ) -> Tensor:
        """:meth:`loss` from fused encodings ``[B*R, F]`` (e.g. ``DialogOutput.fused``), so that a validation
        step gets the loss and the scores from one encoder pass.

        Args: ``fused [B*R, F]``, ``option_tokens [U, Ta]``, ``option_lengths [U]``, ``options [B, R, O]``,
        ``gt_index [B, R]``, ``round_mask [B, R]``.
        """
        B, R, n_options = options.shape
        if not self.generative:
            scores = self.decoder(fused, option_tokens, option_lengths, options.reshape(B * R, n_options))
            return discriminative_loss(
                scores.view(B, R, n_options), gt_index, round_mask
            )  # [B, R, O] -> scalar
        known = ((gt_index >= 0) & round_mask).reshape(B * R)  # [B*R]
        gt_rows = options.gather(2, gt_index.clamp(min=0).unsqueeze(-1)).reshape(B * R)  # [B*R]
        if not bool(known.all()):
            # Teacher-force only the rounds with a known answer.
            keep = known.nonzero().squeeze(1)  # [M']
            fused, gt_rows = fused[keep], gt_rows[keep]  # [M', F], [M']
        answers = option_tokens[gt_rows]  # [M', Ta]
        lengths = option_lengths[gt_rows]  # [M']
        if answers.shape[0] == 0 or answers.shape[1] < 2:
            return fused.sum() * 0.0
        logits = self.decoder.answer_logits(fused, answers)  # [M', Ta-1, V]
        steps = torch.arange(1, answers.shape[1], device=answers.device)  # [Ta-1]
        target_mask = steps[None, :] < lengths[:, None]  # [M', Ta-1]
        return generative_loss(logits, answers[:, 1:], target_mask)

    def forward_batch(self, batch: DialogBatch) -> DialogOutput:
        """:meth:`forward` on a :class:`vltk.tasks.dialog.batch.DialogBatch`."""
        return self(
            batch.images, batch.questions, batch.question_lengths, batch.history, batch.history_lengths,
            batch.option_tokens, batch.option_lengths, batch.options,
        )  # fmt: skip

    def loss_batch(self, batch: DialogBatch) -> Tensor:
        """:meth:`loss` on a :class:`vltk.tasks.dialog.batch.DialogBatch`."""
        return self.loss(
            batch.images, batch.questions, batch.question_lengths, batch.history, batch.history_lengths,
            batch.option_tokens, batch.option_lengths, batch.options, batch.gt_index, batch.round_mask,
        )  # fmt: skip

    @torch.no_grad()
    def generate(
        self,
        fused: Tensor,
        *,
        method: str = "beam",
        beam_size: int = 3,
        max_length: int = 20,
        min_length: int = 0,
        length_penalty: float = 0.0,
        n_best: int = 1,
        block_trigrams: bool = False,
    ) -> DecodeResult | BeamResult:
        """Free answers for fused encodings ``[M, F]`` with the generative decoder (``vltk chat``).

        Args:
            fused: ``[M, F]``, e.g. ``DialogOutput.fused`` or ``encode(...)[0].fused`` rows.
            method: ``"beam"`` (:func:`vltk.decoding.beam_search`) or ``"greedy"``.
            beam_size, max_length, min_length, length_penalty, n_best, block_trigrams: beam search options.
        """
        if not self.generative:
            raise ConfigError(
                "free answers need the generative decoder (model.decoder: generative); this model is "
                "discriminative and can only rank candidate answers"
            )
        state = self.decoder.start(fused)
        common = dict(
            batch_size=fused.shape[0], bos_id=self.start_id, eos_id=self.end_id, pad_id=self.pad_id,
            max_length=max_length,
        )  # fmt: skip
        if method == "greedy":
            return greedy(self.decoder.step, state, **common)
        if method == "beam":
            return beam_search(
                self.decoder.step, state, **common, beam_size=beam_size, min_length=min_length,
                length_penalty=length_penalty, n_best=n_best, block_trigrams=block_trigrams,
            )  # fmt: skip
        raise ConfigError(unknown_choice_message("decoding method", str(method), ("beam", "greedy")))


def build_dialog_model(
    spec: DialogModelConfig | Mapping[str, Any],
    *,
    vocab_size: int,
    pad_id: int = 0,
    start_id: int = 1,
    end_id: int = 2,
    length_normalise: bool = False,
) -> DialogModel:
    """Build a :class:`DialogModel` from its config.

    Args:
        spec: the ``model:`` section, a :class:`DialogModelConfig` or a mapping (partial, or a checkpoint's
            resolved section).
        vocab_size: the dialog vocabulary's size (questions, history and answers share it).
        pad_id, start_id, end_id: the vocabulary's special ids.
        length_normalise: rank options of the generative decoder by mean token log-probability.
    """
    if not isinstance(spec, DialogModelConfig):
        spec = from_dict(DialogModelConfig, spec, "model", old_keys=True)
    image_encoder = build(IMAGE_ENCODERS, spec.encoder, path="model.encoder")

    def text_encoder() -> nn.Module:
        return build(TEXT_ENCODERS, spec.text, path="model.text", vocab_size=vocab_size, pad_id=pad_id)

    question_encoder = text_encoder()
    history_encoder = text_encoder() if spec.use_history else None
    attention = None
    image_dim = None
    if spec.use_image:
        image_dim = image_encoder.out_dim
        attention = build(
            ATTENTIONS, spec.attention, path="model.attention", query_dim=question_encoder.out_dim,
            key_dim=image_dim,
        )  # fmt: skip
    encoder = build(
        DIALOG_ENCODERS, {"name": spec.name, **spec.fusion}, path="model.fusion",
        question_encoder=question_encoder, history_encoder=history_encoder, image_dim=image_dim,
        attention=attention,
    )  # fmt: skip
    decoder = build(
        DIALOG_DECODERS, spec.decoder, path="model.decoder", vocab_size=vocab_size,
        input_dim=encoder.out_dim, embed_dim=spec.text["embed_dim"], pad_id=pad_id,
    )  # fmt: skip
    if spec.share_embeddings:
        shared = question_encoder.embedding
        if history_encoder is not None:
            history_encoder.embedding = shared
        if isinstance(decoder, DiscriminativeDecoder):
            decoder.answer_encoder.embedding = shared
        else:
            decoder.embedding = shared
    return DialogModel(
        image_encoder, encoder, decoder, start_id=start_id, end_id=end_id, pad_id=pad_id,
        length_normalise=length_normalise,
    )  # fmt: skip
