"""Does a trained navigation agent follow its instruction? Held-out imitation accuracy and rollout failures.

    python benchmarks/navigation_diagnostics.py runs/navigation/RUN/checkpoints/best.ckpt
    python benchmarks/navigation_diagnostics.py CKPT --demo-episodes 1000 --episodes 200

Two measurements, printed as tables (``--json PATH`` writes them too; ``navigation_quality.py --diagnose``
runs this on each seed's checkpoint):

1. Per-step imitation accuracy on held-out bot demos (generated here from seed 3,000,000,000, never used for
   training, validation or test), once with each episode's own instruction and once with the instruction
   of another episode of the batch. An agent that follows instructions loses accuracy when they are
   swapped; an agent that ignores them (it walks to *an* object) does not. The per-action accuracy of the
   turns is printed too.
2. Greedy rollouts on the test seeds (from 2,000,000,000): success rate, and of the failures, how many
   ended up facing some object other than the target (a wrong-object failure) at least once.

This is how the GoToLocal plateau at about 65% was diagnosed (BENCHMARKS.md, docs/navigation.md): the
accuracy with swapped instructions was within 1 point of the accuracy with the right ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from vltk.tasks.navigation.agent import AgentPolicy
from vltk.tasks.navigation.babyai.demos import generate_demos
from vltk.tasks.navigation.babyai.env import ACTION_NAMES, BabyAIEnv
from vltk.tasks.navigation.babyai.episodes import DemoEpisodes, collate_episodes, load_demos
from vltk.tasks.runner import load_system

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument  # noqa: E402

HELD_OUT_SEED = 3_000_000_000
TEST_SEED = 2_000_000_000


@torch.no_grad()
def imitation_accuracy(agent, episodes: DemoEpisodes, batch_size: int = 250) -> dict[str, float]:
    """Per-step accuracy with the right instructions and with instructions swapped within each batch."""
    right = swapped = total = 0
    per_action: Counter = Counter()
    per_action_total: Counter = Counter()
    for start in range(0, len(episodes), batch_size):
        batch = collate_episodes([episodes[i] for i in range(start, min(start + batch_size, len(episodes)))])
        targets = batch.actions[batch.step_mask]  # [S]
        for name, instructions, mask in (
            ("right", batch.instructions, batch.instruction_mask),
            ("swapped", batch.instructions.roll(1, 0), batch.instruction_mask.roll(1, 0)),
        ):
            logits = agent.forward_episodes(
                batch.images, batch.directions, instructions, mask, step_mask=batch.step_mask
            ).logits[batch.step_mask]  # [S, 7]
            hits = logits.argmax(dim=-1) == targets  # [S]
            if name == "right":
                right += int(hits.sum())
                for action in range(len(ACTION_NAMES)):
                    chosen = targets == action
                    per_action[action] += int((hits & chosen).sum())
                    per_action_total[action] += int(chosen.sum())
            else:
                swapped += int(hits.sum())
        total += int(targets.numel())
    result = {"accuracy": right / total, "accuracy, instructions swapped": swapped / total}
    for action, count in per_action_total.items():
        if count:
            result[f"accuracy on '{ACTION_NAMES[action]}' ({count} steps)"] = per_action[action] / count
    return result


@torch.no_grad()
def rollout_failures(agent, vocab, level: str, seeds: list[int]) -> dict[str, float]:
    """Success rate and the failures that faced a non-target object (the wrong object) at least once."""
    policy = AgentPolicy(agent, vocab)
    envs = [BabyAIEnv(level) for _ in seeds]
    observations = [env.reset(seed) for env, seed in zip(envs, seeds)]
    state = policy.begin([obs.mission for obs in observations])
    active = np.ones(len(seeds), dtype=bool)
    success = np.zeros(len(seeds), dtype=bool)
    faced_other = np.zeros(len(seeds), dtype=bool)
    for _ in range(max(env.max_steps for env in envs)):
        if not active.any():
            break
        images = np.stack([obs.image for obs in observations])  # [B, 7, 7, 3]
        directions = np.asarray([obs.direction for obs in observations], dtype=np.int64)  # [B]
        actions, _, state = policy.act(images, directions, state)
        for i in np.flatnonzero(active):
            observations[i], reward, done = envs[i].step(int(actions[i]))
            env = envs[i].unwrapped
            cell = env.grid.get(*env.front_pos)
            if cell is not None and cell.type not in ("wall", "door") and not done:
                faced_other[i] = True
            if done:
                active[i], success[i] = False, reward > 0
    failures = int((~success).sum())
    return {
        "success rate": float(success.mean()),
        "failures": failures,
        "failures that faced another object": int((~success & faced_other).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint")
    parser.add_argument("--demo-episodes", type=int, default=1000, help="held-out bot demos to score")
    parser.add_argument("--episodes", type=int, default=200, help="test episodes to play")
    add_json_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    system = load_system(args.checkpoint)
    agent, level = system.model.eval(), system.level
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demos"
        generate_demos(out, level=level, episodes=args.demo_episodes, seed=HELD_OUT_SEED, workers=1)
        accuracy = imitation_accuracy(agent, DemoEpisodes(load_demos(out), system.vocab))
    failures = rollout_failures(agent, system.vocab, level, list(range(TEST_SEED, TEST_SEED + args.episodes)))
    print(f"\n{level}: {args.checkpoint}\n")
    print(f"| held-out demos ({args.demo_episodes} episodes) | value |\n|---|---|")
    for name, value in accuracy.items():
        print(f"| {name} | {value:.4f} |")
    print(f"\n| rollouts ({args.episodes} test episodes) | value |\n|---|---|")
    for name, value in failures.items():
        print(f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |")
    if args.json is not None:
        record = {"level": level, "accuracy": accuracy, "rollouts": failures}
        args.json.write_text(json.dumps({"markdown": "", "data": record}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
