"""Effect sizes with confidence intervals: Cohen's d, Hedges' g, one-sample and paired d, Cohen's h."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats as st
from scipy.special import gammaln

from .checks import _as_1d, _check_level, _check_pair
from .resampling import _bootstrap
from .results import DEFAULT_CONFIDENCE, DEFAULT_N_RESAMPLES, EffectSize


def _pooled_sd(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pooled standard deviation with ddof=1 per group: sqrt(((n1-1)s1^2 + (n2-1)s2^2) / (n1+n2-2))."""
    n1, n2 = a.shape[axis], b.shape[axis]
    ss = (n1 - 1) * np.var(a, axis=axis, ddof=1) + (n2 - 1) * np.var(b, axis=axis, ddof=1)
    return np.sqrt(ss / (n1 + n2 - 2))


def _d_statistic(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Vectorised Cohen's d (inf/nan where the pooled SD is zero), for the bootstrap."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.mean(a, axis=axis) - np.mean(b, axis=axis)) / _pooled_sd(a, b, axis=axis)


def _dz_statistic(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Vectorised one-sample standardised mean mean/sd (ddof=1), for the bootstrap."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mean(x, axis=axis) / np.std(x, axis=axis, ddof=1)


def hedges_correction(df: int) -> float:
    """Exact small-sample bias factor J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2)), df = n1 + n2 - 2."""
    if df < 2:
        raise ValueError(f"Hedges' correction needs df >= 2, got {df}")
    return float(math.exp(gammaln(df / 2.0) - gammaln((df - 1) / 2.0)) / math.sqrt(df / 2.0))


def _degenerate_value(numerator: float) -> tuple[float, str]:
    """The effect size when the SD is zero: +-inf for a non-zero difference, NaN for none."""
    if numerator == 0.0:
        return math.nan, "zero variance and zero difference: effect size undefined (nan)"
    return math.copysign(math.inf, numerator), "zero variance with a non-zero difference: effect size is infinite"


def _normal_ci(value: float, se: float, confidence: float) -> tuple[float, float]:
    """value -+ z * se (the Hedges & Olkin normal approximation)."""
    z = float(st.norm.ppf(0.5 + confidence / 2.0))
    return value - z * se, value + z * se


def _two_sample_effect(
    name: str,
    a: Any,
    b: Any,
    *,
    factor: Callable[[int, int], float],
    confidence: float,
    ci: str,
    n_resamples: int,
    bootstrap_method: str,
    seed: int,
) -> EffectSize:
    """Shared body of cohens_d and hedges_g: d times ``factor(n1, n2)``, normal or bootstrap CI."""
    x = _as_1d(a, "a", min_size=2)
    y = _as_1d(b, "b", min_size=2)
    _check_level(confidence, "confidence")
    n1, n2 = int(x.size), int(y.size)
    j = factor(n1, n2)
    diff = float(np.mean(x) - np.mean(y))
    sd = float(_pooled_sd(x, y))
    if sd == 0.0:
        value, note = _degenerate_value(diff)
        return EffectSize(name, value, math.nan, math.nan, confidence, "none", math.nan, n1, n2, True, note)
    value = j * diff / sd
    se = math.sqrt((n1 + n2) / (n1 * n2) + value**2 / (2.0 * (n1 + n2)))
    if ci == "normal":
        low, high = _normal_ci(value, se, confidence)
        return EffectSize(name, value, low, high, confidence, "normal", se, n1, n2)
    if ci != "bootstrap":
        raise ValueError(f"ci must be 'normal' or 'bootstrap', got {ci!r}")

    def stat(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
        return j * _d_statistic(p, q, axis=axis)

    low, high, used, note = _bootstrap(
        (x, y), stat, confidence=confidence, n_resamples=n_resamples, method=bootstrap_method, seed=seed
    )
    return EffectSize(name, value, low, high, confidence, f"bootstrap-{used}", se, n1, n2, note=note)


def cohens_d(
    a: Any,
    b: Any,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    ci: str = "normal",
    n_resamples: int = DEFAULT_N_RESAMPLES,
    bootstrap_method: str = "BCa",
    seed: int = 0,
) -> EffectSize:
    """Cohen's d = (mean(a) - mean(b)) / pooled SD (ddof=1), with a normal-approximation or bootstrap CI.

    The normal CI uses se = sqrt((n1+n2)/(n1 n2) + d^2 / (2 (n1+n2))) (Hedges & Olkin). Each group needs >= 2
    values. Zero pooled SD gives value +-inf (non-zero difference) or nan (none), a NaN CI and ``degenerate=True``.
    """
    return _two_sample_effect(
        "cohens_d", a, b, factor=lambda n1, n2: 1.0, confidence=confidence, ci=ci,
        n_resamples=n_resamples, bootstrap_method=bootstrap_method, seed=seed,
    )


def hedges_g(
    a: Any,
    b: Any,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    ci: str = "normal",
    n_resamples: int = DEFAULT_N_RESAMPLES,
    bootstrap_method: str = "BCa",
    seed: int = 0,
) -> EffectSize:
    """Hedges' g = J(n1+n2-2) * Cohen's d with the exact gamma-form J, removing d's small-sample upward bias.

    Same CI options and zero-variance behaviour as ``cohens_d``.
    """
    return _two_sample_effect(
        "hedges_g", a, b, factor=lambda n1, n2: hedges_correction(n1 + n2 - 2), confidence=confidence, ci=ci,
        n_resamples=n_resamples, bootstrap_method=bootstrap_method, seed=seed,
    )


def one_sample_d(
    x: Any,
    mu0: float = 0.0,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    ci: str = "normal",
    n_resamples: int = DEFAULT_N_RESAMPLES,
    bootstrap_method: str = "BCa",
    seed: int = 0,
    name: str = "one_sample_d",
) -> EffectSize:
    """Standardised distance of the mean from ``mu0``: (mean(x) - mu0) / sd(x, ddof=1).

    Normal CI with se = sqrt(1/n + d^2 / (2n)); zero SD is handled as in ``cohens_d``. Needs >= 2 values.
    """
    v = _as_1d(x, "x", min_size=2) - float(mu0)
    _check_level(confidence, "confidence")
    n = int(v.size)
    mean, sd = float(np.mean(v)), float(np.std(v, ddof=1))
    if sd == 0.0:
        value, note = _degenerate_value(mean)
        return EffectSize(name, value, math.nan, math.nan, confidence, "none", math.nan, n, None, True, note)
    value = mean / sd
    se = math.sqrt(1.0 / n + value**2 / (2.0 * n))
    if ci == "normal":
        low, high = _normal_ci(value, se, confidence)
        return EffectSize(name, value, low, high, confidence, "normal", se, n)
    if ci != "bootstrap":
        raise ValueError(f"ci must be 'normal' or 'bootstrap', got {ci!r}")
    low, high, used, note = _bootstrap(
        (v,), _dz_statistic, confidence=confidence, n_resamples=n_resamples, method=bootstrap_method, seed=seed
    )
    return EffectSize(name, value, low, high, confidence, f"bootstrap-{used}", se, n, note=note)


def paired_d(
    a: Any,
    b: Any,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    ci: str = "normal",
    n_resamples: int = DEFAULT_N_RESAMPLES,
    bootstrap_method: str = "BCa",
    seed: int = 0,
) -> EffectSize:
    """Paired effect size d_z = mean(a - b) / sd(a - b) (ddof=1); ``one_sample_d`` of the differences."""
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    _check_pair(x, y)
    return one_sample_d(
        x - y, 0.0, confidence=confidence, ci=ci, n_resamples=n_resamples,
        bootstrap_method=bootstrap_method, seed=seed, name="paired_d",
    )


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p2)): the effect size of a difference between proportions."""
    p1, p2 = min(max(p1, 0.0), 1.0), min(max(p2, 0.0), 1.0)
    return 2.0 * math.asin(math.sqrt(p1)) - 2.0 * math.asin(math.sqrt(p2))
