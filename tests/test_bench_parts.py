"""``lazarus-bench bench --parts``: a claim's wall time split by part, on records equal to the runner's own."""

from __future__ import annotations

from lazarus_bench.bench.parts import PARTS, PartClock, agreement, measure_parts, render_parts, timed_runner
from lazarus_bench.harness import base, controls, registry
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.suite import runner


def test_a_part_reached_inside_another_counts_to_the_outer_one():
    now = [0.0]

    def work(seconds):
        now[0] += seconds

    clock = PartClock(now=lambda: now[0])
    inner = clock.wrap("measure", lambda: work(5))
    outer = clock.wrap("graded", lambda: (inner(), work(7)))
    outer()
    inner()
    assert dict(clock.seconds) == {"graded": 12, "measure": 5}
    assert inner.__name__ == "<lambda>" and inner.__wrapped__ is not None


def test_the_timers_are_removed_after_the_run_even_when_it_fails():
    before = (runner.trained_gate, base.Gate.check, base.Control.run, controls.GradedControl.run,
              controls.NullControl.run)
    try:
        with timed_runner(PartClock()):
            assert runner.trained_gate is not before[0] and controls.NullControl.run is not before[4]
            raise RuntimeError("a claim crashed")
    except RuntimeError:
        pass
    assert (runner.trained_gate, base.Gate.check, base.Control.run, controls.GradedControl.run,
            controls.NullControl.run) == before


def test_parts_add_up_to_the_wall_time_of_a_record_equal_to_the_runners(saved_model, tmp_path):
    """H01 on a tiny model: the timed run writes the record an untimed run_claim writes (same claim hash, same
    numbers), and its parts sum to its wall time with graded controls and nulls seen."""
    model = str(saved_model("llama"))
    runner.run_claim(get_claim("H01"), model, tier="fast", report_dir=tmp_path, cache_dir=tmp_path / "cache",
                     log=lambda _: None)
    seen = []
    result = measure_parts(model, ["H10", "H01"], records_dir=tmp_path / "records", tier="fast", log=lambda _: None,
                           on_row=lambda r: seen.append(render_parts(r)))
    assert "1 of 2 claims so far; not yet measured: H01." in seen[0] and "so far" not in seen[1]
    skipped, row = result["rows"]  # H10 reads MoE routers: skipped on a dense model, in no time
    assert skipped["status"] == "skipped" and skipped["wall_s"] == 0.0 and sum(skipped["parts"].values()) < 0.5
    assert row["claim"] == "H01" and row["status"] == "ok" and row["vs_committed"]["identical"] is True
    assert set(row["parts"]) == set(PARTS)
    assert abs(sum(row["parts"].values()) - row["wall_s"]) < 0.05
    assert row["parts"]["graded"] > 0 and row["parts"]["nulls"] > 0 and row["parts"]["gates"] > 0
    text = render_parts(result)
    assert "| H01 " in text and "| total " in text and "same verdict, identical" in text


def test_agreement_tells_identical_from_numbers_that_moved_from_other_content():
    committed = {"verdict": "SUPPORTED", "wall_s": 9.0, "prereg": {"claim_hash": "a", "lock_version": "v1+17"},
                 "statistic": {"value": 0.25, "ci": [float("nan"), 1.0]},
                 "samples": [{"p": 0.5, "tokens_per_s": 2537.1}, {"p": 2e-7}]}  # a clock reading: set aside
    same = {**committed, "wall_s": 3.0, "prereg": {"claim_hash": "a", "lock_version": "v1+19"},
            "samples": [{"p": 0.5, "tokens_per_s": 1033.1}, {"p": 2e-7}]}
    assert agreement(same, committed) == {"verdict_equal": True, "identical": True, "max_rel_diff": 0.0,
                                          "first_difference": None}
    moved = {**same, "samples": [{"p": 0.5, "tokens_per_s": 9.0}, {"p": 2.2e-7}],
             "statistic": {"value": 0.2500001, "ci": [0.1, 1.0]}}
    vs = agreement(moved, committed)
    assert not vs["identical"] and vs["verdict_equal"] and vs["max_rel_diff"] == (2.2e-7 - 2e-7) / 2.2e-7
    assert vs["first_difference"] == "record.statistic.ci[0]: 0.1 vs nan"
    other = {**same, "verdict": "REFUTED", "prereg": {"claim_hash": "b", "lock_version": "v1+17"}}
    vs = agreement(other, committed)
    assert not vs["verdict_equal"] and vs["first_difference"] == "record.prereg.claim_hash: 'b' vs 'a'"
    assert agreement(same, None) is None


