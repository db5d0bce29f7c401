"""LoRA through mlx-lm's own tuner layers, saved and reloaded in mlx-lm's adapter format, and fused."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from ..io import write_safetensors, write_text

ADAPTER_WEIGHTS = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class LoraSpec:
    """Which linear layers get LoRA and how: mlx-lm's ``lora_parameters`` (keys None = every linear)."""

    rank: int = 8
    scale: float = 20.0
    dropout: float = 0.0
    keys: tuple[str, ...] | None = None
    num_layers: int | None = None

    def mlx_lm_config(self, n_layers: int) -> dict:
        params = {"rank": self.rank, "scale": self.scale, "dropout": self.dropout}
        if self.keys is not None:
            params["keys"] = list(self.keys)
        return {"fine_tune_type": "lora", "num_layers": self.num_layers or n_layers, "lora_parameters": params}


VO = ("self_attn.v_proj", "self_attn.o_proj")


def apply_lora(model: nn.Module, spec: LoraSpec, n_layers: int, seed: int = 0) -> dict:
    """Freeze the model and add LoRA layers (mlx-lm's ``linear_to_lora_layers``, A initialised from ``seed``).

    Returns the adapter config that is saved next to the weights.
    """
    from mlx_lm.tuner.utils import linear_to_lora_layers

    config = spec.mlx_lm_config(n_layers)
    mx.random.seed(seed)
    model.freeze()
    linear_to_lora_layers(model, config["num_layers"], config["lora_parameters"])
    if not tree_flatten(model.trainable_parameters()):
        raise ValueError(f"LoRA keys {spec.keys} matched no linear layer of this model")
    return config


def lora_parameter_names(model: nn.Module) -> list[str]:
    return [k for k, _ in tree_flatten(model.trainable_parameters())]


def save_adapter(model: nn.Module, out_dir: str | os.PathLike, adapter_config: dict, extra: dict | None = None) -> Path:
    """Write ``adapters.safetensors`` (trainable weights) and ``adapter_config.json`` atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors(out / ADAPTER_WEIGHTS, dict(tree_flatten(model.trainable_parameters())))
    write_text(out / ADAPTER_CONFIG, json.dumps({**adapter_config, **(extra or {})}, indent=2) + "\n")
    return out


def fuse_lora(model: nn.Module) -> nn.Module:
    """Merge every LoRA layer into its base linear in place (as ``mlx_lm fuse`` does)."""
    fused = [(name, module.fuse()) for name, module in model.named_modules() if hasattr(module, "fuse")]
    if fused:
        model.update_modules(tree_unflatten(fused))
    return model


def spec_dict(spec: LoraSpec) -> dict:
    return asdict(spec)
