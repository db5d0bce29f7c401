"""H11-H14 end to end on tiny random models (fast tier), and the helpers their verdicts rest on."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from types import SimpleNamespace

import mlx.core as mx
import numpy as np
import pytest

from lazarus_bench import prompts
from lazarus_bench.claims.h11_sft_task_tokens import corrected_lens_top, original_lens_top, task_token_scores
from lazarus_bench.claims.h12_lora_vs_full import lora_vs_full
from lazarus_bench.claims.h13_remain_token import family_prob
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.models import load_model
from lazarus_bench.stats import ClaimStatistic, Verdict, threshold_claim
from lazarus_bench.stats.verdicts import combine, equivalence_claim, exact_claim
from lazarus_bench.suite.runner import ModelPool, run_claim

VERDICTS = {"SUPPORTED", "REFUTED", "INCONCLUSIVE"}


@pytest.fixture(scope="module")
def pool():
    return ModelPool()


@pytest.fixture(scope="module")
def instruct_dir(saved_model, tmp_path_factory):
    """A copy of the tiny llama that looks like an instruct model (chat template, 'instruct' in its name)."""
    out = tmp_path_factory.mktemp("models") / "tiny-instruct"
    shutil.copytree(saved_model("llama"), out)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    cfg_path.write_text(json.dumps(cfg))
    return out


def run(claim_id, model_dir, report_dir, pool, protocol="corrected", cache_dir=None, overrides=None, claim=None):
    """``claim_id``'s fast tier on ``model_dir`` (``claim``: a variant of it, e.g. without its graded control)."""
    return run_claim(claim or get_claim(claim_id), str(model_dir), tier="fast", report_dir=report_dir,
                     protocol=protocol, pool=pool, log=lambda message: None,
                     cache_dir=cache_dir or report_dir / "cache", overrides=overrides)


def check_record(record):
    assert record.status == "ok", record.traceback or record.reason
    stat = record.statistic
    assert stat.verdict in VERDICTS
    if record.measured_verdict:  # a failed gate (NOT TESTABLE) or a missed control (INCONCLUSIVE)
        assert record.verdict in ("NOT TESTABLE", "INCONCLUSIVE") and record.measured_verdict == stat.verdict
    else:
        assert record.verdict == stat.verdict
    assert isinstance(stat, ClaimStatistic)
    assert set(stat.details["criteria_verdicts"].values()) <= VERDICTS
    assert record.seeds == (0,) and record.samples and record.curves
    for curve in record.curves.values():
        assert curve["series"] and all(len(ys) == len(curve["x"]) for ys in curve["series"].values())
    return stat


