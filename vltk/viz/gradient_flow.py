"""Gradient flow through time: how strongly the loss at the last step still reaches earlier hidden states.

For a window of ``T`` symbols, take the loss at the last step only, ``L_T``, and backpropagate it to every
hidden state: ``g_t = ||dL_T / dh_t||`` for ``t = T .. 1`` (top layer, averaged over the streams of a
batch). In a vanilla (Elman) RNN the backward pass multiplies by ``W_hh^T diag(1 - h^2)`` at every step, so
``g_t`` shrinks geometrically with ``T - t`` -- the vanishing gradient of Bengio, Simard & Frasconi 1994 and
of the CS231n RNN lecture; the LSTM's additive cell path (and the GRU's update gate) keep it alive much longer
(Hochreiter & Schmidhuber 1997). Plotted on a log scale the difference is a slope.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def gradient_norms_through_time(model, inputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """``||dL_T / dh_t||`` for ``t = 1 .. T`` (index 0 is the first step), mean over the batch.

    Args:
        model: an :class:`vltk.tasks.lm.model.RNNLanguageModel` (dropout is switched off).
        inputs: ``[B, T]`` symbol ids; ``targets``: ``[B, T]`` next symbols (only the last column is scored).
    """
    was_training = model.training
    model.eval()
    embedded = model.embed(inputs)  # [B, T, E]
    state = model.init_state(inputs.shape[0], inputs.device)
    hidden: list[torch.Tensor] = []
    with torch.enable_grad():
        for t in range(inputs.shape[1]):
            _, state = model.rnn(embedded[:, t : t + 1], state)
            state[0].retain_grad()  # [L, B, H]
            hidden.append(state[0])
        logits = model.output(state[0][-1])  # [B, V]: the top layer's h_T is the stack's output
        loss = F.cross_entropy(logits, targets[:, -1])
        model.zero_grad(set_to_none=True)
        loss.backward()
    model.train(was_training)
    norms = [h.grad[-1].norm(dim=-1).mean().item() for h in hidden]  # top layer, [B] -> mean
    return np.asarray(norms)


def quick_fit(
    model, ids: torch.Tensor, *, steps: int, batch: int = 16, seq_len: int = 50, lr: float = 3e-3
) -> float:
    """A few Adam updates on random windows of ``ids [N]`` (so the comparison is between trained cells, not
    initialisations); returns the last loss. Plain torch, for diagnostics only."""
    if steps <= 0:
        return float("nan")
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    generator = torch.Generator().manual_seed(0)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        starts = torch.randint(0, ids.numel() - seq_len - 1, (batch,), generator=generator)
        window = torch.stack([ids[s : s + seq_len + 1] for s in starts.tolist()])  # [B, T+1]
        logits, _ = model(window[:, :-1])  # [B, T, V]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    return float(loss.detach())


def save_gradient_flow_plot(curves: dict[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """One line per model: ``||dL_T/dh_t||`` against ``T - t`` (steps back from the scored step), log y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, norms in curves.items():
        back = np.arange(len(norms))[::-1]  # T - t
        ax.semilogy(back, np.maximum(norms, 1e-30), label=name, linewidth=1.6)
    ax.set_xlabel("steps back from the scored step (T - t)")
    ax.set_ylabel("||dL_T / dh_t||  (log scale)")
    ax.set_title(title or "gradient flow through time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
