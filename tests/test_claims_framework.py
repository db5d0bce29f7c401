"""Claim registry, fixture cache, records, runner and report: bad input never loses finished results."""

from __future__ import annotations

import json
import os

import pytest

from lazarus_bench.cache import MANIFEST, FixtureCache, cache_key
from lazarus_bench.errors import LazarusError
from lazarus_bench.harness.base import Claim, GateResult, Outcome
from lazarus_bench.harness.params import Param
from lazarus_bench.harness.registry import REGISTRY, get_claim, register
from lazarus_bench.models import load_model
from lazarus_bench.options import COUNT, PROB
from lazarus_bench.stats import threshold_claim
from lazarus_bench.suite.records import SCHEMA_VERSION, Record, load_records
from lazarus_bench.suite.report import read_all, render
from lazarus_bench.suite.runner import run_claim


def test_unknown_claim_id_lists_known():
    with pytest.raises(LazarusError, match="unknown claim id 'H99'.*H01"):
        get_claim("H99")
    assert get_claim("h01").id == "H01"


def test_parameters_fast_tier_and_overrides():
    claim = get_claim("H01")
    assert claim.parameters("slow")["max_prob"] == 0.01
    assert claim.parameters("slow", {"max_prob": 0.02})["max_prob"] == 0.02
    with pytest.raises(LazarusError, match="unknown parameter"):
        claim.parameters("slow", {"nonsense": 1})


def test_cache_builds_atomically_and_rebuilds_corrupt_entries(tmp_path):
    cache = FixtureCache(tmp_path)
    calls = []

    def build(d):
        calls.append(d)
        (d / "adapters.safetensors").write_bytes(b"weights")

    parts = {"model": "m", "method": "sft", "seed": 0}
    entry = cache.get_or_build(parts, build)
    assert cache.get_or_build(parts, build) == entry and len(calls) == 1
    (entry / "adapters.safetensors").write_bytes(b"corrupted")
    assert not cache.valid(entry)
    assert cache.get_or_build(parts, build) == entry and len(calls) == 2
    assert (entry / "adapters.safetensors").read_bytes() == b"weights"
    assert cache_key(parts) != cache_key({**parts, "seed": 1})

    def interrupted(d):
        (d / "half.bin").write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_build({"other": 1}, interrupted)
    assert not cache.path({"other": 1}).exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".lock"] == [entry.name]
    assert json.loads((entry / MANIFEST).read_text())["files"]


_CONCURRENT_BUILD = """
import sys, time
from lazarus_bench.cache import FixtureCache

def build(d):
    with open(sys.argv[2], "a") as log:
        log.write("built\\n")
    time.sleep(1.0)
    (d / "weights.bin").write_bytes(b"w")

print(FixtureCache(sys.argv[1]).get_or_build({"stage": "one", "seed": 0}, build))
"""


def test_concurrent_workers_build_a_shared_entry_once(tmp_path):
    """Two processes that need the same entry at once (H14's protocols share stage one): one builds, the
    other waits for it and reads the same entry."""
    import subprocess
    import sys

    log = tmp_path / "builds.log"
    procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT_BUILD, str(tmp_path / "cache"), str(log)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    paths = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(paths) == 1 and log.read_text() == "built\n"


def _fake_claim(claim_id, measure, applies=lambda info: None):
    if claim_id in REGISTRY:
        del REGISTRY[claim_id]
    return register(Claim(id=claim_id, title="t", statement="s", source="test", criterion="c", writeup="w",
                          params={"threshold": Param(0.5, PROB, help="threshold")}, measure=measure, applies=applies,
                          tests={"threshold": "t"}))