def test_h11_both_protocols(saved_model, tmp_path, pool, check_gates):
    ungraded = replace(get_claim("H11"), graded=())  # its graded control has a test of its own
    records = {proto: run("H11", saved_model("llama"), tmp_path, pool, proto, claim=ungraded)
               for proto in ("corrected", "original")}
    for proto, record in records.items():
        stat = check_record(record)
        samples = record.samples
        steps = sorted({s["step"] for s in samples})
        assert steps == [0, *get_claim("H11").fast["checkpoints"]]

        def mean_peak(step):
            return np.mean([s["peak"] for s in samples if s["step"] == step])

        # the rise from max(step 0, 10 R), R the same mean peak on 5 random-init models (CLAIMS.md revision 4)
        level = stat.details["random_levels"]["mean"]
        floor = max(mean_peak(0), 10 * np.mean(level["random_draws"]))
        assert stat.details["rise_floor"] == pytest.approx(floor) and len(level["random_draws"]) == 5
        assert stat.statistic == pytest.approx(mean_peak(steps[-1]) / floor)
        ceiling = stat.details["threshold_forms"]
        assert ceiling["scale_free"] == pytest.approx(max(0.10, 10 * ceiling["random_level"]))
        for s in samples:  # the verdict reads the full vocabulary: never below a top-k view of the same tokens
            assert s["peak"] == pytest.approx(max(s["task_prob_by_layer"]))
            assert s["peak"] == s["peak_full_vocab"] >= s["peak_top_written"] - 1e-9 >= s["peak_top_scaled"] - 2e-9
        assert {s["lens"] for s in samples if s["step"] > 0} == {proto}
        assert {s["lens"] for s in samples if s["step"] == 0} == {"corrected"}
        assert stat.verdict == "INCONCLUSIVE"
        val = {int(k): v for k, v in next(iter(record.extra["val_loss"].values())).items()}
        check_gates(record, {"val loss fell": 1.0 - val[steps[-1]] / val[0]})
        assert stat.details["protocol"] == proto
        # one seed: no MDE exists, and the record says why instead of printing 0
        assert math.isnan(stat.details["mde"]) and stat.details["mde_reason"].startswith("n = 1")
        assert math.isnan(record.mde["value"]) and "n = 1" in record.mde["how"]
    for record in records.values():
        [control] = record.controls
        assert control.name == "SFT with a classification term" and control.built, control.reason
        assert control.statistic["value"] != record.statistic.statistic
    trained = [json.loads((e / "cache_manifest.json").read_text())["parts"] for e in (tmp_path / "cache").iterdir()
               if not e.name.startswith(".")]
    h11 = sorted(q["cls_weight"] for q in trained if q.get("fixture") == "seed000-lora-sft-checkpoints")
    assert h11 == [0.0, 0.4], "one plain SFT run and one with the classification term, shared by both protocols"
    baseline = [[s["peak"] for s in r.samples if s["step"] == 0] for r in records.values()]
    assert baseline[0] == baseline[1]
    assert records["original"].extra["val_loss"] == records["corrected"].extra["val_loss"]


def test_h11_learning_rate_zero_fails_the_manipulation_floor(saved_model, tmp_path, pool, check_gates):
    """SFT at learning rate 0 learns nothing: the validation loss falls exactly 0, below the declared floor, so the
    record is NOT TESTABLE (never REFUTED) and no control is run."""
    record = run("H11", saved_model("llama"), tmp_path, pool, overrides={"lr": 0.0})
    assert get_claim("H11").params["min_val_loss_fall"] == 0.25
    [_, gate] = record.fitness
    assert gate.name == "val loss fell" and gate.value == pytest.approx(0.0, abs=1e-6) and not gate.passed
    assert record.verdict == "NOT TESTABLE" and record.controls == ()
    check_gates(record, {"val loss fell": 0.0})
    measure_only = replace(get_claim("H11"), controls=(), graded=(), nulls=())  # the gate is read in the measure
    trained = run("H11", saved_model("llama"), tmp_path, pool, claim=measure_only)
    assert {g.name: g.value for g in trained.fitness}["val loss fell"] > 0.25


def test_h11_mde_is_in_ratio_units_at_five_seeds(saved_model, tmp_path, pool):
    """Five seeds (the declared minimum): the rise ratio is sign-tested across seeds and its MDE is the sign test's
    detectable shift in units of the per-seed ratios' SD, beside the writeup's 2.5x (0.5 above the 2x threshold). The
    measure alone: the controls, which do not enter the MDE, run in the other H11 tests."""
    from lazarus_bench.stats.power import min_detectable_d_sign

    measure_only = replace(get_claim("H11"), controls=(), graded=(), nulls=())
    record = run_claim(measure_only, str(saved_model("llama")), tier="fast", report_dir=tmp_path, pool=pool,
                       log=lambda m: None, cache_dir=tmp_path / "cache", n_seeds=5)
    assert record.status == "ok", record.reason
    d = record.statistic.details
    rises = d["rises"]
    assert len(rises) == 5 and d["criteria"]["rises"]["details"]["test"] == "sign"
    assert d["mde"] == pytest.approx(min_detectable_d_sign(5) * np.std(rises, ddof=1)) and d["mde"] > 0
    assert record.mde["value"] == d["mde"] and "mde_reason" not in d
    assert d["writeup_rise"] == pytest.approx(2.5) and d["writeup_margin"] == pytest.approx(0.5)
    assert d["mde_vs_writeup_margin"] == pytest.approx(d["mde"] / 0.5)


