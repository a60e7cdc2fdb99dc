"""Self-critical sequence training: Rennie, Marcheret, Mroueh, Ross and Goel 2017, "Self-critical Sequence
Training for Image Captioning" (CVPR), with the mean-of-samples baseline of Luo 2020, "A Better Variant of
Self-Critical Sequence Training" (arXiv:2003.09971).

REINFORCE with a baseline (Rennie et al., eq. 6-9): for each image, ``K`` captions ``w^s`` are sampled from
the model (dropout on, as in training) and scored with CIDEr-D against the image's training references
(:class:`vltk.metrics.cider_reward.CiderDReward`, document frequencies of the training corpus); the loss is

    ``-(r(w^s) - b) * log p(w^s)``, summed over the sampled words and divided by their number,

where ``log p(w^s)`` sums the log-probabilities of the sampled words, ``<end>`` included when it was sampled
(ruotianluo/self-critical.pytorch ``captioning/modules/losses.py`` ``RewardCriterion``: ``-logprob * reward *
mask``, summed and divided by the mask's sum). The baseline ``b`` is

* ``greedy`` (Rennie et al.): the reward of the model's own greedy caption at test time (eval mode, no
  gradient), one per image;
* ``mean`` (Luo 2020; ``new_self_critical`` in self-critical.pytorch): the mean reward of the image's *other*
  ``K - 1`` samples, which needs no extra decoding.

Each rank scores its own samples, so the loss needs no communication beyond DDP's gradient all-reduce.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from vltk.decoding import DecodeResult, sample
from vltk.errors import ConfigError
from vltk.metrics.cider_reward import CiderDReward
from vltk.tasks.captioning.batch import truncate_caption
from vltk.tasks.captioning.karpathy import CaptionRecord
from vltk.tasks.captioning.model import Captioner
from vltk.text import Vocabulary

BASELINES = ("greedy", "mean")


@dataclass
class SelfCriticalConfig:
    """The ``scst:`` section of a captioning config: the training objective after cross-entropy.

    Attributes:
        enabled: train with self-critical sequence training instead of cross-entropy (start from a
            cross-entropy model: ``model.init_from``). Training batches then hold one item per image.
        baseline: ``greedy`` (Rennie et al. 2017: the reward of the greedy caption) or ``mean`` (Luo 2020:
            the mean reward of the image's other samples).
        num_samples: ``K``, captions sampled per image and step (``mean`` needs at least 2).
        max_length: the most words of a sampled (and of the greedy) caption.
        temperature: the sampling temperature (1: the model's distribution, as in both papers).
    """

    enabled: bool = False
    baseline: Literal["greedy", "mean"] = "greedy"
    num_samples: int = 5
    max_length: int = 16
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise ConfigError(f"scst.baseline must be one of {', '.join(BASELINES)}, got '{self.baseline}'")
        if self.num_samples < 1:
            raise ConfigError(f"scst.num_samples must be >= 1, got {self.num_samples}")
        if self.baseline == "mean" and self.num_samples < 2:
            raise ConfigError(
                "scst.baseline 'mean' averages the other samples: scst.num_samples must be >= 2"
            )
        if self.max_length < 1:
            raise ConfigError(f"scst.max_length must be >= 1, got {self.max_length}")
        if not self.temperature > 0:
            raise ConfigError(f"scst.temperature must be > 0, got {self.temperature}")


def reward_references(
    records: Sequence[CaptionRecord], vocab: Vocabulary, max_length: int
) -> dict[int, list[list[int]]]:
    """Per training image, its references as the token ids the model is trained on (``<unk>`` for rare
    words, cut to ``max_length`` words), ``<start>`` dropped and ``<end>`` kept last."""
    references: dict[int, list[list[int]]] = {}
    for record in records:
        encoded = vocab.encode_batch(record.tokens, add_special=True)
        references[record.image_id] = [truncate_caption(ids, max_length, vocab.end_id)[1:] for ids in encoded]
    return references


def reward_tokens(result: DecodeResult, end_id: int, max_length: int) -> list[list[int]]:
    """The decoded captions as the reward sees them: their words, then ``<end>`` when it was generated
    (a caption that ran to ``max_length`` words has none; self-critical.pytorch's ``array_to_str``)."""
    captions = result.to_lists()
    return [words + [end_id] if len(words) < max_length else words for words in captions]


@dataclass
class SelfCriticalStep:
    """The loss of one SCST step and what is logged about it.

    Attributes:
        loss: the scalar to minimise.
        reward: the mean CIDEr-D of the sampled captions.
        baseline: the mean baseline reward.
        reward_seconds: wall time spent computing rewards in this step.
    """

    loss: Tensor
    reward: float
    baseline: float
    reward_seconds: float


def self_critical_step(
    model: Captioner,
    images: Tensor,
    image_ids: Sequence[int],
    reward: CiderDReward,
    config: SelfCriticalConfig,
) -> SelfCriticalStep:
    """One self-critical loss on a batch of images (the model in training mode; it is left so).

    Args:
        model: the captioner being trained.
        images: ``[B, 3, H, W]`` (or cached features), one row per image.
        image_ids: ``[B]`` the training image ids (rows of ``reward``).
        reward: CIDEr-D against the training references.
        config: the ``scst:`` section.
    """
    decoder, k, max_length = model.decoder, config.num_samples, config.max_length
    features = model.encode(images)  # grid [B, N, D]
    batch_size = features.pooled.shape[0]
    state = decoder.init_state(features).expand(k)  # B*K rows, the K samples of an image consecutive
    sampled = sample(
        decoder.step,
        state,
        batch_size=batch_size * k,
        bos_id=model.start_id,
        eos_id=model.end_id,
        pad_id=model.pad_id,
        max_length=max_length,
        temperature=config.temperature,
    )  # tokens [B*K, L], scores [B*K] with autograd
    sample_ids = np.repeat(np.asarray(image_ids, dtype=np.int64), k)  # [B*K]
    started = time.perf_counter()
    rewards = reward(sample_ids, reward_tokens(sampled, model.end_id, max_length)).reshape(batch_size, k)
    reward_seconds = time.perf_counter() - started
    if config.baseline == "mean":
        baseline = (rewards.sum(axis=1, keepdims=True) - rewards) / (k - 1)  # [B, K] the others' mean
    else:
        baseline, seconds = greedy_rewards(model, images, image_ids, reward, max_length)  # [B]
        baseline = np.broadcast_to(baseline[:, None], rewards.shape)  # [B, K]
        reward_seconds += seconds
    advantage = torch.as_tensor(rewards - baseline, dtype=sampled.scores.dtype, device=sampled.scores.device)
    ended = sampled.lengths < max_length  # [B*K] rows whose <end> was sampled (and scored)
    num_words = (sampled.lengths + ended.long()).sum().clamp(min=1)  # the sampled tokens with a log-prob
    loss = -(advantage.reshape(-1) * sampled.scores).sum() / num_words
    return SelfCriticalStep(loss, float(rewards.mean()), float(baseline.mean()), reward_seconds)


def greedy_rewards(
    model: Captioner, images: Tensor, image_ids: Sequence[int], reward: CiderDReward, max_length: int
) -> tuple[np.ndarray, float]:
    """``([B] reward of each image's greedy caption, seconds spent scoring)``: the test-time caption of
    Rennie et al.'s baseline, decoded in eval mode without gradient (the model's mode is restored)."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            greedy = model.generate(model.encode(images), method="greedy", max_length=max_length)
    finally:
        model.train(training)
    started = time.perf_counter()
    scores = reward(np.asarray(image_ids, dtype=np.int64), reward_tokens(greedy, model.end_id, max_length))
    return scores, time.perf_counter() - started
