"""From statistics to a verdict: ``decide``, threshold/proportion/exact/equivalence criteria and ``combine``
(every criterion of a claim must hold: an intersection-union test)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
from scipy import stats as st

from .checks import _as_1d, _check_counts, _check_level
from .effects import cohens_h
from .power import min_detectable_d_one_sample, min_detectable_rate
from .resampling import bootstrap_ci
from .results import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_POWER,
    DEFAULT_N_RESAMPLES,
    ClaimStatistic,
    EffectSize,
    Verdict,
    VerdictResult,
)
from .tests import one_sample_t, sign_test, wilson_interval


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
    zero_variance_is_evidence: bool = False,
) -> ClaimStatistic:
    """Claim "the mean of ``values`` is below (or above) ``threshold``", e.g. "op-word probability < 1%".

    CI of the mean at ``confidence`` (default 1 - 2 alpha): t-based for ``method="t"``, seeded BCa bootstrap for
    ``"bootstrap"``. SUPPORTED when the CI bound on the claimed side is beyond the threshold and the one-sided test
    is significant; REFUTED when the other bound is beyond it the other way (and that one-sided test is
    significant); else INCONCLUSIVE. The test is a one-sample t-test, except for the bootstrap method and for
    zero-variance data, which use the exact sign test. For "every unit below X" claims pass each unit's maximum.
    Zero variance is not evidence for a claim: identical values that meet the criterion give INCONCLUSIVE ("met
    with zero variance"); identical values on the other side still refute it (the sign test is unanimous).
    ``zero_variance_is_evidence`` lifts that rule where an unchanged value is the claim itself and a manipulation
    check has shown the model moved (H14's "stage 2 keeps accuracy"); the exact sign test then decides.
    Effect size: the mean minus the threshold in the statistic's own units (never Cohen's d against a constant).
    ``details["mde"]``: the smallest mean shift from the threshold the test detects at alpha with power 0.8 at
    this n and standard deviation (the statistic's units).
    """
    if direction not in ("below", "above"):
        raise ValueError(f"direction must be 'below' or 'above', got {direction!r}")
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")
    x = _as_1d(values)
    level = _claim_confidence(confidence, alpha)
    n, mean, thr = int(x.size), float(np.mean(x)), float(threshold)
    claimed, opposite = ("less", "greater") if direction == "below" else ("greater", "less")
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
    zero_variance = n >= 2 and float(np.ptp(x)) == 0.0
    reason = verdict.reason
    if zero_variance and verdict.verdict == Verdict.SUPPORTED and not zero_variance_is_evidence:
        verdict = replace(verdict, verdict=Verdict.INCONCLUSIVE)
        reason = (f"criterion met with zero variance: all {n} values equal {_fmt(mean)}; identical values are not "
                  "evidence for the claim (they usually mean the measurement did not move), so it is not supported")
    sd = float(np.std(x, ddof=1)) if n >= 2 else math.nan
    effect = EffectSize(name="mean - threshold (statistic units)", value=mean - thr, ci_low=low - thr,
                        ci_high=high - thr, confidence=level, ci_method=method, se=sd / math.sqrt(n) if n else math.nan,
                        n1=n)
    d_min = min_detectable_d_one_sample(n, alpha, DEFAULT_MIN_POWER)
    return ClaimStatistic(
        name=name, statistic=mean, ci_low=low, ci_high=high, confidence=level, effect_size=effect,
        p_value=p_claim, n=n, verdict=verdict.verdict, reason=reason,
        details={"threshold": thr, "direction": direction, "alpha": alpha, "method": method, "test": test,
                 "p_opposite": p_opp, "min_n": min_n, "power": power, "zero_variance": zero_variance,
                 "zero_variance_is_evidence": zero_variance_is_evidence,
                 "mde": d_min * sd, "mde_d": d_min,
                 "mde_definition": "smallest shift of the mean from the threshold the one-sided test detects "
                                   "(alpha, power 0.8) at this n and SD"},
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
    detectable = min_detectable_rate(int(n), reference, alpha, DEFAULT_MIN_POWER) if reference < 1.0 else math.nan
    return ClaimStatistic(
        name=name, statistic=rate, ci_low=low, ci_high=high, confidence=level, effect_size=effect, p_value=p_value,
        n=int(n), verdict=verdict.verdict, reason=verdict.reason,
        details={"k": int(k), "p_min": p_min, "chance": chance, "alpha": alpha, "rule": rule,
                 "p_below_p_min": p_below, "min_n": min_n, "power": power,
                 "mde": detectable - reference, "mde_rate": detectable,
                 "mde_definition": f"smallest true rate above {reference:.4g} the exact binomial test detects "
                                   "(alpha, power 0.8) at this n, minus that reference (rate points)"},
    )


def combine(main: ClaimStatistic, parts: dict[str, ClaimStatistic], *,
            units: tuple[str, int, int] | None = None) -> ClaimStatistic:
    """A conjunction of criteria (intersection-union test, each at alpha): SUPPORTED only if every part is.

    REFUTED when any part is refuted (one false conjunct refutes the claim), else INCONCLUSIVE. ``units`` =
    (name, n, min_n) of the independent replicates (e.g. seeds): below ``min_n`` nothing is concluded.
    """
    if units is not None and units[1] < units[2]:
        name, n, min_n = units
        details = {**main.details, "criteria": {k: s.to_dict() for k, s in parts.items()},
                   "criteria_verdicts": {k: str(s.verdict) for k, s in parts.items()}}
        return replace(main, verdict=Verdict.INCONCLUSIVE, reason=f"too few {name}: {n} < min_{name}={min_n}",
                       details=details)
    refuted = [k for k, s in parts.items() if Verdict(s.verdict) == Verdict.REFUTED]
    open_ = [k for k, s in parts.items() if Verdict(s.verdict) == Verdict.INCONCLUSIVE]
    if refuted:
        verdict, names = Verdict.REFUTED, refuted
    elif open_:
        verdict, names = Verdict.INCONCLUSIVE, open_
    else:
        verdict, names = Verdict.SUPPORTED, list(parts)
    label = {Verdict.REFUTED: "refuted", Verdict.INCONCLUSIVE: "inconclusive", Verdict.SUPPORTED: "supported"}[verdict]
    reason = f"{label}: " + "; ".join(f"{k}: {parts[k].reason}" for k in names)
    details = {**main.details, "criteria": {k: s.to_dict() for k, s in parts.items()},
               "criteria_verdicts": {k: str(s.verdict) for k, s in parts.items()}}
    return replace(main, verdict=verdict, reason=reason, details=details)


def exact_claim(value: float, threshold: float, direction: str, name: str, n: int) -> ClaimStatistic:
    """A criterion on a deterministic quantity (a parameter count): met or not, with no sampling noise."""
    met = value <= threshold if direction == "below" else value >= threshold
    verdict = Verdict.SUPPORTED if met else Verdict.REFUTED
    word = "<=" if direction == "below" else ">="
    reason = f"{name} = {value:.4g} {'' if met else 'not '}{word} {threshold:.4g} (exact count, no sampling noise)"
    return ClaimStatistic(name=name, statistic=float(value), ci_low=float(value), ci_high=float(value),
                          confidence=1.0, effect_size=None, p_value=None, n=n, verdict=verdict, reason=reason,
                          details={"threshold": threshold, "direction": direction, "test": "exact"})


def equivalence_claim(values: Sequence[float], margin: float, alpha: float, *, min_n: int, name: str) -> ClaimStatistic:
    """TOST: the mean lies within (-margin, margin): both one-sided tests significant (CI at 1 - 2 alpha inside).

    REFUTED when the mean is significantly beyond one of the margins.
    """
    low = threshold_claim(values, -margin, "above", alpha, min_n=min_n, name=name)
    high = threshold_claim(values, margin, "below", alpha, min_n=min_n, name=name)
    verdicts = {Verdict(low.verdict), Verdict(high.verdict)}
    if Verdict.REFUTED in verdicts:
        verdict = Verdict.REFUTED
        reason = f"mean {low.statistic:.4g} is significantly outside +-{margin:.4g}"
    elif verdicts == {Verdict.SUPPORTED}:
        verdict = Verdict.SUPPORTED
        reason = f"mean {low.statistic:.4g} within +-{margin:.4g} (TOST p={max(low.p_value, high.p_value):.3g})"
    else:
        verdict = Verdict.INCONCLUSIVE
        weaker = low if Verdict(low.verdict) != Verdict.SUPPORTED else high
        reason = f"equivalence within +-{margin:.4g} not shown ({weaker.reason})"
    p_values = [p for p in (low.p_value, high.p_value) if p is not None and not math.isnan(p)]
    return replace(low, verdict=verdict, reason=reason, p_value=max(p_values) if len(p_values) == 2 else math.nan,
                   details={**low.details, "margin": margin, "test": "TOST (" + low.details["test"] + ")",
                            "p_lower": low.p_value, "p_upper": high.p_value})


def replicated_proportion_claim(ks: Sequence[int], n: int, p_min: float, alpha: float = DEFAULT_ALPHA, *,
                                chance: float, min_n: int = 3,
                                name: str = "proportion per replicate") -> ClaimStatistic:
    """Claim "each replicate (training seed) reaches ``p_min`` of ``n`` items, above chance": every replicate is
    tested on its own items (exact binomial against ``chance``) and the claim holds when all do (intersection-union:
    the largest p). Items are nested in replicates, never pooled across them. REFUTED when every replicate is
    significantly below ``p_min``. Statistic: the mean rate over replicates with a t interval across them; effect
    size: rate points above chance."""
    k = np.asarray(ks, dtype=int)
    for value in k:
        _check_counts(int(value), n)
    level = _claim_confidence(None, alpha)
    rates = k / n
    mean = float(rates.mean()) if k.size else math.nan
    p_each = [float(st.binomtest(int(v), n, chance, alternative="greater").pvalue) for v in k]
    p_below = [float(st.binomtest(int(v), n, p_min, alternative="less").pvalue) for v in k]
    met = bool(k.size) and bool(np.all(k >= p_min * n - 1e-9))
    p_value = max(p_each) if p_each else math.nan
    opposite = bool(p_below) and max(p_below) < alpha
    verdict = decide(met, p_value, alpha, int(k.size), min_n, opposite_shown=opposite)
    low = high = math.nan
    if k.size >= 2:
        t = one_sample_t(rates, chance, "greater", confidence=level)
        low, high = (t.ci_low, t.ci_high) if not t.degenerate else (mean, mean)
    effect = EffectSize(name="rate points above chance", value=mean - chance, ci_low=low - chance,
                        ci_high=high - chance, confidence=level, ci_method="t across replicates", se=math.nan,
                        n1=int(k.size))
    detectable = min_detectable_rate(n, chance, alpha, DEFAULT_MIN_POWER)
    return ClaimStatistic(
        name=name, statistic=mean, ci_low=low, ci_high=high, confidence=level, effect_size=effect, p_value=p_value,
        n=int(k.size), verdict=verdict.verdict, reason=verdict.reason,
        details={"k_per_replicate": k.tolist(), "items_per_replicate": n, "p_min": p_min, "chance": chance,
                 "alpha": alpha, "p_per_replicate": p_each, "p_below_per_replicate": p_below, "min_n": min_n,
                 "test": "exact binomial per replicate against chance, intersection-union across replicates",
                 "mde": detectable - chance, "mde_rate": detectable,
                 "mde_definition": f"smallest true rate above chance {chance:.4g} one replicate's binomial test "
                                   f"detects (alpha, power 0.8) with {n} items, minus chance"},
    )