def test_h11_h13_skip_instruct_models(instruct_dir, tmp_path, pool):
    for claim_id in ("H11", "H13"):
        record = run(claim_id, instruct_dir, tmp_path, pool)
        assert record.status == "skipped" and "instruct" in record.reason


OPEN_SIZE = {"min_params": 1000}  # H12's size gate: open it on a tiny model to reach a verdict
# H13's pre-run gates: a random tiny model has no 'remain' read-out
OPEN_REMAIN = {"min_remain_presence": 0.0, "min_remain_association": 0.0}


def test_h12_lora_vs_full(saved_model, tmp_path, pool):
    record = run("H12", saved_model("llama"), tmp_path, pool, overrides=OPEN_SIZE)
    stat = check_record(record)
    by = {s["method"]: s for s in record.samples}
    assert stat.statistic == pytest.approx(by["full"]["peak_memory_gb"] / by["lora"]["peak_memory_gb"])
    assert by["lora"]["trainable_params"] < by["full"]["trainable_params"] == by["full"]["total_params"]
    fraction = by["lora"]["trainable_params"] / by["full"]["total_params"]
    criteria = stat.details["criteria"]
    assert criteria["trainable_fraction"]["statistic"] == pytest.approx(fraction)
    assert criteria["speed"]["statistic"] == pytest.approx(by["lora"]["tokens_per_s"] / by["full"]["tokens_per_s"])
    val_ratio = by["lora"]["final_val_loss"] / by["full"]["final_val_loss"]
    assert criteria["val_loss"]["statistic"] == pytest.approx(val_ratio - 1)
    assert fraction > 0.01 and stat.verdict == record.verdict == "REFUTED" and record.measured_verdict is None
    # With the size gate in force the tiny model is NOT TESTABLE, its ratios measured as description (CLAIMS.md
    # revision 4): the gate's value is the model's parameter count as stored in its weights file.
    gated = run("H12", saved_model("llama"), tmp_path / "gated", pool)
    stored = sum(v.size for v in mx.load(str(saved_model("llama") / "model.safetensors")).values())
    [_, gate] = gated.fitness
    assert gate.name == "model size" and gate.value == stored == by["full"]["total_params"]
    assert not gate.passed and gated.verdict == "NOT TESTABLE" and "model size" in gated.reason
    assert gated.controls == () and gated.statistic.details["criteria"]["trainable_fraction"]["statistic"] == fraction
    assert {s["method"] for s in gated.samples} == {"lora", "full"} and gated.extra["runs"]


def test_a_passed_gate_leaves_the_measured_verdict(saved_model, tmp_path, pool):
    record = run("H12", saved_model("llama"), tmp_path, pool, overrides={"min_params": 1000})
    assert record.fitness[1].passed and record.measured_verdict is None
    assert record.verdict == record.statistic.verdict == "REFUTED"


def test_lora_vs_full_order_and_ratios(saved_model):
    out = lora_vs_full(lambda: load_model(str(saved_model("llama"))), steps=2, seed=1, n_train=16, n_val=8)
    assert out["order"] == ["full", "lora"]
    assert out["memory_ratio"] == pytest.approx(out["full"]["peak_memory_gb"] / out["lora"]["peak_memory_gb"])
    assert out["lora"]["peak_memory_gb"] > 0 and out["full"]["peak_memory_gb"] > 0


