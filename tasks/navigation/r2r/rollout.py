"""Episodes of an R2R agent in the graph environment, for training and for evaluation.

One function per action space runs a batch of episodes to the end (every episode stopped, or ``max_steps``
moves made) and returns the imitation loss and what happened. ``feedback`` says which action is *taken* at
each step; the loss is always the cross-entropy with the shortest-path teacher's action in the state the
agent is in (Anderson et al. 2018, section 5.1):

* ``teacher``: take the teacher's action (teacher forcing);
* ``student``: sample the action from the agent's distribution (student forcing, Anderson et al. 2018;
  the follower of Fried et al. 2018 is trained so);
* ``argmax``: take the most likely action (greedy decoding: evaluation, with no loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vltk.errors import ConfigError, unknown_choice_message
from vltk.tasks.navigation.r2r.agents import PanoramicFollower, R2RAgentState, Seq2SeqAgent
from vltk.tasks.navigation.r2r.env import LOW_LEVEL_ACTIONS, R2REnv

Feedback = Literal["teacher", "student", "argmax"]
FEEDBACKS = ("teacher", "student", "argmax")


def check_feedback(feedback: str) -> str:
    if feedback not in FEEDBACKS:
        raise ConfigError(unknown_choice_message("loss.feedback", feedback, FEEDBACKS))
    return feedback


@dataclass
class Rollout:
    """A finished batch of episodes.

    Attributes:
        loss: mean cross-entropy with the teacher over every step an episode was still running (a zero
            tensor when ``teacher_loss`` was off).
        steps: how many agent decisions the loss averages.
        accuracy: the share of those decisions that agreed with the teacher.
        attention: per episode, per step, the word weights ``[L]`` (``record=True`` only).
    """

    loss: Tensor
    steps: int
    accuracy: float
    attention: list[list[np.ndarray]] = field(default_factory=list)


def _choose(logits: Tensor, teacher: Tensor, feedback: str) -> Tensor:
    """The action taken under ``feedback``: ``[B]`` long."""
    if feedback == "teacher":
        return teacher
    if feedback == "student":
        return torch.distributions.Categorical(logits=logits).sample()
    return logits.argmax(dim=-1)


class _LossTally:
    """Sums the step losses and the agreement with the teacher over running episodes."""

    def __init__(self, device: torch.device) -> None:
        self.total = torch.zeros((), device=device)
        self.steps = 0
        self.agreed = 0

    def add(self, logits: Tensor, teacher: Tensor, running: Tensor) -> None:
        if not bool(running.any()):
            return
        self.total = self.total + F.cross_entropy(logits[running], teacher[running], reduction="sum")
        self.steps += int(running.sum())
        self.agreed += int((logits[running].argmax(dim=-1) == teacher[running]).sum())

    def result(self, attention: list[list[np.ndarray]]) -> Rollout:
        mean = self.total / max(self.steps, 1)
        return Rollout(mean, self.steps, self.agreed / max(self.steps, 1), attention)


def _record(attention: list[list[np.ndarray]], weights: Tensor, running: np.ndarray, lengths: Tensor) -> None:
    rows = weights.detach().float().cpu().numpy()  # [B, L]
    for b in np.flatnonzero(running):
        attention[b].append(rows[b, : int(lengths[b])].copy())


def _move_angles(candidate_angles: Tensor, columns: np.ndarray, stopped: np.ndarray) -> Tensor:
    """The angle feature ``[B, 4]`` of each episode's move (zeros where it stopped)."""
    batch = candidate_angles.shape[0]
    if candidate_angles.shape[1] == 0:
        return candidate_angles.new_zeros(batch, 4)
    rows = torch.arange(batch, device=candidate_angles.device)
    moved = candidate_angles[rows, torch.from_numpy(columns).to(candidate_angles.device)]  # [B, 4]
    return moved.masked_fill(torch.from_numpy(stopped).to(moved.device)[:, None], 0.0)


