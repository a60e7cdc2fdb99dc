"""Self-critical training steps against cross-entropy steps, and the reward's share of an SCST step, side by
side in one process.

A captioner trained by ``vltk train captioning`` (``--checkpoint``; without one the default config is trained
for ``--epochs`` epochs first, so sampled captions end when a real model ends them) takes whole training steps
(forward, loss, backward, Adam step) of three kinds, interleaved: cross-entropy on a batch of the default size
(64 image-caption pairs), SCST with the greedy baseline and SCST with the mean baseline (``scst.yaml``: 32
images, 5 samples each). The reward's share is the time inside the CIDEr-D reward over the step's time.

    python benchmarks/scst_speed.py [--checkpoint RUN/checkpoints/best.ckpt] [--repeats 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, best_median, interleaved, publish, verdict  # noqa: E402

from vltk.metrics.cider_reward import CiderDReward  # noqa: E402
from vltk.tasks.captioning.scst import SelfCriticalConfig, reward_references, self_critical_step  # noqa: E402
from vltk.tasks.runner import build_datamodule, load_system, load_task_config, task_entry, train  # noqa: E402


def first_batch(datamodule, per_image: bool):
    datamodule.train_items = "images" if per_image else "captions"
    return next(iter(datamodule.loader("train", training=True)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    add_json_argument(parser)
    args = parser.parse_args()
    torch.manual_seed(0)
    checkpoint, source = args.checkpoint, f"from `{args.checkpoint}`"
    if checkpoint is None:
        work = Path(tempfile.mkdtemp(prefix="vltk-scst-speed-"))
        cfg = load_task_config("captioning", None, [f"trainer.max_epochs={args.epochs}"])
        checkpoint = train(cfg, run_dir=work).run_dir / "checkpoints" / "best.ckpt"
        source = f"trained here for {args.epochs} epochs (default config)"
    system = load_system(checkpoint)
    scst_cfg = load_task_config("captioning", "scst", [f"model.init_from={checkpoint}"])
    cross_entropy_cfg = load_task_config("captioning", None, [])
    datamodule = build_datamodule(task_entry("captioning"), scst_cfg)
    system.attach_data(datamodule)
    datamodule.prepare_data()
    datamodule.setup("fit")
    scst_batch = first_batch(datamodule, per_image=True)  # 32 images
    ce_batch_size = cross_entropy_cfg.data["batch_size"]
    datamodule.options = dataclasses.replace(datamodule.options, batch_size=ce_batch_size)
    ce_batch = first_batch(datamodule, per_image=False)  # 64 image-caption pairs
    max_length = scst_cfg.scst.max_length
    reward = CiderDReward(reward_references(datamodule.records("train"), system.vocab, max_length),
                          vocab_size=len(system.vocab))  # fmt: skip
    system.train()
    optimizer = torch.optim.Adam(system.parameters(), lr=0.0)  # lr 0: every repeat times the same model
    reward_seconds: dict[str, list[float]] = {"scst greedy": [], "scst mean": []}

    def cross_entropy() -> None:
        optimizer.zero_grad()
        system._loss(ce_batch, training=True)[0].backward()
        optimizer.step()

    def scst(baseline: str):
        config = SelfCriticalConfig(
            baseline=baseline, num_samples=scst_cfg.scst.num_samples, max_length=max_length
        )

        def step() -> None:
            optimizer.zero_grad()
            ids = scst_batch.image_ids.tolist()
            result = self_critical_step(system.model, scst_batch.images, ids, reward, config)
            result.loss.backward()
            optimizer.step()
            reward_seconds[f"scst {baseline}"].append(result.reward_seconds)

        return step

    arms = {"cross-entropy": cross_entropy, "scst greedy": scst("greedy"), "scst mean": scst("mean")}
    times = interleaved(arms, args.repeats, warmup=2)
    for name in reward_seconds:
        reward_seconds[name] = reward_seconds[name][-args.repeats :]
    stats = {name: best_median(t) for name, t in times.items()}
    rows = [
        "| step | batch | median step (ms) | steps/s | images/s | reward share of the step (median) |",
        "|---|---|---|---|---|---|",
    ]
    sizes = {"cross-entropy": (len(ce_batch), f"{len(ce_batch)} image-caption pairs")}
    for name in reward_seconds:
        sizes[name] = (len(scst_batch), f"{len(scst_batch)} images x {scst_cfg.scst.num_samples} samples")
    shares = {}
    for name, stat in stats.items():
        share = "-"
        if name in reward_seconds:
            ratios = sorted(r / t for r, t in zip(reward_seconds[name], times[name], strict=True))
            shares[name] = ratios[len(ratios) // 2]
            share = f"{shares[name]:.3f}"
        images, label = sizes[name]
        rows.append(f"| {name} | {label} | {stat['median'] * 1000:.0f} | {1 / stat['median']:.2f} | "
                    f"{images / stat['median']:.0f} | {share} |")  # fmt: skip
    ce_rate = 1 / stats["cross-entropy"]["median"]
    lines = [
        f"Model {source}; {args.repeats} interleaved repeats after 2 warm-up rounds; Adam with lr 0 so every "
        "repeat times the same model. Step: forward, loss, backward, optimiser step.",
        "\n".join(rows),
        "Targets and ratios:",
        "\n".join([
            f"- SCST steps per second over cross-entropy steps per second: greedy "
            f"{1 / stats['scst greedy']['median'] / ce_rate:.2f}, mean {1 / stats['scst mean']['median'] / ce_rate:.2f}.",  # noqa: E501
            f"- the reward at most a quarter of an SCST step: greedy {verdict(shares['scst greedy'], 0.25, higher=False)}; "  # noqa: E501
            f"mean {verdict(shares['scst mean'], 0.25, higher=False)}.",
        ]),
    ]  # fmt: skip
    publish("\n\n".join(lines), {"times": times, "reward_seconds": reward_seconds}, args.json)


if __name__ == "__main__":
    main()
