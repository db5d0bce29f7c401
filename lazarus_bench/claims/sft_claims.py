"""SFT claims: H11 (weak task tokens after LoRA SFT, seed 000), H12 (LoRA vs full fine-tuning cost, seed 001),
H13 (a "remain" token for subtraction and late answers, seed 001), H14 (two-stage training, seed 003).

Every claim trains fresh copies of the model once per seed and tests its criterion across seeds.
"""

from __future__ import annotations

import gc
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import lazarus_bench  # noqa: F401  (BLAS preload before mlx.core)
import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from .. import prompts, stats
from ..cache import FixtureCache
from ..errors import LazarusError
from ..lens import logit_lens, target_spellings
from ..models import ModelHandle, dense_weight, load_model
from ..stats import ClaimStatistic, Verdict
from ..training.data import arithmetic_examples, assert_disjoint
from ..training.dual_reward import train_dual_reward
from ..training.lora import ADAPTER_WEIGHTS, LoraSpec, fuse_lora, save_adapter
from ..training.loop import TrainConfig
from ..training.sft import SFTConfig, SFTResult, encoded_batches, train_sft, validation_loss
from ..training.two_stage import TWO_STAGE_OPS, TwoStageConfig, TwoStageResult, accuracy_drop, stage_metrics
from .base import Claim, ClaimContext, Outcome, not_instruct, register

SEED000_DATA = {"ops": ("*", "+", "-"), "mul_range": (2, 20), "add_range": (1, 99)}
SEED001_DATA = {"ops": ("+", "-", "*"), "mul_range": (1, 99), "add_range": (1, 99)}


# ------------------------------------------------------------------------------------------------ shared helpers


def combine(main: ClaimStatistic, parts: dict[str, ClaimStatistic]) -> ClaimStatistic:
    """A conjunction of criteria (intersection-union test, each at alpha): SUPPORTED only if every part is.

    REFUTED when any part is refuted (one false conjunct refutes the claim), else INCONCLUSIVE.
    """
    refuted = [k for k, s in parts.items() if Verdict(s.verdict) == Verdict.REFUTED]
    open_ = [k for k, s in parts.items() if Verdict(s.verdict) == Verdict.INCONCLUSIVE]
    if refuted:
        verdict, names = Verdict.REFUTED, refuted
    elif open_:
        verdict, names = Verdict.INCONCLUSIVE, open_
    else:
        verdict, names = Verdict.SUPPORTED, list(parts)
    label = {Verdict.REFUTED: "refuted", Verdict.INCONCLUSIVE: "inconclusive", Verdict.SUPPORTED: "supported"}[verdict]
    reason = f"{label}: " + "; ".join(f"{k}: {parts[k].reason}" for k in names)
    details = {**main.details, "criteria": {k: s.to_dict() for k, s in parts.items()},
               "criteria_verdicts": {k: str(s.verdict) for k, s in parts.items()}}
    return replace(main, verdict=verdict, reason=reason, details=details)


def exact_claim(value: float, threshold: float, direction: str, name: str, n: int) -> ClaimStatistic:
    """A criterion on a deterministic quantity (a parameter count): met or not, with no sampling noise."""
    met = value <= threshold if direction == "below" else value >= threshold
    verdict = Verdict.SUPPORTED if met else Verdict.REFUTED
    word = "<=" if direction == "below" else ">="
    reason = f"{name} = {value:.4g} {'' if met else 'not '}{word} {threshold:.4g} (exact count, no sampling noise)"
    return ClaimStatistic(name=name, statistic=float(value), ci_low=float(value), ci_high=float(value),
                          confidence=1.0, effect_size=None, p_value=None, n=n, verdict=verdict, reason=reason,
                          details={"threshold": threshold, "direction": direction, "test": "exact"})


def equivalence_claim(values: Sequence[float], margin: float, alpha: float, *, min_n: int, name: str) -> ClaimStatistic:
    """TOST: the mean lies within (-margin, margin): both one-sided tests significant (CI at 1 - 2 alpha inside).

    REFUTED when the mean is significantly beyond one of the margins.
    """
    low = stats.threshold_claim(values, -margin, "above", alpha, min_n=min_n, name=name)
    high = stats.threshold_claim(values, margin, "below", alpha, min_n=min_n, name=name)
    verdicts = {Verdict(low.verdict), Verdict(high.verdict)}
    if Verdict.REFUTED in verdicts:
        verdict = Verdict.REFUTED
        reason = f"mean {low.statistic:.4g} is significantly outside +-{margin:.4g}"
    elif verdicts == {Verdict.SUPPORTED}:
        verdict = Verdict.SUPPORTED
        reason = f"mean {low.statistic:.4g} within +-{margin:.4g} (TOST p={max(low.p_value, high.p_value):.3g})"
    else:
        verdict = Verdict.INCONCLUSIVE
        weaker = low if Verdict(low.verdict) != Verdict.SUPPORTED else high
        reason = f"equivalence within +-{margin:.4g} not shown ({weaker.reason})"
    p_values = [p for p in (low.p_value, high.p_value) if p is not None and not math.isnan(p)]
    return replace(low, verdict=verdict, reason=reason, p_value=max(p_values) if len(p_values) == 2 else math.nan,
                   details={**low.details, "margin": margin, "test": "TOST (" + low.details["test"] + ")",
                            "p_lower": low.p_value, "p_upper": high.p_value})


