"""Reference points for caption metrics on the built-in `shapes` test split (no model needed).

Scores that need no model, to read the trained models' numbers against:

- *one reference vs the other four*: how much the five references agree (a human-agreement analogue);
- *the canonical description* built from the scene (every object with its size, left to right): what a
  model that sees everything perfectly and always uses the canonical form would score;
- *the most frequent canonical description*, the same for every image: a floor for a model that ignores
  the image.

    python benchmarks/shapes_reference_points.py [--num-images 3000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_json_argument, publish  # noqa: E402

from vltk.data.shape_scenes import ShapeObject
from vltk.metrics import score_captions
from vltk.tasks.captioning.shapes import canonical_description, generate_shapes

METRICS = ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr")


def reference_points(images: list[dict]) -> dict[str, dict[str, float]]:
    refs = {im["imgid"]: [s["raw"] for s in im["sentences"]] for im in images}
    rows: dict[str, dict[str, float]] = {}
    leave_one_out = []
    for k in range(5):
        hyps = {i: r[k] for i, r in refs.items()}
        others = {i: r[:k] + r[k + 1 :] for i, r in refs.items()}
        leave_one_out.append(score_captions(hyps, others))
    rows["one reference vs the other four (mean of 5)"] = {
        m: sum(s[m] for s in leave_one_out) / len(leave_one_out) for m in METRICS
    }
    canon = {
        im["imgid"]: canonical_description([ShapeObject(**o) for o in im["scene"]["objects"]])
        for im in images
    }
    rows["canonical description from the scene"] = score_captions(canon, refs)
    most_common = Counter(canon.values()).most_common(1)[0][0]
    rows[f"one constant caption ('{most_common}')"] = score_captions({i: most_common for i in refs}, refs)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-images", type=int, default=3000)
    add_json_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = json.loads(generate_shapes(Path(tmp), num_images=args.num_images).read_text())
    test = [im for im in data["images"] if im["split"] == "test"]
    rows = reference_points(test)
    lines = ["| reference point | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    lines += [f"| {name} | " + " | ".join(f"{s[m]:.3f}" for m in METRICS) + " |" for name, s in rows.items()]
    text = (
        f"Test split of a {args.num_images}-image shapes set ({len(test)} test images), vltk's scorers "
        "(equal to "
        "pycocoevalcap's; see *Caption metric speed*). Not timed.\n\n" + "\n".join(lines) + "\n"
    )
    publish(text, {"test_images": len(test), "rows": rows}, args.json)


if __name__ == "__main__":
    main()
