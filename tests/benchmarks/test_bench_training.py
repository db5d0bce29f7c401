"""Training-step throughput: SFT LoRA, full fine-tuning, dual-reward, GRPO and the zoo pretraining step.

Each round is one short training run on a freshly loaded model (loading is setup, not timed); the
steady-state figures of the last round (warm-up steps excluded) go to ``extra_info``.
"""

from __future__ import annotations

import math

import pytest

from lazarus_bench.bench import fixtures, scaling
from lazarus_bench.bench import training as bench_training

pytestmark = pytest.mark.benchmark

STEPS = 8
ROUNDS = 2


def _fresh(model_dir):
    return lambda: ((fixtures.load_handle(model_dir),), {})


def _run(benchmark, target, model_dir, group: str):
    benchmark.group = group
    return benchmark.pedantic(target, setup=_fresh(model_dir), rounds=ROUNDS, iterations=1)


def test_sft_lora_step(benchmark, record, bench_model_dir, sft_examples):
    m = _run(benchmark,
             lambda h: bench_training.bracket_gemm(lambda: bench_training.measure_sft(h, sft_examples, steps=STEPS)),
             bench_model_dir, "training: SFT")
    record(m.summary())
    assert 0 < m.trainable_params < m.total_params and all(math.isfinite(x) for x in m.losses)


def test_sft_full_step(benchmark, record, bench_model_dir, sft_examples):
    m = _run(benchmark, lambda h: bench_training.bracket_gemm(lambda: bench_training.measure_sft(
        h, sft_examples, lora=None, steps=STEPS, lr=1e-5)), bench_model_dir, "training: SFT")
    record(m.summary())
    assert m.trainable_params == m.total_params and all(math.isfinite(x) for x in m.losses)


def test_dual_reward_step(benchmark, record, bench_model_dir):
    m = _run(benchmark, lambda h: bench_training.measure_dual_reward(h, steps=STEPS), bench_model_dir,
             "training: methods")
    record(m.summary())
    assert all(math.isfinite(x) for x in m.losses)


def test_grpo_step(benchmark, record, bench_model_dir):
    figures = _run(benchmark, lambda h: bench_training.measure_grpo(h, steps=3), bench_model_dir, "training: methods")
    record(figures)
    assert figures["gen_tokens"] > 0 and figures["gen_tokens_per_s"] > 0 and figures["train_tokens_per_s"] > 0


def test_zoo_pretrain_step(benchmark, record):
    _, hidden, layers, inter = scaling.ZOO_BASE
    config = fixtures.llama_config(hidden, layers, scaling.ZOO_VOCAB, intermediate=inter)
    benchmark.group = "training: zoo pretraining"
    m = benchmark.pedantic(lambda: bench_training.bracket_gemm(lambda: bench_training.measure_pretrain(
        config, batch=16, seq_len=64, steps=6)), rounds=ROUNDS, iterations=1)
    record(m.summary())
    assert all(math.isfinite(x) for x in m.losses)