def test_a_run_of_some_claims_keeps_the_other_claims_rows_and_names_each_run(saved_model, tmp_path):
    """Measuring H10 where an earlier run of this model left rows for H01 and H10: H01's row stays with its own run's
    environment, H10's is the new one, and the table names each row's run."""
    model = str(saved_model("llama"))
    old = {"claim": "H01", "status": "ok", "verdict": "SUPPORTED", "wall_s": 7.0, "vs_committed": None,
           "parts": {p: (7.0 if p == "measure" else 0.0) for p in PARTS}, "committed_wall_s": None}
    previous = {"model": model, "tier": "fast", "planned": ["H01", "H10"], "commit": "e99807e" + "0" * 33,
                "environment": "another host, OpenBLAS kernel Haswell", "openblas_core": "Haswell",
                "rows": [old, {**old, "claim": "H10", "wall_s": 99.0}]}
    result = measure_parts(model, ["H10"], records_dir=tmp_path / "records", tier="fast", log=lambda _: None,
                           previous=previous)
    kept, new = result["rows"]
    assert kept == {**old, "run": previous["commit"]} and new["claim"] == "H10" and new["wall_s"] == 0.0
    assert new["run"] == result["commit"] != previous["commit"] and result["planned"] == ["H01", "H10"]
    assert result["runs"] == {previous["commit"]: previous["environment"], result["commit"]: result["environment"]}
    text = render_parts(result)
    assert "run e99807e: another host, OpenBLAS kernel Haswell; run " in text and "| run " in text
    assert "| H01 " in text and "| e99807e " in text and "so far" not in text
    again = measure_parts(model, ["H01"], records_dir=tmp_path / "records", tier="fast", log=lambda _: None,
                          previous={**result, "rows": [new]})
    assert [r["claim"] for r in again["rows"]] == ["H10", "H01"] and set(again["runs"]) == {result["commit"]}
    assert "| run " not in render_parts(again)  # one run: its environment once, no run column


def test_earlier_rows_stay_until_their_claim_is_measured_again_and_an_error_never_replaces_one(saved_model, tmp_path,
                                                                                              monkeypatch):
    """Re-measuring H10 and H12 where an earlier run left rows for both: after H10 (the first) is saved, H12's earlier
    row is still there (a run stopped then keeps it); an H10 whose run ends in an error keeps its earlier row."""
    from dataclasses import replace

    model = str(saved_model("mixtral"))
    row = {"claim": "H10", "status": "ok", "verdict": "SUPPORTED", "wall_s": 7.0, "vs_committed": None,
           "parts": {p: (7.0 if p == "measure" else 0.0) for p in PARTS}, "committed_wall_s": None}
    previous = {"model": model, "tier": "fast", "planned": ["H10", "H12"], "commit": "e99807e" + "0" * 33,
                "environment": "another host", "rows": [row, {**row, "claim": "H12", "wall_s": 9.0}]}
    saved = []

    def save(result):
        saved.append([(x["claim"], x["run"]) for x in result["rows"]])

    result = measure_parts(model, ["H10", "H12"], records_dir=tmp_path / "records", tier="fast", log=lambda _: None,
                           previous=previous, on_row=save)
    old = previous["commit"]
    assert saved[0] == [("H12", old), ("H10", result["commit"])], saved  # H12's earlier row kept while H10 ran
    assert saved[1] == [("H10", result["commit"]), ("H12", result["commit"])]

    def broken(ctx):
        raise RuntimeError("a claim that fails")

    monkeypatch.setitem(registry.REGISTRY, "H10", replace(get_claim("H10"), measure=broken))
    logged = []
    again = measure_parts(model, ["H10"], records_dir=tmp_path / "records", tier="fast", log=logged.append,
                          previous=previous)
    assert again["rows"] == [{**r, "run": old} for r in previous["rows"]], again["rows"]
    assert any("H10: ERROR" in line and "earlier row (run e99807e) is kept" in line for line in logged), logged
