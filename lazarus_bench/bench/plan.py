"""Plan a run before it starts: each claim's predicted peak memory and wall time, from a model's config alone.

The prediction is a roofline over the work a claim does: every matmul costs the larger of its FLOPs over the
machine's GEMM rate and its bytes over the memory bandwidth; probe fits cost a measured fit each; random-init models
cost their parameters over the measured init rate. The work (prompts, lens layers, training steps, control
replicates) is read from each claim's declaration in the registry. Display-only: no record depends on it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .formulas import Dims, dims_of, lora_param_count, param_count, predict_memory

GB = 1e9
PROCESS_BYTES = int(0.8 * GB)  # Python, MLX, NumPy, scikit-learn and a 128k-token tokenizer, measured idle
SYMBOL_TOKENS, WORD_TOKENS = 8, 12  # tokens of "7 * 8 = " and "What is 7 times 8?" with BOS on a BPE vocabulary


@dataclass(frozen=True)
class Rates:
    """What this machine does per second: fp32 (or the model's dtype) GEMM, memory reads, probe fits, random init."""

    gemm_gflops: float
    bandwidth_gbs: float  # weights streamed through a skinny matmul (8 rows), the lens's and decoding's case
    exp_per_s: float  # exponentials over a large array: the log-softmax and probabilities over the vocabulary
    fit_s: float  # one scaled logistic-regression fit (sklearn) of 64 x 2,048 features, 4 classes
    quick_fit_s: float  # the same fit by ``analysis.logreg``, the permutation nulls' solver
    init_params_per_s: float
    memory_bytes: int  # available to the run
    dtype_bytes: int = 4
    device: str = "cpu"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def available_memory() -> int:
    """Bytes a new process can use: MemAvailable on Linux, else the physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _median_time(fn: Callable[[], None], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def measure_rates(gemm_gflops: float | None = None) -> Rates:
    """This machine's rates, in about two seconds (``gemm_gflops`` from ``info`` skips the GEMM timing)."""
    import mlx.core as mx
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from .. import blas
    from ..analysis import logreg
    from ..analysis.probes import make_classifier

    gpu = mx.default_device() != mx.cpu
    dtype = mx.bfloat16 if gpu else mx.float32
    if gemm_gflops is None:
        if gpu:
            a = mx.random.normal((4096, 4096)).astype(dtype)
            mx.eval(a @ a)
            gemm_gflops = 2 * 4096**3 / _median_time(lambda: mx.eval(a @ a), 5) / 1e9
        else:
            gemm_gflops = blas.gemm_gflops()
    weights = mx.random.normal((2048, 32768)).astype(dtype)
    rows = mx.random.normal((8, 2048)).astype(dtype)
    mx.eval(weights, rows, rows @ weights)
    bandwidth = weights.nbytes / _median_time(lambda: mx.eval(rows @ weights)) / GB
    big = mx.random.normal((32 * 1024 * 1024,)).astype(dtype)
    mx.eval(big)
    exps = big.size / _median_time(lambda: mx.eval(mx.exp(big)))
    n_init = 32 * 1024 * 1024
    init = _median_time(lambda: mx.eval(mx.random.normal((n_init,))))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 2048)), np.repeat(np.arange(4), 16)
    fit = _median_time(lambda: make_classifier().fit(X, y))
    quick = _median_time(lambda: logreg.cv_accuracy(X, y, StratifiedKFold(4), C=1.0, max_iter=2000)) / 4
    return Rates(gemm_gflops=float(gemm_gflops), bandwidth_gbs=float(bandwidth),
                 exp_per_s=float(exps), fit_s=float(fit), quick_fit_s=float(quick),
                 init_params_per_s=n_init / init, memory_bytes=available_memory(), dtype_bytes=2 if gpu else 4,
                 device="gpu" if gpu else "cpu")


@dataclass
class Cost:
    """Seconds and the bytes held at the peak (beyond the process and the resident weights)."""

    seconds: float = 0.0
    peak: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.seconds + other.seconds, max(self.peak, other.peak))

    def __mul__(self, times: int) -> "Cost":
        return Cost(self.seconds * times, self.peak if times else 0)

    __rmul__ = __mul__


