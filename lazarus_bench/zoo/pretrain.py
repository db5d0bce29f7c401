"""Pretraining / fine-tuning loop for the zoo models (MLX).

* AdamW with linear warm-up then cosine decay, global-norm gradient clipping, optional
  ``mx.compile`` of the whole step (state captured through ``inputs``/``outputs`` as in mlx-lm).
* Loss: next-token cross-entropy over packed rows (``<|bos|> doc <|end|> <|bos|> doc ...``), or a
  masked loss (only answer tokens) for the instruct fine-tune.
* Checkpoints every ``ckpt_every`` steps: one safetensors file holding weights, optimizer state and
  (as metadata) the step, the losses so far and the config; written to a temp file and moved into
  place with ``os.replace``. The data position is a pure function of the step (rows are drawn by a
  seeded permutation), so a resumed run reproduces the uninterrupted one.
* A progress line on stderr with loss, tokens/s and ETA.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from ..errors import LazarusError
from ..experts import densify_experts
from ..training.loop import divergence_reason
from .corpus import CorpusMix, generate_chat, iter_corpus
from .tokenizer import ASSISTANT, BOS, EOS, USER

CKPT_NAME = "checkpoint.safetensors"


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

def model_config(kind: str, *, vocab_size: int, hidden_size: int, num_hidden_layers: int,
                 intermediate_size: int, num_attention_heads: int, num_key_value_heads: int,
                 num_local_experts: int = 4, num_experts_per_tok: int = 2,
                 max_position_embeddings: int = 512) -> dict:
    """The Hugging Face style ``config.json`` dict for one zoo model kind
    (``base``/``instruct``: tied llama; ``untied``: llama with an output head; ``moe``: mixtral)."""
    common = dict(vocab_size=vocab_size, hidden_size=hidden_size,
                  num_hidden_layers=num_hidden_layers, intermediate_size=intermediate_size,
                  num_attention_heads=num_attention_heads, num_key_value_heads=num_key_value_heads,
                  rms_norm_eps=1e-5, rope_theta=10000.0, rope_traditional=False,
                  max_position_embeddings=max_position_embeddings,
                  head_dim=hidden_size // num_attention_heads)
    if kind in ("base", "instruct"):
        return dict(model_type="llama", architectures=["LlamaForCausalLM"],
                    tie_word_embeddings=True, **common)
    if kind == "untied":
        return dict(model_type="llama", architectures=["LlamaForCausalLM"],
                    tie_word_embeddings=False, **common)
    if kind == "moe":
        common.pop("head_dim")
        return dict(model_type="mixtral", architectures=["MixtralForCausalLM"],
                    tie_word_embeddings=True, num_local_experts=num_local_experts,
                    num_experts_per_tok=num_experts_per_tok, **common)
    raise ValueError(f"unknown zoo model kind {kind!r}")


def build_model(config: dict) -> nn.Module:
    """Instantiate the mlx-lm model for a config dict (llama or mixtral; on CPU the experts run densely)."""
    if config["model_type"] == "llama":
        from mlx_lm.models import llama as arch
    elif config["model_type"] == "mixtral":
        from mlx_lm.models import mixtral as arch
    else:
        raise ValueError(f"unsupported model_type {config['model_type']!r}")
    args = arch.ModelArgs.from_dict(config)
    model = arch.Model(args)
    densify_experts(model)
    return model


def count_params(model: nn.Module) -> int:
    return sum(v.size for _, v in tree_flatten(model.parameters()))


def load_model(model_dir: str | os.PathLike, dtype=mx.float32) -> tuple[nn.Module, dict]:
    """Load a zoo model directory (without the tokenizer), upcast to ``dtype``."""
    d = Path(model_dir)
    config = json.loads((d / "config.json").read_text())
    model = build_model(config)
    weights = model.sanitize(mx.load(str(d / "model.safetensors")))
    model.load_weights([(k, v.astype(dtype)) for k, v in weights.items()])
    mx.eval(model.parameters())
    return model, config


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

def _ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids without special tokens (``tokenizers.Tokenizer`` or a transformers tokenizer)."""
    if hasattr(tokenizer, "encode_batch"):
        return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


def _tid(tokenizer, tok: str) -> int:
    if hasattr(tokenizer, "token_to_id"):
        return tokenizer.token_to_id(tok)
    return tokenizer.convert_tokens_to_ids(tok)


@dataclass
class PackedData:
    """Rows of ``seq_len + 1`` tokens and a per-target loss mask (1 = counts)."""

    tokens: np.ndarray  # (n_rows, seq_len + 1) int32
    mask: np.ndarray  # (n_rows, seq_len) float32

    @property
    def n_rows(self) -> int:
        return int(self.tokens.shape[0])


