"""Engram models (seed 004): the compressor is trained, pooling/LM loss/metrics match references, runs are seeded."""

from __future__ import annotations

import itertools
import json

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from lazarus_bench.errors import LazarusError
from lazarus_bench.models import load_model
from lazarus_bench.training.engram import (
    RESULT_FILE,
    EngramConfig,
    EngramModel,
    build_engram_model,
    cluster_metrics,
    cosine_within_between,
    encode_texts,
    engram_loss,
    hungarian_accuracy,
    masked_mean,
    train_engram,
)
from lazarus_bench.training.loop import TrainConfig
from lazarus_bench.training.textcls import make_dataset


def _cfg(steps: int = 4, seed: int = 42, lr: float = 2e-4, batch_size: int = 4, **kw) -> EngramConfig:
    train = TrainConfig(steps=steps, lr=lr, optimizer="adamw", weight_decay=0.01, warmup=1, schedule="cosine",
                        min_lr_ratio=0.0, grad_clip=1.0, seed=seed, log_every=1000)
    return EngramConfig(train=train, batch_size=batch_size, n_train=16, n_val=8, max_length=48, **kw)


def _model(saved_model, variant: str, **kw) -> tuple[EngramModel, object]:
    handle = load_model(str(saved_model("llama")))
    return build_engram_model(handle, 2, variant, _cfg(**kw)), handle


def _batch(handle, n: int = 4):
    data = make_dataset("sentiment", 8, 4, seed=1)
    return encode_texts(handle, data.train[:n], max_length=48).batch(slice(0, n))


def _grad_norms(grads: dict, key: str) -> list[float]:
    return [float(mx.abs(v).sum()) for _, v in tree_flatten(grads[key])]


def test_compressor_receives_gradient_only_when_engram_feeds_back(saved_model):
    model, handle = _model(saved_model, "M3", head_dropout=0.0)
    batch = _batch(handle)
    grad_fn = nn.value_and_grad(model, engram_loss)
    _, grads = grad_fn(model, *batch)
    assert all(g > 0 for g in _grad_norms(grads, "compressor"))
    assert all(g > 0 for g in _grad_norms(grads, "projector"))
    model.feedback = False
    _, grads = grad_fn(model, *batch)
    assert all(g == 0 for g in _grad_norms(grads, "compressor"))
    assert _grad_norms(grads, "projector")[-1] > 0


