"""Formulas (pure): model dimensions, parameter and FLOP counts, MFU, the memory model, mlx-lm report parsing."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

BYTES = 4


@dataclass(frozen=True)
class Dims:
    """The shape of a llama-style decoder, read from its config.json dict."""

    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


def dims_of(config: dict) -> Dims:
    """Dims of a llama/qwen2-style config (``head_dim`` defaults to hidden / heads)."""
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    return Dims(
        hidden=hidden,
        layers=int(config["num_hidden_layers"]),
        intermediate=int(config["intermediate_size"]),
        vocab=int(config["vocab_size"]),
        heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or hidden // heads),
        tied=bool(config.get("tie_word_embeddings", True)),
    )


def block_matmul_params(d: Dims) -> int:
    """Weights of one block's linears: q, k, v, o and the gated MLP (gate, up, down)."""
    attention = d.hidden * d.q_dim + 2 * d.hidden * d.kv_dim + d.q_dim * d.hidden
    return attention + 3 * d.hidden * d.intermediate


def matmul_params(d: Dims) -> int:
    """Parameters that take part in a matmul per token: every block linear plus the unembedding (V x D)."""
    return d.layers * block_matmul_params(d) + d.vocab * d.hidden


def param_count(d: Dims) -> int:
    """All parameters: matmul weights, the input embedding when untied, and the RMSNorm gains."""
    return matmul_params(d) + (0 if d.tied else d.vocab * d.hidden) + (2 * d.layers + 1) * d.hidden


def lora_param_count(d: Dims, rank: int, num_layers: int | None = None) -> int:
    """LoRA parameters on every linear of the last ``num_layers`` blocks: rank x (in + out) per linear."""
    per_block = (
        rank * (d.hidden + d.q_dim) + 2 * rank * (d.hidden + d.kv_dim) + rank * (d.q_dim + d.hidden)
        + 3 * rank * (d.hidden + d.intermediate)
    )
    return per_block * (d.layers if num_layers is None else min(num_layers, d.layers))


def train_flops_per_token(d: Dims, seq_len: int, lora_params: int | None = None) -> float:
    """Training FLOPs per token (PaLM appendix B): 6 N + 12 L T d_attn for full training.

    N = ``matmul_params`` (the embedding lookup is free; a tied embedding counts once, as the
    unembedding). The attention term counts QK^T and AV over the full T x T square (MLX does not skip
    the masked half). With LoRA the frozen weights need no weight gradient: 4 N + 6 N_lora + 12 L T d_attn.
    """
    attention = 12.0 * d.layers * seq_len * d.q_dim
    n = matmul_params(d)
    if lora_params is None:
        return 6.0 * n + attention
    return 4.0 * n + 6.0 * lora_params + attention


def mfu(tokens_per_s: float, flops_per_token: float, gemm_gflops: float) -> float:
    """Model FLOP utilisation: achieved training FLOP/s over the measured fp32 GEMM rate (a fraction)."""
    if gemm_gflops <= 0:
        return float("nan")
    return tokens_per_s * flops_per_token / (gemm_gflops * 1e9)


@dataclass
class MemoryPrediction:
    """Predicted peak bytes of one fp32 training step, by part."""

    weights: int
    grads: int
    optimizer: int
    activations: int
    logits: int

    @property
    def total(self) -> int:
        return self.weights + self.grads + self.optimizer + self.activations + self.logits

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


LOGIT_COPIES = 6


def activation_floats_per_token_layer(d: Dims, seq_len: int, lora_rank: int = 0) -> int:
    """Floats one block keeps for the backward pass, per token.

    Residual in/out, both RMSNorm outputs and their normalised inputs (6 D), q, k, v before and after
    RoPE (3 d_q + 3 d_kv), the attention probabilities (H x T), the MLP's gate, up, sigmoid(gate),
    act(gate) and product (5 F), and with LoRA the rank-r intermediate of each of the 7 linears.
    """
    return (6 * d.hidden + 3 * d.q_dim + 3 * d.kv_dim + d.heads * seq_len + 5 * d.intermediate
            + 7 * lora_rank)


