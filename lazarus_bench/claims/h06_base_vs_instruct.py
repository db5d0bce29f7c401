"""H06: a base model takes dual-reward better than its instruct variant (paired by seed)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np

from .. import stats
from ..harness.base import ClaimContext, Gate, Outcome, needs_instruct_pair
from ..harness.controls import NullControl
from ..harness.fixtures import DUAL_FAST, DUAL_GATES, DUAL_PARAMS, DUAL_SEEDS, dual_fitness, dual_run, dual_sample
from ..harness.params import Param
from ..harness.registry import claim
from ..options import COUNT, PROB, Interval
from ..stats import ClaimStatistic, Verdict
from ..stats.verdicts import combine
from ..zoo.registry import MANIFEST, resolve_zoo
from .h05_dual_reward_names_op import dual_curves


def h06_statistic(base: list[dict], instruct: list[dict], p: dict, tests: dict[str, str]) -> ClaimStatistic:
    """Paired by seed, each criterion with its declared test on the per-seed differences (instruct - base): the
    first logged classification loss is higher for instruct, and the final full-vocabulary op-word probability is
    lower; both must hold (intersection-union)."""
    alpha, min_n = p["alpha"], p["min_seeds"]
    loss_d = np.subtract([s["first_logged_cls_loss"] for s in instruct], [s["first_logged_cls_loss"] for s in base])
    prob_d = np.subtract([s["vocab_prob_after"] for s in instruct], [s["vocab_prob_after"] for s in base])
    parts = {
        "instruct_loss_higher": stats.threshold_claim(
            loss_d, 0.0, "above", alpha, test=tests["instruct_loss_higher"], min_n=min_n,
            name="first logged cls loss: instruct - base, per seed"),
        "instruct_prob_lower": stats.threshold_claim(
            prob_d, 0.0, "below", alpha, test=tests["instruct_prob_lower"], min_n=min_n,
            name="final full-vocabulary P(op word): instruct - base, per seed"),
    }
    combined = combine(parts["instruct_prob_lower"], parts, units=("seeds", len(base), min_n))
    return replace(combined, details={**combined.details, "n_seeds": len(base),
                                      "first_logged_cls_loss_diff": float(np.mean(loss_d)),
                                      "final_prob_diff": float(np.mean(prob_d)),
                                      "unit": "seed (base and instruct runs paired by seed)"})


REWARD_STAGES = ("grpo", "dpo", "rlhf", "ppo")


def post_trained(ctx: ClaimContext) -> float:
    """Whether the instruct variant went through a reward-based post-training stage (see the gate's description)."""
    pair = ctx.info.instruct_pair
    if pair is None or not pair.startswith(("zoo:", "zoo-micro:")):
        return 1.0
    manifest = json.loads((resolve_zoo(pair) / MANIFEST).read_text())
    stages = [str(s).lower() for s in manifest.get("post_training", [])]
    return float(any(stage in REWARD_STAGES for stage in stages))


def _zoo_pair_change(ctx: ClaimContext, metric: str) -> float:
    """The instruct variant's ``metric`` minus the base's, from a zoo pair's manifests: 0 for a pair outside the zoo
    (its makers evaluated it), NaN (the gate fails) for a zoo model whose manifest has no such figure."""
    pair, zoo = ctx.info.instruct_pair, ("zoo:", "zoo-micro:")
    if pair is None or not (pair.startswith(zoo) and ctx.model_id.startswith(zoo)):
        return 0.0
    base, inst = ((json.loads((resolve_zoo(m) / MANIFEST).read_text()).get("metrics") or {}).get(metric)
                  for m in (ctx.model_id, pair))
    return math.nan if base is None or inst is None else float(inst) - float(base)


def instruct_skill_change(ctx: ClaimContext) -> float:
    """The instruct variant's evaluation-prompt accuracy minus the base's (0-1; see ``_zoo_pair_change``)."""
    return _zoo_pair_change(ctx, "eval_prompts")


def instruct_chat_gain(ctx: ClaimContext) -> float:
    """The instruct variant's chat-format accuracy minus the base's (0-1; see ``_zoo_pair_change``)."""
    return _zoo_pair_change(ctx, "chat")


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {"instruct_loss_higher": {}, "instruct_prob_lower": {}}  # seed means of paired differences


def base_against_base(ctx: ClaimContext, replicate: int) -> ClaimContext:
    """One draw of the null: this base in the instruct role, its runs seeded 1000 x (replicate + 1) further on."""
    return ctx.variant(info=replace(ctx.info, instruct_pair=ctx.model_id),
                       params={"pair_seed_offset": 1000 * (replicate + 1)})


@claim(
    id="H06",
    no_graded=("no graded plant: the effect is a difference between two models' dual-reward training, and no edit "
               "makes one model take the training worse by a known amount; its base-against-base null, other seeds "
               "of the same base in the instruct role, measures how often seed noise alone reads as an advantage"),
    title="Base models take dual-reward better than instruct models",
    statement="Dual-reward training works better on a base model than on its instruct variant.",
    source="seed 002 (Results: Llama 3.2 1B Instruct; Conclusions 5)",
    criterion="paired over seeds (same data, init and order): instruct's classification loss at the first logged "
               "step (the writeup logged step 100) higher and its final full-vocabulary op-word prob lower, each by "
               "the exact sign test on the per-seed differences (one-sided), intersection-union; 5 seeds",
    writeup="initial cls loss 5.0 (instruct) vs 0.97 (base); final probs 5-54% vs 36-81%; 7/8 vs 8/8",
    params={**DUAL_PARAMS,
            "min_post_trained": Param(1.0, PROB,
                                      help="gate: 1 needs an instruct variant post-trained with a reward stage (0 "
                                           "waives it)"),
            "max_ceiling": Param(0.99, PROB,
                                 help="gate: largest mean final op-word prob (0-1) the lower of base and instruct "
                                      "may reach"),
            "first_log_step": Param(100, COUNT,
                                    help="training step whose classification loss is compared (the writeup's first "
                                         "logged step)"),
            "min_instruct_skill_change": Param(-0.10, Interval(float, -1.0, 1.0),
                                               help="gate: least change (0-1) of a zoo instruct variant's "
                                                    "eval-prompt accuracy vs base"),
            "min_instruct_chat_gain": Param(0.0, Interval(float, -1.0, 1.0),
                                            help="gate: smallest chat-format accuracy gain (0-1) of a zoo instruct "
                                                 "variant over its base"),
            "pair_seed_offset": Param(0, Interval(int, 0, 2**20),
                                      help="null: added to each seed of the instruct-role runs (0: the same seeds)")},
    tests={"instruct_loss_higher": "sign", "instruct_prob_lower": "sign"},
    default_seeds=DUAL_SEEDS,
    applies=needs_instruct_pair,
    fast=DUAL_FAST,
    gates=(Gate(name="post-trained instruct variant",
                description="1 when the instruct model went through a reward-based stage (a zoo manifest's "
                            "post_training lists grpo, dpo or rlhf; released instruct checkpoints are taken as "
                            "post-trained), 0 for a chat fine-tune only: the writeup compared base with a "
                            "post-trained model",
                value=post_trained, threshold_param="min_post_trained"),
           Gate(name="instruct keeps the skills",
                description="the instruct variant's accuracy on the zoo's evaluation prompts minus the base's (zoo "
                            "manifests, NaN where they hold no figure; 0 for a released pair, whose makers evaluated "
                            "it): an instruct model that lost more than 10 points is a broken model, not an instruct "
                            "variant, and a difference in how it takes dual-reward would say nothing about "
                            "instruction tuning",
                value=instruct_skill_change, threshold_param="min_instruct_skill_change"),
           Gate(name="instruct follows the chat format",
                description="the instruct variant's chat-format accuracy minus the base's (zoo manifests; 0 for a "
                            "released pair): an instruct variant that answers chat prompts no better than the base "
                            "was not instruction-tuned",
                value=instruct_chat_gain, threshold_param="min_instruct_chat_gain"),
           *DUAL_GATES,
           Gate(name="not both at ceiling",
                description="the lower of the two models' mean final full-vocabulary op-word probability: when both "
                            "reach the ceiling no difference can show",
                value=None, threshold_param="max_ceiling", direction="below")),
    nulls=(NullControl(name="base against base",
                       description="the base model's own runs with other seeds (init and data order) in the instruct "
                                   "role, paired by seed as a real pair is: no difference exists, so a base advantage "
                                   "found is a false positive of the measurement's own seed-to-seed variance",
                       replicates=4, build=base_against_base, effect=Verdict.SUPPORTED),),
    training=True,
    after=("H05a",),
)
def measure_h06(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    pair = ctx.info.instruct_pair
    base_runs = [dual_run(ctx, seed) for seed in ctx.seeds]
    inst_runs = [dual_run(ctx, seed + p["pair_seed_offset"], pair) for seed in ctx.seeds]
    base = [dual_sample(r, p["loss_window"], p["first_log_step"]) for r in base_runs]
    inst = [dual_sample(r, p["loss_window"], p["first_log_step"]) for r in inst_runs]
    statistic = h06_statistic(base, inst, p, ctx.claim.tests)
    samples = [{"variant": "base", **s} for s in base] + [{"variant": "instruct", **s} for s in inst]
    curves, other = dual_curves(base_runs, "base"), dual_curves(inst_runs, "instruct")
    for name, curve in curves.items():
        curve["series"].update(other[name]["series"])

    def summary(rows: list[dict]) -> str:
        return (f"cls loss at step {rows[0]['first_logged_step']} "
                f"{np.mean([s['first_logged_cls_loss'] for s in rows]):.3g}, final prob "
                f"{np.mean([s['vocab_prob_after'] for s in rows]):.1%}, correct "
                f"{[s['correct_after'] for s in rows]}")

    ours = (f"{len(base)} seed(s) x {p['steps']} steps; base: {summary(base)}; instruct ({pair}): {summary(inst)}; "
            f"instruct - base: first logged loss {statistic.details['first_logged_cls_loss_diff']:+.3g}, final prob "
            f"{statistic.statistic:+.1%}")
    ceiling = min(np.mean([s["vocab_prob_after"] for s in rows]) for rows in (base, inst))
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves, extra={"instruct_model": pair},
                   fitness={**dual_fitness(base + inst), "not both at ceiling": float(ceiling)})
