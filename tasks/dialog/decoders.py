"""The answer decoders of Das et al. 2017, *Visual Dialog* (CVPR), section 5, and their training losses.

Both decoders read the fused encoding of a round (``[M, F]``, ``M = B * R`` rounds) and score that round's
``O`` candidate answers; candidates are given once per batch (``option_tokens [U, Ta]``, ``U`` distinct
answers as ``<start> w1 .. wn <end>``) and indexed per round (``options [M, O]``), as in
:class:`vltk.tasks.dialog.batch.DialogBatch`.

- :class:`DiscriminativeDecoder`: an LSTM encodes each distinct answer once; a round's score for an option
  is the dot product of its encoding with the fused vector. Trained with cross-entropy over the options
  (:func:`discriminative_loss`).
- :class:`GenerativeDecoder`: an LSTM language model over answers whose state starts from the fused vector.
  Trained with teacher forcing on the ground-truth answers (:func:`generative_loss`); at evaluation a
  round's options are ranked by their log-likelihood (:meth:`GenerativeDecoder.score_options`), and it
  implements the decoder step protocol, so :func:`vltk.decoding.beam_search` generates free answers.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vltk.decoders.base import CaptionDecoder, cell_step, make_cell
from vltk.decoders.state import DecoderState
from vltk.encoders.text import RNNTextEncoder
from vltk.errors import ConfigError
from vltk.types import ImageFeatures

logger = logging.getLogger(__name__)


def _check_options(option_tokens: Tensor, option_lengths: Tensor, options: Tensor, rounds: int) -> None:
    if option_tokens.dim() != 2 or option_lengths.shape != option_tokens.shape[:1]:
        raise ValueError(
            f"expected option_tokens [U, T] and option_lengths [U], got {tuple(option_tokens.shape)} and "
            f"{tuple(option_lengths.shape)}"
        )
    if options.dim() != 2 or options.shape[0] != rounds:
        raise ValueError(f"expected options [{rounds}, O] (one row per round), got {tuple(options.shape)}")


class DiscriminativeDecoder(nn.Module):
    """Scores each option by the dot product of its LSTM encoding with the fused encoding of the round.

    Args:
        vocab_size: ``V`` (wired from the vocabulary).
        input_dim: ``F``, the fused size (wired from the encoder); it is also the answer LSTM's hidden size.
        embed_dim: ``E`` of the answer words (wired from the model's text encoder spec).
        cell: the answer encoder's recurrent cell, ``"lstm"`` (the paper), ``"gru"`` or ``"rnn"``.
        dropout: dropout on the answer word embeddings.
        pad_id: the padding token id.
    """

    def __init__(
        self,
        vocab_size: int,
        input_dim: int,
        *,
        embed_dim: int = 300,
        cell: Literal["lstm", "gru", "rnn"] = "lstm",
        dropout: float = 0.0,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.answer_encoder = RNNTextEncoder(
            vocab_size, embed_dim=embed_dim, hidden_dim=input_dim, cell=cell, dropout=dropout, pad_id=pad_id
        )
        self.input_dim = input_dim

    @property
    def embedding(self) -> nn.Embedding:
        return self.answer_encoder.embedding

    def forward(
        self, fused: Tensor, option_tokens: Tensor, option_lengths: Tensor, options: Tensor
    ) -> Tensor:
        """Scores ``[M, O]`` (higher = better) of the options of ``M`` rounds.

        Args:
            fused: ``[M, F]`` fused encodings.
            option_tokens: ``[U, Ta]`` every distinct candidate answer once.
            option_lengths: ``[U]`` real lengths (``<start>``/``<end>`` included).
            options: ``[M, O]`` rows of ``option_tokens``.
        """
        _check_options(option_tokens, option_lengths, options, fused.shape[0])
        answers = self.answer_encoder(option_tokens, option_lengths).final  # [U, F], each answer once
        # [M, U] then gather: cheaper than materialising [M, O, F] when answers repeat across rounds.
        scores = fused @ answers.t()  # [M, U]
        return scores.gather(1, options)  # [M, O]


class GenerativeDecoder(CaptionDecoder):
    """An LSTM language model over answers, started from the fused encoding (Das et al. 2017, sec. 5).

    The fused vector ``e`` plays the image's role of a caption decoder: the initial state is
    ``h0 = tanh(W_h e)`` and, for an LSTM, ``c0 = W_c e`` (Xu et al. 2015 initialise both from the image
    the same way; with ``c0 = 0`` and a linear ``h0`` the decoder learned to condition on the encoding
    far more slowly: on one batch of 8 shapes_dialog dialogs, 150 Adam steps reached a token loss of 0.75
    and an option MRR of 0.54, against 0.08 and 0.98 with this initialisation); then ``<start> w1 .. wn``
    are read and ``w1 .. wn <end>`` predicted. Built on
    :class:`vltk.decoders.base.CaptionDecoder`, so :meth:`step` is the shared decoding protocol and
    :meth:`teacher_forcing` the shared loop; :meth:`init_state` takes the fused vectors wrapped by
    :func:`fused_features`.

    Args:
        vocab_size: ``V`` (wired from the vocabulary).
        input_dim: ``F``, the fused size (wired from the encoder).
        embed_dim: ``E`` of the answer words (wired from the model's text encoder spec).
        hidden_dim: ``H`` of the answer LSTM.
        cell: ``"lstm"`` (the paper) or ``"gru"``.
        dropout: dropout on the word embeddings and on the LSTM output before the vocabulary projection.
        pad_id: the padding token id.
        chunk_elements: memory bound of :meth:`score_options`: candidate answers are scored in chunks of
            about ``chunk_elements / V`` rows (the ``[rows, V]`` log-probabilities of one step), so a
            VisDial batch of 320 rounds x 100 options never materialises at once.
    """

    def __init__(
        self,
        vocab_size: int,
        input_dim: int,
        *,
        embed_dim: int = 300,
        hidden_dim: int = 512,
        cell: Literal["lstm", "gru"] = "lstm",
        dropout: float = 0.2,
        pad_id: int = 0,
        chunk_elements: int = 2**23,
    ) -> None:
        super().__init__(
            vocab_size, embed_dim=embed_dim, output_dim=hidden_dim, hidden_dim=hidden_dim, dropout=dropout,
            pad_id=pad_id,
        )  # fmt: skip
        if not isinstance(chunk_elements, int) or isinstance(chunk_elements, bool) or chunk_elements < 1:
            raise ConfigError(
                f"generative decoder chunk_elements must be a positive integer, got {chunk_elements!r}"
            )
        self.input_dim = input_dim
        self.rnn = make_cell(cell, embed_dim, hidden_dim)
        self.init_h = nn.Linear(input_dim, hidden_dim)
        self.init_c = nn.Linear(input_dim, hidden_dim) if self.rnn.state_size == 2 else None
        self.chunk_elements = chunk_elements

    def _init_state(self, features: ImageFeatures) -> DecoderState:
        fused = features.pooled  # [M, F]
        h = torch.tanh(self.init_h(fused))  # [M, H]
        c = self.init_c(fused) if self.init_c is not None else None  # [M, H]
        return DecoderState(h=h, c=c)

    def _advance(self, embedded: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        h, c = cell_step(self.rnn, embedded, state.h, state.c)  # [M, H], [M, H]
        return h, DecoderState(h=h, c=c)

    def start(self, fused: Tensor) -> DecoderState:
        """The state before ``<start>`` for fused encodings ``[M, F]`` (for :mod:`vltk.decoding`)."""
        return self.init_state(fused_features(fused))

    def answer_logits(self, fused: Tensor, answers: Tensor) -> Tensor:
        """Teacher-forced logits ``[M, Ta-1, V]`` of ``answers[:, 1:]`` given ``answers[:, :-1]``.

        Args:
            fused: ``[M, F]`` fused encodings.
            answers: ``[M, Ta]`` ``<start> w1 .. wn <end> <pad>..``.
        """
        return self.teacher_forcing(fused_features(fused), answers[:, :-1]).logits  # [M, Ta-1, V]

    def score_options(
        self,
        fused: Tensor,
        option_tokens: Tensor,
        option_lengths: Tensor,
        options: Tensor,
        *,
        length_normalise: bool = False,
    ) -> Tensor:
        """Log-likelihood ``[M, O]`` of every option of ``M`` rounds: the sum of the log-probabilities of
        ``w1 .. wn <end>`` given ``<start>`` and the round's fused encoding.

        Candidates are ``M * O`` sequences; they are run in chunks of whole rounds (each round's state is
        computed once and expanded to its ``O`` options) so that memory stays bounded (``chunk_elements``).

        Args:
            fused: ``[M, F]``.
            option_tokens: ``[U, Ta]`` ``<start> w1 .. wn <end> <pad>..``.
            option_lengths: ``[U]`` real lengths, ``<start>`` and ``<end>`` included.
            options: ``[M, O]`` rows of ``option_tokens``.
            length_normalise: divide each sum by its number of scored tokens (``n + 1``), the mean
                log-probability per token; the default (``False``) is the plain sum, as Das et al. rank.
        """
        _check_options(option_tokens, option_lengths, options, fused.shape[0])
        M, n_options = options.shape
        rows_per_chunk = max(n_options, self.chunk_elements // max(self.vocab_size, 4 * self.hidden_dim))
        rounds_per_chunk = max(1, rows_per_chunk // n_options)
        scores = []
        for begin in range(0, M, rounds_per_chunk):
            end = min(M, begin + rounds_per_chunk)
            rows = options[begin:end].reshape(-1)  # [C*O]
            scores.append(
                self._sequence_logprobs(
                    fused[begin:end], option_tokens[rows], option_lengths[rows], copies=n_options
                ).view(end - begin, n_options)
            )  # [C, O]
        total = torch.cat(scores, dim=0) if scores else fused.new_zeros(0, n_options)  # [M, O]
        if length_normalise:
            scored = (option_lengths[options] - 1).clamp(min=1).to(total.dtype)  # [M, O]
            total = total / scored
        return total

    def _sequence_logprobs(self, fused: Tensor, tokens: Tensor, lengths: Tensor, *, copies: int) -> Tensor:
        """Sum of log-probs ``[C*copies]`` of ``tokens [C*copies, T]``; row ``i`` continues round
        ``i // copies`` (``fused [C, F]``)."""
        rows = tokens.shape[0]
        total = fused.new_zeros(rows, dtype=torch.float32)  # [C*copies]
        width = int(lengths.max()) if rows else 0
        if width < 2:
            return total
        # Longest candidates first: step t runs only the rows still longer than t (a shrinking prefix), so
        # the many short answers padded to the batch's longest one cost nothing after their <end>.
        order = lengths.argsort(descending=True, stable=True)  # [C*copies]
        tokens, lengths = tokens[order], lengths[order]  # [C*copies, T], [C*copies]
        live = (lengths[None, :] > torch.arange(width + 1, device=lengths.device)[:, None]).sum(1).tolist()
        source = torch.div(order, copies, rounding_mode="floor")  # [C*copies] the round of each row
        state = self.start(fused)  # [C] rows
        first = tokens[:, 0]  # [C*copies]
        if bool((first == first[0]).all()):
            # Every candidate starts with the same <start>: take the first step once per round.
            logprobs, state = self.step(first[: fused.shape[0]], state)  # [C, V]
            logprobs, state = logprobs[source], state.select(source)  # [C*copies, V]
        else:
            logprobs, state = self.step(first, state.select(source))  # [C*copies, V]
        sums = torch.zeros_like(total)  # [C*copies], in length order
        for t in range(1, width):
            target = tokens[: live[t], t]  # [live_t] the rows that still have a word (or <end>) at t
            picked = logprobs[: live[t]].gather(1, target[:, None]).squeeze(1)  # [live_t]
            sums[: live[t]] += picked.float()
            if live[t + 1] > 0:
                if live[t + 1] < state.batch_size:
                    state = state.select(torch.arange(live[t + 1], device=tokens.device))
                logprobs, state = self.step(target[: live[t + 1]], state)  # [live_t+1, V]
        total[order] = sums
        return total


def fused_features(fused: Tensor) -> ImageFeatures:
    """Wrap fused encodings ``[M, F]`` as the ``ImageFeatures`` a :class:`CaptionDecoder` starts from."""
    return ImageFeatures(grid=fused.unsqueeze(1), pooled=fused)  # grid [M, 1, F]


def discriminative_loss(scores: Tensor, gt_index: Tensor, round_mask: Tensor | None = None) -> Tensor:
    """Mean cross-entropy over the ``O`` options of every round with a known answer.

    Args:
        scores: ``[B, R, O]`` option scores.
        gt_index: ``[B, R]`` position of the right answer; ``-1`` = unknown (such rounds are ignored).
        round_mask: ``[B, R]`` bool, ``True`` = a real round; ``False`` rounds are ignored.

    Returns:
        A scalar; ``0`` (with a gradient path) when no round has a known answer.
    """
    target = gt_index.clone()  # [B, R]
    if round_mask is not None:
        target = target.masked_fill(~round_mask, -1)
    n_options = scores.shape[-1]
    if bool((target >= n_options).any()):
        raise ValueError(f"gt_index must be < the number of options {n_options}, got {int(target.max())}")
    if not bool((target >= 0).any()):
        return scores.sum() * 0.0
    return F.cross_entropy(scores.reshape(-1, n_options).float(), target.reshape(-1), ignore_index=-1)


def generative_loss(logits: Tensor, targets: Tensor, target_mask: Tensor) -> Tensor:
    """Mean token negative log-likelihood over the real target tokens.

    Args:
        logits: ``[M, T, V]`` teacher-forced logits.
        targets: ``[M, T]`` the words to predict (``w1 .. wn <end>``).
        target_mask: ``[M, T]`` bool, ``True`` = a real target token of a round with a known answer.

    Returns:
        A scalar (the sum of the NLL over real tokens divided by their number); ``0`` when there is none.
    """
    if not bool(target_mask.any()):
        return logits.sum() * 0.0
    nll = F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none")  # [M, T]
    return (nll * target_mask).sum() / target_mask.sum()
