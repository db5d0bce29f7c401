"""H11: standard LoRA SFT induces only weak task tokens in the lens, concentrated near 56% depth."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Sequence

import mlx.core as mx
import numpy as np

from .. import prompts, stats
from ..analysis.lens import logit_lens
from ..cache import FixtureCache
from ..models import ModelHandle, dense_weight, load_model, model_fingerprint
from ..protocols import one_factor, protocol_defects
from ..stats import ClaimStatistic, Verdict
from ..stats.verdicts import combine
from ..training.dual_reward import DualRewardConfig, train_dual_reward
from ..training.lora import ADAPTER_WEIGHTS, LoraSpec
from ..training.sft import (
    encoded_batches,
    train_sft,
    validation_loss,
)
from .base import POSITIVE, ClaimContext, Control, Gate, Outcome, claim, not_instruct
from .common import TopK, arithmetic_split, blocks, sft_config, window

SEED000_DATA = {"ops": ("*", "+", "-"), "mul_range": (2, 20), "add_range": (1, 99)}


def original_lens_top(handle: ModelHandle, texts: Sequence[str], top_k: int, *, causal: bool = False,
                      input_unembedding: bool = True) -> TopK:
    """Seed 000's lens for trained checkpoints, kept only to ablate its defects (seed-methods 7, 12.3): every block
    called with ``mask=None`` (non-causal attention) and the final-normed state unembedded with the INPUT embedding
    matrix, whatever the model's real head. ``causal`` / ``input_unembedding=False`` remove one defect each (the
    one-factor ablations). Returns, per prompt and block, the top-k (token, id, prob) at the last position.
    """
    unembed = dense_weight(handle.embed) if input_unembedding else handle.unembedding()
    out = []
    for text in texts:
        h = handle.embed(mx.array([handle.encode(text)]))
        rows = []
        for layer in handle.layers:
            h = layer(h, mask="causal" if causal else None, cache=None)
            h = h[0] if isinstance(h, tuple) else h
            logits = handle.final_norm(h[:, -1]).astype(mx.float32) @ unembed.T
            probs = mx.softmax(logits[0], axis=-1)
            idx = mx.argsort(-probs)[:top_k]
            mx.eval(idx, probs)
            rows.append([(handle.decode_token(int(i)), int(i), float(probs[int(i)].item())) for i in idx.tolist()])
        out.append(rows)
    return out


def lens_top_for(protocol: str):
    """The top-k lens of a protocol: the corrected one-forward lens, or seed 000's with its defects (one or both)."""
    defects = protocol_defects(protocol, "lens")
    if not defects:
        return corrected_lens_top
    return lambda handle, texts, top_k: original_lens_top(handle, texts, top_k,
                                                          causal="noncausal_mask" not in defects,
                                                          input_unembedding="input_unembedding" in defects)


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


def _peak(values: Sequence[float], tokens: Sequence[str | None]) -> tuple[float, int | None, str | None]:
    best = int(np.argmax(values))
    return (float(values[best]), best, tokens[best]) if values[best] > 0 else (0.0, None, None)


def scaled_top_k(params: dict, vocab_size: int) -> int:
    """The lens top-k that is the same share of this vocabulary as the writeup's top-20 of Llama's 128,256 tokens
    (at least 1), unless ``top_k`` is given."""
    if params["top_k"] is not None:
        return int(params["top_k"])
    return max(1, round(params["top_k_written"] * vocab_size / params["reference_vocab"]))


