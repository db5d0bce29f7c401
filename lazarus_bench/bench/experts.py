"""MoE experts: mlx-lm's gathered ``SwitchGLU`` against the zoo build's dense layer, side by side on one model."""

from __future__ import annotations

import time
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.models.switch_layers import SwitchGLU

from ..experts import DenseSwitchGLU
from ..training.timing import median

PATHS = {"gathered": SwitchGLU, "dense": DenseSwitchGLU}


def _use(model: nn.Module, cls: type) -> int:
    """Switch every expert layer of ``model`` to ``cls`` in place (same parameters); returns how many."""
    layers = [m for m in model.modules() if isinstance(m, SwitchGLU)]
    for m in layers:
        m.__class__ = cls
    return len(layers)


def _seconds(fn: Callable[[], None], calls: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def measure_experts(model: nn.Module, *, batch: int = 16, seq_len: int = 48, forward_batch: int = 64,
                    forward_len: int = 8, repeats: int = 3, calls: int = 3, seed: int = 0) -> dict:
    """Training step (forward + backward of the next-token loss) and forward seconds per call for each path,
    interleaved ``repeats`` times; ratios are dense / gathered (above 1: gathered is faster). Both paths must
    give the same loss (to 1e-5), else the comparison is void and this raises."""
    if not _use(model, SwitchGLU):
        raise ValueError("the model has no mlx-lm SwitchGLU expert layers")
    key = mx.random.key(seed)
    train = mx.random.randint(0, 100, (batch, seq_len + 1), key=key)
    fwd = mx.random.randint(0, 100, (forward_batch, forward_len), key=mx.random.split(key)[1])

    def loss(m):
        return nn.losses.cross_entropy(m(train[:, :-1]), train[:, 1:]).mean()

    step = nn.value_and_grad(model, loss)
    times: dict[str, dict[str, list[float]]] = {name: {"train": [], "forward": []} for name in PATHS}
    losses = {}
    for _ in range(repeats):
        for name, cls in PATHS.items():
            _use(model, cls)
            losses[name] = loss(model).item()
            times[name]["train"].append(_seconds(lambda: mx.eval(step(model)), calls))
            times[name]["forward"].append(_seconds(lambda: mx.eval(model(fwd)), calls))
    _use(model, SwitchGLU)
    if not np.isclose(losses["dense"], losses["gathered"], rtol=1e-5, atol=1e-6):
        raise AssertionError(f"dense and gathered experts disagree: loss {losses['dense']} vs {losses['gathered']}")
    out: dict = {"batch": batch, "seq_len": seq_len, "forward_batch": forward_batch, "forward_len": forward_len,
                 "repeats": repeats, "loss": losses}
    for what in ("train", "forward"):
        ratios = sorted(d / g for d, g in zip(times["dense"][what], times["gathered"][what]))
        out[what] = {"gathered_s": median(times["gathered"][what]), "dense_s": median(times["dense"][what]),
                     "ratio": median(ratios), "ratios": ratios}
    return out
