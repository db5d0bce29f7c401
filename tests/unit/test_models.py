"""Model access: one-forward capture equals independent computations on every architecture."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx_lm.models.base import create_causal_mask

from lazarus_bench.errors import LazarusError
from lazarus_bench.models import ModelHandle, dense_weight, load_model, verify_lens
from lazarus_bench.tiny import ARCHS, MOE_ARCHS, build_model, tiny_config

IDS = [[3, 17, 5, 42, 8, 61, 2, 9]]


def _manual_hidden(handle: ModelHandle, cfg: dict, ids) -> list[np.ndarray]:
    """Independent loop: embed, scale as the config says, call each block with an explicit causal mask."""
    x = mx.array(ids)
    h = handle.embed(x)
    if cfg["model_type"] == "gemma2":
        h = h * mx.array(cfg["hidden_size"] ** 0.5, mx.float32).astype(h.dtype)
    if cfg["model_type"] == "granite":
        h = h * cfg["embedding_multiplier"]
    out = [h]
    T = x.shape[1]
    types = getattr(handle.inner, "layer_types", None)
    for i, layer in enumerate(handle.layers):
        sliding = types is not None and types[i] == "sliding_attention"
        mask = create_causal_mask(T, window_size=cfg.get("sliding_window") if sliding else None)
        h = layer(h, mask, None)
        out.append(h)
    return [np.array(a) for a in out]


@pytest.mark.parametrize("arch", list(ARCHS))
def test_capture_equals_manual_causal_loop(arch):
    cfg = tiny_config(arch)
    handle = ModelHandle(model=build_model(cfg), tokenizer=None, model_id=arch, config=cfg)
    capture = handle.forward(mx.array(IDS))
    manual = _manual_hidden(handle, cfg, IDS)
    assert len(capture.hidden) == handle.n_layers + 1
    for got, want in zip(capture.hidden, manual):
        np.testing.assert_allclose(np.array(got), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_lens_at_last_layer_equals_logits(arch):
    cfg = tiny_config(arch)
    handle = ModelHandle(model=build_model(cfg), tokenizer=None, model_id=arch, config=cfg)
    capture = handle.forward(mx.array(IDS))
    lens = handle.lens_logits(capture.hidden[-1])
    np.testing.assert_allclose(np.array(lens), np.array(handle.model(mx.array(IDS))), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_capture_is_causal(arch):
    """Changing later tokens never changes earlier positions' states (the original non-causal loop would)."""
    cfg = tiny_config(arch)
    handle = ModelHandle(model=build_model(cfg), tokenizer=None, model_id=arch, config=cfg)
    a = handle.forward(mx.array(IDS))
    b = handle.forward(mx.array([IDS[0][:4] + [7, 7, 7, 7]]))
    for ha, hb in zip(a.hidden, b.hidden):
        np.testing.assert_allclose(np.array(ha[:, :4]), np.array(hb[:, :4]), rtol=1e-4, atol=1e-5)


def test_mask_none_loop_differs_from_capture():
    """The test above can fail: a mask=None loop (the original bug) gives different early states."""
    cfg = tiny_config("llama")
    handle = ModelHandle(model=build_model(cfg), tokenizer=None, model_id="llama", config=cfg)
    capture = handle.forward(mx.array(IDS))
    h = handle.embed(mx.array(IDS))
    for layer in handle.layers:
        h = layer(h, None, None)
    assert not np.allclose(np.array(h[:, 0]), np.array(capture.hidden[-1][:, 0]), atol=1e-3)


def test_layers_are_restored_after_capture():
    cfg = tiny_config("llama")
    handle = ModelHandle(model=build_model(cfg), tokenizer=None, model_id="llama", config=cfg)
    before = list(handle.layers)
    handle.forward(mx.array(IDS))
    assert all(a is b for a, b in zip(before, handle.layers))
    assert all(isinstance(layer, nn.Module) for layer in handle.model.model.layers)


