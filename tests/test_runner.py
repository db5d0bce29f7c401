"""The suite runner: job planning, `after` ordering, and parallel workers that give the sequential results."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest

from lazarus_bench.harness.base import slug
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.suite.records import ModelRef, Record, load_records, save_record
from lazarus_bench.suite.runner import Job, plan, run_suite


def test_a_family_is_one_queue_per_model_with_its_root_first():
    """The runner's work units are pytest-xdist's: a claim and those reusing its cached runs, on one model, in one
    queue, the root first; other claims and other models are queues of their own."""
    from lazarus_bench.suite.families import scope, units

    assert get_claim("H06").after == ("H05a",) and get_claim("H13").after == ("H12",)
    assert get_claim("H01").after == ("H05a",)  # its positive control: H05a's model
    assert get_claim("H04").after == ("H05a",)  # its positive control: H05a's model, as CLAIMS.md specifies
    jobs = [Job("H06", "m", "corrected", 500.0), Job("H05a", "m", "corrected", 50.0),
            Job("H02", "m", "corrected", 1.0), Job("H05a", "m", "original", 80.0), Job("H06", "n", "corrected", 5.0),
            Job("H13", "m", "corrected", 3.0), Job("H12", "m", "corrected", 9.0)]
    queues = units(jobs, lambda j: (j.claim, "slow", j.model))
    assert [[(j.claim, j.model, j.protocol) for j in q] for q in queues] == [
        [("H05a", "m", "corrected"), ("H05a", "m", "original"), ("H06", "m", "corrected")],
        [("H02", "m", "corrected")], [("H06", "n", "corrected")],
        [("H12", "m", "corrected"), ("H13", "m", "corrected")]]
    assert scope("H06", "slow", "n") == "H05a|slow|n" and scope("H02", "fast", "m") == "H02|fast|m"


def test_each_claim_family_is_one_xdist_work_unit():
    """The xdist scope of a hypothesis test is its family on one tier and model (a claim alone if it has none),
    and the scheduler the suite installs uses it."""
    from xdist.scheduler.loadscope import LoadScopeScheduling

    from lazarus_bench.suite.families import FamilyScheduling, family_root, xdist_scope

    assert {c: family_root(c) for c in ("H01", "H05a", "H05b", "H06", "H12", "H13", "H02")} == {
        "H01": "H05a", "H05a": "H05a", "H05b": "H05a", "H06": "H05a", "H12": "H12", "H13": "H12", "H02": None}
    node = "hypotheses/test_claims.py::test_{}[{}]"
    assert xdist_scope(node.format("H13", "slow-zoo:base")) == xdist_scope(node.format("H12", "slow-zoo:base"))
    assert xdist_scope(node.format("H13", "slow-zoo:base")) == "H12|slow|zoo:base"
    assert xdist_scope(node.format("H06", "fast-/ckpt/a-b@c]")) == "H05a|fast|/ckpt/a-b@c]"
    scopes = {xdist_scope(node.format(c, f"{t}-{m}")) for c in ("H01", "H05a", "H12", "H13") for t in ("fast", "slow")
              for m in ("zoo:base", "zoo:moe")}
    assert len(scopes) == 8
    assert xdist_scope(node.format("H02", "slow-zoo:base")) == node.format("H02", "slow-zoo:base")
    assert xdist_scope("tests/test_runner.py::test_plan") == "tests/test_runner.py::test_plan"
    assert issubclass(FamilyScheduling, LoadScopeScheduling)
    assert FamilyScheduling._split_scope(None, node.format("H05b", "slow-zoo:moe")) == "H05a|slow|zoo:moe"


def test_tests_sharing_a_module_fixture_that_measures_claims_are_one_work_unit(request):
    """The suite's scheduler keeps each module of SHARED_FIXTURE_MODULES on one worker (its fixture built once) and
    every other test in its family's unit; each listed module exists and has a module-scoped fixture."""
    root = Path(__file__).resolve().parents[1]
    suite = request.config.pluginmanager.get_plugin(str(root / "conftest.py"))
    from lazarus_bench.suite.families import xdist_scope

    probes = "tests/test_probe_claims.py::"
    assert suite.work_unit(probes + "test_record_is_complete[H02]") == "tests/test_probe_claims.py"
    assert suite.work_unit(probes + "test_h02_statistic_matches_samples_and_sklearn") == "tests/test_probe_claims.py"
    for node in ("hypotheses/test_claims.py::test_H13[slow-zoo:base]", "tests/test_runner.py::test_plan"):
        assert suite.work_unit(node) == xdist_scope(node)
    for module in suite.SHARED_FIXTURE_MODULES:
        assert 'scope="module"' in (root / module).read_text(), module


