"""H12 (cost), CLAIMS.md revision 4: LoRA's three cost criteria on a random-init model of >= 100M parameters of the
zoo's architecture, one analysis whose replicates are repeated timing runs (outside the population rule)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import stats
from ..harness.base import NEGATIVE, ClaimContext, Control, ModelInfo, Outcome
from ..harness.registry import claim
from ..models import ModelHandle
from ..stats import Verdict
from ..stats.verdicts import combine, exact_claim
from ..tiny import build_model
from .h12_lora_vs_full import lora_vs_full

WIDTH_STEP = 128  # widths tried: multiples of the zoo's own width


def llama_params(config: dict) -> int:
    """Parameters of a llama config, counted from its shapes: embeddings (and an untied head), per layer attention
    (q, k, v, o), the gated MLP and two norms, then the final norm."""
    d, m, v, layers = (config[k] for k in ("hidden_size", "intermediate_size", "vocab_size", "num_hidden_layers"))
    head_dim = config.get("head_dim") or d // config["num_attention_heads"]
    q, kv = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
    per_layer = d * q + 2 * d * kv + q * d + 3 * d * m + 2 * d
    heads = 1 if config.get("tie_word_embeddings", True) else 2
    return heads * v * d + layers * per_layer + d


def widened_config(config: dict, min_params: int) -> dict:
    """The architecture at the smallest width (a multiple of 128, never below its own) with >= ``min_params``
    parameters: the MLP at its own ratio to the width, the head size and the key-value share of heads kept."""
    d = config["hidden_size"]
    head_dim = config.get("head_dim") or d // config["num_attention_heads"]
    kv_share = config["num_key_value_heads"] / config["num_attention_heads"]
    width = max(WIDTH_STEP, d - d % WIDTH_STEP)
    while True:
        heads = width // head_dim
        wide = {**config, "hidden_size": width, "intermediate_size": width * config["intermediate_size"] // d,
                "num_attention_heads": heads, "num_key_value_heads": max(1, int(heads * kv_share)),
                "head_dim": head_dim}
        if width >= d and llama_params(wide) >= min_params:
            return wide
        width += WIDTH_STEP


def one_analysis(info: ModelInfo) -> str | None:
    """Base models only, and of the zoo only its own build: the widened model is the same for every build."""
    if info.kind != "base" or info.model_type != "llama":
        return f"H12 (cost) widens a llama base model; this is a {info.kind} {info.model_type} model"
    if info.model_id.startswith(("zoo:", "zoo-micro:")) and "@" in info.model_id:
        return "one analysis per architecture: the zoo's widened random-init model is measured on zoo:base only"
    return None


POPULATION = {"trainable_fraction": None, "memory": None, "speed": None}  # one model: no population test


@claim(
    id="H12c",
    no_graded=("no edit plants a cost advantage: LoRA's memory and speed savings follow from the model's size, which "
               "is this claim's design (the LoRA-against-LoRA control shows the ratios do not pass without one)"),
    title="H12 (cost): LoRA is cheaper than full fine-tuning at >= 100M parameters",
    statement="LoRA trains <= 1% of the parameters and needs 2x less memory at 1.3x the speed of full fine-tuning, "
              "on a random-init model of >= 100M parameters of the zoo's architecture.",
    source="seed 001 (Training Comparison); CLAIMS.md revision 4, 'H12 (cost)'",
    criterion="on the model's architecture widened at random init to the smallest width with >= 100M parameters "
              "(MLP, head size and key-value share kept): LoRA <= 1% of the parameters trainable (exact); peak "
              "memory full/LoRA >= 2 and tokens/s LoRA/full >= 1.3 by the sign test over 5 timing runs of 8 steps "
              "per arm (2 of them warm-up, the arms' order alternating); equal quality is not tested here",
    writeup="5.6M (0.5%) vs 973M trainable, 3.6 vs 9.8 GB, ~450 vs ~300 tok/s (Llama-3.2-1B)",
    params={"steps": 8, "lora_lr": 1e-4, "full_lr": 1e-5, "batch_size": 8, "n_train": 64, "n_val": 8,
            "data_seed": 1, "max_trainable_fraction": 0.01, "min_memory_ratio": 2.0, "min_speed_ratio": 1.3,
            "alpha": 0.05, "min_seeds": 5, "min_params": 100_000_000, "reference": "full"},
    tests={"trainable_fraction": "exact", "memory": "sign", "speed": "sign"},
    fast={"min_params": 200_000, "n_val": 4},
    applies=one_analysis,
    training=True,
    default_seeds={"fast": 1, "slow": 5},
    controls=(Control(name="LoRA against LoRA", kind=NEGATIVE,
                      description="the same timing runs with LoRA in the full fine-tuning arm too: no saving exists, "
                                  "so the memory and speed ratios must not pass",
                      build=lambda ctx: ctx.variant(params={"reference": "lora"}), effect=Verdict.SUPPORTED,
                      sanity=True),),
)
def measure_h12c(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    handle = ctx.handle()
    config = widened_config(dict(handle.config), p["min_params"])
    n_params = llama_params(config)

    def fresh() -> ModelHandle:
        return ModelHandle(model=build_model(config, seed=0, randomise_norms=False), tokenizer=handle.tokenizer,
                           model_id=f"random-init widened({ctx.model_id})", config=config)

    runs = []
    for seed in ctx.seeds:
        runs.append(lora_vs_full(fresh, p["steps"], seed, lora_lr=p["lora_lr"], full_lr=p["full_lr"],
                                 batch_size=p["batch_size"], n_train=p["n_train"], n_val=p["n_val"],
                                 data_seed=p["data_seed"], reference=p["reference"]))
        ctx.log(f"timing run {seed}: memory x{runs[-1]['memory_ratio']:.2f}, speed x{runs[-1]['speed_ratio']:.2f}")
    alpha, min_n = p["alpha"], p["min_seeds"]
    fraction = runs[0]["lora_trainable_fraction"]
    memory, speed = [r["memory_ratio"] for r in runs], [r["speed_ratio"] for r in runs]
    parts = {
        "trainable_fraction": exact_claim(fraction, p["max_trainable_fraction"], "below",
                                          "LoRA trainable / model parameters", len(runs)),
        "memory": stats.threshold_claim(memory, p["min_memory_ratio"], "above", alpha, test=ctx.test("memory"),
                                        min_n=min_n, name="peak memory full / LoRA"),
        "speed": stats.threshold_claim(speed, p["min_speed_ratio"], "above", alpha, test=ctx.test("speed"),
                                       min_n=min_n, name="tokens/s LoRA / full"),
    }
    statistic = combine(parts["memory"], parts)
    shape = {k: config[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                    "num_key_value_heads", "vocab_size")}
    statistic = replace(statistic, details={**statistic.details, "parameters": n_params, "architecture": shape})
    samples = [{"run": r["seed"], "method": m, "order": r["order"].index(m), **r[m]} for r in runs
               for m in ("lora", "full")]
    curves = {"ratios": {"x": [str(r["seed"]) for r in runs], "xlabel": "timing run", "ylabel": "ratio", "series": {
        "peak memory full / LoRA": memory, "tokens/s LoRA / full": speed}}}
    ours = (f"random-init {n_params / 1e6:.1f}M-parameter model (width {config['hidden_size']}, MLP "
            f"{config['intermediate_size']}, {config['num_hidden_layers']} layers): LoRA trains {fraction:.2%}; peak "
            f"memory full/LoRA x{np.median(memory):.2f}; tokens/s LoRA/full x{np.median(speed):.2f} (median of "
            f"{len(runs)} timing runs of {p['steps']} steps per arm)")
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves, extra={"runs": runs})
