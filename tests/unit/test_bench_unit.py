"""Fast checks of the bench package's pure parts: FLOP/MFU and memory formulas, the mlx-lm report parser, BENCH.md."""

from __future__ import annotations

import json
import re

import pytest

from lazarus_bench.bench import fixtures, formulas, render
from lazarus_bench.bench import mlx_lm as bench_mlx_lm
from lazarus_bench.bench import training as bench_training
from lazarus_bench.bench.formulas import Dims
from lazarus_bench.training.timing import StepTimer

# hidden 16, 2 layers, F 48, V 32, 4 heads of 4 (q_dim 16), 2 kv heads (kv_dim 8), tied embeddings
CONFIG = fixtures.llama_config(16, 2, 32, intermediate=48, heads=4, kv_heads=2)
BLOCK = 16 * 16 + 16 * 8 + 16 * 8 + 16 * 16 + 3 * 16 * 48  # q, k, v, o, gate/up/down = 3072
MATMUL = 2 * BLOCK + 32 * 16  # + tied unembedding = 6656
PARAMS = MATMUL + (2 * 2 + 1) * 16  # + RMSNorm gains = 6736
LORA_R2 = 2 * 2 * (2 * (16 + 16) + 2 * (16 + 8) + 3 * (16 + 48))  # 2 blocks x rank 2 x (q, o, k, v, MLP) = 1216


def test_dims_and_parameter_counts_match_a_built_model():
    from lazarus_bench.tiny import build_model
    from lazarus_bench.training.loop import count_params
    from lazarus_bench.training.lora import LoraSpec, apply_lora

    d = formulas.dims_of(CONFIG)
    assert d == Dims(hidden=16, layers=2, intermediate=48, vocab=32, heads=4, kv_heads=2, head_dim=4, tied=True)
    assert formulas.block_matmul_params(d) == BLOCK
    assert formulas.matmul_params(d) == MATMUL
    model = build_model(CONFIG)
    assert formulas.param_count(d) == PARAMS == count_params(model)
    apply_lora(model, LoraSpec(rank=2), d.layers)
    assert formulas.lora_param_count(d, 2) == LORA_R2 == count_params(model, trainable=True)


def test_training_flops_and_mfu_by_hand():
    d = formulas.dims_of(CONFIG)
    attention = 12 * 2 * 10 * 16  # 12 L T d_attn at T = 10
    assert formulas.train_flops_per_token(d, 10) == 6 * 6656 + attention == 43776
    assert formulas.train_flops_per_token(d, 10, lora_params=LORA_R2) == 4 * 6656 + 6 * 1216 + attention == 37760
    assert formulas.mfu(1000.0, 43776.0, 0.1) == pytest.approx(0.43776)
    assert formulas.mfu(1000.0, 43776.0, 0.0) != formulas.mfu(1000.0, 43776.0, 0.0)


def test_memory_model_by_hand():
    d = formulas.dims_of(CONFIG)
    a = 6 * 16 + 3 * 16 + 3 * 8 + 4 * 10 + 5 * 48  # 448 floats per token per layer at T = 10
    assert formulas.activation_floats_per_token_layer(d, 10) == a
    full = formulas.predict_memory(d, 2, 10)
    assert full.weights == full.grads == 4 * 6736
    assert full.optimizer == 8 * 6736
    assert full.activations == 4 * 20 * (2 * a + 2 * 16)
    assert full.logits == 4 * 20 * 32 * 6
    assert full.total == 16 * 6736 + 74240 + 15360 == full.to_dict()["total"]
    lora = formulas.predict_memory(d, 2, 10, lora_rank=2)
    assert lora.weights == 4 * (6736 + 1216)
    assert (lora.grads, lora.optimizer) == (4 * 1216, 8 * 1216)
    assert lora.activations == 4 * 20 * (2 * (a + 14) + 32)


LEGACY = ("Iter 10: Train loss 2.345, Learning Rate 1.000e-05, It/sec 1.234, Tokens/sec 567.890, "
          "Trained Tokens 4567, Peak mem 0.123 GB")