def arithmetic_split(recipe: dict, n_train: int, n_val: int, seed: int, exclude: Sequence[str]) -> tuple[list, list]:
    """Seeded train and validation examples of a writeup's distribution, none of them an evaluation prompt."""
    examples = arithmetic_examples(n_train + n_val, seed, recipe["ops"], mul_range=recipe["mul_range"],
                                   add_range=recipe["add_range"], exclude=exclude)
    assert_disjoint(examples, exclude)
    return examples[:n_train], examples[n_train:]


def sft_config(steps: int, lr: float, seed: int, *, lora: bool, batch_size: int = 8, save_at: Sequence[int] = (),
               name: str = "sft") -> SFTConfig:
    """mlx-lm's ``lora`` defaults: Adam, no clipping, LoRA rank 8 scale 20 on every linear (or full fine-tuning)."""
    train = TrainConfig(steps=steps, lr=lr, optimizer="adam", grad_clip=None, seed=seed, save_at=tuple(save_at),
                        log_every=max(1, steps), name=name)
    return SFTConfig(train=train, batch_size=batch_size, lora=LoraSpec() if lora else None)


def model_fingerprint(model_id: str) -> str:
    """Content hash of a local checkpoint (config and weights), or the hub id: part of every cached fixture's key."""
    from ..runner import model_hash

    local = Path(model_id)
    return model_hash(model_id, local if local.is_dir() else None)


def blocks(handle: ModelHandle) -> list[int]:
    return list(range(handle.n_layers))


def window(handle: ModelHandle, fraction: float, radius: int) -> list[int]:
    """Blocks within ``radius`` of block ``int(fraction * L)``."""
    centre = handle.layer_at_depth(fraction)
    return [b for b in blocks(handle) if abs(b - centre) <= radius]


# ------------------------------------------------------------------------------------------------ H11


TopK = list[list[list[tuple[str, int, float]]]]


def original_lens_top(handle: ModelHandle, texts: Sequence[str], top_k: int) -> TopK:
    """Seed 000's lens for trained checkpoints, kept only to ablate its defect (seed-methods 7, 12.3).

    Every block is called with ``mask=None`` (non-causal attention) and the final-normed state is
    unembedded with the INPUT embedding matrix, whatever the model's real head. Returns, per prompt
    and block, the top-k (token, id, prob) at the last position.
    """
    unembed = dense_weight(handle.embed)
    out = []
    for text in texts:
        h = handle.embed(mx.array([handle.encode(text)]))
        rows = []
        for layer in handle.layers:
            h = layer(h, mask=None, cache=None)
            h = h[0] if isinstance(h, tuple) else h
            logits = handle.final_norm(h[:, -1]).astype(mx.float32) @ unembed.T
            probs = mx.softmax(logits[0], axis=-1)
            idx = mx.argsort(-probs)[:top_k]
            mx.eval(idx, probs)
            rows.append([(handle.decode_token(int(i)), int(i), float(probs[int(i)].item())) for i in idx.tolist()])
        out.append(rows)
    return out


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


def h11_checkpoint(handle: ModelHandle, params: dict, lens: str) -> list[dict]:
    """Task-token scores of one checkpoint on seed 000's 10 test prompts (``lens``: corrected or original)."""
    tests = prompts.seed000_tests()
    vocab = prompts.task_vocabulary("seed000")
    top_fn = original_lens_top if lens == "original" else corrected_lens_top
    tops = top_fn(handle, tests.texts(), params["top_k"])
    rows = []
    for item, top in zip(tests, tops):
        scores = task_token_scores(top, vocab.for_label(item.label), vocab.words())
        exact, exact_layer, exact_tok = _peak(scores["exact"], scores["exact_token"])
        sub, sub_layer, sub_tok = _peak(scores["substring"], scores["substring_token"])
        rows.append({"prompt": item.text, "label": item.label, "lens": lens,
                     "exact_peak": exact, "exact_peak_layer": exact_layer, "exact_token": exact_tok,
                     "substring_peak": sub, "substring_peak_layer": sub_layer, "substring_token": sub_tok,
                     "exact_by_layer": scores["exact"],
                     "top5_at_exact_peak": top[exact_layer][:5] if exact_layer is not None else None})
    return rows


def h11_checkpoints(ctx: ClaimContext, seed: int) -> Path:
    """One LoRA SFT run on seed 000's data (cached: both lens protocols analyse the same run).

    The entry holds ``step_N`` adapters for every checkpoint and ``val_loss.json`` (steps 0 and N).
    """
    p = ctx.params
    checkpoints = sorted(int(s) for s in p["checkpoints"])
    tests = prompts.seed000_tests().texts()
    n_val = int(round(p["n_examples"] * p["val_fraction"]))
    parts = {"fixture": "seed000-lora-sft-checkpoints", "model": model_fingerprint(ctx.model_id), "seed": seed,
             "checkpoints": checkpoints, "lr": p["lr"], "batch_size": p["batch_size"], "n_examples": p["n_examples"],
             "n_val": n_val, "data_seed": p["data_seed"], "lora": asdict(LoraSpec())}

    def build(out: Path) -> None:
        train, val = arithmetic_split(SEED000_DATA, p["n_examples"] - n_val, n_val, p["data_seed"] + seed, tests)
        handle = ctx.fresh_handle()
        batches = encoded_batches(handle, val, p["batch_size"], 0)
        val_loss = {0: validation_loss(ctx.handle().model, batches)}
        cfg = sft_config(checkpoints[-1], p["lr"], seed, lora=True, batch_size=p["batch_size"],
                         save_at=checkpoints, name=f"h11-seed{seed}")
        result = train_sft(handle, train, (), cfg, out_dir=out, progress=False)
        for step in checkpoints:
            handle.model.load_weights(str(Path(result.train.checkpoints[step]) / ADAPTER_WEIGHTS), strict=False)
            val_loss[step] = validation_loss(handle.model, batches)
        (out / "val_loss.json").write_text(json.dumps(val_loss))

    return FixtureCache(ctx.cache_dir).get_or_build(parts, build)


