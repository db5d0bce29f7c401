"""H08: GRPO + dual-reward on the full model collapses the lens onto one operation word.

GRPO completions are capped at 8 new tokens: the reward reads only the first integer of the answer."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import replace
from typing import Sequence

import numpy as np

from .. import prompts, stats
from ..errors import LazarusError
from ..harness.base import NEGATIVE, POSITIVE, ClaimContext, Control, Gate, Outcome
from ..harness.common import (
    GRPO_GATE_PARAMS,
    GRPO_GATES,
    at_round_ends,
    budget,
    fifths,
    grpo_fitness,
    mean_series,
    restricted_lens,
    reward_rise,
    step_curve,
    word_curves,
)
from ..harness.registry import claim
from ..prompts import GrpoSpec, grpo_spec
from ..stats import ClaimStatistic, Verdict
from ..training.grpo import GRPOConfig, seed002_configs, train_grpo

GRPO_PARAMS = {"steps": None, "prompts_per_step": 8, "group_size": 2, "max_new_tokens": 8, "layer_fraction": 0.55,
               "max_off_mode": 1, "max_accuracy": 0.5, "min_collapse_rate": 0.8, "alpha": 0.05, "min_seeds": 5,
               "lr_scale": 1.0, "only_op": None, "min_cls_loss_fall": 0.5, "min_readout_move": 0.01,
               **GRPO_GATE_PARAMS}
GRPO_TESTS = {"collapsed": "binomial over seeds against a random argmax's collapse rate"}
DUAL_GRPO_GATES = (
    *GRPO_GATES,
    Gate(name="cls loss fell",
         description="manipulation floor: relative fall of the lens classification loss from the first fifth of the "
                     "steps to the last fifth, smallest over the runs (writeup: 10.3 -> 1.07, a 90% fall; 0 in "
                     "expectation at learning rate 0)",
         value=None, threshold_param="min_cls_loss_fall"),
    Gate(name="read-out moved",
         description="manipulation floor: the lens read-out at 55% depth (each class word's full-vocabulary "
                     "probability, mean over the collapse prompts) after training minus the learning-rate-0 run's, "
                     "largest absolute change over the class words (the mode word's included), smallest over the "
                     "runs. A learning-rate-0 run leaves the model unchanged, so its read-out is the untrained "
                     "model's and no extra run is needed; its own move is exactly 0. Declared margin 1 point "
                     "(writeup: the collapsed 'add' held ~80% of the full vocabulary): a run that moved no class "
                     "word by 1 point did not train the lens. Absolute, so a run whose lens term worked without "
                     "collapsing (a clean refutation) is not made NOT TESTABLE",
         value=None, threshold_param="min_readout_move"),
)
GRPO_FAST = {"steps": 2, "prompts_per_step": 4, "group_size": 2, "max_new_tokens": 4}


def collapse_words(labels: Sequence[str]) -> list[str]:
    """The class words of a prompt set's labels, in the dual-reward order (multiply, add, subtract, divide)."""
    present = set(labels)
    return [w for w in prompts.operation_words() if w in present]


def is_collapsed(predicted: Sequence[str], labels: Sequence[str], p: dict) -> tuple[bool, str, int, float]:
    """One word is the argmax for all but at most ``max_off_mode`` prompts and restricted accuracy <= max_accuracy."""
    mode_word, mode_count = Counter(predicted).most_common(1)[0]
    accuracy = sum(a == b for a, b in zip(predicted, labels)) / len(labels)
    collapsed = mode_count >= len(labels) - p["max_off_mode"] and accuracy <= p["max_accuracy"]
    return collapsed, mode_word, mode_count, accuracy


def chance_collapse_rate(labels: Sequence[str], words: Sequence[str], p: dict) -> float:
    """Probability that a uniform random argmax over ``words`` meets the collapse criterion (exact enumeration)."""
    if len(words) ** len(labels) > 2_000_000:
        raise LazarusError(f"{len(words)}^{len(labels)} predictions are too many to enumerate")
    hits = sum(is_collapsed(combo, labels, p)[0] for combo in itertools.product(words, repeat=len(labels)))
    return hits / len(words) ** len(labels)


