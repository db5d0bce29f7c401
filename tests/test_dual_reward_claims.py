"""H05a, H05b, H06, H08, H09 end to end on tiny models (fast tier), verdict logic on synthetic seeds, statistics
recomputed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from lazarus_bench import prompts, stats
from lazarus_bench.analysis.ceiling import lens_ceilings
from lazarus_bench.claims.h01_lens_op_words import scale_free_threshold
from lazarus_bench.claims.h05_dual_reward_names_op import h05a_verdict
from lazarus_bench.claims.h06_base_vs_instruct import h06_statistic
from lazarus_bench.claims.h08_grpo_dual_collapse import chance_collapse_rate, collapse_words, grpo_config, is_collapsed
from lazarus_bench.claims.h09_collapse_fixes import FIXES, h09_statistic
from lazarus_bench.harness.common import restricted_lens
from lazarus_bench.harness.fixtures import dual_sample
from lazarus_bench.harness.pairs import INSTRUCT_PAIRS
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.models import load_model
from lazarus_bench.stats import Verdict
from lazarus_bench.suite.runner import run_claim
from lazarus_bench.training.data import class_token_ids
from lazarus_bench.training.dual_reward import evaluate_classifier

OPS = list(prompts.operation_words())
OPEN_CEILING = {"min_ceiling_over_floor": 0.0}
OPEN_FLOOR = {"min_cls_loss_fall": -10.0}  # 4 fast-tier steps cannot halve the loss: open the floor to test the rest
# H08/H09 stop at the first GRPO run below a floor (ClaimContext.floor): open both to measure every run
OPEN_GRPO_FLOORS = {"min_cls_loss_fall": -1e9, "min_readout_move": 0.0, "min_reward_rise": -1.0}
STAT_FIELDS = {"name", "statistic", "ci_low", "ci_high", "confidence", "effect_size", "p_value", "n", "verdict",
               "reason", "details"}


def _run(claim_id, model_dir, tmp_path, **kw):
    if claim_id == "H05a":  # a tiny random llama's lens ceiling is 1.6 x H01's T': opened here, closed in its own test
        kw["overrides"] = {**OPEN_CEILING, **kw.get("overrides", {})}
    record = run_claim(get_claim(claim_id), str(model_dir), tier="fast", report_dir=tmp_path / "reports",
                       log=lambda message: None, **kw)
    assert record.status == "ok", record.traceback or record.reason
    assert record.verdict in {v.value for v in Verdict}
    assert set(record.statistic.to_dict()) == STAT_FIELDS
    assert record.statistic.verdict == (record.measured_verdict or record.verdict)
    assert record.samples and record.curves and record.ours
    for curve in record.curves.values():
        assert curve["x"] and all(len(ys) <= len(curve["x"]) for ys in curve["series"].values())
    return record


def _same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)


def test_h05a_both_protocols_and_statistic_from_samples(saved_model, tmp_path, check_gates):
    model = saved_model("llama")
    record = _run("H05a", model, tmp_path, n_seeds=2, overrides={"min_seeds": 2})
    samples, st = record.samples, record.statistic
    assert [s["seed"] for s in samples] == [0, 1] and record.seeds == (0, 1)
    assert {"cls_loss", "answer_loss", "lens_true_op_word"} <= set(record.curves)
    assert len(record.curves["cls_loss"]["x"]) == record.params["steps"]
    handle = load_model(str(model))
    ids = class_token_ids(handle, OPS)
    ceilings = lens_ceilings(handle, ids.values())
    reached = np.mean([ceilings[ids[w]].reached for w in prompts.dual_reward_eval().labels()])
    floor = scale_free_threshold(handle, get_claim("H01").parameters("fast"))["scale_free"]
    check_gates(record, {"cls loss fell": min(1 - s["final_cls_loss"] / s["initial_cls_loss"] for s in samples),
                         "lens ceiling over H01's T'": reached / floor})
    assert min(s["param_change_relative"] for s in samples) > 0
    probs = [s["vocab_prob_after"] for s in samples]
    again = stats.threshold_claim([v / reached for v in probs], 0.36, "above", 0.05, test="sign", min_n=2)
    assert st.details["test"] == "sign" == get_claim("H05a").tests["share"]
    assert st.n == 2 and _same(st.statistic, again.statistic) and _same(st.p_value, again.p_value)
    assert _same(st.ci_low, again.ci_low) and _same(st.ci_high, again.ci_high)
    above = stats.threshold_claim([v / floor for v in probs], 1.0, "above", 0.05, test="sign", min_n=2)
    assert _same(st.details["criteria"]["floor"]["statistic"], above.statistic)
    correct = st.details["correct"]
    assert correct["n"] == 2, "the seed is the unit: 2 seeds, not 16 pooled prompts"
    per_seed = [sps.binomtest(s["correct_after"], 8, 0.25, alternative="greater").pvalue for s in samples]
    assert correct["p_value"] == pytest.approx(max(per_seed))
    assert "answer_guard" not in st.details
    for s in samples:
        assert 0 <= s["correct_after"] <= s["n_prompts"] == 8
        assert 0 <= s["vocab_prob_after"] <= s["restricted_prob_after"] <= 1
    original = _run("H05a", model, tmp_path, protocol="original")
    assert original.protocol == "original" and original.statistic.verdict == "INCONCLUSIVE"
    assert "too few seeds" in original.statistic.reason
    cls_fell = {g.name: g for g in original.fitness}["cls loss fell"]
    assert (original.verdict == "NOT TESTABLE") == (not cls_fell.passed)


def test_h05b_reuses_h05a_runs_and_tests_per_seed_changes(saved_model, tmp_path, check_gates):
    model, cache = saved_model("llama"), tmp_path / "cache"
    h05a = _run("H05a", model, tmp_path, n_seeds=2, overrides={"min_seeds": 2}, cache_dir=cache)
    record = _run("H05b", model, tmp_path, n_seeds=2, cache_dir=cache,
                  overrides={"min_seeds": 2, "min_base_answers": 0.0, **OPEN_FLOOR})
    assert [s["train_seconds"] for s in record.samples] == [s["train_seconds"] for s in h05a.samples]
    changes = [s["answer_accuracy_after"] - s["answer_accuracy_before"] for s in record.samples]
    again = stats.threshold_claim(changes, -0.10, "above", 0.05, test="sign", min_n=2)
    st = record.statistic
    assert st.n == 2 and _same(st.statistic, again.statistic)
    rows = record.samples
    check_gates(record, {"base answers": np.mean([s["answer_accuracy_before"] for s in rows]),
                         "cls loss fell": min(1 - s["final_cls_loss"] / s["initial_cls_loss"] for s in rows)})
    controls = {c.name: c for c in record.controls}
    assert controls["answers destroyed"].built and not controls["answers kept by construction"].built


def test_h06_pairs_base_with_instruct_and_reuses_cached_base_runs(saved_model, tmp_path, monkeypatch, check_gates):
    base, instruct = str(saved_model("llama")), str(saved_model("llama", seed=1))
    skipped = run_claim(get_claim("H06"), base, tier="fast", report_dir=tmp_path / "reports", log=lambda m: None)
    assert skipped.status == "skipped" and "no instruct variant" in skipped.reason
    monkeypatch.setitem(INSTRUCT_PAIRS, base, instruct)
    cache = tmp_path / "cache"
    h05 = _run("H05a", base, tmp_path, n_seeds=2, cache_dir=cache, overrides=OPEN_FLOOR)
    record = _run("H06", base, tmp_path, n_seeds=2, cache_dir=cache, overrides={"min_seeds": 2, **OPEN_FLOOR})
    entries = {p: json.loads((p / "cache_manifest.json").read_text())["parts"] for p in cache.iterdir()
               if not p.name.startswith(".")}
    parts = list(entries.values())
    trained = [q for q in parts if q["params"]["lr_scale"] == 1.0]
    assert len(trained) == 6, "2 base runs reused, 2 instruct runs, the null's 2 base runs of other seeds"
    assert sorted(q["seed"] for q in trained if q["seed"] >= 1000) == [1000, 1001]
    assert len(parts) - len(trained) == 2, "H05a's negative control: the 2 seeds at learning rate 0"
    rows = {v: [s for s in record.samples if s["variant"] == v] for v in ("base", "instruct")}
    assert [s["train_seconds"] for s in rows["base"]] == [s["train_seconds"] for s in h05.samples]
    assert all(s["model"] == instruct for s in rows["instruct"])
    prob_b = [s["vocab_prob_after"] for s in rows["base"]]
    prob_i = [s["vocab_prob_after"] for s in rows["instruct"]]
    assert all(s["first_logged_step"] == record.params["steps"] for s in rows["base"] + rows["instruct"])
    loss_b = [s["first_logged_cls_loss"] for s in rows["base"]]
    loss_i = [s["first_logged_cls_loss"] for s in rows["instruct"]]
    st = record.statistic
    assert st.n == 2 and st.statistic == pytest.approx(np.mean(np.subtract(prob_i, prob_b)))
    criteria = st.details["criteria"]
    p_prob = sps.binom.sf(np.sum(np.subtract(prob_i, prob_b) < 0) - 1, 2, 0.5)
    p_loss = sps.binom.sf(np.sum(np.subtract(loss_i, loss_b) > 0) - 1, 2, 0.5)
    assert criteria["instruct_prob_lower"]["p_value"] == pytest.approx(p_prob)
    assert criteria["instruct_loss_higher"]["p_value"] == pytest.approx(p_loss)
    assert {"cls_loss", "lens_true_op_word"} <= set(record.curves)
    assert any("instruct" in label for label in record.curves["cls_loss"]["series"])
    both = rows["base"] + rows["instruct"]
    check_gates(record, {"post-trained instruct variant": 1.0, "instruct keeps the skills": 0.0,
                         "instruct follows the chat format": 0.0,  # a pair outside the zoo: its makers evaluated it
                         "cls loss fell": min(1 - s["final_cls_loss"] / s["initial_cls_loss"] for s in both),
                         "not both at ceiling": min(np.mean(prob_b), np.mean(prob_i))})
    [null] = record.nulls
    assert null.name == "base against base" and null.built and null.replicates == 1 and null.flagged in (0, 1)
    other = {q["seed"]: dual_sample(json.loads((d / "run.json").read_text()), record.params["loss_window"])
             for d, q in entries.items() if q["seed"] >= 1000}
    prob_null = [other[1000 + s["seed"]]["vocab_prob_after"] for s in rows["base"]]
    assert null.statistics[0] == pytest.approx(np.mean(np.subtract(prob_null, prob_b))), "seed noise, not zero"


def test_h06_zoo_instruct_without_a_reward_stage_is_not_post_trained(tmp_path, monkeypatch):
    """A zoo instruct model whose manifest lists no reward-based stage fails H06's post-training gate."""
    import json

    from lazarus_bench.claims.h06_base_vs_instruct import post_trained
    from lazarus_bench.harness.base import ClaimContext, ModelInfo

    for name, stages in (("plain", []), ("chat", ["chat-sft"]), ("dpo", ["chat-sft", "dpo"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"post_training": stages}))
    monkeypatch.setenv("LAZARUS_ZOO_DIR", str(tmp_path))
    monkeypatch.setattr("lazarus_bench.zoo.registry.verify", lambda path: {})
    monkeypatch.setattr("lazarus_bench.claims.h06_base_vs_instruct.resolve_zoo", lambda i: tmp_path / i.split(":")[1])
    claim = get_claim("H06")
    values = {}
    for name in ("plain", "chat", "dpo"):
        info = ModelInfo("zoo:base", "llama", "base", 2, False, True, instruct_pair=f"zoo:{name}")
        values[name] = post_trained(ClaimContext(claim, info, tier="fast", seeds=[], params={}))
    assert values == {"plain": 0.0, "chat": 0.0, "dpo": 1.0}
    hub = ModelInfo("meta-llama/Llama-3.2-1B", "llama", "base", 16, False, True,
                    instruct_pair="meta-llama/Llama-3.2-1B-Instruct")
    assert post_trained(ClaimContext(claim, hub, tier="fast", seeds=[], params={})) == 1.0