TABLE = (  # captured from mlx-lm 0.32 (rich output with colour codes; the val line must be ignored)
    "  \x1b[1miter   train_loss     tok/s     tokens\x1b[0m\n"
    "  \x1b[38;5;244m   1\x1b[0m    \x1b[1;35mval\x1b[0m \x1b[1m7.508\x1b[0m    \x1b[38;5;244m0.82s\x1b[0m\n"
    "  \x1b[38;5;244m   5\x1b[0m    \x1b[1;32m5.734 ▼\x1b[0m    \x1b[1m  270\x1b[0m    \x1b[38;5;244m  2.6k\x1b[0m\n"
    "    20    4.465 ▲    1,234     20.5k\n"
)


def test_parse_mlx_lm_report_both_formats():
    (legacy,) = formulas.parse_mlx_lm_report(LEGACY)
    assert legacy == {"iter": 10, "loss": 2.345, "it_per_s": 1.234, "tokens_per_s": 567.89, "trained_tokens": 4567,
                      "peak_mem_gb": 0.123}
    rows = formulas.parse_mlx_lm_report(TABLE)
    assert [(r["iter"], r["loss"], r["tokens_per_s"], r["trained_tokens"]) for r in rows] == [
        (5, 5.734, 270.0, 2600), (20, 4.465, 1234.0, 20500)]
    assert rows[0]["it_per_s"] is None and rows[0]["peak_mem_gb"] is None
    assert formulas.parse_mlx_lm_report("Loading pretrained model\nTraining\n") == []


def test_window_rates():
    seconds, tokens = [5.0, 1.0, 1.0, 1.0, 2.0, 2.0], [100] * 6
    assert formulas.window_rates(seconds, tokens, 2) == [100.0, 50.0]
    assert formulas.window_rates(seconds, tokens, 2, skip_windows=0)[0] == pytest.approx(200 / 6)
    assert formulas.window_means([1.0, 3.0, 5.0, 7.0, 9.0], 2) == [2.0, 6.0]


def test_mlx_lm_side_cpu_per_step_from_stamped_report_lines():
    output = LEGACY + "\n" + TABLE
    stamps = [(0.0, cpu, line) for cpu, line in zip((1.0, 2.0, 3.5), [ln for ln in output.splitlines()
                                                                     if bench_mlx_lm.is_report_line(ln)])]
    run = bench_mlx_lm.ProcessRun(0, output, 0.3, 10.0, 5.0, stamps)
    side = bench_mlx_lm._theirs_run("mlx_lm", run, tokens_per_row=64.0, report_every=5)
    assert side.window_cpu_s_per_step == pytest.approx([0.2, 0.3]) and side.cpu_s_per_step == pytest.approx(0.25)
    assert side.window_tokens_per_s == [270.0, 1234.0] and side.rows_per_s == pytest.approx(752.0 / 64)
    assert side.window_losses == [2.345, 5.734, 4.465] and side.iters == 20


def test_run_process_stamps_lines_and_reads_peak_rss():
    import sys

    code = "import sys; print('a'); print('Iter 5: Train loss 1.0, x, It/sec 1.0, Tokens/sec 2.0'); sys.exit(3)"
    run = bench_mlx_lm.run_process([sys.executable, "-c", code], stamp=bench_mlx_lm.is_report_line)
    assert run.returncode == 3 and run.output.splitlines()[0] == "a"
    assert len(run.stamps) == 1 and run.stamps[0][2].startswith("Iter 5")
    assert 0 < run.max_rss_gb < 1 and run.cpu_seconds >= 0


def test_step_timer_splits_compute_from_batch_building():
    import mlx.core as mx

    batch = (mx.zeros((2, 5)), None, None, mx.ones((2, 5)))
    timer = StepTimer(lambda step, rank, world: batch)
    timer.enter, timer.exit = [0.0, 3.0], [1.0, 3.5]
    timer.cpu_enter, timer.cpu_exit = [0.0, 1.0], [0.5, 1.5]
    assert timer.step_seconds(6.0) == [2.0, 2.5] and timer.wall_seconds(6.0) == [3.0, 3.0]
    assert timer.step_cpu_seconds(2.0) == [0.5, 0.5]
    timer(0)
    assert (timer.shape, timer.tokens[-1], timer.computed[-1]) == ((2, 5), 10, 10)


def test_fixed_length_texts_are_one_token_per_character(tmp_path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(fixtures.bench_tokenizer(tmp_path) / "tokenizer.json"))
    texts = fixtures.fixed_length_texts(20, 31, seed=1)
    assert all(len(t) == 31 for t in texts)
    assert {len(tok.encode(t).ids) for t in texts} == {32}  # BOS + one token per character


