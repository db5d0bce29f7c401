"""Negative and positive controls: each is wired to the model or edit it names, and the verdict rules use them."""

from __future__ import annotations

from dataclasses import replace

import mlx.core as mx
import numpy as np
import pytest

from lazarus_bench import prompts
from lazarus_bench.harness.base import ClaimContext, ControlRun, ControlUnavailable, model_info
from lazarus_bench.harness.common import probed_labels, probed_texts
from lazarus_bench.harness.controls import calibration
from lazarus_bench.harness.fixtures import dual_model
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.stats import Verdict
from lazarus_bench.suite.runner import ModelPool, run_claim


def _run(claim_id, model_dir, tmp_path, pool=None, claim=None, **kw):
    """``claim_id``'s fast tier on ``model_dir`` (``claim``: a variant of it, e.g. without its graded control)."""
    return run_claim(claim or get_claim(claim_id), str(model_dir), tier="fast", report_dir=tmp_path / "out",
                     cache_dir=tmp_path / "cache", pool=pool or ModelPool(), log=lambda m: None, **kw)


def _controls(record):
    return {c.name: c for c in record.controls}


def test_calibration_labels():
    def run(kind, built=True, detected=None, verdict=None):
        return ControlRun(name=kind[0], kind=kind, description="", effect_verdict=Verdict.REFUTED, built=built,
                          reason="r", detected=detected, verdict=verdict)

    assert calibration([run("positive", detected=True), run("negative", detected=False)])[0] == "calibrated"
    label, why = calibration([run("positive", detected=False, verdict=Verdict.SUPPORTED),
                              run("negative", detected=False)])
    assert label == "insensitive" and why.startswith("INSENSITIVE: positive control 'p' not detected")
    assert calibration([run("positive", detected=True),
                        run("negative", detected=True, verdict=Verdict.REFUTED)])[0] == "not specific"
    assert calibration([run("positive", built=False)])[0] == "uncalibrated"
    assert calibration([run("positive", built=False), run("negative", detected=False)])[0] == "negative control only"


def _planted_op_words(handle):
    """Edit the (tied) unembedding so every operation word's row points along the final-normed residual of the
    prompts: the lens then shows the operation words at every layer, which H01 must flag."""
    from lazarus_bench.analysis.lens import target_spellings

    states = [handle.forward(mx.array([handle.encode(t)])).hidden for t in prompts.dual_reward_eval().texts()]
    mean = mx.mean(mx.stack([handle.final_norm(h[-1][0, -1]) for h in states]), axis=0)
    direction = mean / mx.linalg.norm(mean)
    weight = np.array(handle.embed.weight)
    for word in prompts.operation_words():
        for toks in target_spellings(handle, word).values():
            weight[toks[0]] = 40.0 * np.array(direction)
    handle.embed.weight = mx.array(weight)
    return handle


def test_h01_flags_a_planted_effect(saved_model, tmp_path):
    from lazarus_bench.models import load_model

    path = str(saved_model("llama"))
    pool = ModelPool()
    pool._handles[path] = _planted_op_words(load_model(path))
    planted = _run("H01", path, tmp_path, pool, overrides={"k_random": 0})  # T' = 1%: a 96-token model's R is 2%
    assert planted.statistic.verdict == "REFUTED", planted.statistic.reason


def test_h04_positive_control_is_the_h05_model_on_its_trained_prompt_form(saved_model, tmp_path):
    """H04's positive control is the model CLAIMS.md names (H05a's dual-reward-trained model), read on the prompt
    form it was trained on ('7 * 8 = '), with the direction H04 measures (class-mean difference)."""
    from lazarus_bench.claims.h04_probe_direction_vocab import h05_trained

    path = str(saved_model("llama"))
    ctx = _ctx("H04", path, tmp_path, [])
    control = h05_trained(ctx)
    assert control.params["prompt_suffix"] == " " and ctx.params["prompt_suffix"] == ""
    trained = dual_model(ctx)
    ids = mx.array([trained.encode("7 * 8 = ")])
    same = np.array_equal(np.array(control.handle().forward(ids).hidden[-1]), np.array(trained.forward(ids).hidden[-1]))
    assert same, "the H05a-trained model itself"
    outcome = get_claim("H04").measure(control)
    assert all(text.endswith("= ") for text in outcome.extra["prompts"])
    assert outcome.statistic.details["direction_method"].startswith("class-mean difference")