def test_h13_remain_and_late_answers(saved_model, tmp_path, pool, check_gates):
    record = run("H13", saved_model("llama"), tmp_path, pool, overrides=OPEN_REMAIN)
    stat = check_record(record)
    assert list(record.extra["adapter_reused_from_cache"].values()) == [False]
    sft = [s for s in record.samples if s["model"] == "sft"]
    base = [s for s in record.samples if s["model"] == "base"]
    details = stat.details
    # the rise over max(before SFT, 10 R), R the same window peak on 5 random-init models (CLAIMS.md revision 4)
    level = details["random_level"]
    floor = max(np.mean([s["family_in_window"] for s in base]), 10 * np.mean(level["random_draws"]))
    assert stat.statistic == pytest.approx(np.mean([s["family_in_window"] for s in sft]) / floor)
    assert details["writeup_form"]["mean_family"] == pytest.approx(np.mean([s["family_in_window"] for s in sft]))
    n_layers = len(sft[0]["family_by_layer"])  # the tiny model's 4 blocks: depth 0.62 +- 1/16 holds none but 2
    assert details["window"] == [2] and details["late_from"] == 4 - 1 and n_layers == 4
    for s in sft:
        assert s["family_in_window"] == pytest.approx(max(s["family_by_layer"][b] for b in details["window"]))
        late = s["crystallisation_layer"] is not None and s["crystallisation_layer"] >= details["late_from"]
        assert s["late"] == late
    assert {s["prompt"] for s in sft} == {"89 - 34 = ", "65 - 28 = ", "100 - 43 = "}
    # The gates: the base model's remain-family peak on subtraction prompts (the record's own "base" rows), and that
    # over the same peak on the other operations' prompts, recomputed here through the lens.
    from lazarus_bench.analysis.lens import logit_lens
    from lazarus_bench.claims.h13_remain_token import family_prob, family_targets

    base_rows = [s for s in record.samples if s["model"] == "base"]
    numerator = np.mean([max(s["family_by_layer"]) for s in base_rows])
    handle = load_model(str(saved_model("llama")))
    words, _ = family_targets(handle, prompts.remain_family())
    others = [it.text for it in prompts.seed000_tests() if it.label != "subtract"]
    lens = logit_lens(handle, others, words, layers=list(range(handle.n_layers)), top_k=1)
    denominator = np.mean([family_prob(res, words).max() for res in lens])
    check_gates(record, {"remain presence before SFT": numerator,
                         "remain association before SFT": numerator / denominator})


def test_h14_stops_after_stage_one_below_the_writeups_baseline(saved_model, tmp_path, pool):
    """Stage 1 is trained for every seed first; below the gate no stage 2 is trained and no control is run."""
    record = run("H14", saved_model("llama"), tmp_path, pool, overrides={"min_stage1_accuracy": 1.0})
    assert record.verdict == "NOT TESTABLE" and record.controls == () and record.samples == []
    accuracy = record.extra["descriptive"]["stage1_symbolic_accuracy"]
    assert record.fitness[1:] == (replace(record.fitness[1], value=float(np.mean(list(accuracy.values()))),
                                      passed=False),)


def test_h14_two_stage_branches(saved_model, tmp_path, pool, check_gates):
    record = run("H14", saved_model("llama"), tmp_path, pool, overrides={"min_stage1_accuracy": 0.0})
    stat = check_record(record)
    rows = {(s["config"], s["stage"]): s for s in record.samples}
    drop = 100 * (rows["low_lr", "stage1"]["symbolic"] - rows["low_lr", "stage2"]["symbolic"])
    assert stat.statistic == pytest.approx(drop)
    moved = max(abs(100 * (rows[b, "stage1"][k] - rows[b, "stage2"][k]))
                for b in ("low_lr", "aggressive") for k in ("symbolic", "semantic"))
    check_gates(record, {"stage-1 symbolic accuracy": rows["low_lr", "stage1"]["symbolic"],
                         "stage 2 moved accuracy": moved})
    assert {k: v["details"]["test"] for k, v in stat.details["criteria"].items()} == {
        "low_lr_keeps": "sign", "aggressive_destroys": "sign", "no_classifier": "sign"}
    assert all(change > 0 for seed in record.extra["param_change_relative"].values() for change in seed.values())
    for stage in ("baseline", "stage1"):
        assert rows["low_lr", stage] == {**rows["aggressive", stage], "config": "low_lr"}


