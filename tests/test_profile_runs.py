"""benchmarks/profile_runs.py: its clock charges every moment to one bucket (nested sections subtracted,
network parts inside validation counted as validation), and its instrumentation of a real tiny captioning
run fills every bucket that run has, with buckets that sum to the time an outside timer measured."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_CAPTIONING

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def profile_runs():
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("bench_profile_runs", BENCHMARKS / "profile_runs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_clock_subtracts_nested_sections_and_absorbs_parts_run_by_validation(profile_runs):
    m = profile_runs
    now = {"t": 0.0}
    clock = m.BucketClock(m.OTHER, now=lambda: now["t"])
    script = [  # (time, what happens then)
        (1, lambda: clock.enter(m.OPTIMISER)),
        (2, lambda: clock.enter(m.LOSS_FORWARD)),
        (4, lambda: clock.enter(m.ENCODER_FORWARD)),
        (7, "exit"),
        (8, "exit"),
        (10, lambda: clock.enter(m.LOSS_BACKWARD, backward=True)),
        (11, lambda: clock.switch(m.DECODER_BACKWARD)),
        (13, lambda: clock.switch(m.ENCODER_BACKWARD)),
        (16, "exit"),
        (17, "exit"),
        (18, lambda: clock.switch(m.DECODER_BACKWARD)),  # a hook outside any backward: ignored
        (20, lambda: clock.enter(m.VALIDATION, "val")),
        (21, lambda: clock.enter(m.DECODER_FORWARD)),  # a decoder run by validation: validation's
        (25, "exit"),
        (26, "exit"),
    ]
    open_frames = []
    for t, event in script:
        now["t"] = t
        if event == "exit":
            clock.exit(open_frames.pop())
        else:
            frame = event()
            if frame is not None:
                open_frames.append(frame)
    now["t"] = 30
    record = clock.record()

    expected = {
        m.OTHER: 1 + 3 + 4,
        m.OPTIMISER: 1 + 2 + 1,
        m.LOSS_FORWARD: 2 + 1,
        m.ENCODER_FORWARD: 3,
        m.LOSS_BACKWARD: 1,
        m.DECODER_BACKWARD: 2,
        m.ENCODER_BACKWARD: 3,
        m.VALIDATION: 6,
    }
    assert {k: v for k, v in record["seconds"].items() if v} == expected
    assert record["total_s"] == 30 == sum(record["seconds"].values())
    assert record["by_stage"][m.VALIDATION] == {"val": 6}
    assert record["absorbed"] == {f"{m.DECODER_FORWARD} in {m.VALIDATION}": 1}
    assert m.DECODER_FORWARD not in record["calls"]
    assert record["ignored"] == {"backward hook outside a backward section": 1}


def test_overrides_for_every_task_or_one(profile_runs):
    per_task = profile_runs.parse_overrides(
        ["trainer.max_epochs=1", "vqa:data.max_questions=300", "trainer.max_time=00:00:01:00"], ["vqa", "lm"]
    )
    assert per_task == {
        "vqa": ["trainer.max_epochs=1", "data.max_questions=300", "trainer.max_time=00:00:01:00"],
        "lm": ["trainer.max_epochs=1", "trainer.max_time=00:00:01:00"],
    }
    with pytest.raises(SystemExit):
        profile_runs.parse_overrides(["captionin:data.num_images=3"], ["vqa"])


def test_configs_name_one_task_each(profile_runs):
    configs = profile_runs.parse_configs(["captioning:updown", "vqa:san"], ["captioning", "lm"])
    assert configs == {"captioning": "updown"}  # vqa is not among the tasks run
    for bad in ("updown", "captionin:updown", "captioning:"):
        with pytest.raises(SystemExit, match="TASK:NAME"):
            profile_runs.parse_configs([bad], ["captioning"])


def test_tiny_captioning_run_fills_every_bucket_it_has_and_sums_to_its_wall_time(profile_runs, tmp_path):
    from torch.utils.data.dataloader import _BaseDataLoaderIter

    from vltk.tasks import runner

    m = profile_runs
    cfg = runner.load_task_config("captioning", None, TINY_CAPTIONING)
    start = time.perf_counter()
    record = m.profile_training(cfg, tmp_path / "run")
    wall = time.perf_counter() - start

    seconds = record["seconds"]
    assert all(value >= 0 for value in seconds.values()), seconds
    had = (
        m.DATA,
        m.LOADING,
        m.ENCODER_FORWARD,
        m.ENCODER_BACKWARD,
        m.DECODER_FORWARD,
        m.DECODER_BACKWARD,
        m.LOSS_FORWARD,
        m.LOSS_BACKWARD,
        m.OPTIMISER,
        m.VALIDATION,
        m.METRICS,
        m.LOGGING,
        m.CHECKPOINTS,
        m.OTHER,
    )
    assert [b for b in had if seconds[b] <= 0] == []
    assert seconds[m.STARTUP] == seconds[m.EXIT] == 0  # in-process: the child process measures those
    assert sum(seconds.values()) == pytest.approx(record["total_s"], rel=1e-9)
    assert 0 < record["total_s"] <= wall < record["total_s"] + 0.25  # the clock spans the train call

    # The network's parts count as training only in training steps: one encoder call per optimiser step;
    # the validation and test steps' calls went to validation decoding.
    assert record["optimizer_steps"] > 0
    assert record["calls"][m.ENCODER_FORWARD] == record["optimizer_steps"]
    assert record["calls"][m.LOSS_BACKWARD] == record["optimizer_steps"]
    assert record["absorbed"][f"{m.ENCODER_FORWARD} in {m.VALIDATION}"] > 0
    assert set(record["by_stage"][m.ENCODER_FORWARD]) == {"train"}
    assert set(record["by_stage"][m.VALIDATION]) >= {"val", "test"}
    assert record["ignored"] == {}  # every backward hook fired inside a backward, on this thread
    assert record["parts_missing"] == [] and len(record["parts_found"]) == 3

    # Everything was undone.
    assert not hasattr(runner.build_trainer, "__wrapped__")
    assert not hasattr(runner.train, "__wrapped__")
    assert not hasattr(_BaseDataLoaderIter.__next__, "__wrapped__")
