"""lazarus_bench.stats against scipy, textbook formulas, brute force and seeded simulation."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import scipy.stats as sps
from hypothesis import assume, given, settings
from hypothesis import strategies as hst

from lazarus_bench import stats as S
from lazarus_bench.stats import Verdict

FAST = settings(max_examples=30, deadline=None)
ALTS = ("two-sided", "less", "greater")


def _normal(seed: int, size: int, loc: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Seeded normal sample."""
    return np.random.default_rng(seed).normal(loc, scale, size)


def _textbook_wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson (1927) score interval written out: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    z = sps.norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def _brute_holm(p: list[float]) -> list[float]:
    """Holm adjusted p-values by the definition: adj_(i) = max over j <= i of min(1, (m - j) p_(j))."""
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    adjusted = [0.0] * m
    for rank, idx in enumerate(order):
        adjusted[idx] = max(min(1.0, (m - j) * p[order[j]]) for j in range(rank + 1))
    return adjusted


def _brute_holm_reject(p: list[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure: walk the sorted p-values, reject while (m - j) p_(j) < alpha, then stop."""
    m = len(p)
    order = sorted(range(m), key=lambda i: (p[i], i))
    reject = [False] * m
    for j, idx in enumerate(order):
        if (m - j) * p[idx] >= alpha:
            break
        reject[idx] = True
    return reject


def _brute_permutation_p(a: np.ndarray, b: np.ndarray, alternative: str) -> float:
    """Exact permutation p of mean(a) - mean(b): enumerate every split of the pooled data."""
    pooled = np.concatenate([a, b])
    idx = range(pooled.size)
    observed = a.mean() - b.mean()
    null = []
    for chosen in itertools.combinations(idx, a.size):
        mask = np.zeros(pooled.size, bool)
        mask[list(chosen)] = True
        null.append(pooled[mask].mean() - pooled[~mask].mean())
    null = np.array(null)
    less = np.mean(null <= observed)
    greater = np.mean(null >= observed)
    return {"less": less, "greater": greater, "two-sided": min(1.0, 2 * min(less, greater))}[alternative]


samples = hst.lists(hst.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False), min_size=2, max_size=12)


# ---------------------------------------------------------------------------------------------------- effect sizes


@FAST
@given(samples, samples)
def test_cohens_d_matches_numpy_and_flips_sign(a, b):
    a, b = np.array(a), np.array(b)
    n1, n2 = a.size, b.size
    sp = math.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    assume(sp > 1e-3)
    d = S.cohens_d(a, b)
    assert d.value == pytest.approx((a.mean() - b.mean()) / sp, rel=1e-9, abs=1e-12)
    assert S.cohens_d(b, a).value == pytest.approx(-d.value, rel=1e-12, abs=1e-12)
    assert d.ci_low <= d.value <= d.ci_high
    assert not d.degenerate


@FAST
@given(hst.integers(0, 10**6), hst.integers(2, 15), hst.integers(2, 15), hst.floats(-50, 50), hst.floats(0.01, 100))
def test_cohens_d_location_and_scale_invariant(seed, n1, n2, shift, scale):
    a, b = _normal(seed, n1), _normal(seed + 1, n2, 0.7)
    d = S.cohens_d(a, b).value
    assert S.cohens_d(a + shift, b + shift).value == pytest.approx(d, rel=1e-6, abs=1e-8)
    assert S.cohens_d(a * scale, b * scale).value == pytest.approx(d, rel=1e-6, abs=1e-8)


def test_cohens_d_equals_seed_formula_for_equal_n():
    a, b = _normal(1, 5, 1.0), _normal(2, 5)
    expected = (a.mean() - b.mean()) / math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    assert S.cohens_d(a, b).value == pytest.approx(expected, rel=1e-12)


def test_normal_ci_uses_hedges_olkin_se():
    a, b = _normal(3, 10, 0.5), _normal(4, 14)
    d = S.cohens_d(a, b, confidence=0.9)
    se = math.sqrt(24 / 140 + d.value**2 / 48)
    assert d.se == pytest.approx(se, rel=1e-12)
    z = sps.norm.ppf(0.95)
    assert (d.ci_low, d.ci_high) == pytest.approx((d.value - z * se, d.value + z * se), rel=1e-12)


@pytest.mark.parametrize("df", [2, 3, 5, 8, 10, 20, 50, 200])
def test_hedges_correction_exact_and_close_to_approximation(df):
    exact = math.gamma(df / 2) / (math.sqrt(df / 2) * math.gamma((df - 1) / 2))
    assert S.hedges_correction(df) == pytest.approx(exact, rel=1e-12)
    if df >= 8:
        assert S.hedges_correction(df) == pytest.approx(1 - 3 / (4 * df - 1), abs=2e-3)


def test_hedges_g_shrinks_small_samples_and_converges():
    a, b = _normal(5, 4, 1.0), _normal(6, 4)
    d, g = S.cohens_d(a, b), S.hedges_g(a, b)
    assert 0 < abs(g.value) < abs(d.value)
    assert g.value == pytest.approx(S.hedges_correction(6) * d.value)
    a, b = _normal(7, 2000, 1.0), _normal(8, 2000)
    assert S.hedges_g(a, b).value == pytest.approx(S.cohens_d(a, b).value, rel=2e-4)
    assert g.ci_low <= g.value <= g.ci_high


def test_paired_d_is_mean_over_sd_of_differences():
    a, b = _normal(9, 12, 0.4), _normal(10, 12)
    diff = a - b
    d = S.paired_d(a, b)
    assert d.value == pytest.approx(diff.mean() / diff.std(ddof=1), rel=1e-12)
    assert d.se == pytest.approx(math.sqrt(1 / 12 + d.value**2 / 24), rel=1e-12)
    assert d.ci_low <= d.value <= d.ci_high and d.n1 == 12 and d.n2 is None


def test_bootstrap_effect_size_ci_contains_estimate():
    a, b = _normal(11, 20, 0.8), _normal(12, 25)
    for fn in (S.cohens_d, S.hedges_g):
        es = fn(a, b, ci="bootstrap", n_resamples=499, seed=3)
        assert es.ci_method == "bootstrap-BCa"
        assert es.ci_low < es.value < es.ci_high
        assert es == fn(a, b, ci="bootstrap", n_resamples=499, seed=3)
    pd = S.paired_d(a[:20], b[:20], ci="bootstrap", n_resamples=499)
    assert pd.ci_low < pd.value < pd.ci_high


def test_zero_variance_effect_sizes_are_flagged_not_raised():
    d = S.cohens_d([1, 1, 1], [2, 2, 2])
    assert d.value == -math.inf and d.degenerate and math.isnan(d.ci_low) and "infinite" in d.note
    same = S.hedges_g([3, 3], [3, 3, 3])
    assert math.isnan(same.value) and same.degenerate
    pd = S.paired_d([1, 2, 3], [0, 1, 2])
    assert pd.value == math.inf and pd.degenerate
    boot = S.cohens_d([1.0, 2.0, 3.0], [2.0, 3.0, 5.0], ci="bootstrap", n_resamples=199)
    assert math.isnan(boot.ci_low) and math.isnan(boot.ci_high) and "non-finite" in boot.note
    assert boot.value == pytest.approx(S.cohens_d([1.0, 2.0, 3.0], [2.0, 3.0, 5.0]).value)


def test_analytic_d_ci_coverage():
    rng = np.random.default_rng(2024)
    delta, hits = 0.5, 0
    for _ in range(200):
        es = S.cohens_d(rng.normal(delta, 1, 25), rng.normal(0, 1, 25))
        hits += es.ci_low <= delta <= es.ci_high
    assert 0.88 <= hits / 200 <= 0.99


# ---------------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_matches_scipy():
    x = _normal(13, 30, 2.0)
    ours = S.bootstrap_ci(x, np.median, confidence=0.9, n_resamples=999, method="percentile", seed=5)
    ref = sps.bootstrap((x,), np.median, confidence_level=0.9, n_resamples=999, method="percentile",
                        rng=np.random.default_rng(5))
    assert (ours.ci_low, ours.ci_high) == pytest.approx(tuple(ref.confidence_interval), rel=1e-12)
    assert ours.statistic == pytest.approx(np.median(x))
    assert ours.method_used == "percentile" and ours.n == 30


def test_bootstrap_ci_degenerate_falls_back_to_point():
    ci = S.bootstrap_ci([0.25] * 6)
    assert (ci.ci_low, ci.ci_high) == (0.25, 0.25)
    assert ci.method == "BCa" and ci.method_used == "percentile" and ci.note
    one = S.bootstrap_ci([1.0])
    assert math.isnan(one.ci_low) and one.method_used == "none"


def test_bootstrap_mean_ci_coverage():
    rng = np.random.default_rng(7)
    hits = 0
    for rep in range(200):
        x = rng.normal(3.0, 2.0, 20)
        ci = S.bootstrap_ci(x, np.mean, n_resamples=499, seed=rep)
        hits += ci.ci_low <= 3.0 <= ci.ci_high
    assert 0.88 <= hits / 200 <= 0.99


# ---------------------------------------------------------------------------------------------------- permutation


@FAST
@given(hst.integers(0, 10**6), hst.integers(5, 12), hst.integers(5, 12), hst.sampled_from(ALTS),
       hst.floats(0, 3))
def test_permutation_p_never_below_one_over_resamples_plus_one(seed, n1, n2, alternative, shift):
    a, b = _normal(seed, n1, shift), _normal(seed + 1, n2)
    res = S.permutation_test(a, b, alternative=alternative, n_resamples=99, seed=seed)
    assert not res.exact and res.n_permutations == 99
    assert 1 / 100 <= res.p_value <= 1.0
    assert res.statistic == pytest.approx(a.mean() - b.mean())


@FAST
@given(hst.lists(hst.integers(-20, 20), min_size=4, max_size=4), hst.lists(hst.integers(-20, 20), min_size=4,
       max_size=4), hst.sampled_from(ALTS))
def test_permutation_exact_equals_brute_force(a, b, alternative):
    a, b = np.array(a, float), np.array(b, float)
    res = S.permutation_test(a, b, alternative=alternative, n_resamples=1000)
    assert res.exact and res.n_permutations == math.comb(8, 4)
    assert res.p_value == pytest.approx(_brute_permutation_p(a, b, alternative), abs=1e-12)


def test_permutation_known_values_and_statistics():
    res = S.permutation_test([1, 2, 3, 4], [5, 6, 7, 8])
    assert res.exact and res.p_value == pytest.approx(2 / 70)
    assert S.permutation_test([1, 2, 3, 4], [5, 6, 7, 8], alternative="less").p_value == pytest.approx(1 / 70)
    med = S.permutation_test([1, 2, 30], [4, 5, 6], statistic="median_diff")
    assert med.statistic == -3.0 and med.statistic_name == "median_diff"
    custom = S.permutation_test([1, 2, 3], [4, 5, 6], statistic=lambda x, y, axis: np.max(x, axis) - np.max(y, axis))
    assert custom.statistic == -3.0
    with pytest.raises(ValueError):
        S.permutation_test([1, 2], [3, 4], statistic="nope")


# ---------------------------------------------------------------------------------------------------- binomial


@pytest.mark.parametrize("n", [1, 5, 8, 20, 137])
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_wilson_equals_textbook_formula(n, confidence):
    for k in range(n + 1):
        assert S.wilson_interval(k, n, confidence) == pytest.approx(_textbook_wilson(k, n, confidence), abs=1e-12)


@FAST
@given(hst.integers(1, 200), hst.data(), hst.floats(0.01, 0.99), hst.sampled_from(ALTS))
def test_binomial_test_equals_scipy(n, data, p0, alternative):
    k = data.draw(hst.integers(0, n))
    res = S.binomial_test(k, n, p0, alternative)
    assert res.p_value == sps.binomtest(k, n, p0, alternative).pvalue
    assert (res.ci_low, res.ci_high) == pytest.approx(_textbook_wilson(k, n, 0.95), abs=1e-12)
    assert res.proportion == k / n


def test_wilson_coverage_simulated_and_exact():
    p, n = 0.3, 50
    ks = np.random.default_rng(11).binomial(n, p, 200)
    hits = sum(lo <= p <= hi for lo, hi in (S.wilson_interval(int(k), n) for k in ks))
    assert 0.88 <= hits / 200 <= 0.99
    exact = sum(sps.binom.pmf(k, n, p) for k in range(n + 1) if S.wilson_interval(k, n)[0] <= p
                <= S.wilson_interval(k, n)[1])
    assert 0.92 <= exact <= 0.98


def test_sign_test_drops_ties():
    res = S.sign_test([0.0, 1.0, 2.0, 3.0, -1.0], 0.0, "greater")
    assert (res.k, res.n) == (3, 4)
    assert res.p_value == sps.binomtest(3, 4, 0.5, "greater").pvalue
    assert S.sign_test([2.0, 2.0], 2.0).p_value == 1.0


# ---------------------------------------------------------------------------------------------------- t / Wilcoxon


@FAST
@given(hst.integers(0, 10**6), hst.integers(3, 30), hst.sampled_from(ALTS), hst.floats(-1, 1))
def test_paired_tests_equal_scipy(seed, n, alternative, shift):
    a = _normal(seed, n)
    b = a + _normal(seed + 1, n, shift)
    t = S.paired_test(a, b, "t", alternative)
    ref = sps.ttest_rel(a, b, alternative=alternative)
    assert (t.statistic, t.p_value) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-12)
    assert t.estimate == pytest.approx(np.mean(a - b)) and t.n == n and t.df == n - 1
    two = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert (t.ci_low, t.ci_high) == pytest.approx((two.low, two.high), rel=1e-9)
    w = S.paired_test(a, b, "wilcoxon", alternative, n_resamples=199)
    wref = sps.wilcoxon(a, b, alternative=alternative)
    assert (w.statistic, w.p_value) == pytest.approx((wref.statistic, wref.pvalue), rel=1e-12)
    assert w.ci_low <= w.estimate <= w.ci_high


@FAST
@given(hst.integers(0, 10**6), hst.integers(2, 25), hst.integers(2, 25), hst.sampled_from(ALTS))
def test_t_tests_equal_scipy(seed, n1, n2, alternative):
    a, b = _normal(seed, n1, 0.3, 2.0), _normal(seed + 1, n2)
    one = S.one_sample_t(a, 0.1, alternative)
    ref = sps.ttest_1samp(a, 0.1, alternative=alternative)
    assert (one.statistic, one.p_value) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-12)
    ci = sps.ttest_1samp(a, 0.1).confidence_interval(0.95)
    assert (one.ci_low, one.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    welch = S.two_sample_t(a, b, alternative)
    wref = sps.ttest_ind(a, b, equal_var=False, alternative=alternative)
    assert (welch.statistic, welch.p_value, welch.df) == pytest.approx((wref.statistic, wref.pvalue, wref.df),
                                                                       rel=1e-9)
    wci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (welch.ci_low, welch.ci_high) == pytest.approx((wci.low, wci.high), rel=1e-9)
    assert welch.sizes == (n1, n2)


def test_degenerate_paired_and_t_tests_do_not_raise():
    zero = S.paired_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert zero.p_value == 1.0 and zero.degenerate and (zero.ci_low, zero.ci_high) == (0.0, 0.0)
    const = S.paired_test([2.0, 3.0, 4.0], [1.0, 2.0, 3.0], "t")
    assert const.degenerate and const.statistic == math.inf and const.ci_low == const.ci_high == 1.0
    flat = S.one_sample_t([0.001] * 5, 0.01, "less")
    assert flat.degenerate and flat.p_value == 0.0


# ---------------------------------------------------------------------------------------------------- Holm


def test_holm_textbook_examples():
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.holm([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    assert S.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert S.holm_reject([0.01, 0.04, 0.03, 0.005], 0.05).tolist() == [True, False, False, True]
    assert S.holm([]).size == 0
    with pytest.raises(ValueError):
        S.holm([0.1, float("nan")])


pvalues = hst.lists(hst.one_of(hst.floats(0, 1), hst.sampled_from([0.0, 0.01, 0.05, 1.0])), min_size=1, max_size=15)


@settings(max_examples=60, deadline=None)
@given(pvalues, hst.floats(0.001, 0.5))
def test_holm_equals_brute_force_and_is_monotone(p, alpha):
    adjusted = S.holm(p)
    assert adjusted == pytest.approx(_brute_holm(p), rel=1e-12, abs=0)
    assert np.all(adjusted >= np.array(p)) and np.all(adjusted <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert S.holm_reject(p, alpha).tolist() == _brute_holm_reject(p, alpha)


# ---------------------------------------------------------------------------------------------------- power


def test_two_sample_power_matches_monte_carlo():
    d, n, reps = 0.8, 15, 4000
    rng = np.random.default_rng(99)
    a, b = rng.normal(d, 1, (reps, n)), rng.normal(0, 1, (reps, n))
    simulated = np.mean(sps.ttest_ind(a, b, axis=1).pvalue < 0.05)
    assert S.power_two_sample_t(d, n, n) == pytest.approx(simulated, abs=0.03)
    one_sided = np.mean(sps.ttest_ind(a, b, axis=1, alternative="greater").pvalue < 0.05)
    assert S.power_two_sample_t(d, n, n, alternative="greater") == pytest.approx(one_sided, abs=0.03)


def test_one_sample_power_matches_monte_carlo():
    d, n, reps = 0.5, 12, 4000
    x = np.random.default_rng(5).normal(d, 1, (reps, n))
    simulated = np.mean(sps.ttest_1samp(x, 0, axis=1).pvalue < 0.05)
    assert S.power_one_sample_t(d, n) == pytest.approx(simulated, abs=0.03)


def test_power_increases_with_n_and_d_and_is_alpha_at_zero():
    ns = [S.power_two_sample_t(0.5, n) for n in (5, 10, 20, 40, 80)]
    ds = [S.power_two_sample_t(d, 10) for d in (0.0, 0.2, 0.5, 0.8, 1.2)]
    assert all(x < y for x, y in zip(ns, ns[1:])) and all(x < y for x, y in zip(ds, ds[1:]))
    assert ds[0] == pytest.approx(0.05, abs=1e-9)
    assert S.power_two_sample_t(-0.8, 10, alternative="less") == pytest.approx(
        S.power_two_sample_t(0.8, 10, alternative="greater"))


def test_binomial_power_by_hand():
    assert S.binomial_rejection_region(8, 0.25, 0.05, "greater").tolist() == [5, 6, 7, 8]
    by_hand = sum(math.comb(8, k) * 0.75**k * 0.25 ** (8 - k) for k in range(5, 9))
    assert S.power_binomial(0.75, 8, 0.25) == pytest.approx(by_hand, rel=1e-12)
    assert S.power_binomial(0.25, 8, 0.25) < 0.05
    for alternative in ALTS:
        region = S.binomial_rejection_region(20, 0.3, 0.05, alternative).tolist()
        assert region == [k for k in range(21) if sps.binomtest(k, 20, 0.3, alternative).pvalue < 0.05]
    assert S.power_binomial(0.9, 40, 0.5) > S.power_binomial(0.9, 20, 0.5) > S.power_binomial(0.7, 20, 0.5)


def test_min_detectable_effect_textbook():
    assert S.min_detectable_effect(64) == pytest.approx(0.5, abs=0.01)
    d = S.min_detectable_effect(10, 12, power=0.9)
    assert S.power_two_sample_t(d, 10, 12) == pytest.approx(0.9, abs=1e-6)


# ---------------------------------------------------------------------------------------------------- verdicts


def test_decide_each_branch():
    small = S.decide(True, 0.001, n=2, min_n=5)
    assert small.verdict == Verdict.INCONCLUSIVE and "n=2" in small.reason
    weak = S.decide(True, 0.001, n=10, min_n=5, power=0.3)
    assert weak.verdict == Verdict.INCONCLUSIVE and "power" in weak.reason
    assert S.decide(True, 0.01).verdict == Verdict.SUPPORTED
    assert S.decide(True, None).verdict == "SUPPORTED"
    assert S.decide(False, 0.9, opposite_shown=True).verdict == Verdict.REFUTED
    assert S.decide(True, 0.2).verdict == Verdict.INCONCLUSIVE
    assert S.decide(False, 0.01, opposite_shown=False).verdict == Verdict.INCONCLUSIVE
    assert S.decide(True, float("nan")).verdict == Verdict.INCONCLUSIVE
    assert S.decide(True, 0.05, alpha=0.05).verdict == Verdict.INCONCLUSIVE
    assert S.decide(True, 0.01, power=0.9, n=5, min_n=5).verdict == Verdict.SUPPORTED
    assert str(Verdict.REFUTED) == "REFUTED"


def test_threshold_claim_constructed_cases():
    low = S.threshold_claim([0.001] * 8, 0.01, test="sign")
    assert low.verdict == Verdict.SUPPORTED and low.n == 8 and low.confidence == pytest.approx(0.9)
    assert low.p_value == pytest.approx(0.5 ** 8) and low.details["test"] == "sign"
    assert math.isnan(low.details["mde"]), "no spread: the MDE is undefined, never 0"
    high = S.threshold_claim([0.5] * 8, 0.01, test="sign")
    assert high.verdict == Verdict.REFUTED
    assert S.threshold_claim([0.0] * 4, 10.0, test="sign").verdict == Verdict.INCONCLUSIVE, \
        "4 unanimous seeds give p = 1/16 > 0.05"
    assert S.threshold_claim([0.5, 0.6, 0.55, 0.52, 0.58, 0.51, 0.57, 0.54], 0.01, test="t").verdict == Verdict.REFUTED
    few = S.threshold_claim([0.001, 0.002], 0.01, test="t")
    assert few.verdict == Verdict.INCONCLUSIVE and "n=2" in few.reason
    noisy = S.threshold_claim(np.random.default_rng(1).uniform(0, 0.004, 10), 0.01, test="t")
    assert noisy.verdict == Verdict.SUPPORTED and noisy.ci_high < 0.01 and noisy.details["test"] == "t"
    straddle = S.threshold_claim([0.005, 0.015, 0.008, 0.012, 0.009, 0.011], 0.01, test="sign")
    assert straddle.verdict == Verdict.INCONCLUSIVE
    above = S.threshold_claim([0.96, 0.98, 1.0, 0.99, 0.97], 0.9, "above", test="sign")
    assert above.verdict == Verdict.SUPPORTED and above.p_value == pytest.approx(1 / 32)
    on_threshold = S.threshold_claim([0.01] * 8, 0.01, test="sign")
    assert on_threshold.verdict == Verdict.INCONCLUSIVE and on_threshold.p_value == 1.0, \
        "a value on the threshold is on neither side"
    underpowered = S.threshold_claim([0.001, 0.002] * 4, 0.01, power=0.5, test="sign")
    assert underpowered.verdict == Verdict.INCONCLUSIVE
    with pytest.raises(ValueError, match="declared"):
        S.threshold_claim([0.1, 0.2], 0.5, test="bootstrap")
    with pytest.raises(TypeError):
        S.threshold_claim([0.1, 0.2], 0.5)  # no default test: every criterion declares its own


@pytest.mark.parametrize("test", ["sign", "t"])
@pytest.mark.parametrize("direction", ["below", "above"])
def test_identical_seeds_give_the_decisive_verdict_on_either_side(test, direction):
    """Five identical seeds on the claimed side support the claim, on the other side refute it, with the same test
    as noisy seeds: the test never depends on the observed variance or on ties (CLAIMS.md revision 3)."""
    side, other = (-1.0, 1.0) if direction == "below" else (1.0, -1.0)
    support = S.threshold_claim([side * 100.0] * 5, 0.0, direction, test=test)
    refute = S.threshold_claim([other * 100.0] * 5, 0.0, direction, test=test)
    noisy = S.threshold_claim(side * np.array([99.0, 100.0, 101.0, 100.5, 99.5]), 0.0, direction, test=test)
    assert support.verdict == Verdict.SUPPORTED and refute.verdict == Verdict.REFUTED
    assert noisy.verdict == Verdict.SUPPORTED
    assert support.details["test"] == refute.details["test"] == noisy.details["test"] == test
    if test == "sign":
        assert support.p_value == noisy.p_value == pytest.approx(1 / 32), "ties change nothing in a sign test"
    three = S.threshold_claim([side * 100.0] * 3, 0.0, direction, test=test, min_n=5)
    assert three.verdict == Verdict.INCONCLUSIVE and "min_n=5" in three.reason


@FAST
@given(hst.integers(0, 10**6), hst.integers(3, 20), hst.floats(-1, 1), hst.sampled_from(["below", "above"]))
def test_threshold_claim_t_agrees_with_scipy_and_sign_with_binomtest(seed, n, centre, direction):
    x = _normal(seed, n, centre)
    claim = S.threshold_claim(x, 0.0, direction, test="t")
    alt = "less" if direction == "below" else "greater"
    p = sps.ttest_1samp(x, 0.0, alternative=alt).pvalue
    assert claim.p_value == pytest.approx(p, rel=1e-12)
    low, high = sps.ttest_1samp(x, 0.0).confidence_interval(0.9)
    assert (claim.ci_low, claim.ci_high) == pytest.approx((low, high), rel=1e-9)
    sign = S.threshold_claim(x, 0.0, direction, test="sign")
    k = int(np.sum(x < 0)) if direction == "below" else int(np.sum(x > 0))
    assert sign.p_value == pytest.approx(sps.binomtest(k, n, 0.5, "greater").pvalue, rel=1e-12)
    assume(abs(p - 0.05) > 1e-9)
    assert (claim.verdict == Verdict.SUPPORTED) == (p < 0.05)


def test_proportion_claim_verdicts():
    assert S.proportion_claim(7, 8, 7 / 8, chance=0.25).verdict == Verdict.SUPPORTED
    assert S.proportion_claim(8, 8, 7 / 8, chance=0.25).verdict == Verdict.SUPPORTED
    assert S.proportion_claim(6, 8, 7 / 8, chance=0.25).verdict == Verdict.INCONCLUSIVE
    refuted = S.proportion_claim(2, 8, 7 / 8, chance=0.25)
    assert refuted.verdict == Verdict.REFUTED and refuted.ci_high < 7 / 8
    assert S.proportion_claim(8, 8, 7 / 8).verdict == Verdict.INCONCLUSIVE
    strong = S.proportion_claim(100, 100, 0.9)
    assert strong.verdict == Verdict.SUPPORTED and strong.ci_low > 0.9
    assert strong.effect_size is not None and strong.effect_size.value > 0
    assert S.proportion_claim(3, 3, 0.5, chance=0.25, min_n=8).verdict == Verdict.INCONCLUSIVE


def test_records_are_json_serialisable():
    records = [
        S.threshold_claim([0.001, 0.002, 0.003, 0.001], 0.01, test="sign"),
        S.proportion_claim(7, 8, 7 / 8, chance=0.25),
        S.decide(True, 0.01, n=5),
        S.cohens_d([1, 2, 3], [2, 3, 5]),
        S.bootstrap_ci([1.0, 2.0, 3.0], n_resamples=99),
        S.permutation_test([1, 2], [3, 4]),
        S.binomial_test(3, 8, 0.25),
        S.paired_test([1, 2, 3], [0, 2, 1], "t"),
    ]
    for record in records:
        plain = json.loads(json.dumps(record.to_dict()))
        assert set(plain) == set(record.to_dict())
    claim = records[0].to_dict()
    assert claim["verdict"] in ("SUPPORTED", "REFUTED", "INCONCLUSIVE") and type(claim["verdict"]) is str
    effect = claim["effect_size"]
    assert effect["name"] == "mean - threshold (statistic units)", "no Cohen's d against a constant"
    assert effect["value"] == pytest.approx(claim["statistic"] - claim["details"]["threshold"])
    assert effect["ci_high"] == pytest.approx(claim["ci_high"] - claim["details"]["threshold"])


def test_invalid_input_raises():
    with pytest.raises(ValueError):
        S.cohens_d([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError):
        S.cohens_d([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        S.one_sample_t([1.0, 2.0], 0.0, "bigger")
    with pytest.raises(ValueError):
        S.paired_test([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        S.binomial_test(9, 8)
    with pytest.raises(ValueError):
        S.threshold_claim([0.1, 0.2], 0.5, "sideways", test="sign")


def test_ecdf_matches_scipy():
    from scipy.stats import ecdf as scipy_ecdf

    values = np.array([0.3, 0.1, 0.1, 0.7, 0.5])
    grid = [0.0, 0.1, 0.4, 0.7, 1.0]
    assert S.ecdf(values, grid) == pytest.approx(list(scipy_ecdf(values).cdf.evaluate(grid)))


@pytest.mark.parametrize("n", [3, 8, 30])
def test_min_detectable_d_one_sample_has_the_power_it_claims(n):
    d = S.min_detectable_d_one_sample(n)
    crit = sps.t.ppf(0.95, n - 1)
    assert sps.nct.sf(crit, n - 1, d * np.sqrt(n)) == pytest.approx(0.8, abs=1e-8)
    if n == 30:
        assert d == pytest.approx((sps.norm.ppf(0.95) + sps.norm.ppf(0.8)) / np.sqrt(n), rel=0.05)


@pytest.mark.parametrize("n,p0", [(8, 0.25), (24, 0.25), (3, 0.25), (10, 0.5)])
def test_min_detectable_rate_is_the_smallest_rate_with_power(n, p0):
    rate = S.min_detectable_rate(n, p0)
    k_reject = [k for k in range(n + 1) if sps.binomtest(k, n, p0, alternative="greater").pvalue < 0.05]
    power = lambda q: sum(sps.binom.pmf(k, n, q) for k in k_reject)  # noqa: E731
    assert power(rate) >= 0.8 - 1e-9 and power(rate - 1e-6) < 0.8
    assert np.isnan(S.min_detectable_rate(2, 0.25))


def test_claims_carry_their_mde():
    t = S.threshold_claim([0.001, 0.004, 0.002, 0.003], 0.01, test="t")
    assert t.details["mde"] == pytest.approx(S.min_detectable_d_one_sample(4) * np.std([1, 4, 2, 3], ddof=1) / 1000)
    sign = S.threshold_claim([0.001, 0.004, 0.002, 0.003, 0.005, 0.002], 0.01, test="sign")
    rate = S.min_detectable_rate(6, 0.5)
    assert sign.details["mde_d"] == pytest.approx(sps.norm.ppf(rate))
    power = sum(sps.binom.pmf(k, 6, sps.norm.cdf(sign.details["mde_d"])) for k in range(6, 7))
    assert power == pytest.approx(0.8, abs=1e-6), "at the MDE the one-sided sign test has power 0.8 (6/6 needed)"
    assert S.threshold_claim([0.001, 0.004, 0.002, 0.003], 0.01, test="sign").details["mde_d"] == math.inf, \
        "no count of 4 reaches p < 0.05: nothing is detectable"
    prop = S.proportion_claim(7, 8, 0.875, chance=0.25)
    assert prop.details["mde"] == pytest.approx(S.min_detectable_rate(8, 0.25) - 0.25)


class _Gate:
    def __init__(self, name, passed):
        self.name, self.passed = name, passed

    def line(self):
        return f"gate {self.name} {'passed' if self.passed else 'failed'}"


def _part(verdict, reason):
    from lazarus_bench.stats import evidence

    return evidence("p", met=verdict == "SUPPORTED", against=verdict == "REFUTED", reason=reason)


@pytest.mark.parametrize("verdicts, expected", [
    (("SUPPORTED", "SUPPORTED"), "SUPPORTED"),
    (("SUPPORTED", "INCONCLUSIVE"), "INCONCLUSIVE"),
    (("INCONCLUSIVE", "REFUTED"), "REFUTED"),
    (("SUPPORTED", "REFUTED"), "REFUTED"),
    (("INCONCLUSIVE", "INCONCLUSIVE"), "INCONCLUSIVE"),
])
def test_final_verdict_is_the_intersection_union_of_the_parts(verdicts, expected):
    from lazarus_bench.stats import final_verdict

    parts = {f"c{i}": _part(v, f"r{i}") for i, v in enumerate(verdicts)}
    decision = final_verdict(parts, "all")
    assert decision.verdict == expected and decision.measured == expected and decision.by == "rule"
    named = [f"c{i}: r{i}" for i, v in enumerate(verdicts) if v == expected or expected == "INCONCLUSIVE" and
             v != "SUPPORTED"]
    assert decision.reason == f"{expected.lower()}: " + "; ".join(named)


def test_final_verdict_gates_then_calibration_then_the_rule():
    from lazarus_bench.stats import Verdict, final_verdict

    parts = {"a": _part("SUPPORTED", "fine"), "b": _part("SUPPORTED", "also")}
    failed = final_verdict(parts, "all", [_Gate("size", True), _Gate("learned", False)],
                           ("insensitive", "INSENSITIVE: x"))
    assert failed.verdict == Verdict.NOT_TESTABLE and failed.measured == Verdict.SUPPORTED and failed.by == "gate"
    assert failed.reason == "gate learned failed; controls not run"
    stopped = final_verdict({}, "all", [_Gate("stage 1", False)])
    assert stopped.measured is None and "stopped there" in stopped.reason
    for label in ("insensitive", "not specific"):
        halted = final_verdict(parts, "all", [_Gate("size", True)], (label, "WHY"))
        assert halted.verdict == Verdict.INCONCLUSIVE and halted.by == "calibration"
        assert halted.reason.startswith("WHY; the measurement alone: supported: ")
    for label in ("calibrated", "uncalibrated", "negative control only"):
        assert final_verdict(parts, "all", (), (label, "")).verdict == Verdict.SUPPORTED
    single = final_verdict({"only": _part("REFUTED", "shown")}, "all")
    assert single.verdict == Verdict.REFUTED and single.reason == "shown", "one part is its own verdict and reason"
    with pytest.raises(ValueError, match="rule must be one of"):
        final_verdict(parts, "majority")
    with pytest.raises(ValueError, match="nothing to decide"):
        final_verdict({}, "all", [_Gate("size", True)])


def test_evidence_puts_the_contradiction_first():
    from lazarus_bench.stats import Verdict, evidence

    assert evidence("x", met=True, against=True, reason="").verdict == Verdict.REFUTED
    assert evidence("x", met=True, reason="").verdict == Verdict.SUPPORTED
    assert evidence("x", met=False, reason="").verdict == Verdict.INCONCLUSIVE


def test_mde_from_ci_against_normal_theory():
    """A 95% CI of half-width 1.96 is one standard error per 1.96: the MDE at 80% power is z_0.975 + z_0.8
    standard errors (scipy's quantiles); a 90% CI of the same width has a larger standard error."""
    from lazarus_bench.stats.power import mde_from_ci

    assert mde_from_ci(-1.96, 1.96, 0.95) == pytest.approx((1.96 / sps.norm.ppf(0.975)) * (sps.norm.ppf(0.975)
                                                                                            + sps.norm.ppf(0.8)))
    assert mde_from_ci(0.0, 2.0, 0.9, power=0.9) == pytest.approx(
        (1.0 / sps.norm.ppf(0.95)) * (sps.norm.ppf(0.95) + sps.norm.ppf(0.9)))
    assert math.isnan(mde_from_ci(-math.inf, 1.0, 0.95)) and math.isnan(mde_from_ci(0.0, 1.0, 1.0))


def test_cohens_h_is_the_arcsine_difference():
    assert S.effects.cohens_h(1.0, 0.9) == pytest.approx(math.pi - 2 * math.asin(math.sqrt(0.9)))
    assert S.effects.cohens_h(0.25, 0.75) == pytest.approx(-2 * (math.asin(math.sqrt(0.75))
                                                                  - math.asin(math.sqrt(0.25))))


def test_tost_p_is_the_larger_one_sided_p():
    """TOST's p is the larger of the two one-sided t-tests' (scipy), here with one side clearly weaker."""
    from lazarus_bench.stats.verdicts import equivalence_claim

    x = np.array([0.03, 0.01, 0.04, 0.02, 0.035, 0.025])
    got = equivalence_claim(x, 0.05, 0.05, test="t", min_n=3, name="x")
    lower = sps.ttest_1samp(x, -0.05, alternative="greater").pvalue
    upper = sps.ttest_1samp(x, 0.05, alternative="less").pvalue
    assert upper > 100 * lower and got.p_value == pytest.approx(max(lower, upper))
    assert got.details["p_lower"] == pytest.approx(lower) and got.details["p_upper"] == pytest.approx(upper)
