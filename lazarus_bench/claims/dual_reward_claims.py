"""Training claims of seed 002: dual-reward V/O LoRA (H05, H06) and GRPO + dual-reward mode collapse (H08, H09).

Every claim trains independent runs over ``ctx.seeds`` (fresh model, seed-dependent data, init and
order) and tests across seeds. "Op-word prob" is the writeup's "Prob" column: the softmax over the
class words' first tokens (no leading space) of the lens logits at block int(0.55 L), last prompt
token (seed-methods section 4); the full-vocabulary probability of the same token is reported too.
GRPO completions are capped at 8 new tokens: the reward reads only the first integer of the answer.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import lazarus_bench  # noqa: F401  (BLAS preload before mlx.core)
import mlx.core as mx

from .. import prompts, stats
from ..errors import LazarusError
from ..lens import logit_lens
from ..stats import ClaimStatistic, Verdict
from ..training.dual_reward import DualRewardConfig, class_token_ids, train_dual_reward
from ..training.grpo import GRPOConfig, seed002_configs, train_grpo
from .base import Claim, ClaimContext, Outcome, needs_instruct_pair, register

DUAL_RUN_KEYS = ("steps", "n_train", "lora_rank", "cls_weight", "layer_fraction", "data_seed")
FIXES = ("balanced", "entropy", "low_lr", "cls_heavy")
_MODULE_VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------- shared


def mean_series(series: Sequence[Sequence[float]]) -> list[float]:
    """Element-wise mean over runs (runs of different length are averaged where they have values)."""
    width = max((len(s) for s in series), default=0)
    table = np.full((len(series), width), np.nan)
    for i, s in enumerate(series):
        table[i, : len(s)] = s
    with np.errstate(all="ignore"):
        return [float(v) for v in np.nanmean(table, axis=0)] if width else []


def step_curve(series: dict[str, list[float]], ylabel: str) -> dict:
    width = max((len(s) for s in series.values()), default=0)
    return {"x": [str(i) for i in range(1, width + 1)], "series": series, "xlabel": "step", "ylabel": ylabel}


def restricted_lens(handle, texts: Sequence[str], words: Sequence[str],
                    layer_fraction: float) -> tuple[int, list, list]:
    """Lens at block int(fraction L), last prompt token: per prompt the softmax over the words' first tokens
    (no space) and those tokens' full-vocabulary probabilities (``evaluate_classifier``'s definition)."""
    ids = class_token_ids(handle, words)
    index = mx.array([ids[w] for w in words])
    layer = handle.layer_at_depth(layer_fraction)
    restricted, vocab = [], []
    for text in texts:
        capture = handle.forward(mx.array([handle.encode(text)]))
        logits = handle.lens_logits(capture.hidden[layer + 1][0, -1]).astype(mx.float32)
        restricted.append(np.array(mx.softmax(logits[index])).tolist())
        vocab.append(np.array(mx.softmax(logits)[index]).tolist())
    return layer, restricted, vocab


def word_probs(handle, texts: Sequence[str], words: Sequence[str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Each word's lens probability per prompt and layer (full word, both spellings summed): (prompts, layers)."""
    results = logit_lens(handle, list(texts), list(words), top_k=1)
    layers = [str(layer) for layer in results[0].layers]
    return layers, {w: np.stack([r.targets[w].full_prob_sum for r in results]) for w in words}


def word_curves(handle, texts: Sequence[str], words: Sequence[str]) -> tuple[list[str], dict[str, list[float]]]:
    """Per layer, each word's lens probability averaged over the prompts."""
    layers, probs = word_probs(handle, texts, words)
    return layers, {w: v.mean(axis=0).tolist() for w, v in probs.items()}


def true_word_curve(handle, evalset) -> tuple[list[str], list[float]]:
    """Per layer, the lens probability of each prompt's own operation word, averaged over the prompts."""
    layers, probs = word_probs(handle, evalset.texts(), prompts.operation_words())
    return layers, np.mean([probs[label][i] for i, label in enumerate(evalset.labels())], axis=0).tolist()


def _model_fingerprint(model_id: str) -> str:
    """Content hash of a local checkpoint (zoo ids resolved), else the id itself."""
    from ..models import resolve_zoo
    from ..runner import model_hash

    path = resolve_zoo(model_id) if model_id.startswith(("zoo:", "zoo-micro:")) else Path(model_id).expanduser()
    return model_hash(model_id, path if path.is_dir() else None)


