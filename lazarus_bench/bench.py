"""Performance measurements (training throughput, lens, probes, BLAS, mlx-lm, MFU, memory) and the BENCH.md writer.

Every measurement returns plain numbers, so tests, claims (H12: LoRA vs full fine-tuning cost) and
``run_bench`` share one implementation. Timings on a shared CPU are noisy: ratios are measured side by
side in one run (interleaved where cheap), and steady-state rates use medians over steps or windows.
``python -m lazarus_bench.bench worker ...`` is the subprocess entry point used for BLAS and mlx-lm runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import lazarus_bench  # noqa: F401  (BLAS preload before mlx.core)
import mlx.core as mx

from . import blas
from .training.lora import LoraSpec

BYTES = 4
JSON_TAG = "BENCH_JSON "
WARMUP_STEPS = 2


# ---------------------------------------------------------------------------------------------
# Formulas (pure)
# ---------------------------------------------------------------------------------------------

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


def median(values: Sequence[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(statistics.median(values)) if values else float("nan")


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


# ---------------------------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------------------------

def max_rss_bytes() -> int:
    """Peak resident set size of this process in bytes (VmHWM on Linux, else ``ru_maxrss``)."""
    peak = _proc_peak_rss("self")
    if peak:
        return peak
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * (1 if sys.platform == "darwin" else 1024)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def gemm_rate(n: int = 1024, repeats: int = 5) -> float:
    """fp32 GEMM GFLOP/s of MLX here (median of ``repeats``), the denominator of MFU."""
    return blas.gemm_gflops(n, repeats)


def shape_gemm_rate(m: int, k: int, n: int, repeats: int = 5) -> float:
    """fp32 GFLOP/s of an (m x k) @ (k x n) matmul here: the ceiling at a model's shapes.

    Each of the ``repeats`` (median) times enough back-to-back products to match one 1024^3 GEMM.
    """
    a = mx.random.normal((m, k), key=mx.random.key(0))
    b = mx.random.normal((k, n), key=mx.random.key(1))
    mx.eval(a @ b)
    inner = max(1, math.ceil(2 * 1024**3 / (2 * m * k * n)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            mx.eval(a @ b)
        times.append((time.perf_counter() - start) / inner)
    return 2 * m * k * n / median(times) / 1e9


def bracket_gemm(fn: Callable[[], "TrainMeasurement"], n: int = 1024) -> "TrainMeasurement":
    """Run a training measurement between two GEMM measurements; MFU uses the faster (conservative).

    Also records the GEMM rate at the model's own largest per-layer shape, (B T x D) @ (D x F), which
    bounds what its matmuls can reach (``gemm_model_shape_gflops``).
    """
    before = gemm_rate(n)
    m = fn()
    after = gemm_rate(n)
    m.gemm_gflops = max(before, after)
    hidden, inter = (int(x) for x in m.extra.get("shape", (0, 0)))
    shape = shape_gemm_rate(m.batch * m.seq_len, hidden, inter) if hidden else None
    m.extra.update(gemm_before=before, gemm_after=after, gemm_model_shape_gflops=shape)
    return m


def machine_info(measure_gemm: bool = True) -> dict:
    """CPU, cores, load, MLX/mlx-lm versions, device, active BLAS and the measured GEMM rate."""
    from .runinfo import environment

    env = environment()
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "mlx_version": mx.__version__,
        "mlx_lm_version": env["packages"].get("mlx-lm"),
        "device": env["device"],
        "blas": env["blas"]["status"],
        "blas_library": env["blas"]["library"],
        "python": env["python"],
        "platform": env["platform"],
        "git_commit": env["git_commit"],
    }
    if measure_gemm:
        info["gemm_gflops"] = round(gemm_rate(), 1)
    return info


def machine_line(info: dict) -> str:
    gemm = f", fp32 GEMM 1024^3 {info['gemm_gflops']:.0f} GFLOP/s" if info.get("gemm_gflops") else ""
    load = f", load avg {'/'.join(str(x) for x in info['load_avg'])}" if info.get("load_avg") else ""
    return (f"{info['cpu']}, {info['usable_cores']}/{info['cores']} cores{load}; MLX {info['mlx_version']} "
            f"({info['device']}), mlx-lm {info['mlx_lm_version']}; BLAS {info['blas']}: {info['blas_library']}{gemm}")


# ---------------------------------------------------------------------------------------------
# Bench models and data
# ---------------------------------------------------------------------------------------------

def arithmetic_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` short arithmetic statements ("7 * 8 = 56"), the SFT data's shape."""
    from .training.data import arithmetic_examples

    return [e.prompt + e.response for e in arithmetic_examples(n, seed)]


def bench_corpus() -> list[str]:
    """Text for the bench tokenizer: arithmetic, operation words and the prompt sets' templates."""
    from . import prompts

    words = " ".join(prompts.operation_words()) + " times plus minus product sum difference calculate what is"
    lines = arithmetic_texts(3000, seed=1)
    lines += [f"Calculate: {a} + {b} = {a + b}" for a in range(10, 99, 7) for b in range(10, 99, 11)]
    lines += [f"What is {a} times {b}? {a * b}" for a in range(1, 13) for b in range(1, 13)]
    lines += prompts.word_set().texts() + prompts.dual_reward_eval().texts()
    lines += [words] * 50
    return lines


def bench_tokenizer(out_dir: str | os.PathLike, vocab_size: int = 1024) -> Path:
    """A byte-level BPE (digits split one per token) trained on ``bench_corpus``."""
    from .hf_tokenizer import train_bpe

    return train_bpe(bench_corpus(), vocab_size=vocab_size, out_dir=out_dir)


def tokenizer_vocab(tokenizer_dir: str | os.PathLike) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json")).get_vocab_size()


def llama_config(hidden: int, layers: int, vocab: int, *, intermediate: int | None = None, heads: int = 4,
                 kv_heads: int = 2, tied: bool = True) -> dict:
    """A zoo-like llama config (the zoo's ``base``: tied, GQA 4/2, intermediate 3 x hidden)."""
    from .tiny import tiny_config

    return tiny_config("llama", hidden_size=hidden, num_hidden_layers=layers,
                       intermediate_size=intermediate or 3 * hidden, num_attention_heads=heads,
                       num_key_value_heads=kv_heads, vocab_size=vocab, head_dim=hidden // heads,
                       rope_theta=10000.0, max_position_embeddings=512, tie_word_embeddings=tied)


def save_bench_model(out_dir: str | os.PathLike, config: dict, tokenizer_dir: str | os.PathLike,
                     seed: int = 0) -> Path:
    """Build a random-init llama from ``config`` and save it (fp32, HF layout, with the tokenizer)."""
    from .models import save_model
    from .tiny import build_model

    return save_model(build_model(config, seed=seed), config, out_dir, tokenizer_dir=str(tokenizer_dir))


