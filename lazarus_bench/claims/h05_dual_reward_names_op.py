"""H05a: dual-reward LoRA on V and O makes the lens at 55% depth name the operation (H05b: answers kept)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from .. import prompts, stats
from ..analysis.ceiling import lens_ceilings, lens_map
from ..harness.base import NEGATIVE, ClaimContext, Control, Gate, Outcome
from ..harness.common import mean_series, step_curve
from ..harness.controls import GradedControl
from ..harness.fixtures import DUAL_FAST, DUAL_GATES, DUAL_PARAMS, DUAL_SEEDS, dual_fitness, dual_run, dual_sample
from ..harness.params import Param
from ..harness.plants import ClassPlant, calibrate_scale, class_markers, strongest_directions
from ..harness.registry import claim, get_claim
from ..options import COUNT0, NON_NEGATIVE, PROB, Interval
from ..protocols import ONE_FACTOR
from ..stats import ClaimStatistic, Verdict
from ..stats.verdicts import combine
from ..training.data import class_token_ids
from ..training.dual_reward import evaluate_classifier
from .h01_lens_op_words import scale_free_threshold


def h05a_verdict(samples: list[dict], p: dict, tests: dict[str, str], ceiling: dict,
                 floor: dict) -> tuple[ClaimStatistic, dict]:
    """All three, with the seed as the unit (CLAIMS.md revision 4): every seed names the operation on >= 7 of its 8
    eval prompts (argmax among the 4 class words, exact binomial per seed, intersection-union); the per-seed mean
    full-vocabulary P(true op word) is >= 36% of the lens ceiling; and it lies above H01's T' for this model (each an
    exact sign test across seeds)."""
    alpha, min_seeds = p["alpha"], p["min_seeds"]
    n_prompts = samples[0]["n_prompts"]
    correct = stats.replicated_proportion_claim(
        [s["correct_after"] for s in samples], n_prompts, p["min_correct"] / n_prompts, alpha,
        chance=1.0 / len(prompts.operation_words()), min_n=min_seeds,
        name="restricted-argmax accuracy per seed")
    probs = [s["vocab_prob_after"] for s in samples]
    share = stats.threshold_claim([v / ceiling["reached"] for v in probs], p["min_ceiling_share"], "above", alpha,
                                  test=tests["share"], min_n=min_seeds,
                                  name="mean full-vocabulary P(true op word) / lens ceiling per seed")
    above = stats.threshold_claim([v / floor["scale_free"] for v in probs], 1.0, "above", alpha,
                                  test=tests["floor"], min_n=min_seeds,
                                  name="mean full-vocabulary P(true op word) / H01's T' per seed")
    parts = {"correct": correct, "share": share, "floor": above}
    combined = combine(share, parts, units=("seeds", len(samples), min_seeds))
    details = {
        **combined.details,
        "n_seeds": len(samples),
        "correct": correct.to_dict(),
        "prob_definition": "full-vocabulary lens probability of the true class word's first token (no space) at "
                           "block int(0.55 L), as the writeup measured, over the lens ceiling of the eval prompts' "
                           "class tokens (CLAIMS.md revision 4)",
        "mean_prob_after": float(np.mean(probs)),
        "lens_ceiling": ceiling,
        "h01_threshold": floor,
        "restricted_prob_after_mean": float(np.mean([s["restricted_prob_after"] for s in samples])),
        "unit": "seed (the eval prompts are nested in each seed)",
    }
    return replace(combined, details=details), parts


_CEILINGS: dict[str, dict] = {}  # per process, by a digest of the lens map: the ceiling reads nothing else


def op_word_ceiling(ctx: ClaimContext) -> dict:
    """The lens ceiling of the eval prompts: the mean over them of the largest full-vocabulary lens probability their
    true class token takes over unit-RMS residuals (``reached``, by the declared ascent of ``analysis.ceiling``) and
    its certified upper bound (``bound``); 1 where no bound is certified (soft-capped logits). Computed once a model."""
    handle = ctx.handle()
    affine = lens_map(handle)
    if affine is None:
        return {"reached": 1.0, "bound": 1.0}
    key = hashlib.sha256(np.ascontiguousarray(affine[0]).tobytes() + np.ascontiguousarray(affine[1]).tobytes())
    if key.hexdigest() not in _CEILINGS:
        ids = class_token_ids(handle, list(prompts.operation_words()))
        ceilings = lens_ceilings(handle, ids.values())
        ctx.log("lens ceiling per op word: " + ", ".join(
            f"{w} {ceilings[t].reached:.1%} reached, {ceilings[t].bound:.1%} bound" for w, t in ids.items()))
        labels = prompts.dual_reward_eval().labels()
        _CEILINGS[key.hexdigest()] = {k: float(np.mean([getattr(ceilings[ids[w]], k) for w in labels]))
                                      for k in ("reached", "bound")}
    return _CEILINGS[key.hexdigest()]


def h01_floor(ctx: ClaimContext) -> dict:
    """H01's T' = max(1%, k x R) on this model, at H01's declared parameters: a probability H05a's lens must beat."""
    return scale_free_threshold(ctx.handle(), get_claim("H01").parameters(ctx.tier))


def ceiling_over_floor(ctx: ClaimContext) -> float:
    """The lens ceiling in multiples of H01's T': below 2, the ceiling-relative criterion cannot be told from the
    random-init level (CLAIMS.md revision 4)."""
    return op_word_ceiling(ctx)["reached"] / h01_floor(ctx)["scale_free"]


CEILING_GATE = Gate(name="lens ceiling over H01's T'",
                    description="lens ceiling of the eval prompts' true op words (final norm and unembedding alone, "
                                "analysis.ceiling) in multiples of H01's scale-free threshold T' on this model: below "
                                "2, a share of the ceiling cannot be told from what the lens shows on random-init "
                                "models, so the claim is NOT TESTABLE on this model, never REFUTED",
                    value=ceiling_over_floor, threshold_param="min_ceiling_over_floor")


def planted_naming(ctx: ClaimContext, share: float, replicate: int) -> ClaimContext:
    return ctx.variant(params={"plant_share": share, "plant_replicate": replicate})


def planted_after(ctx: ClaimContext, run: dict, p: dict) -> dict:
    """The graded control's construction: one seed's run (its training and gate kept) read on this untrained model
    with each prompt's class token written at the claim's block, at the scale that gives the true class token a mean
    full-vocabulary lens probability of ``plant_share`` of the lens ceiling on calibration prompts of the evaluation
    form (drawn per replicate and seed, never measured), so the effect's size is known in the criterion's own units."""
    handle, words = ctx.fresh_handle(), list(prompts.operation_words())
    ids = class_token_ids(handle, words)
    evalset = prompts.dual_reward_eval()
    calib = prompts.resampled_dual_reward_eval(90_000 + 100 * p["plant_replicate"] + run["seed"])
    directions = strongest_directions(handle, [ids[w] for w in words])
    plant = ClassPlant(handle, class_markers(handle, [calib, evalset], words), directions,
                       handle.layer_at_depth(p["layer_fraction"]))

    def read(prompt_set):
        return evaluate_classifier(handle, prompt_set.texts(), prompt_set.labels(), words, p["layer_fraction"])

    calibrate_scale(plant, lambda: read(calib).mean_vocab_prob, p["plant_share"] * op_word_ceiling(ctx)["reached"])
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
    "share": {"scale": "log"},  # seed mean of P / lens ceiling, >= 0.36
    "floor": {"scale": "log"},  # seed mean of P / H01's T', > 1
}


@claim(
    id="H05a",
    title="Dual-reward V/O LoRA makes the lens name the operation",
    statement="Dual-reward LoRA on the V and O projections only makes the logit lens at 55% depth name the operation.",
    source="seed 002 (BREAKTHROUGH: Dual-Reward Training)",
    criterion=">= 7/8 eval prompts correct (argmax among the 4 op words of their full-vocabulary lens probabilities at "
    "block int(0.55 L)) in every seed, above chance (exact binomial per seed, intersection-union); mean "
    "full-vocabulary P(true op word) >= 36% of the lens ceiling and above H01's T' on the model (exact sign tests "
    "across seeds, one-sided); the seed is the unit, 5 seeds; a ceiling below 2 T' is NOT TESTABLE",
    writeup="Llama-3.2-1B base: 0/8 -> 8/8, full-vocabulary probs 36-81% (rank 8 V/O, 0.4 CE + 0.6 answer, "
    "500 steps)",
    params={**DUAL_PARAMS,
            "min_correct": Param(7, COUNT0, help="fewest eval prompts the lens must name correctly in every seed"),
            "min_ceiling_share": Param(0.36, PROB,
                                       help="smallest mean lens P(true op word) per seed, as a share (0-1) of the "
                                            "lens ceiling"),
            "min_ceiling_over_floor": Param(2.0, NON_NEGATIVE,
                                            help="gate: smallest lens ceiling in multiples of H01's T' on the model"),
            "plant_share": Param(0.0, Interval(float, 0.0, 0.99),
                                 help="graded control: planted mean lens P(true op word), a share of the ceiling "
                                      "(0: none)"),
            "plant_replicate": 0},
    tests={"correct": "binomial per seed, intersection-union", "share": "sign", "floor": "sign"},
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
                                      "that gives the true class token this share of the lens ceiling as its mean "
                                      "full-vocabulary lens probability on calibration prompts of the evaluation form "
                                      "(one draw per replicate and seed, never measured); the writeup's effect is the "
                                      "middle of its 36-81% range, read as shares of a ceiling near 1",
                          units="mean planted lens P(true op word) at 55% depth / lens ceiling",
                          strengths=(0.2, 0.36, 0.45, 0.585, 0.81), replicates=5, build=planted_naming,
                          effect=Verdict.SUPPORTED, threshold=0.36, writeup=0.585),),
    training=True,
    protocols=("corrected", "original", *ONE_FACTOR),
    layer_curve=("lens_true_op_word", "after, mean over seeds"),
)
def measure_h05a(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    runs = [dual_run(ctx, seed) for seed in ctx.seeds]
    if p["plant_share"] > 0:
        runs = [planted_after(ctx, run, p) for run in runs]
    samples = [dual_sample(r, p["loss_window"]) for r in runs]
    statistic, parts = h05a_verdict(samples, p, ctx.claim.tests, op_word_ceiling(ctx), h01_floor(ctx))
    per_seed = ", ".join(format(s["vocab_prob_after"], ".1%") for s in samples)
    ours = (
        f"{ctx.protocol} protocol, {len(samples)} seed(s) x {p['steps']} steps, block {samples[0]['layer']}: "
        f"correct per seed {[s['correct_after'] for s in samples]} of {samples[0]['n_prompts']} (before "
        f"{[s['correct_before'] for s in samples]}), mean full-vocabulary P(op word) "
        f"{statistic.details['mean_prob_after']:.1%} (per seed {per_seed}), {statistic.statistic:.2f} of the lens "
        f"ceiling {statistic.details['lens_ceiling']['reached']:.1%}, {parts['floor'].statistic:.1f}x H01's T' "
        f"{statistic.details['h01_threshold']['scale_free']:.2%}; 4-way renormalised "
        f"{statistic.details['restricted_prob_after_mean']:.1%}"
    )
    return Outcome(
        statistic=statistic,
        ours=ours,
        samples=samples,
        curves=dual_curves(runs),
        extra={"protocol": ctx.protocol, "writeup_differences": "see training.dual_reward.ORIGINAL_DIFFERENCES"},
        fitness=dual_fitness(samples),
    )
