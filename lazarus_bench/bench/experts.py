"""MoE experts: mlx-lm's gathered ``SwitchGLU`` against the zoo build's dense layer, side by side on one model."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.models.switch_layers import SwitchGLU

from ..experts import DenseSwitchGLU
from ..training.timing import median
from .lens import interleaved_times, speed_ratios

PATHS = {"gathered": SwitchGLU, "dense": DenseSwitchGLU}


def _use(model: nn.Module, cls: type) -> int:
    """Switch every expert layer of ``model`` to ``cls`` in place (same parameters); returns how many."""
    layers = [m for m in model.modules() if isinstance(m, SwitchGLU)]
    for m in layers:
        m.__class__ = cls
    return len(layers)


def measure_experts(model: nn.Module, *, batch: int = 16, seq_len: int = 48, forward_batch: int = 64,
                    forward_len: int = 8, repeats: int = 3, seed: int = 0) -> dict:
    """Seconds per training step (forward + backward of the next-token loss) and per forward on each path, calls
    interleaved ``repeats`` times; ratios are dense / gathered (above 1: gathered is faster). The paths must give
    the same loss (to 1e-5) or nothing is timed; the model is left on mlx-lm's layers."""
    if not _use(model, SwitchGLU):
        raise ValueError("the model has no mlx-lm SwitchGLU expert layers")
    key = mx.random.key(seed)
    train = mx.random.randint(0, 100, (batch, seq_len + 1), key=key)
    fwd = mx.random.randint(0, 100, (forward_batch, forward_len), key=mx.random.split(key)[1])

    def loss(m):
        return nn.losses.cross_entropy(m(train[:, :-1]), train[:, 1:]).mean()

    losses = {}
    for name, cls in PATHS.items():
        _use(model, cls)
        losses[name] = loss(model).item()
    _use(model, SwitchGLU)
    if not np.isclose(losses["dense"], losses["gathered"], rtol=1e-5, atol=1e-6):
        raise AssertionError(f"dense and gathered experts disagree: loss {losses['dense']} vs {losses['gathered']}")
    step = nn.value_and_grad(model, loss)
    work = {"train": lambda: mx.eval(step(model)), "forward": lambda: mx.eval(model(fwd))}
    times = interleaved_times({f"{what} {name}": (lambda cls=cls, fn=fn: (_use(model, cls), fn()))
                               for what, fn in work.items() for name, cls in PATHS.items()}, repeats)
    _use(model, SwitchGLU)
    out: dict = {"batch": batch, "seq_len": seq_len, "forward_batch": forward_batch, "forward_len": forward_len,
                 "repeats": repeats, "loss": losses}
    for what in work:
        ratios = sorted(speed_ratios(times, f"{what} gathered", f"{what} dense"))
        out[what] = {"gathered_s": median(times[f"{what} gathered"]), "dense_s": median(times[f"{what} dense"]),
                     "ratio": median(ratios), "ratios": ratios}
    return out