def h11_seed(ctx: ClaimContext, seed: int, baseline: list[dict]) -> dict:
    """Lens scores and val loss at every checkpoint of one seed's run (step 0 is the base model)."""
    entry = h11_checkpoints(ctx, seed)
    lens = "original" if ctx.protocol == "original" else "corrected"
    by_step = {0: baseline}
    for step in sorted(int(s) for s in ctx.params["checkpoints"]):
        by_step[step] = h11_checkpoint(load_model(ctx.model_id, adapter_path=str(entry / f"step_{step}")),
                                       ctx.params, lens)
    val_loss = {int(k): v for k, v in json.loads((entry / "val_loss.json").read_text()).items()}
    return {"seed": seed, "by_step": by_step, "val_loss": val_loss}


def measure_h11(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    baseline = h11_checkpoint(ctx.handle(), p, "corrected")
    runs = [h11_seed(ctx, seed, baseline) for seed in ctx.seeds]
    steps = [0, *sorted(int(s) for s in p["checkpoints"])]
    handle = ctx.handle()
    centre = handle.layer_at_depth(p["layer_fraction"])
    near = set(window(handle, p["layer_fraction"], p["layer_window"]))
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
        "stays_below": stats.threshold_claim(maxima, p["max_prob"], "below", alpha, min_n=min_n,
                                             name="max exact peak prob over checkpoints and prompts"),
        "clusters_near_depth": (
            _no_data(f"the window +-{p['layer_window']} around block {centre} covers all {handle.n_layers} blocks: "
                     "clustering is untestable on this model") if chance >= 1.0
            else stats.threshold_claim(shares, max(p["cluster_share"], chance), "above", alpha, min_n=min_n,
                                       name=f"share of peak layers within +-{p['layer_window']} of block {centre}")
            if shares else _no_data("no exact task token in any top-k at the last checkpoint")),
        "val_loss_monotone": stats.proportion_claim(sum(monotone), len(monotone), p["monotone_share"], alpha,
                                                    chance=1.0 / math.factorial(len(steps)), min_n=min_n,
                                                    name="seeds whose val loss falls at every checkpoint"),
    }
    statistic = combine(rise, parts)
    statistic = replace(statistic, details={**statistic.details, "protocol": ctx.protocol, "peak_window": sorted(near),
                                            "window_chance": chance, "rises": rises, "maxima": maxima,
                                            "cluster_shares": shares, "monotone": monotone})
    curve_steps = [str(s) for s in steps]

    def mean_over(key: str) -> list[float]:
        return [float(np.mean([mean_peak(r, s, key) for r in runs])) for s in steps]

    nonzero = [float(np.mean([row["substring_peak"] for r in runs for row in r["by_step"][s]
                              if row["substring_peak"] > 0] or [0.0])) for s in steps]
    curves = {
        "task_token_peak": {"x": curve_steps, "xlabel": "step", "ylabel": "mean peak prob", "series": {
            "exact, own class (verdict)": mean_over("exact"),
            "substring, any class (original rule)": mean_over("substring"),
            "substring, mean of non-zero peaks (original average_peak_prob)": nonzero}},
        "val_loss": {"x": curve_steps, "xlabel": "step", "ylabel": "val loss",
                     "series": {f"seed {r['seed']}": [r["val_loss"][s] for s in steps] for r in runs}},
        "exact_prob_by_layer": {"x": [str(b) for b in blocks(handle)], "ylabel": "exact task-token prob (top-k)",
                                "series": {
            f"step {s}": np.mean([row["exact_by_layer"] for r in runs for row in r["by_step"][s]], axis=0).tolist()
            for s in steps}},
    }
    samples = [{"seed": r["seed"], "step": s, **{k: v for k, v in row.items() if k != "exact_by_layer"}}
               for r in runs for s in steps for row in r["by_step"][s]]
    final = mean_over("exact")
    ours = (f"mean exact task-token peak {final[0]:.3%} (step 0) -> {final[-1]:.3%} (step {steps[-1]}); "
            f"substring rule {mean_over('substring')[0]:.3%} -> {mean_over('substring')[-1]:.3%}; "
            f"max exact {max(maxima):.3%}; peak-layer share near block {centre}: "
            f"{np.mean(shares) if shares else float('nan'):.2f} (chance {chance:.2f}); "
            f"val loss monotone in {sum(monotone)}/{len(monotone)} seeds; lens for trained checkpoints: {ctx.protocol}")
    extra = {"val_loss": {r["seed"]: r["val_loss"] for r in runs},
             "writeup": {"baseline": p["writeup_baseline"], "trained": p["writeup_peak"]}}
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves, extra=extra)


