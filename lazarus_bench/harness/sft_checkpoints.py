"""H11's LoRA SFT runs on seed 000's data, cached with a checkpoint every few steps and keyed by this module's code
(the training), not by the claim's read-out: a change to how H11 reads its checkpoints reuses them."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .. import prompts
from ..cache import FixtureCache
from ..models import model_fingerprint
from ..training.dual_reward import DualRewardConfig, train_dual_reward
from ..training.lora import ADAPTER_WEIGHTS, LoraSpec
from ..training.sft import encoded_batches, train_sft, validation_loss
from .base import ClaimContext
from .common import arithmetic_split, sft_config

SEED000_DATA = {"ops": ("*", "+", "-"), "mul_range": (2, 20), "add_range": (1, 99)}


def sft_checkpoints(ctx: ClaimContext, seed: int) -> Path:
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

    return FixtureCache(ctx.cache_dir, code=__name__).get_or_build(parts, build)
