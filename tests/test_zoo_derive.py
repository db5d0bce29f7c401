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


def test_the_start_router_is_rebuilt_from_config_and_seed():
    """What the moe's router gate compares with: the random router upcycle_moe drew, from the config and seed."""
    from lazarus_bench.zoo.fitness import start_router

    cfg = tiny_config("llama", rope_theta=10000.0)
    model, config = upcycle_moe(build_model(cfg), cfg, num_experts=4, top_k=2, noise=0.01, seed=5)
    rebuilt = start_router(config, 5)
    for layer, weight in zip(model.model.layers, rebuilt):
        np.testing.assert_array_equal(np.array(layer.block_sparse_moe.gate.weight), np.array(weight))
    assert not np.array_equal(np.array(rebuilt[0]), np.array(start_router(config, 6)[0]))


def test_router_floors_fail_an_untrained_router_and_pass_a_trained_one(tmp_path):
    """An upcycled moe saved before any training has not moved its router and gains nothing from it: the router
    gate misses; the figures of the shipped moe (250 steps) meet every floor."""
    import json
    from pathlib import Path

    from lazarus_bench.models import load_model, save_model
    from lazarus_bench.zoo import registry as R
    from lazarus_bench.zoo.build import write_manifest
    from lazarus_bench.zoo.fitness import router_fitness, router_misses

    shipped = Path(R.__file__).parent / "weights"
    base = load_model(str(shipped / "base"))
    model, config = upcycle_moe(base.model, base.config, num_experts=4, top_k=2, noise=0.01, seed=1)
    save_model(model, config, tmp_path, tokenizer_dir=str(shipped / "base"))
    write_manifest(tmp_path, {"corpus_seed": 1})
    untrained = router_fitness(tmp_path, n_docs=64)
    assert untrained["moved"] < 1e-6 and abs(untrained["loss_fall"]) < 1e-6
    assert {m.split()[1] for m in router_misses({"router": untrained})} == {"moved", "loss_fall"}
    trained = json.loads((shipped / "moe" / "manifest.json").read_text())["build_config"]["seed"]
    assert router_misses({"router": router_fitness(shipped / "moe", n_docs=64)}) == [] and trained == 1
