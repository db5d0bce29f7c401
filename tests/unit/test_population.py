"""The population verdict on canned build-level statistics, checked against scipy computed independently."""

import math

import numpy as np
import pytest
from scipy import stats as st

from lazarus_bench.stats import Verdict
from lazarus_bench.stats.population import (
    MAX_PLANNED,
    MIN_TESTABLE,
    WILCOXON_ARE,
    PopulationCriterion,
    between_share,
    builds_needed,
    combine,
    criterion_verdict,
    needed_for_power,
    untested,
)

BELOW_1PCT = PopulationCriterion("max P(op word)", 0.01, "below", scale="logit")


def _logit(p):
    return np.log(p / (1 - p))


def test_eight_builds_that_each_lean_supported_give_supported():
    values = [2e-3, 4e-3, 1e-3, 6e-3, 3e-3, 5e-3, 2.5e-3, 7e-3]
    r = criterion_verdict(values, BELOW_1PCT)
    expected = st.ttest_1samp(_logit(np.array(values)), _logit(0.01), alternative="less").pvalue
    assert r.verdict == Verdict.SUPPORTED and r.p_claimed == pytest.approx(expected, rel=1e-9)
    assert r.n_testable == 8 and r.ci_low < r.estimate < r.ci_high < 0.01 and r.confidence == pytest.approx(0.9)
    geometric_odds = 1 / (1 + math.exp(-np.mean(_logit(np.array(values)))))
    assert r.estimate == pytest.approx(geometric_odds, rel=1e-9)


def test_heterogeneous_builds_are_inconclusive_and_the_between_share_says_why():
    rng = np.random.default_rng(0)
    centres = [1e-3, 2e-3, 1e-3, 3e-3, 0.05, 0.04, 0.06, 0.03]
    groups = [np.clip(rng.normal(c, c / 10, size=8), 1e-6, None) for c in centres]
    r = criterion_verdict([float(g.mean()) for g in groups], BELOW_1PCT)
    assert r.verdict == Verdict.INCONCLUSIVE and r.p_claimed > 0.05 and r.p_opposite > 0.05
    assert between_share(groups) > 0.9
    same = [np.clip(rng.normal(2e-3, 1e-3, size=8), 1e-6, None) for _ in centres]
    assert between_share(same) < 0.3


def test_four_of_eight_testable_builds_is_not_testable_and_five_of_eight_is_tested():
    leaning = [2e-3, 4e-3, 1e-3, 6e-3, 3e-3]
    r = criterion_verdict(leaning[:4] + [None] * 4, BELOW_1PCT)
    assert r.verdict == Verdict.NOT_TESTABLE and (r.n_builds, r.n_testable) == (8, 4) and math.isnan(r.p_claimed)
    assert criterion_verdict(leaning + [None] * 3, BELOW_1PCT).verdict == Verdict.SUPPORTED
    assert criterion_verdict(leaning + [None] * 6, BELOW_1PCT).verdict == Verdict.NOT_TESTABLE  # 5 of 11
    assert MIN_TESTABLE == 5


def test_builds_on_the_other_side_refute_and_a_ratio_is_tested_on_the_log_scale():
    rise = PopulationCriterion("rise", 2.0, "above", scale="log")
    values = [1.1, 1.3, 0.9, 1.2, 1.0, 1.4]
    r = criterion_verdict(values, rise)
    expected = st.ttest_1samp(np.log(values), math.log(2.0), alternative="less").pvalue
    assert r.verdict == Verdict.REFUTED and r.p_opposite == pytest.approx(expected, rel=1e-9)
    assert r.estimate == pytest.approx(math.exp(np.mean(np.log(values))), rel=1e-9)


