"""H10 end to end on tiny saved MoE models (fast tier), checked against an independent numpy recomputation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lazarus_bench.harness.registry import get_claim
from lazarus_bench.models import load_model
from lazarus_bench.stats import ClaimStatistic
from lazarus_bench.suite.runner import ModelPool, run_claim

VERDICTS = {"SUPPORTED", "REFUTED", "INCONCLUSIVE"}


@pytest.fixture(scope="module")
def pool():
    return ModelPool()


def run(saved_model, arch, pool, tmp_path):
    return run_claim(get_claim("H10"), str(saved_model(arch)), tier="fast", report_dir=tmp_path, pool=pool,
                     log=lambda m: None)


def explicit_cosines(R, g_r, W, g_f):
    """cos(R_e * g_r, W_v * g_f) for every expert row and vocabulary row, in float64."""
    A = R * g_r
    B = W * g_f
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    return A @ B.T


def test_h10_matches_numpy_on_mixtral(saved_model, pool, tmp_path):
    record = run(saved_model, "mixtral", pool, tmp_path)
    assert record.status == "ok", record.traceback or record.reason
    assert record.verdict in VERDICTS and record.reason
    stat, details, samples = record.statistic, record.statistic.details, record.samples
    assert isinstance(stat, ClaimStatistic)
    assert record.curves and record.ours
    for curve in record.curves.values():
        assert all(len(ys) == len(curve["x"]) for ys in curve["series"].values())
    json.dumps({k: record.to_dict()[k] for k in ("statistic", "samples", "curves", "extra")})

    model = load_model(str(saved_model("mixtral"))).model
    W = np.array(model.lm_head.weight, dtype=np.float64)
    g_f = np.array(model.model.norm.weight, dtype=np.float64)
    U = W * g_f
    common = (U / np.linalg.norm(U, axis=1, keepdims=True)).mean(axis=0)
    assert details["common_direction_strength"] == pytest.approx(np.linalg.norm(common), abs=1e-5)
    P = np.eye(W.shape[1]) - np.outer(common, common) / (common @ common)
    expected, expected_perp = {}, {}
    for i, layer in enumerate(model.model.layers):
        R = np.array(layer.block_sparse_moe.gate.weight, dtype=np.float64)
        g_r = np.array(layer.post_attention_layernorm.weight, dtype=np.float64)
        S = explicit_cosines(R, g_r, W, g_f)
        S_perp = explicit_cosines((R * g_r) @ P, 1.0, U @ P, 1.0)
        for e in range(R.shape[0]):
            expected[(i, e)], expected_perp[(i, e)] = S[e], S_perp[e]
    assert len(samples) == len(expected)
    layers = sorted({s["layer"] for s in samples})
    assert stat.n == len(layers), "the MoE layer is the unit: upcycled experts are not independent"
    for s in samples:
        row = expected[(s["layer"], s["expert"])]
        assert s["max_cosine"] == pytest.approx(row.max(), abs=1e-5)
        assert s["max_cosine_without_common_direction"] == pytest.approx(
            expected_perp[(s["layer"], s["expert"])].max(), abs=1e-5)
        top = [t for _, t, _ in s["top_tokens"]]
        assert len(top) == record.params["top_k"]
        np.testing.assert_allclose([c for _, _, c in s["top_tokens"]], np.sort(row)[::-1][:len(top)], atol=1e-5)
        assert int(np.argmax(row)) == top[0]

    null = np.asarray(record.extra["null_values"])
    assert null.size == math.ceil(record.params["null_per_test"] * len(samples) / record.params["alpha"])
    assert details["null_mean"] == pytest.approx(null.mean()) and details["null_std"] == pytest.approx(null.std())
    z = [(s["max_cosine"] - null.mean()) / null.std() for s in samples]
    np.testing.assert_allclose([s["z"] for s in samples], z, atol=1e-9)
    per_layer = [np.mean([zi for zi, s in zip(z, samples) if s["layer"] == lay]) for lay in layers]
    assert stat.statistic == pytest.approx(np.mean(per_layer))
    assert details["mean_z_per_layer"] == pytest.approx(per_layer)
    V, d = details["vocab_size"], details["d_model"]
    assert details["random_direction_expectation"] == pytest.approx(np.sqrt(2 * np.log(V) / d))
    assert stat.effect_size.value == pytest.approx(
        np.mean([np.mean([s["max_cosine"] for s in samples if s["layer"] == lay]) for lay in layers])
        - np.sqrt(2 * np.log(V) / d))
    assert stat.ci_low <= stat.statistic <= stat.ci_high
    for s in samples:
        assert s["p_value"] == pytest.approx((1 + np.sum(null >= s["max_cosine"])) / (null.size + 1))
    p_sorted = np.sort([s["p_value"] for s in samples])
    holm = np.maximum.accumulate(np.minimum(1.0, (len(p_sorted) - np.arange(len(p_sorted))) * p_sorted))
    n_aligned = int(np.sum(holm < record.params["alpha"]))
    assert len(details["aligned_experts"]) == n_aligned == details["n_holm_significant"]
    floors = {g.name: g for g in record.fitness if g.name.startswith("router ")}
    assert set(floors) == {"router moved from its start", "router lowers the loss"}
    assert all(g.value == 1.0 and g.passed for g in floors.values()), "a router outside the zoo: taken as trained"
    assert details["op_word_experts"] == sum(bool(s["op_word_matches"]) for s in samples)
    assert details["writeup_threshold"] == 0.2
    assert details["experts_below_threshold"] == pytest.approx(np.mean([s["max_cosine"] < 0.2 for s in samples]))


@pytest.mark.parametrize("arch", ["qwen2_moe", "gpt_oss"])
def test_h10_runs_on_other_moe_architectures(saved_model, pool, tmp_path, arch):
    record = run(saved_model, arch, pool, tmp_path)
    assert record.status == "ok", record.traceback or record.reason
    assert record.verdict in VERDICTS
    assert record.samples and record.statistic.n == len({s["layer"] for s in record.samples})


def test_h10_skips_dense_models(saved_model, pool, tmp_path):
    record = run(saved_model, "llama", pool, tmp_path)
    assert record.status == "skipped"
    assert "MoE" in record.reason
    assert record.verdict is None


def test_gumbel_tail_p_is_scipys_fitted_survival_function():
    """Each expert's tail p: the survival function of a Gumbel fitted (scipy) to the null maxima, at its value."""
    from scipy.stats import gumbel_r

    from lazarus_bench.claims.h10_router_alignment import gumbel_tail_p

    rng = np.random.default_rng(0)
    null = rng.gumbel(0.3, 0.02, size=500)
    values = np.array([0.28, 0.33, 0.45])
    loc, scale = gumbel_r.fit(null)
    np.testing.assert_allclose(gumbel_tail_p(values, null), gumbel_r.sf(values, loc, scale), rtol=1e-12)
    assert gumbel_tail_p(values, null)[2] < 1e-3 < gumbel_tail_p(values, null)[0]