@dataclass
class Workload:
    """The primitives a claim's work is made of, priced for one model on one machine."""

    d: Dims
    rates: Rates
    experts: int = 1  # experts a token meets (MoE: top-k), for the MLP weights
    routed: int = 0  # experts per MoE layer (0: dense), for the router rows

    @property
    def weight_bytes(self) -> int:
        return param_count(self.d) * self.rates.dtype_bytes

    def matmul(self, m: int, k: int, n: int, times: int = 1) -> float:
        """Seconds of ``times`` (m x k) @ (k x n) products: FLOPs at the GEMM rate or bytes at the bandwidth."""
        flops = 2.0 * m * k * n
        moved = self.rates.dtype_bytes * (k * n + m * k + m * n)
        return times * max(flops / (self.rates.gemm_gflops * 1e9), moved / (self.rates.bandwidth_gbs * GB))

    def blocks(self, tokens: int, passes: int = 1) -> float:
        """Seconds of the decoder blocks on ``tokens`` tokens (``passes`` = 2 adds a backward through inputs)."""
        d = self.d
        per_block = (self.matmul(tokens, d.hidden, d.q_dim) + 2 * self.matmul(tokens, d.hidden, d.kv_dim)
                     + self.matmul(tokens, d.q_dim, d.hidden)
                     + self.experts * 3 * self.matmul(tokens, d.hidden, d.intermediate))
        return passes * d.layers * per_block

    def unembed(self, rows: int, times: int = 1) -> float:
        """Seconds of ``times`` vocabulary projections of ``rows`` residuals, with three exponentials per logit (the
        log-softmax, the probabilities, the KL to the last layer)."""
        elementwise = 3 * rows * self.d.vocab / self.rates.exp_per_s
        return times * (self.matmul(rows, self.d.hidden, self.d.vocab) + elementwise)

    def forward(self, prompts: int, tokens: int) -> Cost:
        """One batched forward that keeps every layer's residual (probes, the lens)."""
        captured = (self.d.layers + 1) * prompts * tokens * self.d.hidden * 4
        return Cost(self.blocks(prompts * tokens), captured)

    def lens(self, prompts: int, tokens: int) -> Cost:
        """The logit lens at every layer, last position: a forward, then one vocabulary projection per layer."""
        logits = prompts * self.d.vocab * 4 * 8
        return self.forward(prompts, tokens) + Cost(self.unembed(prompts, self.d.layers + 1), logits)

    def fits(self, count: int, samples: int = 64, quick: bool = False) -> Cost:
        """``count`` probe fits on ``samples`` prompts of this width: the measured fit (64 x 2,048, sklearn's; the
        permutation nulls' own solver at ``quick``) scaled by samples x width, a fifth of it fixed overhead."""
        size = samples * self.d.hidden / (64 * 2048)
        each = (self.rates.quick_fit_s if quick else self.rates.fit_s) * (0.2 + 0.8 * size)
        return Cost(count * each)

    def projections(self, directions: int) -> Cost:
        """Cosines of ``directions`` residual directions with every unembedding row."""
        return Cost(self.matmul(directions, self.d.hidden, self.d.vocab), directions * self.d.vocab * 4)

    def ranks(self, directions: int) -> Cost:
        """Ranks of a word among the cosines of ``directions`` residual directions, one at a time (a bootstrap: each
        direction comes from its own fit): two passes over the unembedding in float32 each, row norms and dots."""
        return Cost(directions * 2 * self.d.vocab * self.d.hidden * 4 / (self.rates.bandwidth_gbs * GB))

    def init(self) -> Cost:
        """A random-init model of the same architecture (its weights are counted in the part's ``resident``)."""
        return Cost(param_count(self.d) / self.rates.init_params_per_s)

    def load(self) -> Cost:
        """A fresh copy of the model from disk, a float16 file converted (counted in the part's ``resident``)."""
        return Cost(param_count(self.d) * 6 / (self.rates.bandwidth_gbs * GB))

    def train(self, steps: int, batch: int, seq: int, *, lora_rank: int = 0) -> Cost:
        """``steps`` AdamW steps: forward and backward through the blocks and the head; LoRA freezes the rest. The
        gradients, optimizer state, activations and logits are the part's arrays; models held are the part's."""
        tokens = batch * seq
        passes = 2 if lora_rank else 3
        head = 3 * self.unembed(tokens)
        update = 0.0 if lora_rank else 4 * param_count(self.d) * 4 / (self.rates.bandwidth_gbs * GB)
        mem = predict_memory(self.d, batch, seq, lora_rank=lora_rank)
        extra = mem.total - mem.weights + (lora_param_count(self.d, lora_rank) * 4 if lora_rank else 0)
        return Cost(steps * (self.blocks(tokens, passes) + head + update), extra)

    def generate(self, sequences: int, new_tokens: int, prompt: int = SYMBOL_TOKENS) -> Cost:
        """Sampling ``new_tokens`` for ``sequences`` prompts at once, one token per step with a KV cache."""
        step = self.blocks(sequences) + self.unembed(sequences)
        return Cost(self.blocks(sequences * prompt) + new_tokens * step,
                    sequences * (prompt + new_tokens) * self.d.layers * 2 * self.d.kv_dim * 4)