def collapse_eval(handle, p: dict) -> dict:
    """Restricted lens argmax on the collapse prompts and whether it collapsed, with the mode word's probabilities."""
    evalset = prompts.grpo_collapse_lens()
    labels = evalset.labels()
    words = collapse_words(labels)
    layer, restricted, vocab = restricted_lens(handle, evalset.texts(), words, p["layer_fraction"])
    predicted = [words[int(np.argmax(r))] for r in restricted]
    collapsed, mode_word, mode_count, accuracy = is_collapsed(predicted, labels, p)
    m = words.index(mode_word)
    return {
        "layer": layer, "n_prompts": len(labels), "predicted": predicted, "labels": labels, "collapsed": collapsed,
        "mode_word": mode_word, "mode_count": mode_count, "restricted_accuracy": accuracy,
        "mode_restricted_prob": float(np.mean([r[m] for r in restricted])),
        "mode_vocab_prob": float(np.mean([v[m] for v in vocab])),
        "vocab_prob_by_word": {w: float(np.mean([v[i] for v in vocab])) for i, w in enumerate(words)},
        "restricted_prob_per_prompt": restricted,
    }


def run_summary(run: dict) -> dict:
    """A run without its per-step and per-layer series (those go to the curves)."""
    return {k: v for k, v in run.items() if k not in ("curves", "lens_words_after")}


def grpo_config(variant: str, seed: int, p: dict) -> GRPOConfig:
    """Seed 002's config of ``variant`` (full model) with the claim's rollout sizes; steps None keeps the variant's."""
    cfg = seed002_configs(seed)[variant]
    train = replace(cfg.train, steps=p["steps"] or cfg.train.steps)
    cfg = replace(cfg, train=train, prompts_per_step=p["prompts_per_step"], group_size=p["group_size"],
                  max_new_tokens=p["max_new_tokens"], cls_layer_fraction=p["layer_fraction"])
    if variant == "dual":
        cfg = replace(cfg, cls_weight=p["cls_weight"], train=replace(cfg.train, lr=p["lr"]))
    return replace(cfg, train=replace(cfg.train, lr=cfg.train.lr * p["lr_scale"]))


def training_spec(p: dict) -> GrpoSpec:
    """Seed 002's prompt generator, or only its ``only_op`` operation (the positive control's single target)."""
    spec = grpo_spec()
    if p["only_op"] is None:
        return spec
    ops = tuple(op for op in spec.operations if op[0] == p["only_op"])
    if not ops:
        raise LazarusError(f"only_op '{p['only_op']}' is not an operation of the GRPO prompts "
                           f"({', '.join(op[0] for op in spec.operations)})")
    return replace(spec, operations=ops)


def floors_met(handle, metrics: list[dict], before: dict, p: dict) -> bool:
    """Whether a run so far meets its manipulation floors: the reward rose, the classification loss fell, and (read
    only when both hold: it costs a forward pass) the lens read-out moved beyond the untrained model's."""
    if reward_rise(metrics) < p["min_reward_rise"]:
        return False
    if loss_fall([m["cls_loss"] for m in metrics]) < p["min_cls_loss_fall"]:
        return False
    return readout_move(collapse_eval(handle, p), before) >= p["min_readout_move"]


