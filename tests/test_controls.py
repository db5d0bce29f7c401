"""Negative and positive controls: each is wired to the model or edit it names, and the verdict rules use them."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from lazarus_bench import prompts
from lazarus_bench.claims.base import ClaimContext, calibration, get_claim, model_info
from lazarus_bench.claims.common import probed_labels, probed_texts
from lazarus_bench.claims.fixtures import dual_model
from lazarus_bench.suite.runner import ModelPool, run_claim


def _run(claim_id, model_dir, tmp_path, pool=None, **kw):
    return run_claim(get_claim(claim_id), str(model_dir), tier="fast", report_dir=tmp_path / "out",
                     cache_dir=tmp_path / "cache", pool=pool or ModelPool(), log=lambda m: None, **kw)


def _controls(record):
    return {c["name"]: c for c in record["controls"]}


def test_calibration_labels():
    pos = {"built": True, "kind": "positive", "name": "p", "effect_verdict": "REFUTED"}
    neg = {"built": True, "kind": "negative", "name": "n", "effect_verdict": "REFUTED"}
    assert calibration([{**pos, "detected": True}, {**neg, "detected": False}])[0] == "calibrated"
    label, why = calibration([{**pos, "detected": False, "verdict": "SUPPORTED"}, {**neg, "detected": False}])
    assert label == "insensitive" and why.startswith("INSENSITIVE: positive control 'p' not detected")
    assert calibration([{**pos, "detected": True}, {**neg, "detected": True, "verdict": "REFUTED"}])[0] == \
        "not specific"
    assert calibration([{"built": False, "kind": "positive", "name": "x", "reason": "r"}])[0] == "uncalibrated"
    assert calibration([{"built": False, "kind": "positive", "name": "x", "reason": "r"},
                        {**neg, "detected": False}])[0] == "negative control only"


def _planted_op_words(handle):
    """Edit the (tied) unembedding so every operation word's row points along the final-normed residual of the
    prompts: the lens then shows the operation words at every layer, which H01 must flag."""
    from lazarus_bench.analysis.lens import target_spellings

    states = [handle.forward(mx.array([handle.encode(t)])).hidden for t in prompts.dual_reward_eval().texts()]
    mean = mx.mean(mx.stack([handle.final_norm(h[-1][0, -1]) for h in states]), axis=0)
    direction = mean / mx.linalg.norm(mean)
    weight = np.array(handle.embed.weight)
    for word in prompts.operation_words():
        for toks in target_spellings(handle, word).values():
            weight[toks[0]] = 40.0 * np.array(direction)
    handle.embed.weight = mx.array(weight)
    return handle


def test_h01_flags_a_planted_effect(saved_model, tmp_path):
    from lazarus_bench.models import load_model

    path = str(saved_model("llama"))
    pool = ModelPool()
    pool._handles[path] = _planted_op_words(load_model(path))
    planted = _run("H01", path, tmp_path, pool)
    assert planted["statistic"]["verdict"] == "REFUTED", planted["statistic"]["reason"]


@pytest.mark.parametrize("claim_id", ["H01", "H04"])
def test_random_init_and_dual_reward_controls_measure_the_models_they_name(saved_model, tmp_path, claim_id):
    from lazarus_bench.models import load_model

    path = str(saved_model("llama"))
    record = _run(claim_id, path, tmp_path)
    controls = _controls(record)
    assert set(controls) == {"random-init model", "dual-reward-trained model"}
    assert all(c["built"] for c in controls.values())
    # Each control's statistic is the claim's measure on the model it names (recomputed here from that model).
    claim = get_claim(claim_id)
    handle = load_model(path)
    ctx = ClaimContext(claim, model_info(handle), tier="fast", seeds=[], params=claim.parameters("fast"),
                       cache_dir=tmp_path / "cache", shared=handle)
    trained = claim.measure(ctx.variant(handle=dual_model(ctx)))
    assert controls["dual-reward-trained model"]["statistic"]["value"] == trained.statistic.statistic
    random = claim.measure(ctx.variant(handle=ctx.random_control()))
    assert controls["random-init model"]["statistic"]["value"] == random.statistic.statistic
    assert record["statistic"]["statistic"] != random.statistic.statistic
    # 4 training steps need not plant the effect: a missed positive control means no verdict is drawn.
    if not controls["dual-reward-trained model"]["detected"]:
        assert record["calibration"] == "insensitive" and record["verdict"] == "INCONCLUSIVE"
        assert record["reason"].startswith("INSENSITIVE") and record["measured_verdict"]


def test_h02_controls_permute_labels_and_read_the_operator_token(saved_model, tmp_path):
    items = list(prompts.symbol_set("train"))
    texts = probed_texts(items, {"position": "operator"})
    assert all(t.endswith(f" {it.op}") and it.text.startswith(t) for t, it in zip(texts, items))
    shuffled = probed_labels(items, {"label_permutation": 1})
    assert sorted(shuffled) == sorted(it.label for it in items) and list(shuffled) != [it.label for it in items]

    record = _run("H02", saved_model("llama"), tmp_path)
    controls = _controls(record)
    assert controls["operator position"]["detected"], controls["operator position"]["reason"]
    assert not controls["permuted labels"]["detected"], controls["permuted labels"]["reason"]
    assert controls["operator position"]["statistic"]["value"] != controls["permuted labels"]["statistic"]["value"]


@pytest.mark.parametrize("arch", ["mixtral", "qwen2_moe"])
def test_h10_planted_router_row_is_flagged_and_random_rows_are_not(saved_model, tmp_path, arch):
    record = _run("H10", saved_model(arch), tmp_path)
    controls = _controls(record)
    planted, random = controls["planted router row"], controls["random router rows"]
    assert planted["built"] and planted["detected"] and planted["verdict"] == "REFUTED", planted["reason"]
    assert random["built"] and not random["detected"], random["reason"]
    assert record["calibration"] == "calibrated"


def test_h03_states_the_control_it_cannot_build(saved_model, tmp_path):
    record = _run("H03", saved_model("llama"), tmp_path)
    planted = _controls(record)["feature planted at a middle block"]
    assert not planted["built"] and "not built yet" in planted["reason"]
    assert _controls(record)["random-init model"]["built"]


def test_h05_untrained_runs_measure_the_model_before_training(saved_model, tmp_path):
    """The negative control trains with the learning rate at 0: its 'after' is the untrained model, so its statistic
    (mean restricted op-word probability) equals the trained runs' 'before' values, and it is not flagged."""
    record = _run("H05", saved_model("llama"), tmp_path, n_seeds=2, overrides={"min_seeds": 2})
    untrained = _controls(record)["untrained runs"]
    assert untrained["built"] and not untrained["detected"]
    before = np.mean([s["restricted_prob_before"] for s in record["samples"]])
    assert untrained["statistic"]["value"] == pytest.approx(before, rel=1e-6)
    assert record["statistic"]["statistic"] != pytest.approx(before, rel=1e-6)