@pytest.mark.parametrize("claim_id", ["H01", "H04"])
def test_random_init_and_dual_reward_controls_measure_the_models_they_name(saved_model, tmp_path, claim_id):
    from lazarus_bench.models import load_model

    path = str(saved_model("llama"))
    record = _run(claim_id, path, tmp_path)
    controls = _controls(record)
    positive = "dual-reward-trained model"
    assert set(controls) == {positive} and all(c.built for c in controls.values())
    (null,) = record.nulls
    assert null.name == "random-init models" and null.built and null.replicates == 1  # the fast tier's one
    # Each control's statistic is the claim's measure on the model it names (recomputed here from that model): the
    # null's replicate r is a random-init model of init seed 100 + r (a new model for each r).
    claim = get_claim(claim_id)
    handle = load_model(path)
    ctx = ClaimContext(claim, model_info(handle), tier="fast", seeds=[], params=claim.parameters("fast"),
                       cache_dir=tmp_path / "cache", shared=handle)
    draws = [claim.nulls[0].build(ctx, r) for r in range(2)]
    random = [claim.measure(d).statistic.statistic for d in draws]
    assert list(null.statistics) == random[:1] and random[0] != random[1]
    assert [d.handle().model_id for d in draws] == [f"random-init({path})"] * 2
    assert record.statistic.statistic not in random
    if claim_id == "H04":
        from lazarus_bench.claims.h04_probe_direction_vocab import h05_trained

        trained = claim.measure(h05_trained(ctx))
    else:
        trained = claim.measure(ctx.variant(handle=dual_model(ctx)))
    assert controls[positive].statistic["value"] == trained.statistic.statistic
    # 4 training steps need not plant the effect: a missed positive control means no verdict is drawn.
    if not controls[positive].detected:
        assert record.calibration == "insensitive" and record.verdict == "INCONCLUSIVE"
        assert record.reason.startswith("INSENSITIVE") and record.measured_verdict


def test_h02_controls_permute_labels_and_read_the_operator_token(saved_model, tmp_path):
    items = list(prompts.symbol_set("train"))
    texts = probed_texts(items, {"position": "operator"})
    assert all(t.endswith(f" {it.op}") and it.text.startswith(t) for t, it in zip(texts, items))
    shuffled = probed_labels(items, {"label_permutation": 1})
    assert sorted(shuffled) == sorted(it.label for it in items) and list(shuffled) != [it.label for it in items]

    record = _run("H02", saved_model("llama"), tmp_path)
    operator = _controls(record)["operator position"]
    assert operator.detected and operator.sanity, operator.reason
    (null,) = record.nulls
    assert null.name == "permuted labels" and null.replicates == 1 and null.flagged == 0
    assert operator.statistic["value"] not in null.statistics


@pytest.mark.parametrize("arch", ["mixtral", "qwen2_moe"])
def test_h10_planted_router_row_is_flagged_and_random_rows_are_not(saved_model, tmp_path, arch):
    record = _run("H10", saved_model(arch), tmp_path)
    controls = _controls(record)
    planted, (random,) = controls["planted router row"], record.nulls
    assert planted.built and planted.detected and planted.verdict == "REFUTED" and planted.sanity, planted.reason
    # Holm over the experts holds the null's rate near alpha, so one replicate may fire (qwen2_moe's first does)
    assert random.built and random.flagged in (0, 1) and random.replicates == 1
    (graded,) = record.graded
    plantable = [k for k in graded.detected if k is not None]  # a z whose cosine would pass 1 cannot be planted
    assert plantable and plantable[-1] == 1, f"the largest plantable z is called aligned: {graded.detected}"


def test_h03_record_carries_both_controls(saved_model, tmp_path):
    """The single controls in the record (the graded control, half of H03's time, has tests of its own)."""
    record = _run("H03", saved_model("llama"), tmp_path, claim=replace(get_claim("H03"), graded=(), nulls=()))
    planted = _controls(record)["feature planted at a middle block"]
    assert planted.built and planted.detected and planted.verdict == "SUPPORTED", planted.reason
    assert _controls(record)["random-init model"].built


def test_a_control_that_cannot_be_built_is_stated_with_its_reason(saved_model, tmp_path):
    claim = get_claim("H05b")
    keep = next(c for c in claim.controls if c.name == "answers kept by construction")
    out = keep.run(claim, _ctx("H05b", saved_model("llama"), tmp_path, [0]))
    assert not out.built and "manipulation floor" in out.reason and out.verdict is None