@dataclass
class Part:
    """One part of a claim's run: the measurement, a control, a training run."""

    name: str
    cost: Cost
    runs: int = 1
    resident: int = 1  # copies of the checkpoint held while it runs (the measured model counts one)
    random: int = 0  # random-init models held beside them: built in float32 on every device

    @property
    def seconds(self) -> float:
        return self.cost.seconds * self.runs

    def held(self, w: "Workload") -> int:
        """Bytes held at this part's peak beyond the process: the models, then the part's own arrays."""
        return self.resident * w.weight_bytes + self.random * param_count(w.d) * 4 + self.cost.peak


@dataclass
class ClaimPlan:
    claim: str
    parts: list[Part]
    peak_bytes: int
    seconds: float
    fits: bool
    note: str = ""
    after: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"claim": self.claim, "peak_gb": round(self.peak_bytes / GB, 2), "seconds": round(self.seconds, 1),
                "fits": self.fits, "note": self.note, "after": list(self.after),
                "parts": [{"name": p.name, "runs": p.runs, "seconds": round(p.seconds, 2),
                           "arrays_gb": round(p.cost.peak / GB, 3), "checkpoints_held": p.resident,
                           "random_models_held": p.random}
                          for p in self.parts]}


def _analysis_parts(w: Workload, c, measure: Cost, graded_extra: Cost | None = None,
                    null_is_random: bool = False) -> list[Part]:
    """A forward-only claim's parts: its measurement (the model and a random-init one), each graded plant on a fresh
    copy, its nulls (a random-init model in place of the checkpoint, or a permutation) and controls (a trained copy)."""
    planted = w.load() + (graded_extra or Cost()) + measure
    out = [Part("measurement", measure, random=1)]
    out += [Part(f"graded: {g.name}", planted, len(g.strengths) * g.replicates, resident=2, random=1)
            for g in c.graded]
    out += [Part(f"null: {n.name}", (w.init() if null_is_random else Cost()) + measure, n.replicates,
                 random=2 if null_is_random else 1) for n in c.nulls]
    out += [Part(f"control: {x.name}", w.load() + measure, resident=2, random=1) for x in c.controls]
    return out


def _lens_claim(w: Workload, c, tier: str) -> list[Part]:
    """H01: the lens on 8 prompts and on a random-init model; graded plants calibrated by bisection (26 lenses)."""
    measure = w.lens(8, SYMBOL_TOKENS) * 2 + w.init()
    return _analysis_parts(w, c, measure, graded_extra=w.lens(8, SYMBOL_TOKENS) * 26, null_is_random=True)


def _probe_set(w: Workload, prompts: int, tokens: int, groups: int, k: int) -> Cost:
    """``probe_prompt_set``: residuals of every layer, then per layer a stratified k-fold, leave-one-group-out and
    the control task's k-fold."""
    return w.forward(prompts, tokens) + w.fits((w.d.layers + 1) * (2 * k + groups), prompts)