def test_runner_records_ok_skip_and_error_without_losing_any(saved_model, tmp_path):
    path = str(saved_model("llama"))

    def good(ctx):
        stat = threshold_claim([0.1, 0.12, 0.09, 0.11], ctx.params["threshold"], "below", test=ctx.test("threshold"))
        return Outcome(statistic=stat, ours="fine", samples=[{"x": 1}],
                       curves={"c": {"x": ["emb", "0"], "series": {"a": [0.1, 0.2]}}})

    def broken(ctx):
        raise ValueError("measure crashed")

    try:
        ok = run_claim(_fake_claim("T01", good), path, report_dir=tmp_path, log=lambda m: None)
        skipped = run_claim(_fake_claim("T02", good, applies=lambda info: "not for dense models"), path,
                            report_dir=tmp_path, log=lambda m: None)
        error = run_claim(_fake_claim("T03", broken), path, report_dir=tmp_path, log=lambda m: None)
        with pytest.raises(LazarusError, match="model path not found"):  # a model that does not load: no record
            run_claim(_fake_claim("T04", good), str(tmp_path / "nope"), report_dir=tmp_path, log=lambda m: None)
        assert ok.status == "ok" and ok.verdict == "SUPPORTED" and ok.model.hash
        assert skipped.status == "skipped" and skipped.reason == "not for dense models"
        assert error.status == "error" and "measure crashed" in error.reason
        loaded = load_records(tmp_path)
        assert sorted(r.claim_id for r in loaded.records) == ["T01", "T02", "T03"]
        files = sorted((tmp_path / "records").glob("*.json"))
        assert [json.loads(f.read_text())["schema_version"] for f in files] == [SCHEMA_VERSION] * 3
        assert ok.environment["packages"]["mlx"]
        report = read_all(render(tmp_path).parent)
        assert "## Verdict matrix" in report and "SUPPORTED" in report and "measure crashed" in report
        assert (tmp_path / "plots").is_dir() and any((tmp_path / "plots").iterdir())
    finally:
        for claim_id in ("T01", "T02", "T03", "T04"):
            REGISTRY.pop(claim_id, None)