def test_a_build_statistic_outside_the_scales_domain_counts_as_untestable_never_a_crash():
    """A negative ratio on the log scale, a NaN or a probability above 1 on the logit scale is a build not testable
    (said in the reason), so 6 builds with 2 such are 4 of 6 testable; the rest are tested as scipy tests them."""
    rise = PopulationCriterion("rise", 2.0, "above", scale="log")
    values = [3.0, 2.5, 4.0, 3.5, 2.8, -0.1, math.nan]
    r = criterion_verdict(values, rise)
    expected = st.ttest_1samp(np.log(values[:5]), math.log(2.0), alternative="greater").pvalue
    assert (r.n_builds, r.n_testable) == (7, 5) and r.p_claimed == pytest.approx(expected, rel=1e-9)
    assert "2 outside the log scale's domain" in r.reason
    short = criterion_verdict(values[:4] + [-0.1, math.nan], rise)
    assert short.verdict == Verdict.NOT_TESTABLE and "2 outside the log scale's domain" in short.reason
    assert criterion_verdict([2e-3, 4e-3, 1e-3, 6e-3, 3e-3, 1.5], BELOW_1PCT).n_testable == 5


def test_wilcoxon_matches_scipy_and_builds_without_spread_decide_by_their_side():
    crit = PopulationCriterion("accuracy", 0.5, "above", test="wilcoxon")
    values = [0.61, 0.55, 0.72, 0.58, 0.66, 0.49, 0.70]
    r = criterion_verdict(values, crit)
    d = np.array(values) - 0.5
    assert r.p_claimed == pytest.approx(st.wilcoxon(d, alternative="greater").pvalue, rel=1e-12)
    assert r.p_opposite == pytest.approx(st.wilcoxon(d, alternative="less").pvalue, rel=1e-12)
    assert r.verdict == Verdict.SUPPORTED
    assert criterion_verdict([0.7] * 6, crit).verdict == Verdict.SUPPORTED
    assert criterion_verdict([0.3] * 6, crit).verdict == Verdict.REFUTED
    assert criterion_verdict([0.5] * 6, crit).verdict == Verdict.INCONCLUSIVE


@pytest.mark.parametrize("test", ["t", "wilcoxon"])
def test_false_positive_rate_on_null_populations_of_5_to_14_builds(test):
    """Populations whose true mean (on the test's scale) sits on the threshold: SUPPORTED at about alpha, within
    0.05 +- 0.02 over 5 to 14 builds (the Wilcoxon test's exact levels are discrete, at most alpha)."""
    rng = np.random.default_rng(20261129)
    crit = PopulationCriterion("p", 0.01, "below", scale="logit", test=test)
    hits = total = 0
    for n in range(5, 15):
        for _ in range(200):
            values = 1 / (1 + np.exp(-(_logit(0.01) + rng.normal(0, 1.5, size=n))))
            hits += criterion_verdict(values.tolist(), crit).verdict == Verdict.SUPPORTED
            total += 1
    assert 0.03 <= hits / total <= 0.07


def test_criteria_combine_by_intersection_union_and_holm():
    sup = criterion_verdict([2e-3, 4e-3, 1e-3, 6e-3, 3e-3], BELOW_1PCT)
    inc = criterion_verdict([2e-3, 0.03, 1e-3, 0.02, 9e-3], BELOW_1PCT)
    nt = criterion_verdict([2e-3, None, None, None, None], BELOW_1PCT)
    assert combine([sup, sup]).verdict == Verdict.SUPPORTED
    assert combine([sup, inc]).verdict == Verdict.INCONCLUSIVE
    assert combine([sup, nt]).verdict == Verdict.NOT_TESTABLE
    near = criterion_verdict([0.012, 0.0105, 0.013, 0.0098, 0.0112], BELOW_1PCT)
    far = criterion_verdict([0.05, 0.04, 0.06, 0.045, 0.055], BELOW_1PCT)
    assert 0.025 < near.p_opposite < 0.05 and near.verdict == Verdict.REFUTED
    assert combine([near, sup, sup]).verdict == Verdict.INCONCLUSIVE  # Holm over 3: 3 x p > 0.05
    assert combine([near]).verdict == Verdict.REFUTED and combine([far, nt]).verdict == Verdict.REFUTED
    assert combine([]).verdict == Verdict.NOT_TESTABLE
    blocked = combine([sup, sup], undeclared=["other"])  # a criterion the builds report without a declared test
    assert blocked.verdict == Verdict.INCONCLUSIVE and "other" in blocked.reason
    assert combine([far], undeclared=["other"]).verdict == Verdict.REFUTED
    assert combine([], undeclared=["other"]).verdict == Verdict.INCONCLUSIVE
    assert untested("x", 6).n_builds == 6 and combine([sup, untested("x", 6)]).verdict == Verdict.NOT_TESTABLE