def _measurement(name: str, **kw) -> bench_training.TrainMeasurement:
    m = bench_training.TrainMeasurement(
        name=name, model="h128 x 8L (V 1024)", batch=8, seq_len=64, total_params=1_706_112,
        trainable_params=kw.get("trainable", 1_706_112), step_seconds=[2.0, 1.0, 0.5, 0.5, 0.7],
        step_tokens=[512] * 5, step_computed=[512] * 5, losses=[5.0, 4.0, 3.5, 3.0, 2.9], first_step_s=2.0,
        peak_memory_gb=0.09, max_rss_gb=0.4, step_cpu_seconds=[1.0, 0.4, 0.2, 0.2, 0.3],
        flops_per_token=1.0e7, gemm_gflops=40.0, predicted_memory_gb=0.1, runner="zoo.pretrain.train")
    return m


def test_train_measurement_steady_state():
    m = _measurement("zoo-pretrain")
    assert m.median_step_s == 0.5 and m.tokens_per_s == 1024.0 and m.tokens_per_cpu_s == 2560.0
    assert m.mfu == pytest.approx(1024.0 * 1.0e7 / 40e9)
    assert m.summary()["memory_ratio"] == pytest.approx(0.9)


def test_write_bench_on_synthetic_numbers(tmp_path):
    pre = _measurement("zoo-pretrain")

    def run(label: str, rate: float) -> dict:
        return bench_mlx_lm.MlxLmRun(label, 20, [rate], [0.17], [4.0, 3.0], rate, 0.17, rate / 64, None, 0.2, 20.0,
                                     6.0).to_dict()

    results = {
        "mode": "quick", "wall_s": 99.0, "model_source": "synthetic",
        "machine": {"cpu": "Test CPU", "cores": 2, "usable_cores": 2, "load_avg": [1.0, 1.0, 1.0],
                    "mlx_version": "0.0", "mlx_lm_version": "0.0", "device": "Device(cpu, 0)", "blas": "preloaded",
                    "blas_library": "/lib/libopenblas.so", "gemm_gflops": 123.4},
        "training": [_measurement("sft-lora", trainable=156_000).summary(), pre.summary()],
        "grpo": {"model": "m", "rollouts_per_step": 16, "max_new_tokens": 8, "gen_tokens_per_s": 100.0,
                 "train_tokens_per_s": 200.0, "tokens_per_s": 120.0, "gen_fraction": 0.4, "peak_memory_gb": 0.06},
        "lens": {"prompts": 16, "seq_len": 16, "layers": 9, "one_pass_prompts_per_s": 100.0,
                 "per_layer_prompts_per_s": 20.0, "api_prompts_per_s": 90.0, "ratio": 5.0, "ratio_cpu": 4.5,
                 "torch_prompts_per_s": 180.0, "api_over_torch": [0.4, 0.5, 0.6],
                 "torch_1_prompts_per_s": 120.0, "api_over_torch_1": [0.7, 0.75, 0.9],
                 "one_pass_over_torch_1": [0.8, 0.85, 0.95], "forward_over_torch_forward_1": [0.9, 0.97, 1.0],
                 "stacked_over_one_pass": [0.99, 1.02, 1.05], "stacked_max_entropy_diff": 0.0,
                 "api_over_torch_same_1": [0.78, 0.82, 0.95], "torch_same_1_prompts_per_s": 110.0,
                 "torch_same_agreement": {"tokens_equal": True, "top_ids_equal_share": 1.0,
                                          "max_entropy_diff": 3e-05, "max_kl_diff": 0.0002},
                 "split_s": {"api": 0.055, "forward": 0.041, "encode": 0.0014, "torch_1": 0.042,
                             "torch_forward_1": 0.039, "torch_same_1": 0.044},
                 "silu": {"layers": 8, "shape": [16, 16, 384], "silu_s": 0.04, "forward_s": 0.1, "silu_share": 0.4,
                          "exp_ns": 15.9, "mul_ns": 0.8, "numpy_exp_ns": 1.5}},
        "probes": {"prompts": 64, "layers": 9, "hidden": 128, "n_permutations": 5, "extract_s": 0.5,
                   "fit_s_per_layer": 0.25},
        "mlx_lm": {"config": {"batch": 8}, "matched": {
            "runs": [run("ours", 1000.0), run("mlx_lm", 800.0)], "ours_tokens_per_s": 1000.0,
            "mlx_lm_tokens_per_s": 800.0, "ratio": 1.25, "ours_cpu_s_per_step": 0.15, "mlx_lm_cpu_s_per_step": 0.18,
            "ours_tokens_per_cpu_s": 3413.0, "mlx_lm_tokens_per_cpu_s": 2844.0, "cpu_ratio": 1.2,
            "loss_curve": {"ours": [4.0, 3.0], "mlx_lm": [4.0, 3.001], "max_abs_diff": 0.001}},
            "stock": {"runs": [run("mlx_lm-stock", 200.0)], "mlx_lm_tokens_per_s": 200.0, "ratio": 5.0},
            "padded": {"runs": [run("ours-padded", 900.0), run("mlx_lm-padded", 450.0)], "row_tokens_mean": 11.0,
                       "row_tokens_max": 13, "mlx_lm_width": 33, "ratio_rows_per_s": 2.0, "ratio_tokens_per_s": 1.9,
                       "loss_curve": {"ours": [5.0, 4.0], "mlx_lm": [5.0, 4.002], "max_abs_diff": 0.002}}},
        "blas": {"import": {"blas": "preloaded", "library": "openblas", "gemm_gflops": 150.0,
                            "train": pre.summary()},
                 "none": {"blas": "disabled", "library": "libblas", "gemm_gflops": 6.0, "train": pre.summary()},
                 "gemm_ratio": 25.0, "train_ratio": 10.0},
        "scaling": {"seq_len": 64, "by_size": [pre.to_dict()], "by_batch": [pre.to_dict()]},
        "experts": {"batch": 16, "seq_len": 48, "forward_batch": 64, "forward_len": 8, "repeats": 3,
                    "train": {"gathered_s": 0.47, "dense_s": 0.62, "ratio": 1.3, "ratios": [1.2, 1.3, 1.4]},
                    "forward": {"gathered_s": 0.14, "dense_s": 0.18, "ratio": 1.25, "ratios": [1.1, 1.25, 1.3]}},
        "errors": {"probes": "RuntimeError: synthetic"},
    }
    path = render.write_bench(results, tmp_path)
    text = path.read_text()
    assert path.name == "BENCH.md" and "Test CPU" in text and "123 GFLOP/s" in text
    assert "the captured forward 41 ms against torch's forward with hidden states 39 ms" in text
    assert ("decoding and the result objects 12.6 ms against the top-k and entropy of torch's script from token ids "
            "3 ms. The whole API: 55 ms; torch: 42 ms from token ids, and 44 ms doing the API's work") in text
    assert "forward alone (1 thread) speed, interleaved repeats: median 0.97" in text
    assert ("the statistics in one compiled pass over the stacked layers / a round of eager ops per layer (both with "
            "the forward) speed, interleaved repeats: median 1.02 (range 0.99-1.05, 3 repeats)") in text
    assert "differ from the per-layer rounds' by at most 0 nats" in text
    for heading in ("## Ratios", "## Training step throughput", "## Logit lens and probes", "## SFT LoRA: ours vs",
                    "## BLAS", "## Scaling", "## Formulas", "## Errors"):
        assert heading in text
    assert "| (a) SFT LoRA tokens/s" in text and "1.25" in text and "25" in text and "1,024" in text
    assert json.loads((tmp_path / "bench.json").read_text())["lens"]["ratio"] == 5.0
    assert [r["value"] for r in render.summarise_ratios(results)][:4] == [1.25, 1.2, 5.0, 1.9]
    assert "short SFT rows, mlx-lm's order" in text and "4.002" in text and "PR #1697" in text
    assert re.search(r"\| \.\.\. same on torch with 1 thread \(our BLAS runs 1 thread\) +\| 120 ", text)
    assert "API / torch (1 thread) speed, interleaved repeats: median 0.75 (range 0.7-0.9, 3 repeats)" in text
    assert re.search(r"\| \(f\) `logit_lens\(\)` API / torch doing the same work \(text in; decoded top-k, entropy, "
                     r"KL out\), one thread each \(speed\) +\| 0\.82 +\| >= 0\.8: met +\| median of 3 interleaved "
                     r"repeats, range 0\.78-0\.95; 16 prompts x 16 tokens; outputs agree: tokens equal, top-k ids "
                     r"equal in 100\.0% of cells, entropy within 3e-05 nats, KL within 0\.0002", text)
    assert re.search(r"\| \(f\) `logit_lens\(\)` API / torch from token ids \(top-k and entropy only\), one "
                     r"thread each \(speed\) +\| 0\.75 +\| – \(torch does less work\) +\| median of 3", text)
    assert re.search(r"\| transformers on torch doing the API's work: text in, KL too, top-5 decoded \(1 thread\) "
                     r"+\| 110 ", text)
    assert "| (a) SFT LoRA tokens/s" in text and ">= 1.5" not in text  # the (a) target is retired
    assert "one captured forward + eager statistics / torch (1 thread) speed, interleaved repeats: median 0.85" in text
    assert "SiLU at the forward's shape (16 x 16 x 384) takes 40.0% of the captured forward (8 blocks" in text
    assert "MLX's CPU exp runs 15.9 ns per element, numpy's 1.5, an MLX multiply 0.8." in text
    assert re.search(r"\| \(e\) zoo:moe training step, the build's dense experts / mlx-lm's gathered \(speed-up\) +"
                     r"\| 1\.3 .*16 x 48 tokens: 0\.47 vs 0\.62 s; range 1\.2-1\.4 over 3 repeats; "
                     r"forward 64 x 8 x1\.25 \(1\.1-1\.3\)", text)


