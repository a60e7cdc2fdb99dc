"""Fingerprint a short, fixed-seed default run of every task, to show that a refactor changed nothing.

``python tools/behaviour_fingerprint.py --out before.json`` trains each task's *default* config (the
shipped ``configs/<task>/default.yaml``: its data, model and optimiser) for a few batches with seed 0 on one
thread, tests it, and records the test metrics and a SHA-256 of every weight tensor of the checkpoint.
``--compare before.json`` re-runs and reports any metric or weight that differs; with ``--evaluate-old`` it
also evaluates the *earlier* run's checkpoints with the current code (old checkpoints must still load and
score the same). The exit status is 1 when anything differs.

The overrides (``SHORT_RUNS``) only bound the run length and the data sizes so that the five runs take a few
minutes on 2 CPU cores; everything else is the default config. The dataset cache is ``--cache`` (reused
between the two sides, so both read the same generated files).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

VLTK = str(Path(sys.executable).parent / "vltk")  # the console script of the interpreter running this

SHORT_TRAINER = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=12",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=3",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]
SHORT_RUNS: dict[str, list[str]] = {
    "captioning": ["data.num_images=300", "metrics.meteor=false", *SHORT_TRAINER],
    "vqa": [*SHORT_TRAINER],
    "dialog": ["data.num_dialogs=300", *SHORT_TRAINER],
    "navigation": [
        "data.episodes=300",
        "data.val_episodes=10",
        "data.test_episodes=20",
        "data.workers=1",
        "data.progress=false",
        *SHORT_TRAINER,
    ],
    "lm": ["data.max_chars=200000", "trainer.val_check_interval=null", *SHORT_TRAINER],
}
# Navigation's val/test splits are rollouts over fresh episodes: batch limits do not apply to them.


def weights_fingerprint(checkpoint: Path) -> dict[str, str]:
    """``{parameter name: sha256 of its dtype, shape and bytes}`` for a Lightning checkpoint's state_dict."""
    import torch

    payload = torch.load(checkpoint, map_location="cpu", weights_only=False)
    digests = {}
    for name, tensor in sorted(payload["state_dict"].items()):
        value = tensor.detach().contiguous().cpu()
        digest = hashlib.sha256(f"{value.dtype}{tuple(value.shape)}".encode())
        digest.update(value.view(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
        digests[name] = digest.hexdigest()
    return digests


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "VLTK_CACHE": str(cache)}


def run_task(task: str, run_dir: Path, cache: Path) -> dict:
    args = [VLTK, "train", task, "--seed", "0", "--run-dir", str(run_dir)]
    args += [arg for value in SHORT_RUNS[task] for arg in ("--set", value)]
    done = subprocess.run(args, env=_env(cache), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{task}: `vltk train` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    return {
        "command": " ".join(args[1:]),
        "metrics": metrics,
        "weights": weights_fingerprint(run_dir / "checkpoints" / "last.ckpt"),
        "best_checkpoint": str(run_dir / "checkpoints" / "best.ckpt"),
    }


def evaluate_old(task: str, record: dict, cache: Path, scratch: Path) -> dict[str, float]:
    """Test metrics of an earlier run's best checkpoint, computed by the current code."""
    out = scratch / f"{task}_old_eval.json"
    limits = [
        v for v in SHORT_RUNS[task] if v.startswith(("trainer.limit_test", "trainer.enable", "data.test"))
    ]
    args = [VLTK, "evaluate", record["best_checkpoint"], "--split", "test"]
    args += ["--output", str(out)] + [arg for value in limits for arg in ("--set", value)]
    done = subprocess.run(args, env=_env(cache), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{task}: `vltk evaluate` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())["metrics"]


def differences(before: dict, after: dict) -> list[str]:
    found = []
    for name in sorted(set(before["metrics"]) | set(after["metrics"])):
        if before["metrics"].get(name) != after["metrics"].get(name):
            found.append(f"metric {name}: {before['metrics'].get(name)} -> {after['metrics'].get(name)}")
    changed = [
        n
        for n in set(before["weights"]) | set(after["weights"])
        if before["weights"].get(n) != after["weights"].get(n)
    ]
    if changed:
        found.append(f"{len(changed)} weight tensors differ, e.g. {sorted(changed)[:5]}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="write the fingerprints here (JSON)")
    parser.add_argument("--compare", type=Path, help="an earlier --out file to compare with")
    parser.add_argument("--evaluate-old", action="store_true", help="also evaluate the earlier checkpoints")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/vltk-fingerprint-cache"))
    parser.add_argument("--runs", type=Path, default=None, help="run directories (default: next to --out)")
    parser.add_argument("--only", nargs="*", default=list(SHORT_RUNS), choices=list(SHORT_RUNS))
    args = parser.parse_args()
    runs = args.runs or args.out.with_suffix("")
    records = {}
    for task in args.only:
        print(f"{task}: training", flush=True)
        records[task] = run_task(task, runs / task, args.cache)
        print(f"{task}: {records[task]['metrics']}", flush=True)
    args.out.write_text(json.dumps(records, indent=1))
    if args.compare is None:
        return 0
    earlier = json.loads(args.compare.read_text())
    status = 0
    for task in args.only:
        found = differences(earlier[task], records[task])
        if args.evaluate_old:
            old = evaluate_old(task, earlier[task], args.cache, runs)
            found += [
                f"old checkpoint, metric {k}: {earlier[task]['metrics'].get(k)} -> {old.get(k)}"
                for k in sorted(set(old) | set(earlier[task]["metrics"]))
                if old.get(k) != earlier[task]["metrics"].get(k)
            ]
        print(f"{task}: {'same metrics and weights' if not found else 'DIFFERS'}")
        for line in found:
            print(f"  {line}")
        status |= bool(found)
    return status


if __name__ == "__main__":
    sys.exit(main())
