"""H02-H04 end to end on a tiny saved model (fast tier), checked against independent recomputations."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from lazarus_bench import prompts
from lazarus_bench.analysis.features import last_token_states
from lazarus_bench.analysis.probes import cluster_shortfall_test
from lazarus_bench.harness.base import ModelInfo
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.models import load_model
from lazarus_bench.stats import ClaimStatistic
from lazarus_bench.suite.runner import ModelPool, run_claim

VERDICTS = {"SUPPORTED", "REFUTED", "INCONCLUSIVE"}


@pytest.fixture(scope="module")
def model_dir(saved_model):
    return str(saved_model("llama"))


@pytest.fixture(scope="module")
def handle(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def records(model_dir, tmp_path_factory):
    """Each probe claim's measure alone on the tiny model: its controls, most of a run's time, have their own tests
    (test_controls.py) and run in the hypothesis tier."""
    pool, out = ModelPool(), tmp_path_factory.mktemp("reports")
    return {cid: run_claim(replace(get_claim(cid), controls=(), graded=(), nulls=()), model_dir, tier="fast",
                           report_dir=out, pool=pool, log=lambda m: None)
            for cid in ("H02", "H03", "H04")}


def reference_pipeline(C: float = 1.0) -> Pipeline:
    """An independently built copy of the probe classifier."""
    return Pipeline([("s", StandardScaler()), ("lr", LogisticRegression(C=C, max_iter=2000, random_state=0))])


@pytest.mark.parametrize("cid", ["H02", "H03", "H04"])
def test_record_is_complete(records, cid):
    record = records[cid]
    assert record.status == "ok", record.traceback or record.reason
    assert record.verdict in VERDICTS and record.reason
    stat = record.statistic
    assert isinstance(stat, ClaimStatistic)
    assert stat.verdict == record.verdict
    assert math.isfinite(stat.statistic) and 0.0 <= stat.p_value <= 1.0
    assert record.samples and record.curves and record.ours
    for curve in record.curves.values():
        assert all(len(ys) == len(curve["x"]) for ys in curve["series"].values())
    assert record.tier == "fast" and record.params == get_claim(cid).parameters("fast")
    json.dumps({k: record.to_dict()[k] for k in ("statistic", "samples", "curves", "extra")})


def test_h02_statistic_matches_samples_and_sklearn(records, handle):
    record = records["H02"]
    stat, details = record.statistic, record.statistic.details
    train = [s for s in record.samples if s["split"] == "train"]
    assert len(train) == details["n_prompts"] == 64 and stat.n == details["n_clusters"] == 16, "unit: the pair"
    assert stat.statistic == pytest.approx(np.mean([s["correct_stratified"] for s in train]))
    assert "operand pair" in details["cluster"] and "operand-pair cluster" in details["test"]
    for scheme, key in (("stratified", "correct_stratified"), ("leave-one-pair-out", "correct_leave_one_pair_out")):
        per_pair = [np.mean([s[key] for s in train if s["pair"] == q]) for q in range(16)]
        assert details["accuracy_per_pair"][scheme] == pytest.approx(per_pair)
        whole, k = sum(a == 1.0 for a in per_pair), sum(s[key] for s in train)
        assert details["clusters_entirely_correct"][scheme] == whole
        # the count that decided it, in the record's text: prompts and clusters
        shown = f"{k}/64 correct, {whole}/16 operand pairs all correct ({scheme})"
        assert shown in record.ours and shown in record.reason, shown
        # exact binomial over the 16 clusters: flawed clusters against the 3.2 / 16 = 0.2 an accuracy of 95% allows
        flawed, least = 16 - whole, details["shortfall_tests"][scheme]["min_flawed_for_bound"]
        expected = sps.binom.sf(flawed - 1, 16, 0.2) if flawed >= least else 1.0
        assert details["shortfall_p"][scheme] == pytest.approx(expected)
    mde = record.mde["value"]
    writeup_design = cluster_shortfall_test(np.ones(16, bool), [j for j in range(4) for _ in range(4)], 0.95, 0.025)
    assert math.isfinite(mde) and 0.0 < mde < writeup_design["mde"], "16 clusters detect less than the writeup's 4"
    assert record.mde["how"] == details["mde_definition"] and "clusters" in details["mde_definition"]
    assert details["accuracy_leave_one_pair_out"] == pytest.approx(
        np.mean([s["correct_leave_one_pair_out"] for s in train])
    )
    n_perm = record.params["n_permutations"]
    assert 1 / (n_perm + 1) <= stat.p_value <= 1.0 and stat.p_value == details["permutation_p"]

    symbol = prompts.symbol_set_extended(16)
    X, labels = last_token_states(handle, symbol.texts(), [0])
    y = np.asarray(symbol.labels())
    pred = cross_val_predict(reference_pipeline(), X[0], y, cv=StratifiedKFold(4, shuffle=True, random_state=0))
    assert [str(v) for v in pred] == [s["pred_stratified"] for s in train]
    assert record.curves["probe_accuracy"]["x"] == ["emb"] + [str(i) for i in range(handle.n_layers)]
    test = [s for s in record.samples if s["split"] == "test" and s["fitted_at"] == "best"]
    assert details["test_accuracy_best_layer"] == pytest.approx(np.mean([s["correct"] for s in test]))


def test_h03_gain_matches_samples(records):
    record = records["H03"]
    stat, details, samples = record.statistic, record.statistic.details, record.samples
    assert len(samples) == 64 and stat.n == details["n_cells"] == 16, "the template x pair cell is the unit"
    gain = np.mean([s["correct_selected"] - s["correct_l0"] for s in samples])
    assert stat.statistic == pytest.approx(gain)
    assert stat.ci_low <= gain <= stat.ci_high or details["gain_ci_degenerate"]
    cells = {}
    for s in samples:
        cells.setdefault((s["template"], s["pair"]), []).append(s["correct_selected"] - s["correct_l0"])
    per_cell = [np.mean(v) for v in cells.values()]
    assert sorted(details["gain_per_cell"]) == pytest.approx(sorted(per_cell))
    k = sum(v > 0 for v in per_cell)
    assert stat.p_value == pytest.approx(sps.binom.sf(k - 1, 16, 0.5)), "exact sign test over the 16 cells"
    for s in samples:
        assert s["correct_l0"] == (s["pred_l0_leave_one_template_out"] == s["label"])
        assert s["correct_selected"] == (s["pred_selected"] == s["label"])
        assert isinstance(s["selected_layer"], int) and s["selected_layer"] > 0
    assert details["accuracy_l0_leave_one_template_out"] == pytest.approx(np.mean([s["correct_l0"] for s in samples]))
    assert details["accuracy_l0_stratified"] == pytest.approx(
        np.mean([s["pred_l0_stratified"] == s["label"] for s in samples])
    )
    curve = record.curves["probe_accuracy"]
    layer0 = curve["x"].index("0")
    assert curve["series"]["leave-one-template-out"][layer0] == pytest.approx(
        details["accuracy_l0_leave_one_template_out"]
    )
    assert curve["series"]["permutation null mean"][0] is None
    random_l0 = curve["series"]["random-init stratified"][layer0]
    assert details["random_init_l0_accuracy"] == pytest.approx(random_l0), "the random-init block 0, beside ours"
    assert f"random-init model: block 0 {random_l0:.1%}" in record.ours
    n_perm = record.params["n_permutations"]
    assert 1 / (n_perm + 1) <= details["max_statistic_p"] <= 1.0


def test_h03_verdict_reads_the_deconfounded_set(records):
    record = records["H03"]
    assert [s["prompt"] for s in record.samples] == prompts.word_set_deconfounded().texts()
    details = record.statistic.details
    assert details["prompt_set"] == "deconfounded" and "accuracy_l0_stratified" in details["writeup_set"]


def test_h04_ranks_match_numpy(records, handle):
    record = records["H04"]
    stat, details = record.statistic, record.statistic.details
    layer = details["layer"]
    assert layer == int(0.55 * handle.n_layers)
    items = [it for it in [*prompts.symbol_set("train"), *prompts.symbol_set("test")]
             if it.label in ("multiply", "add")]
    assert record.extra["prompts"] == [it.text for it in items], "the writeup's classifier used symbol prompts"
    assert details["prompt_set"] == "symbol" and "word_set_best_percentile" in details
    X, _ = last_token_states(handle, [it.text for it in items], [layer])
    y = np.asarray([it.label == "multiply" for it in items], dtype=int)
    w_ref = X[0][y == 1].mean(axis=0) - X[0][y == 0].mean(axis=0)  # the class-mean difference, in numpy
    w = np.asarray(record.extra["direction"])
    np.testing.assert_allclose(w, w_ref, rtol=1e-4, atol=1e-6)
    assert "outside_top" in details["test"] and record.mde["value"] != 0

    assert handle.tied
    W = np.array(handle.model.model.embed_tokens.weight, dtype=np.float64)
    g = np.array(handle.model.model.norm.weight, dtype=np.float64)
    v = g * w
    scores = W @ v / (np.linalg.norm(W, axis=1) * np.linalg.norm(v))
    V = W.shape[0]
    tok = handle.tokenizer
    multiply = [s for s in record.samples if s["word"] == "multiply"]
    assert {s["spelling"] for s in multiply} == {"without_space", "with_space"}
    for s in multiply:
        text = "multiply" if s["spelling"] == "without_space" else " multiply"
        assert s["token_id"] == tok.encode(text, add_special_tokens=False)[0]
        t, eps = s["token_id"], 1e-5
        assert 1 + np.sum(scores > scores[t] + eps) <= s["rank"] <= 1 + np.sum(scores > scores[t] - eps)
        assert 1 + np.sum(scores < scores[t] - eps) <= s["rank_from_bottom"] <= 1 + np.sum(scores < scores[t] + eps)
    best = min(s["rank"] for s in multiply)
    assert details["best_rank"] == best and stat.statistic == pytest.approx(best / V)
    boot = np.asarray(record.extra["bootstrap_percentiles"])
    assert boot.size == record.params["n_bootstrap"]
    assert stat.ci_low == pytest.approx(np.quantile(boot, 0.05)) and stat.ci_high == pytest.approx(
        np.quantile(boot, 0.95)
    )
    assert stat.p_value == pytest.approx((1 + np.sum(boot <= 0.01)) / (boot.size + 1))
    null = np.asarray(record.extra["null_percentiles"])
    m = len({s["token_id"] for s in multiply})
    assert null.size == record.params["n_null"] and details["n_spellings"] == m
    assert abs(np.median(null) - (1 - 0.5 ** (1 / m))) < 0.15


def test_h04_skips_instruct_models():
    info = ModelInfo(model_id="x-instruct", model_type="llama", kind="instruct", n_layers=4, is_moe=False, tied=True)
    assert "instruct" in get_claim("H04").applies(info)
    assert get_claim("H02").applies(info) is None and get_claim("H03").applies(info) is None


def test_fast_tier_overrides_are_smaller():
    for cid in ("H02", "H03", "H04"):
        claim = get_claim(cid)
        fast, slow = claim.parameters("fast"), claim.parameters("slow")
        assert set(claim.fast) <= set(claim.params)
        assert all(fast[k] < slow[k] for k in claim.fast)


def test_h04_cosine_z_matches_numpy(records, handle):
    """The cosine's z (description): the best spelling cosine against the best cosines of the same seeded Gaussian
    directions, recomputed here."""
    record = records["H04"]
    w = np.asarray(record.extra["direction"], dtype=np.float64)
    W = np.array(handle.model.model.embed_tokens.weight, dtype=np.float64)
    g = np.array(handle.model.model.norm.weight, dtype=np.float64)
    ids = sorted({s["token_id"] for s in record.samples if s["word"] == "multiply"})
    rows = W[ids] / np.linalg.norm(W[ids], axis=1, keepdims=True)
    best = max(rows @ (g * w) / np.linalg.norm(g * w))
    Z = np.random.default_rng(record.params["seed"]).standard_normal((record.params["n_null"], W.shape[1]),
                                                                     dtype=np.float32) * g
    null = (Z / np.linalg.norm(Z, axis=1, keepdims=True) @ rows.T).max(axis=1)
    assert record.statistic.details["cosine_z"] == pytest.approx((best - null.mean()) / null.std(ddof=1), rel=1e-3)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 200).filter(lambda k: k != 100), min_size=20, max_size=200), st.floats(0.01, 0.2))
def test_h04_sides_are_mirror_images(ranks, alpha):
    """Mirroring the resampled percentiles (k / 10,000) about the 1% cut-off swaps the two verdicts and their
    p-values: neither side asks more than the other."""
    from lazarus_bench.claims.h04_probe_direction_vocab import rank_sides

    boot, mirrored = np.asarray(ranks) / 10_000, (200 - np.asarray(ranks)) / 10_000
    inside, outside, p_out, p_in = rank_sides(boot, 0.01, alpha)
    m_inside, m_outside, m_p_out, m_p_in = rank_sides(mirrored, 0.01, alpha)
    assert (inside, outside) == (m_outside, m_inside) and (p_out, p_in) == (m_p_in, m_p_out)