def h11_checkpoint(handle: ModelHandle, params: dict, lens: str) -> list[dict]:
    """Task-token scores of one checkpoint on seed 000's 10 test prompts (``lens``: corrected or original): at the
    vocabulary-scaled top-k (the verdict) and at the writeup's top-20 as written."""
    tests = prompts.seed000_tests()
    vocab = prompts.task_vocabulary("seed000")
    top_fn = lens_top_for(lens)
    k, written = scaled_top_k(params, handle.vocab_size), params["top_k_written"]
    tops = top_fn(handle, tests.texts(), max(k, written))
    rows = []
    for item, top in zip(tests, tops):
        scores = task_token_scores([row[:k] for row in top], vocab.for_label(item.label), vocab.words())
        as_written = task_token_scores([row[:written] for row in top], vocab.for_label(item.label), vocab.words())
        exact, exact_layer, exact_tok = _peak(scores["exact"], scores["exact_token"])
        sub, sub_layer, sub_tok = _peak(scores["substring"], scores["substring_token"])
        rows.append({"prompt": item.text, "label": item.label, "lens": lens, "top_k": k,
                     "exact_peak": exact, "exact_peak_layer": exact_layer, "exact_token": exact_tok,
                     "substring_peak": sub, "substring_peak_layer": sub_layer, "substring_token": sub_tok,
                     "exact_by_layer": scores["exact"],
                     "exact_peak_top_written": _peak(as_written["exact"], as_written["exact_token"])[0],
                     "top5_at_exact_peak": top[exact_layer][:5] if exact_layer is not None else None})
    return rows


def h11_checkpoints(ctx: ClaimContext, seed: int) -> Path:
    """One LoRA SFT run on seed 000's data (cached: both lens protocols analyse the same run).

    The entry holds ``step_N`` adapters for every checkpoint and ``val_loss.json`` (steps 0 and N). With
    ``cls_weight`` > 0 (the positive control) the same run also trains the lens at ``layer_fraction`` to name each
    example's operation (the dual-reward loss, w = cls_weight), on the same data, LoRA, steps and checkpoints.
    """
    p = ctx.params
    checkpoints = sorted(int(s) for s in p["checkpoints"])
    tests = prompts.seed000_tests().texts()
    n_val = int(round(p["n_examples"] * p["val_fraction"]))
    parts = {"fixture": "seed000-lora-sft-checkpoints", "model": model_fingerprint(ctx.model_id), "seed": seed,
             "checkpoints": checkpoints, "lr": p["lr"], "batch_size": p["batch_size"], "n_examples": p["n_examples"],
             "n_val": n_val, "data_seed": p["data_seed"], "lora": asdict(LoraSpec()), "cls_weight": p["cls_weight"],
             "layer_fraction": p["layer_fraction"]}

    def build(out: Path) -> None:
        train, val = arithmetic_split(SEED000_DATA, p["n_examples"] - n_val, n_val, p["data_seed"] + seed, tests)
        handle = ctx.fresh_handle()
        batches = encoded_batches(handle, val, p["batch_size"], 0)
        val_loss = {0: validation_loss(ctx.handle().model, batches)}
        cfg = sft_config(checkpoints[-1], p["lr"], seed, lora=True, batch_size=p["batch_size"],
                         save_at=checkpoints, name=f"h11-seed{seed}")
        if p["cls_weight"] > 0:
            dual = DualRewardConfig(lora=cfg.lora, train=cfg.train, batch_size=cfg.batch_size,
                                    cls_weight=p["cls_weight"], layer_fraction=p["layer_fraction"])
            result = train_dual_reward(handle, dual, examples=train, out_dir=out, progress=False)
        else:
            result = train_sft(handle, train, (), cfg, out_dir=out, progress=False)
        for step in checkpoints:
            handle.model.load_weights(str(Path(result.train.checkpoints[step]) / ADAPTER_WEIGHTS), strict=False)
            val_loss[step] = validation_loss(handle.model, batches)
        (out / "val_loss.json").write_text(json.dumps(val_loss))

    return FixtureCache(ctx.cache_dir).get_or_build(parts, build)


def h11_seed(ctx: ClaimContext, seed: int, baseline: list[dict]) -> dict:
    """Lens scores and val loss at every checkpoint of one seed's run (step 0 is the base model)."""
    entry = h11_checkpoints(ctx, seed)
    lens = ctx.protocol
    by_step = {0: baseline}
    for step in sorted(int(s) for s in ctx.params["checkpoints"]):
        by_step[step] = h11_checkpoint(load_model(ctx.model_id, adapter_path=str(entry / f"step_{step}")),
                                       ctx.params, lens)
    val_loss = {int(k): v for k, v in json.loads((entry / "val_loss.json").read_text()).items()}
    return {"seed": seed, "by_step": by_step, "val_loss": val_loss}


