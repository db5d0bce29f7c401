"""H15 end to end on a tiny saved model: every variant trained, statistics recomputable from samples."""

from __future__ import annotations

import numpy as np
import pytest

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


def _save_real_sets(root):
    """Tiny SST-2 and AG News look-alikes in the layout `datasets.save_to_disk` writes (the real column names)."""
    datasets = pytest.importorskip("datasets", reason="the datasets package is not installed")
    sst = {split: datasets.Dataset.from_dict({"sentence": [f"sst {split} {i}" for i in range(40)],
                                              "label": [i % 2 for i in range(40)]})
           for split in ("train", "validation")}
    datasets.DatasetDict(sst).save_to_disk(str(root / "sst2"))
    ag = {split: datasets.Dataset.from_dict({"text": [f"ag {split} {i}" for i in range(40)],
                                             "label": [i % 4 for i in range(40)]}) for split in ("train", "test")}
    datasets.DatasetDict(ag).save_to_disk(str(root / "ag_news"))


def test_real_data_sets_are_balanced_seeded_and_labelled(tmp_path, monkeypatch):
    from lazarus_bench.training.textcls import make_dataset

    _save_real_sets(tmp_path)
    monkeypatch.setenv("LAZARUS_DATA_DIR", str(tmp_path))
    data = make_dataset("topic", 8, 4, seed=3, source="real")
    assert data.meta["source"] == str(tmp_path / "ag_news") and data.classes[3] == "science"
    assert sorted(e.label for e in data.train) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert all(e.text.startswith("ag train") and int(e.text.split()[-1]) % 4 == e.label for e in data.train)
    assert all(e.text.startswith("ag test") for e in data.val)
    assert [e.text for e in make_dataset("topic", 8, 4, seed=3, source="real").train] == [e.text for e in data.train]
    assert [e.text for e in make_dataset("topic", 8, 4, seed=4, source="real").train] != [e.text for e in data.train]


def test_auto_falls_back_to_generated_and_says_why(tmp_path, monkeypatch):
    from lazarus_bench.errors import LazarusError
    from lazarus_bench.training.textcls import make_dataset

    monkeypatch.setenv("LAZARUS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = make_dataset("sentiment", 8, 4, seed=0, source="auto")
    assert data.meta["source"].startswith("generated (real data: ")
    with pytest.raises(LazarusError):
        make_dataset("sentiment", 8, 4, seed=0, source="real")


def test_h15_trains_on_the_real_sets_when_present(saved_model, tmp_path, monkeypatch):
    _save_real_sets(tmp_path)
    monkeypatch.setenv("LAZARUS_DATA_DIR", str(tmp_path))
    record = run_claim(get_claim("H15"), str(saved_model("llama")), tier="fast", report_dir=tmp_path / "rep",
                       log=lambda m: None, overrides={"min_m1_above_chance": 1.0})
    sources = {r["dataset"]: r["data_source"] for r in record["extra"]["descriptive"]["runs"]}
    assert sources == {"sentiment": str(tmp_path / "sst2"), "topic": str(tmp_path / "ag_news")}
