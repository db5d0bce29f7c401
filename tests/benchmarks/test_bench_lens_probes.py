"""Logit lens over all layers (one captured forward vs a truncated forward per layer vs the API) and probe fitting."""

from __future__ import annotations

import mlx.core as mx
import pytest

from lazarus_bench.bench import fixtures, lens

pytestmark = pytest.mark.benchmark

PROMPTS, SEQ_LEN = 32, 16


@pytest.fixture(scope="module")
def handle(bench_model_dir):
    return fixtures.load_handle(bench_model_dir)


@pytest.fixture(scope="module")
def tokens(handle):
    return lens.lens_tokens(handle, PROMPTS, SEQ_LEN)


def _lens(benchmark, record, fn, *args) -> None:
    benchmark.group = "logit lens, all layers"
    mx.reset_peak_memory()
    benchmark.pedantic(fn, args=args, rounds=5, iterations=1, warmup_rounds=1)
    record({"prompts": PROMPTS, "seq_len": SEQ_LEN, "prompts_per_s": PROMPTS / benchmark.stats.stats.median,
                       "peak_memory_gb": mx.get_peak_memory() / 1e9})


def test_lens_one_forward(benchmark, record, handle, tokens):
    _lens(benchmark, record, lens.lens_one_pass, handle, tokens)


def test_lens_per_layer_baseline(benchmark, record, handle, tokens):
    _lens(benchmark, record, lens.lens_per_layer, handle, tokens)


def test_logit_lens_api(benchmark, record, handle):
    from lazarus_bench.analysis.lens import logit_lens

    _lens(benchmark, record, logit_lens, handle, fixtures.fixed_length_texts(PROMPTS, SEQ_LEN - 1, 0))


def test_lens_ratio_side_by_side(benchmark, record, handle):
    benchmark.group = "logit lens, ratio"
    figures = benchmark.pedantic(lambda: lens.measure_lens(handle, n_prompts=PROMPTS, seq_len=SEQ_LEN, repeats=5),
                                 rounds=1, iterations=1)
    record(figures)
    assert figures["max_entropy_diff"] < 1e-3 and figures["stacked_max_entropy_diff"] < 1e-4
    assert len(figures["stacked_over_one_pass"]) == 5
    assert figures["silu"]["shape"] == [PROMPTS, SEQ_LEN, handle.config["intermediate_size"]]


def test_lens_api_against_transformers_on_torch(benchmark, record, handle, bench_model_dir):
    """What a user would write instead (transformers on torch, 2 threads and 1) beside the API, interleaved."""
    pytest.importorskip("torch", reason="torch is not installed: .venv/bin/pip install torch==2.13.0")
    benchmark.group = "logit lens, API vs torch"
    figures = benchmark.pedantic(lambda: lens.measure_lens(handle, n_prompts=64, seq_len=8, repeats=5,
                                                           model_dir=str(bench_model_dir)), rounds=1, iterations=1)
    record({k: figures[k] for k in ("api_prompts_per_s", "one_pass_prompts_per_s", "torch_prompts_per_s",
                                    "api_over_torch", "torch_1_prompts_per_s", "api_over_torch_1",
                                    "one_pass_over_torch_1")})
    assert figures["torch_1_prompts_per_s"] > 0 and len(figures["api_over_torch_1"]) == 5
    agree = figures["torch_same_agreement"]  # the same-work script computes what the API does
    assert agree["tokens_equal"] and agree["top_ids_equal_share"] >= 0.95
    assert agree["max_entropy_diff"] < 1e-3 and agree["max_kl_diff"] < 1e-2
    assert len(figures["api_over_torch_same_1"]) == 5
    split = figures["split_s"]
    assert len(figures["forward_over_torch_forward_1"]) == 5 and split["forward"] + split["encode"] < split["api"]


@pytest.fixture(scope="module")
def probe_data(handle):
    from lazarus_bench import prompts
    from lazarus_bench.analysis.features import last_token_states

    ps = prompts.word_set()
    features, _labels = last_token_states(handle, ps.texts())
    return features, ps.labels()


def test_probe_features(benchmark, record, handle):
    from lazarus_bench import prompts
    from lazarus_bench.analysis.features import last_token_states

    texts = prompts.word_set().texts()
    benchmark.group = "probes"
    benchmark.pedantic(last_token_states, args=(handle, texts), rounds=3, iterations=1, warmup_rounds=1)
    record({"prompts": len(texts), "prompts_per_s": len(texts) / benchmark.stats.stats.median})


@pytest.mark.parametrize("permutations", [0, 20])
def test_probe_fit_one_layer(benchmark, record, probe_data, permutations):
    from lazarus_bench.analysis.probes import probe_layer

    features, labels = probe_data
    layer = features.shape[0] // 2
    benchmark.group = "probes"
    result = benchmark.pedantic(probe_layer, args=(features[layer], labels), kwargs={"n_permutations": permutations},
                                rounds=3, iterations=1)
    record({"layer": layer, "samples": int(features.shape[1]), "hidden": int(features.shape[2]),
                       "n_permutations": permutations, "seconds_per_layer": benchmark.stats.stats.median})
    assert 0.0 <= result.accuracy <= 1.0
