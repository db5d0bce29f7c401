"""H14: two-stage training (SFT, fuse, low-LR dual-reward) keeps computation; an aggressive stage 2 does not."""

from __future__ import annotations

from dataclasses import replace

import mlx.core as mx
import numpy as np
from mlx.utils import tree_unflatten

from .. import prompts, stats
from ..errors import LazarusError
from ..harness.base import NEGATIVE, POSITIVE, ClaimContext, Control, ControlUnavailable, Gate, Outcome
from ..harness.controls import GradedControl
from ..harness.params import Param
from ..harness.registry import claim
from ..harness.two_stage_run import StageOne, stage_one
from ..harness.weight_noise import plant_accuracy_drop
from ..options import COUNT, NON_NEGATIVE, POINTS, PROB, Choice, Interval, OrNone
from ..stats import Verdict
from ..stats.verdicts import combine
from ..training.dual_reward import train_dual_reward
from ..training.two_stage import (
    TwoStageConfig,
    TwoStageResult,
    accuracy_drop,
    eval_prompt_texts,
    stage_metrics,
)


def two_stage_configs(params: dict, seed: int, protocol: str = "corrected") -> dict[str, TwoStageConfig]:
    """The writeup's low-LR and aggressive configurations, seeded, at this tier's step counts; the controls scale
    each branch's stage-2 learning rate (``*_lr_scale``) and may set the aggressive branch's class weight and
    optimizer. The ``original`` protocol runs stage 2 with plain SGD at the same learning rates, as the writeup's
    code did."""
    def seeded(cfg: TwoStageConfig, s2: int, lr_scale: float, optimizer: str | None = None) -> TwoStageConfig:
        cfg = cfg.scaled(params["stage1_steps"], s2)
        stage2 = replace(cfg.stage2.train, seed=seed, lr=cfg.stage2.train.lr * lr_scale)
        if optimizer is not None:
            stage2 = replace(stage2, optimizer=optimizer)
        elif protocol == "original":
            stage2 = replace(stage2, optimizer="sgd", grad_clip=None)
        return replace(cfg, n_train=params["n_train"], data_seed=cfg.data_seed + seed,
                       stage1=replace(cfg.stage1, train=replace(cfg.stage1.train, seed=seed)),
                       stage2=replace(cfg.stage2, train=stage2))

    aggressive = seeded(TwoStageConfig.aggressive(), params["aggressive_stage2_steps"], params["aggressive_lr_scale"],
                        params["aggressive_optimizer"])
    if params["aggressive_cls_weight"] is not None:
        aggressive = replace(aggressive, stage2=replace(aggressive.stage2, cls_weight=params["aggressive_cls_weight"]))
    return {"low_lr": seeded(TwoStageConfig(), params["stage2_steps"], params["low_lr_scale"]),
            "aggressive": aggressive}


def calibration_prompts(one: StageOne, draws: int, replicate: int) -> tuple[list[str], list[int]]:
    """Symbolic prompts drawn as the measured extra ones are (``draws`` triples, another draw per replicate), minus
    every prompt measured or trained on: where a planted accuracy drop is calibrated. With the slow tier's 4,500
    training examples every multiplication fact outside the measured ones is trained on, so these are + and -."""
    taken = {t.strip() for t in eval_prompt_texts()} | {e.prompt.strip() for e in one.examples[:one.split]}
    items = [it for it in prompts.two_stage_extra(draws, seed=1000 + replicate).where(category="symbolic")
             if it.text.strip() not in taken]
    if len(items) < 40:
        raise ControlUnavailable(f"only {len(items)} of {draws} calibration prompts are neither measured nor "
                                 "trained on")
    return [it.text for it in items], [int(it.answer) for it in items]


