"""`run --plan` and the fit check: a plan from a config alone, the roofline by hand, skips before loading."""

from __future__ import annotations

import json
import math

import pytest

from lazarus_bench.bench.formulas import dims_of, param_count
from lazarus_bench.bench.plan import (
    GB,
    PROCESS_BYTES,
    Rates,
    Workload,
    plan_claim,
    plan_run,
    render,
    too_big,
    workload,
)
from lazarus_bench.cli import main
from lazarus_bench.harness.registry import all_claims
from lazarus_bench.zoo.replicas import FULL, REPLICAS, full_config

RATES = Rates(gemm_gflops=100.0, bandwidth_gbs=10.0, exp_per_s=1e8, fit_s=0.01, quick_fit_s=0.004,
              init_params_per_s=5e7, memory_bytes=int(24 * GB))


@pytest.fixture
def config_only(tmp_path, monkeypatch):
    """A folder with Llama-3.2-1B's config.json and nothing else: no weights, no tokenizer. The machine's rates are
    fixed (``test_rates_are_measured`` measures them once), so the command tests are quick and their figures exact."""
    from lazarus_bench.bench import plan

    monkeypatch.setattr(plan, "measure_rates", lambda gemm_gflops=None: RATES)
    folder = tmp_path / "llama-1b-config"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(full_config("Llama-3.2-1B")))
    return folder


def test_rates_are_measured():
    """Every rate the plan reads is measured here and positive."""
    from lazarus_bench.bench.plan import measure_rates

    rates = measure_rates(gemm_gflops=50.0)
    assert rates.gemm_gflops == 50.0 and rates.device in ("cpu", "gpu")
    assert min(rates.bandwidth_gbs, rates.exp_per_s, rates.fit_s, rates.quick_fit_s, rates.init_params_per_s) > 0
    assert rates.memory_bytes > 0


def test_full_replicas_have_the_real_sizes():
    """Parameter counts of the hub checkpoints (Llama-3.2-1B's model card; TinyLlama's 1.1B): the configs are real."""
    assert param_count(dims_of(full_config("Llama-3.2-1B"))) == 1_235_814_400
    assert param_count(dims_of(full_config("TinyLlama-1.1B-Chat-v1.0"))) == 1_100_048_384
    assert set(FULL) <= set(REPLICAS)
    assert full_config("Llama-3.2-1B")["vocab_size"] == 128256


def test_roofline_matches_hand_arithmetic():
    """A square product is compute-bound and a skinny one bandwidth-bound, each priced by its own limit."""
    w = Workload(dims_of(full_config("Llama-3.2-1B")), RATES)
    square = w.matmul(2048, 2048, 2048)
    assert square == pytest.approx(2 * 2048**3 / 100e9)
    skinny = w.matmul(8, 2048, 128256)
    assert skinny == pytest.approx(4 * (2048 * 128256 + 8 * 2048 + 8 * 128256) / 10e9)
    one_lens = w.unembed(8)
    assert one_lens == pytest.approx(skinny + 3 * 8 * 128256 / 1e8)


def test_training_memory_is_the_memory_model_plus_adapters():
    from lazarus_bench.bench.formulas import lora_param_count, predict_memory

    d = dims_of(full_config("Llama-3.2-1B"))
    w = Workload(d, RATES)
    mem = predict_memory(d, 8, 16, lora_rank=8)
    assert w.train(1, 8, 16, lora_rank=8).peak == mem.total - mem.weights + 4 * lora_param_count(d, 8)


def test_plan_of_a_claim_counts_its_controls():
    """H01's graded control runs strengths x replicates times: its share of the plan scales with that count."""
    from lazarus_bench.harness.registry import get_claim

    claim = get_claim("H01")
    w = workload(full_config("Llama-3.2-1B"), RATES)
    plan = plan_claim(claim, w)
    graded = next(p for p in plan.parts if p.name.startswith("graded"))
    assert graded.runs == len(claim.graded[0].strengths) * claim.graded[0].replicates
    nulls = next(p for p in plan.parts if p.name.startswith("null"))
    assert nulls.runs == claim.nulls[0].replicates
    assert plan.seconds == pytest.approx(sum(p.seconds for p in plan.parts))
    assert plan.peak_bytes == PROCESS_BYTES + max(p.held(w) for p in plan.parts)
    measurement = plan.parts[0]
    assert measurement.held(w) == w.weight_bytes + param_count(w.d) * 4 + measurement.cost.peak


def test_fit_follows_the_memory_given():
    from lazarus_bench.harness.registry import all_claims

    config = full_config("Llama-3.2-1B")
    roomy = plan_run(config, all_claims(), RATES)
    small = plan_run(config, all_claims(), Rates(**{**RATES.to_dict(), "memory_bytes": int(8 * GB)}))
    assert all(p.fits == (p.peak_bytes <= 24 * GB) for p in roomy)
    assert {p.claim for p in small if not p.fits} > {p.claim for p in roomy if not p.fits}
    reasons = too_big(small, Rates(**{**RATES.to_dict(), "memory_bytes": int(8 * GB)}))
    assert all("8.0 GB is available" in why and "--force" in why for why in reasons.values())
    text = render("m", config, small, RATES)
    assert "do not fit in memory" in text and "1.24B parameters" in text


