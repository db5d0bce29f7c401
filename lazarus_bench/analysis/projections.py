"""Vocabulary projections: cosine of a direction (or router rows) with every unembedding row, with a random null.

Pure numpy, chunked over the vocabulary so a 128k x 2048 unembedding is never copied whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import LazarusError

VOCAB_CHUNK = 8192
PROBE_CHUNK = 512


def _dtype_for(array: np.ndarray) -> np.dtype:
    """float64 stays float64; anything else is computed in float32."""
    return np.dtype(np.float64) if array.dtype == np.float64 else np.dtype(np.float32)


def _check_gain(gain: Any, d: int, name: str) -> np.ndarray | None:
    """Validate an optional elementwise (d,) gain vector."""
    if gain is None:
        return None
    g = np.asarray(gain)
    if g.shape != (d,):
        raise ValueError(f"{name} must have shape ({d},), got {g.shape}")
    return g


def _check_unembedding(unembedding: Any, d: int | None = None) -> np.ndarray:
    """Validate a (V, d) unembedding matrix (arrays and memmaps are used as they are)."""
    W = unembedding if isinstance(unembedding, np.ndarray) else np.asarray(unembedding)
    if W.ndim != 2:
        raise ValueError(f"unembedding must be 2-D (vocab, d_model), got shape {W.shape}")
    if d is not None and W.shape[1] != d:
        raise ValueError(f"unembedding has d_model {W.shape[1]} but the direction(s) have {d}")
    return W


def normalize_rows(matrix: Any) -> np.ndarray:
    """Rows scaled to unit L2 norm; zero rows stay zero."""
    M = np.asarray(matrix)
    M = M.astype(_dtype_for(M), copy=False)
    norms = np.linalg.norm(M, axis=-1, keepdims=True)
    return np.divide(M, norms, out=np.zeros_like(M), where=norms > 0)


def _row_norms(
    W: np.ndarray, gain: np.ndarray | None, dtype: np.dtype, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """A vocab chunk of W in ``dtype`` and the L2 norms of its gain-scaled rows."""
    chunk = np.asarray(W[start:stop], dtype=dtype)
    if gain is None:
        sq = np.einsum("ij,ij->i", chunk, chunk)
    else:
        sq = (chunk * chunk) @ (gain * gain).astype(dtype)
    return chunk, np.sqrt(sq)


def cosine_scores(direction: Any, unembedding: Any, gain: Any = None) -> np.ndarray:
    """cos(g * w, W_U[v]) for every vocab row v; zero rows (or a zero direction) score 0 rather than NaN."""
    w = np.asarray(direction)
    if w.ndim != 1:
        raise ValueError(f"direction must be 1-D, got shape {w.shape}")
    W = _check_unembedding(unembedding, w.shape[0])
    dtype = _dtype_for(W)
    g = _check_gain(gain, w.shape[0], "gain")
    w = w.astype(dtype) if g is None else (w * g).astype(dtype)
    w_norm = float(np.linalg.norm(w))
    out = np.zeros(W.shape[0], dtype=dtype)
    if w_norm == 0.0:
        return out
    for start in range(0, W.shape[0], VOCAB_CHUNK):
        stop = min(start + VOCAB_CHUNK, W.shape[0])
        chunk, norms = _row_norms(W, None, dtype, start, stop)
        dots = chunk @ w
        np.divide(dots, norms * w_norm, out=out[start:stop], where=norms > 0)
    return np.clip(out, -1.0, 1.0, out=out)


def ranks_of(scores: Any, token_ids: Any) -> dict[int, int]:
    """1-based rank of each token id by descending score over all rows (ties: 1 + number strictly greater)."""
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    ranks: dict[int, int] = {}
    for t in np.atleast_1d(np.asarray(token_ids)).tolist():
        t = int(t)
        if not 0 <= t < s.shape[0]:
            raise ValueError(f"token id {t} out of range for {s.shape[0]} scores")
        ranks[t] = int(np.count_nonzero(s > s[t])) + 1
    return ranks


def top_tokens(scores: Any, k: int) -> list[tuple[int, float]]:
    """The k highest-scoring token ids with their scores, descending (ties broken by lower id)."""
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    k = min(int(k), s.shape[0])
    if k <= 0:
        return []
    kth = np.partition(s, s.shape[0] - k)[s.shape[0] - k]
    candidates = np.flatnonzero(s >= kth)
    order = np.lexsort((candidates, -s[candidates]))[:k]
    return [(int(i), float(s[i])) for i in candidates[order]]


def router_similarity(
    router_weight: Any,
    unembedding: Any,
    router_gain: Any = None,
    unembed_gain: Any = None,
) -> np.ndarray:
    """S = normalize_rows(R * g_r) @ normalize_rows(W_U * g_f).T, shape (E, V), float32, computed in vocab chunks."""
    R = np.asarray(router_weight)
    if R.ndim != 2:
        raise ValueError(f"router_weight must be 2-D (experts, d_model), got shape {R.shape}")
    d = R.shape[1]
    W = _check_unembedding(unembedding, d)
    g_r = _check_gain(router_gain, d, "router_gain")
    g_f = _check_gain(unembed_gain, d, "unembed_gain")
    probes = normalize_rows(R if g_r is None else R * g_r).astype(np.float32)
    S, _ = _max_cosines(probes, W, g_f, keep_full=True)
    return S


def _max_cosines(
    probes: np.ndarray, W: np.ndarray, g_f: np.ndarray | None, *, keep_full: bool
) -> tuple[np.ndarray | None, np.ndarray]:
    """Cosines of unit-norm probe rows with rows of W * g_f; returns (full matrix or None, per-probe max)."""
    dtype = np.dtype(np.float32)
    if g_f is not None:
        probes = (probes * g_f).astype(dtype)
    V = W.shape[0]
    full = np.zeros((probes.shape[0], V), dtype=dtype) if keep_full else None
    best = np.full(probes.shape[0], -np.inf, dtype=dtype)
    for start in range(0, V, VOCAB_CHUNK):
        stop = min(start + VOCAB_CHUNK, V)
        chunk, norms = _row_norms(W, g_f, dtype, start, stop)
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        for p0 in range(0, probes.shape[0], PROBE_CHUNK):
            p1 = min(p0 + PROBE_CHUNK, probes.shape[0])
            block = probes[p0:p1] @ chunk.T
            block *= inv
            np.clip(block, -1.0, 1.0, out=block)
            np.maximum(best[p0:p1], block.max(axis=1), out=best[p0:p1])
            if full is not None:
                full[p0:p1, start:stop] = block
    return full, best


@dataclass
class ExpertAlignment:
    """One expert's router row against the vocabulary: top tokens, max cosine, empirical p-value vs the null."""

    expert: int
    top_token_ids: list[int]
    top_cosines: list[float]
    max_cosine: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable plain-Python view."""
        return {
            "expert": int(self.expert),
            "top_token_ids": [int(t) for t in self.top_token_ids],
            "top_cosines": [float(c) for c in self.top_cosines],
            "max_cosine": float(self.max_cosine),
            "p_value": float(self.p_value),
        }


@dataclass
class NullSummary:
    """Max-over-vocabulary cosine of random Gaussian directions: the chance level for a router row."""

    n: int
    seed: int
    mean: float
    std: float
    p95: float
    p99: float
    values: list[float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable plain-Python view."""
        return {
            "n": int(self.n),
            "seed": int(self.seed),
            "mean": float(self.mean),
            "std": float(self.std),
            "p95": float(self.p95),
            "p99": float(self.p99),
            "values": [float(v) for v in self.values],
        }


