"""H15 end to end on a tiny saved model: every variant trained, statistics recomputable from samples."""

from __future__ import annotations

import numpy as np

from lazarus_bench.claims.base import get_claim
from lazarus_bench.suite.runner import run_claim


def test_h15_fast_tier_record(saved_model, tmp_path, check_gates):
    record = run_claim(get_claim("H15"), str(saved_model("llama")), tier="fast", report_dir=tmp_path,
                       log=lambda m: None)
    assert record["status"] == "ok", record.get("reason")
    assert record["statistic"]["verdict"] in ("SUPPORTED", "REFUTED", "INCONCLUSIVE")
    runs = record["samples"]
    chance = {"sentiment": 1 / 2, "topic": 1 / 4}
    m1 = min(r["val_accuracy"] - chance[r["dataset"]] for r in runs if r["variant"] == "M1")
    check_gates(record, {"M1 above chance": m1})
    assert {(r["dataset"], r["variant"]) for r in runs} == {(d, v) for d in ("sentiment", "topic")
                                                            for v in ("M1", "M2", "M3")}
    acc = {(r["dataset"], r["variant"]): r["val_accuracy"] for r in runs}
    gains = [acc[(d, "M2")] - acc[(d, "M1")] for d in ("sentiment", "topic")]
    assert record["statistic"]["statistic"] == np.mean(gains)
    assert all(r["engram"] is not None for r in runs if r["variant"] == "M3")
    assert all(r["engram"] is None for r in runs if r["variant"] != "M3")
    assert set(record["curves"]["training_loss"]["series"]) == {f"{d} {v}" for d in ("sentiment", "topic")
                                                                for v in ("M1", "M2", "M3")}


def test_h15_skips_unsupported_backbones(saved_model, tmp_path):
    record = run_claim(get_claim("H15"), str(saved_model("gemma2")), tier="fast", report_dir=tmp_path,
                       log=lambda m: None)
    assert record["status"] == "skipped" and "input_embeddings" in record["reason"]
