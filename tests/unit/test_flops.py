"""FLOP counters: weights per token, forward and decode counts, training steps compiled or eager, and the suite
efficiency in BENCH.md, each against the PaLM formulas in ``bench/formulas.py`` computed from the config."""

from __future__ import annotations

import json

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx.utils import tree_flatten
from mlx_lm.models.cache import make_prompt_cache

from lazarus_bench import flops
from lazarus_bench.bench import render
from lazarus_bench.bench.costs import main_job_costs
from lazarus_bench.bench.formulas import dims_of, matmul_params, train_flops_per_token
from lazarus_bench.tiny import build_model, tiny_config
from lazarus_bench.training.loop import TrainConfig, train_loop
from lazarus_bench.training.lora import LoraSpec, apply_lora


def _model(arch="llama"):
    cfg = tiny_config(arch)
    return flops.counted(build_model(cfg)), cfg


@pytest.mark.parametrize("arch", ["llama", "llama_untied"])
def test_matmul_weights_equal_the_config_formula(arch):
    model, cfg = _model(arch)
    assert flops.matmul_weights(model) == matmul_params(dims_of(cfg))


def test_experts_count_at_k_of_e_and_quantized_weights_unpacked():
    model, cfg = _model("mixtral")
    d, k, e = dims_of(cfg), cfg["num_experts_per_tok"], cfg["num_local_experts"]
    attention = d.hidden * d.q_dim + 2 * d.hidden * d.kv_dim + d.q_dim * d.hidden
    expected = d.layers * (attention + e * d.hidden + k * 3 * d.hidden * d.intermediate) + d.vocab * d.hidden
    assert flops.matmul_weights(model) == expected

    dense, cfg = _model("llama")
    before = flops.matmul_weights(dense)
    nn.quantize(dense, group_size=32, bits=4)
    assert any(v.dtype == mx.uint32 for _, v in tree_flatten(dense.parameters()))
    assert flops.matmul_weights(dense) == before


def test_forward_and_cached_decode_count_tokens_and_attended_keys():
    model, cfg = _model()
    d = dims_of(cfg)
    n = matmul_params(d)
    start = flops.totals()
    mx.eval(model(mx.zeros((2, 5), dtype=mx.int32)))
    got = flops.since(start)
    assert got["forward_tokens"] == 10 and got["train_tokens"] == 0
    assert got["flops"] == 10 * (2 * n + 4 * d.layers * 5 * d.q_dim)

    cache = make_prompt_cache(model)
    mx.eval(model(mx.zeros((1, 5), dtype=mx.int32), cache=cache))
    start = flops.totals()
    mx.eval(model(mx.zeros((1, 1), dtype=mx.int32), cache=cache))
    assert flops.since(start)["flops"] == 2 * n + 4 * d.layers * 6 * d.q_dim
    assert flops.counted(model) is model and type(model).__mro__[1].__name__ == "Model"


def _train(model, compile_step: bool, steps: int = 5):
    """Full-weight next-token training with two batch widths in turn, so a compiled step traces twice."""

    def loss_fn(m, x):
        logits = m(x[:, :-1])
        loss = nn.losses.cross_entropy(logits, x[:, 1:], reduction="mean")
        return loss, mx.array(x[:, 1:].size), {}

    def batch_at(step, rank, world):
        width = 7 if step % 2 == 0 else 5
        return (mx.random.randint(0, 96, (3, width), key=mx.random.key(step)),)

    start = flops.totals()
    train_loop(model, loss_fn, batch_at, TrainConfig(steps=steps, lr=1e-3, compile=compile_step), progress=False)
    return flops.since(start)


def test_training_steps_count_the_palm_formula_compiled_or_eager():
    cfg = tiny_config("llama")
    d = dims_of(cfg)
    expected = sum(3 * t * train_flops_per_token(d, t) for t in (6, 4, 6, 4, 6))
    eager = _train(flops.counted(build_model(cfg)), compile_step=False)
    compiled = _train(flops.counted(build_model(cfg)), compile_step=True)
    assert eager == compiled
    assert compiled["train_tokens"] == 3 * (6 + 4 + 6 + 4 + 6) and compiled["forward_tokens"] == 0
    assert compiled["flops"] == pytest.approx(expected, rel=1e-12)


def test_adapter_training_counts_frozen_weights_without_weight_gradients():
    model, cfg = _model()
    apply_lora(model, LoraSpec(rank=4), cfg["num_hidden_layers"])
    lora = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    d = dims_of(cfg)
    got = _train(model, compile_step=True, steps=2)
    expected = sum(3 * t * train_flops_per_token(d, t, lora_params=lora) for t in (6, 4))
    assert got["flops"] == pytest.approx(expected, rel=1e-12)


def test_suite_efficiency_is_counted_flops_over_worker_peak(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    rows = [("a", "H01", 10.0, 50.0, 2e11), ("b", "H02", 20.0, 40.0, 1e11), ("c", "H02", 5.0, None, None),
            ("skip", "H03", None, None, None)]
    for name, claim, wall, gemm, counted in rows:
        rec = {"claim": {"id": claim}, "model": {"id": "m"}, "wall_s": wall, "timestamp": "2026-01-01T00:00:00+00:00"}
        if gemm:
            rec.update(work={"flops": counted}, environment={"blas": {"gemm_gflops_1024": gemm}})
        if claim == "H01":
            rec.update(status="ok", seconds={"measure": 0.5, "controls": 6.0})
        (records / f"{name}.json").write_text(json.dumps(rec))
    job = main_job_costs(records)
    work = job["work"]
    assert work["records"] == 2 and work["uncounted"] == 1
    assert work["efficiency"] == pytest.approx(3e11 / (10 * 50e9 + 20 * 40e9))
    assert work["per_claim"] == pytest.approx({"H01": 2e11 / 5e11, "H02": 1e11 / 8e11})
    text = render.render_bench_md({"mode": "quick", "main_job": job})
    cells = {row[0]: row[1:] for row in ([c.strip() for c in line.strip("|").split("|")]
                                          for line in text.splitlines() if line.startswith("| H0"))}
    assert cells == {"H01": ["10", "–", "0.167", "40.0%", "12"],  # controls / measure: 6 s / 0.5 s
                     "H02": ["25", "–", "0.333", "12.5%", "–"], "H03": ["0", "–", "0", "–", "–"]}
    # H02 and H03 have no verdicts; re-run minutes: H02's longest record (20 s) beats 25 s / 2
    line = render._efficiency_line(work)
    assert line.startswith("Suite efficiency: 23.1% (0.3 TFLOP counted over 1.3 TFLOP of peak")
    assert "1 records without counts left out" in line
