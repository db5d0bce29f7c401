"""The fast probe fit (analysis/logreg.py) against scikit-learn's pipeline: same predictions, same optimum."""

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score

from lazarus_bench.analysis import logreg, probes


def _problem(seed: int, k: int, n: int = 48, d: int = 32):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n // k + 1)[:n]
    rng.shuffle(y)
    X = rng.standard_normal((k, d))[y] * rng.uniform(0.05, 0.6) + rng.standard_normal((n, d)) * rng.uniform(0.5, 3)
    X[:, 0] = 7.0  # a constant feature: StandardScaler leaves it unscaled
    return X, np.array(["add", "div", "mul", "sub"])[y]


@pytest.mark.parametrize("k", [2, 3, 4])
def test_fit_matches_sklearn(k):
    for seed in range(6):
        X, y = _problem(seed, k)
        train, test = np.arange(36), np.arange(36, 48)
        ref = probes.make_classifier(C=0.5, seed=0).fit(X[train], y[train])
        ours = logreg.fit_predict(X[train], y[train], X[test], C=0.5, max_iter=2000)
        assert np.array_equal(ours, ref.predict(X[test]))
        train_s, _ = logreg.standardise(X[train], X[test])
        assert np.allclose(train_s, ref["scale"].transform(X[train]), atol=1e-12)
        fit = logreg.Probe(train_s, y[train], C=0.5, max_iter=2000)
        assert np.allclose(fit.w, ref["logreg"].coef_, atol=2e-3)
        assert np.allclose(fit.b, ref["logreg"].intercept_, atol=2e-3)


def test_cv_accuracy_matches_cross_val_score():
    for seed in range(12):
        X, y = _problem(100 + seed, 2 + seed % 3)
        cv = probes.stratified_cv(4, seed)
        expected = cross_val_score(probes.make_classifier(C=1.0, seed=0), X, y, cv=cv).mean()
        assert logreg.cv_accuracy(X, y, cv, C=1.0, max_iter=2000) == expected


def test_one_class_is_refused():
    X, _ = _problem(0, 2)
    with pytest.raises(ValueError, match="2 classes"):
        logreg.Probe(X, np.zeros(len(X)), C=1.0, max_iter=100)
