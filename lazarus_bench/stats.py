"""Statistics that turn a claim's measurements into a verdict: effect sizes, confidence intervals, tests, power.

Pure numpy + scipy. Conventions used throughout:

- "significant" means ``p < alpha``;
- every reported confidence interval is two-sided at ``confidence``, whatever the test's alternative, so that it
  is finite and comparable across results (a one-sided test at ``alpha`` matches the matching bound of a two-sided
  interval at ``1 - 2 * alpha``, which is the default the claim helpers use);
- zero-variance data never raise: the result carries ``degenerate=True`` and a ``note`` saying what happened;
- every resampling method takes a ``seed`` and is deterministic.

Verdicts (see ``decide``): SUPPORTED when the criterion is met and significant, REFUTED when the data show the
opposite at ``alpha``, INCONCLUSIVE when there are too few observations, too little power, or neither.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as st
from scipy.special import gammaln

DEFAULT_ALPHA = 0.05
DEFAULT_CONFIDENCE = 0.95
DEFAULT_N_RESAMPLES = 1999
DEFAULT_N_PERMUTATIONS = 9999
DEFAULT_MIN_POWER = 0.8
ALTERNATIVES = ("two-sided", "less", "greater")
BOOTSTRAP_METHODS = ("BCa", "percentile", "basic")


class Verdict(str, Enum):
    """The three outcomes of a hypothesis test; a ``str`` so it compares equal to its name."""

    SUPPORTED = "SUPPORTED"
    REFUTED = "REFUTED"
    INCONCLUSIVE = "INCONCLUSIVE"

    def __str__(self) -> str:
        """The bare name, so f-strings and reports read ``SUPPORTED`` rather than ``Verdict.SUPPORTED``."""
        return self.value


def plain(value: Any) -> Any:
    """Convert numpy scalars/arrays, enums and dataclasses (possibly nested) to JSON-friendly Python."""
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class _Record:
    """Mixin: ``to_dict()`` over the dataclass fields, as plain JSON-serialisable Python."""

    def to_dict(self) -> dict[str, Any]:
        """Every field, converted by ``plain`` (non-finite floats stay ``inf``/``nan``)."""
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class EffectSize(_Record):
    """A standardised effect size with its confidence interval; ``degenerate`` marks a zero standard deviation."""

    name: str
    value: float
    ci_low: float
    ci_high: float
    confidence: float
    ci_method: str
    se: float
    n1: int
    n2: int | None = None
    degenerate: bool = False
    note: str = ""


@dataclass(frozen=True)
class BootstrapCI(_Record):
    """A bootstrap confidence interval; ``method_used`` differs from ``method`` when BCa fell back to percentile."""

    statistic: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    method_used: str
    n: int
    n_resamples: int
    note: str = ""


@dataclass(frozen=True)
class PermutationResult(_Record):
    """An independent-samples permutation test; ``exact`` when every split was enumerated."""

    statistic_name: str
    statistic: float
    p_value: float
    alternative: str
    n1: int
    n2: int
    n_permutations: int
    exact: bool


@dataclass(frozen=True)
class BinomialResult(_Record):
    """An exact binomial test of ``k`` successes in ``n`` against ``p0``, with a two-sided Wilson interval."""

    k: int
    n: int
    p0: float
    proportion: float
    p_value: float
    alternative: str
    ci_low: float
    ci_high: float
    confidence: float


@dataclass(frozen=True)
class StatTestResult(_Record):
    """A t or Wilcoxon test: statistic, p, the estimate (mean or mean difference) and its two-sided CI."""

    name: str
    statistic: float
    p_value: float
    alternative: str
    n: int
    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    ci_method: str
    df: float | None = None
    sizes: tuple[int, ...] = ()
    degenerate: bool = False
    note: str = ""


@dataclass(frozen=True)
class VerdictResult(_Record):
    """The verdict of ``decide`` with the inputs it was based on and a one-line ``reason``."""

    verdict: Verdict
    reason: str
    criterion_met: bool
    p_value: float | None
    alpha: float
    n: int | None
    min_n: int
    power: float | None
    min_power: float
    opposite_shown: bool | None


@dataclass(frozen=True)
class ClaimStatistic(_Record):
    """What a report row shows for one claim: statistic, CI, effect size, p, n, verdict and why."""

    name: str
    statistic: float
    ci_low: float
    ci_high: float
    confidence: float
    effect_size: EffectSize | None
    p_value: float | None
    n: int
    verdict: Verdict
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- validation


def _as_1d(values: Any, name: str = "values", *, min_size: int = 1) -> np.ndarray:
    """A finite 1-D float64 array; raises ValueError otherwise, because silent NaNs would fake a verdict."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if x.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} observation(s), got {x.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values")
    return x


