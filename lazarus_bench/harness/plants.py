"""Planted lens effects for graded controls: a class's word written into the residual stream at one block.

Block 0 reads which class marker token (the operator symbol) each prompt holds from its own input, the embedding
output; the chosen block then adds ``scale`` x that class's direction at every position. The scale is set by
bisection so that the lens at that block gives the class word a chosen mean probability on calibration prompts
that the measurement never sees, so a strength is in the units of the claim's criterion.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import mlx.core as mx
import numpy as np

from .. import prompts
from ..analysis.lens import logit_lens, target_spellings
from ..errors import LazarusError
from .base import ControlUnavailable


class Wrapped:
    """Stands in for one block: runs it, then ``hook(input, output) -> output``."""

    def __init__(self, layer, hook: Callable[[mx.array, mx.array], mx.array]):
        object.__setattr__(self, "_layer", layer)
        object.__setattr__(self, "_hook", hook)

    def __getattr__(self, name: str):
        return getattr(self._layer, name)

    def __call__(self, x: mx.array, *args, **kwargs):
        out = self._layer(x, *args, **kwargs)
        h = out[0] if isinstance(out, tuple) else out
        h = self._hook(x, h)
        return (h, *out[1:]) if isinstance(out, tuple) else h


class ClassPlant:
    """A class direction written at ``block`` into every prompt that holds the class's marker token; ``scale`` is
    settable (0 removes the plant)."""

    def __init__(self, handle, markers: Sequence[int], directions: np.ndarray, block: int):
        keys = handle.forward([[int(m)] for m in markers]).hidden[0][:, 0].astype(mx.float32)
        self._keys = keys / mx.linalg.norm(keys, axis=-1, keepdims=True)
        self._directions = mx.array(np.asarray(directions, dtype=np.float32))
        self._seen: mx.array | None = None
        self.scale = 0.0
        handle.layers[0] = Wrapped(handle.layers[0], self._read)
        handle.layers[block] = Wrapped(handle.layers[block], self._write)

    def _read(self, x: mx.array, h: mx.array) -> mx.array:
        unit = x.astype(mx.float32) / mx.linalg.norm(x.astype(mx.float32), axis=-1, keepdims=True)
        self._seen = mx.max((unit @ self._keys.T > 0.999).astype(mx.float32), axis=1)  # (batch, classes)
        return h

    def _write(self, x: mx.array, h: mx.array) -> mx.array:
        if self._seen is None:
            raise LazarusError("class plant: block 0 did not run before the planted block")
        written = (self._seen @ self._directions) * self.scale
        return h + written[:, None, :].astype(h.dtype)


def class_markers(handle, prompt_sets: Sequence, labels: Sequence[str]) -> list[int]:
    """Per label, the one token every prompt of that label holds and no prompt of another label does (the operator
    symbol in '7 * 8 = ')."""
    tokens: dict[str, list[set[int]]] = {label: [] for label in labels}
    for ps in prompt_sets:
        for item in ps:
            tokens[item.label].append(set(handle.encode(item.text)))
    markers = []
    for label in labels:
        common = set.intersection(*tokens[label]) - set().union(*(t for o in labels if o != label for t in tokens[o]))
        if len(common) != 1:
            raise ControlUnavailable(f"no single marker token for class '{label}' ({len(common)} candidates)")
        markers.append(common.pop())
    return markers


def token_directions(handle, ids: Sequence[int]) -> np.ndarray:
    """Per token, the unit residual direction that raises its lens logit most: the unembedding row times the final
    norm's gain."""
    rows = np.array(handle.unembedding(), dtype=np.float32)[list(ids)] * np.array(handle.final_norm_gain(),
                                                                                 dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def strongest_directions(handle, ids: Sequence[int], *, steps: int = 500) -> np.ndarray:
    """Per token, a unit residual direction whose lens (final norm, then unembedding) gives that token a high
    probability: normalised-gradient ascent on its lens log-probability from the centred row over the gain. A plant
    saturates at this probability at large scale (the final norm removes the scale), so strengths up to ~0.9 can be
    planted where the unembedding row itself tops out near 0.1."""
    W = np.array(handle.unembedding(), dtype=np.float64)
    g = np.array(handle.final_norm_gain(), dtype=np.float64)
    rows = []
    for t in ids:
        d = (W[t] - W.mean(axis=0)) / g
        for _ in range(steps):
            n = np.sqrt(np.mean(d**2))
            unit = d / n
            z = W @ (g * unit)
            p = np.exp(z - z.max())
            p /= p.sum()
            grad = g * (W[t] - p @ W)
            grad = (grad - unit * np.mean(grad * unit)) / n
            d = d + 0.05 * np.linalg.norm(d) * grad / np.linalg.norm(grad)
        rows.append(d / np.linalg.norm(d))
    return np.stack(rows).astype(np.float32)


def word_directions(handle, words: Sequence[str]) -> np.ndarray:
    """Per word, ``token_directions`` of its with-space first token (the other spelling where it has none)."""
    ids = []
    for word in words:
        spellings = target_spellings(handle, word)
        ids.append((spellings.get("with_space") or next(iter(spellings.values())))[0])
    return token_directions(handle, ids)


def calibrate_scale(plant: ClassPlant, mean_prob: Callable[[], float], target: float, *, steps: int = 24) -> float:
    """The plant scale (bisection in log10 between 1e-4 and 1e5, to 5e-7 of a decade) at which ``mean_prob()``
    reaches ``target``; raises ControlUnavailable when even the largest scale stays below it, or the smallest is
    already above it (the model's own level: that strength cannot be planted)."""
    low, high = -4.0, 5.0
    plant.scale = 10.0**high
    if mean_prob() < target:
        raise ControlUnavailable(f"the planted direction cannot raise the word's probability to {target:.3g}")
    plant.scale = 10.0**low
    if mean_prob() >= target:
        raise ControlUnavailable(f"the word's probability is already >= {target:.3g} without a plant")
    for _ in range(steps):
        mid = 0.5 * (low + high)
        plant.scale = 10.0**mid
        low, high = (mid, high) if mean_prob() < target else (low, mid)
    plant.scale = 10.0**high
    return plant.scale if math.isfinite(plant.scale) else 0.0


def plant_op_words(handle, block: int, target: float, calib, marker_sets: Sequence = (),
                   reduce: Callable[[list[float]], float] = np.mean) -> ClassPlant:
    """Each prompt's operation word written at ``block`` of ``handle`` (in place) with the scale that gives its lens
    probability there, reduced over ``calib`` (prompts the measurement never sees) by ``reduce`` (the mean, or the
    maximum where the criterion reads one), the value ``target``; the operator symbols are found in ``calib`` and
    ``marker_sets``, and a prompt without one gets nothing."""
    words = list(prompts.operation_words())
    plant = ClassPlant(handle, class_markers(handle, [calib, *marker_sets], words), word_directions(handle, words),
                       block)
    texts, labels = calib.texts(), calib.labels()

    def mean_prob() -> float:
        results = logit_lens(handle, texts, words, layers=[block], top_k=1)
        return float(reduce([r.targets[label].full_prob_sum[0] for r, label in zip(results, labels)]))

    calibrate_scale(plant, mean_prob, target)
    return plant
