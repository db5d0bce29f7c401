"""GRPO with TRL GRPOTrainer semantics, optionally mixed with a logit-lens classification loss (seed 002).

Fixes the seed's defects (seed-methods §12 item 8): the PPO ratio is against the sampling policy (not
the reference), log-probs cover completion tokens only, and the KL to the frozen reference is TRL's
k3 estimator ``exp(ref - logp) - (ref - logp) - 1`` (never negative).

Per step: ``prompts_per_step`` prompts of seed 002's template, ``group_size`` temperature samples each
(KV cache, stop at EOS), reward 1 when the first integer of the completion is the exact answer,
advantages ``(r - mean) / (std + 1e-4)`` per group with torch's unbiased std (as TRL), one optimizer
update on ``(1 - w) * GRPO + w * (CE(lens at 0.55 L, op word) - entropy_bonus * H)``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from .. import options
from ..analysis.generate import eos_ids, first_int
from ..errors import LazarusError
from ..models import ModelHandle, save_model
from ..prompts import GrpoSpec, grpo_spec
from .data import class_token_ids
from .loop import TrainConfig, TrainResult, train_loop
from .lora import LoraSpec, apply_lora, save_adapter

ADV_EPS = 1e-4

RewardFn = Callable[[str, int], float]


@dataclass
class GRPOConfig:
    """GRPO settings (TRL defaults where they exist: beta 0.04, epsilon 0.2, temperature 1) plus dual-reward mixing.

    ``seed`` drives prompts, completions, LoRA init and the loop's RNG (it overrides ``train.seed``).
    ``cls_weight`` w mixes in the lens classification CE (0 = pure GRPO); ``entropy_bonus`` subtracts
    that coefficient times the entropy of the batch-mean lens distribution from the CE (seed 002's
    "diversity" fix; needs w > 0); ``balanced_ops`` draws equal counts per operation each step.
    ``train.compile`` defaults to False: rollout shapes change every step.
    """

    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=30, lr=1e-5, optimizer="adamw", grad_clip=1.0, compile=False, log_every=1, name="grpo"))
    prompts_per_step: int = 8
    group_size: int = 4
    max_new_tokens: int = 16
    temperature: float = 1.0
    beta: float = 0.04
    epsilon: float = 0.2
    lora: LoraSpec | None = None
    seed: int = 0
    cls_weight: float = 0.0
    cls_layer_fraction: float = 0.55
    entropy_bonus: float = 0.0
    balanced_ops: bool = False

    def validate(self) -> None:
        if self.group_size < 2:
            raise LazarusError(f"group_size must be >= 2 (group std is undefined for {self.group_size})")
        if self.prompts_per_step < 1 or self.max_new_tokens < 1:
            raise LazarusError("prompts_per_step and max_new_tokens must be >= 1")
        if not self.temperature > 0:
            raise LazarusError(f"temperature must be > 0 for sampling, not {self.temperature}")
        options.check(options.OPTIONS, "cls_weight", self.cls_weight, owner="GRPO: ")
        if self.entropy_bonus and not self.cls_weight:
            raise LazarusError("entropy_bonus acts on the classification term: set cls_weight > 0")

    def to_dict(self) -> dict:
        return asdict(self)


def seed002_configs(seed: int = 0) -> dict[str, GRPOConfig]:
    """Seed 002's runs: pure GRPO (H07), GRPO + dual w=0.4 (H08) and the four collapse fixes (H09).

    Fixes: balanced ops with per-sample targets; + entropy bonus 0.5; LR 2e-6, beta 0.001, 50 steps,
    no entropy; w = 0.9, beta 0, 100 steps. Keeping balanced sampling in fixes 2-4 is our reading; beta
    0.1 elsewhere is the original trainer's kl_coef (now on the k3 estimator).
    """
    def cfg(steps: int, lr: float, group: int, **kw: Any) -> GRPOConfig:
        train = TrainConfig(steps=steps, lr=lr, optimizer="adamw", grad_clip=1.0, compile=False, log_every=1,
                            seed=seed, name=kw.pop("name"))
        kw.setdefault("beta", 0.1)
        return GRPOConfig(train=train, prompts_per_step=8, group_size=group, seed=seed, **kw)

    return {
        "grpo": cfg(30, 1e-5, 4, name="grpo"),
        "dual": cfg(20, 1e-5, 2, name="grpo_dual", cls_weight=0.4),
        "balanced": cfg(20, 1e-5, 2, name="grpo_dual_balanced", cls_weight=0.4, balanced_ops=True),
        "entropy": cfg(20, 1e-5, 2, name="grpo_dual_entropy", cls_weight=0.4, balanced_ops=True, entropy_bonus=0.5),
        "low_lr": cfg(50, 2e-6, 2, name="grpo_dual_low_lr", cls_weight=0.4, balanced_ops=True, beta=0.001),
        "cls_heavy": cfg(100, 1e-5, 2, name="grpo_dual_w09", cls_weight=0.9, balanced_ops=True, beta=0.0),
    }


@dataclass(frozen=True)
class GrpoPrompt:
    """One training prompt: text, operation label and exact integer answer."""

    text: str
    label: str
    answer: int


def sample_prompts(spec: GrpoSpec, n: int, seed: int, balanced: bool = False) -> list[GrpoPrompt]:
    """``n`` seeded prompts; ``balanced``: n // k per operation (+1 for a random few), shuffled."""
    if not balanced:
        return [GrpoPrompt(it.text, it.label, it.answer) for it in spec.sample(n, seed=seed)]
    rng = np.random.default_rng([seed, 1])
    k = len(spec.operations)
    counts = [n // k] * k
    for j in rng.permutation(k)[: n % k]:
        counts[j] += 1
    items: list[GrpoPrompt] = []
    for j, (op, c) in enumerate(zip(spec.operations, counts)):
        one = dataclasses.replace(spec, operations=(op,))
        items += [GrpoPrompt(it.text, it.label, it.answer) for it in one.sample(c, seed=seed * 131 + j)]
    return [items[i] for i in rng.permutation(len(items))]


def answer_reward(completion: str, answer: int) -> float:
    """1.0 when the first integer (``-?\\d+``) in the completion equals the answer, else 0.0."""
    return 1.0 if first_int(completion) == int(answer) else 0.0


def group_advantages(rewards: np.ndarray | Sequence[float], group_size: int, eps: float = ADV_EPS) -> np.ndarray:
    """TRL's advantages: ``(r - group mean) / (group std + eps)``, std unbiased (torch ``std`` default, ddof=1).

    A group whose rewards are all equal gets advantage 0 for every member.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
    mean = r.mean(axis=1, keepdims=True)
    std = r.std(axis=1, ddof=1, keepdims=True)
    return ((r - mean) / (std + eps)).reshape(-1).astype(np.float32)


def token_logps(logits: mx.array, targets: mx.array, temperature: float = 1.0) -> mx.array:
    """Log-probability of each target under ``softmax(logits / temperature)`` (TRL divides by the temperature)."""
    return -nn.losses.cross_entropy(logits.astype(mx.float32) / temperature, targets)


def k3_kl(logp: mx.array, ref_logp: mx.array) -> mx.array:
    """Per-token k3 estimator of KL(policy || reference): non-negative, zero with zero gradient at equality."""
    d = ref_logp - logp
    return mx.exp(d) - d - 1.0


def masked_mean(x: mx.array, mask: mx.array) -> mx.array:
    return (x * mask).sum() / mx.maximum(mask.sum(), 1.0)


def grpo_objective(logp: mx.array, old_logp: mx.array, ref_logp: mx.array, advantages: mx.array, mask: mx.array,
                   epsilon: float, beta: float) -> tuple[mx.array, dict]:
    """TRL ``loss_type="grpo"``: clipped surrogate + beta * k3 KL per token, mean over each completion, then over rows.

    Returns the loss and its diagnostics: token-mean KL and TRL's clip ratio (tokens whose clipped
    branch was active: ratio < 1 - eps with A < 0, or ratio > 1 + eps with A > 0).
    """
    ratio = mx.exp(logp - old_logp)
    adv = advantages[:, None]
    per_token = -mx.minimum(ratio * adv, mx.clip(ratio, 1 - epsilon, 1 + epsilon) * adv)
    kl = k3_kl(logp, ref_logp)
    if beta:
        per_token = per_token + beta * kl
    per_seq = (per_token * mask).sum(-1) / mx.maximum(mask.sum(-1), 1.0)
    clipped = ((ratio < 1 - epsilon) & (adv < 0)) | ((ratio > 1 + epsilon) & (adv > 0))
    stats = {"kl": mx.stop_gradient(masked_mean(kl, mask)), "clip_ratio": masked_mean(clipped.astype(mx.float32), mask)}
    return per_seq.mean(), stats


@dataclass
class Completion:
    """Sampled tokens of one completion (through its first EOS, included), their sampling log-probs, EOS seen."""

    tokens: list[int]
    logps: list[float]
    finished: bool


def _length_buckets(lengths: Sequence[int]) -> list[list[int]]:
    """Indices grouped by equal length (sorted), so each batch needs no padding."""
    by: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by.setdefault(n, []).append(i)
    return [by[n] for n in sorted(by)]


BATCHED_TYPES = ("llama", "qwen2", "granite", "mixtral", "olmoe", "gpt_oss", "qwen2_moe")  # checked in test_grpo.py


def _batch_cache(model: nn.Module, left_padding: list[int]) -> list | None:
    """mlx-lm's left-padding batch caches in place of the model's own (full and sliding-window attention), so prompts
    of different lengths share one decode loop; None for an architecture whose padded decode is not checked against
    unpadded decoding (gemma2 builds its own mask) or another cache kind."""
    from mlx_lm.models import cache as C

    if getattr(model, "model_type", None) not in BATCHED_TYPES:
        return None

    base = model.make_cache() if hasattr(model, "make_cache") else [C.KVCache() for _ in model.layers]
    out = []
    for c in base:
        if type(c) is C.KVCache:
            out.append(C.BatchKVCache(left_padding))
        elif type(c) is C.RotatingKVCache and c.keep == 0:
            out.append(C.BatchRotatingKVCache(c.max_size, left_padding))
        else:
            return None
    return out


def generate(model: nn.Module, prompts: Sequence[Sequence[int]], group_size: int, max_new_tokens: int,
             temperature: float, key: mx.array | None, stop: set[int], batched: bool = True) -> list[Completion]:
    """``group_size`` completions per prompt (prompt-major order), KV-cached, in one decode loop: prompts of different
    lengths are left-padded into mlx-lm's batch caches (their masks hide the padding; RoPE positions start at each
    prompt's first token), else (an unsupported cache kind) one loop per prompt length.

    ``temperature`` 0 is greedy; otherwise categorical sampling from ``logits / temperature`` with
    ``key`` (None: ``mx.random.key(0)``; deterministic given the key and the weights). Log-probs are of
    the sampling distribution. ``batched=False`` keeps one loop per prompt length (the benchmark's baseline).
    """
    from mlx_lm.models.cache import make_prompt_cache

    if temperature and key is None:
        key = mx.random.key(0)
    lengths = [len(p) for p in prompts]
    width = max(lengths)
    pads = [width - lengths[i] for i in range(len(prompts)) for _ in range(group_size)]
    shared = _batch_cache(model, pads) if batched and len(set(lengths)) > 1 else None
    if shared is not None:
        batches = [(list(range(len(prompts))), shared)]
    else:
        batches = [(bucket, make_prompt_cache(model)) for bucket in _length_buckets(lengths)]
    out: list[Completion | None] = [None] * (len(prompts) * group_size)
    stop_arr = np.array(sorted(stop), dtype=np.int64)
    for members, cache in batches:
        rows = [i * group_size + g for i in members for g in range(group_size)]
        left = [width - len(prompts[i]) if shared is not None else 0 for i in members]  # left padding per prompt
        x = mx.array([[0] * pad + list(prompts[i]) for i, pad in zip(members, left) for _ in range(group_size)],
                     dtype=mx.int32)
        logits = model(x, cache=cache)[:, -1, :]
        toks = np.zeros((len(rows), max_new_tokens), dtype=np.int64)
        lps = np.zeros((len(rows), max_new_tokens), dtype=np.float64)
        done = np.zeros(len(rows), dtype=bool)
        n = 0
        for t in range(max_new_tokens):
            scaled = logits.astype(mx.float32) / (temperature or 1.0)
            if temperature:
                key, sub = mx.random.split(key)
                tok = mx.random.categorical(scaled, key=sub)
            else:
                tok = mx.argmax(scaled, axis=-1)
            lp = mx.take_along_axis(scaled - mx.logsumexp(scaled, axis=-1, keepdims=True), tok[:, None], axis=-1)[:, 0]
            mx.eval(tok, lp)
            toks[:, t], lps[:, t] = np.array(tok), np.array(lp)
            n = t + 1
            done |= np.isin(toks[:, t], stop_arr)
            if done.all() or n == max_new_tokens:
                break
            logits = model(tok[:, None].astype(mx.int32), cache=cache)[:, -1, :]
        for r, row in enumerate(rows):
            hit = np.flatnonzero(np.isin(toks[r, :n], stop_arr))
            end = int(hit[0]) + 1 if hit.size else n
            out[row] = Completion(toks[r, :end].tolist(), lps[r, :end].tolist(), bool(hit.size))
    return out  # type: ignore[return-value]


@dataclass
class Rollout:
    """One step's samples: prompts (one per group), completions and rewards (prompt-major rows), advantages, timing."""

    prompts: list[GrpoPrompt]
    prompt_ids: list[list[int]]
    completions: list[Completion]
    texts: list[str]
    rewards: np.ndarray
    advantages: np.ndarray
    group_size: int
    gen_tokens: int
    gen_seconds: float

    def to_dict(self) -> dict:
        return {"prompts": [asdict(p) for p in self.prompts], "texts": self.texts,
                "completion_tokens": [c.tokens for c in self.completions], "rewards": self.rewards.tolist(),
                "advantages": self.advantages.tolist(), "group_size": self.group_size,
                "gen_tokens": self.gen_tokens, "gen_seconds": self.gen_seconds}


def rollout_arrays(rollout: Rollout, ref: nn.Module, temperature: float, class_ids: dict[str, int],
                   pad_id: int) -> tuple[mx.array, ...]:
    """Right-padded prompt+completion batch with a completion-only target mask and the reference log-probs.

    ``cmask[i, j]`` is 1 when target j (= token j + 1) is a completion token, EOS included; prompt
    tokens and padding are 0. Order: inputs, targets, cmask, valid, advantages, ref_logps,
    sample_logps, last_prompt, labels, rewards, stats (gen tokens, gen seconds).
    """
    g = rollout.group_size
    rows = [(rollout.prompt_ids[i // g], c) for i, c in enumerate(rollout.completions)]
    width = max(len(p) + len(c.tokens) for p, c in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int32)
    cmask = np.zeros((len(rows), width - 1), dtype=np.float32)
    valid = np.zeros((len(rows), width - 1), dtype=np.float32)
    sample = np.zeros((len(rows), width - 1), dtype=np.float32)
    for i, (p, c) in enumerate(rows):
        n = len(p) + len(c.tokens)
        ids[i, :n] = p + c.tokens
        cmask[i, len(p) - 1 : n - 1] = 1.0
        valid[i, : n - 1] = 1.0
        sample[i, len(p) - 1 : n - 1] = c.logps
    inputs, targets = mx.array(ids[:, :-1]), mx.array(ids[:, 1:])
    ref_logps = mx.stop_gradient(token_logps(ref(inputs), targets, temperature))
    labels = [class_ids.get(rollout.prompts[i // g].label, -1) for i in range(len(rows))]
    return (
        inputs, targets, mx.array(cmask), mx.array(valid), mx.array(rollout.advantages), ref_logps, mx.array(sample),
        mx.array(np.array([len(p) - 1 for p, _ in rows], dtype=np.int32)), mx.array(np.array(labels, dtype=np.int32)),
        mx.array(rollout.rewards.astype(np.float32)),
        mx.array(np.array([rollout.gen_tokens, rollout.gen_seconds], dtype=np.float32)),
    )


def frozen_copy(model: nn.Module) -> nn.Module:
    """A separate, frozen, eval-mode module sharing the current weight arrays (mlx arrays are immutable).

    Training replaces the policy's arrays, so the copy keeps the initial weights at no memory cost.
    """
    memo = {id(v): v for _, v in tree_flatten(model.parameters())}
    ref = copy.deepcopy(model, memo)
    ref.freeze()
    ref.eval()
    return ref


def step_key(seed: int, step: int, rank: int = 0) -> tuple[int, mx.array]:
    """Prompt seed and sampling key of one (seed, step, rank)."""
    k = int(np.random.default_rng([seed, step, rank]).integers(0, 2**62))
    return k, mx.random.key(k)


class RolloutBatcher:
    """``batch_at`` for the train loop: samples a fresh rollout from the current policy each step (seeded by step)."""

    def __init__(self, handle: ModelHandle, ref: nn.Module, cfg: GRPOConfig, class_ids: dict[str, int],
                 spec: GrpoSpec | None = None, reward_fn: RewardFn = answer_reward):
        self.handle, self.ref, self.cfg, self.class_ids = handle, ref, cfg, class_ids
        self.spec = spec or grpo_spec()
        self.reward_fn = reward_fn
        tok = handle.hf_tokenizer
        self.stop = eos_ids(handle.tokenizer)
        self.pad_id = next((i for i in (getattr(tok, "pad_token_id", None), *sorted(self.stop)) if i is not None), 0)
        self.last: Rollout | None = None

    def rollout(self, step: int, rank: int = 0) -> Rollout:
        cfg, model = self.cfg, self.handle.model
        pseed, key = step_key(cfg.seed, step, rank)
        prompts = sample_prompts(self.spec, cfg.prompts_per_step, pseed, cfg.balanced_ops)
        prompt_ids = [self.handle.encode(p.text) for p in prompts]
        training = model.training
        model.eval()
        t0 = time.perf_counter()
        completions = generate(model, prompt_ids, cfg.group_size, cfg.max_new_tokens, cfg.temperature, key, self.stop)
        seconds = time.perf_counter() - t0
        if training:
            model.train()
        tok = self.handle.hf_tokenizer
        texts = [tok.decode(c.tokens, skip_special_tokens=True) for c in completions]
        g = cfg.group_size
        rewards = np.array([self.reward_fn(t, prompts[i // g].answer) for i, t in enumerate(texts)], dtype=np.float64)
        return Rollout(prompts, prompt_ids, completions, texts, rewards, group_advantages(rewards, g), g,
                       sum(len(c.tokens) for c in completions), seconds)

    def __call__(self, step: int, rank: int = 0, world: int = 1) -> tuple[mx.array, ...]:
        self.last = self.rollout(step, rank)
        return rollout_arrays(self.last, self.ref, self.cfg.temperature, self.class_ids, self.pad_id)


def make_loss(handle: ModelHandle, cfg: GRPOConfig, class_ids: dict[str, int]) -> Callable[..., tuple]:
    """The train loop's ``loss_fn``: ``(1 - w) * GRPO + w * cls`` with per-step diagnostics in aux.

    Old log-probs are the current log-probs detached (one update per rollout, so the current weights
    are the sampling policy, as TRL with ``num_iterations=1``): the ratio is exactly 1 and its
    gradient is the policy gradient.
    """
    w = float(cfg.cls_weight)
    layer = handle.layer_at_depth(cfg.cls_layer_fraction)
    ids = mx.array(sorted(set(class_ids.values())), dtype=mx.int32)
    g = cfg.group_size

    def loss_fn(model, inputs, targets, cmask, valid, adv, ref_logps, sample_logps, last_prompt, labels, rewards,
                stats):
        capture = handle.forward(inputs) if w > 0 else None
        logits = capture.logits if capture is not None else model(inputs)
        logp = token_logps(logits, targets, cfg.temperature)
        old = mx.stop_gradient(logp)
        grpo, diag = grpo_objective(logp, old, ref_logps, adv, cmask, cfg.epsilon, cfg.beta)
        groups = rewards.reshape(-1, g)
        aux = {
            "reward": rewards.mean(),
            "zero_std_frac": (groups.max(axis=1) == groups.min(axis=1)).astype(mx.float32).mean(),
            "kl": diag["kl"],
            "clip_ratio": diag["clip_ratio"],
            "completion_len": cmask.sum(-1).mean(),
            "grpo_loss": grpo,
            "sampler_logp_gap": masked_mean(mx.abs(sample_logps - old), cmask),
            "gen_tokens_per_s": stats[0] / mx.maximum(stats[1], 1e-9),
            "gen_tokens": stats[0],
            "gen_seconds": stats[1],
        }
        loss = grpo
        if w > 0:
            h = capture.hidden[layer + 1][mx.arange(inputs.shape[0]), last_prompt]
            lens = handle.lens_logits(h).astype(mx.float32)
            ce = nn.losses.cross_entropy(lens, labels).mean()
            pbar = mx.softmax(lens, axis=-1).mean(axis=0)
            entropy = -(pbar * mx.log(pbar + 1e-30)).sum()
            cls = ce - cfg.entropy_bonus * entropy
            loss = (1 - w) * grpo + w * cls
            pred = ids[mx.argmax(lens[:, ids], axis=-1)]
            share = (pred[:, None] == ids[None, :]).astype(mx.float32).mean(axis=0).max()
            aux.update({"cls_loss": cls, "cls_ce": ce, "lens_batch_entropy": mx.stop_gradient(entropy),
                        "cls_acc": (pred == labels).astype(mx.float32).mean(), "cls_top_share": share})
        return loss, valid.sum(), aux

    return loss_fn


@dataclass
class GRPOResult:
    """A GRPO run: the loop's result, where the weights went, and generation vs training speed."""

    train: TrainResult
    adapter_path: str | None
    weights_path: str | None
    adapter_config: dict
    cls_layer: int
    class_token_ids: dict[str, int]
    gen_tokens: int
    gen_seconds: float
    gen_tokens_per_s: float
    train_tokens_per_s: float

    def to_dict(self) -> dict:
        return {"train": self.train.to_dict(), "adapter_path": self.adapter_path, "weights_path": self.weights_path,
                "adapter_config": self.adapter_config, "cls_layer": self.cls_layer,
                "class_token_ids": self.class_token_ids, "gen_tokens": self.gen_tokens,
                "gen_seconds": self.gen_seconds, "gen_tokens_per_s": self.gen_tokens_per_s,
                "train_tokens_per_s": self.train_tokens_per_s}


def train_grpo(
    handle: ModelHandle,
    cfg: GRPOConfig | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    spec: GrpoSpec | None = None,
    reward_fn: RewardFn = answer_reward,
    classes: Sequence[str] | None = None,
    until: Callable[[int, TrainResult], bool] | None = None,
) -> GRPOResult:
    """Train ``handle.model`` in place with GRPO (LoRA adapters or all parameters); saves to ``out_dir``.

    The reference is a frozen copy of the model taken before any change (for LoRA: the base model).
    LoRA runs write an mlx-lm adapter; full runs write HF-layout weights (with the tokenizer files when
    the model came from a local directory). ``reward_fn(completion_text, answer)`` replaces the reward.
    ``classes`` are the class words of the lens term (default: the spec's operations). ``until`` is the stopping
    rule (``train_loop``): the run ends at the first step where it holds.
    """
    cfg = cfg or GRPOConfig()
    cfg.validate()
    train_cfg = dataclasses.replace(cfg.train, seed=cfg.seed)
    spec = spec or grpo_spec()
    class_ids = class_token_ids(handle, sorted(set(classes or (op[0] for op in spec.operations))))
    missing = {op[0] for op in spec.operations} - set(class_ids)
    if missing:
        raise LazarusError(f"the spec's operations {sorted(missing)} are not among the classes {sorted(class_ids)}")
    ref = frozen_copy(handle.model)
    if cfg.lora is not None:
        adapter_config = apply_lora(handle.model, cfg.lora, handle.n_layers, seed=cfg.seed)
    else:
        handle.model.unfreeze()
        adapter_config = {"fine_tune_type": "full", "num_layers": handle.n_layers}
    batcher = RolloutBatcher(handle, ref, cfg, class_ids, spec, reward_fn)
    out = Path(out_dir) if out_dir is not None else None
    extra = {"lazarus": {"method": "grpo", "config": cfg.to_dict(), "class_token_ids": class_ids}}

    def save(path: Path) -> str:
        if cfg.lora is not None:
            return str(save_adapter(handle.model, path, adapter_config, extra))
        return str(save_model(handle.model, handle.config, path, tokenizer_dir=handle.path))

    result = train_loop(handle.model, make_loss(handle, cfg, class_ids), batcher, train_cfg, out_dir=out,
                        save_fn=(lambda step, _m: save(out / f"step_{step}")) if out is not None else None,
                        progress=progress, until=until)
    saved = save(out) if out is not None else None
    mine = result.metrics[result.resumed_from:]
    gen_tokens = int(sum(m.get("gen_tokens", 0.0) for m in mine))
    gen_seconds = float(sum(m.get("gen_seconds", 0.0) for m in mine))
    own_tokens = result.tokens_per_s * result.seconds
    return GRPOResult(
        train=result, adapter_path=saved if cfg.lora is not None else None,
        weights_path=saved if cfg.lora is None else None, adapter_config=adapter_config,
        cls_layer=handle.layer_at_depth(cfg.cls_layer_fraction), class_token_ids=class_ids,
        gen_tokens=gen_tokens, gen_seconds=gen_seconds, gen_tokens_per_s=gen_tokens / max(gen_seconds, 1e-9),
        train_tokens_per_s=own_tokens / max(result.seconds - gen_seconds, 1e-9),
    )


def evaluate_answers(handle: ModelHandle, items: Sequence[Any], max_new_tokens: int = 8) -> dict:
    """Greedy-decode accuracy (first integer = answer), and next-token probability and rank of the answer's first token.

    ``items``: objects with ``.text`` and ``.answer`` (PromptItem) or ``(text, answer)`` pairs. The
    answer's first token is the first token ``str(answer)`` adds after the prompt (prompts ending in a space, as the
    seed's do; on SentencePiece ``encode('56')[0]`` would be a lone '▁').
    """
    pairs = [(it.text, int(it.answer)) if hasattr(it, "text") else (str(it[0]), int(it[1])) for it in items]
    if not pairs:
        raise LazarusError("evaluate_answers needs at least one prompt")
    model = handle.model
    training = model.training
    model.eval()
    prompt_ids = [handle.encode(t) for t, _ in pairs]
    completions = generate(model, prompt_ids, 1, max_new_tokens, 0.0, None, eos_ids(handle.tokenizer))
    probs = np.zeros(len(pairs))
    ranks = np.zeros(len(pairs), dtype=np.int64)
    for bucket in _length_buckets([len(p) for p in prompt_ids]):
        logits = model(mx.array([prompt_ids[i] for i in bucket], dtype=mx.int32))[:, -1, :].astype(mx.float32)
        p = np.array(mx.softmax(logits, axis=-1))
        for row, i in enumerate(bucket):
            target = handle.continuation(str(pairs[i][1]), after=pairs[i][0])[0]
            probs[i] = p[row, target]
            ranks[i] = int((p[row] > p[row, target]).sum()) + 1
    if training:
        model.train()
    tok = handle.hf_tokenizer
    rows = []
    for i, ((text, answer), c) in enumerate(zip(pairs, completions)):
        out = tok.decode(c.tokens, skip_special_tokens=True)
        rows.append({"prompt": text, "answer": answer, "completion": out, "correct": answer_reward(out, answer) == 1.0,
                     "answer_prob": float(probs[i]), "answer_rank": int(ranks[i])})
    return {
        "n": len(rows),
        "accuracy": float(np.mean([r["correct"] for r in rows])),
        "mean_answer_prob": float(probs.mean()),
        "mean_answer_rank": float(ranks.mean()),
        "items": rows,
    }
