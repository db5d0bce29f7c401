"""The population verdict (CLAIMS.md revision 4): one declared test per criterion over builds, criteria combined.

A model organism is one draw of a recipe, so a claim about base models is a claim about the builds the recipe makes.
Per criterion, the build-level statistics (one per testable build) are put on the declared scale (logit for a
probability, log for a ratio) and tested against the threshold on that scale: a one-sided t-test or a Wilcoxon
signed-rank test at ``alpha`` on each side, read from a ``1 - 2 alpha`` interval. Criteria combine by
intersection-union for SUPPORTED and Holm for REFUTED. Builds are counted, never dropped: a gate-failed build is
``None`` and counts against the ">= 5 testable and at least half" rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import stats as st
from scipy.special import expit, logit

from .results import Verdict
from .tests import holm

MIN_TESTABLE = 5  # builds a population verdict needs, and at least half of those counted
CLIP = 1e-9  # probabilities are clipped to [CLIP, 1 - CLIP] before the logit (a build at exactly 0 stays finite)
SIDES = ("below", "above")
TESTS = ("t", "wilcoxon")


SCALES = {"identity": (lambda v: v, float), "log": (np.log, math.exp),
          "logit": (lambda p: logit(np.clip(p, CLIP, 1.0 - CLIP)), lambda x: float(expit(x)))}


@dataclass(frozen=True)
class PopulationCriterion:
    """What the lock declares of one criterion: the side of ``threshold`` the claim puts the build-level statistic
    on, the scale it is tested on and the test."""

    name: str
    threshold: float
    side: str  # "below" or "above"
    scale: str = "identity"  # "logit" for a probability, "log" for a ratio
    test: str = "t"  # "t" (one-sided t-test) or "wilcoxon" (signed-rank)

    def __post_init__(self):
        if self.side not in SIDES or self.scale not in SCALES or self.test not in TESTS:
            raise ValueError(f"criterion {self.name}: side in {SIDES}, scale in {tuple(SCALES)}, test in {TESTS}; got "
                             f"{self.side!r}, {self.scale!r}, {self.test!r}")


@dataclass(frozen=True)
class PopulationResult:
    """One criterion over builds: its verdict, the one-sided p on each side, and the mean and interval of the
    build statistics on the test's scale, shown back in the statistic's units."""

    criterion: str
    verdict: Verdict
    n_builds: int
    n_testable: int
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    confidence: float = math.nan
    p_claimed: float = math.nan  # one-sided p that the population is on the claimed side
    p_opposite: float = math.nan  # ... on the other side (what REFUTED reads, Holm-adjusted over criteria)
    reason: str = ""


@dataclass(frozen=True)
class PopulationVerdict:
    verdict: Verdict
    reason: str
    criteria: list[PopulationResult] = field(default_factory=list)


def testable_enough(n_testable: int, n_builds: int) -> bool:
    """>= 5 testable builds and at least half of the builds counted."""
    return n_testable >= MIN_TESTABLE and 2 * n_testable >= n_builds


def _one_sided(y: np.ndarray, centre: float, test: str) -> tuple[float, float]:
    """(p that the mean lies below ``centre``, p that it lies above) on the transformed values."""
    d = y - centre
    if np.ptp(d) == 0.0:  # no spread: the sign of the common difference decides, as the t statistic's limit
        return (0.0, 1.0) if d[0] < 0 else (1.0, 0.0) if d[0] > 0 else (1.0, 1.0)
    if test == "wilcoxon":
        return (float(st.wilcoxon(d, alternative="less").pvalue), float(st.wilcoxon(d, alternative="greater").pvalue))
    return (float(st.ttest_1samp(d, 0.0, alternative="less").pvalue),
            float(st.ttest_1samp(d, 0.0, alternative="greater").pvalue))


def in_domain(value: float, scale: str) -> bool:
    """Whether a build statistic can be put on ``scale``: finite, positive for a log, in [0, 1] for a logit. A value
    outside (a record of an older definition, a failed measure) counts as a build not testable, never a crash."""
    if not math.isfinite(value):
        return False
    return value > 0 if scale == "log" else 0.0 <= value <= 1.0 if scale == "logit" else True


def criterion_verdict(values: Sequence[float | None], criterion: PopulationCriterion,
                      alpha: float = 0.05) -> PopulationResult:
    """The population verdict of one criterion from its build-level statistics (``None``: a gate-failed build)."""
    n_builds = len(values)
    given = [float(v) for v in values if v is not None]
    x = np.array([v for v in given if in_domain(v, criterion.scale)], dtype=float)
    outside = f"; {len(given) - x.size} outside the {criterion.scale} scale's domain" if len(given) > x.size else ""
    if not testable_enough(x.size, n_builds):
        return PopulationResult(criterion.name, Verdict.NOT_TESTABLE, n_builds, int(x.size),
                                reason=f"{x.size} of {n_builds} builds testable{outside}; the rule needs >= "
                                       f"{MIN_TESTABLE} and at least half")
    forward, back = SCALES[criterion.scale]
    y, centre = forward(x), float(forward(np.array([criterion.threshold]))[0])
    below, above = _one_sided(y, centre, criterion.test)
    p_claimed, p_opposite = (below, above) if criterion.side == "below" else (above, below)
    mean, confidence = float(np.mean(y)), 1.0 - 2.0 * alpha
    half = float(st.t.ppf(1.0 - alpha, y.size - 1) * np.std(y, ddof=1) / math.sqrt(y.size))
    verdict = (Verdict.SUPPORTED if p_claimed < alpha else Verdict.REFUTED if p_opposite < alpha
               else Verdict.INCONCLUSIVE)
    reason = (f"{criterion.test} test on the {criterion.scale} scale over {x.size} builds{outside}: p={p_claimed:.3g} "
              f"{criterion.side} {criterion.threshold:g}, p={p_opposite:.3g} on the other side (alpha {alpha:g})")
    return PopulationResult(criterion.name, verdict, n_builds, int(x.size), back(mean), back(mean - half),
                            back(mean + half), confidence, p_claimed, p_opposite, reason)


def untested(name: str, n_builds: int) -> PopulationResult:
    """A criterion no build measured (each build's gate failed, or none reported it)."""
    return PopulationResult(name, Verdict.NOT_TESTABLE, n_builds, 0, reason=f"0 of {n_builds} builds testable")


def combine(results: Sequence[PopulationResult], alpha: float = 0.05,
            undeclared: Sequence[str] = ()) -> PopulationVerdict:
    """SUPPORTED when every criterion is (intersection-union) and none of those the builds report lacks a declared
    test; REFUTED when any criterion's opposite-side p is below ``alpha`` after Holm's adjustment over the testable
    criteria; else NOT TESTABLE if any criterion is (or none was reported), else INCONCLUSIVE."""
    results = list(results)
    if results and all(r.verdict == Verdict.SUPPORTED for r in results) and not undeclared:
        return PopulationVerdict(Verdict.SUPPORTED, "every criterion SUPPORTED", results)
    tested = [r for r in results if r.verdict != Verdict.NOT_TESTABLE]
    adjusted = holm([r.p_opposite for r in tested]) if tested else []
    refuted = [r.criterion for r, p in zip(tested, adjusted) if p < alpha]
    if refuted:
        return PopulationVerdict(Verdict.REFUTED, f"REFUTED at Holm-adjusted alpha {alpha:g}: {', '.join(refuted)}",
                                 results)
    untestable = [r.criterion for r in results if r.verdict == Verdict.NOT_TESTABLE]
    if untestable or not (results or undeclared):
        return PopulationVerdict(Verdict.NOT_TESTABLE, f"not testable: {', '.join(untestable) or 'no criterion'}",
                                 results)
    if undeclared:
        return PopulationVerdict(Verdict.INCONCLUSIVE, f"no population test declared for {', '.join(undeclared)}",
                                 results)
    return PopulationVerdict(Verdict.INCONCLUSIVE, "neither every criterion SUPPORTED nor one REFUTED", results)


def between_share(groups: Sequence[Sequence[float]]) -> float:
    """The between-build share of the variance of per-unit values grouped by build (one-way random effects, method
    of moments): between / (between + within); description beside the verdict, never part of it."""
    from .resampling import build_variance

    parts = build_variance(groups, n_resamples=1)
    total = parts["between"] + parts["within"]
    return parts["between"] / total if total > 0 else math.nan


MIN_CONFIRMATORY = 8  # the fewest confirmatory builds revision 4 allows, whatever the power analysis says
MAX_PLANNED = 64  # testable builds beyond which a criterion is out of reach for the zoo
WILCOXON_ARE = 0.864  # the signed-rank test's least efficiency against the t-test (Hodges and Lehmann, 1956)


@dataclass(frozen=True)
class BuildsNeeded:
    """The stage 1 power analysis of one criterion: the development builds' standardised distance from the threshold
    on the test's scale, the testable builds the declared test needs to decide it at ``power``, and the builds to
    draw at the development builds' testable share (``None`` where out of reach, with the reason)."""

    criterion: str
    side: str  # the side of the threshold the development builds lie on: "claimed" or "opposite"
    effect: float  # Cohen's d: (mean - threshold) / SD of the build statistics on the test's scale, signed
    share: float  # testable builds / builds
    testable: int | None = None
    drawn: int | None = None
    reason: str = ""


def needed_for_power(d: float, test: str = "t", alpha: float = 0.05, power: float = 0.8) -> int | None:
    """The fewest testable builds (>= MIN_TESTABLE) at which a one-sided test at ``alpha`` detects a standardised
    effect ``d`` with probability ``power`` (noncentral t); the signed-rank test needs 1 / WILCOXON_ARE times as
    many. None when more than MAX_PLANNED are needed."""
    for n in range(MIN_TESTABLE, MAX_PLANNED + 1):
        if st.nct.sf(st.t.ppf(1.0 - alpha, n - 1), n - 1, abs(d) * math.sqrt(n)) >= power:
            needed = math.ceil(n / WILCOXON_ARE) if test == "wilcoxon" else n
            return needed if needed <= MAX_PLANNED else None
    return None


def builds_needed(values: Sequence[float | None], criterion: PopulationCriterion, alpha: float = 0.05,
                  power: float = 0.8) -> BuildsNeeded:
    """How many builds a criterion's population test needs, taking the development builds' mean and SD on the
    test's scale as the truth: decided on the side they lie, at ``power``."""
    x = np.array([v for v in values if v is not None], dtype=float)
    share = x.size / len(values) if len(values) else 0.0
    if x.size < 2 or 2 * x.size < len(values):
        return BuildsNeeded(criterion.name, "", math.nan, share,
                            reason=f"{x.size} of {len(values)} builds testable: too few to plan on")
    forward, _ = SCALES[criterion.scale]
    y, centre = forward(x), float(forward(np.array([criterion.threshold]))[0])
    gap, sd = float(np.mean(y)) - centre, float(np.std(y, ddof=1))
    if gap == 0.0:
        return BuildsNeeded(criterion.name, "", 0.0, share, reason="the builds' mean sits at the threshold")
    d = math.copysign(math.inf, gap) if sd == 0.0 else gap / sd
    side = "claimed" if (gap < 0) == (criterion.side == "below") else "opposite"
    needed = MIN_TESTABLE if sd == 0.0 else needed_for_power(d, criterion.test, alpha, power)  # no spread: the sign
    # decides, as in the verdict
    if needed is None:
        return BuildsNeeded(criterion.name, side, d, share,
                            reason=f"needs more than {MAX_PLANNED} testable builds at d = {d:.2f}")
    return BuildsNeeded(criterion.name, side, d, share, needed, math.ceil(needed / share))