def test_masked_mean_matches_numpy_with_padding():
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(3, 6, 5)).astype(np.float32)
    valid = np.array([[1] * 6, [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=np.float32)
    expected = np.stack([hidden[i, : int(valid[i].sum())].mean(axis=0) for i in range(3)])
    got = np.array(masked_mean(mx.array(hidden), mx.array(valid)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_pooled_features_ignore_padding_and_prefix(saved_model):
    model, handle = _model(saved_model, "M3", head_dropout=0.0)
    tokens, valid, _ = _batch(handle, 2)
    model.eval()
    _, pooled = model.features(tokens, valid)
    prefix = model.zero_prefix(1)
    for i in range(2):
        n = int(valid[i].sum())
        ids = tokens[i : i + 1, :n]
        embeds = mx.concatenate([prefix[:, None], handle.embed(ids)], axis=1)
        hidden = handle.inner(mx.zeros((1, n + 1), dtype=ids.dtype), input_embeddings=embeds)[0, 1:]
        np.testing.assert_allclose(np.array(pooled[i]), np.array(hidden.mean(axis=0)), rtol=1e-4, atol=1e-5)


def test_lm_loss_is_shifted_cross_entropy_over_real_tokens(saved_model):
    model, handle = _model(saved_model, "M2", head_dropout=0.0)
    model.eval()
    tokens, valid, labels = _batch(handle, 4)
    i = int(np.argmin(np.array(valid.sum(axis=1))))
    n = int(valid[i].sum())
    assert n < tokens.shape[1]
    _, parts, _ = model.part_loss(tokens[i : i + 1], valid[i : i + 1], labels[i : i + 1])
    logits = np.array(handle.model(tokens[i : i + 1, :n])[0], dtype=np.float64)
    ids = np.array(tokens[i, :n])
    logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    expected = np.mean(logz[:-1] - logits[np.arange(n - 1), ids[1:]])
    assert float(parts["lm_loss"]) == pytest.approx(expected, rel=1e-5)


def test_hungarian_accuracy_equals_brute_force_over_permutations():
    rng = np.random.default_rng(3)
    for _ in range(20):
        labels = rng.integers(0, 4, size=40)
        clusters = np.where(rng.random(40) < 0.6, (labels + 1) % 4, rng.integers(0, 4, size=40))
        brute = max(np.mean(np.array(perm)[clusters] == labels) for perm in itertools.permutations(range(4)))
        assert hungarian_accuracy(labels, clusters) == pytest.approx(brute)


def test_cluster_metrics_ari_is_sklearn_on_seeded_kmeans():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(60, 4)) + 1.5 * np.eye(4)[labels]
    m = cluster_metrics(x, labels, 3)
    clusters = KMeans(n_clusters=3, random_state=42, n_init=10).fit_predict(x)
    assert m.ari == pytest.approx(adjusted_rand_score(labels, clusters))
    assert m.cluster_accuracy == pytest.approx(hungarian_accuracy(labels, clusters))
    blobs = cluster_metrics(np.eye(4)[labels] * 10 + rng.normal(size=(60, 4)) * 0.1, labels, 3)
    assert blobs.ari == pytest.approx(1.0) and blobs.cluster_accuracy == 1.0 and blobs.purity == [1.0] * 3
    assert blobs.cos_within > 0.9 > 0.1 > blobs.cos_between


def test_cosine_within_between_excludes_the_diagonal():
    x = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    within, between = cosine_within_between(x, [0, 0, 1])
    assert within == pytest.approx(np.sqrt(0.5))
    assert between == pytest.approx((0.0 + np.sqrt(0.5)) / 2)


def test_generated_data_is_deterministic_balanced_and_disjoint():
    for name, n_classes in (("sentiment", 2), ("topic", 4)):
        a, b = make_dataset(name, 400, 100, seed=0), make_dataset(name, 400, 100, seed=0)
        assert a.to_dict() == b.to_dict() and a.n_classes == n_classes
        assert make_dataset(name, 400, 100, seed=1).train != a.train
        train, val = {e.text for e in a.train}, {e.text for e in a.val}
        assert len(train) == 400 and len(val) == 100 and not train & val
        assert np.bincount([e.label for e in a.train]).tolist() == [400 // n_classes] * n_classes
        assert np.bincount([e.label for e in a.val]).tolist() == [100 // n_classes] * n_classes


def test_runs_are_deterministic_per_seed(saved_model, tmp_path):
    runs = [train_engram(load_model(str(saved_model("llama"))), "M3", "topic", _cfg(steps=3, seed=s),
                         out_dir=tmp_path / f"run{i}", progress=False) for i, s in enumerate((7, 7, 8))]
    assert runs[0].losses == runs[1].losses
    assert runs[0].engram == runs[1].engram and runs[0].untrained_compressor == runs[1].untrained_compressor
    assert runs[0].losses != runs[2].losses
    saved = json.loads((tmp_path / "run0" / RESULT_FILE).read_text())
    assert saved["variant"] == "M3" and saved["engram"]["n"] == 8 and len(saved["train"]["losses"]) == 3


def test_short_m1_run_lowers_training_loss(saved_model):
    res = train_engram(load_model(str(saved_model("llama"))), "M1", "sentiment",
                       _cfg(steps=40, lr=3e-3, batch_size=8, head_dropout=0.0), progress=False)
    assert res.engram is None and res.untrained_compressor.n == 8 and res.tokens_per_s > 0
    assert np.mean(res.losses[-8:]) < np.mean(res.losses[:8]) - 0.05


def test_fresh_handle_and_supported_architecture_required(saved_model):
    handle = load_model(str(saved_model("llama")))
    build_engram_model(handle, 2, "M1", _cfg())
    with pytest.raises(LazarusError, match="fresh handle"):
        build_engram_model(handle, 2, "M1", _cfg())
    with pytest.raises(LazarusError, match="input_embeddings"):
        build_engram_model(load_model(str(saved_model("gemma2"))), 2, "M3", _cfg())
    with pytest.raises(LazarusError, match="variant"):
        build_engram_model(load_model(str(saved_model("llama"))), 2, "M4", _cfg())


def test_untrained_control_is_the_compressors_initial_weights(saved_model):
    res = train_engram(load_model(str(saved_model("llama"))), "M3", "sentiment", _cfg(steps=0), progress=False)
    assert res.engram == res.untrained_compressor and res.engram.dim == res.engram_dim
    with pytest.raises(LazarusError, match="even"):
        train_engram(load_model(str(saved_model("llama"))), "M3", "sentiment", _cfg(batch_size=3), progress=False)
