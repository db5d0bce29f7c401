"""Tiny random models of real mlx-lm architectures, built in milliseconds, for tests and controls.

Norm weights are randomised: the default all-ones gains hide bugs where a norm is skipped,
applied twice or has its gain folded into the wrong side.
"""

from __future__ import annotations

import importlib
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

VOCAB = 96
_COMMON = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB)

ARCHS: dict[str, dict[str, Any]] = {
    "llama": dict(model_type="llama", intermediate_size=64, rms_norm_eps=1e-5, tie_word_embeddings=True),
    "llama_untied": dict(model_type="llama", intermediate_size=64, rms_norm_eps=1e-5, tie_word_embeddings=False),
    "qwen2": dict(model_type="qwen2", intermediate_size=64, rms_norm_eps=1e-6, tie_word_embeddings=False),
    "gemma2": dict(
        model_type="gemma2", intermediate_size=64, head_dim=8, rms_norm_eps=1e-6, query_pre_attn_scalar=8,
        final_logit_softcapping=3.0, attn_logit_softcapping=5.0,
    ),
    "granite": dict(
        model_type="granite", intermediate_size=64, rms_norm_eps=1e-6, logits_scaling=4.0, embedding_multiplier=3.0,
        attention_multiplier=0.2, residual_multiplier=0.5, max_position_embeddings=256, attention_bias=False,
        mlp_bias=False, rope_theta=10000.0, tie_word_embeddings=True,
    ),
    "mixtral": dict(model_type="mixtral", intermediate_size=48, num_local_experts=4, num_experts_per_tok=2,
                    rms_norm_eps=1e-5),
    "qwen2_moe": dict(
        model_type="qwen2_moe", intermediate_size=64, moe_intermediate_size=32, shared_expert_intermediate_size=32,
        num_experts=4, num_experts_per_tok=2, rms_norm_eps=1e-6, decoder_sparse_step=1, mlp_only_layers=[],
        tie_word_embeddings=False,
    ),
    "olmoe": dict(model_type="olmoe", intermediate_size=32, num_experts=4, num_experts_per_tok=2, rms_norm_eps=1e-5),
    "gpt_oss": dict(
        model_type="gpt_oss", intermediate_size=32, num_local_experts=4, num_experts_per_tok=2, head_dim=8,
        sliding_window=4, rms_norm_eps=1e-5, rope_theta=10000.0,
    ),
}

MOE_ARCHS = ("mixtral", "qwen2_moe", "olmoe", "gpt_oss")


def tiny_config(arch: str, **overrides: Any) -> dict:
    """Config dict (as in config.json) for a tiny model of ``arch`` (a key of ARCHS)."""
    return {**_COMMON, **ARCHS[arch], **overrides}


def build_model(config: dict, seed: int = 0, randomise_norms: bool = True) -> nn.Module:
    """Instantiate ``mlx_lm.models.<model_type>.Model`` from a config dict with seeded random weights."""
    module = importlib.import_module(f"mlx_lm.models.{config['model_type']}")
    args = module.ModelArgs.from_dict(config)
    mx.random.seed(seed)
    model = module.Model(args)
    if randomise_norms:
        randomise_norm_weights(model, seed)
    mx.eval(model.parameters())
    return model


def randomise_norm_weights(model: nn.Module, seed: int = 0) -> None:
    """Replace every norm weight by a random positive gain in [0.5, 1.5] (not all ones)."""
    key = mx.random.key(seed + 12345)
    updates = []
    for name, value in tree_flatten(model.parameters()):
        if "norm" in name and name.endswith("weight") and value.ndim == 1:
            key, sub = mx.random.split(key)
            updates.append((name, mx.random.uniform(0.5, 1.5, value.shape, key=sub)))
    model.update(tree_unflatten(updates))