def _check_alternative(alternative: str) -> str:
    """Validate a scipy-style alternative."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    return alternative


def _check_level(value: float, name: str) -> float:
    """Validate a probability-like level strictly inside (0, 1)."""
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return float(value)


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    """Paired samples must have equal length."""
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")


def _is_constant(x: np.ndarray) -> bool:
    """True when every value is identical (zero sample variance)."""
    return bool(np.ptp(x) == 0.0)


# ---------------------------------------------------------------------------------------------------- bootstrap


def _bootstrap(
    samples: tuple[np.ndarray, ...],
    statistic: Callable[..., Any],
    *,
    confidence: float,
    n_resamples: int,
    method: str,
    seed: int,
) -> tuple[float, float, str, str]:
    """scipy.stats.bootstrap, falling back to percentile when BCa/basic is undefined (e.g. all-equal data)."""
    if method not in BOOTSTRAP_METHODS:
        raise ValueError(f"method must be one of {BOOTSTRAP_METHODS}, got {method!r}")
    if min(s.size for s in samples) < 2:
        return math.nan, math.nan, "none", "fewer than two observations: no bootstrap interval"
    kwargs = dict(confidence_level=confidence, rng=np.random.default_rng(seed))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = st.bootstrap(samples, statistic, n_resamples=n_resamples, method=method, **kwargs)
        bad = float(np.mean(~np.isfinite(res.bootstrap_distribution)))
        if bad > 0.0:
            return math.nan, math.nan, method, f"{bad:.1%} of resamples gave a non-finite statistic: interval undefined"
        low, high = (float(v) for v in res.confidence_interval)
        if method != "percentile" and not (math.isfinite(low) and math.isfinite(high)):
            res = st.bootstrap(samples, statistic, n_resamples=0, method="percentile", bootstrap_result=res, **kwargs)
            low, high = (float(v) for v in res.confidence_interval)
            return low, high, "percentile", f"{method} undefined (degenerate bootstrap distribution); used percentile"
    return low, high, method, ""


def bootstrap_ci(
    data: Any,
    statistic: Callable[..., Any] = np.mean,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_N_RESAMPLES,
    method: str = "BCa",
    seed: int = 0,
) -> BootstrapCI:
    """Two-sided bootstrap CI of ``statistic`` over 1-D ``data`` (scipy.stats.bootstrap, seeded).

    BCa is undefined for degenerate data (e.g. all values equal); then the percentile interval is used, which for
    all-equal data is ``[x, x]``. Fewer than two observations give a NaN interval.
    """
    x = _as_1d(data, "data")
    _check_level(confidence, "confidence")
    low, high, used, note = _bootstrap(
        (x,), statistic, confidence=confidence, n_resamples=n_resamples, method=method, seed=seed
    )
    return BootstrapCI(
        statistic=float(statistic(x)),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        method=method,
        method_used=used,
        n=int(x.size),
        n_resamples=int(n_resamples),
        note=note,
    )


# ---------------------------------------------------------------------------------------------------- effect sizes


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


# ---------------------------------------------------------------------------------------------------- permutation


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


# ---------------------------------------------------------------------------------------------------- binomial


def _check_counts(k: int, n: int) -> None:
    """0 <= k <= n, n >= 1, integers."""
    if int(k) != k or int(n) != n or n < 1 or not 0 <= k <= n:
        raise ValueError(f"need integers 0 <= k <= n, n >= 1; got k={k}, n={n}")


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


# ---------------------------------------------------------------------------------------------------- t / Wilcoxon


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


# ---------------------------------------------------------------------------------------------------- Holm


def _check_pvalues(p_values: Any) -> np.ndarray:
    """A 1-D float array of p-values in [0, 1]."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError("p-values must lie in [0, 1] (and not be NaN)")
    return p


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


# ---------------------------------------------------------------------------------------------------- power


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


# ---------------------------------------------------------------------------------------------------- verdicts


def _fmt(value: float) -> str:
    """Compact number for reasons: 4 significant digits."""
    return f"{value:.4g}"