def test_h05_untrained_runs_measure_the_model_before_training(saved_model, tmp_path):
    """The negative control trains with the learning rate at 0: its 'after' is the untrained model, so its statistic
    (mean full-vocabulary op-word probability over the lens ceiling) is the trained runs' 'before' values over the
    same ceiling, and it is not flagged; the graded plant's strengths are shares of that ceiling."""
    record = _run("H05a", "zoo:base", tmp_path, n_seeds=2,  # a trained model: the plant reaches 0.81 of its ceiling
                  overrides={"min_seeds": 2, "min_cls_loss_fall": -10.0})
    untrained = _controls(record)["untrained runs"]
    assert untrained.built and not untrained.detected
    ceiling = record.statistic.details["lens_ceiling"]["reached"]
    assert record.statistic.details["lens_ceiling"]["bound"] >= ceiling > 0  # v3 builds: about 8%
    before = np.mean([s["vocab_prob_before"] for s in record.samples]) / ceiling
    assert untrained.statistic["value"] == pytest.approx(before, rel=1e-6)
    assert record.statistic.statistic != pytest.approx(before, rel=1e-6)
    [planted] = record.graded
    assert planted.built, planted.reason
    got = [v[0] for v in planted.statistics]  # the measure's share of the ceiling at each planted strength
    assert got == sorted(got) and all(s / 3 < g < min(1.0, 3 * s) for s, g in zip(planted.strengths, got)), got


def _ctx(claim_id, path, tmp_path, seeds, **overrides):
    from lazarus_bench.models import load_model

    claim = get_claim(claim_id)
    handle = load_model(str(path))
    return ClaimContext(claim, model_info(handle), tier="fast", seeds=seeds,
                        params={**claim.parameters("fast"), **overrides}, cache_dir=tmp_path / "cache", shared=handle)


def test_grpo_controls_leave_the_model_alone_or_train_one_word(saved_model, tmp_path):
    """H08/H09's negative control changes no parameter (its lens equals the untrained model's); the positive one
    trains on prompts of a single operation, never the untrained model's own mode word."""
    from lazarus_bench.claims.h08_grpo_dual_collapse import collapse_eval, single_target_runs, untrained_runs

    ctx = _ctx("H08", saved_model("llama"), tmp_path, [0, 1])
    before = collapse_eval(ctx.handle(), ctx.params)
    claim = get_claim("H08")
    untrained = claim.measure(untrained_runs(ctx))
    assert all(s["param_change_relative"] == 0.0 and s["predicted"] == before["predicted"] and s["steps"] == 1
               for s in untrained.samples)
    assert untrained.verdict != "SUPPORTED"
    planted_ctx = single_target_runs(ctx)
    target = planted_ctx.params["only_op"]
    assert target != before["mode_word"] and planted_ctx.params["lr_scale"] == 30.0
    planted = claim.measure(planted_ctx)
    assert all(s["only_op"] == target and s["param_change_relative"] > 0 for s in planted.samples)
    assert {c.name for c in get_claim("H09").controls} == {c.name for c in claim.controls}


def test_grpo_single_operation_spec_keeps_every_class():
    from lazarus_bench.claims.h08_grpo_dual_collapse import GRPO_PARAMS, training_spec
    from lazarus_bench.errors import LazarusError

    spec = training_spec({**GRPO_PARAMS, "only_op": "add"})
    assert [op[0] for op in spec.operations] == ["add"]
    assert all(it.label == "add" for it in spec.sample(20, seed=3))
    with pytest.raises(LazarusError, match="not an operation"):
        training_spec({**GRPO_PARAMS, "only_op": "modulo"})


def test_h12_lora_against_lora_has_no_saving(saved_model, tmp_path):
    record = _run("H12", saved_model("llama"), tmp_path, overrides={"min_params": 0})
    controls = _controls(record)
    negative, positive = controls["LoRA against LoRA"], controls["planted saving"]
    assert negative.built and not negative.detected, negative.reason
    assert not positive.built and "100M" in positive.reason
    from lazarus_bench.claims.h12_lora_vs_full import lora_vs_full
    from lazarus_bench.models import load_model

    path = str(saved_model("llama"))
    run = lora_vs_full(lambda: load_model(path), 2, 0, n_train=16, n_val=8, reference="lora")
    assert run["full"]["trainable_params"] == run["lora"]["trainable_params"]
    assert run["val_loss_rel_diff"] == pytest.approx(0.0, abs=1e-6)


def test_h13_negative_control_reads_the_addition_prompts(saved_model, tmp_path):
    record = _run("H13", saved_model("llama"), tmp_path, overrides={"min_remain_association": 0.0,
                                                                  "min_remain_presence": 0.0})
    negative = _controls(record)["addition prompts"]
    assert negative.built and not negative.detected, negative.reason
    ctx = _ctx("H13", saved_model("llama"), tmp_path, [0], operation="add")
    outcome = get_claim("H13").measure(ctx)
    assert {s["prompt"] for s in outcome.samples} == {t.text for t in prompts.seed000_tests().where(label="add")}
    assert "add prompts" in outcome.ours