def test_h14_stage_two_at_learning_rate_zero_is_not_testable(saved_model, tmp_path, pool, check_gates):
    """Both stage-2 branches at learning rate 0: every answer stays as stage 1 left it, so the manipulation floor
    (accuracy moved by >= 8 points in a branch) reads exactly 0 and the record is NOT TESTABLE, not a verdict that
    the low-LR branch keeps computation or that the aggressive one does not destroy it."""
    record = run("H14", saved_model("llama"), tmp_path, pool,
                 overrides={"min_stage1_accuracy": 0.0, "low_lr_scale": 0.0, "aggressive_lr_scale": 0.0})
    gates = {g.name: g for g in record.fitness}
    assert gates["stage 2 moved accuracy"].value == 0.0 and not gates["stage 2 moved accuracy"].passed
    assert gates["stage 2 moved accuracy"].threshold == get_claim("H14").params["min_stage2_accuracy_move"] == 8.0
    assert record.verdict == "NOT TESTABLE" and "stage 2 moved accuracy" in record.reason
    assert record.controls == () and record.measured_verdict == record.statistic.verdict
    check_gates(record, {"stage-1 symbolic accuracy": gates["stage-1 symbolic accuracy"].value,
                         "stage 2 moved accuracy": 0.0})
    assert all(v == 0.0 for seed in record.extra["class_word_logprob_change"].values() for v in seed.values())


def test_h14_accuracy_moved_reads_either_branch_and_category():
    from lazarus_bench.claims.h14_two_stage import accuracy_moved
    from lazarus_bench.training.two_stage import TwoStageResult

    def result(s1, s2, w1=0.0, w2=0.0):
        def metrics(sym, sem):
            return {"symbolic_all": {"accuracy": sym}, "semantic_all": {"accuracy": sem}}

        return TwoStageResult(baseline={}, stage1=metrics(s1, w1), stage2=metrics(s2, w2), stage1_train={},
                              stage2_train={}, config={})

    kept = result(0.75, 0.75)
    assert accuracy_moved({"low_lr": kept, "aggressive": result(0.75, 0.25)}) == pytest.approx(50.0)
    assert accuracy_moved({"low_lr": result(0.5, 0.5, 0.2, 0.3), "aggressive": kept}) == pytest.approx(10.0)
    assert accuracy_moved({"low_lr": result(0.5, 0.625), "aggressive": kept}) == pytest.approx(12.5)
    assert accuracy_moved({"low_lr": kept, "aggressive": kept}) == 0.0


def test_task_token_scores_exact_vs_substring():
    top = [[(" TimeSpan", 1, 0.02), (" Multiply", 2, 0.01), ("multiply", 3, 0.005)],
           [("(++", 4, 0.03), ("x", 5, 0.01), ("7", 6, 0.001)]]
    words = ["multiply", "times", "product", "*", "add", "plus", "sum", "+"]
    scores = task_token_scores(top, ["multiply", "times", "product", "*"], words)
    assert scores["exact"] == pytest.approx([0.015, 0.0])
    assert scores["exact_token"] == [" Multiply", None]
    assert scores["substring"] == pytest.approx([0.02, 0.03])
    assert scores["substring_token"] == [" TimeSpan", "(++"]


def test_family_prob_drops_extensions_of_counted_sequences():
    def spelling(ids, p):
        return SimpleNamespace(ids=ids, full_prob=np.array(p))

    res = SimpleNamespace(targets={
        "remain": SimpleNamespace(spellings={"a": spelling([5, 6], [0.2, 0.3]), "b": spelling([9, 5, 6], [0.1, 0.0])}),
        "remaining": SimpleNamespace(spellings={"a": spelling([5, 6, 7], [0.15, 0.25]),
                                                "b": spelling([8], [0.05, 0.4])}),
        "again": SimpleNamespace(spellings={"a": spelling([5, 6], [0.2, 0.3]), "b": spelling([8], [0.05, 0.4])}),
    })
    np.testing.assert_allclose(family_prob(res, ["remain", "remaining", "again"]), [0.35, 0.7])


