"""The probe (standardise, then L2 logistic regression by L-BFGS) without scikit-learn's per-call overhead.

Same objective, start, optimizer and stopping rule as ``probes.make_classifier`` (scikit-learn's lbfgs path) on
float64 features, so a permutation null of thousands of fits costs half the time; tests check its predictions
against sklearn's.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

TOL = 1e-4  # LogisticRegression's default tol: the projected-gradient stopping rule of its lbfgs call


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """StandardScaler fitted on ``train`` in float64: population std, near-constant features (Chan-Golub-LeVeque
    bound) left unscaled."""
    train, test = np.asarray(train, dtype=np.float64), np.asarray(test, dtype=np.float64)
    n, eps = train.shape[0], np.finfo(np.float64).eps
    mean, var = train.mean(axis=0), train.var(axis=0)
    scale = np.sqrt(var)
    scale[var <= n * eps * var + (n * mean * eps) ** 2] = 1.0
    return (train - mean) / scale, (test - mean) / scale


def _binary_loss(coef: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float):
    w, b = coef[:-1], coef[-1]
    raw = X @ w + b
    loss = np.logaddexp(0.0, raw) - y * raw
    residual = (1.0 / (1.0 + np.exp(-raw)) - y) / X.shape[0]
    grad = np.empty_like(coef)
    grad[:-1] = X.T @ residual + l2 * w
    grad[-1] = residual.sum()
    return float(loss.sum() / X.shape[0]) + 0.5 * l2 * float(w @ w), grad


def _multinomial_loss(coef: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float, k: int):
    full = coef.reshape((k, -1), order="F")
    w, b = full[:, :-1], full[:, -1]
    raw = X @ w.T + b
    top = raw.max(axis=1, keepdims=True)
    exp = np.exp(raw - top)
    total = exp.sum(axis=1, keepdims=True)
    loss = np.log(total[:, 0]) + top[:, 0] - raw[np.arange(raw.shape[0]), y]
    residual = exp / total
    residual[np.arange(raw.shape[0]), y] -= 1.0
    residual /= X.shape[0]
    grad = np.empty((k, X.shape[1] + 1), order="F")
    grad[:, :-1] = residual.T @ X + l2 * w
    grad[:, -1] = residual.sum(axis=0)
    return float(loss.sum() / X.shape[0]) + 0.5 * l2 * float(np.sum(w * w)), grad.ravel(order="F")


class Probe:
    """A fitted probe: ``classes`` (sorted), weights ``w`` (k or 1, d) and intercepts ``b``."""

    def __init__(self, X: np.ndarray, y: np.ndarray, *, C: float, max_iter: int):
        self.classes, codes = np.unique(y, return_inverse=True)
        k, d = self.classes.size, X.shape[1]
        if k < 2:
            raise ValueError(f"a probe needs at least 2 classes, got {k}")
        l2 = 1.0 / (C * X.shape[0])
        if k == 2:
            target = codes.astype(np.float64)
            fun, x0, args = _binary_loss, np.zeros(d + 1), (X, target, l2)
        else:
            fun, x0, args = _multinomial_loss, np.zeros(k * (d + 1)), (X, codes, l2, k)
        result = optimize.minimize(fun, x0, method="L-BFGS-B", jac=True, args=args,
                                   options={"maxiter": max_iter, "maxls": 50, "gtol": TOL,
                                            "ftol": 64 * np.finfo(float).eps})
        full = result.x.reshape((1, -1)) if k == 2 else result.x.reshape((k, -1), order="F")
        self.w, self.b = full[:, :-1], full[:, -1]

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = X @ self.w.T + self.b
        if self.classes.size == 2:
            return self.classes[(scores[:, 0] > 0).astype(int)]
        return self.classes[np.argmax(scores, axis=1)]


def fit_predict(train_X: np.ndarray, train_y: np.ndarray, test_X: np.ndarray, *, C: float,
                max_iter: int) -> np.ndarray:
    """Standardise on the training rows, fit the probe (float64 throughout), predict the test rows."""
    train_s, test_s = standardise(train_X, test_X)
    return Probe(train_s, np.asarray(train_y), C=C, max_iter=max_iter).predict(test_s)


def cv_accuracy(X: np.ndarray, y: np.ndarray, cv, *, C: float, max_iter: int) -> float:
    """Mean fold accuracy over ``cv.split(X, y)``: ``cross_val_score(make_classifier(...), X, y, cv=cv).mean()``."""
    scores = [np.mean(fit_predict(X[train], y[train], X[test], C=C, max_iter=max_iter) == y[test])
              for train, test in cv.split(X, y)]
    return float(np.mean(scores))
