"""H02/H03: cross-validated predictions over clustered prompts are tested over clusters, never as independent trials
(CLAIMS.md revision 3, "Statistics"; issue 32)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from lazarus_bench import prompts
from lazarus_bench.analysis.probes import (
    CLUSTER_SHORTFALL_TEST,
    cluster_permutation_null,
    cluster_shortfall_test,
    permute_within,
)
from lazarus_bench.harness.registry import get_claim


def _spread(n_clusters: int, size: int, errors_in: list[int], per_cluster: int = 1) -> tuple[np.ndarray, list]:
    """Correctness of n_clusters x size prompts with ``per_cluster`` errors in each cluster of ``errors_in``."""
    clusters = [j for j in range(n_clusters) for _ in range(size)]
    correct = np.ones(n_clusters * size, dtype=bool)
    for j in errors_in:
        correct[j * size: j * size + per_cluster] = False
    return correct, clusters


def test_the_same_count_is_judged_by_how_its_errors_fall_into_clusters():
    """56/64 correct (8 errors) against 95%: counted as 64 independent trials it is significant (binomial p ~ 0.01);
    over 16 template x pair cells it is significant only when the errors are spread over many cells. Concentrated in
    2 cells they are what 2 clusters' shared fate gives, and an accuracy of 95% allows 3.2 flawed cells on average."""
    iid_p = sps.binom.cdf(56, 64, 0.95)
    assert iid_p < 0.05
    concentrated = cluster_shortfall_test(*_spread(16, 4, [0, 1], per_cluster=4), 0.95)
    spread = cluster_shortfall_test(*_spread(16, 4, list(range(8))), 0.95)
    assert concentrated["k_correct"] == spread["k_correct"] == 56
    assert concentrated["clusters_flawed"] == 2 and concentrated["p_value"] == 1.0
    assert spread["clusters_flawed"] == 8
    assert spread["null_flawed_rate"] == pytest.approx(64 * 0.05 / 16)
    assert spread["p_value"] == pytest.approx(sps.binom.sf(7, 16, 0.2)) and spread["p_value"] < 0.05


def test_h02_design_four_pairs_of_four():
    """H02's 16 prompts in 4 operand-pair clusters: an accuracy of 95% allows 0.8 flawed clusters on average, so the
    bound is Binomial(4, 0.2), valid from 2 flawed clusters on (Hoeffding); 14/16 with errors in 2 pairs is not
    significant, errors in 3 pairs are."""
    two = cluster_shortfall_test(*_spread(4, 4, [0, 1]), 0.95)
    three = cluster_shortfall_test(*_spread(4, 4, [0, 1, 2]), 0.95)
    one = cluster_shortfall_test(*_spread(4, 4, [3], per_cluster=4), 0.95)  # 12/16, all in one pair
    assert (two["k_correct"], two["clusters_entirely_correct"]) == (14, 2)
    assert two["p_value"] == pytest.approx(sps.binom.sf(1, 4, 0.2)) and two["p_value"] > 0.05
    assert three["p_value"] == pytest.approx(sps.binom.sf(2, 4, 0.2)) and three["p_value"] < 0.05
    assert one["p_value"] == 1.0, "one flawed cluster is within the bound, however many errors it holds"
    assert two["critical_flawed"] == 3 and two["min_flawed_for_bound"] == 2


@pytest.mark.thorough
@pytest.mark.parametrize("dependence", ["independent", "whole cluster"])
def test_shortfall_test_holds_its_level_at_the_threshold(dependence):
    """At a true accuracy of exactly 95% the test rejects at most alpha of the time, whether errors strike prompts
    independently or whole clusters at once (the dependence the cluster unit is there for)."""
    rng = np.random.default_rng(0)
    m, size, reps = 16, 4, 4000
    clusters = [j for j in range(m) for _ in range(size)]
    rejected = 0
    for _ in range(reps):
        if dependence == "independent":
            correct = rng.random(m * size) >= 0.05
        else:
            correct = np.repeat(rng.random(m) >= 0.05, size)
        rejected += cluster_shortfall_test(correct, clusters, 0.95)["p_value"] < 0.05
    assert rejected / reps <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)


def test_shortfall_mde_is_the_accuracy_the_test_detects_never_zero():
    """The MDE is theta minus the accuracy at which the test reaches power 0.8 when each cluster is flawed with
    probability 1 - accuracy; infinite (not 0) when no outcome can be significant."""
    res = cluster_shortfall_test(*_spread(4, 4, []), 0.95)
    assert res["clusters_flawed"] == 0 and res["p_value"] == 1.0
    detectable = res["mde_accuracy"]
    assert res["mde"] == pytest.approx(0.95 - detectable) and 0.5 < res["mde"] < 1.0
    assert sps.binom.sf(res["critical_flawed"] - 1, 4, 1 - detectable) == pytest.approx(0.8, abs=1e-6)
    alone = cluster_shortfall_test([True] * 4, [0] * 4, 0.95)  # one cluster: nothing to count
    assert alone["mde"] == math.inf and alone["critical_flawed"] is None and alone["p_value"] == 1.0
    many = cluster_shortfall_test(*_spread(16, 4, []), 0.95)
    assert 0.0 < many["mde"] < res["mde"], "more clusters, smaller MDE"


def test_permute_within_keeps_each_clusters_labels():
    items = list(prompts.word_set_deconfounded())
    y = np.asarray([it.label for it in items])
    cells = [(it.template, it.pair) for it in items]
    rng = np.random.default_rng(0)
    shuffled = permute_within(y, cells, rng)
    assert not np.array_equal(shuffled, y)
    for cell in set(cells):
        idx = [i for i, c in enumerate(cells) if c == cell]
        assert sorted(shuffled[idx]) == sorted(y[idx])
    with pytest.raises(ValueError):
        permute_within(y, cells[:-1], rng)


def test_cluster_permutation_null_scores_within_cell_permutations():
    """Each row of the null is the probe's stratified CV accuracy under one within-cell permutation (the same one
    for every layer, so a row's maximum is the max-statistic null), reproducible from the seed."""
    from sklearn.model_selection import cross_val_score

    from lazarus_bench.analysis.probes import make_classifier, stratified_cv

    items = list(prompts.word_set_deconfounded())
    y = np.asarray([it.label for it in items])
    cells = [(it.template, it.pair) for it in items]
    rng = np.random.default_rng(1)
    X = rng.standard_normal((len(items), 8)) + (y == "multiply")[:, None]
    null = cluster_permutation_null(np.stack([X, X]), y, cells, n_splits=4, n_permutations=3, seed=0)
    assert null.shape == (3, 2) and np.array_equal(null[:, 0], null[:, 1])
    replay = np.random.default_rng(0)
    for row in null:
        permuted = permute_within(y, cells, replay)
        expected = cross_val_score(make_classifier(seed=0), X, permuted, cv=stratified_cv(4, 0)).mean()
        assert row[0] == pytest.approx(expected)
    assert np.array_equal(null, cluster_permutation_null(np.stack([X, X]), y, cells, n_splits=4, n_permutations=3,
                                                         seed=0))


def test_h02_h03_declare_their_cluster_tests():
    h02, h03 = get_claim("H02"), get_claim("H03")
    assert CLUSTER_SHORTFALL_TEST in h02.tests["accuracy"] and "Holm" in h02.tests["accuracy"]
    assert "within operand-pair clusters" in h02.tests["above_null"]
    assert {h03.tests[k] for k in ("l0_near_chance", "peak", "gain")} == {"sign"}
    assert "within template x operand-pair cells" in h03.tests["peak_above_null"]