def _pack(stream: np.ndarray, mask: np.ndarray, seq_len: int, n_rows: int) -> PackedData:
    need = n_rows * (seq_len + 1)
    stream, mask = stream[:need], mask[:need]
    toks = stream.reshape(n_rows, seq_len + 1).astype(np.int32)
    m = mask.reshape(n_rows, seq_len + 1)[:, 1:].astype(np.float32)
    return PackedData(toks, m)


def pretrain_data(tokenizer, seed: int, n_rows: int, seq_len: int,
                  mix: CorpusMix | None = None, chunk_docs: int = 2000) -> PackedData:
    """``n_rows`` packed rows of the corpus stream for ``seed``: ``<|bos|> doc <|end|>`` ..."""
    bos, eos = _tid(tokenizer, BOS), _tid(tokenizer, EOS)
    need = n_rows * (seq_len + 1)
    it = iter_corpus(seed, mix)
    parts, total = [], 0
    while total < need:
        docs = [next(it) for _ in range(chunk_docs)]
        for ids in _ids(tokenizer, docs):
            arr = np.empty(len(ids) + 2, dtype=np.int32)
            arr[0], arr[1:-1], arr[-1] = bos, ids, eos
            parts.append(arr)
            total += len(arr)
    stream = np.concatenate(parts)
    return _pack(stream, np.ones_like(stream, dtype=np.float32), seq_len, n_rows)


def chat_data(tokenizer, seed: int, n_rows: int, seq_len: int,
              mix: CorpusMix | None = None) -> PackedData:
    """Packed chat turns ``<|bos|><|user|>Q<|assistant|>A<|end|>``; loss only on ``A<|end|>``."""
    bos, eos = _tid(tokenizer, BOS), _tid(tokenizer, EOS)
    user, asst = _tid(tokenizer, USER), _tid(tokenizer, ASSISTANT)
    need = n_rows * (seq_len + 1)
    toks, mask, total, k = [], [], 0, 0
    while total < need:
        convs = generate_chat(seed + 7919 * k, 4000, mix)
        k += 1
        qs = _ids(tokenizer, [c[0]["content"] for c in convs])
        ans = _ids(tokenizer, [c[1]["content"] for c in convs])
        for q, a in zip(qs, ans):
            t = [bos, user, *q, asst, *a, eos]
            m = [0] * (3 + len(q)) + [1] * (len(a) + 1)
            toks.append(np.asarray(t, np.int32))
            mask.append(np.asarray(m, np.float32))
            total += len(t)
    return _pack(np.concatenate(toks), np.concatenate(mask), seq_len, n_rows)


def preference_data(tokenizer, seed: int, n_pairs: int, seq_len: int,
                    mix: CorpusMix | None = None) -> PackedData:
    """Chat questions with a chosen (correct) and a rejected (off by 1, 2 or 10) answer, for DPO:
    tokens ``(n_pairs, 2, seq_len + 1)`` right-padded, mask 1 on the answer and ``<|end|>`` targets."""
    import random

    from .corpus import FactSampler, chat_question, wrong_answer
    from .corpus import answer as true_answer

    bos, eos = _tid(tokenizer, BOS), _tid(tokenizer, EOS)
    user, asst = _tid(tokenizer, USER), _tid(tokenizer, ASSISTANT)
    rng = random.Random(f"lazarus-zoo-preference-{seed}")
    sampler = FactSampler(seed, mix or CorpusMix())
    toks = np.full((n_pairs, 2, seq_len + 1), eos, np.int32)
    mask = np.zeros((n_pairs, 2, seq_len), np.float32)
    i = 0
    while i < n_pairs:
        t = sampler.sample(rng)
        q = chat_question(rng, t)
        good, bad = str(true_answer(*t)), str(wrong_answer(rng, t))
        ids = _ids(tokenizer, [q, good, bad])
        rows = [[bos, user, *ids[0], asst, *a, eos] for a in ids[1:]]
        if max(map(len, rows)) > seq_len + 1:
            continue
        for j, (row, a) in enumerate(zip(rows, ids[1:])):
            toks[i, j, :len(row)] = row
            mask[i, j, len(row) - len(a) - 2:len(row) - 1] = 1.0
        i += 1
    return PackedData(toks, mask)


def sequence_logps(m: nn.Module, rows: mx.array, mask: mx.array) -> mx.array:
    """Sum of the masked next-token log-probabilities of each row."""
    logits = m(rows[:, :-1]).astype(mx.float32)
    return -(nn.losses.cross_entropy(logits, rows[:, 1:]) * mask).sum(-1)