def stage_two(ctx: ClaimContext, configs: dict[str, TwoStageConfig], one: StageOne) -> dict[str, TwoStageResult]:
    """Each branch's stage 2 from the fused stage-1 weights, checked to reproduce the stage-1 model first."""
    out = {}
    fused = list(mx.load(one.weights).items())
    for name, cfg in configs.items():
        branch = ctx.fresh_handle()
        branch.model.update(tree_unflatten(fused))
        logits = branch.model(mx.array([branch.encode(eval_prompt_texts()[0])]))
        if not mx.allclose(logits, mx.array(one.reference), rtol=1e-4, atol=1e-5).item():
            raise LazarusError(f"two-stage branch '{name}' does not reproduce the fused stage-1 model")
        s2 = train_dual_reward(branch, cfg.stage2, examples=one.examples[:one.split], progress=False)
        planted = {}
        if name == "aggressive" and ctx.params["aggressive_planted_drop"] is not None:
            texts, answers = calibration_prompts(one, ctx.params["plant_calibration_draws"],
                                                 ctx.params["plant_replicate"])
            planted = plant_accuracy_drop(branch, ctx.params["aggressive_planted_drop"], texts, answers,
                                          (14, cfg.stage2.train.seed, ctx.params["plant_replicate"]))
        out[name] = TwoStageResult(baseline=one.baseline, stage1=one.after, stage2=stage_metrics(branch),
                                   stage1_train=one.train, stage2_train=s2.to_dict(),
                                   config={"name": name, **({"planted": planted} if planted else {})})
        del branch
    return out


def accuracy_moved(results: dict[str, TwoStageResult]) -> float:
    """One seed's manipulation read-out: the largest change of answer accuracy (points; symbolic or word-form, 24 +
    24 prompts) from stage 1 to stage 2 over the two branches. A stage 2 at learning rate 0 leaves the fused stage-1
    model as it was, so this is exactly 0 there."""
    return max(abs(accuracy_drop(r, key)) for r in results.values() for key in ("symbolic_all", "semantic_all"))


def class_word_logprob_change(result: TwoStageResult) -> float:
    """Descriptive: the change of the mean log-probability of the true class word at the trained lens layer over the
    dual-reward evaluation prompts of stage 2's classes, before -> after stage 2 (what stage 2's classification
    term trains; 0 at learning rate 0)."""
    before, after = result.stage2_train["before"]["classifier"], result.stage2_train["after"]["classifier"]
    keep = [i for i, label in enumerate(before["labels"]) if label != "divide"]
    return float(np.mean([np.log(max(after["vocab_prob"][i], 1e-30)) - np.log(max(before["vocab_prob"][i], 1e-30))
                          for i in keep]))


def planted_drop(ctx: ClaimContext, strength: float, replicate: int) -> ClaimContext:
    """The graded control's construction: both stage 2s at learning rate 0 for one step (each seed's stage-1 model),
    then the aggressive branch's block weights noised (a new direction per replicate) until it loses ``strength``
    symbolic-accuracy points on ``calibration_prompts``, which the measurement never reads."""
    return ctx.variant(params={"low_lr_scale": 0.0, "aggressive_lr_scale": 0.0, "stage2_steps": 1,
                               "aggressive_stage2_steps": 1, "aggressive_planted_drop": strength,
                               "plant_replicate": replicate})


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {"low_lr_keeps": {}, "aggressive_destroys": {}, "no_classifier": {"scale": "logit"}}


