"""A plain-numpy min-char-rnn, written from its description (the reference of the char-RNN benchmarks).

Vanilla RNN ``h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)``, ``y_t = W_hy h_t + b_y`` on one-hot characters;
weights ``N(0, 0.01^2)``, zero biases; one stream (batch 1) walked through the text 25 characters at a time,
the hidden state carried from chunk to chunk; the loss of a chunk is the *sum* of its 25 cross-entropies;
backpropagation through the 25 steps by an explicit per-step loop; every gradient clipped to [-5, 5];
Adagrad with learning rate 0.1 (``mem += d*d; p -= lr * d / sqrt(mem + 1e-8)``); the reported loss is
smoothed as ``smooth = 0.999 * smooth + 0.001 * loss``, starting from ``-log(1/V) * 25``.
"""

from __future__ import annotations

import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ReferenceRun:
    params: dict[str, np.ndarray]
    smooth_losses: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def reference_text(max_chars: int, val_fraction: float = 0.05, test_fraction: float = 0.05):
    """The built-in text read the way min-char-rnn reads its ``input.txt``: plain Python, no torch.

    The same text, split and ids as vltk's ``PythonSourceDataModule`` (the running Python's
    ``<stdlib>/*.py`` in name order, the first ``max_chars`` characters, split 90/5/5 by position; ids =
    position in ``["<unk>", *sorted(set(train))]``), so both sides of a comparison train on the same
    symbols; ``tests/test_benchmarks_runner.py`` checks that they agree. Returns ``(train, val, vocab_size)``
    as int64 id arrays.
    """
    parts, total = [], 0
    for path in sorted(p for p in Path(sysconfig.get_paths()["stdlib"]).glob("*.py") if p.is_file()):
        parts.append(path.read_text(encoding="utf-8", errors="replace"))
        total += len(parts[-1])
        if total >= max_chars:
            break
    text = "".join(parts)[:max_chars]
    val_start = round(len(text) * (1 - val_fraction - test_fraction))
    test_start = round(len(text) * (1 - test_fraction))
    symbols = ["<unk>", *sorted(set(text[:val_start]))]
    index = {symbol: i for i, symbol in enumerate(symbols)}

    def ids(part: str) -> np.ndarray:
        return np.array([index.get(c, 0) for c in part], dtype=np.int64)

    return ids(text[:val_start]), ids(text[val_start:test_start]), len(symbols)


def _loss_and_grads(params, inputs, targets, hprev, vocab_size):
    Wxh, Whh, Why, bh, by = (params[k] for k in ("Wxh", "Whh", "Why", "bh", "by"))
    xs, hs, ps = {}, {-1: np.copy(hprev)}, {}
    loss = 0.0
    for t in range(len(inputs)):  # forward, one step at a time
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        ys = Why @ hs[t] + by
        ps[t] = np.exp(ys - ys.max()) / np.sum(np.exp(ys - ys.max()))
        loss += -np.log(ps[t][targets[t], 0])
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):  # explicit backward through time
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        grads["Why"] += dy @ hs[t].T
        grads["by"] += dy
        dh = Why.T @ dy + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        grads["bh"] += dhraw
        grads["Wxh"] += dhraw @ xs[t].T
        grads["Whh"] += dhraw @ hs[t - 1].T
        dhnext = Whh.T @ dhraw
    for g in grads.values():
        np.clip(g, -5, 5, out=g)
    return loss, grads, hs[len(inputs) - 1]


def train_reference(
    data: np.ndarray,
    vocab_size: int,
    updates: int,
    *,
    seed: int = 0,
    hidden: int = 100,
    seq_length: int = 25,
    lr: float = 0.1,
    init: dict[str, np.ndarray] | None = None,
) -> ReferenceRun:
    """``updates`` Adagrad updates of min-char-rnn on the id array ``data``; the wall time of the loop.
    ``init`` starts from given parameters (copied) instead of the seeded ``N(0, 0.01^2)`` draw."""
    rng = np.random.default_rng(seed)
    params = {
        "Wxh": rng.standard_normal((hidden, vocab_size)) * 0.01,
        "Whh": rng.standard_normal((hidden, hidden)) * 0.01,
        "Why": rng.standard_normal((vocab_size, hidden)) * 0.01,
        "bh": np.zeros((hidden, 1)),
        "by": np.zeros((vocab_size, 1)),
    }
    if init is not None:
        params = {k: np.array(v, dtype=np.float64) for k, v in init.items()}
    memory = {k: np.zeros_like(v) for k, v in params.items()}
    run = ReferenceRun(params)
    smooth = -np.log(1.0 / vocab_size) * seq_length
    p = 0
    hprev = np.zeros((hidden, 1))
    start = time.perf_counter()
    for n in range(updates):
        if p + seq_length + 1 >= len(data) or n == 0:
            hprev = np.zeros((hidden, 1))
            p = 0
        inputs = data[p : p + seq_length]
        targets = data[p + 1 : p + seq_length + 1]
        loss, grads, hprev = _loss_and_grads(params, inputs, targets, hprev, vocab_size)
        smooth = smooth * 0.999 + loss * 0.001
        run.losses.append(float(loss))
        run.smooth_losses.append(float(smooth))
        for k in params:
            memory[k] += grads[k] * grads[k]
            params[k] += -lr * grads[k] / np.sqrt(memory[k] + 1e-8)
        p += seq_length
    run.seconds = time.perf_counter() - start
    return run


def load_into_vltk(params: dict[str, np.ndarray], model) -> None:
    """Copy min-char-rnn parameters into a one-hot, one-bias vltk ``RNNLanguageModel`` (cell ``rnn``)."""
    import torch

    rnn = model.rnn.rnn
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(params["Wxh"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(params["Whh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(params["bh"][:, 0]))
        rnn.bias_hh_l0.zero_()
        model.output.weight.copy_(torch.from_numpy(params["Why"]))
        model.output.bias.copy_(torch.from_numpy(params["by"][:, 0]))


def heldout_nll(params: dict[str, np.ndarray], data: np.ndarray) -> float:
    """Mean negative log-likelihood (nats per character) of ``data`` read in one pass, state carried."""
    Wxh, Whh, Why, bh, by = (params[k] for k in ("Wxh", "Whh", "Why", "bh", "by"))
    h = np.zeros((Whh.shape[0], 1))
    total = 0.0
    for t in range(len(data) - 1):
        h = np.tanh(Wxh[:, data[t] : data[t] + 1] + Whh @ h + bh)
        y = (Why @ h + by)[:, 0]
        y = y - y.max()
        total += -(y[data[t + 1]] - np.log(np.exp(y).sum()))
    return total / (len(data) - 1)