def test_h14_controls_scale_each_branch(saved_model, tmp_path):
    from lazarus_bench.claims.h14_two_stage import two_stage_configs

    claim = get_claim("H14")
    controls = {c.name: c for c in claim.controls}
    assert (controls["planted keep"].part, controls["planted destroy"].part) == ("low_lr_keeps", "aggressive_destroys")
    ctx = _ctx("H14", saved_model("llama"), tmp_path, [0], min_stage1_accuracy=0.0)
    base = two_stage_configs(ctx.params, 0, "original")
    keep = two_stage_configs(controls["planted keep"].build(ctx).params, 0, "original")
    destroy = two_stage_configs(controls["planted destroy"].build(ctx).params, 0, "original")
    assert keep["low_lr"].stage2.train.lr == 0.0 and keep["low_lr"].stage1 == base["low_lr"].stage1
    assert destroy["aggressive"].stage2.train.lr == pytest.approx(100 * base["aggressive"].stage2.train.lr)
    assert destroy["aggressive"].stage2.cls_weight == 0.0 and base["aggressive"].stage2.cls_weight > 0
    assert (destroy["aggressive"].stage2.train.optimizer, base["aggressive"].stage2.train.optimizer) == ("adamw", "sgd")
    outcome = claim.measure(controls["stage 2 without learning"].build(ctx))
    assert all(d == 0.0 for drops in outcome.extra["drops"].values() for d in drops.values())
    assert outcome.verdict != "SUPPORTED"
    assert outcome.statistic.details["criteria_verdicts"]["aggressive_destroys"] != "SUPPORTED"


def test_h14_graded_control_plants_its_drop_in_the_aggressive_branch_only(tmp_path):
    """The graded construction: stage 2 at learning rate 0 in both branches, then the aggressive branch noised to
    lose the strength on calibration prompts that are neither measured nor trained on; the low-LR branch is kept."""
    from lazarus_bench.claims.h14_two_stage import calibration_prompts, planted_drop, two_stage_configs
    from lazarus_bench.harness.two_stage_run import stage_one
    from lazarus_bench.models import load_model
    from lazarus_bench.training.two_stage import eval_prompt_texts

    claim = get_claim("H14")
    [graded] = claim.graded
    assert graded.part == "aggressive_destroys" and graded.strengths[0] < 25.0 < 50.0 <= graded.strengths[-1]
    handle = load_model("zoo:base")
    ctx = ClaimContext(claim, model_info(handle), tier="fast", seeds=[0], params=claim.parameters("fast"),
                       cache_dir=tmp_path / "cache", shared=handle)
    outcome = claim.measure(planted_drop(ctx, 40.0, 0))
    [planted] = outcome.extra["planted_drop"].values()
    assert planted["planted_points"] == 40.0 and planted["calibration_lost"] >= 40.0
    drops = outcome.extra["drops"][0]
    assert drops["low_lr"] == 0.0 and drops["aggressive"] > 10.0, drops
    one = stage_one(ctx, two_stage_configs(ctx.params, 0))
    texts, answers = calibration_prompts(one, 240, 0)
    trained = {e.prompt.strip() for e in one.examples[:one.split]}
    assert len(texts) > 150 and not {t.strip() for t in texts} & (trained | {t.strip() for t in eval_prompt_texts()})
    assert all(int(eval(t.strip(" ="))) == a for t, a in zip(texts, answers))
    assert texts != calibration_prompts(one, 240, 1)[0]
    with pytest.raises(ControlUnavailable, match="calibration prompts"):
        calibration_prompts(one, 30, 0)


def test_h05b_graded_control_noises_the_untrained_model_off_the_measured_prompts(tmp_path):
    """H05b's graded construction reads no trained run: each seed's untrained model loses the planted points on
    resampled prompts of the eval form (never the 8 measured), and the measure reads the same model on the 8."""
    from lazarus_bench.claims.h05_dual_reward_keeps_answers import planted_drop
    from lazarus_bench.models import load_model

    claim = get_claim("H05b")
    [graded] = claim.graded
    assert (graded.claimed, graded.threshold, graded.effect) == ("threshold", 10.0, Verdict.REFUTED)
    handle = load_model("zoo:base")
    ctx = ClaimContext(claim, model_info(handle), tier="fast", seeds=[1, 2], params=claim.parameters("fast"),
                       cache_dir=tmp_path / "cache", shared=handle)
    outcome = claim.measure(planted_drop(ctx, 40.0, 0))
    assert not list((tmp_path / "cache").glob("*")), "no dual-reward run was trained or read"
    first, second = outcome.samples
    assert first["planted"]["calibration_lost"] >= 40.0 and first["planted"]["calibration_prompts"] > 80
    assert first["answer_accuracy_before"] > 0.8 and first["answer_accuracy_change"] < 0
    assert first["planted"]["noise_scale"] != second["planted"]["noise_scale"]  # a direction per seed


