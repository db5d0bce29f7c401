"""H11: standard LoRA SFT induces only weak task tokens in the lens, concentrated near 56% depth.

The verdict reads the task tokens' probability directly: per block, the full-vocabulary lens probability of every
token that spells a word of the prompt's class (``strip().lower()`` equal to it: both spellings, any case), summed.
A top-k cut scaled to the vocabulary (top-20 of 128,256 tokens) is k = 1 at V = 1,024, where a task token at the
writeup's ~1% never enters it, so the writeup's effect could not register; the scaled top-k and the writeup's
top-20 are reported beside the verdict (``verdict_top_k`` declares a cut instead, if wanted).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import mlx.core as mx
import numpy as np

from .. import prompts, stats
from ..analysis.lens import logit_lens
from ..harness.base import POSITIVE, ClaimContext, Control, ControlUnavailable, Gate, Outcome, not_instruct
from ..harness.common import TopK, blocks, depth_window
from ..harness.controls import GradedControl, NullControl
from ..harness.params import Param
from ..harness.plants import plant_op_words
from ..harness.registry import claim
from ..harness.scale import low_threshold, random_levels
from ..harness.scale import rise as rise_over
from ..harness.sft_checkpoints import sft_checkpoints
from ..models import ModelHandle, dense_weight, load_model
from ..options import COUNT, OPEN_PROB, PROB, RELATIVE_FALL, Each, Interval, OrNone
from ..protocols import one_factor, protocol_defects
from ..stats import ClaimStatistic, Verdict
from ..stats.verdicts import combine

TASK_VOCABULARY = "seed000"


def original_lens_probs(handle: ModelHandle, texts: Sequence[str], *, causal: bool = False,
                        input_unembedding: bool = True) -> np.ndarray:
    """Seed 000's lens for trained checkpoints, kept only to ablate its defects (seed-methods 7, 12.3): every block
    called with ``mask=None`` (non-causal attention) and the final-normed state unembedded with the INPUT embedding
    matrix, whatever the model's real head. ``causal`` / ``input_unembedding=False`` remove one defect each (the
    one-factor ablations). Returns the last position's probabilities, shape (prompts, blocks, V)."""
    unembed = dense_weight(handle.embed) if input_unembedding else handle.unembedding()
    out = []
    for text in texts:
        h = handle.embed(mx.array([handle.encode(text)]))
        rows = []
        for layer in handle.layers:
            h = layer(h, mask="causal" if causal else None, cache=None)
            h = h[0] if isinstance(h, tuple) else h
            logits = handle.final_norm(h[:, -1]).astype(mx.float32) @ unembed.T
            rows.append(mx.softmax(logits[0], axis=-1))
        stacked = mx.stack(rows)
        mx.eval(stacked)
        out.append(np.array(stacked))
    return np.stack(out)


def corrected_lens_probs(handle: ModelHandle, texts: Sequence[str]) -> np.ndarray:
    """Causal one-forward lens through the model's final norm and real unembedding: the last position's
    probabilities after every block, shape (prompts, blocks, V)."""
    out = []
    for text in texts:
        capture = handle.forward(mx.array([handle.encode(text)]))
        rows = mx.stack([mx.softmax(handle.lens_logits(capture.hidden[b + 1][0, -1]).astype(mx.float32), axis=-1)
                         for b in blocks(handle)])
        mx.eval(rows)
        out.append(np.array(rows))
    return np.stack(out)


def lens_probs_for(protocol: str) -> Callable[[ModelHandle, Sequence[str]], np.ndarray]:
    """The lens of a protocol: the corrected one-forward lens, or seed 000's with its defects (one or both)."""
    defects = protocol_defects(protocol, "lens")
    if not defects:
        return corrected_lens_probs
    return lambda handle, texts: original_lens_probs(handle, texts, causal="noncausal_mask" not in defects,
                                                     input_unembedding="input_unembedding" in defects)


