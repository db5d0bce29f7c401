"""From statistics to a verdict: ``decide``, threshold/proportion/exact/equivalence criteria and ``combine``
(every criterion of a claim must hold: an intersection-union test)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
from scipy import stats as st

from .checks import _as_1d, _check_counts, _check_level
from .effects import cohens_h
from .power import min_detectable_d_one_sample, min_detectable_d_sign, min_detectable_rate
from .results import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_POWER,
    ClaimStatistic,
    EffectSize,
    Verdict,
    VerdictResult,
    _Record,
)
from .tests import one_sample_t, wilson_interval


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


TESTS = ("sign", "t")
TEST_NAMES = {"sign": "exact sign test (values on the threshold count against each side)",
              "t": "one-sample t (zero spread: t is +-infinite, its limit)"}


def _check_test(test: str) -> str:
    if test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(TESTS)} (declared with the claim), got {test!r}")
    return test


def _sign_p(x: np.ndarray, thr: float, side: str) -> float:
    """One-sided exact sign test that most values lie strictly on ``side`` ('below'/'above') of ``thr``; a value on
    the threshold counts as a failure, so ties never help either side and no value is dropped."""
    k = int(np.sum(x < thr)) if side == "below" else int(np.sum(x > thr))
    return float(st.binom.sf(k - 1, int(x.size), 0.5))


def _t_p(x: np.ndarray, thr: float, side: str) -> float:
    """One-sided one-sample t p-value that the mean lies on ``side`` of ``thr``; with zero spread the t statistic is
    +-infinite (p 0 on the side the values lie strictly on, 1 otherwise): the test's own limit, not another test."""
    if float(np.ptp(x)) == 0.0:
        v = float(x[0])
        return 0.0 if (v < thr if side == "below" else v > thr) else 1.0
    return float(st.ttest_1samp(x, thr, alternative="less" if side == "below" else "greater").pvalue)


def _side_p(x: np.ndarray, thr: float, side: str, test: str) -> float:
    return _sign_p(x, thr, side) if test == "sign" else _t_p(x, thr, side)


def _mean_ci(x: np.ndarray, level: float) -> tuple[float, float]:
    """t interval of the mean (the magnitude's CI whatever the test); a point when every value is equal."""
    n, mean = int(x.size), float(np.mean(x))
    if n < 2:
        return math.nan, math.nan
    half = float(st.t.ppf(0.5 + level / 2.0, n - 1)) * float(np.std(x, ddof=1)) / math.sqrt(n)
    return mean - half, mean + half