def test_h06_needs_a_zoo_instruct_variant_that_passes_its_gates(tmp_path, monkeypatch):
    """H06's pre-run gates read the pair's zoo manifests: an instruct model that lost > 10 points on the evaluation
    prompts, or gained no chat-format accuracy, makes H06 NOT TESTABLE before any training; a released pair passes."""
    import json

    from lazarus_bench.claims.h06_base_vs_instruct import instruct_chat_gain, instruct_skill_change
    from lazarus_bench.harness.base import ClaimContext, ModelInfo

    figures = {"base": {"eval_prompts": 0.97, "chat": 0.0}, "broken": {"eval_prompts": 0.576, "chat": 0.483},
               "kept": {"eval_prompts": 0.91, "chat": 0.31}, "no_chat": {"eval_prompts": 0.97, "chat": 0.0}}
    for name, metrics in figures.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"metrics": metrics}))
    monkeypatch.setattr("lazarus_bench.claims.h06_base_vs_instruct.resolve_zoo", lambda i: tmp_path / i.split(":")[1])
    claim = get_claim("H06")
    params = claim.parameters("slow")
    passed = {}
    for name in ("broken", "kept", "no_chat"):
        ctx = ClaimContext(claim, ModelInfo("zoo:base", "llama", "base", 2, False, True, instruct_pair=f"zoo:{name}"),
                           tier="slow", seeds=[], params=params)
        skill, chat = instruct_skill_change(ctx), instruct_chat_gain(ctx)
        assert skill == pytest.approx(figures[name]["eval_prompts"] - 0.97)
        assert chat == pytest.approx(figures[name]["chat"] - 0.0)
        gates = {g.name: g for g in claim.gates}
        passed[name] = (gates["instruct keeps the skills"].check(ctx).passed,
                        gates["instruct follows the chat format"].check(ctx).passed)
    assert passed == {"broken": (False, True), "kept": (True, True), "no_chat": (True, True)}
    assert params["min_instruct_chat_gain"] == 0.0  # "at least the base's chat-format rate": a tie passes
    hub = ModelInfo("meta-llama/Llama-3.2-1B", "llama", "base", 16, False, True,
                    instruct_pair="meta-llama/Llama-3.2-1B-Instruct")
    ctx = ClaimContext(claim, hub, tier="slow", seeds=[], params=params)
    assert instruct_skill_change(ctx) == 0.0 and instruct_chat_gain(ctx) == 0.0
    (tmp_path / "unevaluated").mkdir()  # a zoo model built without evaluation: no figure, so the gates fail
    (tmp_path / "unevaluated" / "manifest.json").write_text(json.dumps({"metrics": None}))
    ctx = ClaimContext(claim, ModelInfo("zoo:base", "llama", "base", 2, False, True, instruct_pair="zoo:unevaluated"),
                       tier="slow", seeds=[], params=params)
    assert not gates["instruct keeps the skills"].check(ctx).passed
    assert not gates["instruct follows the chat format"].check(ctx).passed