def _panoramic_inputs(agent: PanoramicFollower, obs, device: torch.device) -> tuple[Tensor, ...]:
    """The follower's inputs from an observation: the 36 views ``[B, 36, D + 4r]``, the candidates with
    the stop row last ``[B, K + 1, D + 4r]``, their mask ``[B, K + 1]`` and their angles ``[B, K, 4]``."""
    views = torch.from_numpy(obs.views).to(device)  # [B, 36, D]
    batch, dim = views.shape[0], views.shape[-1]
    view_options = agent.options(views, torch.from_numpy(obs.view_angles).to(device))  # [B, 36, D + 4r]
    candidate_views = torch.from_numpy(obs.candidate_views).to(device)  # [B, K]
    picked = views.gather(1, candidate_views[:, :, None].expand(-1, -1, dim))  # [B, K, D]
    candidate_angles = torch.from_numpy(obs.candidate_angles).to(device)  # [B, K, 4]
    options = agent.options(picked, candidate_angles)  # [B, K, D + 4r]
    options = torch.cat([options, options.new_zeros(batch, 1, options.shape[-1])], dim=1)  # [B, K + 1, .]
    real = torch.from_numpy(obs.candidate_mask).to(device)  # [B, K]
    choice_mask = torch.cat([real, real.new_ones(batch, 1)], dim=1)  # [B, K + 1]
    return view_options, options, choice_mask, candidate_angles


def check_avoid_revisits(avoid_revisits: bool, action_space: str, agent: str) -> None:
    """A ConfigError when ``avoid_revisits`` is asked of an agent whose actions are not viewpoint choices."""
    if avoid_revisits and action_space != "panoramic":
        raise ConfigError(
            f"avoid_revisits: '{agent}' acts in the low-level action space, which has no viewpoint choice "
            "to mask; it is for panoramic agents only (--set avoid_revisits=false)"
        )


def mask_visited(choice_mask: Tensor, candidates: list[list[str]], visited: list[set[str]]) -> Tensor:
    """``choice_mask [B, K + 1]`` with the candidates already visited switched off (the stop column stays).

    The cycle avoidance of Tan et al. 2019's submission mode (airsplay/R2R-EnvDrop ``r2r_src/agent.py``,
    ``rollout`` under ``args.submit``: a candidate whose viewpoint is in the episode's ``visited`` set is
    masked before the choice); an episode whose neighbours were all visited can only stop.
    """
    seen = np.zeros(tuple(choice_mask.shape), dtype=bool)  # [B, K + 1]
    for b, (names, done) in enumerate(zip(candidates, visited)):
        seen[b, : len(names)] = [name in done for name in names]
    return choice_mask & ~torch.from_numpy(seen).to(choice_mask.device)  # [B, K + 1]


def panoramic_rollout(
    agent: PanoramicFollower,
    env: R2REnv,
    tokens: Tensor,
    mask: Tensor,
    *,
    feedback: str,
    max_steps: int,
    teacher_loss: bool = True,
    record: bool = False,
    avoid_revisits: bool = False,
) -> Rollout:
    """Run the episodes ``env`` was reset to with the panoramic action space (choose a neighbour or stop).

    Args:
        agent: the follower.
        env: an :class:`~vltk.tasks.navigation.r2r.env.R2REnv` after ``reset``.
        tokens, mask: the instructions ``[B, L]`` (on the agent's device).
        feedback: ``teacher``, ``student`` or ``argmax`` (module docstring).
        max_steps: the environment's ``max_steps`` (an episode still running after that many moves ends
            where it is); bounds the loop.
        teacher_loss: compute the imitation loss (off for evaluation).
        record: keep each step's word attention.
        avoid_revisits: never move to a viewpoint the episode has already been at (:func:`mask_visited`).
    """
    device = tokens.device
    state: R2RAgentState = agent.begin(tokens, mask)
    batch = tokens.shape[0]
    previous = torch.zeros(batch, 4, device=device)  # [B, 4] angle feature of the last move
    tally = _LossTally(device)
    attention: list[list[np.ndarray]] = [[] for _ in range(batch)]
    lengths = mask.sum(dim=1)
    visited: list[set[str]] = [set() for _ in range(batch)]
    for _ in range(max_steps + 1):  # the env ends an episode after max_steps moves; +1 for the last stop
        obs = env.observe()
        running = ~obs.done  # [B] numpy bool
        if not running.any():
            break
        view_options, options, choice_mask, candidate_angles = _panoramic_inputs(agent, obs, device)
        if avoid_revisits:
            for seen, here in zip(visited, env.viewpoints):
                seen.add(here)
            choice_mask = mask_visited(choice_mask, obs.candidates, visited)  # [B, K + 1]
        out = agent.step(view_options, options, choice_mask, previous, state)
        state = out.state
        stop_index = obs.candidate_mask.shape[1]  # K: the stop choice's column
        counts = np.array([len(c) for c in obs.candidates])  # [B] real candidates per episode
        needed = teacher_loss or feedback == "teacher"
        teacher_np = env.teacher_panoramic() if needed else np.zeros(batch, dtype=np.int64)
        teacher_np = np.where(teacher_np >= counts, stop_index, teacher_np)  # the env's stop -> column K
        teacher = torch.from_numpy(teacher_np.astype(np.int64)).to(device)  # [B]
        running_t = torch.from_numpy(running).to(device)
        if teacher_loss:
            tally.add(out.logits, teacher, running_t)
        if record:
            _record(attention, out.attention, running, lengths)
        taken = _choose(out.logits.detach(), teacher, feedback).cpu().numpy()  # [B] column of the choice
        stopped = taken >= counts  # column K, or a padded column a sampled choice cannot reach
        env.step_panoramic(np.where(stopped, counts, taken))  # the env's stop index is len(candidates)
        previous = _move_angles(candidate_angles, np.where(stopped, 0, taken), stopped)  # [B, 4]
    return tally.result(attention)


