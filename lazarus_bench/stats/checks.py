"""Input validation shared by the statistics modules: 1-D arrays, alternatives, levels, counts, p-values."""

from __future__ import annotations

from typing import Any

import numpy as np

from .results import ALTERNATIVES


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


def _check_counts(k: int, n: int) -> None:
    """0 <= k <= n, n >= 1, integers."""
    if int(k) != k or int(n) != n or n < 1 or not 0 <= k <= n:
        raise ValueError(f"need integers 0 <= k <= n, n >= 1; got k={k}, n={n}")


def _check_pvalues(p_values: Any) -> np.ndarray:
    """A 1-D float array of p-values in [0, 1]."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError("p-values must lie in [0, 1] (and not be NaN)")
    return p
