"""H05b: the dual-reward training of H05a does not break the answers (its cached runs, the seed as the unit)."""

from __future__ import annotations

import numpy as np

from .. import stats
from ..stats import Verdict
from .base import NEGATIVE, POSITIVE, ClaimContext, Control, ControlUnavailable, Gate, Outcome, claim
from .fixtures import DUAL_FAST, DUAL_GATES, DUAL_PARAMS, DUAL_SEEDS, dual_fitness, dual_run, dual_sample


def no_planted_keep(ctx: ClaimContext) -> ClaimContext:
    raise ControlUnavailable("answers kept by construction means no training, and a run at learning rate 0 fails the "
                             "claim's manipulation floor (its classification loss does not fall), so such a control "
                             "is NOT TESTABLE by design")


@claim(
    id="H05b",
    no_graded=("not built in this round: a graded answer loss would interpolate each seed's adapter toward the 100x "
               "learning-rate run's (both cached) at several fractions, one answer evaluation each; the 100x run is "
               "the destroyed end, measured as a negative control"),
    title="Dual-reward V/O LoRA keeps the answers",
    statement="The dual-reward training of H05a does so without breaking the model's answers.",
    source="seed 002 (BREAKTHROUGH: Dual-Reward Training; answers after training)",
    criterion="answer accuracy on the eval prompts after minus before, per seed, not below -10 points (exact "
              "sign test across seeds, one-sided: unanimous seeds are evidence); the seed is the unit, 5 seeds",
    writeup="Llama-3.2-1B base: answers still computed after dual-reward training (8/8 named, answers kept)",
    params={**DUAL_PARAMS, "max_accuracy_drop": 0.10, "min_base_answers": 0.5},
    tests={"answers_kept": "sign"},
    default_seeds=DUAL_SEEDS,
    fast=DUAL_FAST,
    gates=(Gate("base answers", "the model's answer accuracy on the eval prompts before training (mean over seeds): "
                "below 50% there are few answers to keep or break", None, "min_base_answers"), *DUAL_GATES),
    controls=(Control("answers destroyed", NEGATIVE, "the same runs at 100x the learning rate: the LoRA update "
                      "overwhelms the model, so 'answers kept' must not pass",
                      lambda ctx: ctx.variant(params={"lr_scale": 100.0}), Verdict.SUPPORTED),
              Control("answers kept by construction", POSITIVE, "none can be built (see the reason)", no_planted_keep,
                      Verdict.SUPPORTED)),
    training=True,
    after=("H05a",),
    protocols=("corrected", "original"),
)
def measure_h05b(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    samples = [dual_sample(dual_run(ctx, seed), p["loss_window"]) for seed in ctx.seeds]
    changes = [s["answer_accuracy_change"] for s in samples]
    statistic = stats.threshold_claim(changes, -p["max_accuracy_drop"], "above", p["alpha"],
                                      test=ctx.test("answers_kept"), min_n=p["min_seeds"],
                                      name="answer accuracy after - before per seed (accuracy points / 100)")
    ours = (f"{ctx.protocol} protocol, {len(samples)} seed(s) x {p['steps']} steps: answer accuracy before "
            f"{[round(s['answer_accuracy_before'], 3) for s in samples]}, after "
            f"{[round(s['answer_accuracy_after'], 3) for s in samples]}; mean change {np.mean(changes):+.1%}")
    base = float(np.mean([s["answer_accuracy_before"] for s in samples]))
    curves = {"answer_accuracy": {"x": [str(s["seed"]) for s in samples], "xlabel": "seed",
                                  "ylabel": "answer accuracy on the eval prompts", "series": {
                                      "before": [s["answer_accuracy_before"] for s in samples],
                                      "after": [s["answer_accuracy_after"] for s in samples]}}}
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves,
                   fitness={**dual_fitness(samples), "base answers": base})