@pytest.mark.parametrize(
    "arch,scale", [("llama", 1.0), ("gemma2", math.sqrt(32)), ("granite", 3.0), ("mixtral", 1.0)]
)
def test_embedding_scale(arch, scale):
    cfg = tiny_config(arch)
    handle = ModelHandle(model=build_model(cfg), tokenizer=None, model_id=arch, config=cfg)
    assert handle.embedding_scale() == pytest.approx(scale, rel=1e-3)


@pytest.mark.parametrize("arch", ["llama", "llama_untied", "gemma2"])
def test_unembedding_and_tying(arch):
    cfg = tiny_config(arch)
    model = build_model(cfg)
    handle = ModelHandle(model=model, tokenizer=None, model_id=arch, config=cfg)
    source = model.model.embed_tokens.weight if handle.tied else model.lm_head.weight
    assert handle.tied == ("lm_head" not in model)
    np.testing.assert_array_equal(np.array(handle.unembedding()), np.array(source))


def test_final_norm_gain_matches_weights():
    cfg = tiny_config("llama")
    handle = ModelHandle(model=build_model(cfg), tokenizer=None, model_id="llama", config=cfg)
    np.testing.assert_allclose(np.array(handle.final_norm_gain()), np.array(handle.final_norm.weight), rtol=1e-5)
    cfg = tiny_config("gemma2")
    handle = ModelHandle(model=build_model(cfg), tokenizer=None, model_id="gemma2", config=cfg)
    np.testing.assert_allclose(
        np.array(handle.final_norm_gain()), 1.0 + np.array(handle.final_norm.weight), rtol=1e-5
    )


@pytest.mark.parametrize("arch", MOE_ARCHS)
def test_routers(arch):
    cfg = tiny_config(arch)
    model = build_model(cfg)
    handle = ModelHandle(model=model, tokenizer=None, model_id=arch, config=cfg)
    routers = handle.routers()
    assert [r.layer for r in routers] == list(range(cfg["num_hidden_layers"]))
    for r in routers:
        layer = model.model.layers[r.layer]
        block = layer.block_sparse_moe if "block_sparse_moe" in layer else layer.mlp
        lin = block.router if arch == "gpt_oss" else block.gate
        np.testing.assert_array_equal(np.array(r.weight), np.array(lin.weight))
        np.testing.assert_allclose(np.array(r.norm_gain), np.array(layer.post_attention_layernorm.weight), rtol=1e-5)
        assert r.num_experts == 4 and r.top_k == 2
        assert (r.bias is not None) == (arch == "gpt_oss")


def test_dense_model_has_no_router():
    cfg = tiny_config("llama")
    handle = ModelHandle(model=build_model(cfg), tokenizer=None, model_id="llama", config=cfg)
    assert handle.routers() == [] and not handle.is_moe


def test_quantized_model():
    cfg = tiny_config("llama")
    model = build_model(cfg)
    nn.quantize(model, group_size=32, bits=8)
    handle = ModelHandle(model=model, tokenizer=None, model_id="q", config=cfg)
    emb = model.model.embed_tokens
    want = mx.dequantize(emb.weight, emb.scales, emb.biases, group_size=32, bits=8)
    np.testing.assert_allclose(np.array(handle.unembedding()), np.array(want), rtol=1e-6)
    verify_lens(handle)
    assert handle.hidden_size == 32