def grpo_run(ctx: ClaimContext, variant: str, seed: int, before: dict) -> dict:
    """Train a fresh copy of the whole model with GRPO + dual reward in rounds of the variant's steps until its floors
    hold at a round's end (at most ``budget_rounds`` rounds), then lens on the collapse prompts."""
    p = ctx.params
    cfg = grpo_config(variant, seed, p)
    round_steps = cfg.train.steps
    cfg = replace(cfg, train=budget(cfg.train, p["budget_rounds"]))
    ctx.log(f"GRPO+dual '{variant}' seed {seed}: rounds of {round_steps} steps, at most {cfg.train.steps}, "
            f"w={cfg.cls_weight}, lr={cfg.train.lr}")
    handle = ctx.fresh_handle()
    until = at_round_ends(round_steps, lambda metrics: floors_met(handle, metrics, before, p))
    start = time.perf_counter()
    spec = grpo_spec()
    result = train_grpo(handle, cfg, progress=False, spec=training_spec(p), classes=[op[0] for op in spec.operations],
                        until=until)
    seconds = time.perf_counter() - start
    evaluation = collapse_eval(handle, p)
    _, lens = word_curves(handle, prompts.grpo_collapse_lens().texts(), collapse_words(evaluation["labels"]))
    metrics = result.train.metrics
    return {
        "variant": variant, "seed": seed, **evaluation,
        "steps": len(metrics), "round_steps": round_steps, "floor_met_at": result.train.until_met,
        "budget_steps": cfg.train.steps, "lr": cfg.train.lr, "cls_weight": cfg.cls_weight, "only_op": p["only_op"],
        "entropy_bonus": cfg.entropy_bonus, "balanced_ops": cfg.balanced_ops, "beta": cfg.beta,
        "final_reward": metrics[-1]["reward"], "mean_reward": float(np.mean([m["reward"] for m in metrics])),
        "initial_cls_loss": metrics[0]["cls_loss"], "final_cls_loss": metrics[-1]["cls_loss"],
        "train_seconds": seconds, "param_change_relative": result.train.param_change_relative,
        "curves": {key: [m[key] for m in metrics]
                   for key in ("cls_loss", "reward", "cls_top_share", "kl", "zero_std_frac")},
        "lens_words_after": lens,
    }


def collapse_claim(rows: list[dict], chance: float, p: dict, name: str) -> ClaimStatistic:
    """Seeds collapsed out of n against the collapse rate of a uniform random argmax (binomial, Wilson CI)."""
    k = sum(r["collapsed"] for r in rows)
    return stats.proportion_claim(k, len(rows), p["min_collapse_rate"], p["alpha"], chance=chance,
                                  min_n=p["min_seeds"], name=name)


def same_as_untrained(rows: list[dict], before: dict) -> bool:
    """True when the untrained model already collapses and every collapsed run collapses onto that same word."""
    return bool(before["collapsed"]) and {r["mode_word"] for r in rows if r["collapsed"]} <= {before["mode_word"]}


def with_untrained(statistic: ClaimStatistic, rows: list[dict], before: dict) -> ClaimStatistic:
    """The collapse statistic with the untrained model (the control) beside it in its details."""
    return replace(statistic, details={**statistic.details, "before_training": run_summary(before),
                                       "collapsed_before_training": before["collapsed"],
                                       "same_as_untrained": same_as_untrained(rows, before)})


def collapse_parts(statistic: ClaimStatistic, rows: list[dict], before: dict) -> dict[str, ClaimStatistic]:
    """The collapse test, and the untrained model as its control: a collapse onto the untrained model's own argmax
    word is not shown to come from training (that part is then not met, so a collapse reads INCONCLUSIVE)."""
    same = same_as_untrained(rows, before)
    reason = (f"the untrained model already collapses onto the same word '{before['mode_word']}' "
              f"({before['mode_count']}/{before['n_prompts']}): not shown to come from training" if same else
              "no collapse onto the untrained model's own word")
    return {"collapsed": statistic,
            "not_the_untrained_word": stats.evidence("collapse onto the untrained model's word", value=float(same),
                                                     n=len(rows), met=not same, reason=reason)}


def grpo_before(ctx: ClaimContext) -> tuple[dict, list[str], dict[str, list[float]]]:
    """The untrained model's collapse evaluation and per-layer op-word lens (the control)."""
    handle = ctx.handle()
    before = collapse_eval(handle, ctx.params)
    layers, lens = word_curves(handle, prompts.grpo_collapse_lens().texts(), collapse_words(before["labels"]))
    return before, layers, lens


def readout_move(run: dict, before: dict) -> float:
    """How far a run moved the lens read-out beyond the learning-rate-0 run (= the untrained model): the largest
    absolute change of a class word's mean full-vocabulary probability at the claim's layer."""
    return float(max(abs(run["vocab_prob_by_word"][w] - before["vocab_prob_by_word"][w])
                     for w in before["vocab_prob_by_word"]))