def predict_memory(d: Dims, batch: int, seq_len: int, *, trainable: int | None = None, lora_rank: int = 0,
                   optimizer_slots: int = 2) -> MemoryPrediction:
    """Peak memory of an fp32 training step: weights + grads + optimizer state + activations + logits.

    weights = 4 (P + P_lora) (``param_count``, plus the adapters with LoRA); grads = 4 P_t and
    optimizer = 4 slots P_t for the trainable parameters P_t (all, or ``trainable``, or with
    ``lora_rank`` the adapters; Adam/AdamW keep 2 slots); activations = 4 B T (L a + 2 D) with
    a = ``activation_floats_per_token_layer``; logits = 4 B T V x 6 (logits, the shifted exponentials,
    softmax, its gradient and the cross-entropy's temporaries, fp32). Checked against MLX 0.32 on CPU
    for hidden 64-512, batch 4-64, T 32-128: measured / predicted within 0.9-1.05.
    """
    total = param_count(d)
    adapters = (trainable or lora_param_count(d, lora_rank)) if lora_rank else 0
    trainable = adapters if lora_rank else (total if trainable is None else trainable)
    tokens = batch * seq_len
    per_layer = activation_floats_per_token_layer(d, seq_len, lora_rank)
    return MemoryPrediction(
        weights=BYTES * (total + adapters),
        grads=BYTES * trainable,
        optimizer=BYTES * optimizer_slots * trainable,
        activations=BYTES * tokens * (d.layers * per_layer + 2 * d.hidden),
        logits=BYTES * tokens * d.vocab * LOGIT_COPIES,
    )


_LEGACY = re.compile(
    r"Iter (?P<iter>\d+): Train loss (?P<loss>[-\d.eE+naif]+),.*?It/sec (?P<its>[\d.eE+-]+), "
    r"Tokens/sec (?P<tps>[\d.eE+-]+)(?:, Trained Tokens (?P<trained>\d+))?(?:, Peak mem (?P<mem>[\d.]+) GB)?"
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TABLE = re.compile(r"^\s*(?P<iter>\d+)\s+(?P<loss>[-\d.]+|nan|inf)\s*[▼▲]?\s+(?P<tps>[\d,]+(?:\.\d+)?)\s+"
                    r"(?P<trained>[\d.]+)k\s*$")


def parse_mlx_lm_report(text: str) -> list[dict]:
    """Training report lines of ``mlx_lm lora``, in either format, as dicts.

    ANSI colour codes are ignored. Legacy (mlx-lm <= 0.2x): ``Iter 10: Train loss 2.345, Learning Rate
    ..., It/sec 1.23, Tokens/sec 456.7, Trained Tokens 4567, Peak mem 0.123 GB``. Table (mlx-lm >= 0.30):
    ``  10    2.345 ▼    1,234    5.6k`` (iteration, loss, tokens/s, trained tokens; no It/sec or peak
    memory: those are None).
    """
    out = []
    for line in _ANSI.sub("", text).splitlines():
        m = _LEGACY.search(line)
        if m:
            out.append({
                "iter": int(m["iter"]), "loss": float(m["loss"]), "it_per_s": float(m["its"]),
                "tokens_per_s": float(m["tps"]),
                "trained_tokens": int(m["trained"]) if m["trained"] else None,
                "peak_mem_gb": float(m["mem"]) if m["mem"] else None,
            })
            continue
        m = _TABLE.match(line)
        if m:
            out.append({
                "iter": int(m["iter"]), "loss": float(m["loss"]), "it_per_s": None,
                "tokens_per_s": float(m["tps"].replace(",", "")),
                "trained_tokens": int(round(float(m["trained"]) * 1000)), "peak_mem_gb": None,
            })
    return out


def window_rates(step_seconds: Sequence[float], step_tokens: Sequence[float], window: int,
                 skip_windows: int = 1) -> list[float]:
    """Tokens/s per window of ``window`` steps (as mlx-lm reports), dropping the first ``skip_windows``."""
    rates = []
    for start in range(0, len(step_seconds) - window + 1, window):
        seconds = sum(step_seconds[start:start + window])
        rates.append(sum(step_tokens[start:start + window]) / max(seconds, 1e-12))
    return rates[skip_windows:]


def window_means(values: Sequence[float], window: int) -> list[float]:
    return [float(np.mean(values[s:s + window])) for s in range(0, len(values) - window + 1, window)]
