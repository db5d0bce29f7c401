"""Probe statistics checked against independent scikit-learn / numpy computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    StratifiedKFold,
    cross_val_score,
    permutation_test_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from lazarus_bench.analysis.probes import (
    binary_direction,
    cluster_separation,
    control_labels,
    fit_predict,
    mean_difference_direction,
    probe_layer,
    probe_layers,
)


def reference_pipeline(C: float = 1.0) -> Pipeline:
    """Independently built copy of the probe classifier."""
    return Pipeline([("s", StandardScaler()), ("lr", LogisticRegression(C=C, max_iter=2000))])


def weak_signal(n_per_class: int = 12, n_classes: int = 3, d: int = 6, shift: float = 0.8, seed: int = 0):
    """Classes with overlapping Gaussian clouds, so folds score differently."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    centres = rng.normal(size=(n_classes, d)) * shift
    X = centres[y] + rng.normal(size=(y.size, d))
    return X, y


def separable(n_per_class: int = 10, d: int = 4, seed: int = 0):
    """Two far-apart clouds."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.array(["add", "mul"]), n_per_class)
    X = rng.normal(size=(y.size, d))
    X[y == "mul", 0] += 10.0
    return X, y


@pytest.mark.parametrize(("seed", "C", "n_splits"), [(0, 1.0, 4), (3, 0.1, 3), (11, 10.0, 5)])
def test_stratified_accuracy_matches_direct_cross_val_score(seed, C, n_splits):
    X, y = weak_signal(seed=seed)
    result = probe_layer(X, y, n_splits=n_splits, n_permutations=0, seed=seed, C=C)
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    expected = cross_val_score(reference_pipeline(C), X, y, cv=cv, scoring="accuracy")
    np.testing.assert_allclose(result.fold_accuracies, expected)
    assert result.n_splits == n_splits
    assert result.accuracy == pytest.approx(expected.mean())
    assert result.accuracy_std == pytest.approx(np.std(expected, ddof=0))
    assert np.std(expected, ddof=0) != pytest.approx(np.std(expected, ddof=1))
    assert result.p_value is None and result.group_accuracy is None and result.selectivity is None
    assert result.majority_baseline == pytest.approx(1 / 3)


def test_seed_changes_the_folds():
    X, y = weak_signal(seed=1)
    for seed in (0, 5):
        result = probe_layer(X, y, n_permutations=0, seed=seed)
        cv = StratifiedKFold(4, shuffle=True, random_state=seed)
        expected = cross_val_score(reference_pipeline(), X, y, cv=cv, scoring="accuracy")
        np.testing.assert_allclose(result.fold_accuracies, expected)


def test_group_cv_matches_explicit_leave_one_group_out():
    X, y = weak_signal(n_per_class=12, seed=2)
    groups = np.tile(np.array(["t0", "t1", "t2", "t3"]), y.size // 4)
    result = probe_layer(X, y, groups, n_permutations=0)
    expected = []
    for g in np.unique(groups):
        train, test = groups != g, groups == g
        model = reference_pipeline().fit(X[train], y[train])
        expected.append(np.mean(model.predict(X[test]) == y[test]))
    np.testing.assert_allclose(result.group_fold_accuracies, expected)
    assert result.group_names == ["t0", "t1", "t2", "t3"]
    assert result.group_accuracy == pytest.approx(np.mean(expected))
    assert result.group_accuracy_std == pytest.approx(np.std(expected))


def test_group_cv_needs_two_groups():
    X, y = weak_signal()
    with pytest.raises(ValueError, match="2 distinct groups"):
        probe_layer(X, y, np.zeros(y.size), n_permutations=0)


def test_separable_data_gets_minimal_p_value():
    X, y = separable()
    n_perm = 40
    result = probe_layer(X, y, n_permutations=n_perm, seed=0)
    assert result.accuracy == 1.0
    assert result.accuracy_std == 0.0
    assert result.p_value == pytest.approx(1 / (n_perm + 1))
    assert 0.2 < result.null_mean < 0.8


def test_noise_labels_get_large_p_value():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(24, 5))
    y = np.repeat([0, 1], 12)
    result = probe_layer(X, y, n_permutations=40, seed=7)
    assert result.p_value > 0.05


def test_permutation_statistics_match_direct_permutation_test_score():
    X, y = weak_signal(n_per_class=8, n_classes=2, seed=4)
    result = probe_layer(X, y, n_permutations=30, seed=4)
    score, null, p = permutation_test_score(
        reference_pipeline(),
        X,
        y,
        cv=StratifiedKFold(4, shuffle=True, random_state=4),
        n_permutations=30,
        random_state=4,
        scoring="accuracy",
    )
    assert result.accuracy == pytest.approx(score)
    assert result.p_value == pytest.approx(p)
    assert result.p_value == pytest.approx((np.sum(null >= score) + 1) / 31)
    assert result.null_mean == pytest.approx(null.mean())
    assert result.null_std == pytest.approx(np.std(null))


@settings(max_examples=12, deadline=None)
@given(
    n_perm=st.integers(min_value=1, max_value=6),
    seed=st.integers(min_value=0, max_value=2**16),
    signal=st.floats(min_value=0.0, max_value=5.0),
)
def test_p_value_never_below_one_over_n_plus_one(n_perm, seed, signal):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], 6)
    X = rng.normal(size=(12, 3))
    X[:, 0] += signal * y
    result = probe_layer(X, y, n_permutations=n_perm, seed=seed)
    assert 1 / (n_perm + 1) - 1e-12 <= result.p_value <= 1.0


def test_n_splits_reduced_to_smallest_class():
    X, y = weak_signal(n_per_class=10, n_classes=2)
    y = y.copy()
    y[:7] = 2
    result = probe_layer(X, y, n_splits=5, n_permutations=0)
    assert result.n_splits == 3
    assert len(result.fold_accuracies) == 3


def test_singleton_class_raises():
    X, y = weak_signal(n_per_class=5, n_classes=2)
    y = y.copy()
    y[0] = 9
    with pytest.raises(ValueError, match="at least 2 samples"):
        probe_layer(X, y, n_permutations=0)


def test_control_labels_consistent_and_balanced():
    rng = np.random.default_rng(0)
    keys = [tuple(k) for k in rng.integers(0, 4, size=(60, 2))]
    classes = ["add", "mul", "sub"]
    labels = control_labels(keys, classes, seed=3)
    by_key: dict[tuple, set] = {}
    for key, label in zip(keys, labels):
        by_key.setdefault(key, set()).add(label)
    assert all(len(v) == 1 for v in by_key.values())
    per_key = [next(iter(v)) for v in by_key.values()]
    counts = [per_key.count(c) for c in classes]
    assert max(counts) - min(counts) <= 1
    assert set(labels) <= set(classes)
    np.testing.assert_array_equal(labels, control_labels(keys, classes, seed=3))
    as_array = control_labels(np.asarray(keys), classes, seed=3)
    np.testing.assert_array_equal(labels, as_array)


def test_control_task_selectivity():
    rng = np.random.default_rng(5)
    pairs = [(a, b) for a in range(4) for b in range(3)]
    keys = [pairs[i % len(pairs)] for i in range(48)]
    y = np.array([i % 2 for i in range(48)])
    X = rng.normal(size=(48, 5))
    X[:, 0] += 3.0 * y
    result = probe_layer(X, y, n_permutations=0, control_keys=keys, seed=5)
    y_control = control_labels(keys, np.unique(y), seed=5)
    _, counts = np.unique(y_control, return_counts=True)
    k = min(4, counts.min())
    expected = cross_val_score(
        reference_pipeline(), X, y_control, cv=StratifiedKFold(k, shuffle=True, random_state=5), scoring="accuracy"
    )
    assert result.control_n_splits == k
    np.testing.assert_allclose(result.control_fold_accuracies, expected)
    assert result.control_accuracy == pytest.approx(expected.mean())
    assert result.control_accuracy_std == pytest.approx(np.std(expected))
    assert result.selectivity == pytest.approx(result.accuracy - expected.mean())


def test_control_keys_length_checked():
    X, y = weak_signal()
    with pytest.raises(ValueError, match="control_keys"):
        probe_layer(X, y, n_permutations=0, control_keys=[0, 1])


def test_probe_layers_report():
    X_sep, y = separable(n_per_class=8)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=X_sep.shape)
    features = np.stack([noise, X_sep, X_sep * 2.0])
    report = probe_layers(features, y, layer_labels=[4, 8, 12], n_permutations=5)
    assert report.best_layer == 8
    assert report.best_index == 1
    assert [p.accuracy for p in report.layers][1] == 1.0
    rows = report.table_rows()
    assert [r["layer"] for r in rows] == [4, 8, 12]
    assert rows[1]["acc"] == 1.0 and rows[1]["p_value"] == pytest.approx(1 / 6)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["best_layer"] == 8
    assert data["layers"][0]["classes"] == ["add", "mul"]
    listed = probe_layers([noise, X_sep[:, :2]], y, n_permutations=0)
    assert listed.layer_labels == [0, 1]
    assert listed.best_layer == 1


def test_probe_layers_validates_shapes():
    with pytest.raises(ValueError, match="3-D"):
        probe_layers(np.zeros((4, 3)), [0, 1, 0, 1])
    X, y = separable()
    with pytest.raises(ValueError, match="layer labels"):
        probe_layers([X, X], y, layer_labels=[1], n_permutations=0)


def test_fit_predict_matches_pipeline():
    X, y = separable(n_per_class=15, seed=2)
    rng = np.random.default_rng(0)
    order = rng.permutation(y.size)
    train, test = order[:20], order[20:]
    pred = fit_predict(X[train], y[train], X[test], y_test=y[test], C=0.5)
    model = reference_pipeline(0.5).fit(X[train], y[train])
    np.testing.assert_array_equal(pred.labels, model.predict(X[test]))
    np.testing.assert_allclose(pred.proba, model.predict_proba(X[test]))
    np.testing.assert_allclose(pred.proba.sum(axis=1), 1.0)
    assert pred.classes == ["add", "mul"]
    assert pred.accuracy == 1.0
    assert fit_predict(X[train], y[train], X[test]).accuracy is None
    json.dumps(pred.to_dict())


def direction_data(seed: int = 0, n: int = 150, d: int = 8):
    """Three operations; mul differs from add along a known unit axis; features have wildly different scales."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=d)
    axis /= np.linalg.norm(axis)
    y = np.repeat(np.array(["add", "mul", "sub"]), n)
    X = rng.normal(size=(y.size, d))
    X[y == "mul"] += 1.5 * axis
    X[y == "sub"] += 3.0 * rng.normal(size=d)
    return X, y, axis