def decide(
    criterion_met: bool,
    p_value: float | None,
    alpha: float = DEFAULT_ALPHA,
    n: int | None = None,
    min_n: int = 1,
    power: float | None = None,
    min_power: float = DEFAULT_MIN_POWER,
    opposite_shown: bool | None = None,
) -> VerdictResult:
    """Turn a criterion and its test into a verdict, checked in this order:

    1. ``n < min_n`` or (``power`` given and ``power < min_power``) -> INCONCLUSIVE (too little data);
    2. criterion met and (``p_value`` is None or ``p_value < alpha``) -> SUPPORTED;
    3. ``opposite_shown`` (the data contradict the claim at alpha) -> REFUTED;
    4. otherwise INCONCLUSIVE. A NaN p-value never counts as significant.
    """
    _check_level(alpha, "alpha")

    def result(verdict: Verdict, reason: str) -> VerdictResult:
        return VerdictResult(
            verdict, reason, bool(criterion_met), None if p_value is None else float(p_value), alpha,
            None if n is None else int(n), int(min_n), None if power is None else float(power), min_power,
            None if opposite_shown is None else bool(opposite_shown),
        )

    if n is not None and n < min_n:
        return result(Verdict.INCONCLUSIVE, f"too few observations: n={n} < min_n={min_n}")
    if power is not None and not power >= min_power:
        return result(Verdict.INCONCLUSIVE, f"too little power: {_fmt(power)} < min_power={_fmt(min_power)}")
    significant = p_value is None or (not math.isnan(p_value) and p_value < alpha)
    p_text = "no test" if p_value is None else f"p={_fmt(p_value)}"
    if criterion_met and significant:
        return result(Verdict.SUPPORTED, f"criterion met, {p_text}" + ("" if p_value is None else f" < alpha={alpha}"))
    if opposite_shown:
        return result(Verdict.REFUTED, f"the opposite is shown at alpha={alpha} ({p_text} for the claim)")
    if criterion_met:
        return result(Verdict.INCONCLUSIVE, f"criterion met but not significant: {p_text} >= alpha={alpha}")
    return result(Verdict.INCONCLUSIVE, f"criterion not met and the opposite not shown at alpha={alpha} ({p_text})")


def _claim_confidence(confidence: float | None, alpha: float) -> float:
    """Default CI level 1 - 2 alpha: each bound is then a one-sided (1 - alpha) bound, matching a one-sided test."""
    return _check_level(1.0 - 2.0 * alpha if confidence is None else confidence, "confidence")


def threshold_claim(
    values: Any,
    threshold: float,
    direction: str = "below",
    alpha: float = DEFAULT_ALPHA,
    *,
    method: str = "t",
    min_n: int = 3,
    power: float | None = None,
    min_power: float = DEFAULT_MIN_POWER,
    confidence: float | None = None,
    n_resamples: int = DEFAULT_N_RESAMPLES,
    seed: int = 0,
    name: str = "threshold",
) -> ClaimStatistic:
    """Claim "the mean of ``values`` is below (or above) ``threshold``", e.g. "op-word probability < 1%".

    CI of the mean at ``confidence`` (default 1 - 2 alpha): t-based for ``method="t"``, seeded BCa bootstrap for
    ``"bootstrap"``. SUPPORTED when the CI bound on the claimed side is beyond the threshold and the one-sided test
    is significant; REFUTED when the other bound is beyond it the other way (and that one-sided test is
    significant); else INCONCLUSIVE. The test is a one-sample t-test, except for the bootstrap method and for
    zero-variance data, which use the exact sign test. For "every unit below X" claims pass each unit's maximum.
    """
    if direction not in ("below", "above"):
        raise ValueError(f"direction must be 'below' or 'above', got {direction!r}")
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")
    x = _as_1d(values)
    level = _claim_confidence(confidence, alpha)
    n, mean, thr = int(x.size), float(np.mean(x)), float(threshold)
    claimed, opposite = ("less", "greater") if direction == "below" else ("greater", "less")
    effect = one_sample_d(x, thr, confidence=level) if n >= 2 else None
    low = high = p_claim = p_opp = math.nan
    test = "none"
    if n >= 2 and method == "t":
        t_claim = one_sample_t(x, thr, claimed, confidence=level)
        low, high = t_claim.ci_low, t_claim.ci_high
        if not t_claim.degenerate:
            p_claim, p_opp, test = t_claim.p_value, one_sample_t(x, thr, opposite).p_value, "one-sample t"
    elif n >= 2:
        boot = bootstrap_ci(x, np.mean, confidence=level, n_resamples=n_resamples, seed=seed)
        low, high = boot.ci_low, boot.ci_high
    if n >= 2 and test == "none":
        p_claim, p_opp, test = sign_test(x, thr, claimed).p_value, sign_test(x, thr, opposite).p_value, "sign test"
    if direction == "below":
        met, against = high < thr, low > thr
    else:
        met, against = low > thr, high < thr
    opposite_shown = bool(against and p_opp < alpha)
    verdict = decide(met, p_claim, alpha, n, min_n, power, min_power, opposite_shown)
    return ClaimStatistic(
        name=name, statistic=mean, ci_low=low, ci_high=high, confidence=level, effect_size=effect,
        p_value=p_claim, n=n, verdict=verdict.verdict, reason=verdict.reason,
        details={"threshold": thr, "direction": direction, "alpha": alpha, "method": method, "test": test,
                 "p_opposite": p_opp, "min_n": min_n, "power": power},
    )