def _no_data(reason: str) -> ClaimStatistic:
    return ClaimStatistic(name="no data", statistic=math.nan, ci_low=math.nan, ci_high=math.nan, confidence=math.nan,
                          effect_size=None, p_value=None, n=0, verdict=Verdict.INCONCLUSIVE, reason=reason)


register(Claim(
    id="H11",
    title="LoRA SFT induces only weak task tokens near 56% depth",
    statement=("Standard LoRA SFT (500 steps) induces only weak task tokens in the logit lens, concentrated near "
               "56% depth."),
    source="seed 000 (Classifier Emergence; Summary Table)",
    criterion=("mean exact task-token peak (top-20 lens, own class, both spellings) rises from step 0 to the last "
               "checkpoint and stays < 10%; peak layers within +-2 blocks of int(0.56 L) above chance; val loss "
               "falls at every checkpoint (0/100/300/500 of one run); across seeds"),
    writeup="0.4% (baseline) -> 0.8% / 1.2% / 1.0% at steps 100/300/500; peaks at L9 of 16",
    params={"checkpoints": [100, 300, 500], "lr": 1e-4, "batch_size": 8, "n_examples": 5000, "val_fraction": 0.1,
            "data_seed": 0, "top_k": 20, "layer_fraction": 0.56, "layer_window": 2, "max_prob": 0.10,
            "cluster_share": 0.5, "monotone_share": 0.8, "writeup_baseline": 0.004, "writeup_peak": 0.01,
            "alpha": 0.05, "min_seeds": 3},
    measure=measure_h11,
    applies=not_instruct,
    fast={"checkpoints": [5, 10, 20], "n_examples": 400},
    training=True,
    protocols=("corrected", "original"),
    default_seeds={"fast": 1, "slow": 3},
))


# ------------------------------------------------------------------------------------------------ H12


def seed001_lora_parts(model_id: str, seed: int, steps: int, lr: float, batch_size: int, n_train: int,
                       data_seed: int) -> dict:
    """Cache key of seed 001's LoRA SFT adapter: H12's LoRA arm trains it, H13 analyses it (as seed 001 did)."""
    return {"fixture": "seed001-lora-sft", "model": model_fingerprint(model_id),
            "seed": seed, "steps": steps, "lr": lr, "batch_size": batch_size, "n_train": n_train,
            "data_seed": data_seed, "exclude": "seed000_tests", "lora": asdict(LoraSpec())}


TrainedHook = Callable[[str, ModelHandle, SFTResult], None]


def _run_cost(handle_factory: Callable[[], ModelHandle], train: list, val: list, cfg: SFTConfig, name: str,
              on_trained: TrainedHook | None) -> dict:
    """One fine-tuning run measured alone: memory held by anything else before it is subtracted from its peak."""
    gc.collect()
    mx.clear_cache()
    other = mx.get_active_memory() / 1e9
    from ..bench import StepTimer, timed_rates

    handle = handle_factory()
    timer: StepTimer | None = None

    def timed(batches: Callable) -> StepTimer:
        nonlocal timer
        timer = StepTimer(batches)
        return timer

    result = train_sft(handle, train, val, cfg, progress=False, batch_wrapper=timed)
    rates = timed_rates(timer, time.perf_counter(), time.process_time())
    if on_trained is not None:
        on_trained(name, handle, result)
    out = {
        "trainable_params": result.train.trainable_params,
        "total_params": result.train.total_params,
        "peak_memory_gb": result.train.peak_memory_gb - other,
        "peak_memory_gb_process": result.train.peak_memory_gb,
        "tokens_per_s": rates["tokens_per_s"],
        "tokens_per_cpu_s": rates["tokens_per_cpu_s"],
        "loop_tokens_per_s": result.train.tokens_per_s,
        "seconds": result.train.seconds,
        "tokens": result.train.tokens,
        "final_train_loss": float(np.mean(result.train.losses[-10:])),
        "initial_val_loss": result.val_losses[0]["val_loss"],
        "final_val_loss": result.val_losses[-1]["val_loss"],
    }
    del handle, result
    gc.collect()
    mx.clear_cache()
    return out