def test_h10_router_floors_read_a_zoo_moes_manifest(tmp_path, monkeypatch):
    """A zoo moe whose router barely moved from its random start fails the floor (NOT TESTABLE, never REFUTED); one
    whose manifest holds no router figures fails both (NaN); a model outside the zoo is taken as trained."""
    from types import SimpleNamespace

    import lazarus_bench.claims.h10_router_alignment as h10
    from lazarus_bench.zoo.registry import MANIFEST

    monkeypatch.setattr(h10, "resolve_zoo", lambda model_id: tmp_path)
    params = get_claim("H10").parameters("slow")
    moved, fell = h10.ROUTER_GATES
    zoo = SimpleNamespace(model_id="zoo:moe", params=params)
    (tmp_path / MANIFEST).write_text(json.dumps({"metrics": {"router": {"moved": 0.05, "loss_fall": 0.02}}}))
    assert not moved.check(zoo).passed and moved.check(zoo).value == 0.05 and fell.check(zoo).passed
    (tmp_path / MANIFEST).write_text(json.dumps({"metrics": {}}))
    assert not moved.check(zoo).passed and math.isnan(fell.check(zoo).value) and not fell.check(zoo).passed
    released = SimpleNamespace(model_id="/models/mixtral", params=params)
    assert moved.check(released).passed and fell.check(released).passed