def fixed_length_texts(n: int, chars: int, seed: int = 0) -> list[str]:
    """``n`` texts of exactly ``chars`` characters alternating digits and single symbols ("7*8=56;3+4=7;").

    The bench tokenizer splits digits one per token and never merges a lone symbol between digits, so
    each text is exactly ``chars`` tokens: rows of identical length, with no padding in either trainer.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        parts, length = [], 0
        while length < chars + 1:
            a, b = (int(x) for x in rng.integers(1, 13, 2))
            op = "*+"[int(rng.integers(0, 2))]
            fact = f"{a}{op}{b}={a * b if op == '*' else a + b};"
            parts.append(fact)
            length += len(fact)
        out.append("".join(parts)[:chars])
    return out


def load_handle(model_dir: str | os.PathLike):
    from .models import load_model

    return load_model(str(model_dir))


# ---------------------------------------------------------------------------------------------
# Training measurements
# ---------------------------------------------------------------------------------------------

class StepTimer:
    """Wraps a train loop's ``batch_at`` and records when each batch is requested and handed over.

    The loop asks for batch k+1 right after step k is evaluated, so step k's compute time is
    ``enter[k+1] - exit[k]`` (batch building excluded, as mlx-lm times it) and its wall time
    ``enter[k+1] - enter[k]``; the same on the process CPU clock (every thread) gives CPU seconds.
    Batches are SFT-style tuples: inputs first, ``valid`` fourth.
    """

    def __init__(self, batch_at: Callable):
        self.batch_at = batch_at
        self.enter: list[float] = []
        self.exit: list[float] = []
        self.cpu_enter: list[float] = []
        self.cpu_exit: list[float] = []
        self.tokens: list[int] = []
        self.computed: list[int] = []
        self.shape: tuple[int, int] = (0, 0)

    def __call__(self, step: int, rank: int = 0, world: int = 1):
        self.enter.append(time.perf_counter())
        self.cpu_enter.append(time.process_time())
        batch = self.batch_at(step, rank, world)
        self.shape = tuple(int(n) for n in batch[0].shape)
        self.tokens.append(int(batch[3].sum().item()))
        self.computed.append(int(batch[0].size))
        self.cpu_exit.append(time.process_time())
        self.exit.append(time.perf_counter())
        return batch

    def step_seconds(self, end: float) -> list[float]:
        return [e - x for x, e in zip(self.exit, self.enter[1:] + [end])]

    def step_cpu_seconds(self, cpu_end: float) -> list[float]:
        return [e - x for x, e in zip(self.cpu_exit, self.cpu_enter[1:] + [cpu_end])]

    def wall_seconds(self, end: float) -> list[float]:
        return [e - s for s, e in zip(self.enter, self.enter[1:] + [end])]


def steady_slice(n_steps: int) -> slice:
    """The steps that count: all but the first ``WARMUP_STEPS`` (compilation, allocator growth)."""
    return slice(min(WARMUP_STEPS, max(n_steps - 1, 0)), None)


def steady_tokens_per_s(step_tokens: Sequence[float], step_seconds: Sequence[float]) -> float:
    """Mean tokens of a steady step over the median steady step time: the tokens/s every table reports."""
    steady = steady_slice(len(step_seconds))
    return float(np.mean(step_tokens[steady])) / median(step_seconds[steady])


def timed_rates(timer: StepTimer, end: float, cpu_end: float) -> dict:
    """Steady-state tokens/s of a finished run timed by ``timer`` (wall and per CPU-second)."""
    return {"tokens_per_s": steady_tokens_per_s(timer.tokens, timer.step_seconds(end)),
            "tokens_per_cpu_s": steady_tokens_per_s(timer.tokens, timer.step_cpu_seconds(cpu_end)),
            "timed_steps": len(timer.tokens)}


@dataclass
class TrainMeasurement:
    """One training configuration: steady-state speed (the first ``WARMUP_STEPS`` excluded), memory, cost.

    ``step_tokens`` are real tokens (what the loop reports as tokens/s); ``step_computed`` are the
    positions computed (rows x padded width), which is what FLOPs and MFU count.
    """

    name: str
    model: str
    batch: int
    seq_len: int
    total_params: int
    trainable_params: int
    step_seconds: list[float]
    step_tokens: list[int]
    step_computed: list[int]
    losses: list[float]
    first_step_s: float
    peak_memory_gb: float
    max_rss_gb: float
    step_cpu_seconds: list[float] = field(default_factory=list)
    flops_per_token: float | None = None
    gemm_gflops: float | None = None
    predicted_memory_gb: float | None = None
    runner: str = "train_loop"
    extra: dict = field(default_factory=dict)

    @property
    def steady(self) -> slice:
        return steady_slice(len(self.step_seconds))

    @property
    def median_step_s(self) -> float:
        return median(self.step_seconds[self.steady])

    @property
    def tokens_per_s(self) -> float:
        return steady_tokens_per_s(self.step_tokens, self.step_seconds)

    @property
    def computed_tokens_per_s(self) -> float:
        return float(np.mean(self.step_computed[self.steady])) / self.median_step_s

    @property
    def tokens_per_cpu_s(self) -> float | None:
        """Real tokens per CPU-second of this process (all threads): far less sensitive to other jobs' load."""
        if not self.step_cpu_seconds:
            return None
        return steady_tokens_per_s(self.step_tokens, self.step_cpu_seconds)

    @property
    def cores_busy(self) -> float | None:
        """Median CPU seconds per median wall second of a step (all threads, OpenBLAS spinning included)."""
        if not self.step_cpu_seconds:
            return None
        return median(self.step_cpu_seconds[self.steady]) / self.median_step_s

    @property
    def achieved_gflops(self) -> float | None:
        return self.computed_tokens_per_s * self.flops_per_token / 1e9 if self.flops_per_token else None

    @property
    def mfu(self) -> float | None:
        if not self.flops_per_token or not self.gemm_gflops:
            return None
        return mfu(self.computed_tokens_per_s, self.flops_per_token, self.gemm_gflops)

    def summary(self) -> dict:
        """The numbers that go into tables, JSON and pytest-benchmark's ``extra_info``."""
        return {
            "name": self.name, "model": self.model, "runner": self.runner, "batch": self.batch,
            "seq_len": self.seq_len, "steps": len(self.step_seconds), "total_params": self.total_params,
            "trainable_params": self.trainable_params, "tokens_per_s": self.tokens_per_s,
            "tokens_per_cpu_s": self.tokens_per_cpu_s, "cores_busy": self.cores_busy,
            "computed_tokens_per_s": self.computed_tokens_per_s,
            "median_step_s": self.median_step_s,
            "first_step_s": self.first_step_s, "peak_memory_gb": self.peak_memory_gb, "max_rss_gb": self.max_rss_gb,
            "predicted_memory_gb": self.predicted_memory_gb,
            "memory_ratio": self.peak_memory_gb / self.predicted_memory_gb if self.predicted_memory_gb else None,
            "flops_per_token": self.flops_per_token, "achieved_gflops": self.achieved_gflops,
            "gemm_gflops": self.gemm_gflops, "mfu": self.mfu,
            "final_loss": self.losses[-1] if self.losses else None, **self.extra,
        }

    def to_dict(self) -> dict:
        return {**asdict(self), "summary": self.summary()}


def describe_dims(d: Dims) -> str:
    return f"h{d.hidden} x {d.layers}L (V {d.vocab})"


def measure_train_loop(name: str, handle, loss_fn: Callable, batch_at: Callable, cfg, *,
                       lora_rank: int | None = None, gemm_gflops: float | None = None,
                       extra: dict | None = None) -> TrainMeasurement:
    """Run the project's ``train_loop`` with a step timer; MLX peak memory is reset first.

    With ``lora_rank`` the FLOPs count the frozen weights at 4 N and the trainable (LoRA) ones at 6 N.
    """
    from .training.loop import train_loop

    timer = StepTimer(batch_at)
    mx.reset_peak_memory()
    start = time.perf_counter()
    result = train_loop(handle.model, loss_fn, timer, cfg, progress=False)
    end, cpu_end = time.perf_counter(), time.process_time()
    peak = mx.get_peak_memory() / 1e9
    seconds = timer.step_seconds(end)
    wall = timer.wall_seconds(end)
    d = dims_of(handle.config)
    rows, width = timer.shape
    lora = result.trainable_params if lora_rank is not None else None
    steady = slice(WARMUP_STEPS, None) if len(wall) > WARMUP_STEPS else slice(None)
    return TrainMeasurement(
        name=name, model=describe_dims(d), batch=rows, seq_len=width, total_params=result.total_params,
        trainable_params=result.trainable_params, step_seconds=seconds, step_tokens=timer.tokens,
        step_computed=timer.computed, losses=result.losses, first_step_s=timer.exit[0] - start + seconds[0],
        peak_memory_gb=peak, max_rss_gb=max_rss_bytes() / 1e9, step_cpu_seconds=timer.step_cpu_seconds(cpu_end),
        flops_per_token=train_flops_per_token(d, width, lora), gemm_gflops=gemm_gflops,
        predicted_memory_gb=predict_memory(d, rows, width, trainable=lora, lora_rank=lora_rank or 0).total / 1e9,
        extra={"wall_tokens_per_s": float(np.mean(timer.tokens[steady])) / median(wall[steady]),
               "shape": (d.hidden, d.intermediate), **(extra or {})},
    )


def train_config(steps: int, lr: float = 1e-4, optimizer: str = "adam", grad_clip: float | None = None,
                 name: str = "bench"):
    """The loop's TrainConfig for a benchmark run (compiled, no logging)."""
    from .training.loop import TrainConfig

    return TrainConfig(steps=steps, lr=lr, optimizer=optimizer, grad_clip=grad_clip, log_every=10**9, name=name)


def measure_sft(handle, examples: Sequence, *, lora: LoraSpec | None = LoraSpec(), batch_size: int = 8,
                steps: int = 8, lr: float = 1e-4, gemm_gflops: float | None = None,
                name: str | None = None) -> TrainMeasurement:
    """SFT step throughput (LoRA by default, ``lora=None`` for full fine-tuning) on prompt/response examples.

    The same path as ``train_sft`` (``prepare``, ``encoded_batches``, ``sft_loss``, ``train_loop``)
    without validation or saving.
    """
    from .training.sft import SFTConfig, encoded_batches, prepare, sft_loss

    cfg = SFTConfig(train=train_config(steps, lr, name=name or "sft"), batch_size=batch_size, lora=lora)
    prepare(handle, cfg)
    batches = encoded_batches(handle, examples, batch_size, cfg.train.seed, cfg.add_bos, cfg.add_eos)
    return measure_train_loop(name or ("sft-lora" if lora else "sft-full"), handle, sft_loss, batches, cfg.train,
                              lora_rank=lora.rank if lora else None, gemm_gflops=gemm_gflops)