def lora_vs_full(handle_factory: Callable[[], ModelHandle], steps: int, seed: int, *, lora_lr: float = 1e-4,
                 full_lr: float = 1e-5, batch_size: int = 8, n_train: int = 4500, n_val: int = 500,
                 data_seed: int = 1, exclude: Sequence[str] | None = None, lora_first: bool | None = None,
                 on_trained: TrainedHook | None = None) -> dict:
    """Seed 001's comparison: the same data and steps, LoRA (mlx-lm defaults) and full fine-tuning, each measured.

    ``handle_factory()`` must return a fresh model each call. The order alternates with the seed unless
    ``lora_first`` is given; ``on_trained(name, handle, result)`` sees each trained model after its
    measurement. Tokens/s are steady-state figures from the benchmarks' step timer (``bench.timed_rates``).
    Returns both runs' trainable/total parameters, peak memory (GB, own footprint and
    whole process), tokens/s, wall time and losses, and the ratios the claim tests.
    """
    exclude = prompts.seed000_tests().texts() if exclude is None else list(exclude)
    train, val = arithmetic_split(SEED001_DATA, n_train, n_val, data_seed + seed, exclude)
    configs = {"lora": sft_config(steps, lora_lr, seed, lora=True, batch_size=batch_size, name=f"lora-seed{seed}"),
               "full": sft_config(steps, full_lr, seed, lora=False, batch_size=batch_size, name=f"full-seed{seed}")}
    order = ["lora", "full"] if (seed % 2 == 0 if lora_first is None else lora_first) else ["full", "lora"]
    runs = {name: _run_cost(handle_factory, train, val, configs[name], name, on_trained) for name in order}
    lora, full = runs["lora"], runs["full"]
    return {
        "seed": seed, "order": order, "lora": lora, "full": full,
        "lora_trainable_fraction": lora["trainable_params"] / full["total_params"],
        "memory_ratio": full["peak_memory_gb"] / max(lora["peak_memory_gb"], 1e-12),
        "speed_ratio": lora["tokens_per_s"] / max(full["tokens_per_s"], 1e-12),
        "val_loss_rel_diff": lora["final_val_loss"] / full["final_val_loss"] - 1.0,
    }


def measure_h12(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    cache = FixtureCache(ctx.cache_dir)
    runs = []
    for seed in ctx.seeds:
        parts = seed001_lora_parts(ctx.model_id, seed, p["steps"], p["lora_lr"], p["batch_size"], p["n_train"],
                                   p["data_seed"])

        def keep(name: str, handle: ModelHandle, result: SFTResult, parts: dict = parts) -> None:
            if name == "lora":
                cache.get_or_build(parts, lambda tmp: save_adapter(handle.model, tmp, result.adapter_config))

        runs.append(lora_vs_full(ctx.fresh_handle, p["steps"], seed, lora_lr=p["lora_lr"], full_lr=p["full_lr"],
                                 batch_size=p["batch_size"], n_train=p["n_train"], n_val=p["n_val"],
                                 data_seed=p["data_seed"], on_trained=keep))
        ctx.log(f"seed {seed}: memory x{runs[-1]['memory_ratio']:.2f}, speed x{runs[-1]['speed_ratio']:.2f}, "
                f"val loss {runs[-1]['val_loss_rel_diff']:+.2%}")
    alpha, min_n = p["alpha"], p["min_seeds"]
    fraction = runs[0]["lora_trainable_fraction"]
    memory = [r["memory_ratio"] for r in runs]
    speed = [r["speed_ratio"] for r in runs]
    val = [r["val_loss_rel_diff"] for r in runs]
    parts = {
        "trainable_fraction": exact_claim(fraction, p["max_trainable_fraction"], "below",
                                          "LoRA trainable / model parameters", len(runs)),
        "memory": stats.threshold_claim(memory, p["min_memory_ratio"], "above", alpha, min_n=min_n,
                                        name="peak memory full / LoRA"),
        "speed": stats.threshold_claim(speed, p["min_speed_ratio"], "above", alpha, min_n=min_n,
                                       name="tokens/s LoRA / full"),
        "val_loss": equivalence_claim(val, p["val_loss_margin"], alpha, min_n=min_n,
                                      name="final val loss LoRA / full - 1"),
    }
    statistic = combine(parts["memory"], parts)
    samples = [{"seed": r["seed"], "method": m, "order": r["order"].index(m), **r[m]}
               for r in runs for m in ("lora", "full")]
    x = [str(r["seed"]) for r in runs]
    curves = {
        "ratios": {"x": x, "xlabel": "seed", "ylabel": "ratio", "series": {
            "peak memory full / LoRA": memory, "tokens/s LoRA / full": speed,
            "val loss LoRA / full": [1.0 + v for v in val]}},
    }
    ours = (f"LoRA trains {fraction:.2%} of the parameters; peak memory full/LoRA x{np.mean(memory):.2f}; "
            f"tokens/s LoRA/full x{np.mean(speed):.2f}; final val loss LoRA vs full {np.mean(val):+.2%} "
            f"(mean over {len(runs)} seeds, {p['steps']} steps each)")
    extra = {"note": ("full fine-tuning trains every parameter (embeddings included); on a tiny model LoRA's share "
                      "of the parameters and its memory saving are far from a 1B model's"),
             "runs": runs}
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves, extra=extra)


register(Claim(
    id="H12",
    title="LoRA is cheaper than full fine-tuning at equal quality",
    statement="LoRA is cheaper than full fine-tuning at equal quality (same data, 500 iterations each).",
    source="seed 001 (Training Comparison)",
    criterion=("LoRA <= 1% of the parameters trainable; peak memory full/LoRA >= 2; tokens/s LoRA/full >= 1.3; "
               "final val loss within 5% (TOST); paired runs per seed, tested across seeds"),
    writeup="5.6M (0.5%) vs 973M trainable, 3.6 vs 9.8 GB, ~450 vs ~300 tok/s, val loss 1.033 vs 1.033",
    params={"steps": 500, "lora_lr": 1e-4, "full_lr": 1e-5, "batch_size": 8, "n_train": 4500, "n_val": 500,
            "data_seed": 1, "max_trainable_fraction": 0.01, "min_memory_ratio": 2.0, "min_speed_ratio": 1.3,
            "val_loss_margin": 0.05, "alpha": 0.05, "min_seeds": 3},
    measure=measure_h12,
    fast={"steps": 10, "n_train": 160, "n_val": 32},
    training=True,
    default_seeds={"fast": 1, "slow": 3},
))