def test_plan_cli_reads_only_the_config(config_only, capsys):
    """No weights and no tokenizer in the folder: the plan still prints every claim, with its total."""
    assert main(["run", "--plan", "-m", str(config_only), "--memory", "16", "-j", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| H")]
    assert len(rows) == len(all_claims()) == 18
    assert "16.0 GB available" in out and "total:" in out and "GEMM 100 GFLOP/s" in out
    h07 = next(r for r in rows if r.startswith("| H07"))
    assert "NO" in h07  # GRPO's full fine-tuning with a frozen reference: over 30 GB at 1B in float32


def test_run_skips_a_claim_that_cannot_fit_before_loading(config_only, capsys):
    """The folder has no weights, so any attempt to load would fail: the skip comes first, with the figures."""
    code = main(["run", "-m", str(config_only), "--claims", "H07", "--memory", "8", "-j", "1",
                 "--report-dir", str(config_only.parent / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "H07 on" in err and "skipped: the plan predicts a" in err and "8.0 GB is available" in err
    assert "no claim fits in memory" in err
    assert not (config_only.parent / "out" / "records").exists()


def test_force_runs_it_anyway(config_only, capsys):
    """With --force the fit check is off: the run goes on to load the model, which has no weights here."""
    code = main(["run", "-m", str(config_only), "--claims", "H07", "--memory", "8", "-j", "1", "--force",
                 "--report-dir", str(config_only.parent / "out")])
    err = capsys.readouterr().err
    assert code != 0 and "skipped: the plan predicts" not in err


@pytest.mark.parametrize("bad", ["0", "-3", "lots", "nan"])
def test_memory_option_rejects_nonsense(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--plan", "--memory", bad])
    assert exc.value.code == 2
    assert "memory size in GB" in capsys.readouterr().err


def test_plan_of_a_missing_config_is_one_line(tmp_path, capsys):
    assert main(["run", "--plan", "-m", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.json" in err[0]


def test_small_model_plans_are_small():
    """The micro zoo's config: well under a GB and a few minutes, so the zoo's own runs are never skipped."""
    from lazarus_bench.harness.registry import all_claims
    from lazarus_bench.tiny import tiny_config

    plans = plan_run(tiny_config("llama"), all_claims(), RATES)
    assert all(p.fits and p.peak_bytes < PROCESS_BYTES + GB for p in plans)
    assert not math.isnan(sum(p.seconds for p in plans))


def test_full_size_table_is_the_plan_beside_the_committed_measurements(tmp_path):
    """The committed full-size check renders with the plan's figures for the same rates; a broken file is one line."""
    from pathlib import Path

    from lazarus_bench.bench.fullsize import predicted, with_predictions
    from lazarus_bench.bench.run import read_fullsize
    from lazarus_bench.errors import LazarusError

    folder = Path(__file__).resolve().parents[1] / "reports" / "fullsize"
    checks = read_fullsize(folder)
    assert {c["rates"]["device"] for c in checks} == {"cpu", "gpu"}
    cpu = next(c for c in checks if c["file"] == "cpu-llama-1b.json")
    w = workload(cpu["config"], Rates(**cpu["rates"]))
    h01 = next(r for r in cpu["rows"] if r["part"] == "H01")
    assert h01["predicted_s"] == pytest.approx(predicted("H01", w).seconds)
    assert h01["time_ratio"] == pytest.approx(h01["measured_s"] / h01["predicted_s"])
    graded = predicted("H01:graded", w)
    assert graded.runs == 1 and graded.name.startswith("graded:") and graded.resident == 2
    (tmp_path / "bad.json").write_text('{"rows": []}')
    with pytest.raises(LazarusError, match="bad.json: not a full-size check"):
        read_fullsize(tmp_path)
    assert with_predictions(cpu)["rows"][0]["predicted_s"] == h01["predicted_s"]


def test_a_zoo_plan_reads_no_weights(monkeypatch):
    """A zoo or replica id's plan opens its config.json alone: checking or hashing the weights fails the test."""
    from lazarus_bench.bench.plan import read_config
    from lazarus_bench.zoo import registry

    def refuse(*args, **kwargs):
        pytest.fail(f"the plan touched the weights: {args}")

    monkeypatch.setattr(registry, "verify", refuse)
    monkeypatch.setattr(registry, "sha256_file", refuse)
    assert read_config("zoo:base")["hidden_size"] == 128


def test_a_claim_that_does_not_apply_is_listed_with_its_reason_at_no_cost():
    from lazarus_bench.harness.registry import all_claims
    from lazarus_bench.tiny import tiny_config

    dense = {p.claim: p for p in plan_run(full_config("Llama-3.2-1B"), all_claims(), RATES, model="my-llama")}
    assert dense["H10"].seconds == 0 and dense["H10"].note.startswith("skipped:") and "MoE" in dense["H10"].note
    assert dense["H01"].seconds > 0
    moe = {p.claim: p for p in plan_run(tiny_config("mixtral"), all_claims(), RATES, model="my-moe")}
    assert moe["H10"].seconds > 0 and not moe["H10"].note


@pytest.mark.parametrize("text, why", [("{not json", "not valid JSON (Expecting property name"),
                                       ('{"model_type": "llama"}', "not a model config (no hidden_size)"),
                                       ("[1, 2]", "expected a JSON object, got list"),
                                       ("\udcff", "not UTF-8 text (byte 0xff at line 1, column 1)")])
def test_a_bad_config_is_one_line(config_only, capsys, text, why):
    (config_only / "config.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    assert main(["run", "--plan", "-m", str(config_only)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and why in err[0] and "config.json" in err[0]