def test_original_lens_is_non_causal_and_uses_input_embeddings(saved_model):
    texts = ["23 + 45 = ", "89 - 34 = "]
    tied = load_model(str(saved_model("llama")))
    ours, theirs = corrected_lens_top(tied, texts, 5), original_lens_top(tied, texts, 5)
    for a, b in zip(ours, theirs):
        assert [t for t, _, _ in a[0]] == [t for t, _, _ in b[0]]
        np.testing.assert_allclose([p for *_, p in a[0]], [p for *_, p in b[0]], rtol=1e-4, atol=1e-6)
        assert any(not np.allclose([p for *_, p in x], [p for *_, p in y], atol=1e-6) for x, y in zip(a[1:], b[1:]))
    untied = load_model(str(saved_model("llama_untied")))
    block0 = [row[0] for row in original_lens_top(untied, texts, 5)]
    assert block0 != [row[0] for row in corrected_lens_top(untied, texts, 5)]


def test_equivalence_exact_and_combine():
    inside = equivalence_claim([0.01, -0.01, 0.0, 0.005, -0.004, 0.002], 0.05, 0.05, test="t", min_n=3,
                               name="x")
    assert inside.verdict == Verdict.SUPPORTED and inside.p_value < 0.05
    outside = equivalence_claim([0.2, 0.22, 0.19, 0.21, 0.2], 0.05, 0.05, test="sign", min_n=3, name="x")
    assert outside.verdict == Verdict.REFUTED
    assert equivalence_claim([0.0], 0.05, 0.05, test="sign", min_n=3, name="x").verdict == Verdict.INCONCLUSIVE
    assert exact_claim(0.005, 0.01, "below", "f", 3).verdict == Verdict.SUPPORTED
    refuted = exact_claim(0.09, 0.01, "below", "f", 3)
    assert refuted.verdict == Verdict.REFUTED and refuted.p_value is None
    good = threshold_claim([0.5, 0.6, 0.55, 0.52], 0.1, "above", test="t")
    open_ = threshold_claim([0.5], 0.1, "above", test="sign")
    assert combine(good, {"a": good, "b": good}).verdict == Verdict.SUPPORTED
    assert combine(good, {"a": good, "b": open_}).verdict == Verdict.INCONCLUSIVE
    combined = combine(good, {"a": refuted, "b": open_})
    assert combined.verdict == Verdict.REFUTED and combined.statistic == good.statistic
    assert combined.details["criteria_verdicts"] == {"a": "REFUTED", "b": "INCONCLUSIVE"}
    assert not math.isnan(combined.statistic)


