"""Lens claims on untrained models: H01 (no operation words in a base model's logit lens)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import prompts, stats
from ..analysis.lens import logit_lens, target_spellings
from ..errors import LazarusError
from ..harness.base import ClaimContext, ControlUnavailable, Gate, Outcome, not_instruct
from ..harness.controls import GradedControl, NullControl
from ..harness.fixtures import dual_trained_control
from ..harness.params import Param
from ..harness.plants import ClassPlant, calibrate_scale, class_markers, word_directions
from ..harness.registry import claim
from ..harness.scale import low_threshold, random_level
from ..options import PROB, Interval
from ..prompts import PromptSet
from ..stats import Verdict


def op_word_lens(handle, prompt_set, words):
    """Per prompt: the lens rows of every operation word (full-word probability, both spellings summed)."""
    results = logit_lens(handle, prompt_set.texts(), words, top_k=5)
    return results, {w: np.stack([r.targets[w].full_prob_sum for r in results]) for w in words}


def h01_prompts(params: dict) -> PromptSet:
    """The prompts both parts read: the writeup's 8 then ``n_prompts`` - 8 of their form (``prompts``). On 8 alone
    the sign test saw a plant at twice T' in half the replicates (recipe v3, seeds 101 and 102)."""
    return prompts.dual_reward_extended(params["prompt_seed"], params["n_prompts"])


def _maxima(stacked: np.ndarray) -> np.ndarray:
    """Per prompt: its largest operation-word probability over every layer, word and spelling."""
    return stacked.reshape(len(stacked), -1).max(axis=1)


def h01_statistics(handle, params) -> tuple[list[float], int, int, dict, list[dict]]:
    """Per-prompt maximum operation-word probability, argmax hits at the classification layer, curves, samples."""
    evalset = h01_prompts(params)
    words = list(prompts.operation_words())
    results, probs = op_word_lens(handle, evalset, words)
    layers = results[0].layers
    row = layers.index(handle.layer_at_depth(params["layer_fraction"]))
    stacked = np.stack([probs[w] for w in words], axis=-1)
    per_prompt_max = _maxima(stacked)
    labels = evalset.labels()
    predicted = [words[int(np.argmax(stacked[i, row]))] for i in range(len(results))]
    hits = sum(p == t for p, t in zip(predicted, labels))
    true_curve = np.mean([probs[t][i] for i, t in enumerate(labels)], axis=0)
    by_layer = [sum(words[int(np.argmax(stacked[i, j]))] == t for i, t in enumerate(labels)) / len(labels)
                for j in range(len(layers))]
    samples = []
    for i, (res, label) in enumerate(zip(results, labels)):
        where = np.unravel_index(int(np.argmax(stacked[i])), stacked[i].shape)
        samples.append({
            "prompt": res.prompt, "label": label, "max_op_word_prob": float(per_prompt_max[i]),
            "max_at_layer": layers[where[0]], "max_word": words[where[1]],
            "argmax_word_at_classification_layer": predicted[i],
            "top1_at_classification_layer": res.top[row][0][0][0],
        })
    curves = {
        "lens_true_op_word": {"x": [str(layer) for layer in layers],
                              "series": {"P(true op word)": true_curve.tolist()}},
        "argmax_accuracy_by_layer": {"x": [str(layer) for layer in layers], "xlabel": "layer",
                                     "ylabel": "class argmax accuracy over the 4 op words",
                                     "series": {"argmax accuracy": by_layer,
                                                "chance": [1.0 / len(words)] * len(layers)}},
    }
    return per_prompt_max.tolist(), hits, len(results), curves, samples


def scale_free_threshold(handle, params: dict) -> dict:
    """T' = max(1%, k x R), R the largest op-word probability (over layers, prompts, words and spellings) on the
    writeup's prompts of random-init models of this architecture and tokenizer."""
    level = random_level(handle, f"H01 max op-word lens prob, layer_fraction {params['layer_fraction']}",
                         lambda h: max(h01_statistics(h, {**params, "prompt_seed": -1})[0]), params["random_draws"])
    return low_threshold(params["max_prob"], level, params["k_random"])