# ------------------------------------------------------------------------------------------------ H13


def family_targets(handle: ModelHandle, words: Sequence[str]) -> tuple[list[str], list[str]]:
    """The family words this tokenizer can spell, and those it cannot."""
    ok, missing = [], []
    for word in words:
        try:
            target_spellings(handle, word)
            ok.append(word)
        except LazarusError:
            missing.append(word)
    return ok, missing


def family_prob(res, words: Sequence[str]) -> np.ndarray:
    """Per layer: the probability that the next word is one of the family (both spellings).

    Teacher-forced full-word probabilities are summed over distinct token sequences, dropping any
    sequence that extends another one (its probability is already inside the shorter one's).
    """
    forms = {}
    for word in words:
        for spelling in res.targets[word].spellings.values():
            forms.setdefault(tuple(spelling.ids), spelling.full_prob)
    keep = [ids for ids in forms if not any(o != ids and ids[:len(o)] == o for o in forms)]
    return np.sum([forms[ids] for ids in keep], axis=0)


def h13_lens(handle: ModelHandle, params: dict, words: Sequence[str]) -> list[dict]:
    """Lens on the subtraction prompts: remain-family probability and answer first-token probability per block."""
    items = list(prompts.seed000_tests().where(label="subtract"))
    answers = [str(it.answer) for it in items]
    results = logit_lens(handle, [it.text for it in items], [*words, *sorted(set(answers))], layers=blocks(handle),
                         top_k=params["top_k"])
    rows = []
    for item, answer, res in zip(items, answers, results):
        ans = res.targets[answer].spellings["without_space"]
        p_ans = ans.first_prob
        first = next((b for b in blocks(handle) if p_ans[b] >= params["answer_prob"]), None)
        rows.append({"prompt": item.text, "answer": item.answer, "answer_first_token": handle.decode_token(ans.ids[0]),
                     "family_by_layer": family_prob(res, words).tolist(), "answer_prob_by_layer": p_ans.tolist(),
                     "crystallisation_layer": first,
                     "top5": {str(b): [(t, round(q, 5)) for t, _, q in res.top[b][0][:5]] for b in blocks(handle)}})
    return rows


def h13_summary(rows: list[dict], near: Sequence[int], late_from: int) -> tuple[float, float]:
    """Mean over prompts of the family's maximum within the window, and the share of prompts crystallising late."""
    peaks = [max(r["family_by_layer"][b] for b in near) for r in rows]
    late = [r["crystallisation_layer"] is not None and r["crystallisation_layer"] >= late_from for r in rows]
    return float(np.mean(peaks)), float(np.mean(late))


def seed001_lora(ctx: ClaimContext, params: dict, seed: int, out_dir: Path) -> None:
    """Train seed 001's LoRA SFT (the same run as H12's LoRA arm) and write its adapter to ``out_dir``."""
    train, _ = arithmetic_split(SEED001_DATA, params["n_train"], 0, params["data_seed"] + seed,
                                prompts.seed000_tests().texts())
    cfg = sft_config(params["steps"], params["lr"], seed, lora=True, batch_size=params["batch_size"],
                     name=f"seed001-lora-seed{seed}")
    train_sft(ctx.fresh_handle(), train, (), cfg, out_dir=out_dir, progress=False)


def measure_h13(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    base = ctx.handle()
    words, missing = family_targets(base, prompts.remain_family())
    if not words:
        raise LazarusError("the tokenizer cannot spell any word of the remain family")
    near = window(base, p["layer_fraction"], p["layer_window"])
    late_from = base.n_layers - p["last_layers"]
    before = h13_lens(base, p, words)
    cache = FixtureCache(ctx.cache_dir)
    runs = []
    for seed in ctx.seeds:
        parts = seed001_lora_parts(ctx.model_id, seed, p["steps"], p["lr"], p["batch_size"], p["n_train"],
                                   p["data_seed"])
        reused = cache.valid(cache.path(parts))
        adapter = cache.get_or_build(parts, lambda tmp, seed=seed: seed001_lora(ctx, p, seed, tmp))
        handle = load_model(ctx.model_id, adapter_path=str(adapter))
        rows = h13_lens(handle, p, words)
        family, late = h13_summary(rows, near, late_from)
        runs.append({"seed": seed, "rows": rows, "family": family, "late": late, "adapter_reused": reused})
        del handle
    alpha, min_n = p["alpha"], p["min_seeds"]
    family = [r["family"] for r in runs]
    late = [r["late"] for r in runs]
    parts = {
        "remain_near_depth": stats.threshold_claim(
            family, p["min_family_prob"], "above", alpha, min_n=min_n,
            name=f"remain-family prob, max over blocks {near}, mean over prompts"),
        "late_answer": stats.threshold_claim(late, p["min_late_share"], "above", alpha, min_n=min_n,
                                             name=f"share of prompts whose answer first reaches p>={p['answer_prob']} "
                                                  f"as top-1 in blocks >= {late_from}"),
    }
    statistic = combine(parts["remain_near_depth"], parts)
    base_family, base_late = h13_summary(before, near, late_from)
    statistic = replace(statistic, details={**statistic.details, "window": near, "late_from": late_from,
                                            "family_words": words, "missing_words": missing,
                                            "base_model": {"family": base_family, "late": base_late}})
    x = [str(b) for b in blocks(base)]

    def mean_layers(rows_list: list[list[dict]], key: str) -> list[float]:
        return np.mean([r[key] for rows in rows_list for r in rows], axis=0).tolist()

    curves = {
        "remain_family": {"x": x, "ylabel": "P(remain family)", "series": {
            "after SFT": mean_layers([r["rows"] for r in runs], "family_by_layer"),
            "base model": mean_layers([before], "family_by_layer")}},
        "answer_first_token": {"x": x, "ylabel": "P(answer first token)", "series": {
            "after SFT": mean_layers([r["rows"] for r in runs], "answer_prob_by_layer"),
            "base model": mean_layers([before], "answer_prob_by_layer")}},
    }
    samples = [{"seed": r["seed"], "model": "sft", "family_in_window": max(row["family_by_layer"][b] for b in near),
                "late": row["crystallisation_layer"] is not None and row["crystallisation_layer"] >= late_from, **row}
               for r in runs for row in r["rows"]]
    samples += [{"seed": None, "model": "base", "family_in_window": max(row["family_by_layer"][b] for b in near),
                 "late": row["crystallisation_layer"] is not None and row["crystallisation_layer"] >= late_from, **row}
                for row in before]
    ours = (f"remain family at blocks {near}: {np.mean(family):.1%} after SFT (base model {base_family:.1%}); "
            f"answers crystallise (p>={p['answer_prob']}) in the last {p['last_layers']} blocks for "
            f"{np.mean(late):.0%} of subtraction prompts (base model {base_late:.0%})")
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves,
                   extra={"adapter_reused_from_cache": {r["seed"]: r["adapter_reused"] for r in runs}})