def _top(probs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest probabilities along the last axis, largest first."""
    k = min(k, probs.shape[-1])
    part = np.argpartition(-probs, k - 1, axis=-1)[..., :k]
    order = np.argsort(-np.take_along_axis(probs, part, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(part, order, axis=-1)


def original_lens_top(handle: ModelHandle, texts: Sequence[str], top_k: int, *, causal: bool = False,
                      input_unembedding: bool = True) -> TopK:
    """Per prompt and block, the top-k (token, id, prob) of seed 000's lens (see ``original_lens_probs``)."""
    return _top_rows(handle, original_lens_probs(handle, texts, causal=causal, input_unembedding=input_unembedding),
                     top_k)


def _top_rows(handle: ModelHandle, probs: np.ndarray, top_k: int) -> TopK:
    idx = _top(probs, top_k)
    return [[[(handle.decode_token(int(i)), int(i), float(p[b, i])) for i in idx[n, b]] for b in range(p.shape[0])]
            for n, p in enumerate(probs)]


def lens_top_for(protocol: str) -> Callable[[ModelHandle, Sequence[str], int], TopK]:
    """The top-k view of a protocol's lens (``lens_probs_for``): per prompt and block, the last position's top-k."""
    probs_fn = lens_probs_for(protocol)
    return lambda handle, texts, top_k: _top_rows(handle, probs_fn(handle, texts), top_k)


def corrected_lens_top(handle: ModelHandle, texts: Sequence[str], top_k: int) -> TopK:
    """Causal one-forward lens through the model's real unembedding: per prompt and block, the last position's top-k."""
    return [[row[0] for row in res.top] for res in logit_lens(handle, texts, layers=blocks(handle), top_k=top_k)]


def task_token_scores(top: Sequence[Sequence[tuple[str, int, float]]], own_words: Sequence[str],
                      all_words: Sequence[str]) -> dict:
    """Per block: exact own-class matches and the original substring rule, over the top-k lens tokens.

    exact: tokens whose ``strip().lower()`` equals a word of the prompt's class (both spellings),
    probabilities summed. substring (seed 000's rule): the first top-k token whose
    ``lower().strip()`` contains any vocabulary string of any class, and its probability.
    """
    own = {w.lower() for w in own_words}
    every = [w.lower() for w in all_words]
    exact, exact_tok, sub, sub_tok = [], [], [], []
    for row in top:
        hits = [(t, p) for t, _, p in row if t.strip().lower() in own]
        exact.append(float(sum(p for _, p in hits)))
        exact_tok.append(hits[0][0] if hits else None)
        first = next(((t, p) for t, _, p in row if any(w in t.lower().strip() for w in every)), None)
        sub.append(float(first[1]) if first else 0.0)
        sub_tok.append(first[0] if first else None)
    return {"exact": exact, "exact_token": exact_tok, "substring": sub, "substring_token": sub_tok}


def scaled_top_k(params: dict, vocab_size: int) -> int:
    """The lens top-k that is the same share of this vocabulary as the writeup's top-20 of Llama's 128,256 tokens
    (at least 1): reported beside the verdict, which reads the full vocabulary unless ``verdict_top_k`` is set."""
    return max(1, round(params["top_k_written"] * vocab_size / params["reference_vocab"]))


def task_token_masks(handle: ModelHandle, vocab_size: int) -> dict:
    """Per vocabulary id: its text, whether it spells a word of each class exactly (``strip().lower()``; both
    spellings, any case) and whether seed 000's substring rule matches it (any vocabulary string of any class
    inside ``lower().strip()``)."""
    vocab = prompts.task_vocabulary(TASK_VOCABULARY)
    texts = []
    for i in range(vocab_size):
        try:
            texts.append(handle.decode_token(i))
        except Exception:  # noqa: BLE001  (an unembedding row past the tokenizer's vocabulary spells nothing)
            texts.append("")
    norm = [t.strip().lower() for t in texts]
    every = [w.lower() for w in vocab.words()]
    own = {}
    for label in sorted(set(vocab.labels.values())):
        words = {w.lower() for w in vocab.for_label(label)}
        own[label] = np.array([n in words for n in norm])
    return {"texts": texts, "own": own, "substring": np.array([any(w in n for w in every) for n in norm])}


def random_word_masks(masks: dict, draw: int) -> dict:
    """The null's token sets: each class's own task tokens replaced by as many other word tokens (alphabetic, >= 3
    letters, in no class's set and matching no class's substring), disjoint across classes, drawn with ``draw``."""
    word = np.array([t.strip().isalpha() and len(t.strip()) >= 3 for t in masks["texts"]])
    words = np.flatnonzero(word & ~masks["substring"] & ~np.any(list(masks["own"].values()), axis=0))
    sizes = {label: int(own.sum()) for label, own in sorted(masks["own"].items())}
    if words.size < sum(sizes.values()):
        raise ControlUnavailable(f"the vocabulary has {words.size} other word tokens, fewer than the "
                                 f"{sum(sizes.values())} task tokens to replace")
    drawn = np.random.default_rng([draw, 11]).permutation(words)
    own, start = {}, 0
    for label, k in sizes.items():
        own[label] = np.isin(np.arange(len(masks["texts"])), drawn[start:start + k])
        start += k
    return {**masks, "own": own}


def h11_checkpoint(handle: ModelHandle, params: dict, lens: str, masks: dict | None = None) -> list[dict]:
    """Task-token scores of one checkpoint on seed 000's 10 test prompts (``lens``: corrected or original).

    Per prompt and block: the own-class task tokens' probability the verdict reads (the full vocabulary, or within
    the lens top ``verdict_top_k``), the same within the vocabulary-scaled top-k and the writeup's top-20, and seed
    000's substring rule over the top-20 (the first token containing any class's string, its probability)."""
    tests = prompts.seed000_tests()
    probs = lens_probs_for(lens)(handle, tests.texts())
    vocab_size = probs.shape[-1]
    masks = masks or task_token_masks(handle, vocab_size)
    k_scaled, written, k_verdict = scaled_top_k(params, vocab_size), params["top_k_written"], params["verdict_top_k"]
    k_max = max(k_scaled, written, k_verdict or 0, 5)
    rows = []
    for item, p in zip(tests, probs):
        own = masks["own"][item.label]
        top = _top(p, k_max)  # (blocks, k_max)

        def within(k: int) -> np.ndarray:
            ids = top[:, :k]
            return np.where(own[ids], np.take_along_axis(p, ids, axis=-1), 0.0).sum(axis=-1)

        full = np.where(own, p, 0.0).sum(axis=-1)
        curve = full if k_verdict is None else within(int(k_verdict))
        sub = []
        for b in range(p.shape[0]):
            hit = next((int(i) for i in top[b, :written] if masks["substring"][i]), None)
            sub.append((float(p[b, hit]), masks["texts"][hit]) if hit is not None else (0.0, None))
        peak = float(curve.max())
        layer = int(np.argmax(curve)) if peak > 0 else None
        sub_layer = int(np.argmax([s for s, _ in sub]))
        own_ids = np.flatnonzero(own)
        rows.append({
            "prompt": item.text, "label": item.label, "lens": lens, "top_k_scaled": k_scaled,
            "peak": peak, "peak_layer": layer,
            "peak_token": (masks["texts"][int(own_ids[np.argmax(p[layer, own_ids])])]
                           if layer is not None and own_ids.size else None),
            "peak_full_vocab": float(full.max()),
            "peak_top_scaled": float(within(k_scaled).max()),
            "peak_top_written": float(within(written).max()),
            "substring_peak": sub[sub_layer][0], "substring_peak_layer": sub_layer if sub[sub_layer][0] > 0 else None,
            "substring_token": sub[sub_layer][1],
            "task_prob_by_layer": curve.tolist(),
            "top5_at_peak": ([(masks["texts"][int(i)], int(i), float(p[layer, i])) for i in top[layer, :5]]
                             if layer is not None else None),
        })
    return rows


def plant_task_word(handle: ModelHandle, params: dict, seed: int) -> float:
    """The graded control's construction on a trained checkpoint (in place): each prompt's operation word written at
    the ``layer_fraction`` block with lens probability ``plant_prob`` there at the largest of calibration prompts of
    the same form (the ceiling reads the maximum: CLAIMS.md revision 4), drawn per replicate and seed and never
    measured. Returns the plant's scale."""
    calib = prompts.resampled_dual_reward_eval(90_000 + 100 * params["plant_replicate"] + seed)
    return plant_op_words(handle, handle.layer_at_depth(params["layer_fraction"]), params["plant_prob"], calib,
                          [prompts.seed000_tests()], reduce=np.max).scale


def random_peak_levels(handle: ModelHandle, params: dict, masks: dict) -> dict[str, dict]:
    """R of the rise (the mean over prompts of each prompt's task-token peak) and of the ceiling (their maximum) on
    random-init models of this architecture and tokenizer, read with the corrected lens and the claim's masks."""
    name = f"H11 task-token peak, top-k {params['verdict_top_k']}, null draw {params['null_word_draw']}"

    def peaks(h: ModelHandle) -> list[float]:
        return [row["peak"] for row in h11_checkpoint(h, params, "corrected", masks)]

    return random_levels(handle, name, peaks, params["random_draws"], {"mean": np.mean, "max": max})


def planted_task_word(ctx: ClaimContext, prob: float, replicate: int) -> ClaimContext:
    return ctx.variant(params={"plant_prob": prob, "plant_replicate": replicate})


def claim_masks(handle: ModelHandle, params: dict) -> dict:
    """The task-token masks the claim reads: seed 000's vocabulary, or the null's random other words."""
    masks = task_token_masks(handle, handle.vocab_size)
    return random_word_masks(masks, params["null_word_draw"]) if params["null_word_draw"] >= 0 else masks


def ceiling_forms(ctx: ClaimContext) -> dict:
    """The ceiling's forms on this model: T' = max(10%, k x R of the largest task-token peak)."""
    handle, p = ctx.handle(), ctx.params
    masks = claim_masks(handle, p)
    return low_threshold(p["max_prob"], random_peak_levels(handle, p, masks)["max"], p["k_random"])


def h11_seed(ctx: ClaimContext, seed: int, baseline: list[dict], masks: dict) -> dict:
    """Lens scores and val loss at every checkpoint of one seed's run (step 0 is the base model); with ``plant_prob``
    > 0 (the graded control) the last checkpoint carries the planted task word."""
    entry = sft_checkpoints(ctx, seed)
    by_step = {0: baseline}
    checkpoints = sorted(int(s) for s in ctx.params["checkpoints"])
    for step in checkpoints:
        handle = load_model(ctx.model_id, adapter_path=str(entry / f"step_{step}"))
        if step == checkpoints[-1] and ctx.params["plant_prob"] > 0:
            plant_task_word(handle, ctx.params, seed)
        by_step[step] = h11_checkpoint(handle, ctx.params, ctx.protocol, masks)
    val_loss = {int(k): v for k, v in json.loads((entry / "val_loss.json").read_text()).items()}
    return {"seed": seed, "by_step": by_step, "val_loss": val_loss}


def val_loss_fall(runs: Sequence[dict], last: int) -> float:
    """The manipulation floor's value: relative fall of the SFT validation loss from step 0 to the last checkpoint,
    smallest over the seeds (a run at learning rate 0 falls exactly 0)."""
    return float(min(1.0 - r["val_loss"][last] / r["val_loss"][0] for r in runs))


def mde_note(s: ClaimStatistic) -> str | None:
    """Why a statistic's MDE is not a finite number (None when it is)."""
    mde = s.details.get("mde")
    if mde is not None and math.isfinite(mde):
        return None
    if s.n < 2:
        return f"n = {s.n} seed(s): no spread to scale it and no count of {s.n} reaches p < alpha"
    if math.isinf(mde if mde is not None else math.nan):
        return f"no outcome of {s.n} seeds reaches p < alpha with the declared {s.details.get('test')} test"
    return "the per-seed values have no spread"


def mean_peak(run: dict, step: int, key: str = "peak") -> float:
    """One seed's task-token peak (``key``: which measure of it) at one checkpoint, mean over the prompts."""
    return float(np.mean([r[key] for r in run["by_step"][step]]))


@dataclass
class H11Fit:
    """H11's measurements: every seed's lens scores at every checkpoint (step 0 is the base model), the step-0 and
    random-init levels the rise and the ceiling are scaled by, and the depth window of the claimed peak."""

    p: dict
    handle: ModelHandle
    runs: list[dict]
    steps: list[int]
    near: list[int]
    base: float
    levels: dict
    ceiling: dict

    @property
    def chance(self) -> float:
        """The share of blocks inside the depth window: where a peak at a random block falls."""
        return len(self.near) / self.handle.n_layers

    @property
    def floor(self) -> float:
        """The level the rise is over: max(step 0, k x R)."""
        return max(self.base, self.p["k_random"] * self.levels["mean"]["random_level"])

    @property
    def rises(self) -> list[float]:
        return [rise_over(mean_peak(r, self.steps[-1]), self.base, self.levels["mean"], self.p["k_random"])
                for r in self.runs]

    @property
    def maxima(self) -> list[float]:
        """Per seed: the largest peak over checkpoints and prompts."""
        return [max(row["peak"] for s in self.steps for row in r["by_step"][s]) for r in self.runs]

    @property
    def shares(self) -> list[float]:
        """Per seed: the share of the last checkpoint's peak blocks inside the depth window (a seed with no peak
        block is left out)."""
        shares = []
        for r in self.runs:
            layers = [row["peak_layer"] for row in r["by_step"][self.steps[-1]] if row["peak_layer"] is not None]
            if layers:
                shares.append(float(np.mean([layer in self.near for layer in layers])))
        return shares

    def mean_over(self, key: str) -> list[float]:
        """``mean_peak`` at every checkpoint, mean over the seeds."""
        return [float(np.mean([mean_peak(r, s, key) for r in self.runs])) for s in self.steps]


def h11_fit(ctx: ClaimContext) -> H11Fit:
    """Lens scores of the base model and of every seed's SFT checkpoints, then the random-init levels."""
    p = ctx.params
    handle = ctx.handle()
    masks = claim_masks(handle, p)
    baseline = h11_checkpoint(handle, p, "corrected", masks)
    runs = [h11_seed(ctx, seed, baseline, masks) for seed in ctx.seeds]
    steps = [0, *sorted(int(s) for s in p["checkpoints"])]
    near = depth_window(handle.n_layers, p["layer_fraction"], p["layer_window_fraction"])
    base = float(np.mean([r["peak"] for r in baseline]))
    levels = random_peak_levels(handle, p, masks)
    return H11Fit(p=p, handle=handle, runs=runs, steps=steps, near=near, base=base, levels=levels,
                  ceiling=low_threshold(p["max_prob"], levels["max"], p["k_random"]))


def clusters_part(fit: H11Fit, shares: list[float], ctx: ClaimContext) -> ClaimStatistic:
    """The peak blocks' share in the depth window against max(cluster_share, chance); no data when the window
    covers every block or no block has a task-token probability."""
    p = ctx.params
    if fit.chance >= 1.0:
        return stats.no_data(f"the depth window {fit.near} covers all {fit.handle.n_layers} blocks: clustering is "
                             "untestable on this model")
    if not shares:
        return stats.no_data("no task-token probability at any block of the last checkpoint")
    return stats.threshold_claim(shares, max(p["cluster_share"], fit.chance), "above", p["alpha"],
                                 test=ctx.test("clusters_near_depth"), min_n=p["min_seeds"],
                                 name=f"share of peak blocks in the depth window {fit.near}")


def h11_parts(fit: H11Fit, ctx: ClaimContext) -> dict[str, ClaimStatistic]:
    """The criteria's parts over seeds: the peak rises, stays below the ceiling and clusters near the claimed depth."""
    p = ctx.params
    alpha, min_n, shares = p["alpha"], p["min_seeds"], fit.shares
    rise = stats.threshold_claim(
        fit.rises, p["min_rise_ratio"], "above", alpha, test=ctx.test("rises"), min_n=min_n,
        name=f"mean task-token peak prob at step {fit.steps[-1]} over max(step 0, {p['k_random']:g} x R)")
    return {
        "rises": rise,
        "stays_below": stats.threshold_claim(
            fit.maxima, fit.ceiling["scale_free"], "below", alpha, test=ctx.test("stays_below"), min_n=min_n,
            name="max task-token peak prob over checkpoints and prompts"),
        "clusters_near_depth": clusters_part(fit, shares, ctx),
    }


def verdict_measure(p: dict) -> str:
    """What the verdict's task-token probability is: the full vocabulary's, or within a declared top-k."""
    return ("full-vocabulary probability of the own-class task tokens" if p["verdict_top_k"] is None
            else f"own-class task tokens within the lens top-{p['verdict_top_k']}")


def h11_details(fit: H11Fit, rise: ClaimStatistic, protocol: str) -> dict:
    """The statistic's details beyond the combined parts': the MDE against the writeup's rise, the levels and
    thresholds, the depth window, the reported top-k views of the last checkpoint and the per-seed values."""
    p, vocab_size = fit.p, fit.handle.vocab_size
    writeup_rise = p["writeup_peak"] / p["writeup_baseline"]
    mde, note = rise.details["mde"], mde_note(rise)
    last_rows = [row for r in fit.runs for row in r["by_step"][fit.steps[-1]]]
    return {
        "protocol": protocol,
        "mde": mde,
        "mde_units": "ratio (shift of the mean rise ratio above its threshold)",
        **({"mde_reason": note, "mde_definition": f"{rise.details['mde_definition']}; here: {note}"} if note else {}),
        "writeup_rise": writeup_rise,
        "writeup_margin": writeup_rise - p["min_rise_ratio"],
        "mde_vs_writeup_margin": mde / (writeup_rise - p["min_rise_ratio"]) if note is None else math.nan,
        "baseline_peak": fit.base,
        "rise_floor": fit.floor,
        "random_levels": fit.levels,
        "threshold_forms": fit.ceiling,
        "peak_window": fit.near,
        "window_chance": fit.chance,
        "verdict_measure": verdict_measure(p),
        "top_k_scaled": scaled_top_k(p, vocab_size),
        "top_k_scaled_definition": "top-20 of 128,256 scaled to this vocabulary (min 1), reported beside",
        "peak_top_scaled_last": float(np.mean([row["peak_top_scaled"] for row in last_rows])),
        "peak_top_written_last": float(np.mean([row["peak_top_written"] for row in last_rows])),
        "peak_times_vocab_last": float(np.mean([row["peak"] for row in last_rows])) * vocab_size,
        "rises": fit.rises,
        "maxima": fit.maxima,
        "cluster_shares": fit.shares,
    }


def h11_curves(fit: H11Fit) -> dict:
    """The task-token peak by step under every measure, each seed's val loss, and the task-token probability by
    block at every step."""
    p, runs, steps = fit.p, fit.runs, fit.steps
    curve_steps = [str(s) for s in steps]
    nonzero = [float(np.mean([row["substring_peak"] for r in runs for row in r["by_step"][s]
                              if row["substring_peak"] > 0] or [0.0])) for s in steps]
    verdict_series = ("full vocabulary, own class (verdict)" if p["verdict_top_k"] is None
                      else f"top-{p['verdict_top_k']}, own class (verdict)")
    return {
        "task_token_peak": {
            "x": curve_steps, "xlabel": "step", "ylabel": "mean peak prob",
            "series": {
                verdict_series: fit.mean_over("peak"),
                f"top-{scaled_top_k(p, fit.handle.vocab_size)} (vocabulary-scaled), own class":
                    fit.mean_over("peak_top_scaled"),
                f"top-{p['top_k_written']} (as written), own class": fit.mean_over("peak_top_written"),
                "substring, any class (original rule)": fit.mean_over("substring_peak"),
                "substring, mean of non-zero peaks (original average_peak_prob)": nonzero,
            },
        },
        "val_loss": {
            "x": curve_steps, "xlabel": "step", "ylabel": "val loss",
            "series": {f"seed {r['seed']}": [r["val_loss"][s] for s in steps] for r in runs},
        },
        "task_prob_by_layer": {
            "x": [str(b) for b in blocks(fit.handle)],
            "ylabel": "own-class task-token prob",
            "series": {
                f"step {s}": np.mean([row["task_prob_by_layer"] for r in runs for row in r["by_step"][s]],
                                     axis=0).tolist()
                for s in steps
            },
        },
    }


def h11_ours(fit: H11Fit, statistic: ClaimStatistic, rise: ClaimStatistic, protocol: str) -> str:
    """The record's one-line summary of what this model showed."""
    p, steps, shares, final = fit.p, fit.steps, fit.shares, fit.mean_over("peak")
    mde, note = rise.details["mde"], mde_note(rise)
    mde_text = f"{mde:.3g}" if note is None else f"NaN ({note})"
    substring = fit.mean_over("substring_peak")
    return (
        f"task-token peak ({statistic.details['verdict_measure']}) {final[0]:.3%} (step 0) -> {final[-1]:.3%} "
        f"(step {steps[-1]}, mean of {len(fit.runs)} seed(s); >= {p['min_rise_ratio']:g}x max(step 0, "
        f"{p['k_random']:g} R) needs {p['min_rise_ratio'] * fit.floor:.3%}); MDE of the rise ratio {mde_text} vs the "
        f"writeup's {p['writeup_peak'] / p['writeup_baseline']:.2g}x ({p['writeup_baseline']:.1%} -> "
        f"{p['writeup_peak']:.1%}); ceiling T' {fit.ceiling['scale_free']:.3%}; top-"
        f"{scaled_top_k(p, fit.handle.vocab_size)} (scaled) {fit.mean_over('peak_top_scaled')[-1]:.3%}, "
        f"top-{p['top_k_written']} {fit.mean_over('peak_top_written')[-1]:.3%}, substring rule {substring[0]:.3%} "
        f"-> {substring[-1]:.3%}; max {max(fit.maxima):.3%}; peak blocks in the depth window {fit.near}: "
        f"{np.mean(shares) if shares else float('nan'):.2f} (chance {fit.chance:.2f}); val loss fell "
        f"{val_loss_fall(fit.runs, steps[-1]):.0%} (smallest seed); lens for trained checkpoints: {protocol}"
    )


def h11_extra(fit: H11Fit) -> dict:
    """Each seed's val loss by step and whether it fell at every checkpoint, beside the writeup's levels."""
    p, runs, steps = fit.p, fit.runs, fit.steps
    return {
        "val_loss": {r["seed"]: r["val_loss"] for r in runs},
        "writeup": {"baseline": p["writeup_baseline"], "trained": p["writeup_peak"]},
        "val_loss_monotone": {r["seed"]: all(r["val_loss"][a] > r["val_loss"][b] for a, b in zip(steps, steps[1:]))
                              for r in runs},
    }


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {"rises": {"scale": "log"}, "stays_below": {"scale": "logit"}, "clusters_near_depth": {}}


@claim(
    id="H11",
    title="LoRA SFT induces only weak task tokens near 56% depth",
    statement="Standard LoRA SFT (500 steps) induces only weak task tokens in the logit lens, concentrated near "
               "56% depth.",
    source="seed 000 (Classifier Emergence; Summary Table)",
    criterion="task-token peak = max over blocks of the full-vocabulary lens probability of the prompt's own-class "
               "task tokens (seed 000's vocabulary; exact, both spellings, any case; no top-k cut), mean over the 10 "
               "prompts; per seed: the peak rises from step 0 to the last checkpoint to >= 2x max(step-0 peak, 10 R) "
               "(R: the same mean on 5 random-init models; the writeup's 0.4% -> 1.0% is 2.5x), the largest peak over "
               "checkpoints and prompts stays < T' = max(10%, 10 x that maximum's R), and the "
               "share of the last checkpoint's peak blocks with depth b/L within +-0.125 of 0.56 exceeds max(0.5, "
               "chance); exact one-sided sign test across 5 seeds for each; manipulation floor: the validation "
               "loss fell >= 25% in every seed; the vocabulary-scaled top-k (min 1), the writeup's top-20 and its "
               "substring rule are reported beside",
    writeup="0.4% (baseline) -> 0.8% / 1.2% / 1.0% at steps 100/300/500 (top-20 of 128k, substring rule); peaks at "
            "L9 of 16",
    params={"checkpoints": Param([100, 300, 500], Each(COUNT, min_len=2),
                                 help="SFT steps whose LoRA adapters are saved and read (the last is the run "
                                      "length)"),
            "lr": 1e-4, "batch_size": 8,
            "n_examples": Param(5000, COUNT, help="SFT examples generated, validation share included"),
            "val_fraction": Param(0.1, OPEN_PROB, help="share (0-1) of the SFT examples held out for validation"),
            "data_seed": 0,
            "verdict_top_k": Param(None, OrNone(COUNT),
                                   help="lens top-k the verdict's task tokens must be in (null: the full "
                                        "vocabulary)"),
            "top_k_written": Param(20, COUNT, help="the writeup's lens top-k, reported beside the verdict"),
            "reference_vocab": Param(128256, COUNT,
                                     help="vocabulary size of the writeup's top-k, for scaling it to this model"),
            "layer_fraction": 0.56, "layer_window_fraction": 0.125, "max_prob": 0.10, "min_rise_ratio": 2.0,
            "k_random": 10, "random_draws": 5,
            "cluster_share": Param(0.5, PROB,
                                   help="share (0-1) of prompts' peak blocks in the depth window to beat (chance "
                                        "if higher)"),
            "writeup_baseline": Param(0.004, PROB,
                                      help="the writeup's step-0 task-token peak probability (0-1), reported"),
            "writeup_peak": Param(0.01, PROB,
                                  help="the writeup's trained task-token peak probability (0-1), reported"),
            "alpha": 0.05, "min_seeds": 5,
            "min_val_loss_fall": Param(0.25, RELATIVE_FALL,
                                       help="gate: smallest fall of the SFT validation loss (fraction of its "
                                            "step-0 value)"),
            "cls_weight": 0.0, "plant_prob": 0.0, "plant_replicate": 0,
            "null_word_draw": Param(-1, Interval(int, -1, 2**20),
                                    help="null: random other words in place of the task tokens (-1: none)")},
    tests={"rises": "sign", "stays_below": "sign", "clusters_near_depth": "sign"},
    applies=not_instruct,
    gates=(Gate(name="val loss fell",
                description="manipulation floor: relative fall of the SFT validation loss from step 0 to the last "
                            "checkpoint, smallest over the seeds (zoo: 85% at 500 steps; a run at learning rate 0 "
                            "falls exactly 0): a run that did not learn the task cannot show task tokens emerging, "
                            "so it is NOT TESTABLE, never REFUTED",
                value=None, threshold_param="min_val_loss_fall"),),
    controls=(Control(name="SFT with a classification term", kind=POSITIVE,
                      description="the same runs (data, LoRA, steps, checkpoints) with the lens at 56% depth trained "
                                  "to name each example's operation (w = 0.4): strong task tokens by construction, "
                                  "so 'only weak task tokens' must be refuted",
                      build=lambda ctx: ctx.variant(params={"cls_weight": 0.4}), effect=Verdict.REFUTED),),
    graded=(GradedControl(name="task word planted after SFT",
                          description="the same SFT runs (cached), then each prompt's operation word written at the "
                                      "56%-depth block of the last checkpoint with lens probability there of the "
                                      "strength at the largest of calibration prompts of the same form that are "
                                      "never measured (one draw per replicate and seed), the statistic the ceiling "
                                      "reads: 'only weak task tokens' must be refuted above the ceiling T'",
                          units="max planted lens P(op word) at 56% depth",
                          strengths=(0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8), replicates=3,
                          build=planted_task_word, effect=Verdict.REFUTED, threshold=0.10, writeup=0.01,
                          claimed="sesoi", part="stays_below", scale_free=ceiling_forms),),
    nulls=(NullControl(name="random other words",
                       description="the same trained checkpoints read with each class's task tokens replaced by as "
                                   "many other word tokens of the vocabulary (alphabetic, >= 3 letters, no task "
                                   "word; a new draw per replicate): no task-token effect by construction, so the "
                                   "ceiling's refutation (the graded control's part) fires only at the test's "
                                   "false-positive rate",
                       replicates=20, build=lambda ctx, draw: ctx.variant(params={"null_word_draw": draw}),
                       effect=Verdict.REFUTED, part="stays_below"),),
    fast={"checkpoints": [5, 10, 20], "n_examples": 400},
    training=True,
    layer_curve=("task_prob_by_layer", None),
    protocols=("corrected", "original", *one_factor("lens")),
    default_seeds={"fast": 1, "slow": 5},
)
def measure_h11(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    fit = h11_fit(ctx)
    parts = h11_parts(fit, ctx)
    rise = parts["rises"]
    statistic = combine(rise, parts, units=("seeds", len(fit.runs), p["min_seeds"]))
    statistic = replace(statistic, details={**statistic.details, **h11_details(fit, rise, ctx.protocol)})
    samples = [{"seed": r["seed"], "step": s, **row} for r in fit.runs for s in fit.steps for row in r["by_step"][s]]
    return Outcome(statistic=statistic, ours=h11_ours(fit, statistic, rise, ctx.protocol), samples=samples,
                   curves=h11_curves(fit), extra=h11_extra(fit),
                   fitness={"val loss fell": val_loss_fall(fit.runs, fit.steps[-1])})