def test_same_work_agreement_compares_the_last_position_per_layer():
    """The API keeps (layers, positions) arrays, torch's script (layers,): a broadcast would compare every layer with
    every other and report a difference that is not there."""
    from types import SimpleNamespace

    import numpy as np

    from lazarus_bench.bench.lens import same_work_agreement

    entropy, kl = np.array([[0.5], [1.0], [2.0]]), np.array([[3.0], [0.2], [0.0]])
    top = [[[("a", 1, 0.5), ("b", 2, 0.2)]], [[("a", 1, 0.6), ("c", 3, 0.1)]], [[("b", 2, 0.9), ("a", 1, 0.05)]]]
    ours = [SimpleNamespace(tokens=["x", "y"], top=top, entropy=entropy, kl_to_final=kl)]
    theirs = [{"tokens": ["x", "y"], "entropy": np.array([0.5, 1.25, 2.0]), "kl": np.array([3.0, 0.2, 0.01]),
               "top": [[("a", 1, 0.5), ("b", 2, 0.2)], [("a", 1, 0.6), ("c", 3, 0.1)],
                       [("a", 1, 0.9), ("b", 2, 0.05)]]}]
    got = same_work_agreement(ours, theirs)
    assert got["tokens_equal"] and got["top_ids_equal_share"] == pytest.approx(2 / 3)
    assert got["max_entropy_diff"] == pytest.approx(0.25) and got["max_kl_diff"] == pytest.approx(0.01)
    assert not same_work_agreement(ours, [{**theirs[0], "tokens": ["x", "z"]}])["tokens_equal"]


