"""H05: dual-reward LoRA on V and O makes the lens at 55% depth name the operation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import prompts, stats
from ..stats import ClaimStatistic, Verdict
from ..stats.verdicts import combine
from .base import NEGATIVE, ClaimContext, Control, Outcome, claim
from .common import mean_series, step_curve
from .fixtures import DUAL_FAST, DUAL_GATES, DUAL_PARAMS, dual_fitness, dual_run, dual_sample


def answer_changes(samples: list[dict]) -> list[int]:
    """Per (seed, eval prompt): answer correct after minus correct before (-1, 0 or 1)."""
    return [int(a) - int(b) for s in samples for b, a in zip(s["answer_correct_before"], s["answer_correct_after"])]


def h05_verdict(samples: list[dict], p: dict) -> tuple[ClaimStatistic, dict]:
    """All of: pooled argmax hits (>= 7/8, above chance), per-seed mean restricted prob (>= 36%), and the answer
    guard, met when the mean accuracy change is >= -10 points, refuted when the pooled (seed x prompt) changes are
    significantly below that (one-sided t, sign test when constant)."""
    alpha, min_seeds = p["alpha"], p["min_seeds"]
    n_prompts = samples[0]["n_prompts"]
    k = sum(s["correct_after"] for s in samples)
    correct = stats.proportion_claim(k, n_prompts * len(samples), p["min_correct"] / n_prompts, alpha,
                                     chance=1.0 / len(prompts.operation_words()), min_n=n_prompts * min_seeds,
                                     name="pooled restricted-argmax accuracy")
    prob = stats.threshold_claim([s["restricted_prob_after"] for s in samples], p["min_prob"], "above", alpha,
                                 min_n=min_seeds, name="mean restricted P(true op word) per seed")
    changes = [s["answer_accuracy_change"] for s in samples]
    margin = -p["max_accuracy_drop"]
    guard_met = float(np.mean(changes)) >= margin
    guard = stats.threshold_claim(answer_changes(samples), margin, "above", alpha, min_n=n_prompts * min_seeds,
                                  name="answer correct after - before, pooled over seeds and prompts")
    if guard.verdict == Verdict.REFUTED:
        guard_verdict = Verdict.REFUTED
        guard_reason = f"answer accuracy drops significantly more than {p['max_accuracy_drop']:.0%}"
    elif guard_met:
        guard_verdict, guard_reason = Verdict.SUPPORTED, f"answer accuracy change {np.mean(changes):+.1%}"
    else:
        guard_verdict = Verdict.INCONCLUSIVE
        guard_reason = f"answer accuracy falls by {-np.mean(changes):.0%} > {p['max_accuracy_drop']:.0%}"
    parts = {"correct": correct, "prob": prob,
             "answers": replace(guard, verdict=guard_verdict, reason=guard_reason)}
    combined = combine(prob, parts, units=("seeds", len(samples), min_seeds))
    details = {
        **combined.details,
        "n_seeds": len(samples),
        "correct": correct.to_dict(),
        "answer_guard": guard.to_dict(),
        "answer_accuracy_change_mean": float(np.mean(changes)),
        "answer_guard_met": guard_met,
        "prob_definition": "softmax over the 4 class words' first tokens (no space), block int(0.55 L)",
        "vocab_prob_after_mean": float(np.mean([s["vocab_prob_after"] for s in samples])),
    }
    return replace(combined, details=details), parts


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


@claim(
    id="H05",
    title="Dual-reward V/O LoRA makes the lens name the operation",
    statement="Dual-reward LoRA on the V and O projections only makes the logit lens at 55% depth name the operation.",
    source="seed 002 (BREAKTHROUGH: Dual-Reward Training)",
    criterion=">= 7/8 eval prompts correct (restricted argmax over the 4 op words at block int(0.55 L)), mean "
    "restricted op-word prob >= 36%, answer accuracy not worse by > 10 points; across seeds: pooled "
    "binomial vs chance 25%, one-sided t on per-seed mean prob",
    writeup="Llama-3.2-1B base: 0/8 -> 8/8, restricted probs 36-81% (rank 8 V/O, 0.4 CE + 0.6 answer, 500 steps)",
    params={**DUAL_PARAMS, "min_correct": 7, "min_prob": 0.36, "max_accuracy_drop": 0.10},
    fast=DUAL_FAST,
    gates=DUAL_GATES,
    controls=(Control("untrained runs", NEGATIVE, "the same runs (data, steps, seeds, evaluation) with the learning "
                      "rate scaled to 0: nothing is learned, so the lens cannot name the operation",
                      lambda ctx: ctx.variant(params={"lr_scale": 0.0}), Verdict.SUPPORTED),),
    training=True,
    protocols=("corrected", "original"),
)
def measure_h05(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    runs = [dual_run(ctx, seed) for seed in ctx.seeds]
    samples = [dual_sample(r, p["loss_window"]) for r in runs]
    statistic, parts = h05_verdict(samples, p)
    correct = parts["correct"]
    per_seed = ", ".join(format(s["restricted_prob_after"], ".1%") for s in samples)
    ours = (
        f"{ctx.protocol} protocol, {len(samples)} seed(s) x {p['steps']} steps, block {samples[0]['layer']}: "
        f"correct {correct.details['k']}/{correct.n} (per seed {[s['correct_after'] for s in samples]}; before "
        f"{[s['correct_before'] for s in samples]}), mean restricted P(op word) {statistic.statistic:.1%} "
        f"(per seed {per_seed}), full-vocab {statistic.details['vocab_prob_after_mean']:.2%}; answer accuracy "
        f"change {statistic.details['answer_accuracy_change_mean']:+.1%}"
    )
    return Outcome(
        statistic=statistic,
        ours=ours,
        samples=samples,
        curves=dual_curves(runs),
        extra={"protocol": ctx.protocol, "writeup_differences": "see training.dual_reward.ORIGINAL_DIFFERENCES"},
        fitness=dual_fitness(samples),
    )
