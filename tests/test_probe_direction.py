"""H04: the direction whose vocabulary rank is measured survives the probe's standardisation, and the positive
control is H05a's dual-reward-trained model (CLAIMS.md revision 3; issue 32)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lazarus_bench.analysis import probes
from lazarus_bench.claims.h04_probe_direction_vocab import VocabRanker, direction, h05_trained
from lazarus_bench.harness.base import POSITIVE, ClaimContext, model_info
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.stats import Verdict


def _cos(a, b) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _planted(seed: int = 0, n: int = 24):
    """A vocabulary (V = 1024, d = 128, 100 rows near the word's), an anisotropic final-norm gain, and residual
    features whose classes differ along u = W[word] / g (normalised), the residual direction the lens maps onto the
    word's row; per-coordinate noise scales span 100x and a shared offset is added."""
    rng = np.random.default_rng(seed)
    V, d, word = 1024, 128, 17
    W = rng.standard_normal((V, d))
    W[100:200] = 0.7 * W[word] / np.linalg.norm(W[word]) * np.linalg.norm(W[100:200], axis=1, keepdims=True) \
        + 0.7 * W[100:200]
    gain = rng.uniform(0.3, 3.0, d)
    u = W[word] / gain
    u /= np.linalg.norm(u)
    scales = np.geomspace(0.01, 1.0, d)
    rng.shuffle(scales)
    y = np.array(["multiply"] * n + ["add"] * n)
    X = (rng.standard_normal((2 * n, d)) * scales * 0.5 + np.where(y == "multiply", 1.0, -1.0)[:, None] * u
         + 3.0 * rng.standard_normal(d))
    return W, gain, word, u, X, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_h04_direction_recovers_a_planted_row_that_standardised_weights_miss(seed):
    """The class-mean difference comes back along u (cosine ~1; gain-folded, it points at the word's row, rank 1);
    the standardised probe's weights mapped back (coef / sigma) reweight coordinates by 1 / sigma**2 and do not."""
    W, gain, word, u, X, y = _planted(seed)
    ranker = VocabRanker.from_arrays(W, gain, [word])
    new, old = direction(X, y), probes.binary_direction(X, y, "multiply", "add")
    assert _cos(new, u) > 0.9 and _cos(new * gain, W[word]) > 0.85
    assert _cos(old, u) < 0.5 and _cos(old * gain, W[word]) < 0.5
    assert ranker.best_rank(new) == 1
    assert ranker.best_rank(old) > 1
    assert _cos(direction(X[::-1], y[::-1]), new) == pytest.approx(1.0), "order of prompts does not matter"


def test_vocab_ranker_from_arrays_matches_a_numpy_rank():
    rng = np.random.default_rng(3)
    W, gain, w = rng.standard_normal((50, 8)), rng.uniform(0.5, 2.0, 8), rng.standard_normal(8)
    ranker = VocabRanker.from_arrays(W, gain, [4, 9])
    scores = W @ (gain * w) / np.linalg.norm(W, axis=1) / np.linalg.norm(gain * w)
    assert ranker.best_rank(w) == min(1 + int(np.sum(scores > scores[i])) for i in (4, 9))


def test_h04_positive_control_is_the_h05_trained_model_not_a_planted_row():
    """The one positive control is H05a's dual-reward model (CLAIMS.md): the guaranteed control (the word's rows
    set to the probe's own direction) is gone, and H04 is scheduled after H05a, whose cached run it reuses."""
    claim = get_claim("H04")
    positives = [c for c in claim.controls if c.kind == POSITIVE]
    assert [(c.name, c.build, c.effect) for c in positives] == [("dual-reward-trained model", h05_trained,
                                                                  Verdict.REFUTED)]
    assert not any("planted" in c.name for c in claim.controls)
    assert claim.after == ("H05a",)


def test_h04_detects_the_h05_trained_model_on_zoo_base(tmp_path):
    """The positive control on the shipped zoo:base: H05a's corrected 500-step run (trained here, ~15 s on two
    cores) makes the lens at block 4 name ' multiply' (~90%); the class-mean direction ranks it in the top 1%
    and the measure refutes, while the base model itself is not aligned."""
    from lazarus_bench.models import load_model

    claim = get_claim("H04")
    handle = load_model("zoo:base")
    ctx = ClaimContext(claim, model_info(handle), tier="slow", seeds=[0], params=claim.parameters("slow"),
                       cache_dir=tmp_path, shared=handle)
    control = claim.measure(h05_trained(ctx))
    details = control.statistic.details
    assert control.verdict == Verdict.REFUTED, control.statistic.reason
    assert details["best_percentile"] <= 0.01 and details["best_rank"] <= details["probe_weight_best_rank"]
    s = control.statistic
    if s.ci_high == s.ci_low:  # every resampled direction ranks the word the same: no MDE, never 0
        assert math.isnan(details["mde"]) and "NaN" in details["mde_definition"]
    else:
        assert details["mde"] > 0
    base = claim.measure(ctx)
    assert base.statistic.details["best_percentile"] > 0.01
