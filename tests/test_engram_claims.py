"""H15 end to end on a tiny saved model: every variant trained, statistics recomputable from samples."""

from __future__ import annotations

import numpy as np

from lazarus_bench.claims.base import get_claim
from lazarus_bench.suite.runner import run_claim


def test_h15_fast_tier_record(saved_model, tmp_path, check_gates):
    """Two seeds: each data set's gain is tested across seeds (n = 2), never pooled over seeds x data sets (n = 4)."""
    record = run_claim(get_claim("H15"), str(saved_model("llama")), tier="fast", report_dir=tmp_path,
                       log=lambda m: None, n_seeds=2, overrides={"min_n": 2, "min_m1_above_chance": -1.0})
    assert record["status"] == "ok", record.get("reason")
    assert record["statistic"]["verdict"] in ("SUPPORTED", "REFUTED", "INCONCLUSIVE")
    runs = record["samples"]
    chance = {"sentiment": 1 / 2, "topic": 1 / 4}
    m1 = {d: np.mean([r["val_accuracy"] for r in runs if r["variant"] == "M1" and r["dataset"] == d]) - chance[d]
          for d in chance}
    check_gates(record, {"M1 above chance": min(m1.values())})
    assert {(r["seed"], r["dataset"], r["variant"]) for r in runs} == {
        (s, d, v) for s in (0, 1) for d in ("sentiment", "topic") for v in ("M1", "M2", "M3")}
    acc = {(r["seed"], r["dataset"], r["variant"]): r["val_accuracy"] for r in runs}
    criteria = record["statistic"]["details"]["criteria"]
    for d in ("sentiment", "topic"):
        gains = [acc[(s, d, "M2")] - acc[(s, d, "M1")] for s in (0, 1)]
        assert criteria[d]["n"] == 2 and criteria[d]["statistic"] == np.mean(gains)
        ari = [r["engram"]["ari"] for r in runs if r["variant"] == "M3" and r["dataset"] == d]
        per = record["statistic"]["details"]["parts"]["engram_clustering"]["per_dataset"][d]
        assert per["n"] == 2 and per["statistic"] == np.mean(ari)
    assert record["statistic"]["n"] == 2
    assert all(r["engram"] is not None for r in runs if r["variant"] == "M3")
    assert all(r["engram"] is None for r in runs if r["variant"] != "M3")
    assert set(record["curves"]["training_loss"]["series"]) == {f"{d} {v}" for d in ("sentiment", "topic")
                                                                for v in ("M1", "M2", "M3")}


def test_h15_stops_after_m1_when_the_backbone_cannot_classify(saved_model, tmp_path):
    """The M1 gate is checked as soon as every M1 run is done: an impossible threshold leaves only M1 runs, the M1
    accuracies kept as the descriptive numbers, and no controls run."""
    record = run_claim(get_claim("H15"), str(saved_model("llama")), tier="fast", report_dir=tmp_path,
                       log=lambda m: None, overrides={"min_m1_above_chance": 1.0})
    assert record["verdict"] == "NOT TESTABLE" and record["controls"] == [] and "M1 above chance" in record["reason"]
    runs = record["extra"]["descriptive"]["runs"]
    assert {r["variant"] for r in runs} == {"M1"} and {r["dataset"] for r in runs} == {"sentiment", "topic"}
    chance = {"sentiment": 1 / 2, "topic": 1 / 4}
    m1 = {d: np.mean([r["val_accuracy"] for r in runs if r["dataset"] == d]) - chance[d] for d in chance}
    assert record["fitness"][0]["value"] == min(m1.values()) and not record["fitness"][0]["passed"]


def test_h15_skips_unsupported_backbones(saved_model, tmp_path):
    record = run_claim(get_claim("H15"), str(saved_model("gemma2")), tier="fast", report_dir=tmp_path,
                       log=lambda m: None)
    assert record["status"] == "skipped" and "input_embeddings" in record["reason"]
