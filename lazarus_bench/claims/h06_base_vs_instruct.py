"""H06: a base model takes dual-reward better than its instruct variant (paired by seed)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np

from .. import stats
from ..stats import ClaimStatistic, Verdict
from ..zoo.registry import MANIFEST, resolve_zoo
from .base import NEGATIVE, ClaimContext, Control, Gate, Outcome, claim, needs_instruct_pair
from .fixtures import DUAL_FAST, DUAL_GATES, DUAL_PARAMS, dual_fitness, dual_run, dual_sample
from .h05_dual_reward_names_op import dual_curves


def h06_statistic(base: list[dict], instruct: list[dict], p: dict) -> ClaimStatistic:
    """Paired over seeds: instruct's first logged cls loss higher and final restricted op-word prob lower
    (one-sided)."""
    alpha, n = p["alpha"], len(base)
    level = 1.0 - 2.0 * alpha
    loss_b, loss_i = [s["first_logged_cls_loss"] for s in base], [s["first_logged_cls_loss"] for s in instruct]
    prob_b, prob_i = [s["restricted_prob_after"] for s in base], [s["restricted_prob_after"] for s in instruct]
    loss_diff = float(np.mean(np.subtract(loss_i, loss_b)))
    prob_diff = float(np.mean(np.subtract(prob_i, prob_b)))
    met = loss_diff > 0 and prob_diff < 0
    details: dict[str, Any] = {"n_seeds": n, "first_logged_cls_loss_diff": loss_diff, "final_prob_diff": prob_diff,
                               "alpha": alpha, "min_n": p["min_seeds"],
                               "test": "paired t (one-sided), intersection-union"}
    if n < 2:
        verdict = stats.decide(met, math.nan, alpha, n=n, min_n=max(2, p["min_seeds"]))
        return ClaimStatistic(name="final restricted P(op word): instruct - base", statistic=prob_diff,
                              ci_low=math.nan, ci_high=math.nan, confidence=level, effect_size=None, p_value=None, n=n,
                              verdict=verdict.verdict, reason=verdict.reason, details=details)
    t_loss = stats.paired_test(loss_i, loss_b, method="t", alternative="greater", confidence=level)
    t_prob = stats.paired_test(prob_i, prob_b, method="t", alternative="less", confidence=level)
    opp_loss = stats.paired_test(loss_i, loss_b, method="t", alternative="less").p_value
    opp_prob = stats.paired_test(prob_i, prob_b, method="t", alternative="greater").p_value
    p_values = [t_loss.p_value, t_prob.p_value]
    p_iut = max(p_values) if all(math.isfinite(v) for v in p_values) else math.nan
    opposite = any(math.isfinite(v) and v < alpha for v in (opp_loss, opp_prob))
    verdict = stats.decide(met, p_iut, alpha, n=n, min_n=p["min_seeds"], opposite_shown=opposite)
    reason = (f"{verdict.reason}; first logged cls loss instruct - base {loss_diff:+.3g} (p={t_loss.p_value:.3g}, "
              f"opposite p={opp_loss:.3g}), final prob {prob_diff:+.2%} (p={t_prob.p_value:.3g}, "
              f"opposite p={opp_prob:.3g})")
    details.update({"first_logged_cls_loss_test": t_loss.to_dict(), "final_prob_test": t_prob.to_dict(),
                    "p_opposite_loss": opp_loss, "p_opposite_prob": opp_prob,
                    "first_logged_cls_loss_effect": stats.paired_d(loss_i, loss_b, confidence=level).to_dict()})
    return ClaimStatistic(name="final restricted P(op word): instruct - base", statistic=prob_diff,
                          ci_low=t_prob.ci_low, ci_high=t_prob.ci_high, confidence=level,
                          effect_size=stats.paired_d(prob_i, prob_b, confidence=level), p_value=p_iut, n=n,
                          verdict=verdict.verdict, reason=reason, details=details)


REWARD_STAGES = ("grpo", "dpo", "rlhf", "ppo")


def post_trained(ctx: ClaimContext) -> float:
    """Whether the instruct variant went through a reward-based post-training stage (see the gate's description)."""
    pair = ctx.info.instruct_pair
    if pair is None or not pair.startswith(("zoo:", "zoo-micro:")):
        return 1.0
    manifest = json.loads((resolve_zoo(pair) / MANIFEST).read_text())
    stages = [str(s).lower() for s in manifest.get("post_training", [])]
    return float(any(stage in REWARD_STAGES for stage in stages))


@claim(
    id="H06",
    title="Base models take dual-reward better than instruct models",
    statement="Dual-reward training works better on a base model than on its instruct variant.",
    source="seed 002 (Results: Llama 3.2 1B Instruct; Conclusions 5)",
    criterion="paired over seeds (same data, init and order): instruct's classification loss at the first logged "
               "step (the writeup logged step 100) higher and its final restricted op-word prob lower, both "
               "one-sided paired t significant",
    writeup="initial cls loss 5.0 (instruct) vs 0.97 (base); final probs 5-54% vs 36-81%; 7/8 vs 8/8",
    params={**DUAL_PARAMS, "min_post_trained": 1.0, "max_ceiling": 0.99, "first_log_step": 100},
    applies=needs_instruct_pair,
    fast=DUAL_FAST,
    gates=(Gate("post-trained instruct variant", "1 when the instruct model went through a reward-based stage (a "
                "zoo manifest's post_training lists grpo, dpo or rlhf; released instruct checkpoints are taken as "
                "post-trained), 0 for a chat fine-tune only: the writeup compared base with a post-trained model",
                post_trained, "min_post_trained"),
           *DUAL_GATES,
           Gate("not both at ceiling", "the lower of the two models' mean final restricted op-word probability: when "
                "both reach the ceiling no difference can show", None, "max_ceiling", "below")),
    controls=(Control("base paired with itself", NEGATIVE, "the base model's own runs in the instruct role (the "
                      "same cached runs): no difference exists, so no base advantage may be found",
                      lambda ctx: ctx.variant(info=replace(ctx.info, instruct_pair=ctx.model_id)), Verdict.SUPPORTED),),
    training=True,
    after=("H05a",),
)
def measure_h06(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    pair = ctx.info.instruct_pair
    base_runs = [dual_run(ctx, seed) for seed in ctx.seeds]
    inst_runs = [dual_run(ctx, seed, pair) for seed in ctx.seeds]
    base = [dual_sample(r, p["loss_window"], p["first_log_step"]) for r in base_runs]
    inst = [dual_sample(r, p["loss_window"], p["first_log_step"]) for r in inst_runs]
    statistic = h06_statistic(base, inst, p)
    samples = [{"variant": "base", **s} for s in base] + [{"variant": "instruct", **s} for s in inst]
    curves, other = dual_curves(base_runs, "base"), dual_curves(inst_runs, "instruct")
    for name, curve in curves.items():
        curve["series"].update(other[name]["series"])

    def summary(rows: list[dict]) -> str:
        return (f"cls loss at step {rows[0]['first_logged_step']} "
                f"{np.mean([s['first_logged_cls_loss'] for s in rows]):.3g}, final prob "
                f"{np.mean([s['restricted_prob_after'] for s in rows]):.1%}, correct "
                f"{[s['correct_after'] for s in rows]}")

    ours = (f"{len(base)} seed(s) x {p['steps']} steps; base: {summary(base)}; instruct ({pair}): {summary(inst)}; "
            f"instruct - base: first logged loss {statistic.details['first_logged_cls_loss_diff']:+.3g}, final prob "
            f"{statistic.statistic:+.1%}")
    ceiling = min(np.mean([s["restricted_prob_after"] for s in rows]) for rows in (base, inst))
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves, extra={"instruct_model": pair},
                   fitness={**dual_fitness(base + inst), "not both at ceiling": float(ceiling)})