def test_h11_graded_control_plants_the_word_at_the_last_checkpoint_only(tmp_path):
    """H11's graded construction re-reads the cached SFT run with each prompt's operation word planted at the
    56%-depth block of the last checkpoint: earlier checkpoints and blocks read exactly as unplanted, the planted
    block's own-class probability reaches about the strength, and the ceiling's statistic crosses 10%."""
    from lazarus_bench.claims.h11_sft_task_tokens import planted_task_word
    from lazarus_bench.models import load_model

    claim = get_claim("H11")
    [graded] = claim.graded
    assert (graded.part, graded.claimed, graded.threshold) == ("stays_below", "sesoi", 0.10)
    assert graded.strengths[0] <= 0.01 < 0.10 < graded.strengths[-1]
    handle = load_model("zoo:base")
    ctx = ClaimContext(claim, model_info(handle), tier="fast", seeds=[0], params=claim.parameters("fast"),
                       cache_dir=tmp_path / "cache", shared=handle)
    plain = claim.measure(ctx)
    entries = _cache_entries(tmp_path / "cache")
    planted = claim.measure(planted_task_word(ctx, 0.3, 0))
    assert _cache_entries(tmp_path / "cache") == entries, "the plant re-reads the cached SFT run"
    last, block = claim.fast["checkpoints"][-1], handle.layer_at_depth(0.56)
    for a, b in zip(plain.samples, planted.samples):
        if a["step"] != last:
            assert a["task_prob_by_layer"] == b["task_prob_by_layer"]
        else:
            assert a["task_prob_by_layer"][:block] == pytest.approx(b["task_prob_by_layer"][:block], abs=1e-7)
    at_block = [s["task_prob_by_layer"][block] for s in planted.samples if s["step"] == last]
    assert 0.1 < np.mean(at_block) < 0.9
    [before], [after] = plain.statistic.details["maxima"], planted.statistic.details["maxima"]
    assert before < 0.01 and after > 0.10


def _cache_entries(root):
    """The cache's entries (not the per-entry lock files)."""
    return sorted(p.name for p in root.iterdir() if p.suffix != ".lock")


def test_h14_stage_one_is_trained_once_for_every_run(saved_model, tmp_path):
    """Both protocols and every control of a seed reuse one cached stage 1 (content-keyed): a second measure builds
    no new entry and reads the same fused weights."""
    claim = get_claim("H14")
    ctx = _ctx("H14", saved_model("llama"), tmp_path, [0], min_stage1_accuracy=0.0)
    first = claim.measure(ctx)
    entries = _cache_entries(tmp_path / "cache")
    again = claim.measure(ctx.variant(params={"low_lr_scale": 0.0}))
    assert _cache_entries(tmp_path / "cache") == entries and len(entries) == 1
    assert again.samples[1]["symbolic"] == first.samples[1]["symbolic"], "stage-1 metrics come from the cached run"


def test_part_controls_read_the_named_part():
    from lazarus_bench import stats as S
    from lazarus_bench.errors import LazarusError
    from lazarus_bench.harness.base import POSITIVE, Claim, Control, Outcome
    from lazarus_bench.stats import ClaimStatistic, Verdict

    def measure(ctx):
        parts = {"a": {"verdict": "SUPPORTED"}, "b": {"verdict": "REFUTED"}}
        s = ClaimStatistic(name="x", statistic=0.0, ci_low=0.0, ci_high=0.0, confidence=0.9, effect_size=None,
                           p_value=None, n=1, verdict="REFUTED", reason="", details={"parts": parts})
        return Outcome(statistic=s, ours="")

    claim = Claim(id="T", title="", statement="", source="", criterion="", writeup="", params={}, measure=measure)
    identity = lambda ctx: ctx  # noqa: E731

    def control(part=None, name="c"):
        return Control(name=name, kind=POSITIVE, description="", build=identity, effect=Verdict.SUPPORTED, part=part)

    assert control("a").run(claim, None).detected
    assert not control("b").run(claim, None).detected
    assert not control().run(claim, None).detected
    with pytest.raises(LazarusError, match="part 'z'"):
        control("z").run(claim, None)

    def combined(ctx):
        keep = S.threshold_claim([0.0] * 5, 10.0, "below", test="sign", name="kept")
        destroy = S.threshold_claim([1.0, 2.0, 1.5, 0.5, 1.2], 25.0, "above", test="sign", name="destroyed")
        return Outcome(statistic=S.combine(keep, {"keep": keep, "destroy": destroy}), ours="")

    both = replace(claim, measure=combined)
    keep = control("keep", name="k").run(both, None)
    assert keep.detected and keep.verdict == "SUPPORTED" and keep.reason.startswith("criterion met")
    destroy = control("destroy", name="d").run(both, None)
    assert not destroy.detected and destroy.verdict == "REFUTED", "combine()'s criteria are parts too"