def proportion_claim(
    k: int,
    n: int,
    p_min: float,
    alpha: float = DEFAULT_ALPHA,
    *,
    chance: float | None = None,
    min_n: int = 1,
    power: float | None = None,
    min_power: float = DEFAULT_MIN_POWER,
    confidence: float | None = None,
    name: str = "proportion",
) -> ClaimStatistic:
    """Claim "the success rate is at least ``p_min``" from k successes in n, with a Wilson CI (default 1 - 2 alpha).

    Without ``chance``: SUPPORTED when the Wilson lower bound exceeds p_min and binomtest(p_min, "greater") is
    significant. With ``chance`` (e.g. 0.25 for 4 classes) the writeup's literal criterion is used instead:
    observed k/n >= p_min and significantly above chance. Either way REFUTED when the Wilson upper bound is
    below p_min and binomtest(p_min, "less") is significant; otherwise INCONCLUSIVE. Effect size: Cohen's h
    against ``chance`` (or p_min), with the Wilson bounds transformed.
    """
    _check_counts(k, n)
    _check_level(p_min, "p_min")
    level = _claim_confidence(confidence, alpha)
    low, high = wilson_interval(k, n, level)
    rate = k / n
    if chance is None:
        met = low > p_min
        p_value = float(st.binomtest(int(k), int(n), p_min, alternative="greater").pvalue)
        reference, rule = p_min, "Wilson lower bound > p_min"
    else:
        _check_level(chance, "chance")
        met = k >= p_min * n - 1e-9
        p_value = float(st.binomtest(int(k), int(n), chance, alternative="greater").pvalue)
        reference, rule = chance, "observed >= p_min, above chance"
    p_below = float(st.binomtest(int(k), int(n), p_min, alternative="less").pvalue)
    opposite_shown = bool(high < p_min and p_below < alpha)
    verdict = decide(met, p_value, alpha, n, min_n, power, min_power, opposite_shown)
    effect = EffectSize(
        name="cohens_h", value=cohens_h(rate, reference), ci_low=cohens_h(low, reference),
        ci_high=cohens_h(high, reference), confidence=level, ci_method="wilson-transformed", se=math.nan, n1=int(n),
    )
    return ClaimStatistic(
        name=name, statistic=rate, ci_low=low, ci_high=high, confidence=level, effect_size=effect, p_value=p_value,
        n=int(n), verdict=verdict.verdict, reason=verdict.reason,
        details={"k": int(k), "p_min": p_min, "chance": chance, "alpha": alpha, "rule": rule,
                 "p_below_p_min": p_below, "min_n": min_n, "power": power},
    )


__all__ = [
    "ALTERNATIVES",
    "BinomialResult",
    "BootstrapCI",
    "ClaimStatistic",
    "EffectSize",
    "PERMUTATION_STATISTICS",
    "PermutationResult",
    "StatTestResult",
    "Verdict",
    "VerdictResult",
    "binomial_rejection_region",
    "binomial_test",
    "bootstrap_ci",
    "cohens_d",
    "cohens_h",
    "decide",
    "hedges_correction",
    "hedges_g",
    "holm",
    "holm_reject",
    "min_detectable_effect",
    "one_sample_d",
    "one_sample_t",
    "paired_d",
    "paired_test",
    "permutation_test",
    "power_binomial",
    "power_one_sample_t",
    "power_two_sample_t",
    "proportion_claim",
    "sign_test",
    "threshold_claim",
    "two_sample_t",
]


def ecdf(values, grid) -> list[float]:
    """Empirical CDF of ``values`` at each point of ``grid`` (share of values <= the point)."""
    values = np.asarray(values, dtype=np.float64)
    return [float(np.mean(values <= g)) for g in grid]
