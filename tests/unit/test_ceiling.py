"""The lens ceiling: its bound agrees with scipy's constrained optimum, no residual beats it, and a token the
unembedding cannot single out gets a bound near 1/V (which makes H05a NOT TESTABLE before any training)."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import log_softmax

from lazarus_bench import prompts
from lazarus_bench.analysis.ceiling import lens_ceilings, lens_map, token_ceiling
from lazarus_bench.claims.h05_dual_reward_names_op import op_word_ceiling
from lazarus_bench.models import load_model
from lazarus_bench.training.data import class_token_ids


def _scipy_ceiling(A, c, t):
    """max over ||u||^2 <= D of log softmax(A u + c)_t by SLSQP, from several starts (an independent optimiser)."""
    D = A.shape[1]
    best = -np.inf
    rng = np.random.default_rng(0)
    for start in [A[t] - A.mean(axis=0), *rng.standard_normal((3, D))]:
        x0 = start * math.sqrt(D) / np.linalg.norm(start)
        res = minimize(lambda u: -log_softmax(A @ u + c)[t], x0, method="SLSQP",
                       jac=lambda u: -(A[t] - np.exp(log_softmax(A @ u + c)) @ A),
                       constraints=[{"type": "ineq", "fun": lambda u: D - u @ u, "jac": lambda u: -2 * u}],
                       options={"maxiter": 2000, "ftol": 1e-12})
        best = max(best, -res.fun)
    return math.exp(best)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bound_matches_scipy_and_no_residual_beats_it(seed):
    rng = np.random.default_rng(seed)
    A, c = rng.standard_normal((200, 16)) * 0.6, rng.standard_normal(200) * 0.1
    t = int(rng.integers(200))
    got = token_ceiling(A, c, t)
    assert got.reached <= got.bound <= got.reached + 1e-3
    assert got.bound == pytest.approx(_scipy_ceiling(A, c, t), abs=2e-3)
    u = rng.standard_normal((5000, 16))
    u *= math.sqrt(16) / np.linalg.norm(u, axis=1, keepdims=True)
    assert np.exp(log_softmax(u @ A.T + c, axis=1)[:, t]).max() <= got.bound


def test_model_bound_covers_the_real_lens(handle_of):
    """Through the model's own lens (final norm, unembedding), residuals of any scale stay under each bound."""
    handle = handle_of("llama")
    ids = list(class_token_ids(handle, prompts.operation_words()).values())
    ceilings = lens_ceilings(handle, ids)
    A, c = lens_map(handle)
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((256, A.shape[1])) * rng.uniform(0.01, 100, (256, 1))
    probs = np.array(mx.softmax(handle.lens_logits(mx.array(hidden, dtype=mx.float32)).astype(mx.float32), axis=-1))
    for t in ids:
        assert probs[:, t].max() <= ceilings[t].bound + 1e-5
        u = A[t] - A.mean(axis=0)
        u *= math.sqrt(A.shape[1]) / np.linalg.norm(u)
        assert np.exp(log_softmax(A @ u + c)[t]) <= ceilings[t].bound


@pytest.mark.parametrize("arch", ["llama", "llama_untied", "qwen2", "gemma2", "granite", "mixtral"])
def test_lens_map_is_the_models_own_lens(saved_model, arch):
    """(A, c) reproduce the model's lens logits (its final norm's gain and offset, its real head, any logit scaling)
    at random residual states of any scale: A (h / rms(h)) + c = lens_logits(h), with the final norm's weight set
    to random values so that a map without the gain would differ. Gemma-2 soft-caps its logits, so there the map is
    None (no bound is certified)."""
    handle = load_model(str(saved_model(arch)))
    weight = handle.final_norm.weight
    handle.final_norm.weight = mx.array(np.random.default_rng(2).uniform(0.3, 1.7, weight.shape), dtype=weight.dtype)
    assert not np.allclose(np.array(handle.final_norm_gain()), 1.0)
    mapped = lens_map(handle)
    if handle.softcap:
        assert mapped is None
        return
    A, c = mapped
    rng = np.random.default_rng(1)
    hidden = rng.standard_normal((16, A.shape[1])) * rng.uniform(0.1, 50, (16, 1))
    eps = float(handle.config.get("rms_norm_eps", 1e-6))
    u = hidden / np.sqrt((hidden**2).mean(axis=1, keepdims=True) + eps)
    want = np.array(handle.lens_logits(mx.array(hidden, dtype=mx.float32)).astype(mx.float32), dtype=np.float64)
    np.testing.assert_allclose(u @ A.T + c, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())


def test_unreachable_token_gets_a_bound_near_one_over_v(saved_model):
    """A token whose unembedding row is zero while the others are centred: Jensen gives p <= 1/V for every residual."""
    handle = load_model(str(saved_model("llama")))
    ids = class_token_ids(handle, prompts.operation_words())
    W = np.array(handle.unembedding(), dtype=np.float64)
    W -= W.mean(axis=0)
    W[list(ids.values())] = 0.0
    handle.set_unembedding_rows(range(W.shape[0]), W.astype(np.float32))
    ceilings = lens_ceilings(handle, ids.values())
    for t in ids.values():
        assert ceilings[t].bound <= 1.0 / handle.vocab_size + 1e-3

    class Ctx:
        def handle(self):
            return handle

        def log(self, message):
            pass

    ceiling = op_word_ceiling(Ctx())
    assert ceiling["reached"] <= ceiling["bound"] < 0.36
