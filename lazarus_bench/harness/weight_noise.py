"""A planted accuracy loss for graded controls: seeded noise on the block weights, scaled to lose a chosen number of
answer-accuracy points on calibration prompts that the measurement never sees, so a strength is in the units of
the claim's criterion (accuracy points), not of the noise.
"""

from __future__ import annotations

import math
from typing import Sequence

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from ..analysis.generate import answer_accuracy
from .base import ControlUnavailable


class WeightNoise:
    """Seeded Gaussian noise on every matrix of the transformer blocks (LoRA factors kept as they are), each entry
    scaled by its matrix's RMS; setting ``scale`` rewrites the weights (0 restores them exactly)."""

    def __init__(self, handle, seed: Sequence[int]):
        rng = np.random.default_rng(list(seed))
        self._layers = list(handle.layers)
        self._base: list[list[tuple[str, mx.array]]] = []
        self._noise: list[list[mx.array]] = []
        for layer in self._layers:
            mats = [(n, v) for n, v in tree_flatten(layer.parameters()) if v.ndim == 2 and "lora" not in n]
            if any(not mx.issubdtype(v.dtype, mx.floating) for _, v in mats):
                raise ControlUnavailable("weight noise needs floating-point block weights (this model is quantized)")
            self._base.append(mats)
            self._noise.append([mx.array(rng.standard_normal(v.shape, dtype=np.float32))
                                * mx.sqrt(mx.mean(v.astype(mx.float32) ** 2)) for _, v in mats])
        self._scale = 0.0

    @property
    def scale(self) -> float:
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        self._scale = float(value)
        for layer, mats, noise in zip(self._layers, self._base, self._noise):
            layer.update(tree_unflatten([(n, v if value == 0 else (v.astype(mx.float32) + value * z).astype(v.dtype))
                                         for (n, v), z in zip(mats, noise)]))


def plant_accuracy_drop(handle, points: float, texts: Sequence[str], answers: Sequence[int], seed: Sequence[int],
                        *, log10_range: tuple[float, float] = (-3.0, 2.0), steps: int = 10) -> dict:
    """``WeightNoise`` on ``handle`` (in place) at the smallest scale, by bisection in log10 over ``log10_range``,
    that loses ``points`` accuracy points on ``texts`` against the unplanted model; returns the scale and the
    accuracies. Raises ControlUnavailable when even the largest scale loses fewer points (nothing left to lose).
    Ten steps narrow the scale to 0.005 decades (1.1%); each step costs a greedy evaluation of every prompt."""
    before = answer_accuracy(handle, texts, answers).accuracy
    plant = WeightNoise(handle, seed)

    def lost(log10_scale: float) -> float:
        plant.scale = 10.0**log10_scale
        return 100.0 * (before - answer_accuracy(handle, texts, answers).accuracy)

    low, high = log10_range
    if lost(high) < points:
        raise ControlUnavailable(f"noise at {10.0**high:g}x the weights' RMS loses fewer than {points:g} accuracy "
                                 f"points (accuracy before: {100 * before:.1f}%)")
    if lost(low) >= points:
        raise ControlUnavailable(f"noise at {10.0**low:g}x the weights' RMS already loses {points:g} accuracy points")
    for _ in range(steps):
        mid = 0.5 * (low + high)
        if lost(mid) < points:
            low = mid
        else:
            high = mid
    final = lost(high)
    return {"planted_points": points, "noise_scale": plant.scale if math.isfinite(plant.scale) else 0.0,
            "calibration_before": before, "calibration_lost": final, "calibration_prompts": len(texts)}
