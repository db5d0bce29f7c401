"""Mixture-of-experts layers with few experts, computed densely on CPU: the zoo build's MoE layers.

Every expert runs on every token as one GEMM per projection and the router's outputs are kept: the same
function and gradients as mlx-lm's ``SwitchGLU`` (the unchosen outputs get none), at ``num_experts / k`` times
the FLOPs. The shipped zoo:moe was trained this way, so ``zoo build`` keeps it to reproduce those weights bit
for bit. Everything else (``models.load_model``: claims, lens, training) runs mlx-lm's gathered experts, the
faster path at the zoo's expert size (BENCH.md ratio (e)).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.switch_layers import SwitchGLU, SwitchLinear
from mlx_lm.tuner.lora import LoRASwitchLinear

MAX_FLOP_RATIO = 4  # dense only while it costs at most this many times the routed FLOPs


class DenseSwitchGLU(SwitchGLU):
    """``SwitchGLU`` with the same parameters, every expert applied to every token when that costs at most
    ``MAX_FLOP_RATIO`` times the routed computation and the experts are plain ``SwitchLinear`` or mlx-lm's
    LoRA on them without dropout (else mlx-lm's gathered path: quantized experts, LoRA dropout)."""

    def runs_densely(self, k: int) -> bool:
        """Whether ``k`` experts per token take the dense path."""
        projections = (self.up_proj, self.gate_proj, self.down_proj)
        return all(map(_dense_ready, projections)) and _plain(self.up_proj)["weight"].shape[0] <= MAX_FLOP_RATIO * k

    def __call__(self, x: mx.array, indices: mx.array) -> mx.array:
        k = indices.shape[-1]
        if not self.runs_densely(k):
            return super().__call__(x, indices)
        flat = x.reshape(1, -1, x.shape[-1])
        hidden = self.activation(_every_expert(self.up_proj, flat), _every_expert(self.gate_proj, flat))
        out = _every_expert(self.down_proj, hidden).swapaxes(0, 1)  # (tokens, experts, dims)
        chosen = mx.stop_gradient(indices).reshape(-1, k, 1)
        return mx.take_along_axis(out, chosen, axis=1).reshape(*x.shape[:-1], k, out.shape[-1])


def _plain(linear: nn.Module) -> nn.Module:
    """The ``SwitchLinear`` itself, or the one under a LoRA adapter."""
    return linear.linear if type(linear) is LoRASwitchLinear else linear


def _dense_ready(linear: nn.Module) -> bool:
    """A plain ``SwitchLinear``, or mlx-lm's LoRA on one with no dropout (dense dropout would draw other masks)."""
    if type(linear) is LoRASwitchLinear:
        return type(linear.linear) is SwitchLinear and linear.dropout._p_1 == 1.0
    return type(linear) is SwitchLinear


def _every_expert(linear: nn.Module, x: mx.array) -> mx.array:
    """(1 or experts, tokens, in) -> (experts, tokens, out) for a ``SwitchLinear`` or its LoRA adapter."""
    if type(linear) is LoRASwitchLinear:
        z = (x @ linear["lora_a"].swapaxes(-1, -2)) @ linear["lora_b"].swapaxes(-1, -2)
        return _every_expert(linear.linear, x) + (linear.scale * z).astype(x.dtype)
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