register(Claim(
    id="H13",
    title="After SFT, subtraction shows a 'remain' token at ~62% depth; answers crystallise late",
    statement=("After LoRA SFT (500 steps), subtraction prompts show a 'remain' token at ~62% depth, and answers "
               "crystallise only in the last layers."),
    source="seed 001 (Subtraction Classifier at Layer 10; Answer Crystallization)",
    criterion=("remain* family (both spellings, full-word probability) >= 25% at a block within +-1 of int(0.62 L); "
               "the first block where the answer's first token is top-1 at p >= 0.5 is among the last 3 for most "
               "prompts (share > 0.5); across seeds"),
    writeup="'remaining' 53.9% (89 - 34) and 46.3% (65 - 28) at L10 of 16; answers at L13-L15",
    params={"steps": 500, "lr": 1e-4, "batch_size": 8, "n_train": 4500, "data_seed": 1, "top_k": 5,
            "layer_fraction": 0.62, "layer_window": 1, "min_family_prob": 0.25, "answer_prob": 0.5, "last_layers": 3,
            "min_late_share": 0.5, "alpha": 0.05, "min_seeds": 3},
    measure=measure_h13,
    applies=not_instruct,
    fast={"steps": 10, "n_train": 160},
    training=True,
    after=("H12",),
    default_seeds={"fast": 1, "slow": 3},
))


# ------------------------------------------------------------------------------------------------ H14


def two_stage_configs(params: dict, seed: int) -> dict[str, TwoStageConfig]:
    """The writeup's low-LR and aggressive configurations, seeded, at this tier's step counts."""
    def seeded(cfg: TwoStageConfig, s2: int) -> TwoStageConfig:
        cfg = cfg.scaled(params["stage1_steps"], s2)
        return replace(cfg, n_train=params["n_train"], data_seed=cfg.data_seed + seed,
                       stage1=replace(cfg.stage1, train=replace(cfg.stage1.train, seed=seed)),
                       stage2=replace(cfg.stage2, train=replace(cfg.stage2.train, seed=seed)))

    return {"low_lr": seeded(TwoStageConfig(), params["stage2_steps"]),
            "aggressive": seeded(TwoStageConfig.aggressive(), params["aggressive_stage2_steps"])}


def two_stage_branches(ctx: ClaimContext, configs: dict[str, TwoStageConfig]) -> dict[str, TwoStageResult]:
    """``train_two_stage`` with stage 1 run once: the fused stage-1 weights are copied into a fresh model per branch.

    The configurations must share stage 1 and the data (they differ only in stage 2).
    """
    first = next(iter(configs.values()))
    if any(c.stage1 != first.stage1 or (c.n_train, c.data_seed, c.mul_range, c.add_range)
           != (first.n_train, first.data_seed, first.mul_range, first.add_range) for c in configs.values()):
        raise LazarusError("two-stage branches must share stage 1 and its data")
    eval_texts = prompts.two_stage_eval().texts() + prompts.dual_reward_eval().texts()
    examples = arithmetic_examples(first.n_train, first.data_seed, TWO_STAGE_OPS, mul_range=first.mul_range,
                                   add_range=first.add_range, exclude=eval_texts)
    assert_disjoint(examples, eval_texts)
    split = int(0.9 * len(examples))
    handle = ctx.fresh_handle()
    baseline = stage_metrics(handle)
    s1 = train_sft(handle, examples[:split], examples[split:], first.stage1, progress=False)
    fuse_lora(handle.model)
    after1 = stage_metrics(handle)
    fused = tree_flatten(handle.model.parameters())
    check = mx.array([handle.encode(eval_texts[0])])
    reference = handle.model(check)
    del handle
    out = {}
    for name, cfg in configs.items():
        branch = ctx.fresh_handle()
        branch.model.update(tree_unflatten(fused))
        if not mx.allclose(branch.model(check), reference, rtol=1e-4, atol=1e-5).item():
            raise LazarusError(f"two-stage branch '{name}' does not reproduce the fused stage-1 model")
        s2 = train_dual_reward(branch, cfg.stage2, examples=examples[:split], progress=False)
        out[name] = TwoStageResult(baseline=baseline, stage1=after1, stage2=stage_metrics(branch),
                                   stage1_train=s1.to_dict(), stage2_train=s2.to_dict(), config={"name": name})
        del branch
    return out