def test_unsupported_architecture_names_what_is_missing():
    class Bare(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.Linear(4, 4)

    with pytest.raises(LazarusError, match="cannot find a decoder with layers"):
        ModelHandle(model=Bare(), tokenizer=None, model_id="bare")


def test_layer_at_depth():
    cfg = tiny_config("llama", num_hidden_layers=16)
    handle = ModelHandle(model=build_model(cfg), tokenizer=None, model_id="l16", config=cfg)
    assert handle.layer_at_depth(0.55) == 8 and handle.layer_at_depth(0.62) == 9 and handle.layer_at_depth(1.0) == 15


def test_load_saved_model_roundtrip(saved_model, tokenizer_dir):
    path = saved_model("llama_untied")
    handle = load_model(str(path))
    ref = build_model(tiny_config("llama_untied", vocab_size=handle.vocab_size), seed=0)
    np.testing.assert_array_equal(np.array(dense_weight(handle.lm_head)), np.array(ref.lm_head.weight))
    ids = handle.encode("7 * 8 = ")
    assert ids[0] == handle.tokenizer.bos_token_id
    assert handle.describe()["tied_embeddings"] is False


def test_missing_path_is_one_clear_error(tmp_path):
    with pytest.raises(LazarusError, match="model path not found"):
        load_model(str(tmp_path / "nope"))


def test_unknown_hub_id_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LazarusError, match="could not load model 'nobody-xyz/not-a-model'"):
        load_model("nobody-xyz/not-a-model")


def test_missing_zoo_model(monkeypatch, tmp_path):
    monkeypatch.setenv("LAZARUS_ZOO_DIR", str(tmp_path))
    with pytest.raises(LazarusError, match="lazarus-bench zoo build"):
        load_model("zoo:base")


def test_empty_prompt(handle_of):
    with pytest.raises(LazarusError, match="empty prompt"):
        handle_of("llama").encode("")


def test_adapter_loads_through_mlx_lm(saved_model, lora_adapter):
    """An mlx-lm LoRA adapter directory loads through load_model to the same logits as the in-memory model."""
    adapter, model = lora_adapter
    base_dir = saved_model("llama")
    handle = load_model(str(base_dir))
    loaded = load_model(str(base_dir), adapter_path=str(adapter))
    ids = mx.array([handle.encode("7 * 8 = ")])
    np.testing.assert_allclose(np.array(loaded.model(ids)), np.array(model(ids)), rtol=1e-4, atol=1e-5)
    assert not np.allclose(np.array(loaded.model(ids)), np.array(handle.model(ids)), atol=1e-3)
    assert loaded.describe()["adapter_path"] == str(adapter)


def test_fused_adapter_is_a_cached_checkpoint_with_the_adapters_logits(saved_model, lora_adapter, tmp_path):
    """fuse_adapter writes a plain checkpoint whose logits are the unfused adapter's, with a hash of its own, and
    reuses it on the next call."""
    from lazarus_bench.models import fuse_adapter, model_fingerprint

    adapter, model = lora_adapter
    base_dir = str(saved_model("llama"))
    fused = fuse_adapter(base_dir, str(adapter), tmp_path / "cache")
    assert not (fused / "adapter_config.json").exists()
    handle = load_model(str(fused))
    ids = mx.array([handle.encode("7 * 8 = ")])
    np.testing.assert_allclose(np.array(handle.model(ids)), np.array(model(ids)), rtol=1e-4, atol=1e-4)
    assert model_fingerprint(str(fused)) != model_fingerprint(base_dir)
    stamp = (fused / "model.safetensors").stat().st_mtime_ns
    assert fuse_adapter(base_dir, str(adapter), tmp_path / "cache") == fused
    assert (fused / "model.safetensors").stat().st_mtime_ns == stamp


def test_adapter_dir_without_config_is_an_error(saved_model, tmp_path):
    with pytest.raises(LazarusError, match="no adapter_config.json"):
        load_model(str(saved_model("llama")), adapter_path=str(tmp_path))


def test_zoo_ids_are_kept_and_paths_recorded(monkeypatch, saved_model, tmp_path):
    import shutil

    shutil.copytree(saved_model("llama"), tmp_path / "base")
    monkeypatch.setenv("LAZARUS_ZOO_DIR", str(tmp_path))
    monkeypatch.setattr("lazarus_bench.zoo.registry.verify", lambda path: {})
    handle = load_model("zoo:base")
    assert handle.model_id == "zoo:base" and handle.path == str(tmp_path / "base")