def measure_dual_reward(handle, *, batch_size: int = 8, steps: int = 8, n_train: int = 256,
                        gemm_gflops: float | None = None) -> TrainMeasurement:
    """Dual-reward step throughput (corrected protocol: LoRA on v/o, lens CE at 0.55 L + answer CE)."""
    from dataclasses import replace

    from . import prompts
    from .training.dual_reward import DualRewardConfig, class_token_ids, make_loss, training_examples
    from .training.lora import apply_lora
    from .training.sft import encoded_batches

    base = DualRewardConfig()
    cfg = replace(base, batch_size=batch_size, n_train=n_train,
                  train=replace(base.train, steps=steps, log_every=10**9))
    label_ids = class_token_ids(handle, prompts.operation_words())
    apply_lora(handle.model, cfg.lora, handle.n_layers, seed=cfg.train.seed)
    batches = encoded_batches(handle, training_examples(cfg), batch_size, cfg.train.seed, add_bos=True,
                              add_eos=False, label_ids=label_ids)
    return measure_train_loop("dual-reward", handle, make_loss(handle, cfg), batches, cfg.train,
                              lora_rank=cfg.lora.rank, gemm_gflops=gemm_gflops)


def measure_grpo(handle, *, steps: int = 3, prompts_per_step: int = 4, group_size: int = 4,
                 max_new_tokens: int = 8) -> dict:
    """GRPO throughput: sampling (generation tokens/s, KV cache) and the update (train tokens/s), full weights."""
    from .training.grpo import GRPOConfig, train_grpo
    from .training.loop import TrainConfig

    cfg = GRPOConfig(
        train=TrainConfig(steps=steps, lr=1e-5, optimizer="adamw", grad_clip=1.0, compile=False, log_every=10**9,
                          name="grpo"),
        prompts_per_step=prompts_per_step, group_size=group_size, max_new_tokens=max_new_tokens,
    )
    mx.reset_peak_memory()
    start = time.perf_counter()
    result = train_grpo(handle, cfg, progress=False)
    seconds = time.perf_counter() - start
    per_step = [m.get("gen_tokens_per_s", float("nan")) for m in result.train.metrics]
    return {
        "name": "grpo", "model": describe_dims(dims_of(handle.config)), "steps": result.train.steps_done,
        "rollouts_per_step": prompts_per_step * group_size, "max_new_tokens": max_new_tokens,
        "gen_tokens": result.gen_tokens, "gen_tokens_per_s": result.gen_tokens_per_s,
        "gen_tokens_per_s_median_step": median(per_step[1:] or per_step),
        "train_tokens_per_s": result.train_tokens_per_s, "tokens_per_s": result.train.tokens_per_s,
        "seconds": seconds, "gen_fraction": result.gen_seconds / max(result.train.seconds, 1e-9),
        "total_params": result.train.total_params, "trainable_params": result.train.trainable_params,
        "peak_memory_gb": mx.get_peak_memory() / 1e9, "max_rss_gb": max_rss_bytes() / 1e9,
    }


def random_rows(n_rows: int, seq_len: int, vocab: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, (n_rows, seq_len + 1), dtype=np.int32)


def measure_pretrain(config: dict, *, batch: int, seq_len: int, steps: int, seed: int = 0,
                     gemm_gflops: float | None = None, name: str = "zoo-pretrain") -> TrainMeasurement:
    """The zoo pretraining step (``zoo.pretrain.train``: AdamW, clipping, compiled) on random packed rows.

    The model is built at random init from ``config``; throughput does not depend on the weights.
    """
    from .zoo import pretrain as P

    mx.random.seed(seed)
    model = P.build_model(config)
    mx.eval(model.parameters())
    d = dims_of(config)
    rows = random_rows(max(2 * batch, 8), seq_len, d.vocab, seed)
    data = P.PackedData(rows, np.ones((rows.shape[0], seq_len), dtype=np.float32))
    cfg = P.TrainConfig(steps=steps, batch_size=batch, seq_len=seq_len, warmup=1, log_every=10**9, name=name)
    stamps: list[tuple[float, float]] = []
    mx.reset_peak_memory()
    start = (time.perf_counter(), time.process_time())
    result = P.train(model, data, cfg, progress=False,
                     on_step=lambda _s, _l: stamps.append((time.perf_counter(), time.process_time())))
    peak = mx.get_peak_memory() / 1e9
    seconds = [b[0] - a[0] for a, b in zip([start] + stamps[:-1], stamps)]
    cpu = [b[1] - a[1] for a, b in zip([start] + stamps[:-1], stamps)]
    total = P.count_params(model)
    return TrainMeasurement(
        name=name, model=describe_dims(d), batch=batch, seq_len=seq_len, total_params=total, trainable_params=total,
        step_seconds=seconds, step_tokens=[batch * seq_len] * len(seconds),
        step_computed=[batch * seq_len] * len(seconds), losses=list(result.losses), first_step_s=seconds[0],
        peak_memory_gb=peak, max_rss_gb=max_rss_bytes() / 1e9, step_cpu_seconds=cpu,
        flops_per_token=train_flops_per_token(d, seq_len),
        gemm_gflops=gemm_gflops, predicted_memory_gb=predict_memory(d, batch, seq_len).total / 1e9,
        runner="zoo.pretrain.train", extra={"shape": (d.hidden, d.intermediate)},
    )


# ---------------------------------------------------------------------------------------------
# Logit lens and probes
# ---------------------------------------------------------------------------------------------

def _lens_stats(log_probs: mx.array, top_k: int) -> tuple[mx.array, mx.array, mx.array]:
    """Entropy, top-k ids and top-k log-probs of lens log-probabilities (rows x vocab)."""
    entropy = -mx.sum(mx.exp(log_probs) * log_probs, axis=-1)
    idx = mx.argsort(-log_probs, axis=-1)[..., :top_k]
    return entropy, idx, mx.take_along_axis(log_probs, idx, axis=-1)


def _log_softmax(logits: mx.array) -> mx.array:
    logits = logits.astype(mx.float32)
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def lens_one_pass(handle, tokens: mx.array, top_k: int = 5) -> list[tuple[mx.array, ...]]:
    """Lens statistics at the last position for the embedding and every block, from one captured forward."""
    capture = handle.forward(tokens)
    out = [_lens_stats(_log_softmax(handle.lens_logits(h[:, -1])), top_k) for h in capture.hidden]
    mx.eval(out)
    return out


def lens_per_layer(handle, tokens: mx.array, top_k: int = 5) -> list[tuple[mx.array, ...]]:
    """Baseline: for each depth, the model's own forward truncated to that many blocks (its logits are the lens).

    The layer list is cut in place and restored; depth 0 passes a one-entry cache so llama's mask
    code has a cache slot to look at. Each truncated forward computes logits at every position.
    """
    layers = handle.layers
    full = list(layers)
    out = []
    try:
        for depth in range(len(full) + 1):
            layers[:] = full[:depth]
            logits = handle.model(tokens, cache=None if depth else [None])
            out.append(_lens_stats(_log_softmax(logits[:, -1]), top_k))
            mx.eval(out[-1])
    finally:
        layers[:] = full
    return out


def lens_tokens(handle, n_prompts: int, seq_len: int, seed: int = 0) -> mx.array:
    """A batch of ``n_prompts`` equal-length token rows (BOS + fixed-length arithmetic text)."""
    rows = [handle.encode(t) for t in fixed_length_texts(n_prompts, seq_len - 1, seed)]
    width = min(len(r) for r in rows)
    return mx.array([r[:width] for r in rows])


