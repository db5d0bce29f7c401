"""GRPO claims (seed 002): H07, pure GRPO makes no vocabulary classifier but improves answers."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .. import prompts, stats
from ..analysis.features import last_token_states
from ..analysis.lens import logit_lens
from ..analysis.probes import probe_layer
from ..harness.base import ClaimContext, Outcome
from ..harness.common import GRPO_GATE_PARAMS, GRPO_GATES, budget, grpo_fitness
from ..harness.controls import GradedControl
from ..harness.grpo_run import grpo_run
from ..harness.params import Param
from ..harness.plants import ClassPlant, calibrate_scale, class_markers, word_directions
from ..harness.registry import claim
from ..harness.scale import low_threshold, random_level
from ..models import ModelHandle
from ..options import COUNT, NON_NEGATIVE, PROB, SEED
from ..prompts import GrpoSpec, PromptItem, grpo_spec
from ..stats import ClaimStatistic, Verdict
from ..stats.verdicts import combine, equivalence_claim
from ..training.data import Example, assert_disjoint
from ..training.grpo import (
    GRPOConfig,
    evaluate_answers,
    sample_prompts,
    seed002_configs,
    step_key,
)


def grpo_config(params: dict, seed: int) -> GRPOConfig:
    """Seed 002's pure-GRPO run (full model) with this tier's batch sizes, trained in rounds of ``steps`` within a
    budget of ``budget_rounds`` rounds; ``cls_weight`` > 0 only for the positive control (H08's lens classification
    term at the claim's layer, same steps and learning rate)."""
    cfg = seed002_configs(seed)["grpo"]
    train = budget(replace(cfg.train, steps=params["steps"], lr=params["lr"]), params["budget_rounds"])
    return replace(cfg, train=train, prompts_per_step=params["prompts_per_step"], group_size=params["group_size"],
                   max_new_tokens=params["max_new_tokens"], cls_weight=params["cls_weight"],
                   cls_layer_fraction=params["layer_fraction"])


def planned_training_prompts(cfg: GRPOConfig, spec: GrpoSpec) -> set[str]:
    """The prompts a GRPO run may train on within its whole budget (the trainer draws them from (seed, step) alone)."""
    return {p.text.strip() for step in range(cfg.train.steps)
            for p in sample_prompts(spec, cfg.prompts_per_step, step_key(cfg.seed, step, 0)[0], cfg.balanced_ops)}


def heldout_prompts(spec: GrpoSpec, n: int, seed: int, exclude: set[str]) -> list[PromptItem]:
    """``n`` distinct prompts of the GRPO template that no run trains on."""
    out, seen = [], set(exclude)
    draw = 0
    while len(out) < n:
        if draw > 50:
            raise ValueError(f"cannot find {n} held-out GRPO prompts outside {len(exclude)} training prompts")
        for item in spec.sample(4 * n, seed=seed * 1000 + draw):
            if item.text.strip() not in seen and len(out) < n:
                seen.add(item.text.strip())
                out.append(item)
        draw += 1
    return out


def op_word_probs(handle: ModelHandle, items: list[PromptItem], fraction: float) -> tuple[list[float], list[float]]:
    """Per prompt: lens probability of its operation word (both spellings, full word) at block int(fraction L), and
    its maximum over every block."""
    words = sorted({it.label for it in items})
    results = logit_lens(handle, [it.text for it in items], words, layers=list(range(handle.n_layers)), top_k=1)
    layer = handle.layer_at_depth(fraction)
    at = [float(r.targets[it.label].full_prob_sum[layer]) for r, it in zip(results, items)]
    anywhere = [float(r.targets[it.label].full_prob_sum.max()) for r, it in zip(results, items)]
    return at, anywhere


def scale_free_threshold(handle: ModelHandle, params: dict) -> dict:
    """T' = max(1%, k x R), R the largest op-word lens probability at the claim's block over the writeup's 8
    evaluation prompts on random-init models of this architecture and tokenizer."""
    items = list(prompts.dual_reward_eval())
    level = random_level(handle, f"H07 max op-word lens prob at layer_fraction {params['layer_fraction']}",
                         lambda h: max(op_word_probs(h, items, params["layer_fraction"])[0]), params["random_draws"])
    return low_threshold(params["max_op_word_prob"], level, params["k_random"])


def plant_after(handle: ModelHandle, params: dict, seed: int) -> ClassPlant:
    """The graded control's construction on a trained model: each symbol prompt's operation word written at the
    claim's block with the scale at which the criterion's statistic, the largest lens probability of a prompt's
    operation word there, reaches ``plant_prob`` over calibration prompts of the evaluation form, as many as the lens
    reads (drawn per replicate and seed, never measured); every prompt with an operator symbol gets it."""
    words, block = list(prompts.operation_words()), handle.layer_at_depth(params["layer_fraction"])
    n_lens = len(prompts.dual_reward_eval()) + params["n_lens_heldout"]
    calib = prompts.resampled_dual_reward_eval(80_000 + 100 * params["plant_replicate"] + seed,
                                               per_op=math.ceil(n_lens / len(words)))
    plant = ClassPlant(handle, class_markers(handle, [calib, prompts.dual_reward_eval()], words),
                       word_directions(handle, words), block)
    calibrate_scale(plant, lambda: max(op_word_probs(handle, list(calib), params["layer_fraction"])[0]),
                    params["plant_prob"])
    return plant


def planted_op_word(ctx: ClaimContext, prob: float, replicate: int) -> ClaimContext:
    return ctx.variant(params={"plant_prob": prob, "plant_replicate": replicate})


def correctness_pairs(statements) -> list[str]:
    """The probe's CV group of each statement: its operand triple, which appears once stated correctly and once
    incorrectly (``prompts.correctness_statements``), so a group is exactly one correct/incorrect pair."""
    return [it.item for it in statements]


def probe_accuracy(handle: ModelHandle, fraction: float, seed: int) -> dict:
    """The writeup's binary correct/incorrect probe (chance 50%) on 48 stated equations at block int(fraction L).

    ``group_accuracy`` (the criterion's) is leave-one-pair-out: each fold holds out one operand triple with its
    correct AND its incorrect statement (sklearn ``LeaveOneGroupOut``, i.e. ``GroupKFold`` with one pair per fold,
    balanced by construction). Split apart, a pair's two statements share everything but the answer, so shuffled
    stratified folds score below chance (19-40% on the zoo); that accuracy is reported beside it (``accuracy``), with
    the 4-class operation probe on the word prompts. The statements are drawn afresh for each seed (statement seed =
    training seed, the same set before and after training): one fixed draw would give all five replicates the same
    draw-specific level (the seed-0 set read 46% on random-init models, other draws 50-68%)."""
    statements = prompts.correctness_statements(seed=seed)
    words = prompts.word_set()
    layer = handle.layer_at_depth(fraction)
    X, _ = last_token_states(handle, statements.texts(), [layer])
    probe = probe_layer(X[0], statements.labels(), correctness_pairs(statements), n_splits=4, n_permutations=0,
                        seed=seed)
    W, _ = last_token_states(handle, words.texts(), [layer])
    ops = probe_layer(W[0], words.labels(), [it.template for it in words], n_splits=4, n_permutations=0, seed=seed)
    return {"layer": layer, "accuracy": probe.accuracy, "group_accuracy": probe.group_accuracy,
            "operation_probe_accuracy": ops.accuracy, "statements_seed": seed}


def snapshot(handle: ModelHandle, lens_items: list[PromptItem], answer_items: list[PromptItem], params: dict) -> dict:
    """Lens and answer measurements of one model (the probe depends on the CV seed and is added per seed)."""
    at, anywhere = op_word_probs(handle, lens_items, params["layer_fraction"])
    answers = evaluate_answers(handle, answer_items)
    return {"op_word_prob": at, "op_word_prob_any_layer": anywhere,
            "answer_prob": answers["mean_answer_prob"], "answer_accuracy": answers["accuracy"],
            "answer_rank": answers["mean_answer_rank"], "answer_items": answers["items"]}


def probe_change_claim(before: list[float], after: list[float], margin: float, alpha: float, min_n: int,
                       test: str) -> ClaimStatistic:
    """Probe accuracy unchanged: the paired per-seed changes lie within +-``margin`` accuracy points (TOST with the
    declared test; the margin is a fixed parameter, so no observed variance decides it). Cohen's d is descriptive."""
    diffs = [a - b for a, b in zip(after, before)]
    effect = stats.cohens_d(after, before) if len(diffs) >= 2 else None
    result = equivalence_claim(diffs, margin, alpha, test=test, min_n=min_n,
                               name="probe accuracy change after - before")
    return replace(result, effect_size=effect,
                   details={**result.details, "cohens_d": effect.value if effect is not None else math.nan})


def h07_prompts(configs: dict[int, GRPOConfig], spec: GrpoSpec, p: dict) -> tuple[list[PromptItem], list[PromptItem]]:
    """The held-out GRPO prompts no run may train on, and the lens prompts (the writeup's evaluation prompts and the
    first held-out ones): (held-out, lens)."""
    planned = set().union(*(planned_training_prompts(cfg, spec) for cfg in configs.values()))
    heldout = heldout_prompts(spec, p["n_eval"], p["eval_seed"], planned)
    return heldout, list(prompts.dual_reward_eval()) + heldout[: p["n_lens_heldout"]]


def h07_run(ctx: ClaimContext, seed: int, cfg: GRPOConfig, spec: GrpoSpec, base_snapshot: dict,
            lens_items: list[PromptItem], heldout: list[PromptItem]) -> dict:
    """One seed's GRPO run (planted after training for the graded control) with the lens, answers and probe before
    and after it, and its rewards and training metrics."""
    p, base = ctx.params, ctx.handle()
    before = {**base_snapshot, "probe": probe_accuracy(base, p["layer_fraction"], seed)}
    handle, run = grpo_run(ctx, cfg, spec, p["steps"], p["min_reward_rise"])
    assert_disjoint([Example(text, "") for text in run["seen"]], [it.text for it in heldout])
    plant = plant_after(handle, p, seed) if p["plant_prob"] > 0 else None
    after = {**snapshot(handle, lens_items, heldout, p), "probe": probe_accuracy(handle, p["layer_fraction"], seed)}
    rewards = [m["reward"] for m in run["metrics"]]
    ctx.log(f"seed {seed}: answer prob {before['answer_prob']:.4f} -> {after['answer_prob']:.4f}, "
            f"probe {before['probe']['group_accuracy']:.3f} -> {after['probe']['group_accuracy']:.3f}, "
            f"max op-word prob {max(after['op_word_prob']):.3%}, mean reward {np.mean(rewards):.3f}")
    return {"seed": seed, "before": before, "after": after, "rewards": rewards, "metrics": run["metrics"],
            "param_change": run["param_change"], "n_training_prompts": len(set(run["seen"])),
            "steps": len(rewards), "floor_met_at": run["until_met"],
            **({"plant_scale": plant.scale} if plant is not None else {})}


def lens_part(lens_max: list[float], limit: dict, ctx: ClaimContext) -> ClaimStatistic:
    """The lens part over seeds: each run's largest op-word lens probability at the claim's block, below T'."""
    p = ctx.params
    return stats.threshold_claim(lens_max, limit["scale_free"], "below", p["alpha"],
                                 test=ctx.test("no_vocab_classifier"), min_n=p["min_seeds"],
                                 name="max op-word lens prob at 55% depth after GRPO")


def read_lens(ctx: ClaimContext) -> Outcome:
    """The lens part alone, for the graded control that plants it: each seed's cached GRPO run, planted, read at the
    claim's block; no probe, answers or untrained snapshot."""
    p = ctx.params
    configs = {seed: grpo_config(p, seed) for seed in ctx.seeds}
    _, lens_items = h07_prompts(configs, grpo_spec(), p)
    lens_max = []
    for seed, cfg in configs.items():
        handle, _ = grpo_run(ctx, cfg, grpo_spec(), p["steps"], p["min_reward_rise"])
        if p["plant_prob"] > 0:
            plant_after(handle, p, seed)
        lens_max.append(max(op_word_probs(handle, lens_items, p["layer_fraction"])[0]))
    part = lens_part(lens_max, scale_free_threshold(ctx.handle(), p), ctx)
    return Outcome(statistic=part, ours=part.reason, parts={"no_vocab_classifier": part})


def probe_levels(runs: list[dict]) -> tuple[list[float], list[float]]:
    """The correct/incorrect probe's leave-one-pair-out accuracy per seed, before and after GRPO."""
    return ([r["before"]["probe"]["group_accuracy"] for r in runs],
            [r["after"]["probe"]["group_accuracy"] for r in runs])


def h07_parts(runs: list[dict], limit: dict, ctx: ClaimContext) -> dict[str, ClaimStatistic]:
    """The criteria's parts over seeds: no op word in the lens after GRPO, the probe unchanged, the answers better."""
    p = ctx.params
    alpha, min_n = p["alpha"], p["min_seeds"]
    gains = [r["after"]["answer_prob"] - r["before"]["answer_prob"] for r in runs]
    lens_max = [max(r["after"]["op_word_prob"]) for r in runs]
    probe_before, probe_after = probe_levels(runs)
    answer = stats.threshold_claim(gains, 0.0, "above", alpha, test=ctx.test("answers_improve"), min_n=min_n,
                                   name="rise of mean correct-answer first-token prob (held-out)")
    return {
        "no_vocab_classifier": lens_part(lens_max, limit, ctx),
        "probe_unchanged": probe_change_claim(probe_before, probe_after, p["max_probe_change"], alpha, min_n,
                                              ctx.test("probe_unchanged")),
        "answers_improve": answer,
    }


def relative_gain(runs: list[dict]) -> float:
    """The mean rise of the correct-answer probability over its value before GRPO."""
    gains = [r["after"]["answer_prob"] - r["before"]["answer_prob"] for r in runs]
    base_prob = runs[0]["before"]["answer_prob"]
    return float(np.mean(gains)) / base_prob if base_prob > 0 else math.nan


def h07_samples(runs: list[dict], lens_items: list[PromptItem]) -> list[dict]:
    """Per seed and stage: a summary row, one row per lens prompt and one per answered prompt."""
    samples = []
    for r in runs:
        for stage in ("before", "after"):
            snap = r[stage]
            samples.append({"seed": r["seed"], "stage": stage, "kind": "summary", "answer_prob": snap["answer_prob"],
                            "answer_accuracy": snap["answer_accuracy"], "answer_rank": snap["answer_rank"],
                            "probe_accuracy": snap["probe"]["accuracy"],
                            "probe_group_accuracy": snap["probe"]["group_accuracy"],
                            "max_op_word_prob": max(snap["op_word_prob"]),
                            "max_op_word_prob_any_layer": max(snap["op_word_prob_any_layer"])})
            samples += [{"seed": r["seed"], "stage": stage, "kind": "lens", "prompt": it.text, "label": it.label,
                         "op_word_prob": a, "op_word_prob_any_layer": b}
                        for it, a, b in zip(lens_items, snap["op_word_prob"], snap["op_word_prob_any_layer"])]
            samples += [{"seed": r["seed"], "stage": stage, "kind": "answer", **row} for row in snap["answer_items"]]
    return samples


def h07_curves(runs: list[dict]) -> dict:
    """Answer probability and probe accuracy per seed before and after GRPO, and reward and KL by step."""
    x = [str(r["seed"]) for r in runs]
    longest = [str(i + 1) for i in range(max(r["steps"] for r in runs))]
    probe_before, probe_after = probe_levels(runs)
    return {
        "answer_prob": {"x": x, "xlabel": "seed", "ylabel": "mean P(correct first token)", "series": {
            "before": [r["before"]["answer_prob"] for r in runs],
            "after GRPO": [r["after"]["answer_prob"] for r in runs]}},
        "probe_accuracy": {"x": x, "xlabel": "seed", "ylabel": "probe accuracy (pairs held out together)", "series": {
            "before": probe_before, "after GRPO": probe_after}},
        "reward": {"x": longest, "xlabel": "step", "ylabel": "mean reward", "series": {
            f"seed {r['seed']}": r["rewards"] for r in runs}},
        "kl": {"x": longest, "xlabel": "step", "ylabel": "KL to the reference",
               "series": {f"seed {r['seed']}": [m["kl"] for m in r["metrics"]] for r in runs}},
    }


def h07_ours(runs: list[dict], statistic: ClaimStatistic, n_heldout: int, p: dict) -> str:
    """The record's one-line summary of what this model showed."""
    probe_before, probe_after = probe_levels(runs)
    d = statistic.details["criteria"]["probe_unchanged"]["details"].get("cohens_d")
    return (f"correct-answer prob {runs[0]['before']['answer_prob']:.4f} -> "
            f"{np.mean([r['after']['answer_prob'] for r in runs]):.4f} ({relative_gain(runs):+.1%}) on {n_heldout} "
            f"held-out prompts; max op-word prob at 55% depth after GRPO "
            f"{max(max(r['after']['op_word_prob']) for r in runs):.3%}; probe accuracy {np.mean(probe_before):.3f} -> "
            f"{np.mean(probe_after):.3f} (Cohen's d {d if d is not None else float('nan'):.2f}); {len(runs)} seeds, "
            f"steps {[r['steps'] for r in runs]} (rounds of {p['steps']}, at most {p['budget_rounds']})")


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {"no_vocab_classifier": {"scale": "logit"}, "probe_unchanged": {}, "answers_improve": {}}


@claim(
    id="H07",
    title="Pure GRPO makes no vocabulary classifier but improves answers",
    statement="Pure GRPO (answer-correctness reward) makes no vocabulary classifier but improves answers.",
    source="seed 002 (NEW EXPERIMENT: GRPO Classifier Emergence)",
    criterion="GRPO in rounds of 30 steps until the reward floor holds at a round's end (at most 10 rounds, else NOT "
               "TESTABLE); after GRPO: op-word lens prob at int(0.55 L) < T' = max(1%, 10 x R) on every prompt (R: "
               "the same maximum on 5 random-init models); the writeup's binary "
               "correct/incorrect probe (48 stated equations drawn per seed, chance 50%, 55% depth, "
               "leave-one-pair-out: each correct/incorrect pair held out together) unchanged: every paired change "
               "within +-3.7 accuracy points (0.5 x the writeup's pooled SD of 7.45 points, i.e. |d| < 0.5; TOST); "
               "mean probability of the correct answer's first token on held-out prompts rises; each by the exact "
               "sign test across 5 seeds (one-sided, unanimous seeds p = 1/32)",
    writeup="0% classifier probability; probe 54.0% +- 8.8% vs 54.0% +- 5.8% (d = -0.00); "
             "answer prob 0.288 -> 0.346 (+20%)",
    params={"steps": 30, "lr": 1e-5, "prompts_per_step": 8, "group_size": 4, "max_new_tokens": 16,
            "n_eval": Param(48, COUNT, help="held-out GRPO prompts the answers are evaluated on"),
            "eval_seed": Param(7, SEED, help="seed drawing the held-out GRPO evaluation prompts"),
            "n_lens_heldout": Param(16, COUNT, help="held-out GRPO prompts added to the lens prompts"),
            "layer_fraction": 0.55,
            "max_op_word_prob": Param(0.01, PROB,
                                      help="largest op-word lens probability (0-1) at layer_fraction after GRPO, "
                                           "any prompt"),
            "k_random": 10, "random_draws": 5,
            "max_probe_change": Param(0.037, PROB,
                                      help="equivalence margin (accuracy, 0-1) of the probe's change over training"),
            "writeup_relative_gain": Param(0.20, NON_NEGATIVE,
                                           help="the writeup's relative rise of the correct-answer probability, "
                                                "reported"),
            "alpha": 0.05, "min_seeds": 5, "cls_weight": 0.0, "plant_prob": 0.0, "plant_replicate": 0,
            **GRPO_GATE_PARAMS},
    tests={"no_vocab_classifier": "sign", "probe_unchanged": "sign", "answers_improve": "sign"},
    fast={"steps": 3, "prompts_per_step": 4, "n_eval": 16, "n_lens_heldout": 4, "max_new_tokens": 6},
    training=True,
    default_seeds={"fast": 1, "slow": 5},
    gates=GRPO_GATES,
    graded=(GradedControl(name="op word planted after GRPO",
                          description="the same trained runs (cached), then each symbol prompt's operation word "
                                      "written at the 55%-depth block, scaled so that the criterion's statistic, the "
                                      "largest lens P(op word) there over as many prompts as the lens reads, is the "
                                      "strength on prompts of the evaluation form that are never measured (one "
                                      "calibration draw per replicate and seed)",
                          units="max planted lens P(op word) at 55% depth",
                          strengths=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4), replicates=3,
                          build=planted_op_word, effect=Verdict.REFUTED, threshold=0.01, writeup=0.0, claimed="sesoi",
                          part="no_vocab_classifier",
                          scale_free=lambda ctx: scale_free_threshold(ctx.handle(), ctx.params)),),
    readers={"no_vocab_classifier": read_lens},
)
def measure_h07(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    spec = grpo_spec()
    configs = {seed: grpo_config(p, seed) for seed in ctx.seeds}
    heldout, lens_items = h07_prompts(configs, spec, p)
    base = ctx.handle()
    base_snapshot = snapshot(base, lens_items, heldout, p)
    runs = [h07_run(ctx, seed, cfg, spec, base_snapshot, lens_items, heldout) for seed, cfg in configs.items()]
    limit = scale_free_threshold(base, p)
    parts = h07_parts(runs, limit, ctx)
    statistic = combine(parts["answers_improve"], parts)
    statistic = replace(statistic, details={**statistic.details, "relative_gain": relative_gain(runs),
                                            "writeup_relative_gain": p["writeup_relative_gain"],
                                            "threshold_forms": limit,
                                            "heldout_prompts": [it.text for it in heldout],
                                            "lens_layer": base.layer_at_depth(p["layer_fraction"])})
    extra = {"mean_reward": {r["seed"]: float(np.mean(r["rewards"])) for r in runs},
             "n_training_prompts": {r["seed"]: r["n_training_prompts"] for r in runs},
             "steps": {r["seed"]: r["steps"] for r in runs}}
    return Outcome(statistic=statistic, ours=h07_ours(runs, statistic, len(heldout), p),
                   samples=h07_samples(runs, lens_items), curves=h07_curves(runs), extra=extra,
                   fitness=grpo_fitness([r["metrics"] for r in runs]))