def threshold_claim(
    values: Any,
    threshold: float,
    direction: str = "below",
    alpha: float = DEFAULT_ALPHA,
    *,
    test: str,
    min_n: int = 3,
    power: float | None = None,
    min_power: float = DEFAULT_MIN_POWER,
    confidence: float | None = None,
    name: str = "threshold",
) -> ClaimStatistic:
    """Claim "the values lie below (or above) ``threshold``", one value per independent unit (a seed, a prompt).

    ``test`` is declared with the claim, never chosen from the data: ``"sign"`` (exact one-sided sign test; valid
    with ties, so unanimous units are evidence for their side; n = 5 reaches p = 1/32) or ``"t"`` (one-sample t).
    SUPPORTED when most units lie on the claimed side and that one-sided test is significant; REFUTED when the
    test of the other side is; else INCONCLUSIVE. CI: the t interval of the mean at ``confidence`` (default
    1 - 2 alpha), the magnitude's CI. Effect size: mean minus threshold in the statistic's units. ``details["mde"]``:
    the smallest shift of the mean from the threshold the declared test detects at alpha with power 0.8 at this n
    (normal units with the observed SD; NaN, never 0, when the values have no spread).
    """
    if direction not in ("below", "above"):
        raise ValueError(f"direction must be 'below' or 'above', got {direction!r}")
    _check_test(test)
    x = _as_1d(values)
    level = _claim_confidence(confidence, alpha)
    n, mean, thr = int(x.size), float(np.mean(x)), float(threshold)
    opposite = "above" if direction == "below" else "below"
    p_claim = _side_p(x, thr, direction, test) if n >= 1 else math.nan
    p_opp = _side_p(x, thr, opposite, test) if n >= 1 else math.nan
    low, high = _mean_ci(x, level)
    on_claimed = int(np.sum(x < thr)) if direction == "below" else int(np.sum(x > thr))
    met = (2 * on_claimed > n) if test == "sign" else (mean < thr if direction == "below" else mean > thr)
    verdict = decide(met, p_claim, alpha, n, min_n, power, min_power, bool(p_opp < alpha))
    sd = float(np.std(x, ddof=1)) if n >= 2 else math.nan
    d_min = min_detectable_d_sign(n, alpha) if test == "sign" else min_detectable_d_one_sample(n, alpha)
    mde = d_min * sd if sd > 0 else math.nan
    effect = EffectSize(name="mean - threshold (statistic units)", value=mean - thr, ci_low=low - thr,
                        ci_high=high - thr, confidence=level, ci_method="t interval of the mean",
                        se=sd / math.sqrt(n) if n else math.nan, n1=n)
    return ClaimStatistic(
        name=name, statistic=mean, ci_low=low, ci_high=high, confidence=level, effect_size=effect,
        p_value=p_claim, n=n, verdict=verdict.verdict, reason=verdict.reason,
        details={"threshold": thr, "direction": direction, "alpha": alpha, "test": test,
                 "test_name": TEST_NAMES[test], "on_claimed_side": on_claimed, "p_opposite": p_opp, "min_n": min_n,
                 "power": power, "mde": mde, "mde_d": d_min, "values": x.tolist(),
                 "mde_definition": "smallest shift of the mean from the threshold the declared one-sided test "
                                   "detects (alpha, power 0.8) at this n, in units of the observed SD (NaN when "
                                   "the values have no spread; infinite when no outcome at this n is significant)"},
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


RULES = {"all": "intersection-union: SUPPORTED when every part is, REFUTED when any part is, else INCONCLUSIVE"}
HALTING = ("insensitive", "underpowered", "not specific")  # calibration labels under which no measured verdict stands


@dataclass(frozen=True)
class Decision(_Record):
    """The verdict a record carries (``final_verdict``), and the measurement's own verdict beside it."""

    verdict: Verdict
    reason: str
    measured: Verdict | None
    measured_reason: str
    rule: str
    by: str = "rule"  # what decided it: "rule" (the parts), "gate" or "calibration"


def rule_verdict(verdicts: dict[str, Verdict], rule: str = "all") -> tuple[Verdict, list[str]]:
    """The verdict ``rule`` gives parts with these verdicts, and the parts that decide it."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if not verdicts:
        raise ValueError("a verdict needs at least one part")
    refuted = [k for k, v in verdicts.items() if Verdict(v) == Verdict.REFUTED]
    open_ = [k for k, v in verdicts.items() if Verdict(v) != Verdict.SUPPORTED]
    return ((Verdict.REFUTED, refuted) if refuted else (Verdict.INCONCLUSIVE, open_) if open_
            else (Verdict.SUPPORTED, list(verdicts)))


def _rule_verdict(parts: dict[str, ClaimStatistic], rule: str) -> tuple[Verdict, str]:
    """The parts' verdicts combined by ``rule``; one part is its own verdict and reason."""
    if len(parts) == 1 and rule in RULES:
        (only,) = parts.values()
        return Verdict(only.verdict), only.reason
    verdict, names = rule_verdict({k: s.verdict for k, s in parts.items()}, rule)
    return verdict, f"{verdict.value.lower()}: " + "; ".join(f"{k}: {parts[k].reason}" for k in names)


def final_verdict(parts: dict[str, ClaimStatistic], rule: str = "all", gates: Sequence[Any] = (),
                  calibration: tuple[str, str] = ("", "")) -> Decision:
    """The one place a record's verdict is decided, from the measure's named parts (each decided by its declared
    test), the claim's combining ``rule``, its fitness ``gates`` (objects with ``passed`` and ``line()``) and the
    controls' ``calibration`` (label, reason). Checked in this order: a failed gate -> NOT TESTABLE (``parts`` empty:
    the measure stopped at it); an insensitive or non-specific calibration -> INCONCLUSIVE; else the rule's verdict."""
    measured, reason = _rule_verdict(parts, rule) if parts else (None, "")
    failed = [g for g in gates if not g.passed]
    if failed:
        tail = ("controls not run" if parts else
                "stopped there: the rest of the measurement and the controls were not run")
        return Decision(Verdict.NOT_TESTABLE, "; ".join(g.line() for g in failed) + f"; {tail}", measured, reason,
                        rule, "gate")
    if measured is None:
        raise ValueError("no parts and no failed gate: nothing to decide")
    label, why = calibration
    if label in HALTING:
        return Decision(Verdict.INCONCLUSIVE, f"{why}; the measurement alone: {reason}", measured, reason, rule,
                        "calibration")
    return Decision(measured, reason, measured, reason, rule)


def pending(name: str, statistic: float, *, ci_low: float = math.nan, ci_high: float = math.nan,
            confidence: float = math.nan, effect_size: EffectSize | None = None, p_value: float | None = None,
            n: int = 0, details: dict[str, Any] | None = None) -> ClaimStatistic:
    """A headline statistic whose verdict ``combine`` decides from the parts (INCONCLUSIVE until then)."""
    return ClaimStatistic(name=name, statistic=statistic, ci_low=ci_low, ci_high=ci_high, confidence=confidence,
                          effect_size=effect_size, p_value=p_value, n=n, verdict=Verdict.INCONCLUSIVE,
                          reason="not decided", details={} if details is None else details)


def evidence(name: str, *, met: bool, against: bool = False, reason: str, value: float = math.nan,
             p_value: float | None = None, n: int = 0, ci: tuple[float, float, float] | None = None,
             details: dict[str, Any] | None = None) -> ClaimStatistic:
    """A part decided by a check the claim declared outside the threshold tests: REFUTED when ``against`` (the data
    contradict it; this takes precedence), SUPPORTED when ``met``, else INCONCLUSIVE. ``ci``: (low, high, level)."""
    verdict = Verdict.REFUTED if against else Verdict.SUPPORTED if met else Verdict.INCONCLUSIVE
    low, high, level = ci if ci is not None else (math.nan, math.nan, math.nan)
    return ClaimStatistic(name=name, statistic=float(value), ci_low=low, ci_high=high, confidence=level,
                          effect_size=None, p_value=p_value, n=int(n), verdict=verdict, reason=reason,
                          details=dict(details or {}))


def no_data(reason: str) -> ClaimStatistic:
    """A part with nothing to test (INCONCLUSIVE), e.g. a window that covers every layer."""
    return evidence("no data", met=False, reason=reason)


def not_testable(name: str, value: float, reason: str) -> ClaimStatistic:
    """The statistic of a run stopped at a failed gate: the gate's value, no test, no CI."""
    return ClaimStatistic(name=name, statistic=value, ci_low=value, ci_high=value, confidence=None,
                          effect_size=None, p_value=None, n=0, verdict=Verdict.NOT_TESTABLE, reason=reason)


def combine(main: ClaimStatistic, parts: dict[str, ClaimStatistic], *,
            units: tuple[str, int, int] | None = None, rule: str = "all") -> ClaimStatistic:
    """``main`` with the verdict ``final_verdict`` gives the parts under ``rule`` (default: a conjunction, each part
    at alpha; one false conjunct refutes the claim), and every part in ``details["criteria"]``. ``units`` = (name,
    n, min_n) of the independent replicates (e.g. seeds): below ``min_n`` nothing is concluded."""
    details = {**main.details, "criteria": {k: s.to_dict() for k, s in parts.items()},
               "criteria_verdicts": {k: str(s.verdict) for k, s in parts.items()}}
    if units is not None and units[1] < units[2]:
        name, n, min_n = units
        return replace(main, verdict=Verdict.INCONCLUSIVE, reason=f"too few {name}: {n} < min_{name}={min_n}",
                       details=details)
    verdict, reason = _rule_verdict(parts, rule) if len(parts) > 1 else _conjunction_of_one(parts)
    return replace(main, verdict=verdict, reason=reason, details=details)


def _conjunction_of_one(parts: dict[str, ClaimStatistic]) -> tuple[Verdict, str]:
    (name, only), = parts.items()
    return Verdict(only.verdict), f"{Verdict(only.verdict).value.lower()}: {name}: {only.reason}"


def exact_claim(value: float, threshold: float, direction: str, name: str, n: int) -> ClaimStatistic:
    """A criterion on a deterministic quantity (a parameter count): met or not, with no sampling noise."""
    met = value <= threshold if direction == "below" else value >= threshold
    verdict = Verdict.SUPPORTED if met else Verdict.REFUTED
    word = "<=" if direction == "below" else ">="
    reason = f"{name} = {value:.4g} {'' if met else 'not '}{word} {threshold:.4g} (exact count, no sampling noise)"
    return ClaimStatistic(name=name, statistic=float(value), ci_low=float(value), ci_high=float(value),
                          confidence=1.0, effect_size=None, p_value=None, n=n, verdict=verdict, reason=reason,
                          details={"threshold": threshold, "direction": direction, "test": "exact"})


def equivalence_claim(values: Sequence[float], margin: float, alpha: float, *, test: str, min_n: int,
                      name: str) -> ClaimStatistic:
    """TOST with the declared ``test``: the values lie within (-margin, margin): both one-sided tests significant.

    REFUTED when the values lie significantly beyond one of the margins.
    """
    low = threshold_claim(values, -margin, "above", alpha, test=test, min_n=min_n, name=name)
    high = threshold_claim(values, margin, "below", alpha, test=test, min_n=min_n, name=name)
    verdicts = {Verdict(low.verdict), Verdict(high.verdict)}
    if Verdict.REFUTED in verdicts:
        verdict = Verdict.REFUTED
        reason = f"mean {low.statistic:.4g} is significantly outside +-{margin:.4g} ({TEST_NAMES[test]})"
    elif verdicts == {Verdict.SUPPORTED}:
        verdict = Verdict.SUPPORTED
        reason = (f"mean {low.statistic:.4g} within +-{margin:.4g} (TOST, {TEST_NAMES[test]}: "
                  f"p={max(low.p_value, high.p_value):.3g})")
    else:
        verdict = Verdict.INCONCLUSIVE
        weaker = low if Verdict(low.verdict) != Verdict.SUPPORTED else high
        reason = f"equivalence within +-{margin:.4g} not shown ({weaker.reason})"
    p_values = [p for p in (low.p_value, high.p_value) if p is not None and not math.isnan(p)]
    return replace(low, verdict=verdict, reason=reason, p_value=max(p_values) if len(p_values) == 2 else math.nan,
                   details={**low.details, "margin": margin, "test": test, "test_name": "TOST, " + TEST_NAMES[test],
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