def test_h08_collapse_statistic_from_samples(saved_model, tmp_path, check_gates):
    record = _run("H08", saved_model("llama"), tmp_path, overrides=OPEN_GRPO_FLOORS)
    (sample,) = record.samples
    assert sample["variant"] == "dual" and sample["cls_weight"] == 0.4 and sample["steps"] == 2
    assert len(sample["predicted"]) == sample["n_prompts"] == 6
    collapsed, mode, count, accuracy = is_collapsed(sample["predicted"], sample["labels"], record.params)
    assert (collapsed, mode, count) == (sample["collapsed"], sample["mode_word"], sample["mode_count"])
    again = stats.proportion_claim(int(collapsed), 1, 0.8, 0.05, chance=39 / 729, min_n=5)
    st = record.statistic
    assert st.statistic == again.statistic and st.p_value == pytest.approx(again.p_value)
    assert st.verdict == "INCONCLUSIVE" and st.n == 1
    rewards = record.curves["reward"]["series"]["w=0.4"]
    zero = record.curves["zero_std_frac"]["series"]["w=0.4"]
    cls = record.curves["cls_loss"]["series"]["w=0.4"]
    before = st.details["before_training"]
    check_gates(record, {"start reward rate": np.mean(rewards[: max(1, len(rewards) // 5)]),
                         "groups with reward variance": 1.0 - np.mean(zero),
                         "reward rose": np.mean(rewards[-max(1, len(rewards) // 5):])
                         - np.mean(rewards[: max(1, len(rewards) // 5)]),
                         "cls loss fell": 1.0 - np.mean(cls[-max(1, len(cls) // 5):])
                         / np.mean(cls[: max(1, len(cls) // 5)]),
                         "read-out moved": max(abs(sample["vocab_prob_by_word"][w]
                                                   - before["vocab_prob_by_word"][w]) for w in sample["labels"])})
    assert "before_training" in st.details and {"cls_loss", "reward", "lens_op_words"} <= set(record.curves)
    moved = {g.name: g.value for g in record.fitness}["read-out moved"]
    assert moved > 0, "two steps at the claim's learning rate move the lens read-out (0 only at learning rate 0)"
    assert st.details["test"] == get_claim("H08").tests["collapsed"]


def test_h09_runs_every_fix_and_holm_corrects(saved_model, tmp_path):
    record = _run("H09", saved_model("llama"), tmp_path, overrides=OPEN_GRPO_FLOORS)
    assert [s["variant"] for s in record.samples] == list(FIXES)
    per_fix = record.statistic.details["per_fix"]
    raw = [per_fix[f]["p_value"] for f in FIXES]
    assert [per_fix[f]["holm_p"] for f in FIXES] == pytest.approx(list(stats.holm(raw)))
    for fix in FIXES:
        rows = [s for s in record.samples if s["variant"] == fix]
        assert per_fix[fix]["details"]["k"] == sum(s["collapsed"] for s in rows)
    assert record.statistic.p_value == pytest.approx(max(per_fix[f]["holm_p"] for f in FIXES))
    assert set(record.curves["cls_loss"]["series"]) == set(FIXES)


def test_grpo_configs_keep_each_fix_and_apply_fast_sizes():
    fast = get_claim("H09").parameters("fast")
    cfgs = {f: grpo_config(f, 3, fast) for f in FIXES}
    assert all(c.lora is None and c.seed == 3 and c.train.steps == 2 and c.group_size == 2 for c in cfgs.values())
    assert cfgs["balanced"].balanced_ops and cfgs["entropy"].entropy_bonus == 0.5
    assert cfgs["low_lr"].train.lr == 2e-6 and cfgs["cls_heavy"].cls_weight == 0.9
    slow = grpo_config("low_lr", 0, get_claim("H09").parameters("slow"))
    assert slow.train.steps == 50 and slow.max_new_tokens == get_claim("H09").params["max_new_tokens"]
    dual = grpo_config("dual", 0, get_claim("H08").parameters("slow"))
    assert (dual.cls_weight, dual.train.lr, dual.train.steps, dual.prompts_per_step) == (0.4, 1e-5, 20, 8)


def test_collapse_rule_and_its_chance_rate():
    p = {"max_off_mode": 1, "max_accuracy": 0.5}
    labels = ["multiply", "multiply", "add", "add", "subtract", "subtract"]
    assert is_collapsed(["add"] * 6, labels, p)[:3] == (True, "add", 6)
    assert is_collapsed(["add"] * 5 + ["subtract"], labels, p)[0]
    assert not is_collapsed(["add"] * 4 + ["multiply"] * 2, labels, p)[0]
    assert not is_collapsed(labels, labels, p)[0]
    assert chance_collapse_rate(labels, ["multiply", "add", "subtract"], p) == pytest.approx(39 / 729)


def test_grpo_dual_floors_fail_on_a_learning_rate_0_run(saved_model, tmp_path):
    """H08's first floor (classification loss down >= 50%) cannot be passed at learning rate 0: NOT TESTABLE at the
    first run with the value, never REFUTED (the read-out floor's 0.0 at learning rate 0: test_grpo_floors.py)."""
    record = run_claim(get_claim("H08"), str(saved_model("llama")), tier="fast", report_dir=tmp_path / "reports",
                       overrides={"lr_scale": 0.0, "start_reward_range": [0.0, 1.0], "min_variance_share": 0.0,
                                  "min_reward_rise": -1.0}, log=lambda m: None)
    gates = {g.name: g for g in record.fitness}
    assert gates["cls loss fell"].value < 0.5 and not gates["cls loss fell"].passed
    assert record.verdict == "NOT TESTABLE" and record.controls == ()


def test_restricted_lens_matches_evaluate_classifier(saved_model):
    handle = load_model(str(saved_model("llama")))
    evalset = prompts.grpo_collapse_lens()
    words = collapse_words(evalset.labels())
    assert words == ["multiply", "add", "subtract"]
    layer, restricted, vocab = restricted_lens(handle, evalset.texts(), words, 0.55)
    ref = evaluate_classifier(handle, evalset.texts(), evalset.labels(), words=words)
    assert layer == ref.layer and [words[int(np.argmax(r))] for r in restricted] == ref.predicted
    truth = [r[words.index(lab)] for r, lab in zip(restricted, evalset.labels())]
    assert truth == pytest.approx(ref.restricted_prob, rel=1e-5)


def _dual_rows(correct, probs, lost, losses=None):
    """Synthetic seeds: 6 of 8 answers right before, ``lost`` of them wrong after."""
    losses = losses or [1.0] * len(correct)
    rows = zip(correct, probs, lost, losses)
    return [{"n_prompts": 8, "correct_after": c, "restricted_prob_after": min(1.0, 1.3 * p), "vocab_prob_after": p,
             "answer_correct_before": [True] * 6 + [False] * 2,
             "answer_correct_after": [False] * k + [True] * (6 - k) + [False] * 2,
             "answer_accuracy_change": -k / 8, "initial_cls_loss": lo, "first_logged_cls_loss": lo}
            for c, p, k, lo in rows]


def test_h05a_verdicts_on_synthetic_seeds():
    p, tests = get_claim("H05a").parameters("slow"), get_claim("H05a").tests
    assert p["min_seeds"] == 5 and get_claim("H05a").default_seeds["slow"] == 5
    near_one, floor = {"reached": 0.9, "bound": 0.9}, {"scale_free": 0.01}

    def verdict(correct, probs, lost, ceiling=near_one, t_prime=floor):
        return h05a_verdict(_dual_rows(correct, probs, lost), p, tests, ceiling, t_prime)

    good, _ = verdict([8, 8, 7, 8, 8], [0.62, 0.71, 0.55, 0.6, 0.5], [0] * 5)
    assert good.verdict == Verdict.SUPPORTED and good.n == 5
    assert good.statistic == pytest.approx(np.mean([0.62, 0.71, 0.55, 0.6, 0.5]) / 0.9)
    weak, _ = verdict([2, 3, 2, 1, 2], [0.26, 0.27, 0.25, 0.2, 0.3], [0] * 5)
    assert weak.verdict == Verdict.REFUTED
    one_seed_short, _ = verdict([8, 8, 5, 8, 8], [0.62, 0.71, 0.55, 0.6, 0.5], [0] * 5)
    assert one_seed_short.verdict == Verdict.INCONCLUSIVE, "every seed must name the operation"
    hurt, _ = verdict([8] * 5, [0.62, 0.71, 0.55, 0.6, 0.5], [5] * 5)
    assert hurt.verdict == Verdict.SUPPORTED, "answers are H05b's claim, not H05a's"
    few, _ = verdict([8, 8, 8], [0.62, 0.71, 0.6], [0] * 3)
    assert few.verdict == Verdict.INCONCLUSIVE and "too few seeds" in few.reason
    same, parts = verdict([8] * 5, [0.6] * 5, [0] * 5)
    assert same.verdict == Verdict.SUPPORTED, "five identical seeds above 36% are evidence, not a tie artefact"
    assert parts["share"].p_value == pytest.approx(1 / 32) and parts["share"].details["test"] == "sign"
    below, parts = verdict([8] * 5, [0.2] * 5, [0] * 5)
    assert parts["share"].verdict == Verdict.REFUTED, "0.2 / 0.9 of the ceiling is below 36% of it"
    low_ceiling, parts = verdict([8] * 5, [0.2] * 5, [0] * 5, ceiling={"reached": 0.5, "bound": 0.5})
    assert low_ceiling.verdict == Verdict.SUPPORTED, "the same 20% is 40% of a ceiling of 50%"
    assert parts["share"].statistic == pytest.approx(0.4)
    noise, parts = verdict([8] * 5, [0.04] * 5, [0] * 5, ceiling={"reached": 0.05, "bound": 0.05},
                           t_prime={"scale_free": 0.05})
    assert parts["share"].verdict == Verdict.SUPPORTED and parts["floor"].verdict == Verdict.REFUTED
    assert noise.verdict == Verdict.REFUTED, "a share of a ceiling at the random-init level names nothing"
    renormalised_only = _dual_rows([8] * 5, [0.1] * 5, [0] * 5)
    for row in renormalised_only:
        row["restricted_prob_after"] = 0.9
    _, parts = h05a_verdict(renormalised_only, p, tests, near_one, floor)
    assert parts["share"].verdict == Verdict.REFUTED, "36% reads the full vocabulary, not the 4-way softmax"


def test_replicated_proportion_is_not_a_pooled_count():
    """3 seeds x 8 prompts: the p-value is the worst seed's own binomial, never the pooled 24-trial one."""
    claim = stats.replicated_proportion_claim([8, 8, 7], 8, 7 / 8, chance=0.25)
    assert claim.p_value == pytest.approx(sps.binomtest(7, 8, 0.25, alternative="greater").pvalue)
    assert claim.p_value > sps.binomtest(23, 24, 0.25, alternative="greater").pvalue * 1e6
    assert claim.n == 3 and claim.effect_size.value == pytest.approx(23 / 24 - 0.25)
    assert stats.replicated_proportion_claim([1, 0, 2], 8, 7 / 8, chance=0.25).verdict == Verdict.REFUTED


def test_h06_and_h09_verdicts_on_synthetic_seeds():
    p, tests = get_claim("H06").parameters("slow"), get_claim("H06").tests
    base = _dual_rows([8] * 5, [0.60, 0.70, 0.65, 0.62, 0.66], [0] * 5, [1.0, 1.1, 0.9, 1.0, 0.95])
    inst = _dual_rows([7, 7, 6, 7, 7], [0.20, 0.31, 0.24, 0.3, 0.22], [0] * 5, [5.0, 5.3, 4.8, 5.1, 4.9])
    assert h06_statistic(base, inst, p, tests).verdict == Verdict.SUPPORTED
    assert h06_statistic(inst, base, p, tests).verdict == Verdict.REFUTED
    assert h06_statistic(base[:1], inst[:1], p, tests).verdict == Verdict.INCONCLUSIVE
    assert h06_statistic(base, base, p, tests).verdict == Verdict.INCONCLUSIVE, "no difference: neither side"
    q = get_claim("H09").parameters("slow")
    add, sub = {"collapsed": True, "mode_word": "add"}, {"collapsed": False, "mode_word": "subtract"}
    untrained = {"collapsed": True, "mode_word": "subtract", "mode_count": 6, "n_prompts": 6}
    collapsed = {f: [add] * 5 for f in FIXES}
    st, table = h09_statistic(collapsed, 39 / 729, q, untrained)
    assert st.verdict == Verdict.SUPPORTED and all(t["verdict"] == "SUPPORTED" for t in table.values())
    st, table = h09_statistic(collapsed, 39 / 729, q, {**untrained, "mode_word": "add"})
    assert st.verdict == Verdict.INCONCLUSIVE and all(t["same_as_untrained"] for t in table.values())
    assert "untrained model already collapses" in st.reason
    escaped = {**{f: [add] * 6 for f in FIXES}, "cls_heavy": [sub] * 6}
    st, table = h09_statistic(escaped, 39 / 729, q, untrained)
    assert st.verdict == Verdict.REFUTED and st.details["weakest_fix"] == "cls_heavy"


def test_h06_reads_the_loss_at_the_writeups_first_logged_step():
    classifier = {"layer": 4, "n": 8, "correct": 8, "mean_restricted_prob": 0.5, "mean_vocab_prob": 0.1,
                  "predicted": [], "labels": [], "restricted_prob": [], "vocab_prob": []}
    answers = {"accuracy": 0.5, "correct": [True, False]}
    run = {"seed": 0, "model": "m", "before": {"classifier": classifier, "answers": answers},
           "after": {"classifier": classifier, "answers": answers}, "cls_loss": [10.0 - 0.01 * i for i in range(500)],
           "answer_loss": [1.0] * 500, "train_seconds": 1.0, "trainable_params": 1, "param_change_relative": 0.1}
    row = dual_sample(run, 10)
    assert row["first_logged_step"] == 100 and row["first_logged_cls_loss"] == run["cls_loss"][99]
    assert row["initial_cls_loss"] == 10.0
    short = dual_sample({**run, "cls_loss": run["cls_loss"][:40]}, 10)
    assert short["first_logged_step"] == 40 and short["first_logged_cls_loss"] == run["cls_loss"][39]


def test_h05a_is_not_testable_before_training_where_the_lens_ceiling_is_near_the_random_level(saved_model, tmp_path):
    """The tiny random llama's lens can give the op words at most ~34% on average, only 1.6 x H01's T' there: the
    ceiling gate stops H05a before any training, NOT TESTABLE with the value; opened, the model is trained."""
    model = str(saved_model("llama"))
    record = run_claim(get_claim("H05a"), model, tier="fast", report_dir=tmp_path / "reports", n_seeds=1,
                       log=lambda m: None, cache_dir=tmp_path / "cache")
    gate = {g.name: g for g in record.fitness}["lens ceiling over H01's T'"]
    assert record.verdict == "NOT TESTABLE" and not gate.passed and 1.0 < gate.value < gate.threshold == 2.0
    assert "lens ceiling over H01's T'" in record.reason and not record.samples
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir()), "nothing was trained"
    assert (record.work or {}).get("train_tokens", 0) == 0


def test_dual_reward_floor_fails_on_a_learning_rate_0_run(saved_model, tmp_path):
    """The manipulation floor (classification loss down >= 50%) cannot be passed by a run that learned nothing: at
    learning rate 0 the claim is NOT TESTABLE with the value, never REFUTED."""
    record = run_claim(get_claim("H05a"), str(saved_model("llama")), tier="fast", report_dir=tmp_path / "reports",
                       n_seeds=1, overrides={"lr_scale": 0.0, **OPEN_CEILING}, log=lambda m: None,
                       cache_dir=tmp_path / "cache")
    gate = {g.name: g for g in record.fitness}["cls loss fell"]
    assert gate.threshold == 0.5 and not gate.passed and abs(gate.value) < 0.5
    assert record.verdict == "NOT TESTABLE" and "cls loss fell" in record.reason
    assert "parameters changed" not in {g.name for g in record.fitness}, "a floor any step passes is gone"