def test_render_bench_md_with_nothing_measured():
    text = render.render_bench_md({"mode": "quick"})
    assert "No ratios measured." in text and "## Formulas" in text


def test_mlx_lm_order_tight_padding_changes_width_not_rows_or_loss():
    """mlx-lm's batch order padded to the batch's longest row: same rows and order, same SFT loss, less width."""
    import mlx.core as mx

    from lazarus_bench.tiny import build_model
    from lazarus_bench.training.data import Encoded
    from lazarus_bench.training.sft import sft_loss

    rows = [Encoded(list(range(1, 4 + (i * 7) % 20)), 2) for i in range(24)]
    wide = bench_mlx_lm.MlxLmOrder(rows, 4, seed=3, n_val_batches=1)
    tight = bench_mlx_lm.MlxLmOrder(rows, 4, seed=3, n_val_batches=1, tight=True)
    model = build_model(CONFIG, seed=0)
    widths = set()
    for step in range(8):
        a, b = wide(step), tight(step)
        n = b[0].shape[1]
        widths.add(n)
        assert a[0].shape[1] == max(len(r.ids) for r in rows) - 1 >= n
        assert mx.array_equal(a[0][:, :n], b[0]) and mx.array_equal(a[3][:, :n], b[3]) and a[3][:, n:].sum() == 0
        loss_a, ntok_a, _ = sft_loss(model, *a)
        loss_b, ntok_b, _ = sft_loss(model, *b)
        assert ntok_a.item() == ntok_b.item() and loss_a.item() == pytest.approx(loss_b.item(), rel=1e-5)
    assert len(widths) > 1