def _symbol_probe_claim(w: Workload, c, tier: str) -> list[Part]:
    """H02: 16 symbol prompts (4 operand pairs) probed at every layer, a within-pair permutation null at block 0,
    held-out prompts, and the same probes on a random-init model."""
    p = c.params
    k = p["n_splits"]
    probed = _probe_set(w, 16, SYMBOL_TOKENS, 4, k)
    measure = (probed + w.fits(k + 4 + 2, 16) + w.fits(p["n_permutations"] * k, 16, quick=True)
               + w.forward(8, SYMBOL_TOKENS) + w.init() + probed)
    return _analysis_parts(w, c, measure)


def _word_probe_claim(w: Workload, c, tier: str) -> list[Part]:
    """H03: two sets of 64 word prompts probed at every layer, a within-cell permutation null at every block, the
    nested choice of the peak, and the probes on a random-init model."""
    p = c.params
    k, blocks = p["n_splits"], w.d.layers
    probed = _probe_set(w, 64, WORD_TOKENS, 4, k)
    measure = (probed * 3 + w.init() + w.fits(2 * k + 4 + blocks * k, 64)
               + w.fits(p["n_permutations"] * blocks * k, 64, quick=True))
    return _analysis_parts(w, c, measure)


def _direction_claim(w: Workload, c, tier: str) -> list[Part]:
    """H04: a probe at 55% depth with its permutation test and bootstrap, cosines of the direction (and of random
    ones) with the vocabulary, the word prompts' direction, and a random-init model's direction."""
    p = c.params
    k = p["n_splits"]
    one = (w.forward(12, SYMBOL_TOKENS) + w.fits(2 + k * (1 + p["n_permutations"]) + p["n_bootstrap"], 12)
           + w.ranks(2 + p["n_bootstrap"]) + w.projections(p["n_null"]))
    measure = (one + w.forward(32, WORD_TOKENS) + w.fits(1, 32) + w.ranks(1) + w.init()
               + w.forward(12, SYMBOL_TOKENS) + w.fits(1, 12) + w.ranks(1))
    return _analysis_parts(w, c, measure, null_is_random=True)


def _router_claim(w: Workload, c, tier: str) -> list[Part]:
    """H10: every router row against every unembedding row, and three random-row nulls (the alignment's, the
    perpendicular part's and the top-k hits') of ceil(null_per_test x rows / alpha) rows each."""
    p = c.params
    rows = max(1, w.routed) * w.d.layers
    n_null = math.ceil(p["null_per_test"] * rows / p["alpha"])
    measure = w.projections(rows + 3 * n_null)
    out = [Part("measurement", measure)]
    out += [Part(f"graded: {g.name}", measure, len(g.strengths) * g.replicates) for g in c.graded]
    out += [Part(f"null: {n.name}", measure, n.replicates) for n in c.nulls]
    return out


def _training_claim(batch: int, seq: int, ranks: tuple[int, ...], copies: int = 0, evals: int = 16,
                    steps_key: str = "steps", default_steps: int = 500, generate: tuple[int, int] = (0, 0)):
    """A training claim: per seed and protocol, one run per arm (``ranks``: LoRA rank, 0 for full fine-tuning) of
    ``steps`` AdamW steps, each read by a lens on ``evals`` prompts; graded plants and nulls re-read trained runs
    (a lens each); controls rerun the first arm."""
    def parts(w: Workload, c, tier: str) -> list[Part]:
        p = c.params
        steps = int(p.get(steps_key) or default_steps)
        seeds, protocols = int(p.get("min_seeds", 5)), len(c.tier_protocols(tier))
        read = w.lens(evals, SYMBOL_TOKENS)
        runs = []
        for rank in ranks:
            run = w.train(steps, batch, seq, lora_rank=rank) + read
            runs.append(run + w.generate(*generate) * steps if generate[0] else run)
        out = [Part(f"training: {'full' if r == 0 else f'LoRA r{r}'} x {seeds} seeds x {protocols} protocol(s)",
                    run, seeds * protocols, resident=1 + copies) for r, run in zip(ranks, runs)]
        out += [Part(f"graded: {g.name}", read, len(g.strengths) * g.replicates) for g in c.graded]
        out += [Part(f"null: {n.name}", read, n.replicates) for n in c.nulls]
        out += [Part(f"control: {x.name}", runs[0], seeds, resident=1 + copies) for x in c.controls]
        return out
    return parts


