"""Per-layer linear probes with honest statistics: shuffled stratified CV, group CV, permutation null, control task.

Pure numpy + scikit-learn; the features are extracted from the model elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as st
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    LeaveOneGroupOut,
    StratifiedKFold,
    cross_val_score,
    permutation_test_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ..io import jsonable
from . import logreg

DEFAULT_C = 1.0
DEFAULT_MAX_ITER = 2000
DEFAULT_N_SPLITS = 4
DEFAULT_N_PERMUTATIONS = 200


def _floats(values: Any) -> list[float]:
    """A 1-D float list from any array-like."""
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def make_classifier(*, C: float = DEFAULT_C, max_iter: int = DEFAULT_MAX_ITER, seed: int = 0) -> Pipeline:
    """The probe: StandardScaler then LogisticRegression, so scaling is refitted inside every CV fold."""
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(C=C, max_iter=max_iter, random_state=seed)),
        ]
    )


def _check_xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (n, d) feature matrix and (n,) label vector of matching length."""
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"features must be 2-D (n_samples, n_features), got shape {X.shape}")
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"features have {X.shape[0]} rows but there are {y.shape[0]} labels")
    return X, y


def effective_n_splits(y: Any, n_splits: int = DEFAULT_N_SPLITS) -> int:
    """Number of stratified folds actually usable: ``n_splits`` capped at the smallest class count (at least 2)."""
    if n_splits < 2:
        raise ValueError(f"n_splits must be at least 2, got {n_splits}")
    classes, counts = np.unique(np.asarray(y), return_counts=True)
    if classes.size < 2:
        raise ValueError(f"a probe needs at least 2 classes, got {classes.size}")
    smallest = int(counts.min())
    if smallest < 2:
        rare = [jsonable(c) for c, k in zip(classes, counts) if k < 2]
        raise ValueError(
            f"every class needs at least 2 samples for stratified cross-validation; class(es) {rare} have 1"
        )
    return min(int(n_splits), smallest)


def stratified_cv(n_splits: int, seed: int) -> StratifiedKFold:
    """The shuffled stratified k-fold used for task accuracy, the permutation test and the control task."""
    return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)


def _normalise_key(key: Any) -> Hashable:
    """Make a control key hashable (arrays and lists become tuples)."""
    if isinstance(key, np.ndarray):
        return tuple(key.tolist())
    if isinstance(key, list):
        return tuple(_normalise_key(k) for k in key)
    if isinstance(key, np.generic):
        return key.item()
    return key


def control_labels(control_keys: Sequence[Any], classes: Sequence[Any], seed: int = 0) -> np.ndarray:
    """Hewitt & Liang control task: each distinct key gets one random class, classes balanced over keys.

    Keys are taken in order of first appearance; class counts over keys differ by at most one.
    """
    keys = [_normalise_key(k) for k in control_keys]
    classes_arr = np.asarray(classes)
    if classes_arr.size == 0:
        raise ValueError("control_labels needs at least one class")
    index: dict[Hashable, int] = {}
    for key in keys:
        index.setdefault(key, len(index))
    rng = np.random.default_rng(seed)
    shuffled_classes = classes_arr[rng.permutation(classes_arr.size)]
    pool = shuffled_classes[np.arange(len(index)) % classes_arr.size]
    pool = pool[rng.permutation(pool.size)]
    return np.asarray([pool[index[key]] for key in keys], dtype=classes_arr.dtype)