def argmax_equivalence(hits: int, n: int, chance: float, margin: float, alpha: float):
    """'No better than chance' as an equivalence: SUPPORTED when the accuracy is below chance + margin (exact one-sided
    binomial), REFUTED when above it, else INCONCLUSIVE; the same confidence for either side."""
    bound = chance + margin
    below = stats.binomial_test(hits, n, p0=bound, alternative="less")
    above = stats.binomial_test(hits, n, p0=bound, alternative="greater")
    met, against = below.p_value < alpha, above.p_value < alpha
    side = "below" if met else "above" if against else "not significantly off"
    return stats.evidence(
        "class argmax accuracy at the classification layer", value=hits / n, n=n,
        p_value=below.p_value if not against else above.p_value, met=met, against=against,
        ci=(below.ci_low, below.ci_high, below.confidence),
        details={"threshold": bound, "direction": "below", "chance": chance, "margin": margin,
                 "p_below": below.p_value, "p_above": above.p_value},
        reason=f"{hits}/{n} {side} chance {chance:.0%} + {margin:.0%} = {bound:.0%} (exact binomial p="
               f"{below.p_value if not against else above.p_value:.3g})")


def spellable_share(ctx: ClaimContext) -> float:
    """Share of the operation words the tokenizer spells (both spellings encode to known tokens and decode back)."""
    handle, ok = ctx.handle(), 0
    for word in prompts.operation_words():
        try:
            spellings = target_spellings(handle, word)
        except LazarusError:
            continue
        tok = getattr(handle.tokenizer, "_tokenizer", handle.tokenizer)
        ok += all(tok.decode(ids).strip() == word for ids in spellings.values())
    return ok / len(prompts.operation_words())


CALIBRATION_STEPS = 20  # bisection steps of a plant's scale: 9 decades / 2**20, a 0.002% step in the scale
CALIBRATION = 50_000  # the calibration prompts' seed, apart from every measured set
_SCALES: dict[tuple, tuple[float, ...] | str] = {}  # per process: a pure function of its key, so workers agree


def prompt_maxima(handle, prompt_set) -> np.ndarray:
    """Per prompt: its largest operation-word lens probability over every layer, word and spelling."""
    words = list(prompts.operation_words())
    _, probs = op_word_lens(handle, prompt_set, words)
    return _maxima(np.stack([probs[w] for w in words], axis=-1))


def calibration_prompts() -> PromptSet:
    """Where a plant's scale is calibrated: 4 prompts per operation of the eval form, never measured."""
    return prompts.resampled_dual_reward_eval(CALIBRATION, per_op=4)


def op_word_plant(handle, block: int, weights, prompt_sets) -> ClassPlant:
    """Each operation's word (its unembedding row times the final-norm gain, times its weight) written at ``block``
    into the prompts that hold its operator symbol (found in ``prompt_sets``)."""
    words = list(prompts.operation_words())
    directions = word_directions(handle, words) * np.asarray(weights, dtype=np.float32)[:, None]
    return ClassPlant(handle, class_markers(handle, prompt_sets, words), directions, block)


def class_scales(ctx: ClaimContext, prob: float) -> tuple[float, ...]:
    """Per operation, the scale of its word's plant that brings the median over its own calibration prompts (4 per
    operation, never measured) of each prompt's largest op-word probability over all layers to ``prob``; each
    operation calibrated alone on a fresh copy, once per model, block and strength. One scale for all four left
    subtract below 4% where multiply reached 60% (recipe v3, seed 101)."""
    block = ctx.handle().layer_at_depth(ctx.params["layer_fraction"])
    key = (ctx.model_id, block, prob)
    if key not in _SCALES:
        calib = calibration_prompts()
        labels, words = np.asarray(calib.labels()), list(prompts.operation_words())
        scales = []
        try:
            for i, word in enumerate(words):
                handle = ctx.fresh_handle()
                plant = op_word_plant(handle, block, np.eye(len(words))[i], [calib])

                def median_of_class(handle=handle, word=word) -> float:
                    return float(np.median(prompt_maxima(handle, calib)[labels == word]))

                scales.append(calibrate_scale(plant, median_of_class, prob, steps=CALIBRATION_STEPS))
            _SCALES[key] = tuple(scales)
        except ControlUnavailable as exc:
            _SCALES[key] = f"{word}: {exc}"
    if isinstance(_SCALES[key], str):
        raise ControlUnavailable(_SCALES[key])
    return _SCALES[key]