@dataclass
class RouterAlignment:
    """Router-row vs vocabulary alignment for every expert, with the random-direction null."""

    vocab_size: int
    d_model: int
    top_k: int
    experts: list[ExpertAlignment]
    null: NullSummary

    @property
    def max_cosines(self) -> np.ndarray:
        """Per-expert max cosine as an array."""
        return np.asarray([e.max_cosine for e in self.experts], dtype=np.float64)

    @property
    def p_values(self) -> np.ndarray:
        """Per-expert empirical p-values as an array."""
        return np.asarray([e.p_value for e in self.experts], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable plain-Python view."""
        return {
            "n_experts": len(self.experts),
            "vocab_size": int(self.vocab_size),
            "d_model": int(self.d_model),
            "top_k": int(self.top_k),
            "experts": [e.to_dict() for e in self.experts],
            "null": self.null.to_dict(),
        }


def router_vocab_alignment(
    router_weight: Any,
    unembedding: Any,
    router_gain: Any = None,
    unembed_gain: Any = None,
    *,
    top_k: int = 20,
    n_null: int = 1000,
    seed: int = 0,
) -> RouterAlignment:
    """Compare router rows (R * g_r) with unembedding rows (W_U * g_f) by cosine, against random directions.

    The null draws ``n_null`` standard Gaussian d-vectors (numpy Generator seeded with ``seed``) and takes each one's
    max cosine over the same normalised W_U * g_f; p = (1 + #null >= expert max) / (n_null + 1).
    """
    if n_null < 1:
        raise ValueError(f"n_null must be at least 1, got {n_null}")
    S = router_similarity(router_weight, unembedding, router_gain, unembed_gain)
    W = _check_unembedding(unembedding)
    if top_k > W.shape[0]:
        raise LazarusError(f"top_k = {top_k} exceeds the vocabulary of {W.shape[0]:,} tokens")
    d = W.shape[1]
    g_f = _check_gain(unembed_gain, d, "unembed_gain")
    rng = np.random.default_rng(seed)
    Z = normalize_rows(rng.standard_normal((n_null, d), dtype=np.float32))
    _, null = _max_cosines(Z, W, g_f, keep_full=False)
    null = null.astype(np.float64)

    experts = []
    for e, row in enumerate(S):
        top = top_tokens(row, top_k)
        max_cos = float(row.max()) if row.size else float("nan")
        p_value = (1 + int(np.count_nonzero(null >= max_cos))) / (n_null + 1)
        experts.append(
            ExpertAlignment(
                expert=e,
                top_token_ids=[t for t, _ in top],
                top_cosines=[c for _, c in top],
                max_cosine=max_cos,
                p_value=p_value,
            )
        )
    p95, p99 = np.percentile(null, [95, 99])
    return RouterAlignment(
        vocab_size=int(W.shape[0]),
        d_model=int(d),
        top_k=int(top_k),
        experts=experts,
        null=NullSummary(
            n=int(n_null),
            seed=int(seed),
            mean=float(null.mean()),
            std=float(np.std(null)),
            p95=float(p95),
            p99=float(p99),
            values=null.tolist(),
        ),
    )
