"""Vocabulary projections checked against explicit numpy / scipy computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import ks_2samp, rankdata

from lazarus_bench.analysis import projections
from lazarus_bench.analysis.projections import (
    cosine_scores,
    normalize_rows,
    ranks_of,
    router_similarity,
    router_vocab_alignment,
    top_tokens,
)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Force several vocab and probe chunks so chunk boundaries are exercised."""
    monkeypatch.setattr(projections, "VOCAB_CHUNK", 7)
    monkeypatch.setattr(projections, "PROBE_CHUNK", 5)


def unembedding(V: int = 40, d: int = 12, seed: int = 0, dtype=np.float64) -> np.ndarray:
    """Random W_U with one all-zero row (a padding token)."""
    W = np.random.default_rng(seed).normal(size=(V, d)).astype(dtype)
    W[3] = 0.0
    return W


def explicit_cosines(w: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Loop-by-row cosine with 0 for zero rows."""
    out = np.zeros(W.shape[0])
    for v in range(W.shape[0]):
        denom = np.linalg.norm(w) * np.linalg.norm(W[v])
        out[v] = 0.0 if denom == 0 else np.dot(w, W[v]) / denom
    return out


@pytest.mark.parametrize("with_gain", [False, True])
def test_cosine_scores_match_numpy(with_gain):
    rng = np.random.default_rng(1)
    W = unembedding()
    w = rng.normal(size=W.shape[1])
    gain = rng.uniform(0.1, 3.0, size=W.shape[1]) if with_gain else None
    scores = cosine_scores(w, W, gain)
    expected = explicit_cosines(w * gain if with_gain else w, W)
    np.testing.assert_allclose(scores, expected, atol=1e-12)
    assert scores[3] == 0.0
    assert not np.isnan(scores).any()
    if with_gain:
        assert not np.allclose(scores, explicit_cosines(w, W))


def test_cosine_scores_float32_and_zero_direction():
    W = unembedding(dtype=np.float32)
    w = np.random.default_rng(2).normal(size=W.shape[1]).astype(np.float32)
    scores = cosine_scores(w, W)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, explicit_cosines(w.astype(np.float64), W.astype(np.float64)), atol=1e-6)
    np.testing.assert_array_equal(cosine_scores(np.zeros(W.shape[1]), W), 0.0)
    with pytest.raises(ValueError, match="d_model"):
        cosine_scores(np.ones(5), W)


def test_ranks_match_scipy_rankdata_with_ties():
    scores = np.random.default_rng(3).integers(0, 6, size=50).astype(float)
    expected = rankdata(-scores, method="min")
    ranks = ranks_of(scores, range(50))
    assert ranks == {t: int(expected[t]) for t in range(50)}
    assert ranks_of(scores, [int(np.argmax(scores))]) == {int(np.argmax(scores)): 1}
    with pytest.raises(ValueError, match="out of range"):
        ranks_of(scores, [50])


def test_top_tokens_descending_with_id_tiebreak():
    scores = np.array([0.1, 0.9, 0.5, 0.9, -0.2, 0.5])
    assert top_tokens(scores, 3) == [(1, 0.9), (3, 0.9), (2, 0.5)]
    assert top_tokens(scores, 4) == [(1, 0.9), (3, 0.9), (2, 0.5), (5, 0.5)]
    assert [t for t, _ in top_tokens(scores, 100)] == [1, 3, 2, 5, 0, 4]
    assert top_tokens(scores, 0) == []
    rand = np.random.default_rng(4).normal(size=300)
    assert [t for t, _ in top_tokens(rand, 10)] == list(np.argsort(-rand, kind="stable")[:10])


def explicit_similarity(R, W, g_r, g_f) -> np.ndarray:
    """normalize(R * g_r) @ normalize(W * g_f).T computed directly in float64."""
    A = R * g_r
    B = W * g_f
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    nb = np.linalg.norm(B, axis=1, keepdims=True)
    B = np.where(nb > 0, B / np.where(nb > 0, nb, 1.0), 0.0)
    return A @ B.T


def router_case(seed: int = 0, E: int = 6, V: int = 60, d: int = 16):
    rng = np.random.default_rng(seed)
    W = unembedding(V, d, seed)
    R = rng.normal(size=(E, d))
    g_r = rng.uniform(0.2, 2.0, size=d)
    g_f = rng.uniform(0.2, 2.0, size=d)
    return R, W, g_r, g_f


def test_router_similarity_matches_explicit():
    R, W, g_r, g_f = router_case()
    S = router_similarity(R, W, g_r, g_f)
    assert S.shape == (R.shape[0], W.shape[0])
    np.testing.assert_allclose(S, explicit_similarity(R, W, g_r, g_f), atol=2e-6)
    np.testing.assert_allclose(router_similarity(R, W), explicit_similarity(R, W, 1.0, 1.0), atol=2e-6)


def test_router_alignment_planted_token_and_null():
    R, W, g_r, g_f = router_case(seed=1)
    planted = 17
    R[2] = 4.2 * W[planted] * g_f / g_r
    n_null = 300
    result = router_vocab_alignment(R, W, g_r, g_f, top_k=5, n_null=n_null, seed=9)
    S = explicit_similarity(R, W, g_r, g_f)

    expert = result.experts[2]
    assert expert.top_token_ids[0] == planted
    assert expert.max_cosine == pytest.approx(1.0, abs=1e-6)
    assert expert.p_value == pytest.approx(1 / (n_null + 1))
    for e, alignment in enumerate(result.experts):
        expected_top = np.argsort(-S[e], kind="stable")[:5]
        assert alignment.top_token_ids == list(expected_top)
        np.testing.assert_allclose(alignment.top_cosines, S[e, expected_top], atol=2e-6)
        assert alignment.max_cosine == pytest.approx(S[e].max(), abs=2e-6)

    rng = np.random.default_rng(9)
    Z = rng.standard_normal((n_null, W.shape[1]), dtype=np.float32).astype(np.float64)
    null = explicit_similarity(Z, W, 1.0, g_f).max(axis=1)
    values = np.asarray(result.null.values)
    np.testing.assert_allclose(values, null, atol=2e-6)
    assert result.null.n == n_null
    assert result.null.mean == pytest.approx(values.mean())
    assert result.null.std == pytest.approx(values.std())
    assert result.null.p95 == pytest.approx(np.percentile(values, 95))
    assert result.null.p99 == pytest.approx(np.percentile(values, 99))
    for alignment in result.experts:
        expected_p = (1 + np.sum(values >= alignment.max_cosine)) / (n_null + 1)
        assert alignment.p_value == pytest.approx(expected_p)
        assert 0 < alignment.p_value <= 1


def test_random_router_rows_fall_inside_the_null():
    rng = np.random.default_rng(50)
    W = unembedding(80, 10, seed=5)
    R = rng.normal(size=(40, 10))
    result = router_vocab_alignment(R, W, n_null=400, seed=6)
    values = np.asarray(result.null.values)
    maxima = result.max_cosines
    inside = (maxima >= values.min()) & (maxima <= values.max())
    assert inside.mean() >= 0.9
    assert ks_2samp(maxima, values).pvalue > 0.01
    assert 0.2 < np.median(result.p_values) < 0.8
    assert np.all((result.p_values > 0) & (result.p_values <= 1))
    again = router_vocab_alignment(R, W, n_null=400, seed=6)
    assert again.null.values == result.null.values
    other = router_vocab_alignment(R, W, n_null=400, seed=7)
    assert other.null.values != result.null.values


def test_router_alignment_to_dict_is_json():
    R, W, g_r, g_f = router_case(seed=2)
    result = router_vocab_alignment(R, W, g_r, g_f, top_k=3, n_null=20)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["n_experts"] == R.shape[0]
    assert data["vocab_size"] == W.shape[0]
    assert len(data["null"]["values"]) == 20
    assert len(data["experts"][0]["top_token_ids"]) == 3
    np.testing.assert_allclose(result.max_cosines, [e.max_cosine for e in result.experts])


def test_router_alignment_validates_shapes():
    R, W, g_r, _ = router_case()
    with pytest.raises(ValueError, match="router_gain"):
        router_vocab_alignment(R, W, g_r[:-1])
    with pytest.raises(ValueError, match="d_model"):
        router_vocab_alignment(R[:, :-1], W)


def test_normalize_rows_keeps_zero_rows():
    M = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(normalize_rows(M), [[0.6, 0.8], [0.0, 0.0]])