def planted_op_word(ctx: ClaimContext, prob: float, replicate: int) -> ClaimContext:
    """Each prompt's operation word written at the 55%-depth block with its operation's scale (``class_scales``), so
    that the criterion's statistic is ``prob`` on every operation's calibration prompts; measured on prompts
    resampled per replicate."""
    handle = ctx.fresh_handle()
    measured = prompts.resampled_dual_reward_eval(60_000 + replicate)
    op_word_plant(handle, handle.layer_at_depth(ctx.params["layer_fraction"]), class_scales(ctx, prob),
                  [calibration_prompts(), measured]).scale = 1.0
    return ctx.variant(handle=handle, params={"prompt_seed": 60_000 + replicate})


def read_below(ctx: ClaimContext) -> Outcome:
    """The sign-test part alone, for the graded control that plants it: the per-prompt maxima and T'; no argmax
    prompts, random-init control or samples."""
    p = ctx.params
    t_prime = scale_free_threshold(ctx.handle(), p)["scale_free"]
    part = stats.threshold_claim(h01_statistics(ctx.handle(), p)[0], t_prime, "below", alpha=p["alpha"],
                                 test=ctx.test("below_threshold"), name="max P(op word) per prompt")
    return Outcome(statistic=part, ours=f"per-prompt maxima against T' {t_prime:.3%}",
                   parts={"below_threshold": part})


def random_init_draw(ctx: ClaimContext, replicate: int) -> ClaimContext:
    """A random-init model of the same architecture (init seed ``replicate``) on resampled prompts."""
    return ctx.variant(handle=ctx.random_control(seed=100 + replicate), params={"prompt_seed": 70_000 + replicate})


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {
    "below_threshold": {"scale": "logit"},  # the prompt mean of per-prompt maxima, below the record's threshold
    "every_prompt_below": {"scale": "logit", "side": "below"},  # the record's threshold: that build's T'
    "argmax_at_chance": {"threshold": 0.4, "side": "below"},  # accuracy below chance (1/4) + a 15-point margin
}