@dataclass
class LayerProbe:
    """Probe statistics for one layer; accuracies are fold means, stds are population (ddof=0) over folds."""

    n_samples: int
    n_features: int
    classes: list[Any]
    majority_baseline: float
    n_splits: int
    accuracy: float
    accuracy_std: float
    fold_accuracies: list[float]
    group_accuracy: float | None = None
    group_accuracy_std: float | None = None
    group_fold_accuracies: list[float] | None = None
    group_names: list[Any] | None = None
    n_permutations: int = 0
    p_value: float | None = None
    null_mean: float | None = None
    null_std: float | None = None
    control_n_splits: int | None = None
    control_accuracy: float | None = None
    control_accuracy_std: float | None = None
    control_fold_accuracies: list[float] | None = None
    selectivity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable plain-Python view."""
        return {name: jsonable(getattr(self, name)) for name in self.__dataclass_fields__}


def _cv_scores(pipe: Pipeline, X: np.ndarray, y: np.ndarray, cv: Any, groups: np.ndarray | None = None) -> np.ndarray:
    """Per-fold accuracies; any fold that cannot be fitted raises instead of silently scoring NaN."""
    return cross_val_score(pipe, X, y, groups=groups, cv=cv, scoring="accuracy", error_score="raise")


def probe_layer(
    X: Any,
    y: Any,
    groups: Any = None,
    *,
    n_splits: int = DEFAULT_N_SPLITS,
    n_permutations: int = DEFAULT_N_PERMUTATIONS,
    control_keys: Sequence[Any] | None = None,
    seed: int = 0,
    C: float = DEFAULT_C,
    max_iter: int = DEFAULT_MAX_ITER,
    n_jobs: int | None = None,
) -> LayerProbe:
    """Probe one layer's features X (n, d) for labels y (n,).

    Shuffled stratified k-fold accuracy, leave-one-group-out accuracy when ``groups`` is given, permutation-test
    p-value when ``n_permutations`` > 0, and control-task selectivity when ``control_keys`` is given.
    """
    X, y = _check_xy(X, y)
    k = effective_n_splits(y, n_splits)
    pipe = make_classifier(C=C, max_iter=max_iter, seed=seed)
    classes, counts = np.unique(y, return_counts=True)

    scores = _cv_scores(pipe, X, y, stratified_cv(k, seed))
    result = LayerProbe(
        n_samples=int(X.shape[0]),
        n_features=int(X.shape[1]),
        classes=jsonable(classes),
        majority_baseline=float(counts.max() / counts.sum()),
        n_splits=k,
        accuracy=float(np.mean(scores)),
        accuracy_std=float(np.std(scores)),
        fold_accuracies=_floats(scores),
    )

    if groups is not None:
        groups_arr = np.asarray(groups)
        if groups_arr.shape != (X.shape[0],):
            raise ValueError(f"groups must have shape ({X.shape[0]},), got {groups_arr.shape}")
        names = np.unique(groups_arr)
        if names.size < 2:
            raise ValueError("group cross-validation needs at least 2 distinct groups")
        group_scores = _cv_scores(pipe, X, y, LeaveOneGroupOut(), groups=groups_arr)
        result.group_accuracy = float(np.mean(group_scores))
        result.group_accuracy_std = float(np.std(group_scores))
        result.group_fold_accuracies = _floats(group_scores)
        result.group_names = jsonable(names)

    if n_permutations < 0:
        raise ValueError(f"n_permutations must be >= 0, got {n_permutations}")
    if n_permutations > 0:
        _, null, p_value = permutation_test_score(
            pipe,
            X,
            y,
            cv=stratified_cv(k, seed),
            n_permutations=n_permutations,
            random_state=seed,
            scoring="accuracy",
            n_jobs=n_jobs,
        )
        result.n_permutations = int(n_permutations)
        result.p_value = float(p_value)
        result.null_mean = float(np.mean(null))
        result.null_std = float(np.std(null))

    if control_keys is not None:
        if len(control_keys) != X.shape[0]:
            raise ValueError(f"control_keys has {len(control_keys)} entries for {X.shape[0]} samples")
        y_control = control_labels(control_keys, classes, seed)
        try:
            kc = effective_n_splits(y_control, k)
        except ValueError as exc:
            raise ValueError(f"control task unusable (too few distinct keys per class): {exc}") from exc
        control_scores = _cv_scores(pipe, X, y_control, stratified_cv(kc, seed))
        result.control_n_splits = kc
        result.control_accuracy = float(np.mean(control_scores))
        result.control_accuracy_std = float(np.std(control_scores))
        result.control_fold_accuracies = _floats(control_scores)
        result.selectivity = result.accuracy - result.control_accuracy

    return result


@dataclass
class ProbeReport:
    """Probe results for every layer, in layer order, with the best layer by stratified accuracy."""

    layer_labels: list[Any]
    layers: list[LayerProbe] = field(default_factory=list)

    @property
    def best_index(self) -> int:
        """Position of the first layer with the highest stratified accuracy."""
        return int(np.argmax([p.accuracy for p in self.layers]))

    @property
    def best_layer(self) -> Any:
        """Label of the first layer with the highest stratified accuracy."""
        return self.layer_labels[self.best_index]

    def table_rows(self) -> list[dict[str, Any]]:
        """One flat dict per layer (missing statistics as None), ready for ``tabulate(rows, headers='keys')``."""
        return [
            {
                "layer": jsonable(label),
                "acc": p.accuracy,
                "acc_std": p.accuracy_std,
                "group_acc": p.group_accuracy,
                "group_std": p.group_accuracy_std,
                "p_value": p.p_value,
                "null_mean": p.null_mean,
                "control_acc": p.control_accuracy,
                "selectivity": p.selectivity,
            }
            for label, p in zip(self.layer_labels, self.layers)
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable plain-Python view."""
        return {
            "best_layer": jsonable(self.best_layer) if self.layers else None,
            "best_index": self.best_index if self.layers else None,
            "layers": [{"layer": jsonable(label), **p.to_dict()} for label, p in zip(self.layer_labels, self.layers)],
        }