@claim(
    id="H11",
    title="LoRA SFT induces only weak task tokens near 56% depth",
    statement="Standard LoRA SFT (500 steps) induces only weak task tokens in the logit lens, concentrated near "
               "56% depth.",
    source="seed 000 (Classifier Emergence; Summary Table)",
    criterion="mean exact task-token peak (lens top-k scaled to the same share of the vocabulary as top-20 of "
               "128k, min 1; own class, both spellings) rises from step 0 to the last checkpoint and stays < 10%; "
               "peak layers within +-0.125 L of int(0.56 L) above chance; val loss falls at every checkpoint "
               "(0/100/300/500 of one run); across seeds; top-20 as written reported beside",
    writeup="0.4% (baseline) -> 0.8% / 1.2% / 1.0% at steps 100/300/500; peaks at L9 of 16",
    params={"checkpoints": [100, 300, 500], "lr": 1e-4, "batch_size": 8, "n_examples": 5000, "val_fraction": 0.1,
            "data_seed": 0, "top_k": None, "top_k_written": 20, "reference_vocab": 128256, "layer_fraction": 0.56,
            "layer_window_fraction": 0.125, "max_prob": 0.10,
            "cluster_share": 0.5, "monotone_share": 0.8, "writeup_baseline": 0.004, "writeup_peak": 0.01,
            "alpha": 0.05, "min_seeds": 3, "min_val_loss_fall": 0.05,
            "cls_weight": 0.0},
    applies=not_instruct,
    gates=(Gate("val loss fell", "relative fall of the SFT validation loss from step 0 to the last checkpoint, mean "
                "over seeds: a model that did not learn the task cannot show task tokens emerging", None,
                "min_val_loss_fall"),),
    controls=(Control("SFT with a classification term", POSITIVE, "the same runs (data, LoRA, steps, checkpoints) "
                      "with the lens at 56% depth trained to name each example's operation (w = 0.4): strong task "
                      "tokens by construction, so 'only weak task tokens' must be refuted",
                      lambda ctx: ctx.variant(params={"cls_weight": 0.4}), Verdict.REFUTED),),
    fast={"checkpoints": [5, 10, 20], "n_examples": 400},
    training=True,
    layer_curve=("exact_prob_by_layer", None),
    protocols=("corrected", "original", *one_factor("lens")),
    default_seeds={"fast": 1, "slow": 3},
)
def measure_h11(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    baseline = h11_checkpoint(ctx.handle(), p, "corrected")
    runs = [h11_seed(ctx, seed, baseline) for seed in ctx.seeds]
    steps = [0, *sorted(int(s) for s in p["checkpoints"])]
    handle = ctx.handle()
    centre = handle.layer_at_depth(p["layer_fraction"])
    radius = max(1, round(p["layer_window_fraction"] * handle.n_layers))
    near = set(window(handle, p["layer_fraction"], radius))
    chance = len(near) / handle.n_layers

    def mean_peak(run: dict, step: int, key: str) -> float:
        return float(np.mean([r[f"{key}_peak"] for r in run["by_step"][step]]))

    rises = [mean_peak(r, steps[-1], "exact") - mean_peak(r, 0, "exact") for r in runs]
    maxima = [max(row["exact_peak"] for s in steps for row in r["by_step"][s]) for r in runs]
    shares = []
    for r in runs:
        layers = [row["exact_peak_layer"] for row in r["by_step"][steps[-1]] if row["exact_peak_layer"] is not None]
        if layers:
            shares.append(float(np.mean([layer in near for layer in layers])))
    monotone = [all(a > b for a, b in zip([r["val_loss"][s] for s in steps], [r["val_loss"][s] for s in steps[1:]]))
                for r in runs]
    alpha, min_n = p["alpha"], p["min_seeds"]
    rise = stats.threshold_claim(rises, 0.0, "above", alpha, min_n=min_n,
                                 name="rise of mean exact peak prob, step 0 -> last")
    parts = {
        "rises": rise,
        "stays_below": stats.threshold_claim(
            maxima, p["max_prob"], "below", alpha, min_n=min_n, name="max exact peak prob over checkpoints and prompts"
        ),
        "clusters_near_depth": (
            no_data_statistic(
                f"the window +-{radius} around block {centre} covers all {handle.n_layers} blocks: "
                "clustering is untestable on this model"
            )
            if chance >= 1.0
            else stats.threshold_claim(
                shares,
                max(p["cluster_share"], chance),
                "above",
                alpha,
                min_n=min_n,
                name=f"share of peak layers within +-{radius} of block {centre}",
            )
            if shares
            else no_data_statistic("no exact task token in any top-k at the last checkpoint")
        ),
        "val_loss_monotone": stats.proportion_claim(
            sum(monotone),
            len(monotone),
            p["monotone_share"],
            alpha,
            chance=1.0 / math.factorial(len(steps)),
            min_n=min_n,
            name="seeds whose val loss falls at every checkpoint",
        ),
    }
    statistic = combine(rise, parts)
    statistic = replace(
        statistic,
        details={
            **statistic.details,
            "protocol": ctx.protocol,
            "peak_window": sorted(near),
            "top_k": scaled_top_k(p, handle.vocab_size),
            "top_k_definition": "top-20 of 128,256 scaled to this vocabulary (min 1)",
            "exact_peak_top_written_last": float(np.mean([row["exact_peak_top_written"] for r in runs
                                                          for row in r["by_step"][steps[-1]]])),
            "window_chance": chance,
            "rises": rises,
            "maxima": maxima,
            "cluster_shares": shares,
            "monotone": monotone,
        },
    )
    curve_steps = [str(s) for s in steps]

    def mean_over(key: str) -> list[float]:
        return [float(np.mean([mean_peak(r, s, key) for r in runs])) for s in steps]

    nonzero = [
        float(
            np.mean(
                [row["substring_peak"] for r in runs for row in r["by_step"][s] if row["substring_peak"] > 0] or [0.0]
            )
        )
        for s in steps
    ]
    curves = {
        "task_token_peak": {
            "x": curve_steps,
            "xlabel": "step",
            "ylabel": "mean peak prob",
            "series": {
                "exact, own class (verdict)": mean_over("exact"),
                "substring, any class (original rule)": mean_over("substring"),
                "substring, mean of non-zero peaks (original average_peak_prob)": nonzero,
            },
        },
        "val_loss": {
            "x": curve_steps,
            "xlabel": "step",
            "ylabel": "val loss",
            "series": {f"seed {r['seed']}": [r["val_loss"][s] for s in steps] for r in runs},
        },
        "exact_prob_by_layer": {
            "x": [str(b) for b in blocks(handle)],
            "ylabel": "exact task-token prob (top-k)",
            "series": {
                f"step {s}": np.mean([row["exact_by_layer"] for r in runs for row in r["by_step"][s]], axis=0).tolist()
                for s in steps
            },
        },
    }
    samples = [
        {"seed": r["seed"], "step": s, **{k: v for k, v in row.items() if k != "exact_by_layer"}}
        for r in runs
        for s in steps
        for row in r["by_step"][s]
    ]
    final = mean_over("exact")
    ours = (
        f"mean exact task-token peak {final[0]:.3%} (step 0) -> {final[-1]:.3%} (step {steps[-1]}); "
        f"substring rule {mean_over('substring')[0]:.3%} -> {mean_over('substring')[-1]:.3%}; "
        f"max exact {max(maxima):.3%}; peak-layer share near block {centre}: "
        f"{np.mean(shares) if shares else float('nan'):.2f} (chance {chance:.2f}); "
        f"val loss monotone in {sum(monotone)}/{len(monotone)} seeds; lens for trained checkpoints: {ctx.protocol}"
    )
    extra = {
        "val_loss": {r["seed"]: r["val_loss"] for r in runs},
        "writeup": {"baseline": p["writeup_baseline"], "trained": p["writeup_peak"]},
    }
    fall = float(np.mean([1.0 - r["val_loss"][steps[-1]] / r["val_loss"][0] for r in runs]))
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves, extra=extra,
                   fitness={"val loss fell": fall})


def no_data_statistic(reason: str) -> ClaimStatistic:
    return ClaimStatistic(
        name="no data",
        statistic=math.nan,
        ci_low=math.nan,
        ci_high=math.nan,
        confidence=math.nan,
        effect_size=None,
        p_value=None,
        n=0,
        verdict=Verdict.INCONCLUSIVE,
        reason=reason,
    )
