"""The verdict tests hold their size: where the true effect sits on the criterion's threshold, the claimed side wins
at most alpha of the time (the exact binomial tail for the sign test, alpha for the t test on normal data), and far
less where a null sits inside the null hypothesis, which is why the suite's nulls fire below alpha."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from lazarus_bench import stats
from lazarus_bench.stats import Verdict

ALPHA = 0.05


def _values(n_below: int, n: int) -> np.ndarray:
    """n distinct values around a threshold of 0, ``n_below`` of them strictly below it."""
    return np.concatenate([-np.arange(1, n_below + 1) / 10.0, np.arange(1, n - n_below + 1) / 10.0])


def _sign_rejection_region(n: int) -> list[int]:
    """The counts below the threshold at which ``threshold_claim`` (sign test, claim "below") says SUPPORTED."""
    return [k for k in range(n + 1)
            if stats.threshold_claim(_values(k, n), 0.0, "below", ALPHA, test="sign").verdict == Verdict.SUPPORTED]


@pytest.mark.parametrize("n", [5, 8, 12, 20])
def test_the_sign_test_rejects_exactly_in_the_binomial_tail_at_most_alpha(n):
    """The counts that give SUPPORTED are the exact test's tail {k >= k*}, k* the smallest count whose binomial tail
    under p = 1/2 is <= alpha (scipy), so its size at the threshold is that tail: 9/256 = 0.035 at n = 8."""
    k_star = min(k for k in range(n + 1) if st.binom.sf(k - 1, n, 0.5) <= ALPHA)
    region = _sign_rejection_region(n)
    assert region == list(range(k_star, n + 1))
    size = float(sum(st.binom.pmf(k, n, 0.5) for k in region))
    assert size == pytest.approx(st.binom.sf(k_star - 1, n, 0.5)) and size <= ALPHA
    if n == 8:
        assert size == pytest.approx(9 / 256)


@pytest.mark.thorough
@pytest.mark.parametrize("n, shift_sd", [(8, 0.5), (8, 1.0), (20, 0.5)])
def test_a_null_inside_the_null_hypothesis_fires_far_below_alpha(n, shift_sd):
    """Normal values whose mean sits ``shift_sd`` SDs on the wrong side of the threshold: the sign test's rate is the
    binomial tail at P(value below) = Phi(-shift) (exact), the t test's the noncentral t's (scipy), both << alpha."""
    region = _sign_rejection_region(n)
    p_below = st.norm.cdf(-shift_sd)
    sign_rate = float(sum(st.binom.pmf(k, n, p_below) for k in region))
    assert sign_rate == pytest.approx(st.binom.sf(region[0] - 1, n, p_below)) and sign_rate < ALPHA / 5
    t_crit = st.t.ppf(ALPHA, n - 1)
    t_rate = float(st.nct.cdf(t_crit, n - 1, shift_sd * np.sqrt(n)))
    draws = np.random.default_rng(7).normal(shift_sd, 1.0, (2000, n))
    hits = sum(stats.threshold_claim(v, 0.0, "below", ALPHA, test="t").verdict == Verdict.SUPPORTED for v in draws)
    assert abs(hits / 2000 - t_rate) <= 4 * np.sqrt(t_rate * (1 - t_rate) / 2000) + 1e-3 and t_rate < ALPHA / 5


def test_the_t_test_holds_alpha_on_the_threshold():
    """Normal values centred on the threshold: SUPPORTED ("below") and REFUTED each come out in alpha of the draws,
    within four Monte Carlo SDs (2,000 draws of n = 8)."""
    draws = np.random.default_rng(11).normal(0.0, 1.0, (2000, 8))
    verdicts = [stats.threshold_claim(v, 0.0, "below", ALPHA, test="t").verdict for v in draws]
    band = 4 * np.sqrt(ALPHA * (1 - ALPHA) / 2000)
    for side in (Verdict.SUPPORTED, Verdict.REFUTED):
        assert abs(verdicts.count(side) / 2000 - ALPHA) <= band


@pytest.mark.parametrize("n, p_min", [(16, 0.5), (40, 0.5), (40, 0.9)])
def test_the_proportion_test_holds_alpha_at_p_min(n, p_min):
    """k ~ Binomial(n, p_min) exactly on the criterion: summing the binomial pmf over the counts that give SUPPORTED
    is the test's size; it stays <= alpha and is no larger than the exact one-sided binomial test's (scipy)."""
    supported = [k for k in range(n + 1) if stats.proportion_claim(k, n, p_min, ALPHA).verdict == Verdict.SUPPORTED]
    size = float(sum(st.binom.pmf(k, n, p_min) for k in supported))
    exact = [k for k in range(n + 1) if st.binomtest(k, n, p_min, alternative="greater").pvalue < ALPHA]
    assert supported and set(supported) <= set(exact)
    assert size <= float(sum(st.binom.pmf(k, n, p_min) for k in exact)) <= ALPHA