WORK: dict[str, Callable[[Workload, object, str], list[Part]]] = {
    "H01": _lens_claim,
    "H02": _symbol_probe_claim,
    "H03": _word_probe_claim,
    "H04": _direction_claim,
    "H05a": _training_claim(8, SYMBOL_TOKENS, (8,)),
    "H05b": _training_claim(8, SYMBOL_TOKENS, (8,), generate=(8, 6)),
    "H06": _training_claim(8, SYMBOL_TOKENS, (8, 8)),
    "H07": _training_claim(32, 32, (0,), copies=1, generate=(32, 16)),
    "H08": _training_claim(16, 16, (0,), copies=1, generate=(16, 8)),
    "H09": _training_claim(16, 16, (0, 0, 0, 0), copies=1, generate=(16, 8), default_steps=20),
    "H10": _router_claim,
    "H11": _training_claim(8, SYMBOL_TOKENS, (8,), steps_key="checkpoints", evals=32),
    "H12": _training_claim(8, SYMBOL_TOKENS, (8, 0)),
    "H13": _training_claim(8, SYMBOL_TOKENS, (8,)),
    "H14": _training_claim(4, SYMBOL_TOKENS, (16, 8, 32), steps_key="stage1_steps"),
    "H15a": _training_claim(16, 32, (8, 8, 8), evals=0),
    "H15b": _training_claim(16, 32, (8, 8, 8), evals=0),
}


def _steps_param(value) -> int | None:
    return max(value) if isinstance(value, (list, tuple)) and value else value


def claim_parts(claim, w: Workload, tier: str = "slow") -> list[Part]:
    """The priced parts of a claim with a cost model (``WORK``), its parameters as declared (``checkpoints`` read
    as the last step)."""
    params = {k: _steps_param(v) if k == "checkpoints" else v for k, v in claim.params.items()}
    return WORK[claim.id](w, _Declared(claim, params), tier)


def plan_claim(claim, w: Workload, tier: str = "slow") -> ClaimPlan:
    """The plan of one claim on the workload's model."""
    if claim.id not in WORK:
        return ClaimPlan(claim.id, [], 0, 0.0, True, note="no cost model (a user's claim)")
    parts = claim_parts(claim, w, tier)
    peak = PROCESS_BYTES + max(p.held(w) for p in parts)
    seconds = sum(p.seconds for p in parts)
    return ClaimPlan(claim.id, parts, peak, seconds, peak <= w.rates.memory_bytes, after=tuple(claim.after))


@dataclass
class _Declared:
    """A claim's declaration with its parameters resolved (``checkpoints`` as the last step)."""

    claim: object
    params: dict

    def __getattr__(self, name):
        return getattr(self.claim, name)


def _config_path(model: str) -> Path:
    """Where a model's config.json is: a zoo or replica folder, a local folder, or the Hugging Face cache."""
    from ..errors import LazarusError
    from ..zoo.registry import PREFIXES, _zoo_path

    if model.startswith(PREFIXES):  # not resolve_zoo: its checksums would read the weights
        return _zoo_path(model)[0] / "config.json"
    local = Path(model).expanduser()
    if local.exists() or model.count("/") != 1:
        return local / "config.json"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model, "config.json")
    if not isinstance(cached, str):
        raise LazarusError(f"the plan reads {model}'s config.json, which is not in the Hugging Face cache; fetch "
                           f"it with `huggingface-cli download {model} config.json`")
    return Path(cached)


def has_chat_template(model: str) -> bool:
    """Whether the model's tokenizer_config.json (beside its config.json) has a chat template."""
    from ..errors import LazarusError
    from ..userfiles import read_user_json

    try:
        return bool(read_user_json(_config_path(model).parent / "tokenizer_config.json", "tokenizer config").get(
            "chat_template"))
    except LazarusError:
        return False