def test_engram_clustering_term_clusters_and_unfed_engram_does_not(saved_model):
    """The controls' constructions on a tiny model: the clustering term pulls the training engrams onto their label
    codes (its loss falls; val engrams cluster only when the backbone's features carry the label, which a random
    tiny model's do not); without feedback the compressor gets no gradient (only weight decay), so its ARI stays the
    untrained one."""
    from dataclasses import replace

    from lazarus_bench.models import load_model
    from lazarus_bench.training.engram import EngramConfig, train_engram

    path = str(saved_model("llama"))
    cfg = EngramConfig()
    cfg = replace(cfg, n_train=64, n_val=32, batch_size=16, train=replace(cfg.train, steps=40, lr=3e-3, warmup=0))
    clustered = train_engram(load_model(path), "M3", "sentiment", replace(cfg, cluster_weight=1.0), progress=False)
    losses = [m["cluster_loss"] for m in clustered.train.metrics]
    assert losses[-1] < 0.6 * losses[0]
    unfed = train_engram(load_model(path), "M3", "sentiment", replace(cfg, feedback=False), progress=False)
    assert unfed.engram.ari == pytest.approx(unfed.untrained_compressor.ari, abs=0.05)


def test_h01_spellability_gate(saved_model, tmp_path, monkeypatch, check_gates):
    """Every op word spells on the zoo's byte-level tokenizer (gate 1.0, recorded); a word the tokenizer cannot
    encode counts as unspellable (here the empty word, the one thing a byte-level BPE cannot spell)."""
    from lazarus_bench.claims import h01_lens_op_words

    path = str(saved_model("llama"))
    record = _run("H01", path, tmp_path)
    check_gates(record, {"op words spellable": 1.0})
    ctx = _ctx("H01", path, tmp_path, [])
    monkeypatch.setattr(h01_lens_op_words.prompts, "operation_words", lambda: ("multiply", "add", "subtract", " "))
    assert h01_lens_op_words.spellable_share(ctx) == 0.75


def test_h03_planted_feature_appears_at_the_middle_block_only(saved_model, tmp_path):
    """H03's positive control: before the middle block a prompt's last-token state depends on its last token alone
    (attention silenced), so block 0 cannot tell the class; the planted head makes it perfect from there on."""
    from lazarus_bench.analysis.features import last_token_states
    from lazarus_bench.claims.h03_word_probe_emergence import planted_feature

    ctx = _ctx("H03", saved_model("llama"), tmp_path, [])
    planted = planted_feature(ctx).handle()
    middle = max(1, planted.layer_at_depth(0.5))
    items = list(prompts.word_set_deconfounded())
    same_end = [it.text for it in items if it.template == 0 and it.pair == 0]  # one per class, same last token
    states, _ = last_token_states(planted, same_end, [0, middle - 1, middle])
    np.testing.assert_allclose(states[0], np.broadcast_to(states[0][0], states[0].shape), atol=1e-5)
    np.testing.assert_allclose(states[1], np.broadcast_to(states[1][0], states[1].shape), atol=1e-5)
    assert np.min(np.linalg.norm(states[2] - states[2][0], axis=1)[1:]) > 1.0, "classes differ from the middle block"
    original, _ = last_token_states(ctx.handle(), same_end, [0])
    assert np.max(np.abs(original[0] - original[0][0])) > 1e-3, "the unedited model mixes tokens in block 0"
    outcome = get_claim("H03").measure(planted_feature(ctx))
    assert outcome.verdict == "SUPPORTED", outcome.statistic.reason


