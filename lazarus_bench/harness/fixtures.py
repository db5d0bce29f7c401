"""Cached training runs that several claims share: a run is trained once per (model, seed, params) and reused.

H06 reuses H05a's dual-reward runs on the base model; H13 analyses the LoRA adapter of H12's LoRA arm."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from .. import prompts
from ..cache import FixtureCache, default_root
from ..io import write_json
from ..models import load_model, model_fingerprint
from ..stats import Verdict
from ..training.dual_reward import DualRewardConfig, train_dual_reward
from ..training.lora import LoraSpec
from ..training.sft import train_sft
from .base import POSITIVE, ClaimContext, Control, Gate
from .common import arithmetic_split, sft_config, true_word_curve

DUAL_RUN_KEYS = ("steps", "n_train", "lora_rank", "cls_weight", "layer_fraction", "data_seed", "lr_scale")
DUAL_PARAMS = {"steps": 500, "n_train": 2000, "lora_rank": 8, "cls_weight": 0.4, "layer_fraction": 0.55,
               "data_seed": 42, "loss_window": 10, "alpha": 0.05, "min_seeds": 5, "min_cls_loss_fall": 0.5,
               "lr_scale": 1.0}
DUAL_SEEDS = {"fast": 1, "slow": 5}  # the seed is the unit: 5 seeds reach the exact one-sided floor p = 1/32
DUAL_FAST = {"steps": 4, "n_train": 64, "loss_window": 1}
SEED001_CODE = "lazarus_bench.claims.h12_lora_vs_full"  # its closure holds both builders: H12's arm, seed001_lora
SEED001_DATA = {"ops": ("+", "-", "*"), "mul_range": (1, 99), "add_range": (1, 99)}


def dual_config(protocol: str, seed: int, p: dict) -> DualRewardConfig:
    """The protocol's dual-reward config with the claim's steps, rank, weight and layer; data seed + ``seed``."""
    cfg = DualRewardConfig.for_protocol(protocol, cls_weight=p["cls_weight"], layer_fraction=p["layer_fraction"],
                                        n_train=p["n_train"], data_seed=p["data_seed"] + seed)
    return replace(cfg, lora=replace(cfg.lora, rank=p["lora_rank"]),
                   train=replace(cfg.train, steps=p["steps"], seed=seed, log_every=max(1, p["steps"] // 5),
                                 lr=cfg.train.lr * p["lr_scale"]))


def train_dual_run(handle, protocol: str, seed: int, p: dict, adapter_dir: Path | None = None) -> dict:
    """One dual-reward run in place on ``handle``: before/after evaluation, per-step losses, lens curves (JSON-able);
    the trained adapter is written to ``adapter_dir`` when given."""
    evalset = prompts.dual_reward_eval()
    layers, lens_before = true_word_curve(handle, evalset)
    start = time.perf_counter()
    result = train_dual_reward(handle, dual_config(protocol, seed, p), out_dir=adapter_dir, progress=False)
    seconds = time.perf_counter() - start
    _, lens_after = true_word_curve(handle, evalset)
    return {
        "seed": seed, "model": handle.model_id, "protocol": protocol, "before": result.before, "after": result.after,
        "cls_loss": [m["cls_loss"] for m in result.train.metrics],
        "answer_loss": [m["answer_loss"] for m in result.train.metrics],
        "lens_layers": layers, "lens_true_before": lens_before, "lens_true_after": lens_after,
        "train_seconds": seconds, "trainable_params": result.train.trainable_params,
        "param_change_relative": result.train.param_change_relative,
    }


def dual_entry(ctx: ClaimContext, seed: int, *, model_id: str | None = None, protocol: str | None = None,
               params: dict | None = None) -> Path:
    """The cache entry of one dual-reward run (``run.json`` and the trained ``adapter/``), trained on a fresh copy
    of the model if missing. Keyed by content, so H06's base-model runs and the H01/H04 positive controls reuse
    H05a's runs. Without a cache_dir the default fixture cache is used."""
    model_id, protocol, p = model_id or ctx.model_id, protocol or ctx.protocol, params or ctx.params

    def build(d: Path) -> None:
        ctx.log(f"dual-reward ({protocol}) on {model_id}, seed {seed}, {p['steps']} steps")
        write_json(d / "run.json", train_dual_run(ctx.fresh_handle(model_id), protocol, seed, p, d / "adapter"))

    parts = {"method": "claims.dual_reward_run", "model": model_fingerprint(model_id), "protocol": protocol,
             "seed": seed, "params": {k: p[k] for k in DUAL_RUN_KEYS}}
    return FixtureCache(ctx.cache_dir or default_root(), code=__name__).get_or_build(parts, build)


def dual_run(ctx: ClaimContext, seed: int, model_id: str | None = None) -> dict:
    """One dual-reward run's results (see ``dual_entry``), named by the model id asked for: the cache is keyed by
    content, so the run may have been built from the same weights under another path."""
    run = json.loads((dual_entry(ctx, seed, model_id=model_id) / "run.json").read_text())
    return {**run, "model": model_id or ctx.model_id}


