"""The zoo build's dense few-expert MoE layers: the same outputs and gradients as mlx-lm's gathered experts."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm.models.switch_layers import SwitchGLU, SwitchLinear

from lazarus_bench.experts import DenseSwitchGLU, densify_experts
from lazarus_bench.tiny import MOE_ARCHS, build_model, tiny_config


def _loss_and_grads(model, tokens):
    def loss(m):
        return nn.losses.cross_entropy(m(tokens[:, :-1]), tokens[:, 1:]).mean()

    value, grads = nn.value_and_grad(model, loss)(model)
    mx.eval(value, grads)
    return value, dict(tree_flatten(grads))


def _assert_same_as_gathered(model, tokens, logits, loss, grads):
    """The (now dense) model gives the gathered path's logits, loss and gradients."""
    np.testing.assert_allclose(np.array(model(tokens)), np.array(logits), rtol=1e-5, atol=1e-5)
    dense_loss, dense_grads = _loss_and_grads(model, tokens)
    assert dense_loss.item() == pytest.approx(loss.item(), rel=1e-6)
    assert dense_grads.keys() == grads.keys()
    for name, g in grads.items():
        np.testing.assert_allclose(np.array(dense_grads[name]), np.array(g), rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("arch", MOE_ARCHS)
def test_dense_experts_give_the_gathered_outputs_and_gradients(arch):
    """Every MoE architecture the project knows (gpt_oss with expert biases); a batch of 48 tokens takes
    mlx-lm's sorted path (64 or more routed pairs), so both of its branches are compared."""
    model = build_model(tiny_config(arch), seed=1)
    tokens = mx.random.randint(0, 100, (3, 17), key=mx.random.key(2))
    logits = model(tokens)
    loss, grads = _loss_and_grads(model, tokens)
    assert densify_experts(model) > 0
    assert all(type(m) is not SwitchGLU for m in model.modules())
    _assert_same_as_gathered(model, tokens, logits, loss, grads)
    assert any("switch_mlp" in n or "experts" in n for n in grads if float(mx.abs(grads[n]).max()) > 0)


def test_many_experts_keep_the_gathered_path():
    """Dense costs experts / k times the FLOPs: beyond the limit the layer is mlx-lm's, bit for bit."""
    layer = SwitchGLU(8, 16, num_experts=16)
    x = mx.random.normal((5, 8), key=mx.random.key(0))
    idx = mx.random.randint(0, 16, (5, 2), key=mx.random.key(1))
    expected = layer(x, idx)
    layer.__class__ = DenseSwitchGLU
    assert mx.array_equal(layer(x, idx), expected).item()


def test_load_model_keeps_mlx_lm_experts(saved_model):
    """Claims and analyses run mlx-lm's gathered experts; only the zoo build densifies (``experts``)."""
    from lazarus_bench.models import load_model

    modules = list(load_model(str(saved_model("mixtral"))).model.modules())
    assert any(type(m) is SwitchGLU for m in modules) and not any(type(m) is DenseSwitchGLU for m in modules)


def _lora_moe(dropout: float):
    """A tiny Mixtral with mlx-lm's LoRA on every linear, B drawn nonzero so the adapters contribute."""
    from mlx_lm.tuner.lora import LoRASwitchLinear

    from lazarus_bench.training.lora import LoraSpec, apply_lora

    model = build_model(tiny_config("mixtral"), seed=1)
    apply_lora(model, LoraSpec(rank=2, dropout=dropout), n_layers=2, seed=0)
    adapters = [m for m in model.modules() if type(m) is LoRASwitchLinear]
    for i, m in enumerate(adapters):
        m.lora_b = 0.1 * mx.random.normal(m.lora_b.shape, key=mx.random.key(10 + i))
    assert adapters
    return model


def test_lora_on_the_experts_runs_densely_with_the_gathered_gradients():
    """H11/H15 train mlx-lm's LoRA on the experts (LoRASwitchLinear): dense, it gives mlx-lm's outputs and
    the same gradients for every adapter."""
    model = _lora_moe(dropout=0.0)
    tokens = mx.random.randint(0, 100, (3, 17), key=mx.random.key(2))
    logits = model(tokens)
    loss, grads = _loss_and_grads(model, tokens)
    assert any("switch_mlp" in n and "lora_b" in n for n in grads)
    assert densify_experts(model) > 0
    assert all(m.runs_densely(2) for m in model.modules() if type(m) is DenseSwitchGLU)
    _assert_same_as_gathered(model, tokens, logits, loss, grads)


def test_lora_dropout_on_the_experts_keeps_the_gathered_path():
    """Dropout would draw other masks densely: such a layer computes exactly as mlx-lm's does."""
    model = _lora_moe(dropout=0.1)
    densify_experts(model)
    layers = [m for m in model.modules() if type(m) is DenseSwitchGLU and type(m.up_proj) is not SwitchLinear]
    assert layers and not any(m.runs_densely(2) for m in layers)
    x = mx.random.normal((7, 32), key=mx.random.key(3))
    idx = mx.random.randint(0, 4, (7, 2), key=mx.random.key(4))
    for layer in layers:
        mx.random.seed(5)
        expected = SwitchGLU.__call__(layer, x, idx)
        mx.random.seed(5)
        assert mx.array_equal(layer(x, idx), expected).item()


def test_bench_compares_both_expert_paths_on_one_model():
    """The bench times mlx-lm's gathered and the build's dense experts on the same weights, checks they give the
    same loss, and leaves the model on mlx-lm's layers."""
    from lazarus_bench.bench.experts import measure_experts

    model = build_model(tiny_config("mixtral"), seed=1)
    out = measure_experts(model, batch=2, seq_len=8, forward_batch=4, forward_len=4, repeats=2)
    assert out["loss"]["dense"] == pytest.approx(out["loss"]["gathered"], rel=1e-5)
    for what in ("train", "forward"):
        r = out[what]
        assert len(r["ratios"]) == 2 and r["ratios"] == sorted(r["ratios"]) and r["gathered_s"] > 0 < r["dense_s"]
    assert all(type(m) is not DenseSwitchGLU for m in model.modules())
    with pytest.raises(ValueError, match="no mlx-lm SwitchGLU"):
        measure_experts(build_model(tiny_config("llama"), seed=1), repeats=1)
