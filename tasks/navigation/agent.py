"""The instruction-following agent of the BabyAI baselines (Chevalier-Boisvert et al. 2019, BabyAI; Hui et al.
2020, BabyAI 1.1), assembled from vltk's shared parts.

Per step ``t``, with memory ``(h, c)`` of an LSTM across steps (Hochreiter & Schmidhuber 1997):

1. attend over the instruction's words from the memory state (additive attention, Bahdanau et al. 2015):
   ``ctx_t, alpha_t = attn(h_{t-1}, words)``; the words come from a (bi)GRU encoder (Cho et al. 2014);
2. encode the egocentric view with a small CNN (symbolic cell embeddings or RGB pixels) and, optionally,
   condition it on ``ctx_t`` with FiLM blocks (Perez et al. 2018); max-pool the 7x7 cells;
3. update the memory with ``[pooled view, ctx_t, heading embedding]`` and predict one of 7 actions from
   ``[h_t, ctx_t]``.

The memory starts from the instruction's final encoding, so the first step already attends with purpose.
Training runs whole episodes with truncated backprop through time (:meth:`NavigationAgent.forward_episodes`);
rollouts call :meth:`NavigationAgent.step` through :class:`AgentPolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from vltk.attention import AdditiveAttention
from vltk.encoders import RNNTextEncoder
from vltk.errors import ConfigError, unknown_choice_message
from vltk.registry import Registry, build
from vltk.tasks.navigation.babyai.env import NUM_ACTIONS, ObservationKind, check_observation
from vltk.tasks.navigation.babyai.observation_encoder import OBSERVATION_ENCODERS
from vltk.tasks.navigation.film import FiLM, FiLMBlock
from vltk.text import Vocabulary
from vltk.types import TextFeatures


@dataclass
class AgentState:
    """What the agent carries between steps: memory and the encoded instruction.

    Attributes:
        h, c: LSTM memory ``[B, H]``.
        words: the instruction's token states and mask (``[B, T, H']``, ``[B, T]``).
        projected: the attention's key projection of the words ``[B, T, A]`` (computed once per episode).
    """

    h: Tensor
    c: Tensor
    words: TextFeatures
    projected: Tensor


@dataclass
class EpisodeOutput:
    """``logits [B, T, 7]`` and word ``attention [B, T, L]`` of teacher-forced episodes."""

    logits: Tensor
    attention: Tensor


class NavigationAgent(nn.Module):
    """Instruction GRU + attention from memory + CNN (+ FiLM) + LSTM memory + policy head.

    Args:
        vocab_size: instruction vocabulary size (wired from the data).
        observation: ``"symbolic"`` or ``"rgb"`` (wired from the data).
        embed_dim: word embedding size.
        text_hidden_dim: GRU hidden size per direction.
        bidirectional: read the instruction both ways.
        channels: CNN channels ``C``.
        film_blocks: FiLM blocks conditioned on the attended instruction (0: no FiLM, the context is only
            concatenated to the memory input).
        film_condition: what conditions FiLM: ``"attention"`` (the words attended from the memory at this
            step) or ``"instruction"`` (the instruction GRU's final state, as in the BabyAI baselines).
        early_film: also modulate the cell embeddings, *before* the convolutions, by FiLM from the
            instruction's final state, so that the convolutions can pick out the cells whose object matches
            the instruction (colour *and* type). The FiLM blocks after the convolutions scale whole channels
            and could not learn that (docs/navigation.md).
        memory_dim: LSTM memory size ``H``.
        attention_dim: additive attention hidden size ``A``.
        pool: how the 7x7 grid becomes one vector: ``"max"`` over cells (the BabyAI baselines) or
            ``"flatten"`` (a linear layer over all 49 cells, which keeps where things are in the view).
        flatten_dim: output size of the ``"flatten"`` layer (0: ``channels``, a tight bottleneck for views
            with several objects).
        cell_attention_heads: heads of a scaled dot-product attention from the instruction's final state over
            the 49 cells of the (FiLM-conditioned) grid; each head's 49 weights, a map of where the
            instruction's referent is, go into the memory (0: none).
        cell_attention_dim: key/query size per head of that attention.
        direction_dim: heading embedding size (0: the heading is not given).
        dropout: dropout before the policy head.
        pad_id: the instruction padding id.
    """

    def __init__(
        self,
        vocab_size: int,
        observation: ObservationKind = "symbolic",
        *,
        embed_dim: int = 64,
        text_hidden_dim: int = 128,
        bidirectional: bool = False,
        channels: int = 128,
        film_blocks: int = 2,
        film_condition: Literal["attention", "instruction"] = "attention",
        early_film: bool = False,
        memory_dim: int = 256,
        attention_dim: int = 64,
        pool: Literal["max", "flatten"] = "max",
        flatten_dim: int = 0,
        cell_attention_heads: int = 0,
        cell_attention_dim: int = 32,
        direction_dim: int = 16,
        dropout: float = 0.0,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        check_observation(observation)
        self.observation = observation
        self.text = RNNTextEncoder(
            vocab_size,
            embed_dim=embed_dim,
            hidden_dim=text_hidden_dim,
            cell="gru",
            bidirectional=bidirectional,
            pad_id=pad_id,
        )
        words_dim = self.text.out_dim
        self.image = OBSERVATION_ENCODERS[observation](channels=channels)
        self.attention = AdditiveAttention(memory_dim, words_dim, dim=attention_dim)
        self.film = nn.ModuleList(FiLMBlock(channels, words_dim) for _ in range(film_blocks))
        self.early_film = FiLM(channels, words_dim) if early_film else None
        if pool not in ("max", "flatten"):
            raise ConfigError(unknown_choice_message("model.pool", str(pool), ("max", "flatten")))
        self.pool = pool
        if film_condition not in ("attention", "instruction"):
            raise ConfigError(
                unknown_choice_message(
                    "model.film_condition", str(film_condition), ("attention", "instruction")
                )
            )
        self.film_condition = film_condition
        view_dim = (flatten_dim or channels) if pool == "flatten" else channels
        self.flatten = nn.Linear(channels * 49, view_dim) if pool == "flatten" else None
        self.cell_heads, self.cell_dim = cell_attention_heads, cell_attention_dim
        if cell_attention_heads > 0:
            self.cell_keys = nn.Linear(channels, cell_attention_heads * cell_attention_dim)
            self.cell_query = nn.Linear(words_dim, cell_attention_heads * cell_attention_dim)
        self.direction = nn.Embedding(4, direction_dim) if direction_dim > 0 else None
        self.init_memory = nn.Linear(words_dim, memory_dim)
        self.memory = nn.LSTMCell(
            view_dim + words_dim + direction_dim + 49 * cell_attention_heads, memory_dim
        )
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(memory_dim + words_dim, memory_dim),
            nn.Tanh(),
            nn.Linear(memory_dim, NUM_ACTIONS),
        )
        self.memory_dim = memory_dim

    # ------------------------------------------------------------------------------------------ pieces
    def begin(self, instructions: Tensor, instruction_mask: Tensor) -> AgentState:
        """Encode ``instructions [B, L]`` and start the memory."""
        words = self.text(instructions, instruction_mask.sum(dim=1))  # states [B, L, H']
        h = torch.tanh(self.init_memory(words.final))  # [B, H]
        return AgentState(h, torch.zeros_like(h), words, self.attention.precompute(words.states))

    def _step(self, grid: Tensor, directions: Tensor, state: AgentState) -> tuple[Tensor, Tensor, AgentState]:
        """One step from a CNN grid ``[B, C, 7, 7]``: ``(logits [B, 7], word attention [B, L], state)``."""
        context, weights = self.attention(
            state.h, state.words.states, state.projected, state.words.mask
        )  # [B, H'], [B, L]
        cond = context if self.film_condition == "attention" else state.words.final  # [B, H']
        for block in self.film:
            grid = block(grid, cond)  # [B, C, 7, 7]
        if self.flatten is not None:
            pooled = torch.relu(self.flatten(grid.flatten(1)))  # [B, flatten_dim or C]
        else:
            pooled = grid.amax(dim=(2, 3))  # [B, C]
        inputs = [pooled, context]
        if self.cell_heads > 0:
            inputs.append(self._cell_attention(grid, state.words.final))  # [B, 49 * heads]
        if self.direction is not None:
            inputs.append(self.direction(directions))  # [B, Dd]
        h, c = self.memory(torch.cat(inputs, dim=-1), (state.h, state.c))  # [B, H]
        logits = self.head(torch.cat([h, context], dim=-1))  # [B, 7]
        return logits, weights, AgentState(h, c, state.words, state.projected)

    def _cell_attention(self, grid: Tensor, instruction: Tensor) -> Tensor:
        """Where the instruction's referent is in the view: per head, a softmax over the 49 cells of
        ``key(cell) . query(instruction)`` (scaled dot product), flattened to ``[B, 49 * heads]``."""
        batch, heads, dim = grid.shape[0], self.cell_heads, self.cell_dim
        keys = self.cell_keys(grid.flatten(2).transpose(1, 2)).view(batch, -1, heads, dim)  # [B, 49, h, d]
        query = self.cell_query(instruction).view(batch, 1, heads, dim)  # [B, 1, h, d]
        scores = (keys * query).sum(dim=-1) / dim**0.5  # [B, 49, h]
        return torch.softmax(scores, dim=1).transpose(1, 2).flatten(1)  # [B, h * 49]

    def encode_views(self, images: Tensor, instruction: Tensor | None = None) -> Tensor:
        """Views ``uint8 [N, *obs]`` -> CNN grids ``[N, C, 7, 7]``; ``instruction [N, H']`` (the final GRU
        state of each view's episode) is needed with ``early_film``."""
        if self.early_film is None:
            return self.image(images)  # [N, C, 7, 7]
        cells = self.early_film(self.image.embed_cells(images), instruction)  # [N, C, 7, 7]
        return self.image.convs(cells)  # [N, C, 7, 7]

    def step(
        self, images: Tensor, directions: Tensor, state: AgentState
    ) -> tuple[Tensor, Tensor, AgentState]:
        """One step from raw observations ``uint8 [B, *obs]`` and headings ``[B]``."""
        return self._step(self.encode_views(images, state.words.final), directions, state)

    # --------------------------------------------------------------------------------------- training
    def forward_episodes(
        self,
        images: Tensor,
        directions: Tensor,
        instructions: Tensor,
        instruction_mask: Tensor,
        step_mask: Tensor | None = None,
        tbptt_steps: int = 0,
    ) -> EpisodeOutput:
        """Teacher-forced whole episodes.

        Args:
            images: ``uint8 [B, T, *obs]``.
            directions: ``[B, T]`` headings.
            instructions: ``[B, L]`` token ids; ``instruction_mask`` ``[B, L]``.
            step_mask: ``[B, T]`` real steps; padding is not run through the CNN (nor its batch norm).
            tbptt_steps: truncate backprop through time: the memory is detached every this many steps
                (0: backprop through whole episodes).
        """
        batch, steps = directions.shape
        state = self.begin(instructions, instruction_mask)
        final = state.words.final[:, None].expand(-1, steps, -1)  # [B, T, H']
        if step_mask is None:
            grids = self.encode_views(images.flatten(0, 1), final.flatten(0, 1))  # [B*T, C, 7, 7]
        else:
            real = self.encode_views(images[step_mask], final[step_mask])  # [S, C, 7, 7]
            grids = real.new_zeros(batch * steps, *real.shape[1:])  # [B*T, C, 7, 7]
            grids[step_mask.flatten()] = real
        grids = grids.view(batch, steps, *grids.shape[1:])  # [B, T, C, 7, 7]
        logits, attention = [], []
        for t in range(steps):
            if tbptt_steps > 0 and t > 0 and t % tbptt_steps == 0:
                state = AgentState(state.h.detach(), state.c.detach(), state.words, state.projected)
            step_logits, weights, state = self._step(grids[:, t], directions[:, t], state)
            logits.append(step_logits)
            attention.append(weights)
        return EpisodeOutput(
            torch.stack(logits, dim=1), torch.stack(attention, dim=1)
        )  # [B, T, 7], [B, T, L]

    def forward(
        self, images: Tensor, directions: Tensor, instructions: Tensor, instruction_mask: Tensor
    ) -> Tensor:
        """Action logits ``[B, T, 7]`` of whole episodes (inference)."""
        return self.forward_episodes(images, directions, instructions, instruction_mask).logits


class AgentPolicy:
    """A :class:`NavigationAgent` as a greedy rollout policy
    (``vltk.tasks.navigation.babyai.rollout.NavigationPolicy``).

    Args:
        agent: the network.
        vocab: the vocabulary it was trained with (missions are encoded with it).
        device: where to run it.
    """

    def __init__(self, agent: NavigationAgent, vocab: Vocabulary, device: torch.device | str = "cpu") -> None:
        self.agent, self.vocab, self.device = agent, vocab, torch.device(device)

    @torch.no_grad()
    def begin(self, missions: Sequence[str]) -> AgentState:
        ids = self.vocab.encode_batch(list(missions), add_special=False)
        width = max(max(len(row) for row in ids), 1)
        tokens = torch.full((len(ids), width), self.vocab.pad_id, dtype=torch.long)  # [B, L]
        for b, row in enumerate(ids):
            tokens[b, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask = torch.arange(width)[None, :] < torch.tensor([len(r) for r in ids])[:, None]  # [B, L]
        return self.agent.begin(tokens.to(self.device), mask.to(self.device))

    @torch.no_grad()
    def act(
        self, images: np.ndarray, directions: np.ndarray, state: AgentState
    ) -> tuple[Any, Any, AgentState]:
        images_t = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)  # [B, *obs]
        directions_t = torch.from_numpy(directions).long().to(self.device)  # [B]
        logits, weights, state = self.agent.step(images_t, directions_t, state)  # [B, 7], [B, L]
        return logits.argmax(dim=-1).cpu().numpy(), weights.cpu().numpy(), state


NAVIGATION_AGENTS = Registry("navigation agent", {"attention_lstm": NavigationAgent})
WIRED = ("vocab_size", "observation", "pad_id")  # from the data; the rest of an agent's spec is the config's


def build_navigation_agent(
    spec: Mapping[str, Any], *, vocab_size: int, observation: ObservationKind, pad_id: int = 0
) -> NavigationAgent:
    """Build the agent of ``spec`` (``{"name": "attention_lstm", ...}``) with the data's facts wired in."""
    return build(
        NAVIGATION_AGENTS,
        spec,
        path="model",
        vocab_size=vocab_size,
        observation=observation,
        pad_id=pad_id,
    )
