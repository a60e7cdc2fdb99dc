"""``vltk score navigation``: an EvalAI submission scored against R2R references on connectivity files,
through the CLI, on a hand-made house: five viewpoints on a line, 1 m apart (v0 - v1 - v2 - v3 - v4)."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from vltk.cli.main import app

NAMES = ["v0", "v1", "v2", "v3", "v4"]


def _pose(x: float) -> list[float]:
    return [1.0, 0.0, 0.0, x, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]


@pytest.fixture
def house(tmp_path):
    """The connectivity folder, a references file (one episode v0 -> v4, two instructions) and a writer."""
    connectivity = tmp_path / "connectivity"
    connectivity.mkdir()
    items = [
        {
            "image_id": a,
            "pose": _pose(float(i)),
            "included": True,
            "visible": [a != b for b in NAMES],
            "unobstructed": [abs(i - j) == 1 for j in range(len(NAMES))],
            "height": 1.5,
        }
        for i, a in enumerate(NAMES)
    ]
    (connectivity / "line_connectivity.json").write_text(json.dumps(items))
    references = tmp_path / "R2R_val_unseen.json"
    episode = {"distance": 4.0, "scan": "line", "path_id": 7, "path": NAMES, "heading": 0.0,
               "instructions": ["walk to the end", "go all the way"]}  # fmt: skip
    references.write_text(json.dumps([episode]))

    def submit(trajectories: dict[str, list[str]]):
        path = tmp_path / "submit.json"
        rows = [{"instr_id": k, "trajectory": [[v, 0.0, 0.0] for v in vs]} for k, vs in trajectories.items()]
        path.write_text(json.dumps(rows))
        return path

    return connectivity, references, submit


def _score(house, trajectories, *extra):
    connectivity, references, submit = house
    args = [
        "score",
        "navigation",
        "--predictions",
        str(submit(trajectories)),
        "--references",
        str(references),
    ]
    return CliRunner().invoke(app, [*args, "--connectivity", str(connectivity), *extra])


def test_a_submission_is_scored_with_the_r2r_metrics(house, tmp_path):
    # 7_0 follows the path to the goal; 7_1 stops at v2 after turning once in place (2 m short: a success).
    out = tmp_path / "metrics.json"
    result = _score(house, {"7_0": NAMES, "7_1": ["v0", "v1", "v1", "v2"]}, "--output", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["navigation_error"] == pytest.approx((0.0 + 2.0) / 2)
    assert metrics["trajectory_length"] == pytest.approx((4.0 + 2.0) / 2)
    assert metrics["success_rate"] == metrics["oracle_success_rate"] == 1.0
    assert metrics["SPL"] == pytest.approx(1.0)  # l = 4 m >= p for both: S * l / max(l, p) = 1
    # 7_1 collapsed to [v0, v1, v2]: DTW = 0 + 0 + 0 + d(v2, v3) + d(v2, v4) = 3, nDTW = exp(-3 / (5 * 3))
    assert metrics["nDTW"] == pytest.approx((1.0 + math.exp(-3 / 15)) / 2)
    assert metrics["SDTW"] == pytest.approx(metrics["nDTW"])
    assert set(metrics) == {"success_rate", "oracle_success_rate", "SPL", "navigation_error",
                            "trajectory_length", "nDTW", "SDTW", "CLS"}  # fmt: skip


@pytest.mark.parametrize(
    ("trajectories", "message"),
    [
        (
            {"7_0": ["v0", "v2", "v3", "v4"], "7_1": NAMES},
            "7_0, step 1: v0 -> v2 is not an edge of scan line",
        ),
        (
            {"7_0": ["v1", "v2"], "7_1": NAMES},
            "7_0: the trajectory starts at v1, not at the episode's start v0",
        ),
        ({"7_0": NAMES, "7_1": NAMES, "8_0": NAMES}, "instr_id 8_0 is not an instruction of"),
        ({"7_0": NAMES}, "no trajectory for 1 instruction(s)"),
        ({"7_0": ["v0", "v9"], "7_1": NAMES}, "7_0, step 1: viewpoint v9 is not in scan line"),
    ],
)
def test_bad_submissions_get_one_line_and_exit_2(house, trajectories, message):
    result = _score(house, trajectories)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_missing_inputs_are_named(house, tmp_path):
    connectivity, references, submit = house
    predictions = str(submit({"7_0": NAMES, "7_1": NAMES}))
    runner = CliRunner()
    result = runner.invoke(
        app, ["score", "navigation", "--predictions", predictions, "--references", str(references)]
    )
    assert result.exit_code == 2 and "--connectivity DIR" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["score", "navigation", "--predictions", predictions, "--references", str(references)]
    result = runner.invoke(app, [*args, "--connectivity", str(empty)])
    assert result.exit_code == 2 and "no connectivity file for scan line" in result.output
    result = runner.invoke(app, [*args, "--connectivity", str(connectivity), "--split", "val"])
    assert result.exit_code == 2 and "--split" in result.output


def test_the_test_split_has_no_goal_to_score_against(house):
    connectivity, references, submit = house
    episode = json.loads(references.read_text())[0]
    references.write_text(json.dumps([{**episode, "path": ["v0"]}]))
    result = _score(house, {"7_0": NAMES, "7_1": NAMES})
    assert result.exit_code == 2 and "no goal (the test split)" in result.output