def test_h13_analyses_the_adapter_h12_trained(saved_model, tmp_path, pool):
    cache = tmp_path / "shared"
    run("H12", saved_model("llama"), tmp_path / "a", pool, cache_dir=cache, overrides=OPEN_SIZE)
    shared = run("H13", saved_model("llama"), tmp_path / "a", pool, cache_dir=cache, overrides=OPEN_REMAIN)
    own = run("H13", saved_model("llama"), tmp_path / "b", pool, cache_dir=tmp_path / "own", overrides=OPEN_REMAIN)
    assert list(shared.extra["adapter_reused_from_cache"].values()) == [True]
    assert list(own.extra["adapter_reused_from_cache"].values()) == [False]
    for a, b in zip(shared.samples, own.samples):
        np.testing.assert_allclose(a["family_by_layer"], b["family_by_layer"], rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(a["answer_prob_by_layer"], b["answer_prob_by_layer"], rtol=1e-4, atol=1e-7)


def test_h11_top_k_is_the_same_share_of_the_vocabulary():
    from lazarus_bench.claims.h11_sft_task_tokens import scaled_top_k

    p = get_claim("H11").parameters("slow")
    assert scaled_top_k(p, 128256) == 20 and scaled_top_k(p, 32000) == 5 and scaled_top_k(p, 1024) == 1
    assert p["layer_window_fraction"] == 0.125 and p["verdict_top_k"] is None


def test_h13_window_and_late_blocks_are_fractions_of_depth():
    """0.62 +- 1/16 of depth and the last 3/16: blocks 9-10 and 13-15 of 16, block 5 and 7 of 8 (CLAIMS.md rev. 4)."""
    from lazarus_bench.claims.h13_remain_token import late_start
    from lazarus_bench.harness.common import depth_window

    assert depth_window(16, 0.62, 0.0625) == [9, 10] and late_start(16, 0.1875) == 13
    assert depth_window(8, 0.62, 0.0625) == [5] and late_start(8, 0.1875) == 7
    assert depth_window(22, 0.62, 0.0625) == [13, 14, 15] and late_start(22, 0.1875) == 18


def test_h11_depth_window_is_a_share_of_depth():
    """Blocks whose depth b/L is within +-0.125 of 0.56: the writeup's L9 of 16 is inside, and the window is about a
    quarter of the blocks at any depth (the old +-max(1, round(0.125 L)) blocks covered 3 of 4 on small models)."""
    from lazarus_bench.harness.common import depth_window

    assert depth_window(16, 0.56, 0.125) == [7, 8, 9, 10]
    assert depth_window(8, 0.56, 0.125) == [4, 5]
    assert depth_window(4, 0.56, 0.125) == [2]
    assert depth_window(22, 0.56, 0.125) == [10, 11, 12, 13, 14, 15]
    assert depth_window(1, 0.56, 0.125) == [0]


def test_h11_registers_a_task_token_at_the_writeups_one_percent(monkeypatch):
    """At V = 1,024 the vocabulary-scaled top-k is 1, and a task token at the writeup's 1% is not even in the top 20
    when 40 other tokens are likelier: the verdict's full-vocabulary probability still reads it (1%), the top-k
    views read 0."""
    from lazarus_bench.claims import h11_sft_task_tokens as h11

    vocab = 1024
    texts = [f"t{i}" for i in range(vocab)]
    texts[7], texts[8], texts[9] = " multiply", "Times", " plus"
    handle = SimpleNamespace(decode_token=lambda i: texts[i])
    tests = prompts.seed000_tests()
    probs = np.full((len(tests), 4, vocab), 0.0)
    probs[:, :, 100:140] = 0.8 / 40
    probs[:, :, 7] = 0.004  # both spellings and any case count
    probs[:, :, 8] = 0.006
    probs[:, :, 9] = 0.015  # another class's word: not the prompt's task token
    probs[:, :, 200:] = (1.0 - probs.sum(axis=-1, keepdims=True)) / (vocab - 200)
    probs[:, 2, 8] = 0.016  # the peak, at block 2
    monkeypatch.setattr(h11, "lens_probs_for", lambda lens: lambda h, t: probs)
    params = get_claim("H11").parameters("slow")
    masks = h11.task_token_masks(handle, vocab)
    rows = h11.h11_checkpoint(handle, params, "corrected", masks)
    for item, row in zip(tests, rows):
        if item.label == "multiply":
            assert row["peak"] == pytest.approx(0.02) and row["peak_layer"] == 2 and row["peak_token"] == "Times"
            assert row["task_prob_by_layer"] == pytest.approx([0.01, 0.01, 0.02, 0.01])
        elif item.label == "add":
            assert row["peak"] == pytest.approx(0.015) and row["peak_token"] == " plus"
        assert row["top_k_scaled"] == 1 and row["peak_top_scaled"] == 0.0 and row["peak_top_written"] == 0.0
    cut = h11.h11_checkpoint(handle, {**params, "verdict_top_k": 20}, "corrected", masks)
    assert all(row["peak"] == 0.0 and row["peak_layer"] is None for row in cut)


def test_h14_eval_prompts_and_protocols():
    from lazarus_bench.claims.h14_two_stage import two_stage_configs
    from lazarus_bench.training.two_stage import eval_prompt_texts

    extra = prompts.two_stage_extra()
    for category in ("symbolic", "semantic"):
        assert len(extra.where(category=category)) == 20
    assert not set(extra.texts()) & set(prompts.two_stage_eval().texts())
    assert set(extra.texts()) <= set(eval_prompt_texts())
    assert prompts.number_words(23) == "twenty three" and prompts.number_words(40) == "forty"
    for sym, sem in zip(extra.where(category="symbolic"), extra.where(category="semantic")):
        assert (sym.a, sym.b, sym.answer) == (sem.a, sem.b, sem.answer)
        assert eval(sym.text.rstrip(" =")) == sym.answer  # noqa: S307 (our own arithmetic prompt)
    p = get_claim("H14").parameters("slow")
    assert get_claim("H14").protocols == ("corrected", "original")
    original, corrected = two_stage_configs(p, 0, "original"), two_stage_configs(p, 0, "corrected")
    for branch in ("low_lr", "aggressive"):
        assert original[branch].stage2.train.optimizer == "sgd" and corrected[branch].stage2.train.optimizer == "adamw"
        assert original[branch].stage2.train.lr == corrected[branch].stage2.train.lr
        assert original[branch].stage1 == corrected[branch].stage1


def test_one_factor_ablations_run_on_base_models_only(instruct_dir, tmp_path, pool):
    """A corrected+<defect> protocol on an instruct model is a skip with its reason, before any training."""
    record = run("H05a", instruct_dir, tmp_path, pool, protocol="corrected+optimizer")
    assert record.status == "skipped" and record.reason.startswith("one-factor ablations run on base models")
    assert not (tmp_path / "cache").exists(), "nothing was trained"


def test_h11_null_draws_as_many_other_words_per_class_never_a_task_token():
    """The null's sets: each class's task tokens replaced by as many other word tokens (no task word, no substring
    match, no digits or short pieces), disjoint across classes, one draw per replicate; too few words: not built."""
    from lazarus_bench.claims.h11_sft_task_tokens import random_word_masks
    from lazarus_bench.harness.base import ControlUnavailable

    texts = [" multiply", "add", "7", " =", "ab", " remainder", *(f" {c}{d}x" for c in "abcdefgh" for d in "pqrs")]
    own = {"*": np.array([t.strip() == "multiply" for t in texts]), "+": np.array([t == "add" for t in texts])}
    masks = {"texts": texts, "own": own, "substring": np.array(["remain" in t for t in texts])}
    one, again, other = (random_word_masks(masks, d) for d in (0, 0, 1))
    words = {i for i, t in enumerate(texts) if t.strip().isalpha() and len(t.strip()) >= 3} - {0, 1, 5}
    for drawn in (one, other):
        assert {k: int(v.sum()) for k, v in drawn["own"].items()} == {"*": 1, "+": 1}
        picked = [int(np.flatnonzero(v)[0]) for v in drawn["own"].values()]
        assert set(picked) <= words and len(set(picked)) == 2
    assert all((one["own"][k] == again["own"][k]).all() for k in own)
    assert any(not (one["own"][k] == random_word_masks(masks, d)["own"][k]).all() for d in range(1, 6) for k in own)
    with pytest.raises(ControlUnavailable, match="fewer than the 2 task tokens"):
        random_word_masks({**masks, "texts": texts[:7], "substring": masks["substring"][:7],
                           "own": {k: v[:7] for k, v in own.items()}}, 0)


def test_h11_null_fires_where_the_ceiling_is_crossed_and_stays_quiet_below_it(saved_model, tmp_path, pool):
    """The random-words null can fire: with the ceiling at ~0 every draw crosses it and is flagged; at the writeup's
    10% (k_random 0: T' = T) no draw of this model's other words reaches it. Two seeds, so alpha 0.3 lets the sign
    test (p = 0.25) decide."""
    nulls_only = replace(get_claim("H11"), controls=(), graded=())
    flagged = {}
    for ceiling in (1e-12, 0.10):
        record = run_claim(nulls_only, str(saved_model("llama")), tier="fast", report_dir=tmp_path, pool=pool,
                           log=lambda message: None, cache_dir=tmp_path / "cache", n_seeds=2,
                           overrides={"max_prob": ceiling, "k_random": 0, "alpha": 0.3,
                                      "min_seeds": 2})
        assert record.nulls, (record.verdict, record.reason)
        [null] = record.nulls
        assert null.built and null.replicates == 1, null.reason
        flagged[ceiling] = null.flagged
    assert flagged == {1e-12: 1, 0.10: 0}
