"""Training measurements: steady-state step throughput, memory and MFU of SFT, dual-reward, GRPO and zoo pretraining."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import mlx.core as mx
import numpy as np

from ..training.lora import LoraSpec
from ..training.timing import (
    WARMUP_STEPS,
    StepTimer,
    median,
    steady_slice,
    steady_tokens_per_s,
)
from .formulas import Dims, dims_of, mfu, predict_memory, train_flops_per_token
from .machine import gemm_rate, max_rss_bytes, shape_gemm_rate


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


def describe_dims(d: Dims) -> str:
    return f"h{d.hidden} x {d.layers}L (V {d.vocab})"


def measure_train_loop(name: str, handle, loss_fn: Callable, batch_at: Callable, cfg, *,
                       lora_rank: int | None = None, gemm_gflops: float | None = None,
                       extra: dict | None = None) -> TrainMeasurement:
    """Run the project's ``train_loop`` with a step timer; MLX peak memory is reset first.

    With ``lora_rank`` the FLOPs count the frozen weights at 4 N and the trainable (LoRA) ones at 6 N.
    """
    from ..training.loop import train_loop

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
    if result.world_size > 1:  # data parallel: every rank's tokens and rows count (rank 0 reports)
        counts = mx.distributed.all_sum(mx.array([timer.tokens, timer.computed, [rows] * len(timer.tokens)]),
                                        stream=mx.cpu)
        timer.tokens, timer.computed, rows = counts[0].tolist(), counts[1].tolist(), int(counts[2, 0].item())
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
    from ..training.loop import TrainConfig

    return TrainConfig(steps=steps, lr=lr, optimizer=optimizer, grad_clip=grad_clip, log_every=10**9, name=name)


def measure_sft(handle, examples: Sequence, *, lora: LoraSpec | None = LoraSpec(), batch_size: int = 8,
                steps: int = 8, lr: float = 1e-4, gemm_gflops: float | None = None,
                name: str | None = None) -> TrainMeasurement:
    """SFT step throughput (LoRA by default, ``lora=None`` for full fine-tuning) on prompt/response examples.

    The same path as ``train_sft`` (``prepare``, ``encoded_batches``, ``sft_loss``, ``train_loop``)
    without validation or saving.
    """
    from ..training.sft import SFTConfig, encoded_batches, prepare, sft_loss

    cfg = SFTConfig(train=train_config(steps, lr, name=name or "sft"), batch_size=batch_size, lora=lora)
    prepare(handle, cfg)
    batches = encoded_batches(handle, examples, batch_size, cfg.train.seed, cfg.add_bos, cfg.add_eos)
    return measure_train_loop(name or ("sft-lora" if lora else "sft-full"), handle, sft_loss, batches, cfg.train,
                              lora_rank=lora.rank if lora else None, gemm_gflops=gemm_gflops)


def measure_dual_reward(handle, *, batch_size: int = 8, steps: int = 8, n_train: int = 256,
                        gemm_gflops: float | None = None) -> TrainMeasurement:
    """Dual-reward step throughput (corrected protocol: LoRA on v/o, lens CE at 0.55 L + answer CE)."""
    from dataclasses import replace

    from .. import prompts
    from ..training.dual_reward import (
        DualRewardConfig,
        class_token_ids,
        make_loss,
        training_examples,
    )
    from ..training.lora import apply_lora
    from ..training.sft import encoded_batches

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
    from ..training.grpo import GRPOConfig, train_grpo
    from ..training.loop import TrainConfig

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
    from ..zoo import pretrain as P

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
