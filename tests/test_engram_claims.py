"""H15 end to end on a tiny saved model: every variant trained, statistics recomputable from samples."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lazarus_bench.harness.registry import get_claim
from lazarus_bench.suite.runner import run_claim

CHANCE = {"sentiment": 1 / 2, "topic": 1 / 4}
OPEN = {"max_text_loss_ratio": 1e9}  # a tiny random-weight model models no text: these tests look past that gate


def text_loss_ratio_reference(handle, texts) -> float:
    """Next-token loss over every predicted token of ``texts`` (scipy's log-softmax of the model's logits) / ln V."""
    import mlx.core as mx
    from scipy.special import log_softmax

    total, count = 0.0, 0
    for text in texts:
        ids = handle.encode(text)
        logits = np.array(handle.model(mx.array([ids[:-1]])).astype(mx.float32))[0]
        total -= float(log_softmax(logits, axis=-1)[np.arange(len(ids) - 1), ids[1:]].sum())
        count += len(ids) - 1
    return total / count / np.log(handle.vocab_size)


def gate(record, name):
    return next(g for g in record.fitness if g.name == name)


@pytest.mark.parametrize("claim_id,dataset", [("H15a", "sentiment"), ("H15b", "topic")])
def test_h15_record_per_data_set(saved_model, tmp_path, check_gates, claim_id, dataset):
    """Each data set is its own claim and record: only its runs, its gain and engram criteria tested across seeds
    (n = 2 here), its M1 gate on its own data, and a statistic that names the generated stand-in it trained on."""
    record = run_claim(get_claim(claim_id), str(saved_model("llama")), tier="fast", report_dir=tmp_path,
                       log=lambda m: None, n_seeds=2,
                       overrides={**OPEN, "min_seeds": 2, "min_m1_above_chance": -1.0, "data": "generated"})
    assert record.status == "ok", record.reason
    assert record.statistic.verdict in ("SUPPORTED", "REFUTED", "INCONCLUSIVE")
    assert (tmp_path / "records" / f"{claim_id}__{record.model.slug}__corrected.json").exists()
    runs = record.samples
    assert {(r["seed"], r["dataset"], r["variant"]) for r in runs} == {
        (s, dataset, v) for s in (0, 1) for v in ("M1", "M2", "M3")}
    m1 = np.mean([r["val_accuracy"] for r in runs if r["variant"] == "M1"]) - CHANCE[dataset]
    from lazarus_bench.models import load_model
    from lazarus_bench.training.textcls import make_dataset

    texts = [e.text for e in make_dataset(dataset, 32, 16, 0, source="generated").train]  # the fast tier's n_train
    check_gates(record, {"M1 above chance": m1, "backbone models the data's text":
                         text_loss_ratio_reference(load_model(str(saved_model("llama"))), texts)})
    acc = {(r["seed"], r["variant"]): r["val_accuracy"] for r in runs}
    details = record.statistic.details
    gains = [acc[(s, "M2")] - acc[(s, "M1")] for s in (0, 1)]
    gain = details["criteria"]["dual_gain"]
    assert gain["n"] == 2 and gain["statistic"] == pytest.approx(np.mean(gains)) and gain["details"]["test"] == "sign"
    engram = details["criteria"]["engram_clustering"]["details"]["criteria"]
    m3 = [r for r in runs if r["variant"] == "M3"]
    assert engram["ari"]["statistic"] == pytest.approx(np.mean([r["engram"]["ari"] for r in m3]))
    assert engram["ari_minus_untrained"]["statistic"] == pytest.approx(
        np.mean([r["engram"]["ari"] - r["untrained_compressor"]["ari"] for r in m3]))
    assert all(c["details"]["test"] == "sign" and c["n"] == 2 for c in engram.values())
    assert record.statistic.n == 2
    assert all(r["engram"] is not None for r in m3)
    assert all(r["engram"] is None for r in runs if r["variant"] != "M3")
    assert set(record.curves["training_loss"]["series"]) == {"M1", "M2", "M3"}
    # the generated stand-in is named as such, never as the writeup's data set
    stand_in = {"sentiment": "SST-2", "topic": "AG News"}[dataset]
    assert details["data_is_the_writeups"] is False
    assert f"stand-in for {stand_in}" in record.statistic.name and f"stand-in for {stand_in}" in record.ours
    assert not record.ours.replace(f"stand-in for {stand_in}", "").count(stand_in)
    for control in record.controls:
        assert control.built and control.part == "engram_clustering", control


def test_h15_claims_declare_their_tests_and_five_seeds():
    for claim_id in ("H15a", "H15b"):
        claim = get_claim(claim_id)
        assert claim.default_seeds == {"fast": 1, "slow": 5} and claim.params["min_seeds"] == 5
        assert set(claim.tests) == {"dual_gain", "engram_ari", "engram_cluster_accuracy",
                                    "engram_within_minus_between", "engram_ari_minus_untrained"}
        assert set(claim.tests.values()) == {"sign"}
        assert "SST-2" not in claim.title + claim.statement and "AG News" not in claim.title + claim.statement


def test_h15_gates_each_data_set_on_its_own_m1(saved_model, tmp_path, monkeypatch):
    """The sentiment backbone at chance (+0.03) no longer decides the topic record (+0.25): each record's M1 gate
    reads its own data set, so topic goes on to M2 and M3 while sentiment stops after M1."""
    from lazarus_bench.claims import h15_engram
    from lazarus_bench.training import engram as engram_module

    real = engram_module.train_engram

    def fake(handle, variant, data, cfg, progress=False):
        res = real(handle, variant, data, cfg, progress=progress)
        return replace(res, val_accuracy={"sentiment": 0.53, "topic": 0.50}[data.name])

    monkeypatch.setattr(h15_engram, "train_engram", fake)
    path = str(saved_model("llama"))
    sentiment = run_claim(get_claim("H15a"), path, tier="fast", report_dir=tmp_path, log=lambda m: None,
                          overrides=OPEN)
    topic = run_claim(get_claim("H15b"), path, tier="fast", report_dir=tmp_path, log=lambda m: None, overrides=OPEN)
    m1_gate = "M1 above chance"
    assert sentiment.verdict == "NOT TESTABLE" and gate(sentiment, m1_gate).value == pytest.approx(0.03)
    assert {r["variant"] for r in sentiment.extra["descriptive"]["runs"]} == {"M1"}
    assert "stand-in for SST-2" in sentiment.extra["descriptive"]["data"]
    assert gate(topic, m1_gate).value == pytest.approx(0.25) and gate(topic, m1_gate).passed
    assert topic.verdict != "NOT TESTABLE" and {r["variant"] for r in topic.samples} == {"M1", "M2", "M3"}
    # the report shows one row per data set, the topic row naming the stand-in it trained on
    from lazarus_bench.suite.report import read_all, render

    text = read_all(render(tmp_path).parent)
    summaries = [page.split("## Replication summary")[1].split("\n## ")[0] for page in text.split("\n# H15")[1:]]
    rows = {line.split("|")[1].strip(): line for s in summaries for line in s.splitlines() if line.startswith("| H15")}
    assert set(rows) == {"H15a", "H15b"} and "NOT TESTABLE" in rows["H15a"]
    assert "stand-in for AG News" in rows["H15b"] and "## H15a:" in text and "## H15b:" in text


def test_h15_stops_after_m1_when_the_backbone_cannot_classify(saved_model, tmp_path):
    """The M1 gate is checked as soon as every M1 run is done: an impossible threshold leaves only M1 runs, the M1
    accuracies kept as the descriptive numbers, and no controls run."""
    record = run_claim(get_claim("H15b"), str(saved_model("llama")), tier="fast", report_dir=tmp_path,
                       log=lambda m: None, overrides={**OPEN, "min_m1_above_chance": 1.0})
    assert record.verdict == "NOT TESTABLE" and record.controls == () and "M1 above chance" in record.reason
    runs = record.extra["descriptive"]["runs"]
    assert {r["variant"] for r in runs} == {"M1"} and {r["dataset"] for r in runs} == {"topic"}
    m1 = np.mean([r["val_accuracy"] for r in runs]) - CHANCE["topic"]
    assert gate(record, "M1 above chance").value == pytest.approx(m1) and not gate(record, "M1 above chance").passed


def test_h15_stops_before_any_training_on_a_backbone_that_does_not_model_the_data(saved_model, tmp_path):
    """The text gate reads the backbone's next-token loss on the claim's own training texts as a share of ln V (scipy
    recomputes it) before anything is trained: a random-weight model (about chance, 1.0) fails the declared 0.6, so
    each claim is NOT TESTABLE with no run, no control and the M1 gate never reached; a threshold above the value lets
    the claim go on to M1."""
    from lazarus_bench.models import load_model
    from lazarus_bench.training.textcls import make_dataset

    path = str(saved_model("llama"))
    handle = load_model(path)
    for claim_id, dataset in (("H15a", "sentiment"), ("H15b", "topic")):
        assert get_claim(claim_id).params["max_text_loss_ratio"] == 0.6
        record = run_claim(get_claim(claim_id), path, tier="fast", report_dir=tmp_path, log=lambda m: None,
                           overrides={"data": "generated"})
        texts = [e.text for e in make_dataset(dataset, 32, 16, 0, source="generated").train]
        text_gate = gate(record, "backbone models the data's text")
        assert text_gate.value == pytest.approx(text_loss_ratio_reference(handle, texts), rel=1e-5)
        assert 0.9 < text_gate.value and not text_gate.passed and text_gate.direction == "below"
        assert record.verdict == "NOT TESTABLE" and record.controls == () and not record.samples
        assert [g.name for g in record.fitness] == ["trained language model", "backbone models the data's text"]
        passed = run_claim(get_claim(claim_id), path, tier="fast", report_dir=tmp_path, log=lambda m: None,
                           overrides={"data": "generated", "max_text_loss_ratio": text_gate.value + 1e-6,
                                      "min_m1_above_chance": 1.0})
        assert gate(passed, "backbone models the data's text").passed
        assert "M1 above chance" in passed.reason and passed.extra["descriptive"]["runs"]


def test_h15_skips_unsupported_backbones(saved_model, tmp_path):
    for claim_id in ("H15a", "H15b"):
        record = run_claim(get_claim(claim_id), str(saved_model("gemma2")), tier="fast", report_dir=tmp_path,
                           log=lambda m: None)
        assert record.status == "skipped" and "input_embeddings" in record.reason


def _save_real_sets(root):
    """Tiny SST-2 and AG News look-alikes in the layout `datasets.save_to_disk` writes (the real column names)."""
    datasets = pytest.importorskip("datasets", reason="the datasets package is not installed: "
                                   ".venv/bin/pip install 'lazarus-bench[data]' (.ci/run does)")
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
    for claim_id, dataset, folder, name in (("H15a", "sentiment", "sst2", "SST-2"),
                                            ("H15b", "topic", "ag_news", "AG News")):
        record = run_claim(get_claim(claim_id), str(saved_model("llama")), tier="fast",
                           report_dir=tmp_path / "rep", log=lambda m: None,
                           overrides={**OPEN, "min_m1_above_chance": 1.0})
        descriptive = record.extra["descriptive"]
        assert {(r["dataset"], r["data_source"]) for r in descriptive["runs"]} == {(dataset, str(tmp_path / folder))}
        assert descriptive["data"] == f"{name} ({tmp_path / folder})" and "stand-in" not in descriptive["data"]