def low_level_rollout(
    agent: Seq2SeqAgent,
    env: R2REnv,
    tokens: Tensor,
    mask: Tensor,
    *,
    feedback: str,
    max_steps: int,
    teacher_loss: bool = True,
    record: bool = False,
) -> Rollout:
    """Run the episodes ``env`` was reset to with the low-level action space of Anderson et al. 2018
    (left, right, up, down, forward, stop); ``forward`` is masked where no neighbour is in view, as the
    paper's agent does. Arguments as :func:`panoramic_rollout`."""
    forward = LOW_LEVEL_ACTIONS.index("forward")
    device = tokens.device
    state = agent.begin(tokens, mask)
    batch = tokens.shape[0]
    previous = torch.full((batch,), agent.start_action, dtype=torch.long, device=device)  # [B]
    tally = _LossTally(device)
    attention: list[list[np.ndarray]] = [[] for _ in range(batch)]
    lengths = mask.sum(dim=1)
    for _ in range(max_steps + 1):
        obs = env.observe_low_level()
        running = ~env.done
        if not running.any():
            break
        view = torch.from_numpy(obs.view).to(device)  # [B, D]
        out = agent.step(view, previous, state)
        state = out.state
        blocked = torch.from_numpy(~obs.forward_possible).to(device)  # [B]
        logits = out.logits.clone()
        logits[:, forward] = logits[:, forward].masked_fill(blocked, float("-inf"))  # [B, 6]
        needed = teacher_loss or feedback == "teacher"
        teacher_np = env.teacher_low_level() if needed else np.zeros(batch, dtype=np.int64)
        teacher = torch.from_numpy(np.asarray(teacher_np, dtype=np.int64)).to(device)  # [B]
        running_t = torch.from_numpy(running).to(device)
        if teacher_loss:
            tally.add(logits, teacher, running_t)
        if record:
            _record(attention, out.attention, running, lengths)
        taken = _choose(logits.detach(), teacher, feedback)  # [B]
        env.step_low_level(taken.cpu().numpy())
        previous = taken
    return tally.result(attention)


def run_episodes(agent, env: R2REnv, tokens: Tensor, mask: Tensor, **options) -> Rollout:
    """The rollout of ``agent``'s action space (``agent.action_space``); ``avoid_revisits`` is the panoramic
    agents' only."""
    if agent.action_space == "panoramic":
        return panoramic_rollout(agent, env, tokens, mask, **options)
    check_avoid_revisits(options.pop("avoid_revisits", False), agent.action_space, type(agent).__name__)
    return low_level_rollout(agent, env, tokens, mask, **options)