def test_old_schema_and_corrupt_records_are_reported_not_fatal(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    (records / "old.json").write_text(json.dumps({"schema_version": 0, "claim": {"id": "H01"}}))
    (records / "broken.json").write_text("{not json")
    loaded = load_records(tmp_path)
    assert loaded.records == []
    reasons = dict(loaded.skipped)
    assert "schema version 0" in reasons["old.json"] and "unreadable" in reasons["broken.json"]
    assert "Records not read" in read_all(render(tmp_path).parent)


def test_every_registered_claim_is_complete():
    from lazarus_bench.harness.registry import all_claims

    for claim in all_claims():
        assert claim.id.startswith("H") and claim.statement and claim.criterion and claim.writeup and claim.source
        assert set(claim.fast) <= set(claim.params), f"{claim.id}: fast overrides unknown parameters"
        assert callable(claim.measure)
        assert claim.tests, f"{claim.id}: every criterion declares its test before the data (tests=...)"
        if claim.training and "min_seeds" in claim.params:
            assert claim.params["min_seeds"] >= 5 and claim.default_seeds["slow"] >= 5, \
                f"{claim.id}: the seed is the unit, so >= 5 seeds (exact one-sided floor 1/32)"


def test_claim_measures_never_choose_their_test():
    """Every threshold or equivalence criterion in a claim file takes its test from the claim's declaration
    (``ctx.test(name)`` or the declared ``tests`` mapping), never a literal picked in the measure."""
    import ast
    from pathlib import Path

    import lazarus_bench.claims as claims_pkg

    calls = 0
    for path in sorted(Path(claims_pkg.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node.func, "attr", getattr(node.func, "id", None)) if isinstance(node, ast.Call) else None
            if name in ("threshold_claim", "equivalence_claim"):
                calls += 1
                test = next((k.value for k in node.keywords if k.arg == "test"), None)
                assert test is not None, f"{path.name}:{node.lineno}: {name} without a declared test"
                assert not isinstance(test, ast.Constant), f"{path.name}:{node.lineno}: a literal test, not declared"
    assert calls >= 10


def test_run_and_report_commands(saved_model, tmp_path, capsys):
    from lazarus_bench.cli import main

    path = str(saved_model("llama"))
    assert main(["run", "-m", path, "--claims", "H01", "--tier", "fast", "--report-dir", str(tmp_path)]) == 0
    assert (tmp_path / "REPORT.md").exists() and len(os.listdir(tmp_path / "records")) == 1
    (tmp_path / "REPORT.md").unlink()
    assert main(["report", "--report-dir", str(tmp_path)]) == 0
    assert "H01" in (tmp_path / "REPORT.md").read_text()
    assert main(["run", "-m", path, "--claims", "H99", "--report-dir", str(tmp_path)]) == 2
    assert "unknown claim id 'H99'" in capsys.readouterr().err


def test_a_failed_fitness_gate_makes_the_claim_not_testable_and_keeps_the_numbers(saved_model, tmp_path):
    """The gate is measured on the model (its layer count here) before the measure, compared with its parameter, and
    a failure stops the run there: NOT TESTABLE with the gate's value in the record, the report and its counts, and
    the measure (which would say SUPPORTED) never runs."""
    from lazarus_bench.harness.base import Gate

    path = str(saved_model("llama"))

    def good(ctx):
        return Outcome(statistic=threshold_claim([0.1, 0.12, 0.09, 0.11], 0.5, "below", test="t"), ours="fine")

    gate = Gate(name="depth", description="layers", value=lambda ctx: ctx.handle().n_layers,
                threshold_param="min_layers")
    claim = register(Claim(id="T05", title="t", statement="s", source="test", criterion="c", writeup="w",
                           params={"min_layers": Param(16, COUNT, help="fewest layers")}, measure=good, gates=(gate,)))
    try:
        failed = run_claim(claim, path, report_dir=tmp_path, log=lambda m: None)
        layers = load_model(path).n_layers
        assert failed.fitness[1:] == (GateResult(name="depth", value=layers, threshold=16.0, direction="above",
                                             passed=False, description="layers"),)
        assert failed.verdict == "NOT TESTABLE" and failed.statistic.verdict == "NOT TESTABLE"
        assert failed.ours == f"depth = {layers}" and failed.reason.startswith("fitness gate 'depth'")
        passed = run_claim(claim, path, report_dir=tmp_path / "b", overrides={"min_layers": layers},
                           log=lambda m: None)
        assert passed.verdict == "SUPPORTED" and passed.fitness[1].passed
        report = read_all(render(tmp_path).parent)
        assert "NOT TESTABLE 1" in report and f"depth {layers} >= 16: FAIL" in report
    finally:
        REGISTRY.pop("T05", None)


def test_a_gate_required_inside_the_measure_stops_it_with_its_numbers(saved_model, tmp_path):
    """``ctx.require`` stops a measure at a failed gate (stage 1 before stage 2): NOT TESTABLE, the descriptive
    numbers measured so far kept, nothing after the gate run; a passing gate lets the measure go on."""
    from lazarus_bench.harness.base import Gate

    reached = []

    def staged(ctx):
        ctx.require("stage 1", 0.4, {"stage1_accuracy": 0.4})
        reached.append("stage 2")
        return Outcome(statistic=threshold_claim([0.1, 0.12, 0.09, 0.11], 0.5, "below", test="t"), ours="fine",
                       fitness={"stage 1": 0.4})

    gate = Gate(name="stage 1", description="stage-1 accuracy", value=None, threshold_param="min_stage1")
    claim = register(Claim(id="T06", title="t", statement="s", source="test", criterion="c", writeup="w",
                           params={"min_stage1": Param(0.75, PROB, help="smallest stage-1 accuracy")}, measure=staged,
                           gates=(gate,)))
    try:
        record = run_claim(claim, str(saved_model("llama")), report_dir=tmp_path, log=lambda m: None)
        assert record.verdict == "NOT TESTABLE" and reached == []
        assert record.extra["descriptive"] == {"stage1_accuracy": 0.4}
        assert record.fitness[1].value == 0.4 and not record.fitness[1].passed
        record = run_claim(claim, str(saved_model("llama")), report_dir=tmp_path, overrides={"min_stage1": 0.3},
                           log=lambda m: None)
        assert record.verdict == "SUPPORTED" and reached == ["stage 2"]
    finally:
        REGISTRY.pop("T06", None)


def test_report_adds_up_worker_seconds_per_claim_and_model():
    from lazarus_bench.suite.report import _time_spent

    def rec(claim, model, wall):
        return Record.bare(claim, model, wall_s=wall)

    records = [rec("H01", "a", 10.4), rec("H05a", "a", 100.0), rec("H05a", "a", 50.0), rec("H05a", "b", 1200.2)]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in _time_spent(records, ["a", "b"])[-2].splitlines()[2:]}
    assert rows == {"H01": ["10", "-", "10"], "H05a": ["150", "1,200", "1,350"], "total": ["160", "1,200", "1,361"]}
    seeded = [r.replace(seeds=(0, 1, 2, 3, 4)) if r.claim_id == "H05a" else r for r in records]
    text = _time_spent(seeded, ["a", "b"])[2]
    assert "ran 5 seed(s) and took 1,350 of the 1,361 worker-seconds" in text and "5/3" in text


def test_report_header_names_every_commit_the_records_came_from():
    from lazarus_bench.suite.report import _commits

    def rec(commit):
        return Record.bare("H01", "m", environment={"git_commit": commit})

    skipped = Record.bare("H01", "m", status="skipped")
    assert _commits([rec("a" * 40)] * 3) == "a" * 40
    assert _commits([rec("b" * 40), rec("a" * 40), rec("b" * 40), skipped]) == \
        "commits bbbbbbb (2 records), aaaaaaa (1 records)", "a skip ran no code"
    assert _commits([skipped]) == "-"