def test_plan_estimates_cost_from_the_last_run_of_the_same_tier(tmp_path):
    h01, h05 = get_claim("H01"), get_claim("H05a")
    record = Record(claim={"id": "H01"}, model=ModelRef(id="zoo:base", slug=slug("zoo:base"), hash="", info={}),
                    protocol="corrected", tier="slow", params={}, seeds=(), prereg={}, timestamp="", status="ok",
                    reason="", wall_s=42.0)
    save_record(tmp_path, record)
    jobs = plan([h01, h05], ["zoo:base"], None, "slow", tmp_path)
    assert [(j.claim, j.protocol, j.cost) for j in jobs] == [
        ("H01", "corrected", 42.0), *(("H05a", protocol, 100.0) for protocol in h05.protocols)]
    assert [j.cost for j in plan([h01], ["zoo:base"], None, "fast", tmp_path)] == [10.0]
    assert [j.protocol for j in plan([h05], ["zoo:base"], ["original"], "slow", tmp_path)] == ["original"]


TIMING = ("seconds", "tokens_per", "memory", "wall", "speed", "ratio")


def _scrub(value):
    """The value without timing and memory fields (they differ between any two runs)."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if not (k.endswith("_s") or any(t in k for t in TIMING))}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _comparable(record: Record) -> dict:
    data = record.to_dict()
    return _scrub({"verdict": data.get("verdict"), "status": data["status"], "samples": data.get("samples"),
                   "statistic": data.get("statistic") if record.claim_id != "H12" else None})


@pytest.mark.thorough
def test_parallel_workers_give_the_sequential_records(saved_model, tmp_path):
    """Two spawned workers (single-threaded BLAS) write the same statistics as one process; H13 waits for H12."""
    models = [str(saved_model("llama"))]
    claims = ["H01", "H05a", "H13", "H12"]
    runs = {}
    n_records = sum(len(get_claim(c).tier_protocols("fast")) for c in claims)
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        summaries = run_suite(models, claims, tier="fast", report_dir=out, cache_dir=tmp_path / f"cache{jobs}",
                              jobs=jobs, log=lambda message: None, overrides={"H12": {"min_params": 0}})
        assert len(summaries) == n_records and all(s["status"] == "ok" for s in summaries), summaries
        order = [s["claim"] for s in summaries]
        assert order.index("H13") > order.index("H12")
        runs[jobs] = {(r.claim_id, r.protocol): r for r in load_records(out).records}
    assert runs[1].keys() == runs[2].keys() and len(runs[1]) == n_records
    for key in runs[1]:
        a, b = _comparable(runs[1][key]), _comparable(runs[2][key])
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True), key
    lora = [m for m in (tmp_path / "cache2").glob("*/cache_manifest.json")
            if json.loads(m.read_text())["parts"].get("fixture") == "seed001-lora-sft"]
    assert len(lora) == len(runs[2][("H13", "corrected")].seeds), "H13 must reuse H12's LoRA runs, not retrain"
    trained = {c: sum(r.work["train_tokens"] for (k, _), r in runs[2].items() if k == c) for c in claims}
    assert trained["H12"] > 0 and trained["H13"] == 0, trained  # a cached run costs its reader nothing
    assert all(r.environment["blas"]["gemm_gflops_1024"] > 0 for r in runs[2].values())


@pytest.mark.thorough
def test_records_do_not_depend_on_the_callers_blas_threads(saved_model, tmp_path):
    """`lazarus-bench run` in a process whose parent set OPENBLAS_NUM_THREADS=2 (or nothing) writes the
    same records as this process: the thread count is pinned inside lazarus_bench, not by the caller."""
    import os
    import subprocess
    import sys

    model = str(saved_model("llama"))
    here = tmp_path / "here"
    run_suite([model], ["H01", "H05a"], tier="fast", report_dir=here, cache_dir=tmp_path / "ch", jobs=1,
              protocols=["corrected"], log=lambda message: None)
    ours = {r.claim_id: r for r in load_records(here).records}
    # thread settings are stripped; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE select the kernel (set on some CPUs, where
    # older OpenBLAS builds misbehave) and are the machine's, not the caller's, so they pass through
    threads = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LAZARUS_BLAS")
    for parent_threads in (None, "2"):
        env = {k: v for k, v in os.environ.items() if not k.startswith(threads)}
        if parent_threads:
            env["OPENBLAS_NUM_THREADS"] = parent_threads
        out = tmp_path / f"child-{parent_threads}"
        cmd = [sys.executable, "-m", "lazarus_bench.cli", "run", "--tier", "fast", "-m", model, "--claims",
               "H01,H05a", "--protocol", "corrected", "-j", "1", "--report-dir", str(out), "--cache-dir",
               str(tmp_path / f"cc-{parent_threads}")]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        child = {r.claim_id: r for r in load_records(out).records}
        assert child.keys() == ours.keys() == {"H01", "H05a"}
        for key in ours:
            assert child[key].environment["blas"]["threads"] == 1
            assert (json.dumps(_comparable(child[key]), sort_keys=True)
                    == json.dumps(_comparable(ours[key]), sort_keys=True)), (parent_threads, key)


@pytest.mark.thorough
def test_pytest_xdist_and_lazarus_bench_run_write_the_same_records(saved_model, tmp_path):
    """One engine's output: `pytest hypotheses -n 2` (claims grouped by the cached runs they share, one family on one
    worker, the report rendered once by the controller) and `lazarus-bench run -j 2` (its process pool) write equal
    records, each from an empty fixture cache; only clock readings differ."""
    import subprocess
    import sys

    model, root = str(saved_model("llama")), Path(__file__).resolve().parents[1]
    a, b = tmp_path / "xdist", tmp_path / "run"
    cmd = [sys.executable, "-m", "pytest", "hypotheses/test_claims.py", "-n", "2", "-p", "no:cacheprovider", "-v",
           "-k", "test_H01 or test_H05a", "--model", model, "--report-dir", str(a)]
    done = subprocess.run(cmd, cwd=root, env={**os.environ, "LAZARUS_CACHE_DIR": str(tmp_path / "cache-a")},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert (a / "REPORT.md").is_file() and "lazarus_bench report:" in done.stdout
    ran = r"\[(gw\d+)\] \[ *\d+%\] PASSED hypotheses/test_claims.py::test_H0(?:1|5a)\["
    workers = set(re.findall(ran, done.stdout))
    assert "via SuiteScheduling" in done.stdout and len(workers) == 1, done.stdout[-3000:]  # one family, one worker
    done = subprocess.run([sys.executable, "-m", "lazarus_bench.cli", "run", "--tier", "fast", "-m", model,
                           "--claims", "H01,H05a", "-j", "2", "--report-dir", str(b), "--cache-dir",
                           str(tmp_path / "cache-b")], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    names = sorted(p.name for p in (a / "records").glob("*.json"))
    assert names == sorted(p.name for p in (b / "records").glob("*.json")) and len(names) == 3  # H05a: 2 protocols
    for name in names:
        ours = _untimed(json.loads((a / "records" / name).read_text()))
        theirs = _untimed(json.loads((b / "records" / name).read_text()))
        assert ours == theirs, name
    h01 = next(json.loads((a / "records" / n).read_text()) for n in names if n.startswith("H01"))
    assert any(c["name"] == "dual-reward-trained model" and c["built"] for c in h01["controls"])


_TIMING = re.compile(r"seconds|_per_s$|^wall_s$|^timestamp$|^environment$|^work$")


def _untimed(value):
    """A record without its clock readings (timestamps, wall and training seconds, rates), the environment block
    and its FLOP counts (which record pays for a run that claims share depends on their order)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not _TIMING.search(k)}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return "nan" if isinstance(value, float) and math.isnan(value) else value