def dpo_loss(ref: nn.Module, beta: float, nll_weight: float = 0.0) -> Callable[[nn.Module, mx.array, mx.array],
                                                                               mx.array]:
    """The DPO objective (Rafailov et al. 2023) against the frozen ``ref``:
    ``-log sigmoid(beta * ((logp_c - ref_c) - (logp_r - ref_r)))`` averaged over pairs, plus ``nll_weight`` times
    the per-token NLL of the chosen answer (RPO, Pang et al. 2024), which keeps DPO from lowering the chosen
    answer's likelihood along with the rejected one's."""
    def loss(m: nn.Module, batch: mx.array, mask: mx.array) -> mx.array:
        rows, rmask = batch.reshape(-1, batch.shape[-1]), mask.reshape(-1, mask.shape[-1])
        logp = sequence_logps(m, rows, rmask).reshape(-1, 2)
        margin = logp - mx.stop_gradient(sequence_logps(ref, rows, rmask)).reshape(-1, 2)
        dpo = mx.logaddexp(0.0, -beta * (margin[:, 0] - margin[:, 1])).mean()
        chosen_tokens = mask[:, 0].sum()
        return dpo - nll_weight * logp[:, 0].sum() / mx.maximum(chosen_tokens, 1.0)

    return loss


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    ckpt_every: int = 0  # 0 = no checkpoints
    log_every: int = 20
    compile: bool = True
    name: str = "model"

    def schedule(self):
        warm = max(1, min(self.warmup, self.steps))
        decay = max(1, self.steps - warm)
        cos = optim.cosine_decay(self.lr, decay, self.lr * self.min_lr_ratio)
        lin = optim.linear_schedule(self.lr / warm, self.lr, warm)
        return optim.join_schedules([lin, cos], [warm])


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    resumed_from: int = 0


def row_order(seed: int, n_rows: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([seed, 0x5A11])).permutation(n_rows)


def _save_checkpoint(path: Path, model, opt, step: int, losses: list[float], cfg: TrainConfig,
                     rows_seen: int) -> None:
    arrays = {f"model.{k}": v for k, v in tree_flatten(model.parameters())}
    arrays.update({f"opt.{k}": v for k, v in tree_flatten(opt.state)})
    meta = {"step": str(step), "losses": json.dumps(losses), "config": json.dumps(asdict(cfg)),
            "rows_seen": str(rows_seen)}
    tmp = path.with_name(path.stem + ".tmp.safetensors")
    mx.save_safetensors(str(tmp), arrays, metadata=meta)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, model, opt) -> tuple[int, list[float]]:
    arrays, meta = mx.load(str(path), return_metadata=True)
    model.load_weights([(k[6:], v) for k, v in arrays.items() if k.startswith("model.")])
    opt.state = tree_unflatten([(k[4:], v) for k, v in arrays.items() if k.startswith("opt.")])
    mx.eval(model.parameters(), opt.state)
    return int(meta["step"]), json.loads(meta["losses"])


class _Progress:
    def __init__(self, cfg: TrainConfig, enabled: bool, stream=None):
        self.cfg, self.enabled, self.stream = cfg, enabled, stream or sys.stderr

    def line(self, step: int, loss: float, tps: float, lr: float, start_step: int, t0: float):
        if not self.enabled:
            return
        done = step - start_step
        eta = (time.perf_counter() - t0) / max(done, 1) * (self.cfg.steps - step)
        print(f"[{self.cfg.name}] step {step}/{self.cfg.steps} loss {loss:.4f} lr {lr:.2e} "
              f"{tps:,.0f} tok/s ETA {int(eta) // 60}m{int(eta) % 60:02d}s",
              file=self.stream, flush=True)


def token_loss(m: nn.Module, batch: mx.array, mask: mx.array) -> mx.array:
    """Mean next-token cross-entropy over the masked targets of packed rows."""
    logits = m(batch[:, :-1]).astype(mx.float32)
    ce = nn.losses.cross_entropy(logits, batch[:, 1:]) * mask
    return ce.sum() / mx.maximum(mask.sum(), 1.0)


def world() -> tuple[int, int]:
    """(size, rank) of the ``mx.distributed`` group: (1, 0) unless launched under ``mlx.launch``."""
    group = mx.distributed.init()
    return group.size(), group.rank()


def barrier() -> None:
    """Wait for every rank (rank 0 writes files that the others then read)."""
    if world()[0] > 1:
        mx.eval(mx.distributed.all_sum(mx.zeros(1), stream=mx.cpu))