def measure_h14(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    runs = []
    for seed in ctx.seeds:
        results = two_stage_branches(ctx, two_stage_configs(p, seed))
        runs.append({"seed": seed, "results": results,
                     "drops": {k: accuracy_drop(r) for k, r in results.items()},
                     "semantic_drops": {k: accuracy_drop(r, "semantic") for k, r in results.items()},
                     "classifier": max([r.stage2["classifier_prob"] for r in results.values()]
                                       + [next(iter(results.values())).stage1["classifier_prob"]])})
        ctx.log(f"seed {seed}: drops {runs[-1]['drops']}, classifier {runs[-1]['classifier']:.3%}")
    alpha, min_n = p["alpha"], p["min_seeds"]
    low = [r["drops"]["low_lr"] for r in runs]
    aggressive = [r["drops"]["aggressive"] for r in runs]
    classifier = [r["classifier"] for r in runs]
    parts = {
        "low_lr_keeps": stats.threshold_claim(low, p["max_drop_low_lr"], "below", alpha, min_n=min_n,
                                              name="symbolic accuracy points lost in low-LR stage 2"),
        "aggressive_destroys": stats.threshold_claim(
            aggressive, p["min_drop_aggressive"], "above", alpha, min_n=min_n,
            name="symbolic accuracy points lost in aggressive stage 2"),
        "no_classifier": stats.threshold_claim(classifier, p["max_classifier_prob"], "below", alpha, min_n=min_n,
                                               name="max classifier prob after stage 1 and both stage 2s"),
    }
    statistic = combine(parts["low_lr_keeps"], parts)
    stages = ("baseline", "stage1", "stage2")
    samples = []
    for r in runs:
        for name, res in r["results"].items():
            for stage in stages:
                m = getattr(res, stage)
                samples.append({"seed": r["seed"], "config": name, "stage": stage,
                                "symbolic": m["symbolic"]["accuracy"], "semantic": m["semantic"]["accuracy"],
                                "classifier_prob": m["classifier_prob"], "symbolic_outputs": m["symbolic"]["outputs"]})

    def curve(name: str, key: str) -> list[float]:
        return [float(np.mean([getattr(r["results"][name], s)[key]["accuracy"] for r in runs])) for s in stages]

    curves = {"symbolic_accuracy": {"x": list(stages), "xlabel": "stage", "ylabel": "accuracy", "series": {
        "low-LR stage 2": curve("low_lr", "symbolic"), "aggressive stage 2": curve("aggressive", "symbolic"),
        "low-LR (semantic)": curve("low_lr", "semantic"), "aggressive (semantic)": curve("aggressive", "semantic")}}}
    ours = (f"symbolic accuracy lost in stage 2: low LR {np.mean(low):+.1f} points, "
            f"aggressive {np.mean(aggressive):+.1f} points (mean over {len(runs)} seeds); "
            f"max classifier prob {max(classifier):.3%}")
    extra = {"drops": {r["seed"]: r["drops"] for r in runs},
             "semantic_drops": {r["seed"]: r["semantic_drops"] for r in runs},
             "stage2_final_loss": {r["seed"]: {k: res.stage2_train["train"]["losses"][-1]
                                               for k, res in r["results"].items()} for r in runs}}
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves, extra=extra)


register(Claim(
    id="H14",
    title="Two-stage training: low-LR stage 2 keeps computation, aggressive stage 2 destroys it, no classifier",
    statement=("Two-stage training (SFT, fuse, low-LR dual-reward) keeps computation; the aggressive stage 2 "
               "destroys it; no classifier appears."),
    source="seed 003 (Experiments 1 and 2)",
    criterion=("symbolic accuracy lost from stage 1 to stage 2: <= 10 points (low LR), >= 25 points (aggressive); "
               "classifier prob < 10% after every stage; across seeds (stage 1 shared by both branches of a seed)"),
    writeup="75% -> 75% (low LR), 75% -> 25% (aggressive), classifier 0.1% throughout (TinyLlama)",
    params={"stage1_steps": 500, "stage2_steps": 500, "aggressive_stage2_steps": 200, "n_train": 4500,
            "max_drop_low_lr": 10.0, "min_drop_aggressive": 25.0, "max_classifier_prob": 0.10,
            "alpha": 0.05, "min_seeds": 3},
    measure=measure_h14,
    fast={"stage1_steps": 10, "stage2_steps": 8, "aggressive_stage2_steps": 4, "n_train": 200},
    training=True,
    default_seeds={"fast": 1, "slow": 3},
))

