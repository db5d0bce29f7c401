"""Mixture-of-experts layers with few experts, computed densely on CPU.

mlx-lm's ``SwitchGLU`` multiplies each token by its experts with ``gather_mm``, which on CPU is one small
matrix-vector product per token and expert. With few experts (the zoo's MoE: 4, 2 per token) it is much
faster to run every expert on every token as one GEMM per projection and keep the outputs the router chose:
the same function and gradients (the unchosen outputs get none), at ``num_experts / k`` times the FLOPs.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.switch_layers import SwitchGLU, SwitchLinear

MAX_FLOP_RATIO = 4  # dense only while it costs at most this many times the routed FLOPs


class DenseSwitchGLU(SwitchGLU):
    """``SwitchGLU`` with the same parameters, every expert applied to every token when that costs at most
    ``MAX_FLOP_RATIO`` times the routed computation and the experts are plain ``SwitchLinear`` (else mlx-lm's
    gathered path: LoRA adapters or quantized experts)."""

    def __call__(self, x: mx.array, indices: mx.array) -> mx.array:
        k = indices.shape[-1]
        projections = (self.up_proj, self.gate_proj, self.down_proj)
        if (any(type(p) is not SwitchLinear for p in projections)  # LoRA on the experts, quantized experts
                or self.up_proj["weight"].shape[0] > MAX_FLOP_RATIO * k):
            return super().__call__(x, indices)
        flat = x.reshape(1, -1, x.shape[-1])
        hidden = self.activation(_every_expert(self.up_proj, flat), _every_expert(self.gate_proj, flat))
        out = _every_expert(self.down_proj, hidden).swapaxes(0, 1)  # (tokens, experts, dims)
        chosen = mx.stop_gradient(indices).reshape(-1, k, 1)
        return mx.take_along_axis(out, chosen, axis=1).reshape(*x.shape[:-1], k, out.shape[-1])


def _every_expert(linear: nn.Module, x: mx.array) -> mx.array:
    """(1 or experts, tokens, in) -> (experts, tokens, out) for a ``SwitchLinear``."""
    y = x @ linear["weight"].swapaxes(-1, -2)
    return y + linear["bias"][:, None, :] if "bias" in linear else y


def densify_experts(model: nn.Module) -> int:
    """On CPU, switch every mlx-lm ``SwitchGLU`` in ``model`` to :class:`DenseSwitchGLU` in place (parameters
    and their names unchanged; on a GPU ``gather_mm`` is the fast path); returns how many were switched."""
    if mx.default_device().type != mx.cpu:
        return 0
    switched = 0
    for module in model.modules():
        if type(module) is SwitchGLU:
            module.__class__ = DenseSwitchGLU
            switched += 1
    return switched
