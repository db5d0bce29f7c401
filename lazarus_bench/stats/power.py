"""Power and minimum detectable effects for the t and binomial tests the claims use."""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy import stats as st

from .checks import _check_alternative, _check_counts, _check_level
from .results import DEFAULT_ALPHA, DEFAULT_MIN_POWER


def power_one_sample_t(d: float, n: int, alpha: float = DEFAULT_ALPHA, alternative: str = "two-sided") -> float:
    """Power of a one-sample (or paired, with d = d_z) t-test: noncentral t, df = n-1, noncentrality d sqrt(n)."""
    if n < 2:
        raise ValueError(f"need n >= 2, got {n}")
    return _t_power(d * math.sqrt(n), n - 1, alpha, alternative)


def power_two_sample_t(
    d: float, n1: int, n2: int | None = None, alpha: float = DEFAULT_ALPHA, alternative: str = "two-sided"
) -> float:
    """Power of the pooled two-sample t-test at true Cohen's d.

    Noncentral t with df = n1+n2-2 and noncentrality d sqrt(n1 n2 / (n1+n2)); ``n2`` defaults to ``n1``.
    """
    n2 = n1 if n2 is None else n2
    if n1 < 2 or n2 < 2:
        raise ValueError(f"need n1, n2 >= 2, got {n1}, {n2}")
    return _t_power(d * math.sqrt(n1 * n2 / (n1 + n2)), n1 + n2 - 2, alpha, alternative)


def _t_power(nc: float, df: float, alpha: float, alternative: str) -> float:
    """P(reject) for a t statistic distributed as nct(df, nc), rejecting at level alpha."""
    _check_level(alpha, "alpha")
    _check_alternative(alternative)
    if alternative == "two-sided":
        crit = float(st.t.ppf(1.0 - alpha / 2.0, df))
        return float(st.nct.sf(crit, df, nc) + st.nct.cdf(-crit, df, nc))
    crit = float(st.t.ppf(1.0 - alpha, df))
    if alternative == "greater":
        return float(st.nct.sf(crit, df, nc))
    return float(st.nct.cdf(-crit, df, nc))


def binomial_rejection_region(
    n: int, p0: float, alpha: float = DEFAULT_ALPHA, alternative: str = "greater"
) -> np.ndarray:
    """The success counts k in 0..n for which scipy's exact binomtest against p0 gives p < alpha."""
    _check_level(p0, "p0")
    _check_level(alpha, "alpha")
    _check_alternative(alternative)
    k = np.arange(n + 1)
    if alternative == "greater":
        p = st.binom.sf(k - 1, n, p0)
    elif alternative == "less":
        p = st.binom.cdf(k, n, p0)
    else:
        p = np.array([st.binomtest(int(i), n, p0).pvalue for i in k])
    return k[p < alpha]


def power_binomial(
    p_alt: float, n: int, p0: float, alpha: float = DEFAULT_ALPHA, alternative: str = "greater"
) -> float:
    """Exact power of the binomial test of p0 at true success rate p_alt: the pmf summed over the rejection region."""
    _check_counts(0, n)
    if not 0.0 <= p_alt <= 1.0:
        raise ValueError(f"p_alt must be in [0, 1], got {p_alt}")
    region = binomial_rejection_region(n, p0, alpha, alternative)
    return float(np.sum(st.binom.pmf(region, n, p_alt)))


def min_detectable_effect(
    n1: int,
    n2: int | None = None,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_MIN_POWER,
    alternative: str = "two-sided",
) -> float:
    """Smallest |Cohen's d| the two-sample t-test detects with the given power (root of power_two_sample_t).

    For ``alternative="less"`` the effect is taken as negative; the magnitude is returned either way.
    """
    _check_level(power, "power")
    sign = -1.0 if alternative == "less" else 1.0

    def gap(d: float) -> float:
        return power_two_sample_t(sign * d, n1, n2, alpha, alternative) - power

    if gap(0.0) >= 0.0:
        return 0.0
    high = 1.0
    while gap(high) < 0.0:
        high *= 2.0
    return float(optimize.brentq(gap, 0.0, high, xtol=1e-10))


def min_detectable_d_one_sample(n: int, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_MIN_POWER,
                                alternative: str = "greater") -> float:
    """Smallest |d_z| a one-sample (or paired) t-test at ``n`` detects with the given power; NaN for n < 2."""
    _check_level(power, "power")
    if n < 2:
        return math.nan
    sign = -1.0 if alternative == "less" else 1.0

    def gap(d: float) -> float:
        return power_one_sample_t(sign * d, n, alpha, alternative) - power

    high = 1.0
    while gap(high) < 0.0:
        high *= 2.0
        if high > 1e6:
            return math.inf
    return float(optimize.brentq(gap, 0.0, high, xtol=1e-10))


def min_detectable_d_sign(n: int, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_MIN_POWER) -> float:
    """Smallest normal shift d (in SDs) the one-sided exact sign test at ``n`` detects with the given power: the rate
    Phi(d) of values beyond the threshold must reach ``min_detectable_rate(n, 1/2)``; infinite when no count can
    reject (n < 5 at alpha 0.05)."""
    rate = min_detectable_rate(n, 0.5, alpha, power, "greater") if n >= 1 else math.nan
    return math.inf if math.isnan(rate) else float(st.norm.ppf(rate))


def min_detectable_rate(n: int, p0: float, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_MIN_POWER,
                        alternative: str = "greater") -> float:
    """Smallest true success rate (above p0 for "greater", below for "less") the exact binomial test at ``n``
    detects with the given power; NaN when no count in 0..n can reject (``n`` too small for ``alpha``)."""
    _check_level(power, "power")
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    if binomial_rejection_region(n, p0, alpha, alternative).size == 0:
        return math.nan
    target = 1.0 if alternative == "greater" else 0.0
    if power_binomial(target, n, p0, alpha, alternative) < power:
        return math.nan
    low, high = (p0, 1.0) if alternative == "greater" else (0.0, p0)
    for _ in range(60):  # power is monotone in the true rate: bisect to ~1e-18
        mid = (low + high) / 2.0
        ok = power_binomial(mid, n, p0, alpha, alternative) >= power
        if alternative == "greater":
            high, low = (mid, low) if ok else (high, mid)
        else:
            low, high = (mid, high) if ok else (low, mid)
    return high if alternative == "greater" else low


def mde_from_ci(ci_low: float, ci_high: float, confidence: float, power: float = DEFAULT_MIN_POWER) -> float:
    """Approximate MDE from a two-sided CI at ``confidence`` whose bounds are one-sided tests at (1 - confidence) / 2:
    the standard error is the half-width over z, the MDE (z_alpha + z_power) standard errors (normal theory)."""
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)) or not 0.0 < confidence < 1.0:
        return math.nan
    z_alpha = float(st.norm.ppf(0.5 + confidence / 2.0))
    se = (ci_high - ci_low) / (2.0 * z_alpha)
    return se * (z_alpha + float(st.norm.ppf(power)))
