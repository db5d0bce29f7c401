"""H05b: the dual-reward training of H05a does not break the answers (its cached runs, the seed as the unit)."""

from __future__ import annotations

import numpy as np

from .. import prompts, stats
from ..analysis.generate import answer_accuracy
from ..harness.base import NEGATIVE, POSITIVE, ClaimContext, Control, ControlUnavailable, Gate, Outcome
from ..harness.controls import GradedControl
from ..harness.fixtures import DUAL_FAST, DUAL_GATES, DUAL_PARAMS, DUAL_SEEDS, dual_fitness, dual_run, dual_sample
from ..harness.params import Param
from ..harness.registry import claim
from ..harness.weight_noise import plant_accuracy_drop
from ..options import POINTS, PROB, OrNone
from ..stats import Verdict


def no_planted_keep(ctx: ClaimContext) -> ClaimContext:
    raise ControlUnavailable("answers kept by construction means no training, and a run at learning rate 0 fails the "
                             "claim's manipulation floor (its classification loss does not fall), so such a control "
                             "is NOT TESTABLE by design")


def planted_sample(ctx: ClaimContext, seed: int) -> dict:
    """One seed's row of the graded control: the untrained model's answers on the 96 answer prompts, then the same
    model with its block weights noised (``weight_noise``; a direction per seed and replicate) until it loses the
    planted points on ~100 resampled prompts of the eval form, never the measured ones."""
    p = ctx.params
    handle = ctx.fresh_handle()
    evalset = prompts.dual_reward_extended()
    measured = {t.strip() for t in evalset.texts()}
    draw = prompts.resampled_dual_reward_eval(3000 + 100 * p["plant_replicate"] + seed, per_op=25)
    calib = {it.text: it.answer for it in draw if it.text.strip() not in measured}
    before = answer_accuracy(handle, evalset.texts(), evalset.answers()).accuracy
    planted = plant_accuracy_drop(handle, p["planted_drop"], list(calib), list(calib.values()),
                                  (5, seed, p["plant_replicate"]))
    after = answer_accuracy(handle, evalset.texts(), evalset.answers()).accuracy
    return {"seed": seed, "answer_accuracy_before": before, "answer_accuracy_after": after,
            "answer_accuracy_change": after - before, "planted": planted}


def planted_drop(ctx: ClaimContext, strength: float, replicate: int) -> ClaimContext:
    """The graded control's construction: the measure reads ``planted_sample`` rows instead of trained runs."""
    return ctx.variant(params={"planted_drop": strength, "plant_replicate": replicate})


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {"answers_kept": {}}  # seed mean of accuracy after - before


@claim(
    id="H05b",
    title="Dual-reward V/O LoRA keeps the answers",
    statement="The dual-reward training of H05a does so without breaking the model's answers.",
    source="seed 002 (BREAKTHROUGH: Dual-Reward Training; answers after training)",
    criterion="answer accuracy on 96 prompts of the eval form (the 8 eval prompts first) after minus before, per "
              "seed, not below -10 points (exact sign test across seeds, one-sided: unanimous seeds are evidence); "
              "the seed is the unit, 5 seeds",
    writeup="Llama-3.2-1B base: answers still computed after dual-reward training (8/8 named, answers kept)",
    params={**DUAL_PARAMS,
            "max_accuracy_drop": Param(0.10, PROB,
                                       help="largest fall of answer accuracy (0-1) a seed's training may cause"),
            "min_base_answers": Param(0.5, PROB,
                                      help="gate: smallest answer accuracy (0-1) of the model before training"),
            "planted_drop": Param(None, OrNone(POINTS),
                                  help="graded control: points the untrained model loses to weight noise (null: "
                                       "trained runs)"),
            "plant_replicate": 0},
    tests={"answers_kept": "sign"},
    default_seeds=DUAL_SEEDS,
    fast=DUAL_FAST,
    gates=(Gate(name="base answers",
                description="the model's answer accuracy on the answer prompts before training (mean over seeds): "
                            "below 50% there are few answers to keep or break",
                value=None, threshold_param="min_base_answers"), *DUAL_GATES),
    controls=(Control(name="answers destroyed", kind=NEGATIVE,
                      description="the same runs at 100x the learning rate: the LoRA update overwhelms the model, so "
                                  "'answers kept' must not pass",
                      build=lambda ctx: ctx.variant(params={"lr_scale": 100.0}), effect=Verdict.SUPPORTED),
              Control(name="answers kept by construction", kind=POSITIVE,
                      description="none can be built (see the reason)", build=no_planted_keep,
                      effect=Verdict.SUPPORTED)),
    graded=(GradedControl(name="answer accuracy loss planted",
                          description="each seed's untrained model (no dual-reward training), its block matrices "
                                      "noised (seeded Gaussian, RMS-scaled; a new direction per seed and replicate) "
                                      "to lose the strength in answer accuracy on ~100 resampled prompts of the eval "
                                      "form, then read on the 96 measured ones: 'answers kept' must be refuted from "
                                      "about the 10-point threshold up",
                          units="planted answer-accuracy points lost (calibration prompts)",
                          strengths=(5.0, 10.0, 20.0, 40.0, 60.0), replicates=3, build=planted_drop,
                          effect=Verdict.REFUTED, threshold=10.0, writeup=0.0, claimed="threshold"),),
    training=True,
    after=("H05a",),
    protocols=("corrected", "original"),
)
def measure_h05b(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    planted = p["planted_drop"] is not None
    samples = [planted_sample(ctx, seed) if planted else dual_sample(dual_run(ctx, seed), p["loss_window"])
               for seed in ctx.seeds]
    changes = [s["answer_accuracy_change"] for s in samples]
    statistic = stats.threshold_claim(changes, -p["max_accuracy_drop"], "above", p["alpha"],
                                      test=ctx.test("answers_kept"), min_n=p["min_seeds"],
                                      name="answer accuracy after - before per seed (accuracy points / 100)")
    run = f"a planted {p['planted_drop']:g}-point loss" if planted else f"{p['steps']} steps"
    ours = (f"{ctx.protocol} protocol, {len(samples)} seed(s) x {run}: answer accuracy before "
            f"{[round(s['answer_accuracy_before'], 3) for s in samples]}, after "
            f"{[round(s['answer_accuracy_after'], 3) for s in samples]}; mean change {np.mean(changes):+.1%}")
    base = float(np.mean([s["answer_accuracy_before"] for s in samples]))
    curves = {"answer_accuracy": {"x": [str(s["seed"]) for s in samples], "xlabel": "seed",
                                  "ylabel": "answer accuracy on the 96 answer prompts", "series": {
                                      "before": [s["answer_accuracy_before"] for s in samples],
                                      "after": [s["answer_accuracy_after"] for s in samples]}}}
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves,
                   fitness={**({} if planted else dual_fitness(samples)), "base answers": base})
