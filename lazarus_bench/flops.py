"""Matmul FLOPs the suite did, counted where its models run, for BENCH.md's suite efficiency.

Each forward through a model from :func:`counted` adds ``2 N + 4 L C d_attn`` per token (PaLM appendix B: N =
weights a token meets in matmuls, experts at k of E; C = keys attended, masked ones included as MLX computes
them); a forward of the model a training step differentiates adds its backward too, ``2 N + 2 N_t + 8 L C d_attn``
(N_t = trainable matmul weights; the backward is counted through every block: an upper bound for adapters).
Counts describe one process's work: a cached result loaded instead of recomputed costs nothing.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

_TOTALS = {"forward_tokens": 0, "train_tokens": 0, "flops": 0.0}
_TRAINING: dict[int, float] = {}  # id(model) -> its trainable matmul weights, while a training step runs
_SUBCLASSES: dict[type, type] = {}


def totals() -> dict:
    """A copy of this process's running counts."""
    return dict(_TOTALS)


def since(start: dict) -> dict:
    """The counts added after ``start`` (a :func:`totals` snapshot)."""
    now = totals()
    return {k: now[k] - start[k] for k in now}


def add(counts: dict) -> None:
    """Add counts measured elsewhere (a compiled step's replay repeats the counts of its trace)."""
    for key, value in counts.items():
        _TOTALS[key] += value


def matmul_weights(model: nn.Module, trainable: bool = False) -> float:
    """Weights a token meets in the model's matmuls (2-D and stacked-expert tensors; experts at ``k / E``, a tied
    embedding once, as the unembedding; quantized weights unpacked), or only the trainable ones."""
    params = model.trainable_parameters() if trainable else model.parameters()
    k = getattr(getattr(model, "args", None), "num_experts_per_tok", None)
    modules = model.named_modules()
    bits = {f"{name}.weight": getattr(m, "bits", 32) for name, m in modules}
    head = any(name.endswith("lm_head") for name, _ in modules)
    total = 0.0
    for name, value in tree_flatten(params):
        if value.ndim < 2 or (head and "embed_tokens" in name) or name.endswith((".scales", ".biases")):
            continue
        size = float(value.size) * (32 / bits.get(name, 32) if value.dtype == mx.uint32 else 1)
        total += size * (k / value.shape[0] if value.ndim == 3 and k else 1)
    return total


def _measure(model: nn.Module) -> tuple[float, int, int]:
    """(matmul weights, blocks, query width) of the model, stored on it; the attention term is 0 when its args do
    not give the blocks and heads."""
    args = getattr(model, "args", None)
    layers, heads = getattr(args, "num_hidden_layers", 0), getattr(args, "num_attention_heads", 0)
    head_dim = getattr(args, "head_dim", None) or (getattr(args, "hidden_size", 0) // heads if heads else 0)
    shape = model.__dict__["_lazarus_shape"] = (matmul_weights(model), int(layers or 0), int(heads * head_dim))
    return shape


def _count(model: nn.Module, inputs: Any, cache: Any) -> None:
    shape = getattr(inputs, "shape", ())
    if len(shape) < 2:
        return
    tokens = int(shape[0]) * int(shape[1])
    offset = getattr(cache[0], "offset", 0) if cache else 0
    offset = int(mx.max(offset).item()) if isinstance(offset, mx.array) else int(offset or 0)
    n, layers, width = model.__dict__.get("_lazarus_shape") or _measure(model)
    attention = 4.0 * layers * (offset + int(shape[1])) * width
    flops = tokens * (2 * n + attention)
    trainable = _TRAINING.get(id(model))
    if trainable is None:
        _TOTALS["forward_tokens"] += tokens
    else:
        _TOTALS["train_tokens"] += tokens
        flops += tokens * (2 * n + 2 * trainable + 2 * attention)
    _TOTALS["flops"] += flops


def counted(model: nn.Module) -> nn.Module:
    """The model, its class swapped in place for a subclass whose ``__call__`` counts FLOPs first (parameters,
    names and behaviour unchanged)."""
    cls = type(model)
    if cls in _SUBCLASSES.values():
        return model
    if cls not in _SUBCLASSES:
        def __call__(self, inputs, *args, **kwargs):
            _count(self, inputs, kwargs.get("cache", args[0] if args else None))
            return cls.__call__(self, inputs, *args, **kwargs)

        _SUBCLASSES[cls] = type(cls.__name__, (cls,), {"__call__": __call__, "__module__": cls.__module__})
    model.__class__ = _SUBCLASSES[cls]
    return model


class Training:
    """``with`` it, the model's forwards are a training step's and their backward is counted too; the weights are
    counted once, when it is made (after adapters are added)."""

    def __init__(self, model: nn.Module):
        _measure(model)  # adapters added since the model's last count
        self.key, self.trainable = id(model), matmul_weights(model, trainable=True)

    def __enter__(self) -> "Training":
        _TRAINING[self.key] = self.trainable
        return self

    def __exit__(self, *exc: Any) -> None:
        _TRAINING.pop(self.key, None)