def probe_layers(
    features: Any,
    y: Any,
    groups: Any = None,
    *,
    layer_labels: Sequence[Any] | None = None,
    n_splits: int = DEFAULT_N_SPLITS,
    n_permutations: int = DEFAULT_N_PERMUTATIONS,
    control_keys: Sequence[Any] | None = None,
    seed: int = 0,
    C: float = DEFAULT_C,
    max_iter: int = DEFAULT_MAX_ITER,
    n_jobs: int | None = None,
) -> ProbeReport:
    """Run ``probe_layer`` on each layer of ``features`` (n_layers, n, d) or a list of (n, d) arrays."""
    if isinstance(features, np.ndarray):
        if features.ndim != 3:
            raise ValueError(f"features must be 3-D (n_layers, n_samples, n_features), got shape {features.shape}")
        per_layer = list(features)
    else:
        per_layer = [np.asarray(f) for f in features]
    if not per_layer:
        raise ValueError("no layers to probe")
    labels = list(range(len(per_layer))) if layer_labels is None else list(layer_labels)
    if len(labels) != len(per_layer):
        raise ValueError(f"{len(labels)} layer labels for {len(per_layer)} layers")
    report = ProbeReport(layer_labels=labels)
    for X in per_layer:
        report.layers.append(
            probe_layer(
                X,
                y,
                groups,
                n_splits=n_splits,
                n_permutations=n_permutations,
                control_keys=control_keys,
                seed=seed,
                C=C,
                max_iter=max_iter,
                n_jobs=n_jobs,
            )
        )
    return report