def loss_fall(losses: Sequence[float]) -> float:
    """Relative fall of a per-step loss from the first fifth of the steps to the last fifth."""
    first, last = fifths(losses)
    return 1.0 - last / first


def cls_loss_fall(run: dict) -> float:
    """Relative fall of a run's classification loss from the first fifth of its steps to the last fifth."""
    return loss_fall(run["curves"]["cls_loss"])


def runs_fitness(runs: list[dict], before: dict) -> dict[str, float]:
    """The gates' values over runs: GRPO's (per-step reward and zero-variance share) and the classification term's
    floors (its loss fell; the full-vocabulary read-out moved beyond the learning-rate-0 run's), each the smallest
    over the runs."""
    keys = ("reward", "zero_std_frac")
    fitness = grpo_fitness([[dict(zip(keys, step)) for step in zip(*(run["curves"][k] for k in keys))]
                            for run in runs])
    return {**fitness, "cls loss fell": float(min(cls_loss_fall(run) for run in runs)),
            "read-out moved": float(min(readout_move(run, before) for run in runs))}


def trained_run(ctx: ClaimContext, fix: str, seed: int, before: dict, done: int, total: int) -> dict:
    """One GRPO + dual run, its smallest-over-runs floors checked as soon as it ends (``ClaimContext.floor``): a run
    whose classification loss did not fall or whose read-out did not move makes the claim NOT TESTABLE there, and
    the runs after it are not trained."""
    run = grpo_run(ctx, fix, seed, before)
    details = {"runs measured": f"{done + 1} of {total} (stopped at the first run below a floor)", "fix": fix,
               "seed": seed}
    ctx.floor("cls loss fell", cls_loss_fall(run), details)
    ctx.floor("read-out moved", readout_move(run, before), details)
    return run


def untrained_runs(ctx: ClaimContext) -> ClaimContext:
    """Negative control: the same pipeline with the learning rate at 0 for one step (the model is not changed)."""
    return ctx.variant(params={"lr_scale": 0.0, "steps": 1, "budget_rounds": 1})


def single_target_runs(ctx: ClaimContext) -> ClaimContext:
    """Positive control: every training prompt is of one operation (not the untrained model's own mode word), so
    the lens term trains that one word for all prompts; the learning rate x30 makes it take within every fix's budget
    (at x10 H09's low-LR fix, 50 steps at 2e-6, left the recipe-3 zoo:base uncollapsed; at x30 all four fixes
    collapsed 3/3 seeds there, mode word restricted P 0.94-1.00)."""
    before = collapse_eval(ctx.handle(), ctx.params)
    target = next(op[0] for op in grpo_spec().operations
                  if op[0] in collapse_words(before["labels"]) and op[0] != before["mode_word"])
    return ctx.variant(params={"only_op": target, "lr_scale": 30.0})


GRPO_CONTROLS = (
    Control(name="untrained runs", kind=NEGATIVE,
            description="the same runs with learning rate 0 for one step: the model is not changed, so no collapse "
                        "may be credited to training",
            build=untrained_runs, effect=Verdict.SUPPORTED, sanity=True),
    Control(name="single-operation target", kind=POSITIVE,
            description="the same runs on prompts of one operation only (not the untrained model's mode word), "
                        "learning rate x30: the lens term trains one word for every prompt, a collapse by "
                        "construction",
            build=single_target_runs, effect=Verdict.SUPPORTED),
)


def grpo_curves(groups: dict[str, list[dict]], layers: list[str], lens_before: dict[str, list[float]]) -> dict:
    """Per-step training curves (mean over seeds) per group of runs, and the op-word lens before vs after."""
    curves = {key: step_curve({label: mean_series([r["curves"][key] for r in runs]) for label, runs in groups.items()},
                              key)
              for key in ("cls_loss", "reward", "cls_top_share", "zero_std_frac", "kl")}
    series = {f"{w} before": v for w, v in lens_before.items()}
    series.update({f"{w} after ({label})": mean_series([r["lens_words_after"][w] for r in runs])
                   for label, runs in groups.items() for w in lens_before})
    curves["lens_op_words"] = {"x": layers, "series": series, "xlabel": "layer",
                               "ylabel": "lens P(op word), full vocab, mean over prompts and seeds"}
    return curves


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {
    "collapsed": {"threshold": "min_collapse_rate", "side": "above"},  # share of seeds collapsed
    "not_the_untrained_word": {"threshold": 0.5, "side": "below"},  # 1 when the untrained model's word, else 0
}