# ---------------------------------------------------------------------------------------------------- dual reward


def dual_config(protocol: str, seed: int, p: dict) -> DualRewardConfig:
    """The protocol's dual-reward config with the claim's steps, rank, weight and layer; data seed + ``seed``."""
    cfg = DualRewardConfig.for_protocol(protocol, cls_weight=p["cls_weight"], layer_fraction=p["layer_fraction"],
                                        n_train=p["n_train"], data_seed=p["data_seed"] + seed)
    return replace(cfg, lora=replace(cfg.lora, rank=p["lora_rank"]),
                   train=replace(cfg.train, steps=p["steps"], seed=seed, log_every=max(1, p["steps"] // 5)))


def train_dual_run(handle, protocol: str, seed: int, p: dict) -> dict:
    """One dual-reward run in place on ``handle``: before/after evaluation, per-step losses, lens curves (JSON-able)."""
    evalset = prompts.dual_reward_eval()
    layers, lens_before = true_word_curve(handle, evalset)
    start = time.perf_counter()
    result = train_dual_reward(handle, dual_config(protocol, seed, p), progress=False)
    seconds = time.perf_counter() - start
    _, lens_after = true_word_curve(handle, evalset)
    return {
        "seed": seed, "model": handle.model_id, "protocol": protocol, "before": result.before, "after": result.after,
        "cls_loss": [m["cls_loss"] for m in result.train.metrics],
        "answer_loss": [m["answer_loss"] for m in result.train.metrics],
        "lens_layers": layers, "lens_true_before": lens_before, "lens_true_after": lens_after,
        "train_seconds": seconds, "trainable_params": result.train.trainable_params,
    }


def dual_run(ctx: ClaimContext, seed: int, model_id: str | None = None) -> dict:
    """A dual-reward run on a fresh copy of the model; cached by content when the runner gives a cache_dir
    (so H06's base-model runs reuse H05's)."""
    model_id = model_id or ctx.model_id
    p = ctx.params

    def fresh_run() -> dict:
        ctx.log(f"dual-reward ({ctx.protocol}) on {model_id}, seed {seed}, {p['steps']} steps")
        return train_dual_run(ctx.fresh_handle(model_id), ctx.protocol, seed, p)

    if ctx.cache_dir is None:
        return fresh_run()
    from ..cache import FixtureCache
    from ..cli_io import write_json

    parts = {"method": "claims.dual_reward_run", "model": _model_fingerprint(model_id), "protocol": ctx.protocol,
             "seed": seed, "params": {k: p[k] for k in DUAL_RUN_KEYS}, "module": _MODULE_VERSION}
    entry = FixtureCache(ctx.cache_dir).get_or_build(parts, lambda d: write_json(d / "run.json", fresh_run()))
    return json.loads((entry / "run.json").read_text())


def dual_sample(run: dict, window: int) -> dict:
    """One seed's row: correct counts, restricted and full-vocab op-word probs, answer accuracy, losses."""
    c0, c1 = run["before"]["classifier"], run["after"]["classifier"]
    a0, a1 = run["before"]["answers"]["accuracy"], run["after"]["answers"]["accuracy"]
    tail = max(1, min(window, len(run["cls_loss"])))
    return {
        "seed": run["seed"], "model": run["model"], "layer": c1["layer"], "n_prompts": c1["n"],
        "correct_before": c0["correct"], "correct_after": c1["correct"],
        "restricted_prob_before": c0["mean_restricted_prob"], "restricted_prob_after": c1["mean_restricted_prob"],
        "vocab_prob_before": c0["mean_vocab_prob"], "vocab_prob_after": c1["mean_vocab_prob"],
        "answer_accuracy_before": a0, "answer_accuracy_after": a1, "answer_accuracy_change": a1 - a0,
        "answer_correct_before": run["before"]["answers"]["correct"],
        "answer_correct_after": run["after"]["answers"]["correct"],
        "initial_cls_loss": run["cls_loss"][0], "final_cls_loss": float(np.mean(run["cls_loss"][-tail:])),
        "initial_answer_loss": run["answer_loss"][0], "final_answer_loss": float(np.mean(run["answer_loss"][-tail:])),
        "predicted_after": c1["predicted"], "labels": c1["labels"],
        "restricted_prob_after_per_prompt": c1["restricted_prob"], "vocab_prob_after_per_prompt": c1["vocab_prob"],
        "train_seconds": run["train_seconds"], "trainable_params": run["trainable_params"],
    }


def answer_changes(samples: list[dict]) -> list[int]:
    """Per (seed, eval prompt): answer correct after minus correct before (-1, 0 or 1)."""
    return [int(a) - int(b) for s in samples for b, a in zip(s["answer_correct_before"], s["answer_correct_after"])]


def h05_verdict(samples: list[dict], p: dict) -> tuple[ClaimStatistic, dict]:
    """Pooled argmax hits (>= 7/8, above chance), per-seed mean restricted prob (>= 36%), and the answer guard:
    met when the mean accuracy change is >= -10 points, refuted when the pooled (seed x prompt) changes are
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
    guard_refuted = guard.verdict == Verdict.REFUTED
    parts = {"correct": correct, "prob": prob}
    if len(samples) < min_seeds:
        verdict, reason = Verdict.INCONCLUSIVE, f"too few seeds: {len(samples)} < min_seeds={min_seeds}"
    elif any(s.verdict == Verdict.REFUTED for s in parts.values()) or guard_refuted:
        failed = [f"{name}: {s.reason}" for name, s in parts.items() if s.verdict == Verdict.REFUTED]
        if guard_refuted:
            failed.append(f"answer accuracy drops significantly more than {p['max_accuracy_drop']:.0%}")
        verdict, reason = Verdict.REFUTED, "; ".join(failed)
    elif all(s.verdict == Verdict.SUPPORTED for s in parts.values()) and guard_met:
        verdict = Verdict.SUPPORTED
        reason = (f"{k}/{correct.n} correct (p={correct.p_value:.3g} vs chance), mean prob {prob.statistic:.1%} > "
                  f"{p['min_prob']:.0%} (p={prob.p_value:.3g}), answer accuracy change {np.mean(changes):+.1%}")
    else:
        open_parts = [f"{name}: {s.reason}" for name, s in parts.items() if s.verdict != Verdict.SUPPORTED]
        if not guard_met:
            open_parts.append(f"answer accuracy falls by {-np.mean(changes):.0%} > {p['max_accuracy_drop']:.0%}")
        verdict, reason = Verdict.INCONCLUSIVE, "; ".join(open_parts)
    details = {**prob.details, "n_seeds": len(samples), "correct": correct.to_dict(), "answer_guard": guard.to_dict(),
               "answer_accuracy_change_mean": float(np.mean(changes)), "answer_guard_met": guard_met,
               "prob_definition": "softmax over the 4 class words' first tokens (no space), block int(0.55 L)",
               "vocab_prob_after_mean": float(np.mean([s["vocab_prob_after"] for s in samples]))}
    return replace(prob, verdict=verdict, reason=reason, details=details), parts


def dual_curves(runs: list[dict], label: str = "") -> dict:
    suffix = f" ({label})" if label else ""
    return {
        "cls_loss": step_curve({f"mean over seeds{suffix}": mean_series([r["cls_loss"] for r in runs])}, "cls loss"),
        "answer_loss": step_curve({f"mean over seeds{suffix}": mean_series([r["answer_loss"] for r in runs])},
                                  "answer loss"),
        "lens_true_op_word": {
            "x": runs[0]["lens_layers"], "xlabel": "layer", "ylabel": "lens P(true op word), full vocab",
            "series": {f"before{suffix}": mean_series([r["lens_true_before"] for r in runs]),
                       f"after, mean over seeds{suffix}": mean_series([r["lens_true_after"] for r in runs])},
        },
    }


def measure_h05(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    runs = [dual_run(ctx, seed) for seed in ctx.seeds]
    samples = [dual_sample(r, p["loss_window"]) for r in runs]
    statistic, parts = h05_verdict(samples, p)
    correct = parts["correct"]
    per_seed = ", ".join(format(s["restricted_prob_after"], ".1%") for s in samples)
    ours = (f"{ctx.protocol} protocol, {len(samples)} seed(s) x {p['steps']} steps, block {samples[0]['layer']}: "
            f"correct {correct.details['k']}/{correct.n} (per seed {[s['correct_after'] for s in samples]}; before "
            f"{[s['correct_before'] for s in samples]}), mean restricted P(op word) {statistic.statistic:.1%} "
            f"(per seed {per_seed}), full-vocab {statistic.details['vocab_prob_after_mean']:.2%}; answer accuracy "
            f"change {statistic.details['answer_accuracy_change_mean']:+.1%}")
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=dual_curves(runs),
                   extra={"protocol": ctx.protocol,
                          "writeup_differences": "see training.dual_reward.ORIGINAL_DIFFERENCES"})


def h06_statistic(base: list[dict], instruct: list[dict], p: dict) -> ClaimStatistic:
    """Paired over seeds: instruct's initial cls loss higher and final restricted op-word prob lower (one-sided)."""
    alpha, n = p["alpha"], len(base)
    level = 1.0 - 2.0 * alpha
    loss_b, loss_i = [s["initial_cls_loss"] for s in base], [s["initial_cls_loss"] for s in instruct]
    prob_b, prob_i = [s["restricted_prob_after"] for s in base], [s["restricted_prob_after"] for s in instruct]
    loss_diff = float(np.mean(np.subtract(loss_i, loss_b)))
    prob_diff = float(np.mean(np.subtract(prob_i, prob_b)))
    met = loss_diff > 0 and prob_diff < 0
    details: dict[str, Any] = {"n_seeds": n, "initial_cls_loss_diff": loss_diff, "final_prob_diff": prob_diff,
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
    reason = (f"{verdict.reason}; initial cls loss instruct - base {loss_diff:+.3g} (p={t_loss.p_value:.3g}, "
              f"opposite p={opp_loss:.3g}), final prob {prob_diff:+.2%} (p={t_prob.p_value:.3g}, "
              f"opposite p={opp_prob:.3g})")
    details.update({"initial_cls_loss_test": t_loss.to_dict(), "final_prob_test": t_prob.to_dict(),
                    "p_opposite_loss": opp_loss, "p_opposite_prob": opp_prob,
                    "initial_cls_loss_effect": stats.paired_d(loss_i, loss_b, confidence=level).to_dict()})
    return ClaimStatistic(name="final restricted P(op word): instruct - base", statistic=prob_diff,
                          ci_low=t_prob.ci_low, ci_high=t_prob.ci_high, confidence=level,
                          effect_size=stats.paired_d(prob_i, prob_b, confidence=level), p_value=p_iut, n=n,
                          verdict=verdict.verdict, reason=reason, details=details)


def measure_h06(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    pair = ctx.info.instruct_pair
    base_runs = [dual_run(ctx, seed) for seed in ctx.seeds]
    inst_runs = [dual_run(ctx, seed, pair) for seed in ctx.seeds]
    base = [dual_sample(r, p["loss_window"]) for r in base_runs]
    inst = [dual_sample(r, p["loss_window"]) for r in inst_runs]
    statistic = h06_statistic(base, inst, p)
    samples = [{"variant": "base", **s} for s in base] + [{"variant": "instruct", **s} for s in inst]
    curves, other = dual_curves(base_runs, "base"), dual_curves(inst_runs, "instruct")
    for name, curve in curves.items():
        curve["series"].update(other[name]["series"])

    def summary(rows: list[dict]) -> str:
        return (f"initial cls loss {np.mean([s['initial_cls_loss'] for s in rows]):.3g}, final prob "
                f"{np.mean([s['restricted_prob_after'] for s in rows]):.1%}, correct "
                f"{[s['correct_after'] for s in rows]}")

    ours = (f"{len(base)} seed(s) x {p['steps']} steps; base: {summary(base)}; instruct ({pair}): {summary(inst)}; "
            f"instruct - base: initial loss {statistic.details['initial_cls_loss_diff']:+.3g}, final prob "
            f"{statistic.statistic:+.1%}")
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves, extra={"instruct_model": pair})


# ---------------------------------------------------------------------------------------------------- GRPO collapse


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
        "restricted_prob_per_prompt": restricted,
    }


def _sample(run: dict) -> dict:
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
    return cfg


def grpo_run(ctx: ClaimContext, variant: str, seed: int) -> dict:
    """Train a fresh copy of the whole model with GRPO + dual reward, then lens on the collapse prompts."""
    p = ctx.params
    cfg = grpo_config(variant, seed, p)
    ctx.log(f"GRPO+dual '{variant}' seed {seed}: {cfg.train.steps} steps, w={cfg.cls_weight}, lr={cfg.train.lr}")
    handle = ctx.fresh_handle()
    start = time.perf_counter()
    result = train_grpo(handle, cfg, progress=False)
    seconds = time.perf_counter() - start
    evaluation = collapse_eval(handle, p)
    _, lens = word_curves(handle, prompts.grpo_collapse_lens().texts(), collapse_words(evaluation["labels"]))
    metrics = result.train.metrics
    return {
        "variant": variant, "seed": seed, **evaluation,
        "steps": cfg.train.steps, "lr": cfg.train.lr, "cls_weight": cfg.cls_weight,
        "entropy_bonus": cfg.entropy_bonus, "balanced_ops": cfg.balanced_ops, "beta": cfg.beta,
        "final_reward": metrics[-1]["reward"], "mean_reward": float(np.mean([m["reward"] for m in metrics])),
        "initial_cls_loss": metrics[0]["cls_loss"], "final_cls_loss": metrics[-1]["cls_loss"],
        "train_seconds": seconds,
        "curves": {key: [m[key] for m in metrics] for key in ("cls_loss", "reward", "cls_top_share", "kl")},
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


def untrained_control(statistic: ClaimStatistic, rows: list[dict], before: dict) -> ClaimStatistic:
    """The untrained model is the control: a collapse onto its own argmax word is not shown to come from training,
    so SUPPORTED becomes INCONCLUSIVE there."""
    details = {**statistic.details, "before_training": _sample(before),
               "collapsed_before_training": before["collapsed"], "same_as_untrained": same_as_untrained(rows, before)}
    if statistic.verdict != Verdict.SUPPORTED or not details["same_as_untrained"]:
        return replace(statistic, details=details)
    reason = (f"{statistic.reason}, but the untrained model already collapses onto the same word "
              f"'{before['mode_word']}' ({before['mode_count']}/{before['n_prompts']}): "
              "not shown to come from training")
    return replace(statistic, verdict=Verdict.INCONCLUSIVE, reason=reason, details=details)


def grpo_before(ctx: ClaimContext) -> tuple[dict, list[str], dict[str, list[float]]]:
    """The untrained model's collapse evaluation and per-layer op-word lens (the control)."""
    handle = ctx.handle()
    before = collapse_eval(handle, ctx.params)
    layers, lens = word_curves(handle, prompts.grpo_collapse_lens().texts(), collapse_words(before["labels"]))
    return before, layers, lens


def grpo_curves(groups: dict[str, list[dict]], layers: list[str], lens_before: dict[str, list[float]]) -> dict:
    """Per-step training curves (mean over seeds) per group of runs, and the op-word lens before vs after."""
    curves = {key: step_curve({label: mean_series([r["curves"][key] for r in runs]) for label, runs in groups.items()},
                              key)
              for key in ("cls_loss", "reward", "cls_top_share")}
    series = {f"{w} before": v for w, v in lens_before.items()}
    series.update({f"{w} after ({label})": mean_series([r["lens_words_after"][w] for r in runs])
                   for label, runs in groups.items() for w in lens_before})
    curves["lens_op_words"] = {"x": layers, "series": series, "xlabel": "layer",
                               "ylabel": "lens P(op word), full vocab, mean over prompts and seeds"}
    return curves


def measure_h08(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    before, layers, lens_before = grpo_before(ctx)
    runs = [grpo_run(ctx, "dual", seed) for seed in ctx.seeds]
    chance = chance_collapse_rate(before["labels"], collapse_words(before["labels"]), p)
    statistic = collapse_claim(runs, chance, p, "fraction of seeds collapsed")
    statistic = untrained_control(replace(statistic, details={
        **statistic.details, "n_seeds": len(runs),
        "chance_definition": "uniform random argmax over the prompt set's op words"}), runs, before)
    modes = Counter(r["mode_word"] for r in runs)
    ours = (f"{len(runs)} seed(s), w={p['cls_weight']}, full model, {runs[0]['steps']} steps, block {before['layer']}: "
            f"collapsed {statistic.details['k']}/{len(runs)} (chance {chance:.3f}); mode words {dict(modes)}; "
            f"restricted accuracy per seed {[round(r['restricted_accuracy'], 3) for r in runs]}; mode word restricted "
            f"prob {np.mean([r['mode_restricted_prob'] for r in runs]):.1%}, full vocab "
            f"{np.mean([r['mode_vocab_prob'] for r in runs]):.2%}; before training: "
            f"{'collapsed' if before['collapsed'] else 'not collapsed'} ({before['mode_count']}/{before['n_prompts']} "
            f"'{before['mode_word']}'); final reward {np.mean([r['final_reward'] for r in runs]):.2f}")
    return Outcome(statistic=statistic, ours=ours, samples=[_sample(r) for r in runs],
                   curves=grpo_curves({f"w={p['cls_weight']}": runs}, layers, lens_before),
                   extra={"chance_collapse_rate": chance})


def h09_statistic(by_fix: dict[str, list[dict]], chance: float, p: dict,
                  before: dict) -> tuple[ClaimStatistic, dict]:
    """Each fix tested as in H08 (untrained control included); Holm across the fixes, for the support and for
    the refutation p-values."""
    alpha = p["alpha"]
    per = {fix: collapse_claim(rows, chance, p, f"fraction of seeds collapsed ({fix})") for fix, rows in by_fix.items()}
    adjusted = dict(zip(per, stats.holm([s.p_value for s in per.values()])))
    adjusted_below = dict(zip(per, stats.holm([s.details["p_below_p_min"] for s in per.values()])))
    table = {}
    for fix, s in per.items():
        opposite = s.ci_high < p["min_collapse_rate"] and adjusted_below[fix] < alpha
        met = s.details["k"] >= p["min_collapse_rate"] * s.n - 1e-9
        v = stats.decide(met, float(adjusted[fix]), alpha, n=s.n, min_n=p["min_seeds"], opposite_shown=opposite)
        controlled = untrained_control(replace(s, verdict=v.verdict, reason=v.reason), by_fix[fix], before)
        table[fix] = {**s.to_dict(), "holm_p": float(adjusted[fix]), "holm_p_below": float(adjusted_below[fix]),
                      "verdict": str(controlled.verdict), "reason": controlled.reason,
                      "same_as_untrained": controlled.details["same_as_untrained"]}
    verdicts = {fix: Verdict(t["verdict"]) for fix, t in table.items()}
    if any(v == Verdict.REFUTED for v in verdicts.values()):
        verdict = Verdict.REFUTED
        reason = "; ".join(f"{f} does not collapse ({table[f]['reason']})" for f, v in verdicts.items()
                           if v == Verdict.REFUTED)
    elif all(v == Verdict.SUPPORTED for v in verdicts.values()):
        verdict, reason = Verdict.SUPPORTED, (f"every fix collapses; largest Holm-adjusted p="
                                              f"{max(adjusted.values()):.3g} < alpha={alpha}")
    else:
        verdict = Verdict.INCONCLUSIVE
        reason = "; ".join(f"{f}: {table[f]['reason']}" for f, v in verdicts.items() if v != Verdict.SUPPORTED)
    weakest = min(per, key=lambda f: (per[f].statistic, -adjusted[f]))
    statistic = replace(per[weakest], name=f"fraction of seeds collapsed, weakest fix ({weakest})",
                        p_value=float(max(adjusted.values())), verdict=verdict, reason=reason,
                        details={**per[weakest].details, "per_fix": table, "weakest_fix": weakest,
                                 "correction": "Holm across the fixes"})
    return statistic, table


def measure_h09(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    before, layers, lens_before = grpo_before(ctx)
    chance = chance_collapse_rate(before["labels"], collapse_words(before["labels"]), p)
    by_fix = {fix: [grpo_run(ctx, fix, seed) for seed in ctx.seeds] for fix in FIXES}
    statistic, table = h09_statistic(by_fix, chance, p, before)
    statistic = replace(statistic, details={**statistic.details, "n_seeds": len(ctx.seeds),
                                            "before_training": _sample(before)})
    curves = grpo_curves(by_fix, layers, lens_before)
    ours = "; ".join(
        f"{fix}: collapsed {t['details']['k']}/{t['n']} (Holm p={t['holm_p']:.3g}), modes "
        f"{dict(Counter(r['mode_word'] for r in by_fix[fix]))}, steps {by_fix[fix][0]['steps']}"
        for fix, t in table.items()
    ) + f"; chance {chance:.3f}; before training {'collapsed' if before['collapsed'] else 'not collapsed'}"
    samples = [_sample(r) for runs in by_fix.values() for r in runs]
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves,
                   extra={"chance_collapse_rate": chance, "per_fix": table})


# ---------------------------------------------------------------------------------------------------- registry

_DUAL_PARAMS = {"steps": 500, "n_train": 2000, "lora_rank": 8, "cls_weight": 0.4, "layer_fraction": 0.55,
                "data_seed": 42, "loss_window": 10, "alpha": 0.05, "min_seeds": 3}
_DUAL_FAST = {"steps": 4, "n_train": 64, "loss_window": 1}
_GRPO_PARAMS = {"steps": None, "prompts_per_step": 8, "group_size": 2, "max_new_tokens": 8, "layer_fraction": 0.55,
                "max_off_mode": 1, "max_accuracy": 0.5, "min_collapse_rate": 0.8, "alpha": 0.05, "min_seeds": 3}
_GRPO_FAST = {"steps": 2, "prompts_per_step": 4, "group_size": 2, "max_new_tokens": 4}

register(Claim(
    id="H05",
    title="Dual-reward V/O LoRA makes the lens name the operation",
    statement="Dual-reward LoRA on the V and O projections only makes the logit lens at 55% depth name the operation.",
    source="seed 002 (BREAKTHROUGH: Dual-Reward Training)",
    criterion=(">= 7/8 eval prompts correct (restricted argmax over the 4 op words at block int(0.55 L)), mean "
               "restricted op-word prob >= 36%, answer accuracy not worse by > 10 points; across seeds: pooled "
               "binomial vs chance 25%, one-sided t on per-seed mean prob"),
    writeup="Llama-3.2-1B base: 0/8 -> 8/8, restricted probs 36-81% (rank 8 V/O, 0.4 CE + 0.6 answer, 500 steps)",
    params={**_DUAL_PARAMS, "min_correct": 7, "min_prob": 0.36, "max_accuracy_drop": 0.10},
    measure=measure_h05,
    fast=_DUAL_FAST,
    training=True,
    protocols=("corrected", "original"),
))

register(Claim(
    id="H06",
    title="Base models take dual-reward better than instruct models",
    statement="Dual-reward training works better on a base model than on its instruct variant.",
    source="seed 002 (Results: Llama 3.2 1B Instruct; Conclusions 5)",
    criterion=("paired over seeds (same data, init and order): instruct's initial cls loss (step 1, before any "
               "update) higher and its final restricted op-word prob lower, both one-sided paired t significant"),
    writeup="initial cls loss 5.0 (instruct) vs 0.97 (base); final probs 5-54% vs 36-81%; 7/8 vs 8/8",
    params=dict(_DUAL_PARAMS),
    measure=measure_h06,
    applies=needs_instruct_pair,
    fast=_DUAL_FAST,
    training=True,
    after=("H05",),
))

register(Claim(
    id="H08",
    title="GRPO + dual-reward on the full model collapses to one operation word",
    statement=("GRPO + dual-reward (w = 0.4) on the full model makes the lens at 55% depth name one operation "
               "for every prompt."),
    source="seed 002 (EXPERIMENT: GRPO + Dual-Reward; Analysis: Mode Collapse)",
    criterion=("per seed: one word is the restricted argmax for all or all but one of the 6 collapse prompts and "
               "restricted accuracy <= 50%; across seeds: collapsed fraction >= 80% and above a random argmax's "
               "collapse rate (binomial); a collapse onto the untrained model's own collapsed word is INCONCLUSIVE"),
    writeup="TinyLlama Chat, 20 iterations: every prompt -> 'add' (~80%), score 2/6",
    params={**_GRPO_PARAMS, "steps": 20, "cls_weight": 0.4, "lr": 1e-5},
    measure=measure_h08,
    fast=_GRPO_FAST,
    training=True,
))

register(Claim(
    id="H09",
    title="The collapse survives the four fixes tried",
    statement="GRPO + dual-reward still collapses with balanced sampling, an entropy bonus, LR 2e-6, or w = 0.9.",
    source="seed 002 (Mode Collapse Fix Attempts)",
    criterion=("each fix collapses as in H08, untrained control included (balanced; + entropy 0.5; LR 2e-6; "
               "w = 0.9), Holm-corrected across the four"),
    writeup="every fix still mode-collapsed ('subtract' for most)",
    params=dict(_GRPO_PARAMS),
    measure=measure_h09,
    fast=_GRPO_FAST,
    training=True,
))