def test_h03_graded_plant_writes_the_drawn_class_of_every_prompt(saved_model, tmp_path):
    """H03's graded control: with attention silenced everywhere, prompts ending in the same token share their state
    before the middle block and, after it, differ exactly where the classes ``written_classes`` drew differ (the
    seeded draw repeated here); at strength 1 every prompt gets its own class."""
    from lazarus_bench.analysis.features import last_token_states
    from lazarus_bench.claims.h03_word_probe_emergence import prompts_planted, written_classes

    ctx = _ctx("H03", saved_model("llama"), tmp_path, [])
    items = list(prompts.word_set_deconfounded())
    texts, labels = [it.text for it in items], [it.label for it in items]

    def partitions(strength, replicate):
        handle = prompts_planted(ctx, strength, replicate).handle()
        middle = max(1, handle.layer_at_depth(0.5))
        states, _ = last_token_states(handle, texts, [middle - 1, middle])
        rng = np.random.default_rng([ctx.params["seed"], replicate])
        rng.standard_normal((handle.hidden_size, 4))
        drawn = written_classes(labels, strength, rng)
        last = [handle.encode(t)[-1] for t in texts]
        for i in range(len(items)):
            for j in range(len(items)):
                if last[i] != last[j]:
                    continue
                np.testing.assert_allclose(states[0][i], states[0][j], atol=1e-5)
                same = np.allclose(states[1][i], states[1][j], atol=1e-4)
                assert same == (drawn[i] == drawn[j]), (i, j, drawn[i], drawn[j])
        return drawn

    assert partitions(1.0, 0) == labels
    low = partitions(0.5, 1)
    assert 0 < sum(a == b for a, b in zip(low, labels)) < len(labels)


def test_h03_reader_gives_the_measures_peak_part_and_the_plant_is_not_fixed(saved_model, tmp_path):
    """H03's peak reader decides the peak part as the full measure does (same value, verdict and reason); on the
    graded plant at 75% its selection-free accuracy differs between replicates, and at 100% it reaches 100%."""
    from lazarus_bench.claims.h03_word_probe_emergence import prompts_planted, read_peak

    ctx = _ctx("H03", saved_model("llama"), tmp_path, [])
    h03 = get_claim("H03")
    planted = prompts_planted(ctx, 0.875, 0)
    full, read = h03.measure(planted).parts["peak"], read_peak(planted).parts["peak"]
    assert (full.statistic, full.verdict, full.reason) == (read.statistic, read.verdict, read.reason)
    assert h03.reader("peak") is read_peak and h03.reader(None) is h03.measure
    values = {read_peak(prompts_planted(ctx, 0.75, r)).parts["peak"].statistic for r in range(3)}
    assert len(values) > 1, values
    assert read_peak(prompts_planted(ctx, 1.0, 0)).parts["peak"].statistic == 1.0


def test_graded_and_null_controls_reach_the_record_and_the_report(saved_model, tmp_path):
    """H10's graded control (6 planted z values) and its null (random router rows) run through the runner in the fast
    tier (1 replicate each), come back from the record file unchanged and fill the report's calibration tables; the
    rule calls the largest plantable z aligned and z = 2 not."""
    from lazarus_bench.suite.records import read_record, record_path
    from lazarus_bench.suite.report import read_all, render

    record = _run("H10", saved_model("mixtral"), tmp_path)
    assert record.status == "ok", record.reason
    assert 0 < record.seconds["measure"] and 0 < record.seconds["controls"], record.seconds
    assert record.seconds["measure"] + record.seconds["controls"] <= record.wall_s
    (graded,), (null,) = record.graded, record.nulls
    assert graded.strengths == get_claim("H10").graded[0].strengths and graded.replicates == 1
    assert len(graded.detected) == 6 and graded.claimed == 8.0 == record.params["sesoi_z"]
    plantable = [k for k in graded.detected if k is not None]
    assert graded.detected[0] == 0 and plantable[-1] == 1, graded.detected
    assert null.replicates == 1 and null.built and 0 <= null.flagged <= 1
    saved = read_record(record_path(tmp_path / "out", *record.key))
    assert saved.graded == record.graded and saved.nulls == record.nulls
    assert [c.sanity for c in saved.controls] == [True]
    text = read_all(render(tmp_path / "out").parent)
    assert "### Detection against planted strength" in text and "plots/calibration__H10.png" in text
    assert "### Nulls that can fire" in text and "### Sanity checks (by construction, not counted)" in text