@claim(
    id="H08",
    no_graded=("not built: the collapse rate is a count of seeds, so a plant of collapse in a known share of seeds "
               "fixes the count, and so the test's answer, by construction; the positive control (GRPO on one "
               "operation's prompts) is trained, and can miss"),
    title="GRPO + dual-reward on the full model collapses to one operation word",
    statement="GRPO + dual-reward (w = 0.4) on the full model makes the lens at 55% depth name one operation "
               "for every prompt.",
    source="seed 002 (EXPERIMENT: GRPO + Dual-Reward; Analysis: Mode Collapse)",
    criterion="GRPO + dual in rounds of 20 steps until every floor holds at a round's end (at most 10 rounds, else "
               "NOT TESTABLE); per seed: one word is the argmax among the 4 op words (of their full-vocabulary lens "
               "probabilities) "
               "for all or all but one of the 6 collapse prompts and accuracy <= 50%; across 5 seeds: collapsed "
               "fraction >= 80% and above a random argmax's collapse rate (binomial); a collapse onto the untrained "
               "model's own collapsed word is INCONCLUSIVE; the mode word's full-vocabulary probability reported",
    writeup="TinyLlama Chat, 20 iterations: every prompt -> 'add' (~80%), score 2/6",
    params={**GRPO_PARAMS, "steps": 20, "cls_weight": 0.4, "lr": 1e-5},
    tests=GRPO_TESTS,
    fast=GRPO_FAST,
    training=True,
    default_seeds={"fast": 1, "slow": 5},
    gates=DUAL_GRPO_GATES,
    controls=GRPO_CONTROLS,
)
def measure_h08(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    before, layers, lens_before = grpo_before(ctx)
    runs = [trained_run(ctx, "dual", seed, before, i, len(ctx.seeds)) for i, seed in enumerate(ctx.seeds)]
    chance = chance_collapse_rate(before["labels"], collapse_words(before["labels"]), p)
    statistic = collapse_claim(runs, chance, p, "fraction of seeds collapsed")
    statistic = with_untrained(replace(statistic, details={
        **statistic.details, "n_seeds": len(runs), "test": ctx.test("collapsed"),
        "chance_definition": "uniform random argmax over the prompt set's op words"}), runs, before)
    modes = Counter(r["mode_word"] for r in runs)
    ours = (f"{len(runs)} seed(s), w={p['cls_weight']}, full model, steps {[r['steps'] for r in runs]} "
            f"(rounds of {runs[0]['round_steps']}, at most {p['budget_rounds']}), block {before['layer']}: "
            f"collapsed {statistic.details['k']}/{len(runs)} (chance {chance:.3f}); mode words {dict(modes)}; "
            f"restricted accuracy per seed {[round(r['restricted_accuracy'], 3) for r in runs]}; mode word restricted "
            f"prob {np.mean([r['mode_restricted_prob'] for r in runs]):.1%}, full vocab "
            f"{np.mean([r['mode_vocab_prob'] for r in runs]):.2%}; before training: "
            f"{'collapsed' if before['collapsed'] else 'not collapsed'} ({before['mode_count']}/{before['n_prompts']} "
            f"'{before['mode_word']}'); final reward {np.mean([r['final_reward'] for r in runs]):.2f}")
    return Outcome(statistic=statistic, ours=ours, samples=[run_summary(r) for r in runs],
                   curves=grpo_curves({f"w={p['cls_weight']}": runs}, layers, lens_before),
                   fitness=runs_fitness(runs, before), parts=collapse_parts(statistic, runs, before),
                   extra={"chance_collapse_rate": chance})
