"""The population verdict on canned build-level statistics, checked against scipy computed independently."""

import math

import numpy as np
import pytest
from scipy import stats as st

from lazarus_bench.stats import Verdict
from lazarus_bench.stats.population import (
    MIN_TESTABLE,
    PopulationCriterion,
    between_share,
    combine,
    criterion_verdict,
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
