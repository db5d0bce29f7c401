"""H07 end to end on a tiny random model (fast tier), and the pieces its verdict rests on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lazarus_bench import prompts
from lazarus_bench.claims.h07_grpo_no_classifier import (
    grpo_config,
    heldout_prompts,
    planned_training_prompts,
    probe_change_claim,
)
from lazarus_bench.harness.grpo_run import RecordingSpec
from lazarus_bench.harness.registry import REGISTRY
from lazarus_bench.models import load_model
from lazarus_bench.prompts import GrpoSpec, grpo_spec
from lazarus_bench.stats import ClaimStatistic, Verdict
from lazarus_bench.suite.runner import ModelPool, run_claim
from lazarus_bench.training.grpo import train_grpo

# the GRPO gates opened, so that the measure's controls run on a tiny random model (which fails them)
OPEN_GATES = {"start_reward_range": [0.0, 1.0], "min_variance_share": 0.0, "min_reward_rise": -1.0}


def test_h07_fast_record(saved_model, tmp_path, check_gates):
    claim = REGISTRY["H07"]
    record = run_claim(claim, str(saved_model("llama")), tier="fast", report_dir=tmp_path, pool=ModelPool(),
                       log=lambda message: None, overrides=OPEN_GATES)
    assert record.status == "ok", record.traceback or record.reason
    assert record.statistic.verdict == "INCONCLUSIVE" and record.seeds == (0,)
    rewards = record.curves["reward"]["series"]["seed 0"]
    start = float(np.mean(rewards[: max(1, len(rewards) // 5)]))
    varied = gates_of(record)["groups with reward variance"]
    rise = float(np.mean(rewards[-max(1, len(rewards) // 5):])) - start
    check_gates(record, {"start reward rate": start, "groups with reward variance": varied, "reward rose": rise})
    assert 0.0 <= varied <= 1.0
    stat = record.statistic
    assert isinstance(stat, ClaimStatistic)
    assert set(stat.details["criteria"]) == {"no_vocab_classifier", "probe_unchanged", "answers_improve"}
    samples = record.samples
    summary = {s["stage"]: s for s in samples if s["kind"] == "summary"}
    assert stat.statistic == pytest.approx(summary["after"]["answer_prob"] - summary["before"]["answer_prob"])
    for stage, row in summary.items():
        items = [s["answer_prob"] for s in samples if s["kind"] == "answer" and s["stage"] == stage]
        assert row["answer_prob"] == pytest.approx(np.mean(items))
        lens = [s["op_word_prob"] for s in samples if s["kind"] == "lens" and s["stage"] == stage]
        assert row["max_op_word_prob"] == pytest.approx(max(lens))
    lens_crit = stat.details["criteria"]["no_vocab_classifier"]
    assert lens_crit["statistic"] == pytest.approx(summary["after"]["max_op_word_prob"])
    params = claim.parameters("fast")
    heldout = stat.details["heldout_prompts"]
    assert len(heldout) == params["n_eval"] == len(set(heldout))
    assert not {t.strip() for t in heldout} & planned_training_prompts(grpo_config(params, 0), grpo_spec())
    assert set(record.curves) == {"answer_prob", "probe_accuracy", "reward", "kl"}
    from lazarus_bench.analysis.features import last_token_states
    from lazarus_bench.analysis.probes import probe_layer
    from lazarus_bench.models import load_model

    handle = load_model(str(saved_model("llama")))
    statements = prompts.correctness_statements()
    X, _ = last_token_states(handle, statements.texts(), [handle.layer_at_depth(0.55)])
    again = probe_layer(X[0], statements.labels(), [it.item for it in statements], n_splits=4, n_permutations=0,
                        seed=0)
    assert summary["before"]["probe_accuracy"] == pytest.approx(again.accuracy), "the binary correctness probe"
    assert summary["before"]["probe_group_accuracy"] == pytest.approx(again.group_accuracy)
    probe = stat.details["criteria"]["probe_unchanged"]
    assert probe["statistic"] == pytest.approx(summary["after"]["probe_group_accuracy"]
                                               - summary["before"]["probe_group_accuracy"]), \
        "the criterion reads the accuracy with each correct/incorrect pair held out together"
    assert record.controls == ()
    [graded] = record.graded
    assert graded.name == "op word planted after GRPO" and graded.replicates == 1
    assert graded.strengths == REGISTRY["H07"].graded[0].strengths
    assert graded.threshold >= REGISTRY["H07"].graded[0].threshold == 0.01, "the run's threshold is T' = max(T, k R)"
    assert graded.strengths[0] < 0.01 < graded.strengths[-1], "the plant brackets the writeup's threshold"
    # a random model already gives the op word ~1/V: the weakest strengths cannot be planted, nor the strongest where
    # the planted direction saturates below them; the run says which, and measures the rest
    assert graded.built, graded.reason
    unplantable = [s for s, k in zip(graded.strengths, graded.detected) if k is None]
    low, high = [s for s in unplantable if s < 0.01], [s for s in unplantable if s > 0.01]
    n = len(graded.strengths)
    assert low == list(graded.strengths[:len(low)]) and high == list(graded.strengths[n - len(high):])
    assert [len(v) for v in graded.statistics] == [0 if k is None else 1 for k in graded.detected]
    for s in low:
        assert f"{s:g}: the word's probability is already >= {s:g} without a plant" in graded.reason
    for s in high:
        assert f"{s:g}: the planted direction cannot raise the word's probability to {s:.3g}" in graded.reason
    assert (graded.reason == "") == (not unplantable)


def test_recorded_training_prompts_are_the_planned_ones(saved_model):
    params = {**REGISTRY["H07"].parameters("fast"), "steps": 2, "budget_rounds": 1}
    cfg = grpo_config(params, 3)
    spec = grpo_spec()
    recorder = RecordingSpec(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(GrpoSpec)})
    train_grpo(load_model(str(saved_model("llama"))), cfg, progress=False, spec=recorder)
    assert {t.strip() for t in recorder.seen} == planned_training_prompts(cfg, spec)
    assert len(recorder.seen) == params["steps"] * params["prompts_per_step"]


def test_heldout_prompts_avoid_the_excluded_set():
    spec = grpo_spec()
    first = heldout_prompts(spec, 20, 1, set())
    again = heldout_prompts(spec, 20, 1, {first[0].text.strip(), first[5].text.strip()})
    assert len({it.text for it in again}) == 20
    assert first[0].text not in {it.text for it in again} and first[5].text not in {it.text for it in again}


def test_probe_change_claim():
    margin = REGISTRY["H07"].params["max_probe_change"]
    assert margin == pytest.approx(0.5 * 0.0745, abs=1e-3), "0.5 x the writeup's pooled SD (|d| < 0.5)"
    same = probe_change_claim([0.9, 0.8, 0.85, 0.9, 0.8], [0.9, 0.8, 0.85, 0.9, 0.8], margin, 0.05, 5, "sign")
    assert same.verdict == Verdict.SUPPORTED and same.p_value == pytest.approx(1 / 32), \
        "no change in five seeds is evidence of no change: the margin is fixed, not scaled by the observed SD"
    small = probe_change_claim([0.9, 0.8, 0.85, 0.9, 0.8], [0.91, 0.79, 0.85, 0.92, 0.8], margin, 0.05, 5, "sign")
    assert small.verdict == Verdict.SUPPORTED
    shifted = probe_change_claim([1.0] * 5, [0.75] * 5, margin, 0.05, 5, "sign")
    assert shifted.verdict == Verdict.REFUTED
    moved = probe_change_claim([0.5, 0.55, 0.45, 0.5, 0.52], [0.8, 0.86, 0.74, 0.8, 0.83], margin, 0.05, 5, "sign")
    assert moved.verdict == Verdict.REFUTED and moved.details["cohens_d"] > 0.5
    assert probe_change_claim([0.5], [0.6], margin, 0.05, 5, "sign").verdict == Verdict.INCONCLUSIVE
    four = probe_change_claim([0.5] * 4, [0.5] * 4, margin, 0.05, 5, "sign")
    assert four.verdict == Verdict.INCONCLUSIVE and "min_n=5" in four.reason


def test_correctness_probe_holds_pairs_out_together_and_is_at_chance_or_above_untrained(micro_zoo_model):
    """Stratified folds split a pair's two statements and score below chance; the criterion's accuracy holds each
    pair out together. On the model H07 starts from it is not below chance (50%; exact binomial test, one-sided)."""
    from scipy.stats import binomtest

    from lazarus_bench.claims.h07_grpo_no_classifier import probe_accuracy

    result = probe_accuracy(micro_zoo_model, 0.55, 0)
    n = len(prompts.correctness_statements())
    assert result["group_accuracy"] > result["accuracy"]
    assert binomtest(round(result["group_accuracy"] * n), n, 0.5, alternative="less").pvalue > 0.05


def test_correctness_statements_share_no_answer_across_labels():
    statements = prompts.correctness_statements()
    shown = {label: {int(it.text.rsplit("= ", 1)[1]) for it in statements if it.label == label}
             for label in ("correct", "incorrect")}
    assert not shown["correct"] & shown["incorrect"], "an answer token alone must not carry opposite labels"


def test_grpo_floor_fails_on_a_learning_rate_0_run(saved_model, tmp_path):
    """At learning rate 0 the reward cannot rise by design: H07 is NOT TESTABLE with the value, never REFUTED."""
    params = {**OPEN_GATES, "min_reward_rise": REGISTRY["H07"].params["min_reward_rise"], "lr": 0.0}
    record = run_claim(REGISTRY["H07"], str(saved_model("llama")), tier="fast", report_dir=tmp_path, pool=ModelPool(),
                       log=lambda message: None, overrides=params)
    gate = {g.name: g for g in record.fitness}["reward rose"]
    assert gate.threshold == 0.05 and not gate.passed and gate.value < 0.05
    assert record.verdict == "NOT TESTABLE" and "reward rose" in record.reason
    floors = {"trained language model", "start reward rate", "groups with reward variance", "reward rose"}
    assert {g.name for g in record.fitness} == floors, "no floor that any step passes"


@pytest.fixture(scope="module")
def micro_zoo_model():
    from lazarus_bench.zoo.build import ensure_micro_zoo

    ensure_micro_zoo()
    return load_model("zoo-micro:base")


def gates_of(record):
    return {g.name: g.value for g in record.fitness}


def test_grpo_gates_from_train_metrics():
    from lazarus_bench.harness.common import grpo_fitness

    seeds = [[{"reward": r, "zero_std_frac": z} for r, z in zip([0.0, 0.5, 1.0, 1.0, 1.0, 1.0], [1, 0.5, 0, 0, 1, 1])],
             [{"reward": r, "zero_std_frac": 1.0} for r in [0.2] * 10]]
    out = grpo_fitness(seeds)
    assert out["start reward rate"] == pytest.approx(np.mean([0.0, np.mean([0.2, 0.2])]))
    assert out["reward rose"] == pytest.approx(np.mean([1.0 - 0.0, 0.0]))
    assert out["groups with reward variance"] == pytest.approx(np.mean([1 - np.mean([1, 0.5, 0, 0, 1, 1]), 0.0]))


def test_correctness_statements_are_balanced_per_triple():
    statements = prompts.correctness_statements()
    assert len(statements) == 48 and sorted(set(statements.labels())) == ["correct", "incorrect"]
    by_triple = {}
    for it in statements:
        by_triple.setdefault(it.item, []).append(it)
    assert len(by_triple) == 24 and all(sorted(x.label for x in v) == ["correct", "incorrect"]
                                        for v in by_triple.values())
    for it in statements:
        shown = int(it.text.rsplit("= ", 1)[1])
        assert (shown == it.answer) == (it.label == "correct")


def _separated_pairs(cv, X, y, groups, pair_of) -> int:
    """How many (fold, pair) cases put one statement of a correct/incorrect pair in the test fold and the other in
    training."""
    split = 0
    for train, test in cv.split(X, y, groups):
        held, kept = {pair_of[i] for i in test}, {pair_of[i] for i in train}
        split += len(held & kept)
    return split


def test_correctness_probe_folds_never_separate_a_pair(micro_zoo_model, monkeypatch):
    """The criterion's accuracy comes from folds that hold out each correct/incorrect pair whole (both statements in
    the test fold, neither in training), balanced; the shuffled stratified folds reported beside it do split pairs."""
    from lazarus_bench.analysis import probes
    from lazarus_bench.claims.h07_grpo_no_classifier import correctness_pairs, probe_accuracy

    calls = []
    real = probes._cv_scores

    def spy(pipe, X, y, cv, groups=None):
        scores = real(pipe, X, y, cv, groups=groups)
        calls.append((X, y, cv, groups, scores))
        return scores

    monkeypatch.setattr(probes, "_cv_scores", spy)
    for seed in (0, 3):
        calls.clear()
        result = probe_accuracy(micro_zoo_model, 0.55, seed)
        statements = prompts.correctness_statements(seed=seed)
        pair_of = correctness_pairs(statements)
        assert len(set(pair_of)) == len(statements) // 2, "a group is exactly one correct/incorrect pair"
        stratified, grouped = calls[0], calls[1]  # the correctness probe's two CV calls come first
        X, y, cv, groups, scores = grouped
        assert len(y) == len(statements) and list(groups) == pair_of
        assert _separated_pairs(cv, X, y, groups, pair_of) == 0
        for _, test in cv.split(X, y, groups):
            assert 2 * list(np.asarray(y)[test]).count("correct") == len(test), "each test fold is balanced"
        assert result["group_accuracy"] == pytest.approx(float(np.mean(scores)))
        Xs, ys, cvs, gs, s_scores = stratified
        assert gs is None and result["accuracy"] == pytest.approx(float(np.mean(s_scores)))
        assert _separated_pairs(cvs, Xs, ys, gs, pair_of) > 0, "the check sees a split that separates pairs"


def test_correctness_probe_is_at_or_above_chance_on_random_init_models(micro_zoo_model):
    """On random-init models (nothing learned) the criterion's leave-one-pair-out accuracy is at or above the 50%
    chance level on average over seeds; the stratified folds that split pairs read below chance on the same data."""
    from lazarus_bench.claims.h07_grpo_no_classifier import probe_accuracy
    from lazarus_bench.models import ModelHandle
    from lazarus_bench.tiny import build_model

    grouped, stratified = [], []
    for seed in range(5):
        model = build_model(dict(micro_zoo_model.config), seed=seed, randomise_norms=False)
        handle = ModelHandle(model=model, tokenizer=micro_zoo_model.tokenizer, model_id=f"random-init {seed}",
                             config=micro_zoo_model.config)
        result = probe_accuracy(handle, 0.55, seed)
        assert result["statements_seed"] == seed
        grouped.append(result["group_accuracy"])
        stratified.append(result["accuracy"])
    assert np.mean(grouped) >= 0.5, grouped
    assert np.mean(stratified) < 0.5 <= np.mean(grouped), (stratified, grouped)


def test_correctness_statements_are_drawn_per_seed():
    """Each training seed probes its own statement set (the same before and after training), so the five replicates
    are not five readings of one draw."""
    sets = [prompts.correctness_statements(seed=s).texts() for s in range(3)]
    assert len({tuple(t) for t in sets}) == 3
    assert prompts.correctness_statements(seed=1).texts() == sets[1]
