"""Side-by-side ratios in one session: ours vs mlx_lm lora, OpenBLAS vs reference BLAS, and MFU / memory by size."""

from __future__ import annotations

import pytest

from lazarus_bench.bench import fixtures, scaling
from lazarus_bench.bench import mlx_lm as bench_mlx_lm
from lazarus_bench.bench import training as bench_training

pytestmark = pytest.mark.benchmark


def test_sft_lora_vs_mlx_lm(benchmark, record, bench_model_dir, tmp_path):
    benchmark.group = "ratio: mlx_lm lora"
    out = benchmark.pedantic(lambda: bench_mlx_lm.compare_mlx_lm(bench_model_dir, tmp_path, iters=20, report_every=5,
                                                                 padded=False), rounds=1, iterations=1)
    matched = out["matched"]
    record({k: v for k, v in matched.items() if not isinstance(v, (list, dict))})
    record({"stock_ratio": out["stock"]["ratio"], "stock_mlx_lm_tokens_per_s": out["stock"]["mlx_lm_tokens_per_s"],
                       "loss_curve_max_abs_diff": matched["loss_curve"]["max_abs_diff"]})
    assert matched["loss_curve"]["max_abs_diff"] < 0.01
    ranks = out["ranks"]
    record({"ranks_ratio": ranks["ratio"], "ranks_speedup_over_one_process": ranks["speedup_over_one_process"]})
    assert ranks["loss_curve_max_abs_diff_vs_one_process"] < 0.01


def test_openblas_vs_reference_blas(benchmark, record):
    if bench_mlx_lm.openblas_path() is None:
        pytest.skip("no OpenBLAS on this machine")
    benchmark.group = "ratio: BLAS"
    out = benchmark.pedantic(lambda: bench_mlx_lm.measure_blas(batch=4, steps=3, modes=("import", "none")), rounds=1,
                             iterations=1)
    record({"gemm_ratio": out["gemm_ratio"], "train_ratio": out["train_ratio"],
                       "openblas_gemm_gflops": out["import"]["gemm_gflops"],
                       "reference_gemm_gflops": out["none"]["gemm_gflops"],
                       "openblas_tokens_per_s": out["import"]["train"]["tokens_per_s"],
                       "reference_tokens_per_s": out["none"]["train"]["tokens_per_s"]})
    assert out["import"]["blas"] == "preloaded" and out["none"]["blas"] == "disabled"


@pytest.mark.parametrize("size", scaling.SIZES, ids=[s[0].replace(" ", "_") for s in scaling.SIZES])
def test_mfu_and_memory_by_model_size(benchmark, record, size):
    label, hidden, layers, inter = size
    config = fixtures.llama_config(hidden, layers, scaling.ZOO_VOCAB, intermediate=inter)
    benchmark.group = "scaling: model size (zoo pretraining step, B=8, T=64)"
    m = benchmark.pedantic(lambda: bench_training.bracket_gemm(lambda: bench_training.measure_pretrain(
        config, batch=8, seq_len=64, steps=5, name=label)), rounds=1, iterations=1)
    record(m.summary())


@pytest.mark.parametrize("batch", [4, 16, 64])
def test_throughput_and_memory_by_batch(benchmark, record, batch):
    _, hidden, layers, inter = scaling.ZOO_BASE
    config = fixtures.llama_config(hidden, layers, scaling.ZOO_VOCAB, intermediate=inter)
    benchmark.group = "scaling: batch size (zoo base, T=64)"
    m = benchmark.pedantic(lambda: bench_training.bracket_gemm(lambda: bench_training.measure_pretrain(
        config, batch=batch, seq_len=64, steps=5)), rounds=1, iterations=1)
    record(m.summary())