def test_h01_plant_strength_is_in_the_criterions_units(tmp_path):
    """H01's graded plant brings the statistic its sign test reads (the median over prompts of each prompt's largest
    op-word probability over all layers) to the strength on every operation's calibration prompts, each operation
    scaled alone; one scale for all four, scaled to their joint median, leaves the operations far apart."""
    from lazarus_bench.claims.h01_lens_op_words import CALIBRATION, class_scales, planted_op_word, prompt_maxima

    ctx = _ctx("H01", "zoo:base", tmp_path, [])
    calib = prompts.resampled_dual_reward_eval(CALIBRATION, per_op=4)
    labels = np.asarray(calib.labels())
    planted = planted_op_word(ctx, 0.05, 0)
    maxima = prompt_maxima(planted.handle(), calib)
    for word in prompts.operation_words():
        assert np.median(maxima[labels == word]) == pytest.approx(0.05, rel=1e-3), word
    scales = class_scales(ctx, 0.05)
    assert len(set(scales)) == 4 and max(scales) > 1.05 * min(scales), scales
    measured = prompt_maxima(planted.handle(), prompts.resampled_dual_reward_eval(60_000))
    assert 0.05 / 4 < np.median(measured) < 0.2, "the strength transfers (within 4x) to prompts never calibrated on"


def test_h07_plant_strength_is_in_the_criterions_units(tmp_path):
    """H07's graded plant brings the largest lens P(op word) at its block over calibration prompts, as many as the
    lens reads, to the strength; on the prompts the claim measures the largest value lands near it."""
    from lazarus_bench.claims.h07_grpo_no_classifier import heldout_prompts, op_word_probs, plant_after

    ctx = _ctx("H07", "zoo:base", tmp_path, [0], plant_prob=0.01, n_lens_heldout=16)
    handle, p = ctx.fresh_handle(), ctx.params
    measured = list(prompts.dual_reward_eval()) + heldout_prompts(prompts.grpo_spec(), 48, 7, set())[:16]
    before = max(op_word_probs(handle, measured, 0.55)[0])
    plant = plant_after(handle, p, 0)
    calib = prompts.resampled_dual_reward_eval(80_000, per_op=6)
    assert len(calib) == len(measured) == 24 and before < 0.001
    assert max(op_word_probs(handle, list(calib), 0.55)[0]) == pytest.approx(0.01, rel=1e-3)
    assert 0.01 / 3 < max(op_word_probs(handle, measured, 0.55)[0]) < 0.03, "the strength transfers"
    plant.scale = 0.0
    assert max(op_word_probs(handle, measured, 0.55)[0]) == before


def test_h01_and_h04_readers_give_the_measures_part(tmp_path):
    """H01's sign-test reader and H04's rank reader decide their part as the full measure does (same value, verdict
    and reason), on the model, a plant and a random-init draw; H01's plant is calibrated once per strength, so a
    second replicate reuses the scale and differs only in its measured prompts."""
    from lazarus_bench.claims import h01_lens_op_words as h01
    from lazarus_bench.claims import h04_probe_direction_vocab as h04

    def same(claim_id, ctx, part, reader):
        full, read = get_claim(claim_id).measure(ctx).parts[part], reader(ctx).parts[part]
        assert (full.statistic, full.verdict, full.reason) == (read.statistic, read.verdict, read.reason)
        return read

    ctx = _ctx("H01", "zoo:base", tmp_path, [])
    first, second = h01.planted_op_word(ctx, 0.05, 0), h01.planted_op_word(ctx, 0.05, 1)
    assert first.handle().layers[ctx.handle().layer_at_depth(0.55)]  # the planted block is wrapped
    scales = {c.handle().layers[c.handle().layer_at_depth(0.55)]._hook.__self__.scale for c in (first, second)}
    assert len(scales) == 1 and scales.pop() > 0
    values = {same("H01", c, "below_threshold", h01.read_below).statistic for c in (ctx, first, second)}
    assert len(values) == 3, values
    assert get_claim("H01").reader("below_threshold") is h01.read_below
    ctx4 = _ctx("H04", "zoo:base", tmp_path, [])
    for c in (ctx4, h04.random_init_draw(ctx4, 2)):
        same("H04", c, "outside_top", h04.read_outside_top)
    assert {g.part for g in get_claim("H04").graded} | {n.part for n in get_claim("H04").nulls} == {"outside_top"}


def test_h07_reader_gives_the_measures_lens_part(tmp_path):
    """H07's lens reader decides the lens part as the full measure does, on the cached GRPO run with a plant."""
    from lazarus_bench.claims.h07_grpo_no_classifier import read_lens

    ctx = _ctx("H07", "zoo:base", tmp_path, [0], plant_prob=0.05).variant()
    full = get_claim("H07").measure(ctx).statistic.details["criteria"]["no_vocab_classifier"]
    read = read_lens(ctx).parts["no_vocab_classifier"]
    assert (full["statistic"], full["verdict"], full["reason"]) == (read.statistic, str(read.verdict), read.reason)
    assert read.statistic > 0.01, "the plant shows"
    assert get_claim("H07").reader("no_vocab_classifier") is read_lens
