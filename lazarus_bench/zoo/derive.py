"""Derive zoo variants from the pretrained base instead of pretraining each from scratch.

``untie``: the untied-head model starts with its output head copied from the tied embedding.
``upcycle_moe``: sparse upcycling (Komatsuzaki et al., 2022): every expert starts as the base
model's MLP and the router at random; with top-k scores normalised to sum to one, the upcycled
model initially computes exactly what the base computes. A little noise on the experts breaks
their symmetry. Both are then trained further on the same corpus, so they become models of their
own whose behaviour can be compared with the base (as TinyLlama and OLMoE are compared with Llama).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from ..experts import densify_experts
from ..tiny import build_model


def untie(base: nn.Module, base_config: dict) -> tuple[nn.Module, dict]:
    """A llama with an untied output head initialised from the base's (tied) embedding matrix."""
    config = {**base_config, "tie_word_embeddings": False}
    model = build_model(config, randomise_norms=False)
    weights = dict(tree_flatten(base.parameters()))
    weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
    model.load_weights(list(weights.items()))
    mx.eval(model.parameters())
    return model, config


def upcycle_moe(base: nn.Module, base_config: dict, *, num_experts: int = 4, top_k: int = 2, noise: float = 0.0,
                seed: int = 0) -> tuple[nn.Module, dict]:
    """A mixtral whose experts are copies of the base's MLP (plus ``noise`` x their RMS) and whose router is random;
    on CPU its experts run densely, as every zoo model's do (``build_model`` of pretrain)."""
    config = {k: v for k, v in base_config.items() if k not in ("architectures", "head_dim")}
    args = base.args
    config.update(model_type="mixtral", architectures=["MixtralForCausalLM"], num_local_experts=num_experts,
                  num_experts_per_tok=top_k, rope_theta=args.rope_theta, rope_traditional=args.rope_traditional,
                  rms_norm_eps=args.rms_norm_eps)
    mx.random.seed(seed)
    model = build_model(config, seed=seed, randomise_norms=False)
    dense = dict(tree_flatten(base.parameters()))
    moe = dict(tree_flatten(model.parameters()))
    key = mx.random.key(seed)
    out = {}
    for name, value in moe.items():
        if ".block_sparse_moe.switch_mlp." in name:
            proj = name.split(".switch_mlp.")[1].split(".")[0]
            source = dense[name.split(".block_sparse_moe.")[0] + f".mlp.{proj}.weight"]
            stacked = mx.broadcast_to(source[None], (num_experts, *source.shape))
            if noise:
                key, sub = mx.random.split(key)
                rms = mx.sqrt(mx.mean(source * source))
                stacked = stacked + noise * rms * mx.random.normal(stacked.shape, key=sub)
            out[name] = stacked
        elif ".block_sparse_moe.gate." in name:
            out[name] = value
        else:
            out[name] = dense[name]
    model.load_weights(list(out.items()))
    mx.eval(model.parameters())
    densify_experts(model)
    return model, config