@dataclass
class Predictions:
    """Held-out predictions: labels, class probabilities (columns in ``classes`` order), accuracy if known."""

    labels: np.ndarray
    proba: np.ndarray
    classes: list[Any]
    accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable plain-Python view."""
        return {
            "labels": jsonable(self.labels),
            "proba": jsonable(np.asarray(self.proba, dtype=np.float64)),
            "classes": jsonable(self.classes),
            "accuracy": self.accuracy,
        }


def fit_predict(
    X_train: Any,
    y_train: Any,
    X_test: Any,
    *,
    y_test: Any = None,
    C: float = DEFAULT_C,
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
) -> Predictions:
    """Fit the probe on all training rows and predict the test rows (transfer / held-out evaluation)."""
    X_train, y_train = _check_xy(X_train, y_train)
    X_test = np.asarray(X_test)
    if X_test.ndim != 2 or X_test.shape[1] != X_train.shape[1]:
        raise ValueError(f"test features must be (n, {X_train.shape[1]}), got shape {X_test.shape}")
    pipe = make_classifier(C=C, max_iter=max_iter, seed=seed).fit(X_train, y_train)
    labels = pipe.predict(X_test)
    accuracy = None
    if y_test is not None:
        y_test = np.asarray(y_test)
        if y_test.shape != (X_test.shape[0],):
            raise ValueError(f"y_test must have shape ({X_test.shape[0]},), got {y_test.shape}")
        accuracy = float(np.mean(labels == y_test))
    return Predictions(
        labels=labels,
        proba=pipe.predict_proba(X_test),
        classes=jsonable(pipe.classes_),
        accuracy=accuracy,
    )


def mean_difference_direction(X: Any, y: Any, positive: Any, negative: Any) -> np.ndarray:
    """Class-mean difference mean(X | positive) - mean(X | negative) in the raw feature (residual) space.

    A class signal written along a residual direction u comes back as u: no per-feature scaling or penalty reweights
    the coordinates (a standardised probe's coef / sigma inflates low-variance coordinates instead)."""
    X, y = _check_xy(X, y)
    if positive == negative:
        raise ValueError("positive and negative labels must differ")
    for name, label in (("positive", positive), ("negative", negative)):
        if not np.any(y == label):
            raise ValueError(f"{name} label {label!r} does not occur in y")
    return X[y == positive].mean(axis=0) - X[y == negative].mean(axis=0)


def binary_direction(
    X: Any,
    y: Any,
    positive: Any,
    negative: Any,
    *,
    C: float = DEFAULT_C,
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
) -> np.ndarray:
    """Raw-feature-space weight vector of a positive-vs-negative probe fitted on those rows; points to ``positive``.

    The pipeline scores coef . (x - mu) / sigma + b, which equals (coef / sigma) . x + const, so coef / sigma is
    returned (unnormalised: X @ w differences equal the pipeline's decision_function differences).
    """
    X, y = _check_xy(X, y)
    if positive == negative:
        raise ValueError("positive and negative labels must differ")
    keep = (y == positive) | (y == negative)
    for name, label in (("positive", positive), ("negative", negative)):
        if not np.any(y == label):
            raise ValueError(f"{name} label {label!r} does not occur in y")
    target = (y[keep] == positive).astype(np.int64)
    pipe = make_classifier(C=C, max_iter=max_iter, seed=seed).fit(X[keep], target)
    coef = pipe.named_steps["logreg"].coef_[0]
    sigma = pipe.named_steps["scale"].scale_
    return np.asarray(coef / sigma, dtype=np.float64)


def permute_within(y: Any, clusters: Sequence[Any], rng: np.random.Generator) -> np.ndarray:
    """``y`` with its labels shuffled inside each cluster (a restricted permutation, the cluster-level null): every
    cluster keeps its own label composition, so what its prompts share (template, operands) can tell the permuted
    labels no more than it tells the real ones."""
    y = np.asarray(y)
    keys = [_normalise_key(c) for c in clusters]
    if y.ndim != 1 or len(keys) != y.size:
        raise ValueError(f"{len(keys)} cluster keys for {y.size} labels")
    codes = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    member = np.asarray([codes[key] for key in keys])
    out = y.copy()
    for j in range(len(codes)):
        idx = np.flatnonzero(member == j)
        out[idx] = y[idx][rng.permutation(idx.size)]
    return out


def cluster_permutation_null(features: Any, y: Any, clusters: Sequence[Any], *, n_splits: int = DEFAULT_N_SPLITS,
                             n_permutations: int = DEFAULT_N_PERMUTATIONS, seed: int = 0, C: float = DEFAULT_C,
                             max_iter: int = DEFAULT_MAX_ITER) -> np.ndarray:
    """Shuffled stratified k-fold accuracy of each layer of ``features`` (n_layers, n, d) under labels permuted
    within ``clusters`` (``permute_within``, seeded), shape (n_permutations, n_layers). One permutation per row is
    shared by all layers, so a row's maximum is the max-statistic null over layers. Fitted by ``logreg`` (the
    probe's objective and optimizer at a quarter of sklearn's cost per fit)."""
    per_layer = [np.asarray(f) for f in features]
    y = np.asarray(y)
    cv = stratified_cv(effective_n_splits(y, n_splits), seed)
    rng = np.random.default_rng(seed)
    null = np.zeros((n_permutations, len(per_layer)))
    for b in range(n_permutations):
        permuted = permute_within(y, clusters, rng)
        for i, X in enumerate(per_layer):
            null[b, i] = logreg.cv_accuracy(X, permuted, cv, C=C, max_iter=max_iter)
    return null


CLUSTER_SHORTFALL_TEST = ("exact binomial over clusters: the number of clusters with an error, against the "
                          "Hoeffding bound of an accuracy at the threshold")


def cluster_shortfall_test(correct: Any, clusters: Sequence[Any], threshold: float, alpha: float = 0.05,
                           power: float = 0.8) -> dict[str, Any]:
    """Is the accuracy of cross-validated predictions below ``threshold``? Tested over clusters of prompts whose
    predictions are not independent (any dependence within a cluster; clusters independent).

    Unit: the cluster, scored entirely correct or flawed (at least one error). If the accuracy is at least
    ``threshold`` (theta), the expected number of errors is at most n (1 - theta), so the expected number of flawed
    clusters mu is too (a cluster is flawed at most as often as it holds errors, whatever the dependence within
    it). For independent clusters the count F of flawed clusters then satisfies P(F >= c) <= P(Binomial(m, mu0 / m)
    >= c), mu0 = n (1 - theta), for every c >= mu0 + 1 (Hoeffding 1956, Theorem 4; the binomial tail grows with
    mu). p = that tail at the observed F, and 1 below mu0 + 1 (no bound there). SUPPORTED-side evidence is not
    this test's business: it only refutes (``p`` < alpha means "accuracy below theta").

    MDE (accuracy points, power ``power``): theta minus the largest true accuracy theta1 at which the test rejects
    with that power when errors are spread evenly over clusters (each cluster then flawed with probability at least
    1 - theta1, whatever the dependence within it); infinite when no outcome at this m can be significant, never 0.
    """
    correct = np.asarray(correct, dtype=bool)
    keys = [_normalise_key(c) for c in clusters]
    if len(keys) != correct.size or correct.size == 0:
        raise ValueError(f"{len(keys)} cluster keys for {correct.size} predictions")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    names = list(dict.fromkeys(keys))
    member = np.asarray([names.index(k) for k in keys])
    per_cluster = np.array([correct[member == j].mean() for j in range(len(names))])
    n, m = int(correct.size), len(names)
    flawed = int(np.sum(per_cluster < 1.0))
    mu0 = n * (1.0 - threshold)
    bound = mu0 / m
    floor = int(math.ceil(mu0 + 1.0 - 1e-12))

    def tail(c: int, rate: float) -> float:
        return float(st.binom.sf(c - 1, m, rate))

    valid = bound < 1.0
    p_value = tail(flawed, bound) if valid and flawed >= floor else 1.0
    critical = next((c for c in range(max(floor, 1), m + 1) if valid and tail(c, bound) < alpha), None)
    if critical is None:
        mde, detectable = math.inf, math.nan
    else:
        low, high = bound, 1.0  # P(flawed) at which the power is reached: bisect the binomial tail
        for _ in range(60):
            mid = (low + high) / 2.0
            low, high = (low, mid) if tail(critical, mid) >= power else (mid, high)
        detectable = 1.0 - high
        mde = threshold - detectable
    return {
        "test": CLUSTER_SHORTFALL_TEST, "threshold": threshold, "alpha": alpha, "n_prompts": n, "n_clusters": m,
        "k_correct": int(correct.sum()), "clusters_entirely_correct": m - flawed, "clusters_flawed": flawed,
        "accuracy_per_cluster": per_cluster.tolist(), "cluster_keys": [str(k) for k in names],
        "null_flawed_rate": bound, "min_flawed_for_bound": floor, "critical_flawed": critical, "p_value": p_value,
        "mde": mde, "mde_accuracy": detectable,
        "mde_definition": (f"accuracy points below {threshold:.4g} at which this test over {m} clusters rejects with "
                           f"power {power} (alpha {alpha:.4g}) when errors are spread evenly over the clusters, "
                           "whatever the dependence within one; infinite when no outcome at this number of clusters "
                           "can be significant"),
    }


def cluster_separation(X: Any, y: Any) -> float:
    """Mean within-class minus mean between-class cosine similarity of rows (self-pairs excluded)."""
    X, y = _check_xy(X, y)
    X = X.astype(np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    unit = np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)
    sim = unit @ unit.T
    same = y[:, None] == y[None, :]
    off_diag = ~np.eye(len(y), dtype=bool)
    within = same & off_diag
    between = ~same
    if not within.any():
        raise ValueError("cluster_separation needs a class with at least 2 samples")
    if not between.any():
        raise ValueError("cluster_separation needs at least 2 classes")
    return float(sim[within].mean() - sim[between].mean())