def test_binary_direction_recovers_axis():
    X, y, axis = direction_data()
    w = binary_direction(X, y, "mul", "add")
    cos = w @ axis / np.linalg.norm(w)
    assert cos > 0.9
    assert (X[y == "mul"] @ w).mean() > (X[y == "add"] @ w).mean()
    w_rev = binary_direction(X, y, "add", "mul")
    assert w_rev @ w / (np.linalg.norm(w) * np.linalg.norm(w_rev)) < -0.999


def test_binary_direction_unscaling_matches_decision_function():
    X, y, _ = direction_data(seed=3)
    scales = np.logspace(-2, 2, X.shape[1])
    X = X * scales
    w = binary_direction(X, y, "mul", "add", C=0.3)
    keep = np.isin(y, ["mul", "add"])
    model = reference_pipeline(0.3).fit(X[keep], (y[keep] == "mul").astype(int))
    df = model.decision_function(X)
    raw = X @ w
    np.testing.assert_allclose(raw - raw[0], df - df[0], rtol=1e-7, atol=1e-7)
    intercept = np.mean(df - raw)
    np.testing.assert_array_equal(np.sign(raw + intercept), np.sign(df))
    coef_scaled = model.named_steps["lr"].coef_[0]
    assert not np.allclose(w / np.linalg.norm(w), coef_scaled / np.linalg.norm(coef_scaled), atol=1e-3)


