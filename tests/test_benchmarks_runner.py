"""benchmarks/run_all.py: its registry covers every script, ``--list`` works, sections are replaced by name,
and the helpers the benchmarks share compute what they say (fast: nothing here trains)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run_all():
    return _load("run_all")


def test_registry_covers_every_script_in_benchmarks(run_all):
    scripts = {path.name for path in BENCHMARKS.glob("*.py")}
    covered = {b.script for b in run_all.REGISTRY} | {s for b in run_all.REGISTRY for s in b.also_runs}
    assert scripts - covered - set(run_all.HELPERS) == set(), (
        "a script in benchmarks/ that run_all.py never runs"
    )
    assert covered <= scripts, "the registry names a script that does not exist"
    assert set(run_all.HELPERS) <= scripts
    names = [b.name for b in run_all.REGISTRY]
    assert len(names) == len(set(names))
    for bench in run_all.REGISTRY:
        assert bench.full_minutes > 0 and bench.stale.strip(), bench.name
        assert "--json" not in bench.full + bench.quick  # the runner adds it


def test_quality_benchmarks_use_three_seeds_in_full_mode_and_one_in_quick(run_all):
    for name in ("captioning", "vqa", "dialog", "navigation_gotoredball", "navigation_gotolocal"):
        bench = run_all.by_name()[name]
        full, quick = list(bench.full), list(bench.quick)
        assert len(full[full.index("--seeds") + 1 :][:3]) == 3 and all(s.isdigit() for s in full[-3:])
        seeds = quick[quick.index("--seeds") + 1 :]
        assert seeds[0].isdigit() and (len(seeds) == 1 or not seeds[1].isdigit())


def test_list_prints_every_benchmark(run_all):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--list"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for bench in run_all.REGISTRY:
        assert f"| {bench.name} | {bench.script} |" in result.stdout


def test_unknown_name_in_only_is_one_line_and_exit_2(capsys, run_all):
    assert run_all.main(["--quick", "--only", "vqa,nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err


def _record(mode: str, name: str, markdown: str) -> dict:
    machine = {"cpu": "x86_64", "cpu_count": "2", "torch": "2.0", "python": "3.11", "omp_num_threads": "1"}
    return {
        "name": name,
        "mode": mode,
        "commit": "abc1234",
        "started": "2026-01-01 00:00 UTC",
        "machine": machine,
        "load_before": [0.1, 0.2, 0.3],
        "load_after": [0.4, 0.5, 0.6],
        "wall_s": 60.0,
        "status": "ok",
        "runner_command": f"python benchmarks/run_all.py --{mode}",
        "command": "python benchmarks/x.py",
        "markdown": markdown,
        "data": {},
    }


def test_sections_are_replaced_by_name_and_quick_never_hides_full(run_all, tmp_path, monkeypatch):
    results, page = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    monkeypatch.setattr(run_all, "RESULTS", results)
    monkeypatch.setattr(run_all, "BENCHMARKS_MD", page)
    page.write_text(
        "# Benchmarks\n\nhand-written intro\n\n<!-- bench:vqa:begin -->\nold\n"
        "<!-- bench:vqa:end -->\n\ntail\n"
    )
    (results / "quick").mkdir(parents=True)
    (results / "quick" / "vqa.json").write_text(json.dumps(_record("quick", "vqa", "QUICK TABLE")))
    run_all.write_sections(["vqa"])
    text = page.read_text()
    assert "hand-written intro" in text and text.rstrip().endswith("tail") and "\nold\n" not in text
    assert "QUICK TABLE" in text and "**Quick mode**" in text and "**stale**" in text
    assert "commit `abc1234`" in text and "0.10 / 0.20 / 0.30 before" in text
    (results / "full").mkdir()
    (results / "full" / "vqa.json").write_text(json.dumps(_record("full", "vqa", "FULL TABLE")))
    run_all.write_sections(["vqa"])
    text = page.read_text()
    assert "FULL TABLE" in text and "QUICK TABLE" not in text and "**stale**" not in text
    assert text.count("<!-- bench:vqa:begin") == 1 and "hand-written intro" in text
    run_all.write_sections(["captioning"])  # a section the page lacks is appended
    assert page.read_text().rstrip().endswith("<!-- bench:captioning:end -->")


def test_commit_marks_a_dirty_tree_but_not_the_runners_own_outputs(run_all, monkeypatch):
    calls = []

    def fake_git(*args):
        calls.append(args)
        return "abc1234" if args[0] == "rev-parse" else ""

    monkeypatch.setattr(run_all, "git", fake_git)
    assert run_all.commit() == "abc1234"
    status = next(c for c in calls if c[0] == "status")
    assert ":(exclude)BENCHMARKS.md" in status and ":(exclude)benchmarks/results" in status
    monkeypatch.setattr(run_all, "git", lambda *a: "abc1234" if a[0] == "rev-parse" else " M vltk/x.py")
    assert run_all.commit() == "abc1234+dirty"


def test_spread_and_verdicts(monkeypatch):
    report = _load("_report")
    s = report.spread([1.0, 2.0, 3.0])
    assert (s["mean"], s["std"], s["min"], s["max"]) == (2.0, 1.0, 1.0, 3.0)
    assert report.fmt_spread([0.5, 0.7], ".2f") == "0.60 ± 0.14 (0.50-0.70)"
    assert report.fmt_spread([0.5], ".2f") == "0.50"
    monkeypatch.setenv(report.MODE_ENV, "full")
    assert report.verdict(99.95, 99.9, fmt=".2f").startswith("met")
    assert "short by 0.54" in report.verdict(99.36, 99.9, fmt=".2f")
    assert report.verdict(2.5, 3.0, higher=False, fmt=".1f").startswith("met")
    monkeypatch.setenv(report.MODE_ENV, "quick")
    assert "not judged" in report.verdict(0.0, 1.0)
    assert report.pick({"accuracy": 0.5}, "exact_match", "accuracy") == ("accuracy", 0.5)


def test_interleaved_alternates_the_order_of_the_arms():
    report = _load("_report")
    calls = []
    times = report.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert len(times["a"]) == len(times["b"]) == 3


def test_reference_text_reads_the_same_symbols_as_vltk():
    reference = _load("charrnn_reference")
    from vltk.tasks.lm.data import PythonSourceDataModule

    train, val, vocab_size = reference.reference_text(30_000)
    dm = PythonSourceDataModule(max_chars=30_000, seq_len=25, batch_size=1)
    dm.setup("fit")
    assert vocab_size == dm.vocab_size
    assert train.tolist() == dm.ids("train").tolist() and val.tolist() == dm.ids("val").tolist()


SCRIPTS = {
    "ok_bench.py": "import json, sys\n"
    "path = sys.argv[sys.argv.index('--json') + 1]\n"
    "print('progress line')\n"
    "json.dump({'markdown': '| table |', 'data': {'x': 1}}, open(path, 'w'))\n",
    "fails_bench.py": "import sys\nprint('something broke')\nsys.exit(3)\n",
    "sleeps_bench.py": "import time\nprint('started', flush=True)\ntime.sleep(60)\n",
}


@pytest.mark.parametrize(
    "script, status",
    [("ok_bench.py", "ok"), ("fails_bench.py", "failed (exit code 3)"), ("sleeps_bench.py", "timed out")],
)
def test_run_one_records_success_failure_and_timeout(run_all, tmp_path, monkeypatch, script, status):
    for name, text in SCRIPTS.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    monkeypatch.setattr(run_all, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(run_all, "matmul_gflops", lambda: 123.4)
    bench = run_all.Bench("toy", "Toy", script, (), (), 1.0, "stale note", quick_minutes=0.05)
    record = run_all.run_one(bench, "quick", "python benchmarks/run_all.py --quick", 1.0, "1/1")
    assert record["status"].startswith(status) and record["wall_s"] < 30
    saved = json.loads((tmp_path / "results" / "quick" / "toy.json").read_text())
    assert saved["status"] == record["status"] and saved["command"] == f"python benchmarks/{script}"
    assert len(saved["load_before"]) == 3 and saved["machine"]["cpu_count"]
    assert saved["matmul_gflops_before"] == 123.4 and "123.4 GFLOP/s" in run_all.provenance(saved)
    log = (tmp_path / "results" / "quick" / "toy.log").read_text()
    if status == "ok":
        assert saved["markdown"] == "| table |" and saved["data"] == {"x": 1} and "progress line" in log
    else:
        assert "Last lines of the log" in saved["markdown"] and saved["data"] == {}
        assert ("something broke" if script == "fails_bench.py" else "started") in saved["markdown"]


def test_matmul_probe_measures_the_machine(run_all):
    """The speed probe runs torch in a fresh process and gives a plausible fp32 rate (1-100,000 GFLOP/s)."""
    gflops = run_all.matmul_gflops()
    assert gflops is not None and 1 < gflops < 100_000


def test_provenance_of_records_without_a_speed_probe(run_all):
    """Records written before the probe (no ``matmul_gflops_before``, no ``cpu_model``) still render."""
    text = run_all.provenance(_record("full", "vqa", "T"))
    assert "GFLOP/s" not in text and "with 2 CPUs, torch 2.0" in text