def train(model: nn.Module, data: PackedData, cfg: TrainConfig, *,
          ckpt_dir: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
          stop_after: int | None = None,
          on_step: Callable[[int, float], None] | None = None,
          loss_fn: Callable[[nn.Module, mx.array, mx.array], mx.array] = token_loss) -> TrainResult:
    """Train ``model`` in place for ``cfg.steps`` steps on ``data``.

    Batch ``i`` is rows ``order[i*B:(i+1)*B]`` of a seeded permutation (wrapping into a new
    permutation per epoch), so the data position is determined by the step. Under ``mlx.launch`` each of
    the N ranks takes every N-th row of the batch and gradients are averaged (data parallel; rank 0
    alone writes checkpoints and progress). With ``ckpt_dir`` and ``resume``, an existing checkpoint there
    is loaded and training continues from its step. ``stop_after`` stops after that many steps of this
    call (to simulate an interruption)."""
    B, T = cfg.batch_size, cfg.seq_len
    size, rank = world()
    if data.tokens.shape[-1] != T + 1:
        raise ValueError(f"data rows have {data.tokens.shape[-1]} tokens, expected seq_len+1={T + 1}")
    if B % size:
        raise ValueError(f"batch size {B} is not divisible by the {size} ranks")
    opt = optim.AdamW(learning_rate=cfg.schedule(), weight_decay=cfg.weight_decay)
    ckpt = Path(ckpt_dir) / CKPT_NAME if ckpt_dir else None
    start, losses = 0, []
    if ckpt is not None and resume and ckpt.exists():
        start, losses = _load_checkpoint(ckpt, model, opt)
    result = TrainResult(resumed_from=start)

    loss_and_grad = nn.value_and_grad(model, loss_fn)

    def step_fn(batch, mask):
        loss, grads = loss_and_grad(model, batch, mask)
        if size > 1:
            grads = nn.average_gradients(grads)
        if cfg.grad_clip:
            grads, _ = optim.clip_grad_norm(grads, cfg.grad_clip)
        opt.update(model, grads)
        return loss

    if cfg.compile:
        state = [model.state, opt.state]
        step_fn = mx.compile(step_fn, inputs=state, outputs=state)

    n = data.n_rows
    orders: dict[int, np.ndarray] = {}

    def rows_for(step: int) -> np.ndarray:
        idx = np.arange(step * B, (step + 1) * B)
        epoch = idx // n
        out = np.empty(B, dtype=np.int64)
        for e in np.unique(epoch):
            if int(e) not in orders:
                orders[int(e)] = row_order(cfg.seed + 1000003 * int(e), n)
            sel = epoch == e
            out[sel] = orders[int(e)][idx[sel] % n]
        return out

    prog = _Progress(cfg, progress and rank == 0)
    initial_norm = math.sqrt(sum(float(mx.sum(mx.square(v.astype(mx.float32))).item())
                                 for _, v in tree_flatten(model.trainable_parameters())))
    model.train()
    t0 = time.perf_counter()
    tlog, toks_since = t0, 0
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    for step in range(start, end):
        r = rows_for(step)[rank::size]
        loss = step_fn(mx.array(data.tokens[r]), mx.array(data.mask[r]))
        mx.eval(loss, model.state, opt.state)
        lv = float((mx.distributed.all_sum(loss, stream=mx.cpu) / size if size > 1 else loss).item())
        problem = None if math.isfinite(lv) else f"loss became {lv} at step {step + 1}"
        if problem is None and (step + 1) % cfg.log_every == 0:
            problem = divergence_reason(model, initial_norm, (losses + [lv])[-cfg.log_every:], None, step + 1)
        if problem is not None:
            kept = f"; the checkpoint in {ckpt_dir} is kept" if ckpt is not None and ckpt.exists() else ""
            raise LazarusError(f"[{cfg.name}] pretraining diverged: {problem}; lower the learning rate{kept}")
        losses.append(lv)
        toks_since += B * T
        result.tokens += B * T
        if on_step:
            on_step(step + 1, lv)
        if prog.enabled and ((step + 1) % cfg.log_every == 0 or step + 1 == end):
            now = time.perf_counter()
            avg = float(np.mean(losses[-cfg.log_every:]))
            prog.line(step + 1, avg, toks_since / max(now - tlog, 1e-9),
                      float(opt.learning_rate.item()), start, t0)
            tlog, toks_since = now, 0
        if ckpt is not None and cfg.ckpt_every and (step + 1) % cfg.ckpt_every == 0 and rank == 0:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            _save_checkpoint(ckpt, model, opt, step + 1, losses, cfg, (step + 1) * B)
    result.seconds = time.perf_counter() - t0
    result.steps = end
    result.losses = losses
    result.tokens_per_s = result.tokens / max(result.seconds, 1e-9)
    model.eval()
    return result
