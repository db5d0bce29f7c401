"""Derived zoo variants start as exact functional copies of the base (then diverge with training)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from lazarus_bench.experts import DenseSwitchGLU
from lazarus_bench.models import ModelHandle
from lazarus_bench.tiny import build_model, tiny_config
from lazarus_bench.zoo.derive import untie, upcycle_moe

IDS = mx.array([[1, 5, 9, 3, 7, 2, 11]])


def test_untie_copies_the_embedding_into_a_separate_head():
    cfg = tiny_config("llama", rope_theta=10000.0)
    base = build_model(cfg)
    model, config = untie(base, cfg)
    assert config["tie_word_embeddings"] is False and "lm_head" in model
    np.testing.assert_array_equal(np.array(model(IDS)), np.array(base(IDS)))
    handle = ModelHandle(model=model, tokenizer=None, model_id="untied", config=config)
    assert not handle.tied


def test_upcycled_moe_equals_base_without_noise_and_routes():
    cfg = tiny_config("llama", rope_theta=10000.0)
    base = build_model(cfg)
    model, config = upcycle_moe(base, cfg, num_experts=4, top_k=2)
    np.testing.assert_allclose(np.array(model(IDS)), np.array(base(IDS)), rtol=1e-5, atol=1e-5)
    handle = ModelHandle(model=model, tokenizer=None, model_id="moe", config=config)
    routers = handle.routers()
    assert len(routers) == cfg["num_hidden_layers"] and routers[0].num_experts == 4 and routers[0].top_k == 2
    experts = np.array(model.model.layers[0].block_sparse_moe.switch_mlp.up_proj.weight)
    np.testing.assert_array_equal(experts[0], experts[3])
    assert all(type(layer.block_sparse_moe.switch_mlp) is DenseSwitchGLU for layer in model.model.layers)


def test_upcycling_noise_breaks_expert_symmetry():
    cfg = tiny_config("llama", rope_theta=10000.0)
    base = build_model(cfg)
    model, _ = upcycle_moe(base, cfg, noise=0.01, seed=1)
    experts = np.array(model.model.layers[0].block_sparse_moe.switch_mlp.up_proj.weight)
    assert not np.array_equal(experts[0], experts[1])
    assert np.abs(np.array(model(IDS)) - np.array(base(IDS))).max() < 0.1
