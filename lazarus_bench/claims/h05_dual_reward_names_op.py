"""H05a: dual-reward LoRA on V and O makes the lens at 55% depth name the operation (H05b: answers kept)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import prompts, stats
from ..analysis.ceiling import lens_ceilings
from ..harness.base import NEGATIVE, ClaimContext, Control, Gate, Outcome
from ..harness.common import mean_series, step_curve
from ..harness.controls import GradedControl
from ..harness.fixtures import DUAL_FAST, DUAL_GATES, DUAL_PARAMS, DUAL_SEEDS, dual_fitness, dual_run, dual_sample
from ..harness.params import Param
from ..harness.plants import ClassPlant, calibrate_scale, class_markers, strongest_directions
from ..harness.registry import claim
from ..options import COUNT0, PROB
from ..protocols import ONE_FACTOR
from ..stats import ClaimStatistic, Verdict
from ..stats.verdicts import combine
from ..training.data import class_token_ids
from ..training.dual_reward import evaluate_classifier


def h05a_verdict(samples: list[dict], p: dict, tests: dict[str, str]) -> tuple[ClaimStatistic, dict]:
    """Both, with the seed as the unit: every seed names the operation on >= 7 of its 8 eval prompts (argmax among
    the 4 class words of their full-vocabulary probabilities), above chance (exact binomial per seed,
    intersection-union across seeds), and the per-seed mean full-vocabulary probability of the true op word is
    >= 36% (the declared test across seeds: exact sign test)."""
    alpha, min_seeds = p["alpha"], p["min_seeds"]
    n_prompts = samples[0]["n_prompts"]
    correct = stats.replicated_proportion_claim(
        [s["correct_after"] for s in samples], n_prompts, p["min_correct"] / n_prompts, alpha,
        chance=1.0 / len(prompts.operation_words()), min_n=min_seeds,
        name="restricted-argmax accuracy per seed")
    prob = stats.threshold_claim([s["vocab_prob_after"] for s in samples], p["min_prob"], "above", alpha,
                                 test=tests["prob"], min_n=min_seeds,
                                 name="mean full-vocabulary P(true op word) per seed")
    parts = {"correct": correct, "prob": prob}
    combined = combine(prob, parts, units=("seeds", len(samples), min_seeds))
    details = {
        **combined.details,
        "n_seeds": len(samples),
        "correct": correct.to_dict(),
        "prob_definition": "full-vocabulary lens probability of the true class word's first token (no space) at "
                           "block int(0.55 L), as the writeup measured (CLAIMS.md revision 3)",
        "restricted_prob_after_mean": float(np.mean([s["restricted_prob_after"] for s in samples])),
        "unit": "seed (the eval prompts are nested in each seed)",
    }
    return replace(combined, details=details), parts


def op_word_ceiling(ctx: ClaimContext) -> float:
    """The highest mean full-vocabulary P(true op word) any residual at any block can give the eval prompts through
    the lens (each prompt's class token at its certified lens ceiling, ``analysis.ceiling``); 1 where no bound is
    certified (soft-capped logits)."""
    handle = ctx.handle()
    ids = class_token_ids(handle, list(prompts.operation_words()))
    ceilings = lens_ceilings(handle, ids.values())
    if ceilings is None:
        return 1.0
    ctx.log("lens ceiling per op word: " + ", ".join(
        f"{w} {ceilings[t].reached:.1%} reached, {ceilings[t].bound:.1%} bound" for w, t in ids.items()))
    return float(np.mean([ceilings[ids[label]].bound for label in prompts.dual_reward_eval().labels()]))


CEILING_GATE = Gate(name="op word reachable by the lens",
                    description="certified upper bound (final norm and unembedding alone, analysis.ceiling) on the "
                                "mean full-vocabulary lens P(true op word) any residual can give the eval prompts: "
                                "below the criterion's threshold, no training of the blocks can meet it, so the "
                                "claim is NOT TESTABLE on this model, never REFUTED (threshold: the criterion's 36%)",
                    value=op_word_ceiling, threshold_param="min_lens_ceiling")


def planted_naming(ctx: ClaimContext, prob: float, replicate: int) -> ClaimContext:
    return ctx.variant(params={"plant_prob": prob, "plant_replicate": replicate})


def planted_after(ctx: ClaimContext, run: dict, p: dict) -> dict:
    """The graded control's construction: one seed's run (its training and gate kept) read on this untrained model
    with each prompt's class token written at the claim's block, at the scale that gives the true class token mean
    full-vocabulary lens probability ``plant_prob`` on calibration prompts of the evaluation form (drawn per replicate
    and seed, never measured), so the effect's size is known in the criterion's own units."""
    handle, words = ctx.fresh_handle(), list(prompts.operation_words())
    ids = class_token_ids(handle, words)
    evalset = prompts.dual_reward_eval()
    calib = prompts.resampled_dual_reward_eval(90_000 + 100 * p["plant_replicate"] + run["seed"])
    directions = strongest_directions(handle, [ids[w] for w in words])
    plant = ClassPlant(handle, class_markers(handle, [calib, evalset], words), directions,
                       handle.layer_at_depth(p["layer_fraction"]))

    def read(prompt_set):
        return evaluate_classifier(handle, prompt_set.texts(), prompt_set.labels(), words, p["layer_fraction"])

    calibrate_scale(plant, lambda: read(calib).mean_vocab_prob, p["plant_prob"])
    return {**run, "after": {**run["after"], "classifier": read(evalset).to_dict()}, "plant_scale": plant.scale}


def dual_curves(runs: list[dict], label: str = "") -> dict:
    suffix = f" ({label})" if label else ""
    return {
        "cls_loss": step_curve({f"mean over seeds{suffix}": mean_series([r["cls_loss"] for r in runs])}, "cls loss"),
        "answer_loss": step_curve(
            {f"mean over seeds{suffix}": mean_series([r["answer_loss"] for r in runs])}, "answer loss"
        ),
        "lens_true_op_word": {
            "x": runs[0]["lens_layers"],
            "xlabel": "layer",
            "ylabel": "lens P(true op word), full vocab",
            "series": {
                f"before{suffix}": mean_series([r["lens_true_before"] for r in runs]),
                f"after, mean over seeds{suffix}": mean_series([r["lens_true_after"] for r in runs]),
            },
        },
    }


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {
    "correct": {"threshold": 0.875, "side": "above"},  # seed mean of restricted-argmax accuracy, >= 7/8
    "prob": {"scale": "logit"},
}


@claim(
    id="H05a",
    title="Dual-reward V/O LoRA makes the lens name the operation",
    statement="Dual-reward LoRA on the V and O projections only makes the logit lens at 55% depth name the operation.",
    source="seed 002 (BREAKTHROUGH: Dual-Reward Training)",
    criterion=">= 7/8 eval prompts correct (argmax among the 4 op words of their full-vocabulary lens probabilities at "
    "block int(0.55 L)) in every seed, above chance (exact binomial per seed, intersection-union), and mean "
    "full-vocabulary P(true op word) >= 36% (exact sign test across seeds, one-sided); the seed is the unit, 5 seeds",
    writeup="Llama-3.2-1B base: 0/8 -> 8/8, full-vocabulary probs 36-81% (rank 8 V/O, 0.4 CE + 0.6 answer, "
    "500 steps)",
    params={**DUAL_PARAMS,
            "min_correct": Param(7, COUNT0, help="fewest eval prompts the lens must name correctly in every seed"),
            "min_prob": Param(0.36, PROB,
                              help="smallest mean full-vocabulary lens probability (0-1) of the true op word per "
                                   "seed"),
            "min_lens_ceiling": Param(0.36, PROB,
                                      help="gate: smallest certified lens ceiling (0-1) of the mean true op word "
                                           "probability"),
            "plant_prob": 0.0, "plant_replicate": 0},
    tests={"correct": "binomial per seed, intersection-union", "prob": "sign"},
    default_seeds=DUAL_SEEDS,
    fast=DUAL_FAST,
    gates=(CEILING_GATE, *DUAL_GATES),
    controls=(Control(name="untrained runs", kind=NEGATIVE,
                      description="the same runs (data, steps, seeds, evaluation) with the learning rate scaled to "
                                  "0: nothing is learned, so the lens cannot name the operation",
                      build=lambda ctx: ctx.variant(params={"lr_scale": 0.0}), effect=Verdict.SUPPORTED, sanity=True),),
    graded=(GradedControl(name="op word planted in the untrained model",
                          description="each seed's run (training and gate kept) read on the untrained model with "
                                      "each prompt's class token written at the 55%-depth block, at the strength "
                                      "that gives the true class token this mean full-vocabulary lens probability on "
                                      "calibration prompts of the evaluation form (one draw per replicate and seed, "
                                      "never measured); the writeup's effect is the middle of its 36-81% range",
                          units="mean planted lens P(true op word) at 55% depth",
                          strengths=(0.2, 0.36, 0.45, 0.585, 0.81), replicates=5, build=planted_naming,
                          effect=Verdict.SUPPORTED, threshold=0.36, writeup=0.585),),
    training=True,
    protocols=("corrected", "original", *ONE_FACTOR),
    layer_curve=("lens_true_op_word", "after, mean over seeds"),
)
def measure_h05a(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    runs = [dual_run(ctx, seed) for seed in ctx.seeds]
    if p["plant_prob"] > 0:
        runs = [planted_after(ctx, run, p) for run in runs]
    samples = [dual_sample(r, p["loss_window"]) for r in runs]
    statistic, parts = h05a_verdict(samples, p, ctx.claim.tests)
    per_seed = ", ".join(format(s["vocab_prob_after"], ".1%") for s in samples)
    ours = (
        f"{ctx.protocol} protocol, {len(samples)} seed(s) x {p['steps']} steps, block {samples[0]['layer']}: "
        f"correct per seed {[s['correct_after'] for s in samples]} of {samples[0]['n_prompts']} (before "
        f"{[s['correct_before'] for s in samples]}), mean full-vocabulary P(op word) {statistic.statistic:.1%} "
        f"(per seed {per_seed}), 4-way renormalised {statistic.details['restricted_prob_after_mean']:.1%}"
    )
    return Outcome(
        statistic=statistic,
        ours=ours,
        samples=samples,
        curves=dual_curves(runs),
        extra={"protocol": ctx.protocol, "writeup_differences": "see training.dual_reward.ORIGINAL_DIFFERENCES"},
        fitness=dual_fitness(samples),
    )