def dual_model(ctx: ClaimContext, seed: int = 0):
    """This model after H05a's corrected dual-reward run (``seed``), adapter loaded: its lens at 55% depth names the
    operation, so it is the positive control of the claims that say it does not (H01, H04)."""
    from .registry import get_claim

    entry = dual_entry(ctx, seed, protocol="corrected", params=get_claim("H05a").parameters(ctx.tier))
    return load_model(ctx.model_id, adapter_path=str(entry / "adapter"))


def dual_sample(run: dict, window: int, first_log_step: int = 100) -> dict:
    """One seed's row: correct counts, restricted and full-vocab op-word probs, answer accuracy, losses (the
    classification loss also at ``first_log_step``, the writeup's first logged step, or the last step if sooner)."""
    c0, c1 = run["before"]["classifier"], run["after"]["classifier"]
    a0, a1 = run["before"]["answers"]["accuracy"], run["after"]["answers"]["accuracy"]
    tail = max(1, min(window, len(run["cls_loss"])))
    logged = min(first_log_step, len(run["cls_loss"]))
    return {
        "seed": run["seed"], "model": run["model"], "layer": c1["layer"], "n_prompts": c1["n"],
        "correct_before": c0["correct"], "correct_after": c1["correct"],
        "restricted_prob_before": c0["mean_restricted_prob"], "restricted_prob_after": c1["mean_restricted_prob"],
        "vocab_prob_before": c0["mean_vocab_prob"], "vocab_prob_after": c1["mean_vocab_prob"],
        "answer_accuracy_before": a0, "answer_accuracy_after": a1, "answer_accuracy_change": a1 - a0,
        "answer_correct_before": run["before"]["answers"]["correct"],
        "answer_correct_after": run["after"]["answers"]["correct"],
        "initial_cls_loss": run["cls_loss"][0], "final_cls_loss": float(np.mean(run["cls_loss"][-tail:])),
        "first_logged_step": logged, "first_logged_cls_loss": run["cls_loss"][logged - 1],
        "initial_answer_loss": run["answer_loss"][0], "final_answer_loss": float(np.mean(run["answer_loss"][-tail:])),
        "predicted_after": c1["predicted"], "labels": c1["labels"],
        "restricted_prob_after_per_prompt": c1["restricted_prob"], "vocab_prob_after_per_prompt": c1["vocab_prob"],
        "train_seconds": run["train_seconds"], "trainable_params": run["trainable_params"],
        "param_change_relative": run["param_change_relative"],
    }


def seed001_lora_parts(model_id: str, seed: int, steps: int, lr: float, batch_size: int, n_train: int,
                       data_seed: int) -> dict:
    """Cache key of seed 001's LoRA SFT adapter: H12's LoRA arm trains it, H13 analyses it (as seed 001 did)."""
    return {"fixture": "seed001-lora-sft", "model": model_fingerprint(model_id),
            "seed": seed, "steps": steps, "lr": lr, "batch_size": batch_size, "n_train": n_train,
            "data_seed": data_seed, "exclude": "seed000_tests", "lora": asdict(LoraSpec())}


def seed001_lora(ctx: ClaimContext, params: dict, seed: int, out_dir: Path) -> None:
    """Train seed 001's LoRA SFT (the same run as H12's LoRA arm) and write its adapter to ``out_dir``."""
    train, _ = arithmetic_split(SEED001_DATA, params["n_train"], 0, params["data_seed"] + seed,
                                prompts.seed000_tests().texts())
    cfg = sft_config(params["steps"], params["lr"], seed, lora=True, batch_size=params["batch_size"],
                     name=f"seed001-lora-seed{seed}")
    train_sft(ctx.fresh_handle(), train, (), cfg, out_dir=out_dir, progress=False)


DUAL_GATES = (
    Gate(name="cls loss fell",
         description="manipulation floor: relative fall of the classification loss from the first step to the last "
                     "window, smallest over the runs (writeup: 10.3 -> 1.07, a 90% fall); a run at learning rate 0 "
                     "falls 0%, so a run that did not learn the classifier is NOT TESTABLE, never REFUTED",
         value=None, threshold_param="min_cls_loss_fall"),
)


def dual_fitness(samples: list[dict]) -> dict[str, float]:
    """The dual-reward manipulation floor over runs (``dual_sample`` rows)."""
    return {"cls loss fell": min(1.0 - s["final_cls_loss"] / s["initial_cls_loss"] for s in samples)}


def dual_trained_control(effect: Verdict) -> Control:
    """The positive control of the claims that say the lens or a probe does not name the operation (H01, H04)."""
    return Control(name="dual-reward-trained model", kind=POSITIVE,
                   description="this model after H05a's corrected dual-reward run (seed 0, cached): its lens at 55% "
                               "depth names the operation",
                   build=lambda ctx: ctx.variant(handle=dual_model(ctx)), effect=effect)