@claim(
    id="H14",
    title="Two-stage training: low-LR stage 2 keeps computation, aggressive stage 2 destroys it, no classifier",
    statement="Two-stage training (SFT, fuse, low-LR dual-reward) keeps computation; the aggressive stage 2 "
               "destroys it; no classifier appears.",
    source="seed 003 (Experiments 1 and 2)",
    criterion="symbolic accuracy (the writeup's 4 prompts plus 20 generated, 24 in all) lost from stage 1 to "
               "stage 2: <= 10 points (low LR), >= 25 points (aggressive); classifier prob < 10% after every stage; "
               "per seed, exact one-sided sign test across 5 seeds for each criterion (a value on the threshold "
               "counts against the claim; identical drops are evidence, as the manipulation floor shows stage 2 "
               "changed the model), stage 1 shared by both branches of a seed; manipulation floor: in every seed "
               "stage 2 moved answer accuracy (symbolic or word-form) by >= 8 points (2 of 24 prompts) in at least "
               "one branch, which a stage 2 at learning rate 0 cannot; protocols: corrected (AdamW stage 2) and "
               "original (plain SGD stage 2, as the writeup's code ran)",
    writeup="75% -> 75% (low LR), 75% -> 25% (aggressive), classifier 0.1% throughout (TinyLlama)",
    params={"stage1_steps": Param(500, COUNT, help="training steps of the stage-1 SFT run"),
            "stage2_steps": Param(500, COUNT, help="training steps of the low-LR branch's dual-reward stage 2"),
            "aggressive_stage2_steps": Param(200, COUNT,
                                             help="training steps of the aggressive branch's dual-reward stage 2"),
            "n_train": 4500,
            "max_drop_low_lr": Param(10.0, POINTS,
                                     help="most symbolic accuracy points (0-100) the low-LR stage 2 may lose"),
            "min_drop_aggressive": Param(25.0, POINTS,
                                         help="fewest symbolic accuracy points (0-100) the aggressive stage 2 must "
                                              "lose"),
            "max_classifier_prob": Param(0.10, PROB,
                                         help="largest class-word lens probability (0-1) allowed after every stage"),
            "alpha": 0.05, "min_seeds": 5,
            "min_stage1_accuracy": Param(0.75, PROB,
                                         help="gate: smallest symbolic accuracy (0-1) of the stage-1 SFT model"),
            "min_stage2_accuracy_move": Param(8.0, POINTS,
                                              help="gate: smallest accuracy change (points, 0-100) stage 2 must "
                                                   "cause in a branch"),
            "low_lr_scale": Param(1.0, NON_NEGATIVE,
                                  help="factor on the low-LR branch's stage-2 learning rate (0: no learning)"),
            "aggressive_lr_scale": Param(1.0, NON_NEGATIVE,
                                         help="factor on the aggressive branch's stage-2 learning rate (0: no "
                                              "learning)"),
            "aggressive_cls_weight": Param(None, OrNone(PROB),
                                           help="classification-loss weight (0-1) of the aggressive stage 2 (null: "
                                                "the writeup's 0.2)"),
            "aggressive_optimizer": Param(None, OrNone(Choice(("adamw", "adam", "sgd"))),
                                          help="optimizer of the aggressive stage 2 (null: the protocol's, AdamW "
                                               "or plain SGD)"),
            "aggressive_planted_drop": Param(None, OrNone(POINTS),
                                             help="graded control: points the aggressive stage 2 loses to weight "
                                                  "noise (null: none)"),
            "plant_replicate": 0,
            "plant_calibration_draws": Param(240, Interval(int, 1, 300),
                                             help="graded control: prompts drawn to calibrate a planted accuracy "
                                                  "loss")},
    tests={"low_lr_keeps": "sign", "aggressive_destroys": "sign", "no_classifier": "sign"},
    fast={"stage1_steps": 10, "stage2_steps": 8, "aggressive_stage2_steps": 4, "n_train": 200},
    protocols=("corrected", "original"),
    gates=(Gate(name="stage-1 symbolic accuracy",
                description="the SFT stage-1 model's symbolic accuracy, mean over seeds: below the writeup's 75% "
                            "baseline there is no computation for stage 2 to keep or destroy",
                value=None, threshold_param="min_stage1_accuracy"),
           Gate(name="stage 2 moved accuracy",
                description="manipulation floor: per seed, the largest change of answer accuracy (points, symbolic "
                            "or word-form, 24 prompts each) from stage 1 to stage 2 over the two branches; smallest "
                            "over the seeds. A stage 2 that changed no answer in either branch (learning rate 0 "
                            "gives exactly 0; the writeup's plain SGD at 5e-5 barely trains) cannot show that one "
                            "branch keeps and the other destroys computation, so it is NOT TESTABLE, never REFUTED",
                value=None, threshold_param="min_stage2_accuracy_move")),
    controls=(Control(name="stage 2 without learning", kind=NEGATIVE,
                      description="the same runs with both stage-2 learning rates at 0 for one step: nothing is "
                                  "destroyed, so 'the aggressive stage 2 destroys computation' must not pass",
                      build=lambda ctx: ctx.variant(params={"low_lr_scale": 0.0, "aggressive_lr_scale": 0.0,
                                                            "stage2_steps": 1, "aggressive_stage2_steps": 1}),
                      effect=Verdict.SUPPORTED, sanity=True),
              Control(name="planted keep", kind=POSITIVE,
                      description="the same runs with the low-LR stage 2 at learning rate 0 for one step: "
                                  "computation is kept by construction, so 'the low-LR stage 2 keeps it' must pass",
                      build=lambda ctx: ctx.variant(params={"low_lr_scale": 0.0, "stage2_steps": 1,
                                                            "aggressive_stage2_steps": 1}),
                      effect=Verdict.SUPPORTED, part="low_lr_keeps", sanity=True),
              Control(name="planted destroy", kind=POSITIVE,
                      description="the same runs with the aggressive stage 2 on AdamW at 100x its learning rate and "
                                  "class weight 0 (both protocols: plain SGD at 100x does not destroy): computation "
                                  "is destroyed by construction, so 'the aggressive stage 2 destroys it' must pass",
                      build=lambda ctx: ctx.variant(params={"aggressive_lr_scale": 100.0, "aggressive_cls_weight": 0.0,
                                                            "aggressive_optimizer": "adamw", "low_lr_scale": 0.0,
                                                            "stage2_steps": 1}),
                      effect=Verdict.SUPPORTED, part="aggressive_destroys")),
    graded=(GradedControl(name="accuracy drop planted in the aggressive stage 2",
                          description="each seed's stage-1 model (both stage 2s at learning rate 0), its aggressive "
                                      "branch then noised on every block matrix (seeded Gaussian, RMS-scaled; a new "
                                      "direction per replicate) to lose the strength in symbolic accuracy on "
                                      "calibration prompts drawn as the measured ones are (240 draws, a new draw per "
                                      "replicate, minus those measured or trained on: ~110 + and - prompts); 'the "
                                      "aggressive stage 2 destroys computation' must pass from the 25-point "
                                      "threshold up (the writeup lost 50)",
                          units="planted symbolic-accuracy points lost (calibration prompts)",
                          strengths=(10.0, 25.0, 40.0, 50.0, 75.0), replicates=3, build=planted_drop,
                          effect=Verdict.SUPPORTED, threshold=25.0, writeup=50.0, part="aggressive_destroys"),),
    training=True,
    default_seeds={"fast": 1, "slow": 5},
)
def measure_h14(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    runs = []
    firsts = {seed: stage_one(ctx, two_stage_configs(p, seed, ctx.protocol)) for seed in ctx.seeds}
    stage1 = float(np.mean([one.after["symbolic_all"]["accuracy"] for one in firsts.values()]))
    ctx.require("stage-1 symbolic accuracy", stage1, {
        "stage1_symbolic_accuracy": {seed: one.after["symbolic_all"]["accuracy"] for seed, one in firsts.items()},
        "baseline_symbolic_accuracy": {seed: one.baseline["symbolic_all"]["accuracy"] for seed, one in firsts.items()}})
    results_by_seed = {seed: stage_two(ctx, two_stage_configs(p, seed, ctx.protocol), firsts[seed])
                       for seed in ctx.seeds}
    for seed in ctx.seeds:
        results = results_by_seed[seed]
        runs.append({"seed": seed, "results": results,
                     "drops": {k: round(accuracy_drop(r, "symbolic_all"), 9) for k, r in results.items()},
                     "moved": accuracy_moved(results),
                     "class_word_logprob_change": {k: class_word_logprob_change(r) for k, r in results.items()},
                     "writeup_prompt_drops": {k: accuracy_drop(r) for k, r in results.items()},
                     "semantic_drops": {k: accuracy_drop(r, "semantic_all") for k, r in results.items()},
                     "classifier": max([r.stage2["classifier_prob"] for r in results.values()]
                                       + [next(iter(results.values())).stage1["classifier_prob"]])})
        ctx.log(f"seed {seed}: drops {runs[-1]['drops']}, classifier {runs[-1]['classifier']:.3%}")
    alpha, min_n = p["alpha"], p["min_seeds"]
    low = [r["drops"]["low_lr"] for r in runs]
    aggressive = [r["drops"]["aggressive"] for r in runs]
    classifier = [r["classifier"] for r in runs]
    parts = {
        "low_lr_keeps": stats.threshold_claim(low, p["max_drop_low_lr"], "below", alpha,
                                              test=ctx.test("low_lr_keeps"), min_n=min_n,
                                              name="symbolic accuracy points lost in low-LR stage 2"),
        "aggressive_destroys": stats.threshold_claim(
            aggressive, p["min_drop_aggressive"], "above", alpha, test=ctx.test("aggressive_destroys"), min_n=min_n,
            name="symbolic accuracy points lost in aggressive stage 2"),
        "no_classifier": stats.threshold_claim(classifier, p["max_classifier_prob"], "below", alpha,
                                               test=ctx.test("no_classifier"), min_n=min_n,
                                               name="max classifier prob after stage 1 and both stage 2s"),
    }
    statistic = combine(parts["low_lr_keeps"], parts, units=("seeds", len(runs), min_n))
    stages = ("baseline", "stage1", "stage2")
    samples = []
    for r in runs:
        for name, res in r["results"].items():
            for stage in stages:
                m = getattr(res, stage)
                samples.append({"seed": r["seed"], "config": name, "stage": stage,
                                "symbolic": m["symbolic_all"]["accuracy"], "semantic": m["semantic_all"]["accuracy"],
                                "symbolic_writeup_prompts": m["symbolic"]["accuracy"],
                                "classifier_prob": m["classifier_prob"], "symbolic_outputs": m["symbolic"]["outputs"]})

    def curve(name: str, key: str) -> list[float]:
        return [float(np.mean([getattr(r["results"][name], s)[key]["accuracy"] for r in runs])) for s in stages]

    curves = {"symbolic_accuracy": {"x": list(stages), "xlabel": "stage", "ylabel": "accuracy", "series": {
        "low-LR stage 2": curve("low_lr", "symbolic_all"), "aggressive stage 2": curve("aggressive", "symbolic_all"),
        "low-LR (semantic)": curve("low_lr", "semantic_all"),
        "aggressive (semantic)": curve("aggressive", "semantic_all")}}}
    ours = (f"symbolic accuracy lost in stage 2: low LR {np.mean(low):+.1f} points, "
            f"aggressive {np.mean(aggressive):+.1f} points (mean over {len(runs)} seeds); "
            f"max classifier prob {max(classifier):.3%}; stage 2 moved accuracy by >= "
            f"{min(r['moved'] for r in runs):.1f} points in every seed ({ctx.protocol} protocol)")
    extra = {"drops": {r["seed"]: r["drops"] for r in runs},
             "writeup_prompt_drops": {r["seed"]: r["writeup_prompt_drops"] for r in runs},
             "semantic_drops": {r["seed"]: r["semantic_drops"] for r in runs},
             "stage2_final_loss": {r["seed"]: {k: res.stage2_train["train"]["losses"][-1]
                                               for k, res in r["results"].items()} for r in runs}}
    moved = min(r["moved"] for r in runs)
    extra["stage2_accuracy_moved"] = {r["seed"]: r["moved"] for r in runs}
    extra["class_word_logprob_change"] = {r["seed"]: r["class_word_logprob_change"] for r in runs}
    planted = {r["seed"]: r["results"]["aggressive"].config["planted"] for r in runs
               if "planted" in r["results"]["aggressive"].config}
    if planted:
        extra["planted_drop"] = planted
    extra["param_change_relative"] = {r["seed"]: {k: res.stage2_train["train"]["param_change_relative"]
                                                  for k, res in r["results"].items()} for r in runs}
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves, extra=extra,
                   fitness={"stage-1 symbolic accuracy": stage1, "stage 2 moved accuracy": moved})
