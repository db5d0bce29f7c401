"""Typed statistical results (effect sizes, intervals, tests, claim statistics) and the verdict vocabulary."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from ..io import jsonable

DEFAULT_ALPHA = 0.05


DEFAULT_CONFIDENCE = 0.95


DEFAULT_N_RESAMPLES = 1999


DEFAULT_N_PERMUTATIONS = 9999


DEFAULT_MIN_POWER = 0.8


ALTERNATIVES = ("two-sided", "less", "greater")


BOOTSTRAP_METHODS = ("BCa", "percentile", "basic")


class Verdict(str, Enum):
    """The outcomes of a claim (CLAIMS.md revision 2); a ``str`` so it compares equal to its name.

    A statistical test ends in the first three; NOT TESTABLE is given by the suite when the model fails one of
    the claim's fitness gates (the test's own verdict is kept beside it).
    """

    SUPPORTED = "SUPPORTED"
    REFUTED = "REFUTED"
    INCONCLUSIVE = "INCONCLUSIVE"
    NOT_TESTABLE = "NOT TESTABLE"

    def __str__(self) -> str:
        """The bare name, so f-strings and reports read ``SUPPORTED`` rather than ``Verdict.SUPPORTED``."""
        return self.value


class _Record:
    """Mixin: ``to_dict()`` over the dataclass fields, as plain JSON-serialisable Python."""

    def to_dict(self) -> dict[str, Any]:
        """Every field, converted by ``io.jsonable`` (non-finite floats stay ``inf``/``nan``)."""
        return {f.name: jsonable(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


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
