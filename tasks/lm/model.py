"""A recurrent language model: symbols -> stacked RNN (any cell of :mod:`vltk.rnn`) -> next-symbol scores.

With ``embed_dim: null`` the input is the one-hot vector of the symbol, exactly as in Karpathy's
min-char-rnn (``h = tanh(W_xh x + W_hh h + b)``, ``y = W_hy h + b_y``); otherwise a learned embedding
(Zaremba et al. 2014, "Recurrent Neural Network Regularization"). ``init_std`` reproduces min-char-rnn's
``N(0, 0.01^2)`` weights with zero biases; ``None`` keeps torch's defaults.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vltk.registry import Registry
from vltk.rnn import StackedRNN, StackState

logger = logging.getLogger(__name__)


class RNNLanguageModel(nn.Module):
    """Char- or word-level RNN language model.

    Args:
        vocab_size: ``V`` (wired from the data's vocabulary).
        cell: a name in :data:`vltk.rnn.CELLS`: ``rnn`` (Elman), ``lstm``, ``gru``, ``mut1``-``mut3``.
        hidden_dim: ``H`` of every layer.
        num_layers: stacked recurrent layers.
        embed_dim: ``E``, the input embedding size; ``None`` feeds one-hot symbols (min-char-rnn).
        dropout: on the embeddings, between layers and before the output projection.
        fused: run ``nn.RNN``/``nn.LSTM``/``nn.GRU`` where the cell has a fused kernel.
        init_std: initialise every weight from ``N(0, init_std^2)`` and every bias at zero (``None``: torch).
        recurrent_bias: keep torch's second bias ``b_hh`` of the fused cells; ``False`` fixes it at zero, so
            the cell has one bias ``b_h`` as in min-char-rnn (two biases that add up learn twice as fast
            under Adagrad).
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        cell: str = "lstm",
        hidden_dim: int = 256,
        num_layers: int = 1,
        embed_dim: int | None = 64,
        dropout: float = 0.0,
        fused: bool = True,
        init_std: float | None = None,
        recurrent_bias: bool = True,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.embed_dim = embed_dim
        self.embedding = nn.Embedding(vocab_size, embed_dim) if embed_dim is not None else None
        input_dim = embed_dim if embed_dim is not None else vocab_size
        self.rnn = StackedRNN(
            cell,
            input_dim,
            hidden_dim,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            fused=fused,
        )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_dim, vocab_size)
        if init_std is not None:
            for name, parameter in self.named_parameters():
                if "bias" in name:
                    nn.init.zeros_(parameter)
                else:
                    nn.init.normal_(parameter, 0.0, init_std)
        if not recurrent_bias:
            for name, parameter in self.rnn.named_parameters():
                if "bias_hh" in name:
                    nn.init.zeros_(parameter)
                    parameter.requires_grad_(False)

    @property
    def cell(self) -> str:
        return self.rnn.cell

    @property
    def hidden_dim(self) -> int:
        return self.rnn.hidden_dim

    @property
    def num_layers(self) -> int:
        return self.rnn.num_layers

    def embed(self, tokens: Tensor) -> Tensor:
        """``[B, T]`` ids -> ``[B, T, E]`` (or one-hot ``[B, T, V]``) inputs of the recurrent stack."""
        if self.embedding is None:
            return F.one_hot(tokens, self.vocab_size).to(self.output.weight.dtype)  # [B, T, V]
        return self.dropout(self.embedding(tokens))  # [B, T, E]

    def init_state(self, batch: int, device: torch.device | None = None) -> StackState:
        return self.rnn.init_state(batch, device, self.output.weight.dtype)

    def forward(self, tokens: Tensor, state: StackState | None = None) -> tuple[Tensor, StackState]:
        """Scores of the next symbol at every position.

        Args:
            tokens: ``[B, T]`` symbol ids.
            state: the recurrent state carried from the previous chunk (``None``: zeros).

        Returns:
            ``(logits [B, T, V], state)``.
        """
        outputs, state = self.rnn(self.embed(tokens), state)  # [B, T, H]
        return self.output(self.dropout(outputs)), state  # [B, T, V]

    def step(self, tokens: Tensor, state: StackState | None = None) -> tuple[Tensor, StackState]:
        """The decoding step protocol: ``tokens [B]`` -> ``(logprobs [B, V], state)``."""
        logits, state = self(tokens.unsqueeze(1), state)  # [B, 1, V]
        return torch.log_softmax(logits[:, 0].float(), dim=-1), state  # [B, V]

    @torch.no_grad()
    def generate(
        self,
        prime: Tensor,
        length: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Sample ``length`` symbols after ``prime`` (``[P]`` ids, ``P >= 1``) at ``temperature``.

        Returns:
            ``[length]`` sampled ids (the prime is not repeated).
        """
        logits, state = self(prime.unsqueeze(0))  # [1, P, V]
        last = logits[0, -1]  # [V]
        out = []
        for _ in range(length):
            probs = torch.softmax(last.float() / max(temperature, 1e-6), dim=-1)  # [V]
            token = torch.multinomial(probs, 1, generator=generator)  # [1]
            out.append(token)
            logits, state = self(token.view(1, 1), state)  # [1, 1, V]
            last = logits[0, -1]  # [V]
        return torch.cat(out) if out else prime.new_zeros(0)

    def extra_repr(self) -> str:
        return f"vocab={self.vocab_size}, input={'one-hot' if self.embedding is None else self.embed_dim}"


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


LANGUAGE_MODELS = Registry("language model", {"rnn_lm": RNNLanguageModel})
LM_WIRED = ("vocab_size",)  # from the data's vocabulary; the rest of a language model's spec is the config's
