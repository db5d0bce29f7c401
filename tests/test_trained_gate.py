"""The trained-model gate: held-out loss against chance, computed as numpy would, and NOT TESTABLE for every claim on
a random-weight model before anything else runs; zoo models pass it."""

from __future__ import annotations

import dataclasses
import math

import mlx.core as mx
import numpy as np
import pytest

from lazarus_bench.analysis.fitness import heldout_loss, heldout_texts
from lazarus_bench.errors import LazarusError
from lazarus_bench.harness.registry import all_claims, get_claim
from lazarus_bench.stats import Verdict
from lazarus_bench.suite.runner import TRAINED_ENV, trained_gate

pytestmark = pytest.mark.trained_gate


def _numpy_loss(handle, texts):
    total, count = 0.0, 0
    for text in texts:
        ids = handle.encode(text)
        logits = np.array(handle.model(mx.array([ids[:-1]])).astype(mx.float32))[0].astype(np.float64)
        logits -= logits.max(axis=-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        total -= logp[np.arange(len(ids) - 1), ids[1:]].sum()
        count += len(ids) - 1
    return total / count, count


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mixtral"])
def test_heldout_loss_is_mean_next_token_nll(handle_of, arch):
    handle = handle_of(arch)
    got = heldout_loss(handle)
    nats, count = _numpy_loss(handle, heldout_texts())
    assert got.tokens == count and got.nats == pytest.approx(nats, rel=1e-5)
    assert got.chance == pytest.approx(math.log(handle.vocab_size)) and got.ratio == pytest.approx(nats / got.chance)


def test_random_weights_sit_near_chance_and_fail_the_gate(handle_of):
    gate = trained_gate(handle_of("llama"))
    assert not gate.passed and 0.9 < gate.value < 1.3 and gate.threshold == 0.6


def test_a_zoo_model_passes_the_gate():
    from lazarus_bench.models import load_model

    gate = trained_gate(load_model("zoo:base"))
    assert gate.passed and gate.value < 0.3, gate.line()


def test_gate_threshold_comes_from_the_environment(handle_of, monkeypatch):
    monkeypatch.setenv(TRAINED_ENV, "2.0")
    assert trained_gate(handle_of("llama")).passed
    for bad in ("lots", "0", "-1", "nan"):
        monkeypatch.setenv(TRAINED_ENV, bad)
        with pytest.raises(LazarusError, match=f"{TRAINED_ENV}='{bad}': expected a positive number"):
            trained_gate(handle_of("llama"))


def test_a_bad_gate_threshold_stops_the_run_before_any_record(saved_model, tmp_path, monkeypatch):
    from lazarus_bench.suite.runner import run_suite

    monkeypatch.setenv(TRAINED_ENV, "lots")
    with pytest.raises(LazarusError, match="expected a positive number"):
        run_suite([str(saved_model("llama"))], ["H02"], tier="fast", report_dir=tmp_path, log=lambda m: None)
    assert not (tmp_path / "records").exists()


@pytest.mark.parametrize("claim_id", [c.id for c in all_claims()])
def test_every_claim_is_not_testable_on_random_weights_without_running(saved_model, tmp_path, claim_id,
                                                                       monkeypatch):
    """A random-weight model stops at the gate for every claim: no measure, no control, no training (H10 on a MoE
    model, H06 on a base model with a known instruct pair, so that each claim applies)."""
    from lazarus_bench.harness.pairs import INSTRUCT_PAIRS
    from lazarus_bench.suite.runner import run_claim

    model = str(saved_model("mixtral" if claim_id == "H10" else "llama"))
    monkeypatch.setitem(INSTRUCT_PAIRS, model, str(saved_model("llama", seed=1)))
    record = run_claim(get_claim(claim_id), model, tier="fast", report_dir=tmp_path,
                       cache_dir=tmp_path / "cache", log=lambda m: None)
    assert record.status == "ok" and record.verdict == Verdict.NOT_TESTABLE, record.reason
    assert [g.name for g in record.fitness] == ["trained language model"] and not record.fitness[0].passed
    assert record.controls == () and record.reason.startswith("fitness gate 'trained language model'")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_gate_known_before_the_run_stops_it_there(saved_model, tmp_path, monkeypatch):
    """H13's remain gates read the untrained model's lens: a tiny random model has no 'remain' read-out, so the record
    is NOT TESTABLE with the gate's value, and nothing is measured or trained."""
    from lazarus_bench.suite.runner import run_claim

    monkeypatch.setenv(TRAINED_ENV, "1e9")
    claim = dataclasses.replace(get_claim("H13"), measure=lambda ctx: pytest.fail("the measure ran"))
    record = run_claim(claim, str(saved_model("llama")), tier="fast", report_dir=tmp_path, cache_dir=tmp_path / "c",
                       log=lambda m: None)
    assert record.verdict == Verdict.NOT_TESTABLE and [g.name for g in record.fitness][:2] == [
        "trained language model", "remain presence before SFT"]
    assert record.fitness[0].passed and not record.fitness[1].passed and record.fitness[1].value < 0.01
    assert record.reason.startswith("fitness gate 'remain presence before SFT'") and record.controls == ()
    assert not (tmp_path / "c").exists()