def read_config(model: str) -> dict:
    """``config.json`` of a model folder, zoo id or cached hub id, without touching its weights."""
    from ..errors import LazarusError
    from ..userfiles import read_user_json

    path = _config_path(model)
    if not path.exists():
        raise LazarusError(f"the plan reads the model's config.json, and {path} does not exist")
    config = read_user_json(path, "the model's config")
    if "hidden_size" not in config:
        raise LazarusError(f"{path}: not a model config (no hidden_size)")
    return config


def workload(config: dict, rates: Rates) -> Workload:
    """The priced primitives for a model config (text_config of a multimodal one; experts at top-k)."""
    config = config.get("text_config", config)
    experts = int(config.get("num_experts_per_tok") or 1)
    routed = int(config.get("num_local_experts") or config.get("num_experts") or 0)
    return Workload(dims_of(config), rates, experts=experts, routed=routed)


def model_facts(model: str, config: dict, chat: bool = False):
    """What decides whether a claim applies to a model (MoE, instruct, untied, its instruct pair), from its config
    and whether its tokenizer has a chat template: ``model_info`` without loading the model."""
    from ..harness.base import ModelInfo
    from ..harness.pairs import instruct_pair_of

    config = config.get("text_config", config)
    moe = bool(config.get("num_local_experts") or config.get("num_experts"))
    tied = bool(config.get("tie_word_embeddings", True))
    name = model.lower()
    kind = ("moe" if moe else "instruct" if chat and ("instruct" in name or "chat" in name)
            else "base" if tied else "untied")
    return ModelInfo(model_id=model, model_type=str(config.get("model_type", "")), kind=kind,
                     n_layers=int(config.get("num_hidden_layers", 0)), is_moe=moe, tied=tied,
                     instruct_pair=None if kind == "instruct" else instruct_pair_of(model))


def plan_run(config: dict, claims, rates: Rates, tier: str = "slow", model: str = "",
             chat: bool = False) -> list[ClaimPlan]:
    """Every claim's plan on the model; a claim that does not apply to it is listed with the reason, at no cost."""
    w = workload(config, rates)
    info = model_facts(model, config, chat)
    plans = []
    for claim in claims:
        reason = claim.applies(info)
        plans.append(ClaimPlan(claim.id, [], 0, 0.0, True, note=f"skipped: {reason}") if reason
                     else plan_claim(claim, w, tier))
    return plans


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render(model: str, config: dict, plans: list[ClaimPlan], rates: Rates) -> str:
    """The plan as a table: claim, predicted peak memory, wall time, whether it fits, and the total."""
    from tabulate import tabulate

    d = dims_of(config.get("text_config", config))
    rows = [[p.claim, f"{p.peak_bytes / GB:.1f}" if p.parts else "-", _duration(p.seconds) if p.parts else "-",
             ("yes" if p.fits else "NO") if p.parts else "-",
             (p.note or (f"reads {', '.join(p.after)}'s runs" if p.after else ""))[:90]]
            for p in plans]
    head = (f"plan for {model}: {param_count(d) / 1e9:.3g}B parameters, {d.layers} layers, width {d.hidden}, "
            f"vocabulary {d.vocab:,}; {rates.device}, {rates.dtype_bytes * 8}-bit weights, GEMM "
            f"{rates.gemm_gflops:.0f} GFLOP/s, memory reads {rates.bandwidth_gbs:.1f} GB/s, "
            f"{rates.memory_bytes / GB:.1f} GB available")
    table = tabulate(rows, headers=["claim", "peak GB", "wall (1 worker)", "fits", "note"], tablefmt="github")
    unfit = [p.claim for p in plans if not p.fits]
    total = sum(p.seconds for p in plans)
    tail = f"total: {_duration(total)} on one worker"
    if unfit:
        tail += f"; {len(unfit)} claim(s) do not fit in memory: {', '.join(unfit)} (run skips them; --force runs them)"
    return "\n".join([head, "", table, "", tail])


def too_big(plans: list[ClaimPlan], rates: Rates) -> dict[str, str]:
    """Claim id -> the one-line reason it is skipped: its predicted peak exceeds the memory available."""
    return {p.claim: (f"the plan predicts a {p.peak_bytes / GB:.1f} GB peak and "
                      f"{rates.memory_bytes / GB:.1f} GB is available (--force runs it anyway)")
            for p in plans if not p.fits}