def test_binary_direction_missing_label():
    X, y, _ = direction_data()
    with pytest.raises(ValueError, match="div"):
        binary_direction(X, y, "div", "add")


def test_cluster_separation_matches_pairwise_loop():
    rng = np.random.default_rng(2)
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    X = rng.normal(size=(8, 4)) + 2.0 * np.eye(4)[y]
    within, between = [], []
    for i in range(8):
        for j in range(8):
            if i == j:
                continue
            cos = np.dot(X[i], X[j]) / (np.linalg.norm(X[i]) * np.linalg.norm(X[j]))
            (within if y[i] == y[j] else between).append(cos)
    assert cluster_separation(X, y) == pytest.approx(np.mean(within) - np.mean(between))
    assert cluster_separation(X, y) > 0


def test_mean_difference_recovers_a_planted_residual_direction_that_probe_weights_do_not():
    """A class signal written along a unit direction u of an anisotropic residual stream (per-coordinate scales
    spanning 100x) reads back as u from the class-mean difference; a standardised probe's weights (coef / sigma)
    inflate the low-variance coordinates and point elsewhere (H04's defect, CLAIMS.md revision 3)."""
    rng = np.random.default_rng(0)
    d, n = 64, 200
    scales = np.geomspace(0.02, 2.0, d)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    y = np.array(["mul"] * n + ["add"] * n)
    X = rng.standard_normal((2 * n, d)) * scales + np.where(y == "mul", 1.5, -1.5)[:, None] * u
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    md = mean_difference_direction(X, y, "mul", "add")
    assert md == pytest.approx(X[y == "mul"].mean(0) - X[y == "add"].mean(0))
    assert cos(md, u) > 0.9
    assert cos(binary_direction(X, y, "mul", "add"), u) < 0.6
    assert cos(mean_difference_direction(X, y, "add", "mul"), u) < -0.9
    with pytest.raises(ValueError):
        mean_difference_direction(X, y, "div", "add")