def interleaved_times(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                      clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds per call of each function on ``clock``, calls interleaved (a, b, a, b ...) so load changes hit both."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = clock()
            fn()
            times[key].append(clock() - start)
    return times


def measure_lens(handle, *, n_prompts: int = 32, seq_len: int = 16, repeats: int = 5, top_k: int = 5) -> dict:
    """Logit lens over all layers: one captured forward vs one truncated forward per layer, and the public API.

    The ratio is the median of per-repeat ratios (adjacent calls), on the wall clock and on the process
    CPU clock; both give the same statistics (``max_entropy_diff``).
    """
    from .lens import logit_lens

    tokens = lens_tokens(handle, n_prompts, seq_len)
    texts = fixed_length_texts(n_prompts, seq_len - 1, 0)
    one, per = lens_one_pass(handle, tokens, top_k), lens_per_layer(handle, tokens, top_k)
    diff = max(float(mx.max(mx.abs(a[0] - b[0]))) for a, b in zip(one, per))
    times = interleaved_times({
        "one_pass": lambda: lens_one_pass(handle, tokens, top_k),
        "per_layer": lambda: lens_per_layer(handle, tokens, top_k),
        "api": lambda: logit_lens(handle, texts, top_k=top_k),
    }, repeats)
    cpu = interleaved_times({
        "one_pass": lambda: lens_one_pass(handle, tokens, top_k),
        "per_layer": lambda: lens_per_layer(handle, tokens, top_k),
    }, repeats, warmup=0, clock=time.process_time)
    ratios = [p / o for p, o in zip(times["per_layer"], times["one_pass"])]
    n = int(tokens.shape[0])
    return {
        "prompts": n, "seq_len": int(tokens.shape[1]), "layers": handle.n_layers + 1,
        "one_pass_prompts_per_s": n / median(times["one_pass"]),
        "per_layer_prompts_per_s": n / median(times["per_layer"]),
        "api_prompts_per_s": n / median(times["api"]),
        "ratio": median(ratios), "ratios": ratios,
        "ratio_cpu": median([p / o for p, o in zip(cpu["per_layer"], cpu["one_pass"])]),
        "max_entropy_diff": diff, "times": times, "cpu_times": cpu,
    }


def measure_probes(handle, *, n_permutations: int = 20) -> dict:
    """Probe fitting per layer on the word prompt set: feature extraction, then ``probe_layers`` (CV + permutations)."""
    from . import prompts
    from .features import last_token_states
    from .probes import probe_layers

    ps = prompts.word_set()
    start = time.perf_counter()
    features, labels = last_token_states(handle, ps.texts())
    extract = time.perf_counter() - start
    start = time.perf_counter()
    report = probe_layers(features, ps.labels(), layer_labels=labels, n_permutations=n_permutations)
    fit = time.perf_counter() - start
    return {
        "prompts": len(ps.texts()), "layers": len(labels), "hidden": int(features.shape[-1]),
        "n_permutations": n_permutations, "extract_s": extract, "fit_s": fit,
        "fit_s_per_layer": fit / len(labels), "best_layer": report.best_layer,
    }


# ---------------------------------------------------------------------------------------------
# Subprocess workers: BLAS and mlx-lm
# ---------------------------------------------------------------------------------------------

@dataclass
class ProcessRun:
    """A finished subprocess: exit code, output, its peak RSS, wall and CPU seconds, and stamped lines.

    ``stamps`` holds (wall time, process CPU seconds, line) for each output line the caller asked to
    stamp, read the moment the line arrived.
    """

    returncode: int
    output: str
    max_rss_gb: float
    seconds: float
    cpu_seconds: float
    stamps: list[tuple[float, float, str]] = field(default_factory=list)

    def payload(self) -> dict:
        """The JSON a worker printed (the last ``BENCH_JSON`` line)."""
        lines = [ln[len(JSON_TAG):] for ln in self.output.splitlines() if ln.startswith(JSON_TAG)]
        if self.returncode != 0 or not lines:
            raise RuntimeError(f"worker failed (exit {self.returncode}):\n{self.output[-3000:]}")
        return json.loads(lines[-1])


def _proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process (every thread), from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_peak_rss(pid: int | str) -> int:
    """VmHWM (peak resident set of the current address space, bytes) from /proc, 0 if unreadable.

    Unlike ``ru_maxrss`` it does not inherit the parent's RSS from before ``exec``.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_process(cmd: Sequence[str], env: dict | None = None, timeout: float = 3600,
                stamp: Callable[[str], bool] | None = None) -> ProcessRun:
    """Run ``cmd`` to completion, sampling its peak RSS (VmHWM) and stamping the lines ``stamp`` selects."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                            bufsize=1)
    lines: list[str] = []
    stamps: list[tuple[float, float, str]] = []

    def read() -> None:
        for line in proc.stdout:
            if stamp is not None and stamp(line):
                stamps.append((time.perf_counter(), _proc_cpu_seconds(proc.pid) or float("nan"), line))
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peak = 0
    while True:
        peak = max(peak, _proc_peak_rss(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > timeout:
            proc.kill()
        time.sleep(0.05)
    reader.join(timeout=10)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if not peak:
        peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return ProcessRun(proc.returncode, "".join(lines), peak / 1e9, time.perf_counter() - start,
                      usage.ru_utime + usage.ru_stime, stamps)


def openblas_path() -> str | None:
    """The OpenBLAS our preload uses (or would use), for ``LD_PRELOAD`` into processes that do not import us."""
    state = blas.state()
    if state.path:
        return state.path
    return next((p for p in blas.CANDIDATES if os.path.exists(p)), None)


def subprocess_env(*, preload: str = "import", extra: dict | None = None) -> dict:
    """Environment for a subprocess. ``preload``: ``import`` (as inherited: a process that imports
    lazarus_bench preloads OpenBLAS, one that does not, like mlx-lm, keeps the reference BLAS),
    ``none`` (``LAZARUS_NO_BLAS_PRELOAD=1``: reference BLAS everywhere) or ``ld`` (OpenBLAS through
    ``LD_PRELOAD`` for any process, our import hook disabled)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", blas.DISABLE_ENV)}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["NO_COLOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if preload in ("none", "ld"):
        env[blas.DISABLE_ENV] = "1"
    if preload == "ld":
        path = openblas_path()
        if path is None:
            raise RuntimeError("no OpenBLAS to LD_PRELOAD")
        env["LD_PRELOAD"] = path
    return {**env, **(extra or {})}


def worker_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lazarus_bench.bench", "worker", *args]


def measure_blas(*, hidden: int = 128, layers: int = 8, vocab: int = 1024, batch: int = 8, seq_len: int = 64,
                 steps: int = 4, modes: Sequence[str] = ("import", "none", "ld")) -> dict:
    """GEMM rate and a zoo training step in fresh processes: our OpenBLAS preload vs MLX's reference BLAS.

    ``ld`` (OpenBLAS by ``LD_PRELOAD`` without our import hook) checks what an mlx-lm subprocess gets.
    """
    out: dict[str, Any] = {"config": {"hidden": hidden, "layers": layers, "batch": batch, "seq_len": seq_len,
                                      "steps": steps}}
    for mode in modes:
        run = run_process(worker_command("blas", "--hidden", str(hidden), "--layers", str(layers), "--vocab",
                                         str(vocab), "--batch", str(batch), "--seq-len", str(seq_len),
                                         "--steps", str(steps)), env=subprocess_env(preload=mode))
        out[mode] = {**run.payload(), "process_max_rss_gb": run.max_rss_gb, "process_seconds": run.seconds}
    if "import" in out and "none" in out:
        out["gemm_ratio"] = out["import"]["gemm_gflops"] / out["none"]["gemm_gflops"]
        out["train_ratio"] = out["import"]["train"]["tokens_per_s"] / out["none"]["train"]["tokens_per_s"]
    return out


def _blas_worker(args: argparse.Namespace) -> dict:
    config = llama_config(args.hidden, args.layers, args.vocab)
    gemm = gemm_rate()
    m = measure_pretrain(config, batch=args.batch, seq_len=args.seq_len, steps=args.steps, gemm_gflops=gemm)
    return {"blas": blas.state().status, "library": global_cblas(), "gemm_gflops": gemm, "train": m.summary()}


def global_cblas() -> str:
    """Where the process-global ``cblas_sgemm`` (the one MLX binds to first) comes from, if anywhere.

    Without one, MLX uses the BLAS it links itself (the wheel's reference BLAS); the library scan of
    ``blas.resolved_library`` would then name any BLAS that happens to be mapped (numpy's, for one).
    """
    import ctypes

    try:
        ctypes.CDLL(None).cblas_sgemm
    except AttributeError:
        return "none global: MLX's own linked BLAS"
    return blas.resolved_library() or "unknown"


def text_rows(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token rows exactly as ``mlx_lm lora`` builds them from ``{"text"}`` lines (its TextDataset: BOS + text + EOS)."""
    from mlx_lm.tuner.datasets import TextDataset

    ds = TextDataset([{"text": t} for t in texts], tokenizer)
    return [list(ds.process(ds[i])[0]) for i in range(len(ds))]


def write_jsonl(path: Path, texts: Sequence[str]) -> None:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


class MlxLmOrder:
    """``batch_at`` that yields mlx-lm's batches in mlx-lm's order (for an equal loss curve).

    Batches are padded to the longest row of the data, or with ``tight`` to the longest row of the
    batch (padding is masked, so the losses are the same either way).

    mlx-lm sorts rows by length (stably), cuts consecutive groups of ``batch_size``, and permutes the
    group order once per epoch with numpy's global RNG seeded by ``--seed``; its validation pass at
    iteration 1 draws one permutation of the validation batches in between epochs 1 and 2.
    """

    def __init__(self, rows: Sequence, batch_size: int, seed: int, n_val_batches: int, pad_id: int = 0,
                 tight: bool = False):
        idx = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))
        self.rows, self.pad_id, self.tight = list(rows), pad_id, tight
        self.groups = [idx[i:i + batch_size] for i in range(0, len(idx) - batch_size + 1, batch_size)]
        self.width = max(len(r.ids) for r in self.rows)
        rng = np.random.RandomState(seed)
        self.order = list(rng.permutation(len(self.groups)))
        rng.permutation(n_val_batches)
        self._rng = rng

    def __call__(self, step: int, rank: int = 0, world: int = 1):
        from .training.data import pad_batch

        while len(self.order) <= step:
            self.order.extend(self._rng.permutation(len(self.groups)))
        group = self.groups[self.order[step]]
        width = max(len(self.rows[i].ids) for i in group) if self.tight else self.width
        return pad_batch([self.rows[i] for i in group], self.pad_id, width).arrays()


def _sft_worker(args: argparse.Namespace) -> dict:
    """Our SFT LoRA step on an mlx-lm data directory, with mlx-lm's rows (and order, with ``--order mlx-lm``)."""
    from .training.data import Batches, Encoded
    from .training.sft import SFTConfig, prepare, sft_loss

    handle = load_handle(args.model)
    read = lambda name: [json.loads(ln)["text"] for ln in (Path(args.data) / name).read_text().splitlines() if ln]
    rows = [Encoded(ids, 1) for ids in text_rows(handle.tokenizer, read("train.jsonl"))]
    n_val = len(read("valid.jsonl")) // args.batch
    cfg = SFTConfig(train=train_config(args.iters, args.lr, name="sft-lora"), batch_size=args.batch,
                    lora=LoraSpec(num_layers=args.num_layers))
    prepare(handle, cfg)
    batch_at = (MlxLmOrder(rows, args.batch, args.seed, n_val, tight=args.order == "mlx-lm-tight")
                if args.order.startswith("mlx-lm") else Batches(rows, args.batch, args.seed))
    m = measure_train_loop("sft-lora", handle, sft_loss, batch_at, cfg.train, lora_rank=8)
    return {**m.to_dict(), "blas": blas.state().status, "library": blas.resolved_library()}


@dataclass
class MlxLmRun:
    """One process of the mlx-lm comparison: per-window tokens/s, CPU per step and losses, memory, RSS."""

    label: str
    iters: int
    window_tokens_per_s: list[float]
    window_cpu_s_per_step: list[float]
    window_losses: list[float]
    tokens_per_s: float
    cpu_s_per_step: float
    rows_per_s: float | None
    peak_memory_gb: float | None
    process_max_rss_gb: float
    process_seconds: float
    process_cpu_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _ours_run(label: str, run: ProcessRun, report_every: int) -> MlxLmRun:
    data = run.payload()
    steps, tokens = data["step_seconds"], data["step_tokens"]
    rates = window_rates(steps, tokens, report_every)
    cpu = [1.0 / r for r in window_rates(data["step_cpu_seconds"], [1] * len(steps), report_every)]
    rows_rates = window_rates(steps, [data["batch"]] * len(steps), report_every)
    return MlxLmRun(label, len(steps), rates, cpu, window_means(data["losses"], report_every), median(rates),
                    median(cpu), median(rows_rates), data["peak_memory_gb"], run.max_rss_gb, run.seconds,
                    run.cpu_seconds)


def is_report_line(line: str) -> bool:
    return bool(parse_mlx_lm_report(line))


def _theirs_run(label: str, run: ProcessRun, tokens_per_row: float, report_every: int) -> MlxLmRun:
    """mlx-lm's own report lines for tokens/s and loss; its CPU per step from the process CPU clock read
    as each report line arrived (windows after the first, as for ours)."""
    reports = parse_mlx_lm_report(run.output)
    if run.returncode != 0 or not reports:
        raise RuntimeError(f"mlx_lm lora failed (exit {run.returncode}):\n{run.output[-3000:]}")
    rates = [r["tokens_per_s"] for r in reports][1:]
    cpu_marks = [c for _, c, _ in run.stamps]
    cpu = [(b - a) / report_every for a, b in zip(cpu_marks, cpu_marks[1:])]
    mem = [r["peak_mem_gb"] for r in reports if r["peak_mem_gb"] is not None]
    return MlxLmRun(label, reports[-1]["iter"], rates, cpu, [r["loss"] for r in reports], median(rates),
                    median(cpu), median(rates) / tokens_per_row, max(mem) if mem else None, run.max_rss_gb,
                    run.seconds, run.cpu_seconds)


def mlx_lm_command(model_dir: Path, data_dir: Path, adapter_dir: Path, *, batch: int, iters: int, report_every: int,
                   lr: float, num_layers: int, max_seq_length: int | None, seed: int = 0) -> list[str]:
    """``python -m mlx_lm lora`` for a timing run (validation reduced to one batch, no intermediate saves)."""
    cmd = [sys.executable, "-m", "mlx_lm", "lora", "--model", str(model_dir), "--train", "--data", str(data_dir),
           "--iters", str(iters), "--batch-size", str(batch), "--num-layers", str(num_layers),
           "--learning-rate", str(lr), "--steps-per-report", str(report_every), "--steps-per-eval", str(10**6),
           "--val-batches", "1", "--save-every", str(10**6), "--adapter-path", str(adapter_dir), "--seed", str(seed)]
    if max_seq_length:
        cmd += ["--max-seq-length", str(max_seq_length)]
    return cmd


def compare_mlx_lm(model_dir: str | os.PathLike, work_dir: str | os.PathLike, *, batch: int = 8, seq_len: int = 64,
                   iters: int = 30, report_every: int = 5, lr: float = 2e-4, repeats: int = 1, stock: bool = True,
                   padded: bool = True) -> dict:
    """Our SFT LoRA step vs ``python -m mlx_lm lora`` on the same model (an fp32 copy), rows, batch and length.

    matched: rows of exactly ``seq_len + 1`` tokens, same loss, mlx-lm's batch order, both on OpenBLAS
    (mlx-lm's by ``LD_PRELOAD``), ``repeats`` alternating runs; medians over report windows after the
    first, in tokens/s (wall) and CPU seconds per step. stock: mlx-lm on its reference BLAS. padded:
    short rows (mlx-lm pads to 1 + a multiple of 32, we to the longest row), in rows/s.
    """
    from .models import save_model

    work = Path(work_dir)
    source = load_handle(model_dir)
    model_dir = save_model(source.model, source.config, work / "model-fp32", tokenizer_dir=str(model_dir))
    handle = load_handle(model_dir)
    layers = handle.n_layers
    texts = fixed_length_texts(batch * (iters + 2), seq_len - 1, seed=3)
    lengths = {len(r) for r in text_rows(handle.tokenizer, texts)}
    if lengths != {seq_len + 1}:
        raise RuntimeError(f"fixed-length texts tokenise to lengths {sorted(lengths)}, not {seq_len + 1}")
    matched = work / "matched"
    matched.mkdir(parents=True, exist_ok=True)
    write_jsonl(matched / "train.jsonl", texts)
    write_jsonl(matched / "valid.jsonl", texts[:batch])

    def ours(data: Path, order: str, label: str, n: int) -> MlxLmRun:
        run = run_process(worker_command("sft", "--model", str(model_dir), "--data", str(data), "--batch", str(batch),
                                         "--iters", str(n), "--lr", str(lr), "--num-layers", str(layers),
                                         "--order", order), env=subprocess_env(preload="import"))
        return _ours_run(label, run, report_every)

    def theirs(data: Path, preload: str, label: str, n: int, max_len: int | None, tokens_per_row: float,
               every: int = report_every) -> MlxLmRun:
        cmd = mlx_lm_command(model_dir, data, work / f"adapters-{label}", batch=batch, iters=n,
                             report_every=every, lr=lr, num_layers=layers, max_seq_length=max_len)
        run = run_process(cmd, env=subprocess_env(preload=preload), stamp=is_report_line)
        return _theirs_run(label, run, tokens_per_row, every)

    long_ours, long_theirs = [], []
    for _ in range(repeats):
        long_ours.append(ours(matched, "mlx-lm", "ours", iters))
        long_theirs.append(theirs(matched, "ld", "mlx_lm", iters, seq_len + 1, seq_len))
    tokens_per_step = batch * seq_len
    cpu_ours = median([r.cpu_s_per_step for r in long_ours])
    cpu_theirs = median([r.cpu_s_per_step for r in long_theirs])
    ours_rate = median([r.tokens_per_s for r in long_ours])
    theirs_rate = median([r.tokens_per_s for r in long_theirs])
    curve_ours, curve_theirs = long_ours[0].window_losses, long_theirs[0].window_losses
    n = min(len(curve_ours), len(curve_theirs))
    out: dict[str, Any] = {
        "config": {"model": describe_dims(dims_of(handle.config)), "batch": batch, "seq_len": seq_len, "iters": iters,
                   "report_every": report_every, "lr": lr, "lora": "rank 8, scale 20, every linear, all layers",
                   "repeats": repeats},
        "matched": {
            "runs": [r.to_dict() for r in long_ours + long_theirs],
            "ours_tokens_per_s": ours_rate, "mlx_lm_tokens_per_s": theirs_rate, "ratio": ours_rate / theirs_rate,
            "ours_cpu_s_per_step": cpu_ours, "mlx_lm_cpu_s_per_step": cpu_theirs,
            "ours_tokens_per_cpu_s": tokens_per_step / cpu_ours,
            "mlx_lm_tokens_per_cpu_s": tokens_per_step / cpu_theirs,
            "cpu_ratio": cpu_theirs / cpu_ours,
            "loss_curve": {"ours": curve_ours, "mlx_lm": curve_theirs,
                           "max_abs_diff": max(abs(a - b) for a, b in zip(curve_ours[:n], curve_theirs[:n]))},
        },
    }
    if stock:
        run = theirs(matched, "none", "mlx_lm-stock", 6, seq_len + 1, seq_len, every=2)
        out["stock"] = {"runs": [run.to_dict()], "mlx_lm_tokens_per_s": run.tokens_per_s,
                        "ratio": ours_rate / run.tokens_per_s}
    if padded:
        short = arithmetic_texts(batch * (iters + 2), seed=5)
        padded_dir = work / "padded"
        padded_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(padded_dir / "train.jsonl", short)
        write_jsonl(padded_dir / "valid.jsonl", short[:batch])
        lens = [len(r) for r in text_rows(handle.tokenizer, short)]
        ours_p = ours(padded_dir, "mlx-lm-tight", "ours-padded", iters)
        theirs_p = theirs(padded_dir, "ld", "mlx_lm-padded", iters, None, float(np.mean(lens)))
        k = min(len(ours_p.window_losses), len(theirs_p.window_losses))
        out["padded"] = {
            "runs": [ours_p.to_dict(), theirs_p.to_dict()], "row_tokens_mean": float(np.mean(lens)),
            "row_tokens_max": max(lens), "mlx_lm_width": 1 + 32 * math.ceil(max(lens) / 32),
            "ratio_rows_per_s": ours_p.rows_per_s / theirs_p.rows_per_s,
            "ratio_tokens_per_s": ours_p.tokens_per_s / theirs_p.tokens_per_s,
            "loss_curve": {"ours": ours_p.window_losses, "mlx_lm": theirs_p.window_losses,
                           "max_abs_diff": max(abs(a - b) for a, b in zip(ours_p.window_losses[:k],
                                                                          theirs_p.window_losses[:k]))},
        }
    return out


# ---------------------------------------------------------------------------------------------
# Scaling and memory model
# ---------------------------------------------------------------------------------------------

SIZES: tuple[tuple[str, int, int, int], ...] = (
    ("micro", 64, 4, 128),
    ("zoo base", 128, 8, 384),
    ("h256", 256, 8, 768),
    ("h512", 512, 8, 1536),
)
ZOO_BASE = SIZES[1]
ZOO_VOCAB = 1024


def measure_scaling(vocab: int, *, sizes: Sequence[tuple[str, int, int, int]] = SIZES, batch: int = 8,
                    seq_len: int = 64, steps: int = 6, batches: Sequence[int] = (4, 16, 64),
                    on_case: Callable[[str], None] | None = None) -> dict:
    """Zoo pretraining step vs model size (fixed batch) and vs batch size (zoo base), each with MFU
    against GEMM rates measured just before and after the case, and predicted vs measured peak memory."""
    def case(label: str, hidden: int, layers: int, inter: int, b: int) -> dict:
        if on_case:
            on_case(f"{label} B={b}")
        config = llama_config(hidden, layers, vocab, intermediate=inter)
        m = bracket_gemm(lambda: measure_pretrain(config, batch=b, seq_len=seq_len, steps=steps, name=label))
        return m.to_dict()

    return {
        "seq_len": seq_len,
        "by_size": [case(label, h, n, f, batch) for label, h, n, f in sizes],
        "by_batch": [case(ZOO_BASE[0], *ZOO_BASE[1:], b) for b in batches],
    }


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: None/NaN as an en dash, large numbers with thousands separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def pct(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def summarise_ratios(results: dict) -> list[dict]:
    """The four headline ratios (a-d), each with its target and where it came from."""
    rows = []
    cmp_ = results.get("mlx_lm") or {}
    matched = cmp_.get("matched")
    if matched:
        curve = matched["loss_curve"]
        rows.append({"ratio": "(a) SFT LoRA tokens/s, ours / mlx_lm lora (both OpenBLAS, identical rows), wall",
                     "value": matched["ratio"], "target": ">= 1.5",
                     "detail": f"{fmt(matched['ours_tokens_per_s'])} vs {fmt(matched['mlx_lm_tokens_per_s'])} tok/s; "
                               f"loss curves max |diff| {fmt(curve['max_abs_diff'])}"})
        rows.append({"ratio": "(a) ... same, tokens per CPU-second (robust to other jobs' load)",
                     "value": matched["cpu_ratio"], "target": ">= 1.5",
                     "detail": f"{fmt(matched['ours_tokens_per_cpu_s'])} vs {fmt(matched['mlx_lm_tokens_per_cpu_s'])} "
                               "tok/CPU-s"})
    if cmp_.get("stock"):
        rows.append({"ratio": "(a) ... / mlx_lm lora as shipped (reference BLAS)", "value": cmp_["stock"]["ratio"],
                     "target": ">= 1.5", "detail": f"mlx_lm {fmt(cmp_['stock']['mlx_lm_tokens_per_s'])} tok/s"})
    if cmp_.get("padded"):
        p = cmp_["padded"]
        curve = p.get("loss_curve") or {}
        rows.append({"ratio": "(a) SFT LoRA tokens/s on short SFT rows, same order (we pad to the batch's longest row, "
                              "mlx_lm to 1 + 32k)", "value": p.get("ratio_tokens_per_s", p["ratio_rows_per_s"]),
                     "target": ">= 1.5",
                     "detail": f"rows ~{fmt(p['row_tokens_mean'])} tokens (max {p['row_tokens_max']}); "
                               f"mlx_lm width {p['mlx_lm_width']}; rows/s x{fmt(p['ratio_rows_per_s'])}; "
                               f"loss curves max |diff| {fmt(curve.get('max_abs_diff'))}"})
    b = results.get("blas") or {}
    if "gemm_ratio" in b:
        rows.append({"ratio": "(b) fp32 GEMM 1024^3, OpenBLAS preload / reference BLAS", "value": b["gemm_ratio"],
                     "target": "–",
                     "detail": f"{fmt(b['import']['gemm_gflops'])} vs {fmt(b['none']['gemm_gflops'])} GFLOP/s"})
        rows.append({"ratio": "(b) zoo training step tokens/s, OpenBLAS / reference BLAS", "value": b["train_ratio"],
                     "target": "–", "detail": f"{fmt(b['import']['train']['tokens_per_s'])} vs "
                                              f"{fmt(b['none']['train']['tokens_per_s'])} tok/s"})
    lens = results.get("lens")
    if lens:
        rows.append({"ratio": "(c) logit lens, one forward / per-layer truncated forwards (speed-up)",
                     "value": lens["ratio"], "target": "–",
                     "detail": f"{lens['layers']} lens layers, {lens['prompts']} prompts x {lens['seq_len']} tokens; "
                               f"on CPU time {fmt(lens.get('ratio_cpu'))}"})
    base = next((t for t in results.get("training", []) if t.get("name") == "zoo-pretrain"), None)
    if base:
        sweep = [t["summary"] for t in (results.get("scaling") or {}).get("by_batch", [])]
        swept = ", ".join(f"B={t['batch']} {pct(t['mfu'])}" for t in sweep)
        rows.append({"ratio": "(d) MFU, zoo base pretraining step", "value": base["mfu"], "target": ">= 0.5",
                     "detail": f"{fmt(base['achieved_gflops'])} of {fmt(base['gemm_gflops'])} GFLOP/s, "
                               f"B={base['batch']} T={base['seq_len']}, cores busy {fmt(base.get('cores_busy'), 2)}; "
                               f"GEMM at the model's MLP shape {fmt(base.get('gemm_model_shape_gflops'))} GFLOP/s"
                               + (f"; batch sweep {swept}" if swept else "")})
    return rows


def _train_rows(items: Sequence[dict]) -> list[list]:
    return [[t["name"], t["model"], f"{fmt(t['trainable_params'])} / {fmt(t['total_params'])}",
             f"{t['batch']} x {t['seq_len']}", fmt(t["tokens_per_s"]), fmt(t.get("tokens_per_cpu_s")),
             fmt(t["median_step_s"]), fmt(t["first_step_s"]), fmt(t["peak_memory_gb"]), fmt(t["predicted_memory_gb"]),
             fmt(t["max_rss_gb"]), pct(t.get("mfu"))] for t in items]


TRAIN_HEADERS = ["case", "model", "trainable / total params", "batch x seq", "tokens/s (median)", "tokens/CPU-s",
                 "step s (median)", "first step s", "MLX peak GB", "predicted GB", "max RSS GB (process)", "MFU"]

FORMULAS = """\
- Training FLOPs per token (PaLM appendix B): `6 N + 12 L T d_attn`, N = parameters in matmuls (every
  block linear plus the V x D unembedding; the embedding lookup is free, a tied embedding counts once),
  T = computed sequence length (padded width), d_attn = heads x head_dim. LoRA: `4 N + 6 N_lora + 12 L T d_attn`
  (frozen weights need input gradients, not weight gradients). Attention counts the full T x T square.
- MFU = computed tokens/s x FLOPs per token / fp32 GEMM FLOP/s (1024^3 matmul, median of 5, measured just
  before and just after the case in the same process; the faster of the two, so MFU errs low). The GEMM
  rate at the model's own MLP shape, (B T x D) @ (D x F), shows how much of the gap small matmuls explain.
- Peak memory (fp32 bytes) = 4 (P + P_lora) weights + 4 P_t grads + 8 P_t Adam state + 4 B T (L a + 2 D)
  activations + 24 B T V logits, with a = 6 D + 3 d_q + 3 d_kv + H T + 5 F (+ 7 r with LoRA): residual
  in/out, both norms' inputs and outputs, q/k/v before and after RoPE, attention probabilities, and the
  MLP's gate, up, sigmoid, activation and product; the logits term holds 6 copies of B x T x V (logits,
  exponentials, softmax, gradient, cross-entropy temporaries). P_t = trainable parameters.
- Cores busy = median CPU seconds (all threads) per median wall second of a step. Below 1: other jobs
  took the CPU. OpenBLAS worker threads spin for a while after each GEMM, so values near 2 on 2 cores
  do not mean the non-GEMM work (MLX's CPU stream, one thread) ran in parallel.
- Steady-state rates drop the first 2 steps (compilation, and the optimizer state's first appearance
  retraces the compiled step); medians over steps (ours) or report windows (mlx-lm).
"""


def render_bench_md(results: dict) -> str:
    """BENCH.md from a ``run_bench`` results dict (also works on partial or synthetic results)."""
    from tabulate import tabulate

    table = lambda rows, headers: tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    info = results.get("machine", {})
    out = ["# lazarus_bench performance", ""]
    out.append(f"Machine: {machine_line(info)}" if info else "Machine: unknown")
    out.append("")
    out.append(f"Mode: {results.get('mode', '?')}; wall time {fmt(results.get('wall_s'))} s; model: "
               f"{results.get('model_source', '?')}. Timings on shared cores are noisy: ratios are measured side "
               "by side in this run; absolute numbers are only comparable within one run.")
    out += ["", "## Ratios", ""]
    ratios = summarise_ratios(results)
    out.append(table([[r["ratio"], fmt(r["value"]), r["target"], r["detail"]] for r in ratios],
                     ["ratio", "value", "target", "measured"]) if ratios else "No ratios measured.")
    training = results.get("training") or []
    if training:
        out += ["", "## Training step throughput", "", table(_train_rows(training), TRAIN_HEADERS)]
    grpo = results.get("grpo")
    if grpo:
        out += ["", "GRPO (full weights, sampling with KV cache, no compile):", "",
                table([[grpo["model"], grpo["rollouts_per_step"], grpo["max_new_tokens"], fmt(grpo["gen_tokens_per_s"]),
                        fmt(grpo["train_tokens_per_s"]), fmt(grpo["tokens_per_s"]), pct(grpo["gen_fraction"]),
                        fmt(grpo["peak_memory_gb"])]],
                      ["model", "rollouts/step", "max new tokens", "generation tok/s", "update tok/s",
                       "overall tok/s", "time generating", "MLX peak GB"])]
    lens = results.get("lens")
    if lens:
        out += ["", "## Logit lens and probes", "",
                table([["one captured forward (all layers)", fmt(lens["one_pass_prompts_per_s"])],
                       ["a truncated forward per layer", fmt(lens["per_layer_prompts_per_s"])],
                       ["`logit_lens()` API (top-5 decoded)", fmt(lens["api_prompts_per_s"])]],
                      ["logit lens over all layers", "prompts/s"])]
    probes = results.get("probes")
    if probes:
        out += ["", table([[probes["prompts"], probes["layers"], probes["hidden"], probes["n_permutations"],
                            fmt(probes["extract_s"]), fmt(probes["fit_s_per_layer"])]],
                          ["probe prompts", "layers", "hidden", "permutations", "feature extraction s",
                           "fit s per layer"])]
    cmp_ = results.get("mlx_lm")
    if cmp_:
        config = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in cmp_["config"].items())
        out += ["", "## SFT LoRA: ours vs `mlx_lm lora`", "", f"Config: {config}.", ""]
        rows = [[key, r["label"], r["iters"], fmt(r["tokens_per_s"]), fmt(r["cpu_s_per_step"]), fmt(r["rows_per_s"]),
                 fmt(r["peak_memory_gb"]), fmt(r["process_max_rss_gb"]), fmt(r["process_seconds"]),
                 fmt(r["process_cpu_seconds"])]
                for key in ("matched", "stock", "padded") for r in (cmp_.get(key) or {}).get("runs", [])]
        out.append(table(rows, ["data", "process", "iters", "tokens/s (median window)", "CPU s / step", "rows/s",
                                "MLX peak GB", "peak RSS GB", "process wall s", "process CPU s"]))
        m = cmp_.get("matched")
        if m:
            out += ["", f"CPU per step (median window, process CPU clock): ours {fmt(m['ours_cpu_s_per_step'])} s, "
                        f"mlx_lm {fmt(m['mlx_lm_cpu_s_per_step'])} s: tokens per CPU-second "
                        f"{fmt(m['ours_tokens_per_cpu_s'])} vs {fmt(m['mlx_lm_tokens_per_cpu_s'])} "
                        f"(ratio {fmt(m['cpu_ratio'])}).",
                    "", "Loss per report window (matched, first long run of each):", "",
                    table([[i + 1, fmt(a, 4), fmt(b, 4)] for i, (a, b) in
                           enumerate(zip(m["loss_curve"]["ours"], m["loss_curve"]["mlx_lm"]))],
                          ["window", "ours", "mlx_lm"])]
        padded = cmp_.get("padded") or {}
        if padded.get("loss_curve"):
            out += ["", "Loss per report window (short SFT rows, mlx-lm's order, each padded its own way). The curves "
                    "differ because mlx-lm's `default_loss` masks `steps <= length`, one target past each row: every "
                    "row shorter than its batch is also trained to predict the pad id 0 after EOS (ml-explore/mlx-lm "
                    "PR #1697), and its token count (hence its tokens/s) includes that target. Ours trains on the "
                    "real targets only; rows/s compares the same work.", "",
                    table([[i + 1, fmt(a, 4), fmt(b, 4)] for i, (a, b) in
                           enumerate(zip(padded["loss_curve"]["ours"], padded["loss_curve"]["mlx_lm"]))],
                          ["window", "ours", "mlx_lm"])]
    blas_ = results.get("blas")
    if blas_:
        rows = [[mode, blas_[mode]["blas"], blas_[mode]["library"], fmt(blas_[mode]["gemm_gflops"]),
                 fmt(blas_[mode]["train"]["tokens_per_s"]), fmt(blas_[mode]["train"].get("tokens_per_cpu_s"))]
                for mode in ("import", "none", "ld") if mode in blas_]
        out += ["", "## BLAS (fresh processes)", "",
                "env: `import` = our import-time preload; `none` = `LAZARUS_NO_BLAS_PRELOAD=1`; `ld` = preload "
                "disabled, OpenBLAS by `LD_PRELOAD` (what the mlx_lm subprocess gets).", "",
                table(rows, ["env", "preload", "global cblas_sgemm from", "GEMM GFLOP/s", "train tok/s",
                             "train tok/CPU-s"])]
    scaling = results.get("scaling")
    if scaling:
        def srows(items):
            rows = []
            for t in (item["summary"] for item in items):
                rows.append([t["name"], t["model"], fmt(t["total_params"]), t["batch"], fmt(t["tokens_per_s"]),
                             fmt(t.get("cores_busy"), 2), fmt(t["achieved_gflops"]), fmt(t["gemm_gflops"]),
                             fmt(t.get("gemm_model_shape_gflops")), pct(t["mfu"]), fmt(t["peak_memory_gb"]),
                             fmt(t["predicted_memory_gb"]), fmt(t["memory_ratio"])])
            return rows
        headers = ["size", "model", "params", "batch", "tokens/s", "cores busy", "GFLOP/s", "GEMM 1024^3 GFLOP/s",
                   "GEMM at (BT x D)(D x F)", "MFU", "MLX peak GB", "predicted GB", "measured / predicted"]
        out += ["", f"## Scaling (zoo pretraining step, T={scaling['seq_len']})", "", "By model size:", "",
                table(srows(scaling["by_size"]), headers), "", "By batch size:", "",
                table(srows(scaling["by_batch"]), headers)]
    out += ["", "## Formulas", "", FORMULAS]
    errors = results.get("errors")
    if errors:
        out += ["## Errors", ""] + [f"- {k}: {v}" for k, v in errors.items()] + [""]
    return "\n".join(out)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_bench(results: dict, out_dir: str | os.PathLike = "reports") -> Path:
    """Write ``BENCH.md`` and ``bench.json`` (the raw numbers) into ``out_dir``; returns BENCH.md's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=1, default=_jsonable) + "\n")
    path = out / "BENCH.md"
    path.write_text(render_bench_md(results))
    return path


# ---------------------------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """How much of each measurement a run does."""

    train_steps: int = 12
    sft_batch: int = 8
    grpo_steps: int = 4
    pretrain_batch: int = 64
    lens_prompts: int = 64
    lens_repeats: int = 5
    probe_permutations: int = 50
    mlx_lm_iters: int = 40
    mlx_lm_report: int = 5
    mlx_lm_repeats: int = 2
    mlx_lm_padded: bool = True
    blas_steps: int = 4
    blas_batch: int = 8
    blas_modes: tuple[str, ...] = ("import", "none", "ld")
    scaling_batch: int = 8
    scaling_steps: int = 6
    batch_sweep: tuple[int, ...] = (4, 16, 64)


FULL = Plan()
QUICK = Plan(train_steps=6, grpo_steps=2, pretrain_batch=16, lens_prompts=16, lens_repeats=5, probe_permutations=5,
             mlx_lm_iters=20, mlx_lm_repeats=1, mlx_lm_padded=False, blas_steps=3, blas_batch=4,
             blas_modes=("import", "none"), scaling_steps=4, batch_sweep=(4, 16))


def bench_model(work: Path) -> tuple[Path, str]:
    """``zoo:base`` when it is built, else a random-init model of its architecture (the bench tokenizer's ids
    use the first rows of the zoo's 1024-entry vocabulary)."""
    from .models import resolve_zoo

    try:
        return resolve_zoo("zoo:base"), "zoo:base"
    except Exception:  # noqa: BLE001  (absent or unverifiable zoo: build a stand-in)
        tok = bench_tokenizer(work / "tokenizer")
        _, hidden, layers, inter = ZOO_BASE
        config = llama_config(hidden, layers, max(ZOO_VOCAB, tokenizer_vocab(tok)), intermediate=inter)
        path = save_bench_model(work / "zoo-base-arch", config, tok)
        return path, f"random-init zoo base architecture (h{hidden} x {layers}L, F {inter}, V {config['vocab_size']})"


def run_bench(out_dir: str | os.PathLike = "reports", quick: bool = False, progress: bool = True) -> Path:
    """Run every measurement (``quick``: fewer steps and repeats) and write BENCH.md + bench.json to ``out_dir``."""
    from .training.data import arithmetic_examples

    plan = QUICK if quick else FULL
    start = time.perf_counter()
    log = (lambda msg: print(f"[bench {time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)) \
        if progress else (lambda msg: None)
    results: dict[str, Any] = {"mode": "quick" if quick else "full", "plan": asdict(plan), "errors": {},
                               "stage_seconds": {}}
    log("machine info and GEMM rate")
    results["machine"] = machine_info()

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        log(name)
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001  (a failed stage is reported, the rest still runs)
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
            value = None
        results["stage_seconds"][name] = time.perf_counter() - t0
        return value

    with tempfile.TemporaryDirectory(prefix="lazarus-bench-") as tmp:
        work = Path(tmp)
        model_dir, source = bench_model(work)
        results["model_source"] = source
        config = json.loads((model_dir / "config.json").read_text())
        vocab = int(config["vocab_size"])
        examples = arithmetic_examples(512, seed=0)
        training: list[dict] = []
        results["training"] = training

        def train_case(name: str, fn: Callable[[Any], TrainMeasurement]) -> None:
            m = stage(name, lambda: fn(load_handle(model_dir)))
            if m is not None:
                training.append(m.summary())

        steps, batch = plan.train_steps, plan.sft_batch
        train_case("sft-lora", lambda h: bracket_gemm(lambda: measure_sft(h, examples, batch_size=batch, steps=steps)))
        train_case("sft-full", lambda h: bracket_gemm(lambda: measure_sft(h, examples, lora=None, batch_size=batch,
                                                                          steps=steps, lr=1e-5)))
        train_case("dual-reward", lambda h: measure_dual_reward(h, batch_size=batch, steps=steps))
        pre = stage("zoo-pretrain", lambda: bracket_gemm(lambda: measure_pretrain(
            config, batch=plan.pretrain_batch, seq_len=64, steps=steps)))
        if pre is not None:
            training.append(pre.summary())
        results["grpo"] = stage("grpo", lambda: measure_grpo(load_handle(model_dir), steps=plan.grpo_steps))
        results["lens"] = stage("lens", lambda: measure_lens(load_handle(model_dir), n_prompts=plan.lens_prompts,
                                                             repeats=plan.lens_repeats))
        results["probes"] = stage("probes", lambda: measure_probes(load_handle(model_dir),
                                                                   n_permutations=plan.probe_permutations))
        results["blas"] = stage("blas", lambda: measure_blas(vocab=vocab, batch=plan.blas_batch, steps=plan.blas_steps,
                                                             modes=plan.blas_modes))
        results["mlx_lm"] = stage("mlx_lm", lambda: compare_mlx_lm(
            model_dir, work / "mlx_lm", batch=batch, iters=plan.mlx_lm_iters, report_every=plan.mlx_lm_report,
            repeats=plan.mlx_lm_repeats, padded=plan.mlx_lm_padded))
        results["scaling"] = stage("scaling", lambda: measure_scaling(
            vocab, batch=plan.scaling_batch, steps=plan.scaling_steps, batches=plan.batch_sweep,
            on_case=lambda c: log(f"scaling {c}")))
    results["ratios"] = summarise_ratios(results)
    results["wall_s"] = time.perf_counter() - start
    path = write_bench(results, out_dir)
    log(f"wrote {path}")
    return path


# ---------------------------------------------------------------------------------------------
# Worker entry point
# ---------------------------------------------------------------------------------------------

def _worker_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lazarus_bench.bench")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker").add_subparsers(dest="kind", required=True)
    b = worker.add_parser("blas", help="GEMM rate and a zoo training step in this process")
    for name, default in (("hidden", 128), ("layers", 8), ("vocab", 1024), ("batch", 8), ("seq-len", 64), ("steps", 4)):
        b.add_argument(f"--{name}", type=int, default=default)
    s = worker.add_parser("sft", help="our SFT LoRA step on an mlx-lm data directory")
    s.add_argument("--model", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--iters", type=int, default=20)
    s.add_argument("--lr", type=float, default=2e-4)
    s.add_argument("--num-layers", type=int, default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--order", choices=["mlx-lm", "mlx-lm-tight", "ours"], default="mlx-lm")
    r = sub.add_parser("run", help="run_bench: write BENCH.md and bench.json")
    r.add_argument("--out", default="reports")
    r.add_argument("--quick", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _worker_parser().parse_args(argv)
    if args.command == "run":
        print(run_bench(args.out, quick=args.quick))
        return 0
    payload = _blas_worker(args) if args.kind == "blas" else _sft_worker(args)
    print(JSON_TAG + json.dumps(payload, default=_jsonable), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
