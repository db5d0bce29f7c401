"""Hypothesis tests: permutation, binomial/Wilson, t and Wilcoxon, Holm, ECDF."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats as st

from .checks import _as_1d, _check_alternative, _check_counts, _check_level, _check_pair, _check_pvalues, _is_constant
from .effects import _d_statistic
from .resampling import bootstrap_ci
from .results import (
    DEFAULT_ALPHA,
    DEFAULT_CONFIDENCE,
    DEFAULT_N_PERMUTATIONS,
    DEFAULT_N_RESAMPLES,
    BinomialResult,
    PermutationResult,
    StatTestResult,
)


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """mean(x) - mean(y) along ``axis``."""
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _median_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """median(x) - median(y) along ``axis``."""
    return np.median(x, axis=axis) - np.median(y, axis=axis)


PERMUTATION_STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    "mean_diff": _mean_diff,
    "median_diff": _median_diff,
    "cohens_d": _d_statistic,
}


def permutation_test(
    a: Any,
    b: Any,
    *,
    statistic: str | Callable[..., Any] = "mean_diff",
    alternative: str = "two-sided",
    n_resamples: int = DEFAULT_N_PERMUTATIONS,
    seed: int = 0,
) -> PermutationResult:
    """Independent-samples permutation test (scipy.stats.permutation_test) of statistic(a, b).

    Exact (all C(n1+n2, n1) splits) when that count is <= ``n_resamples``; otherwise randomised with
    p = (1 + #null >= observed) / (n_resamples + 1), so p >= 1/(n_resamples+1) and never 0. Two-sided p is
    2 * min(one-sided p's), capped at 1. ``statistic`` is a name from PERMUTATION_STATISTICS or a callable
    ``f(x, y, axis)``.
    """
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    _check_alternative(alternative)
    if callable(statistic):
        fn, label = statistic, getattr(statistic, "__name__", "custom")
    elif statistic in PERMUTATION_STATISTICS:
        fn, label = PERMUTATION_STATISTICS[statistic], statistic
    else:
        raise ValueError(f"statistic must be callable or one of {sorted(PERMUTATION_STATISTICS)}, got {statistic!r}")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = st.permutation_test(
            (x, y), fn, permutation_type="independent", n_resamples=n_resamples,
            alternative=alternative, rng=np.random.default_rng(seed),
        )
    n_splits = math.comb(x.size + y.size, x.size)
    return PermutationResult(
        statistic_name=label,
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        alternative=alternative,
        n1=int(x.size),
        n2=int(y.size),
        n_permutations=int(np.size(res.null_distribution)),
        exact=n_resamples >= n_splits,
    )


def wilson_interval(k: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Two-sided Wilson score interval for k successes in n (scipy's binomtest proportion_ci, method='wilson')."""
    _check_counts(k, n)
    _check_level(confidence, "confidence")
    ci = st.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def binomial_test(
    k: int,
    n: int,
    p0: float = 0.5,
    alternative: str = "two-sided",
    *,
    confidence: float = DEFAULT_CONFIDENCE,
) -> BinomialResult:
    """Exact binomial test (scipy.stats.binomtest) of k successes in n against p0, plus a two-sided Wilson CI."""
    _check_counts(k, n)
    _check_alternative(alternative)
    _check_level(p0, "p0")
    res = st.binomtest(int(k), int(n), p=float(p0), alternative=alternative)
    low, high = wilson_interval(k, n, confidence)
    return BinomialResult(
        k=int(k), n=int(n), p0=float(p0), proportion=int(k) / int(n), p_value=float(res.pvalue),
        alternative=alternative, ci_low=low, ci_high=high, confidence=confidence,
    )


def sign_test(values: Any, center: float = 0.0, alternative: str = "two-sided") -> BinomialResult:
    """Sign test: binomial test (p0 = 1/2) of how many values exceed ``center``; values equal to it are dropped."""
    x = _as_1d(values)
    above, below = int(np.sum(x > center)), int(np.sum(x < center))
    if above + below == 0:
        return BinomialResult(0, 0, 0.5, math.nan, 1.0, _check_alternative(alternative), math.nan, math.nan,
                              DEFAULT_CONFIDENCE)
    return binomial_test(above, above + below, 0.5, alternative)


def _t_interval(estimate: float, se: float, df: float, confidence: float) -> tuple[float, float]:
    """estimate -+ t_{df, (1+confidence)/2} * se; [estimate, estimate] when se is 0."""
    if se == 0.0:
        return estimate, estimate
    q = float(st.t.ppf(0.5 + confidence / 2.0, df))
    return estimate - q * se, estimate + q * se


def _quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a scipy test with its degenerate-data warnings silenced (the result flags them instead)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def one_sample_t(
    x: Any, mu0: float = 0.0, alternative: str = "two-sided", *, confidence: float = DEFAULT_CONFIDENCE
) -> StatTestResult:
    """One-sample t-test of mean(x) against mu0 (scipy.stats.ttest_1samp) with a two-sided t CI of the mean.

    Zero variance: scipy's t is +-inf (p 0) or nan; the result is flagged ``degenerate``.
    """
    v = _as_1d(x, "x", min_size=2)
    _check_alternative(alternative)
    _check_level(confidence, "confidence")
    res = _quiet(st.ttest_1samp, v, float(mu0), alternative=alternative)
    n = int(v.size)
    mean = float(np.mean(v))
    low, high = _t_interval(mean, float(np.std(v, ddof=1)) / math.sqrt(n), n - 1, confidence)
    degenerate = _is_constant(v)
    return StatTestResult(
        name="one_sample_t", statistic=float(res.statistic), p_value=float(res.pvalue), alternative=alternative,
        n=n, estimate=mean, ci_low=low, ci_high=high, confidence=confidence, ci_method="t", df=float(n - 1),
        sizes=(n,), degenerate=degenerate, note="zero variance: t is degenerate" if degenerate else "",
    )


def two_sample_t(
    a: Any, b: Any, alternative: str = "two-sided", *, confidence: float = DEFAULT_CONFIDENCE
) -> StatTestResult:
    """Welch's unequal-variance t-test (scipy.stats.ttest_ind, equal_var=False) with a Welch CI of mean(a)-mean(b)."""
    x = _as_1d(a, "a", min_size=2)
    y = _as_1d(b, "b", min_size=2)
    _check_alternative(alternative)
    _check_level(confidence, "confidence")
    res = _quiet(st.ttest_ind, x, y, equal_var=False, alternative=alternative)
    n1, n2 = int(x.size), int(y.size)
    va, vb = float(np.var(x, ddof=1)) / n1, float(np.var(y, ddof=1)) / n2
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (n1 - 1) + vb**2 / (n2 - 1)) if se > 0 else math.nan
    diff = float(np.mean(x) - np.mean(y))
    low, high = _t_interval(diff, se, df, confidence)
    degenerate = se == 0.0
    return StatTestResult(
        name="welch_t", statistic=float(res.statistic), p_value=float(res.pvalue), alternative=alternative,
        n=n1 + n2, estimate=diff, ci_low=low, ci_high=high, confidence=confidence, ci_method="welch-t",
        df=float(df), sizes=(n1, n2), degenerate=degenerate,
        note="zero variance in both samples: t is degenerate" if degenerate else "",
    )


def paired_test(
    a: Any,
    b: Any,
    method: str = "wilcoxon",
    alternative: str = "two-sided",
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_N_RESAMPLES,
    seed: int = 0,
) -> StatTestResult:
    """Paired test of a against b: Wilcoxon signed-rank (scipy.stats.wilcoxon) or paired t (scipy.stats.ttest_rel).

    The estimate is mean(a - b); its CI is t-based for ``method="t"`` and a seeded BCa bootstrap of the
    differences for ``"wilcoxon"``. The Wilcoxon statistic is scipy's (min(R+, R-) two-sided, R+ one-sided);
    zero differences are dropped (zero_method="wilcox"), and all-zero differences give p = 1, ``degenerate``.
    """
    x, y = _as_1d(a, "a", min_size=2), _as_1d(b, "b", min_size=2)
    _check_pair(x, y)
    _check_alternative(alternative)
    _check_level(confidence, "confidence")
    diff = x - y
    n = int(diff.size)
    mean = float(np.mean(diff))
    degenerate = _is_constant(diff)
    if method == "t":
        res = _quiet(st.ttest_rel, x, y, alternative=alternative)
        low, high = _t_interval(mean, float(np.std(diff, ddof=1)) / math.sqrt(n), n - 1, confidence)
        return StatTestResult(
            name="paired_t", statistic=float(res.statistic), p_value=float(res.pvalue), alternative=alternative,
            n=n, estimate=mean, ci_low=low, ci_high=high, confidence=confidence, ci_method="t", df=float(n - 1),
            sizes=(n,), degenerate=degenerate, note="zero variance of the differences" if degenerate else "",
        )
    if method != "wilcoxon":
        raise ValueError(f"method must be 'wilcoxon' or 't', got {method!r}")
    if np.all(diff == 0.0):
        stat, p, note = 0.0, 1.0, "all differences are zero: no evidence either way"
    else:
        res = _quiet(st.wilcoxon, x, y, alternative=alternative)
        stat, p, note = float(res.statistic), float(res.pvalue), ""
    boot = bootstrap_ci(diff, np.mean, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return StatTestResult(
        name="wilcoxon", statistic=stat, p_value=p, alternative=alternative, n=n, estimate=mean,
        ci_low=boot.ci_low, ci_high=boot.ci_high, confidence=confidence, ci_method=f"bootstrap-{boot.method_used}",
        sizes=(n,), degenerate=degenerate, note=note,
    )


def holm(p_values: Any) -> np.ndarray:
    """Holm step-down adjusted p-values: sorted ascending, adj_(i) = max_{j<=i} min(1, (m - j) p_(j)) (0-based).

    Returned in the input order; monotone in the raw p, never below it, capped at 1. Controls the
    family-wise error rate under any dependence.
    """
    p = _check_pvalues(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def holm_reject(p_values: Any, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Which hypotheses Holm's procedure rejects at family-wise level alpha (adjusted p < alpha)."""
    _check_level(alpha, "alpha")
    return holm(p_values) < alpha




def ecdf(values, grid) -> list[float]:
    """Empirical CDF of ``values`` at each point of ``grid`` (share of values <= the point)."""
    values = np.asarray(values, dtype=np.float64)
    return [float(np.mean(values <= g)) for g in grid]
