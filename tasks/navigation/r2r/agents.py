"""The R2R agents, assembled from vltk's shared parts: the instruction encoder
(:class:`vltk.encoders.RNNTextEncoder`), Luong's ``general`` attention
(:class:`vltk.attention.GeneralAttention`) and an LSTM cell across steps.

* :class:`Seq2SeqAgent`, Anderson et al. 2018, *Vision-and-Language Navigation* (section 5): an LSTM encoder
  reads the instruction; per step an LSTM decoder takes the previous action's embedding and the feature of
  the current view, attends over the words and scores the six low-level actions (left, right, up, down,
  forward, stop). The decoder's output ``h~ = tanh(W [context; h])`` is Luong et al. 2015's attentional
  hidden state.
* :class:`PanoramicFollower`, the follower of Fried et al. 2018 (*Speaker-Follower Models*) as written in Tan
  et al. 2019 (*Learning to Navigate Unseen Environments: Back Translation with Environmental Dropout*,
  airsplay/R2R-EnvDrop ``r2r_src/model.py`` ``AttnDecoderLSTM``): a bidirectional LSTM encoder; per step the
  previous memory attends over the 36 view features (each with its angle feature), the LSTM takes
  ``[previous move's angle embedding, attended view]``, the new memory attends over the words, and the
  attentional state scores every navigable neighbour (its view's feature and its angle feature) and a stop
  choice (a zero feature, as EnvDrop's "end" candidate).

Both take ``use_instruction`` and ``use_vision`` so that the baselines of the issue (an instruction-blind and
a vision-blind agent) are the same network with an input zeroed: without the instruction the word context is
zero; without vision the view features are zero (angles stay, the agent still knows where it can go).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vltk.attention import GeneralAttention
from vltk.encoders import RNNTextEncoder
from vltk.errors import ConfigError
from vltk.registry import Registry, build
from vltk.types import TextFeatures

NUM_LOW_LEVEL_ACTIONS = 6  # left, right, up, down, forward, stop (env.LOW_LEVEL_ACTIONS)
ANGLE_FEATURES = 4  # sin/cos heading, sin/cos elevation (the env's angle layout)


@dataclass
class R2RAgentState:
    """What an agent carries between steps.

    Attributes:
        h, c: the LSTM memory ``[B, H]``.
        words: the encoded instruction (``states [B, L, H']``, ``mask [B, L]``).
        projected: the word attention's key projection ``[B, L, H]`` (once per episode).
    """

    h: Tensor
    c: Tensor
    words: TextFeatures
    projected: Tensor


@dataclass
class StepOutput:
    """One step: ``logits`` over the choices, the word ``attention [B, L]``, the new ``state``."""

    logits: Tensor
    attention: Tensor
    state: R2RAgentState


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"model.{name} must be in [0, 1), got {value!r}")


class _InstructionReader(nn.Module):
    """The part both agents share: the instruction encoder, the first memory and the word attention."""

    def __init__(
        self,
        vocab_size: int,
        *,
        embed_dim: int,
        text_hidden_dim: int,
        bidirectional: bool,
        hidden_dim: int,
        dropout: float,
        use_instruction: bool,
        pad_id: int,
    ) -> None:
        super().__init__()
        _check_fraction("dropout", dropout)
        self.text = RNNTextEncoder(
            vocab_size,
            embed_dim=embed_dim,
            hidden_dim=text_hidden_dim,
            cell="lstm",
            bidirectional=bidirectional,
            dropout=dropout,
            pad_id=pad_id,
        )
        words_dim = self.text.out_dim
        self.init_memory = nn.Linear(words_dim, hidden_dim)
        self.word_attention = GeneralAttention(hidden_dim, words_dim)
        self.attended = nn.Linear(words_dim + hidden_dim, hidden_dim, bias=False)  # Luong's W_c
        self.drop = nn.Dropout(dropout)
        self.use_instruction = use_instruction
        self.hidden_dim = hidden_dim

    def begin(self, tokens: Tensor, mask: Tensor) -> R2RAgentState:
        """Encode ``tokens [B, L]`` (``mask [B, L]``) and start the memory from the final encoding."""
        words = self.text(tokens, mask.sum(dim=1))  # states [B, L, H']
        if not self.use_instruction:
            words = TextFeatures(
                torch.zeros_like(words.states), torch.zeros_like(words.final), words.mask
            )  # [B, L, H'], [B, H']
        h = torch.tanh(self.init_memory(words.final))  # [B, H]
        return R2RAgentState(h, torch.zeros_like(h), words, self.word_attention.precompute(words.states))

    def attend_words(self, h: Tensor, state: R2RAgentState) -> tuple[Tensor, Tensor]:
        """Luong's attentional state ``tanh(W_c [context; h]) [B, H]`` and the word weights ``[B, L]``."""
        context, weights = self.word_attention(
            h, state.words.states, state.projected, state.words.mask
        )  # [B, H'], [B, L]
        return torch.tanh(self.attended(torch.cat([context, h], dim=-1))), weights  # [B, H], [B, L]


class Seq2SeqAgent(nn.Module):
    """Anderson et al. 2018's sequence-to-sequence agent over the low-level action space.

    Args:
        vocab_size: instruction vocabulary size (wired from the data).
        feature_dim: view feature size ``D`` (wired from the feature store).
        embed_dim: word embedding size (paper: 256).
        hidden_dim: encoder and decoder LSTM size (paper: 512).
        action_dim: previous-action embedding size (paper: 32).
        dropout: on the embeddings, the features and the attentional state (paper: 0.5).
        use_instruction / use_vision: the baselines' switches (module docstring).
        pad_id: the padding token id (wired).
    """

    action_space: ClassVar[str] = "low_level"

    def __init__(
        self,
        vocab_size: int,
        feature_dim: int,
        *,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        action_dim: int = 32,
        dropout: float = 0.5,
        use_instruction: bool = True,
        use_vision: bool = True,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.reader = _InstructionReader(
            vocab_size,
            embed_dim=embed_dim,
            text_hidden_dim=hidden_dim,
            bidirectional=False,
            hidden_dim=hidden_dim,
            dropout=dropout,
            use_instruction=use_instruction,
            pad_id=pad_id,
        )
        # ids 0..5 are the actions, 6 the "start" before the first one
        self.action_embedding = nn.Embedding(NUM_LOW_LEVEL_ACTIONS + 1, action_dim)
        self.memory = nn.LSTMCell(action_dim + feature_dim, hidden_dim)
        self.policy = nn.Linear(hidden_dim, NUM_LOW_LEVEL_ACTIONS)
        self.use_vision = use_vision
        self.start_action = NUM_LOW_LEVEL_ACTIONS

    def begin(self, tokens: Tensor, mask: Tensor) -> R2RAgentState:
        return self.reader.begin(tokens, mask)

    def step(self, view: Tensor, previous_action: Tensor, state: R2RAgentState) -> StepOutput:
        """One step from the current view's feature ``view [B, D]`` and ``previous_action [B]`` (long;
        ``start_action`` at the first step): ``logits [B, 6]``."""
        if not self.use_vision:
            view = torch.zeros_like(view)  # [B, D]
        inputs = torch.cat([self.action_embedding(previous_action), self.reader.drop(view)], dim=-1)
        h, c = self.memory(inputs, (state.h, state.c))  # [B, H]
        attended, weights = self.reader.attend_words(self.reader.drop(h), state)  # [B, H], [B, L]
        logits = self.policy(self.reader.drop(attended))  # [B, 6]
        return StepOutput(logits, weights, R2RAgentState(h, c, state.words, state.projected))


class PanoramicFollower(nn.Module):
    """The panoramic follower (Fried et al. 2018; Tan et al. 2019's ``AttnDecoderLSTM``).

    Args:
        vocab_size: instruction vocabulary size (wired from the data).
        feature_dim: view feature size ``D`` (wired from the feature store).
        angle_repeat: the 4 angle values are repeated this many times (EnvDrop: 32, an angle feature of 128)
            so that they weigh against ``D`` view dimensions.
        embed_dim: word embedding size (EnvDrop: 256).
        text_hidden_dim: encoder LSTM size per direction (EnvDrop: 256 x 2 directions).
        hidden_dim: memory size (EnvDrop: 512).
        action_dim: embedding size of the previous move's angle feature (EnvDrop: 64).
        dropout: on the embeddings, the memory and the attentional state (EnvDrop: 0.5).
        feature_dropout: dropout on the view features (EnvDrop's ``featdropout``: 0.3).
        use_instruction / use_vision: the baselines' switches (module docstring).
        pad_id: the padding token id (wired).
    """

    action_space: ClassVar[str] = "panoramic"

    def __init__(
        self,
        vocab_size: int,
        feature_dim: int,
        *,
        angle_repeat: int = 32,
        embed_dim: int = 256,
        text_hidden_dim: int = 256,
        hidden_dim: int = 512,
        action_dim: int = 64,
        dropout: float = 0.5,
        feature_dropout: float = 0.3,
        use_instruction: bool = True,
        use_vision: bool = True,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        if angle_repeat < 1:
            raise ConfigError(f"model.angle_repeat must be >= 1, got {angle_repeat}")
        _check_fraction("feature_dropout", feature_dropout)
        self.reader = _InstructionReader(
            vocab_size,
            embed_dim=embed_dim,
            text_hidden_dim=text_hidden_dim,
            bidirectional=True,
            hidden_dim=hidden_dim,
            dropout=dropout,
            use_instruction=use_instruction,
            pad_id=pad_id,
        )
        self.angle_repeat = angle_repeat
        angle_dim = ANGLE_FEATURES * angle_repeat
        self.option_dim = feature_dim + angle_dim  # a view or a candidate: its feature and its angles
        self.action_embedding = nn.Sequential(nn.Linear(angle_dim, action_dim), nn.Tanh())
        self.view_attention = GeneralAttention(hidden_dim, self.option_dim)
        self.memory = nn.LSTMCell(action_dim + self.option_dim, hidden_dim)
        self.candidate_query = nn.Linear(hidden_dim, self.option_dim, bias=False)
        self.feature_drop = nn.Dropout(feature_dropout)
        self.use_vision = use_vision

    def begin(self, tokens: Tensor, mask: Tensor) -> R2RAgentState:
        return self.reader.begin(tokens, mask)

    def options(self, features: Tensor, angles: Tensor) -> Tensor:
        """Views or candidates ``features [B, N, D]`` with ``angles [B, N, 4]`` -> ``[B, N, D + 4r]``."""
        if not self.use_vision:
            features = torch.zeros_like(features)  # [B, N, D]
        repeated = angles.repeat_interleave(self.angle_repeat, dim=-1)  # [B, N, 4r]
        return torch.cat([self.feature_drop(features), repeated], dim=-1)  # [B, N, D + 4r]

    def step(
        self,
        views: Tensor,
        candidates: Tensor,
        candidate_mask: Tensor,
        previous_angles: Tensor,
        state: R2RAgentState,
    ) -> StepOutput:
        """One step.

        Args:
            views: the 36 views ``[B, 36, D + 4r]`` (:meth:`options`).
            candidates: the navigable neighbours and the stop choice last ``[B, K + 1, D + 4r]`` (the stop
                row all zeros).
            candidate_mask: ``[B, K + 1]`` bool, ``True`` = a real choice.
            previous_angles: the angle feature of the previous move ``[B, 4]`` (zeros at the first step).

        Returns:
            ``logits [B, K + 1]`` (``-inf`` at padding), the word attention ``[B, L]`` and the new state.
        """
        moved = self.action_embedding(previous_angles.repeat_interleave(self.angle_repeat, dim=-1))  # [B, a]
        seen, _ = self.view_attention(self.reader.drop(state.h), views)  # [B, D + 4r]
        h, c = self.memory(torch.cat([self.reader.drop(moved), seen], dim=-1), (state.h, state.c))  # [B, H]
        attended, weights = self.reader.attend_words(self.reader.drop(h), state)  # [B, H], [B, L]
        query = self.candidate_query(self.reader.drop(attended))  # [B, D + 4r]
        logits = (candidates @ query.unsqueeze(-1)).squeeze(-1)  # [B, K + 1]
        logits = logits.masked_fill(~candidate_mask, float("-inf"))  # [B, K + 1]
        return StepOutput(logits, weights, R2RAgentState(h, c, state.words, state.projected))


R2R_AGENTS = Registry("navigation agent (R2R)", {"seq2seq": Seq2SeqAgent, "panoramic": PanoramicFollower})
R2R_WIRED = ("vocab_size", "feature_dim", "pad_id")  # from the data; the rest of a spec is the config's


def build_r2r_agent(spec: Mapping[str, Any], *, vocab_size: int, feature_dim: int, pad_id: int) -> nn.Module:
    """Build the agent of ``spec`` (``{"name": "panoramic", ...}``) with the data's facts wired in."""
    wired = {"vocab_size": vocab_size, "feature_dim": feature_dim, "pad_id": pad_id}
    return build(R2R_AGENTS, spec, path="model", **wired)