def test_a_criterion_declares_a_known_side_scale_and_test():
    with pytest.raises(ValueError, match="side in"):
        PopulationCriterion("x", 1.0, "under")
    with pytest.raises(ValueError, match="scale in"):
        PopulationCriterion("x", 1.0, "below", scale="probit")


def _simulated_power(d: float, n: int, draws: int = 20_000) -> float:
    """The share of one-sided t-tests at 0.05 that decide a normal population ``d`` SDs below its threshold."""
    y = np.random.default_rng(n).normal(-d, 1.0, size=(draws, n))
    return float(np.mean(st.ttest_1samp(y, 0.0, axis=1, alternative="less").pvalue < 0.05))


def test_the_planned_builds_reach_80_percent_power_and_one_fewer_does_not():
    """Simulated t-tests (not the noncentral t the plan uses) decide at the planned n and miss at n - 1."""
    n = needed_for_power(1.2)
    assert n == 6 and _simulated_power(1.2, n) >= 0.8 > _simulated_power(1.2, n - 1)
    n = needed_for_power(0.8)
    assert n == 12
    for k in (n - 1, n):  # 0.795 and 0.829 by the formula: the simulation agrees within 3 of its SEs
        exact = st.nct.sf(st.t.ppf(0.95, k - 1), k - 1, 0.8 * math.sqrt(k))
        assert _simulated_power(0.8, k) == pytest.approx(exact, abs=3 * math.sqrt(0.2 * 0.8 / 20_000))
    assert needed_for_power(-0.8) == 12 and needed_for_power(5.0) == MIN_TESTABLE


def test_a_signed_rank_criterion_needs_more_builds_and_a_small_effect_is_out_of_reach():
    assert needed_for_power(0.8, "wilcoxon") == math.ceil(12 / WILCOXON_ARE) == 14
    assert needed_for_power(0.2) is None and needed_for_power(0.35) == 52 and needed_for_power(0.35, "wilcoxon") == 61
    assert needed_for_power(0.3) is None and needed_for_power(0.0) is None and MAX_PLANNED == 64


def test_builds_needed_reads_the_builds_on_the_tests_scale_and_draws_at_the_testable_share():
    values = [2e-3, 5e-3, 1e-3, None, 4e-3, 8e-3, 3e-3, None, 2e-3, 6e-3]
    plan = builds_needed(values, BELOW_1PCT)
    y = _logit(np.array([v for v in values if v is not None]))
    d = (np.mean(y) - _logit(0.01)) / np.std(y, ddof=1)
    assert plan.effect == pytest.approx(d, rel=1e-12) and plan.side == "claimed" and plan.share == 0.8
    n = next(k for k in range(5, 65) if st.nct.sf(st.t.ppf(0.95, k - 1), k - 1, abs(d) * math.sqrt(k)) >= 0.8)
    assert plan.testable == n and plan.drawn == math.ceil(n / 0.8)
    opposite = builds_needed([0.02, 0.03, 0.015, 0.05, 0.04], BELOW_1PCT)
    assert opposite.side == "opposite" and opposite.testable == MIN_TESTABLE and opposite.drawn == MIN_TESTABLE


def test_a_plan_refuses_too_few_builds_or_a_mean_at_the_threshold():
    few = builds_needed([1e-3, None, None, 2e-3, None], BELOW_1PCT)
    assert few.drawn is None and "2 of 5 builds testable" in few.reason
    at = builds_needed([0.25, 0.75, 0.5, 0.5, 0.5], PopulationCriterion("acc", 0.5, "above"))
    assert at.drawn is None and at.effect == 0.0 and "sits at the threshold" in at.reason
    weak = builds_needed([0.45, 0.75, 0.5, 0.6, 0.45, 0.4], PopulationCriterion("acc", 0.5, "above"))
    assert weak.side == "claimed" and weak.drawn is None and "more than 64" in weak.reason