@claim(
    id="H01",
    title="No operation words in a base model's logit lens",
    statement="Base models show no operation words (multiply/add/subtract/divide) in the logit lens at any layer.",
    source="seed 002 (What Base Models Have; logit lens), seed 000 (baseline)",
    criterion=("on 96 prompts of the writeup's form (its 8 first): every layer < T' = max(1%, 10 x R) for the "
               "prompt's operation words, most prompts below (sign test; R: the same maximum on 5 random-init models "
               "of the architecture and tokenizer); class argmax at 55% depth equivalent to chance: accuracy below "
               "chance + 15 points (exact binomial)"),
    writeup="~0.0x% at every layer (Llama-3.2-1B, TinyLlama, Granite)",
    params={"max_prob": 0.01, "k_random": 10, "random_draws": 5, "layer_fraction": 0.55, "alpha": 0.05,
            "min_spellable": Param(1.0, PROB, help="gate: smallest share (0-1) of the op words the tokenizer spells"),
            "prompt_seed": Param(-1, Interval(int, -1, 2**32 - 1),
                                 help="-1: the writeup's 8 prompts first; else 8 of their form with operands "
                                      "drawn by this seed"),
            "n_prompts": Param(96, Interval(int, 8, 400, step=4),
                               help="prompts of the writeup's form both parts read (the 8 of prompt_seed first)"),
            "argmax_margin": Param(0.15, Interval(float, 0.0, 0.75),
                                   help="points above chance the argmax accuracy must stay below (an equivalence "
                                        "margin, 0-1)")},
    tests={"below_threshold": "sign", "argmax_at_chance": "exact binomial against chance + margin, one-sided each way"},
    applies=not_instruct,
    gates=(Gate(name="op words spellable",
                description="share of multiply/add/subtract/divide the tokenizer encodes to known tokens and decodes "
                            "back, both spellings: a word it cannot spell cannot appear in the lens",
                value=spellable_share, threshold_param="min_spellable"),),
    after=("H05a",),
    controls=(dual_trained_control(Verdict.REFUTED),),
    graded=(GradedControl(name="operation word planted at 55% depth",
                          description="each prompt's operation word (its unembedding row times the final-norm gain) "
                                      "added at the 55%-depth block, each operation scaled so that the criterion's "
                                      "statistic, the median over prompts of each prompt's largest op-word "
                                      "probability over all layers, is the strength on its calibration prompts; "
                                      "measured on other resampled prompts; reads the sign-test part",
                          units="median per-prompt max P(op word), in multiples of this model's T'",
                          strengths=(0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0), replicates=10,
                          build=planted_op_word, effect=Verdict.REFUTED, threshold=0.01, writeup=0.0005,
                          claimed="sesoi", scale_free=lambda ctx: scale_free_threshold(ctx.handle(), ctx.params),
                          part="below_threshold", relative=True),),
    nulls=(NullControl(name="random-init models",
                       description="random-init models of the same architecture and tokenizer (a new init seed and "
                                   "resampled prompts per replicate): no operation word was learned",
                       replicates=40, build=random_init_draw, effect=Verdict.REFUTED),),
    layer_curve=("argmax_accuracy_by_layer", "argmax accuracy"),
    readers={"below_threshold": read_below},
)
def measure_h01(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    values, hits, n, curves, samples = h01_statistics(ctx.handle(), p)
    chance = 1.0 / len(prompts.operation_words())
    limit = scale_free_threshold(ctx.handle(), p)
    t_prime = limit["scale_free"]
    threshold = stats.threshold_claim(values, t_prime, "below", alpha=p["alpha"], test=ctx.test("below_threshold"),
                                      name="max P(op word) per prompt")
    control_values, control_hits, _, control_curves, _ = h01_statistics(ctx.random_control(), p)
    curves["lens_true_op_word"]["series"]["random-init control"] = control_curves["lens_true_op_word"]["series"][
        "P(true op word)"
    ]
    every_below = max(values) < t_prime
    argmax_k, argmax_n = hits, n
    parts = {
        "below_threshold": threshold,
        "every_prompt_below": stats.evidence(
            "largest per-prompt max P(op word)", value=float(max(values)), n=n, met=every_below,
            details={"threshold": t_prime, "direction": "below"},
            reason=f"the largest value {max(values):.3%} " + ("stays below" if every_below else "reaches")
                   + f" T' {t_prime:.3%} (1% or 10 x the random-init level {limit['random_level']:.3%})"),
        "argmax_at_chance": argmax_equivalence(argmax_k, argmax_n, chance, p["argmax_margin"], p["alpha"]),
    }
    vocab = int(ctx.handle().vocab_size)
    statistic = replace(
        threshold,
        details={
            **threshold.details,
            "argmax_hits": argmax_k,
            "argmax_n": argmax_n,
            "n_prompts": n,
            "chance": chance,
            "threshold_forms": limit,
            "control_max": float(max(control_values)),
            "control_argmax_hits": control_hits,
            "vocab_size": vocab,
            "max_prob_times_vocab": float(max(values)) * vocab,
            "threshold_times_vocab": t_prime * vocab,
            "test": "exact sign test of the per-prompt maxima against the threshold (the prompt is the unit), "
                    "t interval of their mean; p x V is the probability over the uniform 1/V",
        },
    )
    layer = ctx.handle().layer_at_depth(p["layer_fraction"])
    ours = (
        f"max P(op word) over all layers = {max(values):.3%} = {max(values) * vocab:.3g} x uniform (V={vocab}; "
        f"T' = {t_prime:.3%} = {t_prime * vocab:.3g} x uniform, random-init level {limit['random_level']:.3%}; "
        f"per-prompt mean {np.mean(values):.3%}); argmax over the 4 words at block {layer}: {argmax_k}/{argmax_n} "
        f"(chance {chance:.0%}, margin {p['argmax_margin']:.0%}); "
        f"random-init control max {max(control_values):.3%}"
    )
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves, parts=parts)
