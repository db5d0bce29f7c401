"""Cached training runs that several claims share: a run is trained once per (model, seed, params) and reused.

H06 reuses H05's dual-reward runs on the base model; H13 analyses the LoRA adapter of H12's LoRA arm."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from .. import prompts
from ..models import model_fingerprint
from ..training.dual_reward import DualRewardConfig, train_dual_reward
from ..training.lora import LoraSpec
from ..training.sft import train_sft
from .base import ClaimContext
from .common import arithmetic_split, sft_config, true_word_curve

DUAL_RUN_KEYS = ("steps", "n_train", "lora_rank", "cls_weight", "layer_fraction", "data_seed")
DUAL_PARAMS = {"steps": 500, "n_train": 2000, "lora_rank": 8, "cls_weight": 0.4, "layer_fraction": 0.55,
               "data_seed": 42, "loss_window": 10, "alpha": 0.05, "min_seeds": 3}
DUAL_FAST = {"steps": 4, "n_train": 64, "loss_window": 1}
SEED001_DATA = {"ops": ("+", "-", "*"), "mul_range": (1, 99), "add_range": (1, 99)}


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
    from ..io import write_json

    parts = {"method": "claims.dual_reward_run", "model": model_fingerprint(model_id), "protocol": ctx.protocol,
             "seed": seed, "params": {k: p[k] for k in DUAL_RUN_KEYS}}
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