def test_mlx_lm_order_splits_each_batch_across_ranks():
    """Under ``--ranks N`` rank r takes every N-th row of mlx-lm's batch: together the ranks see that batch."""
    from lazarus_bench.training.data import Encoded

    rows = [Encoded(list(range(1, 4 + (i * 7) % 20)), 2) for i in range(24)]
    one, r0, r1 = (bench_mlx_lm.MlxLmOrder(rows, 4, seed=3, n_val_batches=1) for _ in range(3))
    for step in range(7):
        whole, a, b = one(step)[0], r0(step, 0, 2)[0], r1(step, 1, 2)[0]
        assert a.shape[0] == b.shape[0] == 2
        assert (whole[0::2] == a).all().item() and (whole[1::2] == b).all().item()


def test_mlx_lm_loss_counts_one_pad_target_per_padded_row_ours_does_not():
    """Why the short-row loss curves differ: mlx-lm's mask reaches one target past each padded row."""
    import mlx.core as mx
    from mlx_lm.tuner.trainer import default_loss

    from lazarus_bench.tiny import build_model
    from lazarus_bench.training.data import Encoded, pad_batch
    from lazarus_bench.training.sft import sft_loss

    rows = [[1, 5, 6, 7, 2], [1, 8, 9, 2], [1, 3, 2]]
    width = 9
    model = build_model(CONFIG, seed=0)
    batch = mx.array([r + [0] * (width - len(r)) for r in rows])
    _, theirs = default_loss(model, batch, mx.array([[0, len(r)] for r in rows]))
    ours = pad_batch([Encoded(r, 1) for r in rows], 0, width)
    _, ntok, _ = sft_loss(model, *ours.arrays())
    assert ntok.item() == sum(len(r) - 1 for r in rows) == 9
    assert theirs.item() == sum(len(r) for r in rows) == 12


