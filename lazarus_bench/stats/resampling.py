"""Bootstrap confidence intervals (BCa, percentile, basic), seeded and vectorised."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats as st

from .checks import _as_1d, _check_level
from .results import (
    BOOTSTRAP_METHODS,
    DEFAULT_CONFIDENCE,
    DEFAULT_N_RESAMPLES,
    BootstrapCI,
)


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


def build_variance(groups: Any, *, confidence: float = DEFAULT_CONFIDENCE, n_resamples: int = DEFAULT_N_RESAMPLES,
                   seed: int = 0) -> dict[str, Any]:
    """Between- and within-build variance of per-unit values grouped by build (a unit: a seed or a prompt).

    Method of moments: ``within`` is the pooled variance of units inside a build; ``between`` is the variance of the
    build means less the part their sampling explains (mean of within / n_b), floored at 0 (the one-way random-effects
    ANOVA estimate; with equal n it is (MSB - MSW) / n). The grand mean weighs each build equally; its CI is a
    two-stage multi-bootstrap: resample builds, then units within each resampled build (percentile, seeded)."""
    xs = [_as_1d(g, "build values") for g in groups]
    if len(xs) < 2:
        raise ValueError(f"build_variance needs at least two builds, got {len(xs)}")
    _check_level(confidence, "confidence")
    means = np.array([x.mean() for x in xs])
    sizes = np.array([x.size for x in xs])
    dof = int(np.sum(sizes - 1))
    within = float(sum(np.sum((x - x.mean()) ** 2) for x in xs) / dof) if dof else math.nan
    raw_between = float(np.var(means, ddof=1)) - (float(np.mean(within / sizes)) if dof else 0.0)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(xs), size=(n_resamples, len(xs)))
    boot = np.empty(n_resamples)
    for i, chosen in enumerate(picks):
        boot[i] = np.mean([xs[b][rng.integers(0, sizes[b], size=sizes[b])].mean() for b in chosen])
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return {"grand_mean": float(means.mean()), "ci_low": float(low), "ci_high": float(high),
            "confidence": confidence, "between": max(0.0, raw_between), "within": within,
            "build_means": means.tolist(), "n_per_build": sizes.tolist(), "n_resamples": int(n_resamples),
            "method": "method-of-moments variance components; CI: two-stage multi-bootstrap (builds, then units)"}
