"""How high can the logit lens put one token at all? A certified upper bound from the weights alone.

The lens is the final norm, then the unembedding: whatever the residual, the norm maps it onto (or, with its epsilon,
inside) the ball of unit RMS, so a token's lens probability is at most the maximum of p_t(u) = softmax(s W (g*u + b))_t
over that ball. log p_t is concave in u (a linear term minus a log-sum-exp), so the maximum over the ball is a convex
problem: accelerated projected gradient ascent finds it, and the Frank-Wolfe gap turns the final iterate into a bound
that holds however well the ascent converged. A claim whose threshold lies above this bound cannot be met by any
training of the layers below the norm: NOT TESTABLE, never REFUTED.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import mlx.core as mx
import numpy as np

from ..models import ModelHandle


@dataclass(frozen=True)
class Ceiling:
    """One token's lens probability: ``reached`` by a residual the ascent found, ``bound`` that no residual exceeds."""

    token: int
    reached: float
    bound: float


def lens_map(handle: ModelHandle) -> tuple[np.ndarray, np.ndarray] | None:
    """(A, c) in float64 with lens logits = A u + c for the unit-RMS normed direction u; None under logit
    soft-capping, where the logits are not affine in u and no bound is certified."""
    if handle.softcap:
        return None
    W = np.array(handle.unembedding(), dtype=np.float64)
    g = np.array(handle.final_norm_gain(), dtype=np.float64)
    offset = np.array(handle.final_norm(mx.zeros((1, W.shape[1]), dtype=mx.float32))[0].astype(mx.float32),
                      dtype=np.float64)
    scale = 1.0 / float(handle.logits_divisor or 1.0) * float(handle.logits_multiplier or 1.0)
    return scale * W * g[None, :], scale * (W @ offset)


def _log_prob_and_grad(A: np.ndarray, c: np.ndarray, t: int, u: np.ndarray) -> tuple[float, np.ndarray]:
    z = A @ u + c
    top = z.max()
    p = np.exp(z - top)
    total = p.sum()
    p /= total
    return float(z[t] - top - math.log(total)), A[t] - p @ A


def smoothness(A: np.ndarray) -> float:
    """L = ||A||_2^2 / 2: a bound on the Hessian of log-sum-exp(A u + c) in u, so 1/L is a safe ascent step."""
    return 0.5 * np.linalg.norm(A, ord=2) ** 2


def token_ceiling(A: np.ndarray, c: np.ndarray, t: int, *, tol: float = 1e-3, max_steps: int = 50_000,
                  lipschitz: float | None = None) -> Ceiling:
    """Maximise log p_t over the ball ||u|| <= sqrt(D) (unit RMS) by Nesterov-accelerated projected gradient ascent
    with step 1/L (L = ||A||^2 / 2 bounds the log-sum-exp Hessian) until the Frank-Wolfe bound is within ``tol`` of
    the probability reached (checked every 100 steps); ``reached`` is read on the sphere (a realisable normed state).
    ``lipschitz`` is L when the caller already has it (it depends on A alone)."""
    radius = math.sqrt(A.shape[1])
    lipschitz = lipschitz if lipschitz is not None else smoothness(A)

    def project(v: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(v)
        return v if norm <= radius else v * (radius / norm)

    def bound(u: np.ndarray) -> tuple[float, float]:
        value, grad = _log_prob_and_grad(A, c, t, u)
        gap = max(radius * np.linalg.norm(grad) - float(grad @ u), 0.0)
        return math.exp(value), min(1.0, math.exp(value + gap))

    start = A[t] - A.mean(axis=0)
    u = start * (radius / max(np.linalg.norm(start), 1e-300))
    y, momentum = u.copy(), 1.0
    for step in range(1, max_steps + 1):
        _, grad = _log_prob_and_grad(A, c, t, y)
        nxt = project(y + grad / lipschitz)
        following = (1.0 + math.sqrt(1.0 + 4.0 * momentum**2)) / 2.0
        y = nxt + ((momentum - 1.0) / following) * (nxt - u)
        u, momentum = nxt, following
        if step % 100 == 0:
            value, upper = bound(u)
            if upper - value <= tol:
                break
    _, upper = bound(u)
    on_sphere = u * (radius / max(np.linalg.norm(u), 1e-300))
    return Ceiling(token=t, reached=math.exp(_log_prob_and_grad(A, c, t, on_sphere)[0]), bound=upper)


def lens_ceilings(handle: ModelHandle, ids: Sequence[int], *, tol: float = 1e-3) -> dict[int, Ceiling] | None:
    """``token_ceiling`` of each distinct token id; None where no bound is certified (soft-capped logits)."""
    affine = lens_map(handle)
    if affine is None:
        return None
    A, c = affine
    lipschitz = smoothness(A)
    return {t: token_ceiling(A, c, t, tol=tol, lipschitz=lipschitz) for t in dict.fromkeys(int(i) for i in ids)}