def test_main_job_and_zoo_build_costs_from_what_they_wrote(tmp_path):
    """Worker-seconds add up per claim and model over protocols; a model's span runs from its first record's start
    (end minus wall) to its last record's end; the zoo total is one run's only when it covers every model's build."""
    import json

    from lazarus_bench.bench.costs import main_job_costs, zoo_build_costs

    records = tmp_path / "records"
    records.mkdir()
    for name, claim, model, wall, end, protocol in [
            ("a", "H01", "m1", 10.0, "2026-01-01T00:01:00+00:00", "corrected"),
            ("b", "H01", "m1", 5.0, "2026-01-01T00:02:00+00:00", "original"),
            ("c", "H02", "m1", 30.0, "2026-01-01T00:00:50+00:00", "corrected"),
            ("d", "H02", "m2", 7.0, "2026-01-01T01:00:00+00:00", "corrected")]:
        seconds = {"measure": wall / 4, "controls": wall * 3 / 4} if claim == "H02" else None  # H01's are older
        (records / f"{name}.json").write_text(json.dumps(
            {"claim": {"id": claim}, "model": {"id": model}, "wall_s": wall, "timestamp": end, "status": "ok",
             "protocol": protocol, "seconds": seconds}))
    (records / "skip.json").write_text(json.dumps({"claim": {"id": "H02"}, "model": {"id": "m3"}, "wall_s": 0.0,
                                                   "timestamp": "2026-01-01T01:00:00+00:00", "status": "skipped",
                                                   "protocol": "corrected"}))
    (records / "broken.json").write_text("{")
    job = main_job_costs(records)
    assert job["per_claim"] == {"H01": {"m1": 15.0}, "H02": {"m1": 30.0, "m2": 7.0, "m3": 0.0}}
    assert job["worker_s"] == {"m1": 45.0, "m2": 7.0, "m3": 0.0}
    assert job["span_s"] == {"m1": 120.0 - 20.0, "m2": 7.0, "m3": 0.0}
    assert job["verdicts"] == {"H01": 1, "H02": 2}, "one verdict per (claim, model): no ablation, no skip"
    assert job["longest_s"] == {"H01": 10.0, "H02": 30.0}
    assert job["controls_over_measure"] == {"H02": 3.0}
    text = _flat(render.render_bench_md({"mode": "quick", "main_job": job}))
    assert "| H01 | 15 | – | – | 15 | 0.167 |" in text and "| H02 | 30 | 7 | 0 | 18.5 | 0.5 |" in text
    assert "| H01 | 15 | – | – | 15 | 0.167 | – | – |" in text and "| H02 | 30 | 7 | 0 | 18.5 | 0.5 | – | 3 |" in text
    assert "| all (worker-s) | 45 | 7 | 0 | 17.3 | 0.5 |" in text  # re-run: 52 / 2 worker-s, but one record is 30
    (row,) = [r for r in render.summarise_ratios({"main_job": job}) if r["ratio"].startswith("(g)")]
    assert row["value"] == pytest.approx(52.0 / 3) and row["target"] == "<= 62: met"  # 52 worker-s over 3 verdicts
    assert main_job_costs(tmp_path / "none") is None

    for kind, total in (("base", 100.0), ("moe", 250.0)):
        (tmp_path / "zoo" / kind).mkdir(parents=True)
        (tmp_path / "zoo" / kind / "manifest.json").write_text(json.dumps(
            {"build_seconds": total / 2, "train_tokens": 64, "tokens_per_s": 3.0, "ranks": 2, "recipe": 3,
             "wall_seconds_total_so_far": total}))
    zoo = zoo_build_costs(tmp_path / "zoo")
    assert [r["model"] for r in zoo["models"]] == ["base", "moe"] and zoo["wall_s"] == 250.0
    assert zoo["sum_build_s"] == 175.0 and zoo["one_run"]
    text = render.render_bench_md({"mode": "quick", "zoo_build": zoo})
    assert "## Zoo build (from the shipped manifests): 250 s in one run" in text

    man = tmp_path / "zoo" / "moe" / "manifest.json"
    man.write_text(json.dumps({**json.loads(man.read_text()), "wall_seconds_total_so_far": 130.0}))  # moe resumed
    zoo = zoo_build_costs(tmp_path / "zoo")
    assert not zoo["one_run"]
    text = render.render_bench_md({"mode": "quick", "zoo_build": zoo})
    assert "175 s summed over the models, not one run (the last run's running total is 130 s)" in text


def test_main_job_costs_list_builds_in_seed_order(tmp_path):
    from lazarus_bench.bench.costs import main_job_costs

    for model in ("zoo:base@s12", "zoo:base@s4", "zoo:base", "zoo:base@s13"):
        (tmp_path / f"{model.replace(':', '_')}.json").write_text(json.dumps(
            {"claim": {"id": "H01"}, "model": {"id": model}, "wall_s": 1.0, "timestamp": "2026-01-01T00:01:00+00:00",
             "status": "ok", "protocol": "corrected"}))
    assert main_job_costs(tmp_path)["models"] == ["zoo:base", "zoo:base@s4", "zoo:base@s12", "zoo:base@s13"]


def _flat(text: str) -> str:
    """Markdown with each line's runs of spaces collapsed (tables are padded to their widest cell)."""
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def test_jit_section_shows_both_modes_speed_ups_and_where_the_step_goes():
    jit = {"available": True, "rounds": 3, "batch": 16, "seq_len": 40, "losses_bitwise_equal": True,
           "step_s": {"plain": 0.3, "fma": 0.2}, "forward_s": {"plain": 0.1, "fma": 0.08},
           "lens_prompts_per_s": {"plain": 500.0, "fma": 800.0},
           "primitives": {"SwiGLU (silu(gate) * up)": {"calls": 8, "plain_forward_backward_s": 0.06,
                                                       "fma_forward_backward_s": 0.02,
                                                       "plain_forward_s": 0.03, "fma_forward_s": 0.01}}}
    text = _flat(render.render_bench_md({"mode": "quick", "jit": jit}))
    assert "| compiled AdamW step, zoo:base, 16 x 40 tokens (s) | 0.3 | 0.2 | 1.5 |" in text
    assert "| `logit_lens()` API, 64 prompts, all layers (prompts/s) | 500 | 800 | 1.6 |" in text
    assert "| SwiGLU (silu(gate) * up) | 8 | 60 | 20.0% | 20 | 10.0% |" in text
    assert "bitwise equal in every process of both modes: yes" in text
    off = render.render_bench_md({"mode": "quick", "jit": {"available": False, "reason": "no FMA"}})
    assert "## JIT flags: not measured (no FMA)" in off


def test_engines_section_gives_walls_overhead_and_record_agreement():
    engines = {"available": True, "rounds": 2, "claims": ["H01", "H12"], "model": "zoo-micro:base", "jobs": 2,
               "wall_s": {"local": 40.0, "ray": 52.5}, "walls": {"local": [39.0, 41.0], "ray": [50.0, 55.0]},
               "worker_s": {"local": 60.0, "ray": 61.0}, "overhead_s": 12.5, "ratio": 52.5 / 40.0, "records": 2,
               "identical": 1, "differ": ["H12__m__corrected.json"]}
    text = _flat(render.render_bench_md({"mode": "quick", "engines": engines}))
    assert "| ray | 52.5 | 50, 55 | 61 |" in text and "| local | 40 | 39, 41 | 60 |" in text
    assert "12.5 s per run (x1.31" in text and "identical (verdict and statistic): 1/2" in text
    assert "differ: H12__m__corrected.json" in text
    off = _flat(render.render_bench_md({"mode": "quick", "engines": {"available": False, "reason": "no Ray"}}))
    assert "Ray engine vs the local pool: not measured (no Ray)" in off


def test_without_ray_the_engine_benchmark_says_so(monkeypatch):
    import sys

    from lazarus_bench.bench.engines import measure_engines

    monkeypatch.setitem(sys.modules, "ray", None)
    assert measure_engines() == {"available": False,
                                 "reason": "Ray is not installed (pip install 'lazarus-bench[ray]')"}


def test_kernel_fallback_flags_pre_avx2_kernels_on_an_avx2_cpu_only():
    from lazarus_bench.bench.machine import kernel_fallback

    assert "runs its Prescott kernels" in kernel_fallback("Prescott", True)
    assert "unset LAZARUS_BLAS_KERNEL to run its AVX2 kernels (Haswell)" in kernel_fallback("Sandybridge", True)
    assert kernel_fallback("Prescott", False) is None  # an old CPU: its kernel is the right one
    assert kernel_fallback("Haswell", True) is None and kernel_fallback("SkylakeX", True) is None
    assert kernel_fallback(None, True) is None  # no OpenBLAS (macOS Accelerate, or not preloaded)


def test_bench_records_re_reads_the_record_figures_and_keeps_the_measured_ones(tmp_path):
    """``bench --records`` replaces the main job's costs and ratio (g) with what the records say now, keeps every
    measured figure of the run, and says on the page when it read them; the records' own sum is the check."""
    import json

    from lazarus_bench.bench.run import refresh_from_records

    records = tmp_path / "records"
    records.mkdir()
    for name, claim, wall in (("a", "H01", 12.0), ("b", "H02", 30.0)):
        (records / f"{name}.json").write_text(json.dumps(
            {"claim": {"id": claim}, "model": {"id": "m1"}, "wall_s": wall, "timestamp": "2026-01-01T00:01:00+00:00",
             "status": "ok", "protocol": "corrected"}))
    old_job = {"models": ["m1"], "per_claim": {"H01": {"m1": 999.0}}, "worker_s": {"m1": 999.0},
               "span_s": {"m1": 999.0}, "verdicts": {"H01": 1}, "longest_s": {"H01": 999.0}}
    run = {"machine": {}, "mode": "full", "wall_s": 332.0, "model_source": "zoo:base", "main_job": old_job}
    (tmp_path / "bench.json").write_text(json.dumps(run))
    text = _flat(refresh_from_records(tmp_path).read_text())
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["main_job"]["per_claim"] == {"H01": {"m1": 12.0}, "H02": {"m1": 30.0}}
    assert saved["model_source"] == "zoo:base" and saved["wall_s"] == 332.0 and saved["records_read"]
    assert "Mode: full; wall time 332 s; model: zoo:base." in text
    (row,) = [r for r in saved["ratios"] if r["ratio"].startswith("(g)")]
    assert row["value"] == pytest.approx(42.0 / 2)
    assert f"re-read from the records and manifests at {saved['records_read']} (`bench --records`)" in text
    assert "| H01 | 12 |" in text and "999" not in text
