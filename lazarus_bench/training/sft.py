"""Supervised fine-tuning (LoRA or full): shifted next-token loss on response tokens only."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import mlx.core as mx
import mlx.nn as nn

from ..models import ModelHandle
from .data import Batches, Example, encode_examples
from .loop import LOSS_WEIGHT, TrainConfig, TrainResult, train_loop
from .lora import LoraSpec, apply_lora, save_adapter


def answer_loss_terms(logits: mx.array, targets: mx.array, mask: mx.array) -> tuple[mx.array, mx.array]:
    """Sum of next-token cross-entropy over masked target positions, and their count."""
    ce = nn.losses.cross_entropy(logits.astype(mx.float32), targets) * mask
    return ce.sum(), mask.sum()


def sft_loss(model: nn.Module, inputs, targets, mask, valid, last_prompt, last_token, labels):
    """Mean response-token cross-entropy (ranks weighted by their response tokens); counts every real input
    token for throughput."""
    total, n = answer_loss_terms(model(inputs), targets, mask)
    loss = total / mx.maximum(n, 1.0)
    return loss, valid.sum(), {"answer_loss": loss, LOSS_WEIGHT: n}


@dataclass
class SFTConfig:
    """SFT settings: LoRA (default, mlx-lm's defaults: rank 8, scale 20, every linear) or full (lora=None)."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-4, optimizer="adam", grad_clip=None))
    batch_size: int = 8
    lora: LoraSpec | None = field(default_factory=LoraSpec)
    add_bos: bool = True
    add_eos: bool = True


@dataclass
class SFTResult:
    train: TrainResult
    adapter_path: str | None
    adapter_config: dict
    val_losses: list[dict]

    def to_dict(self) -> dict:
        return {"train": self.train.to_dict(), "adapter_path": self.adapter_path,
                "adapter_config": self.adapter_config, "val_losses": self.val_losses}


def prepare(handle: ModelHandle, cfg: SFTConfig) -> dict:
    """Make the model trainable as configured; returns the adapter config written with the weights."""
    if cfg.lora is not None:
        return apply_lora(handle.model, cfg.lora, handle.n_layers, seed=cfg.train.seed)
    handle.model.unfreeze()
    return {"fine_tune_type": "full", "num_layers": handle.n_layers}


def encoded_batches(handle: ModelHandle, examples: Sequence[Example], batch_size: int, seed: int,
                    add_bos: bool = True, add_eos: bool = True, label_ids: dict | None = None) -> Batches:
    tok = handle.tokenizer
    eos = getattr(tok, "eos_token_id", None) if add_eos else None
    rows = encode_examples(lambda text, bos: handle.encode(text, add_special_tokens=bos), examples,
                           add_bos=add_bos, eos_id=eos, label_ids=label_ids, continuation=handle.continuation)
    pad = getattr(tok, "pad_token_id", None)
    return Batches(rows, batch_size, seed, pad_id=pad if pad is not None else 0)


def validation_loss(model: nn.Module, batches: Batches) -> float:
    total, count = mx.array(0.0), mx.array(0.0)
    for inputs, targets, mask, *_ in batches.all():
        t, n = answer_loss_terms(model(inputs), targets, mask)
        total, count = total + t, count + n
    return float((total / mx.maximum(count, 1.0)).item())


def train_sft(
    handle: ModelHandle,
    train_examples: Sequence[Example],
    val_examples: Sequence[Example] = (),
    cfg: SFTConfig | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    batch_wrapper: Callable[[Callable], Callable] | None = None,
) -> SFTResult:
    """Fine-tune ``handle.model`` in place; adapters (mlx-lm format) go to ``out_dir`` and ``out_dir/step_N``.

    ``batch_wrapper`` wraps the training batches (the benchmarks' step timer uses it).
    """
    cfg = cfg or SFTConfig()
    adapter_config = prepare(handle, cfg)
    train = encoded_batches(handle, train_examples, cfg.batch_size, cfg.train.seed, cfg.add_bos, cfg.add_eos)
    val = encoded_batches(handle, val_examples, cfg.batch_size, 0, cfg.add_bos, cfg.add_eos) if val_examples else None
    if batch_wrapper is not None:
        train = batch_wrapper(train)
    out = Path(out_dir) if out_dir is not None else None
    extra = {"lazarus": {"method": "sft", "config": asdict(cfg)}}

    def save(step: int, model: nn.Module) -> str:
        return str(save_adapter(model, out / f"step_{step}", adapter_config, extra))

    eval_fn = (lambda model: {"val_loss": validation_loss(model, val)}) if val is not None else None
    initial = [{"step": 0, "val_loss": validation_loss(handle.model, val)}] if val is not None else []
    result = train_loop(handle.model, sft_loss, train, cfg.train, out_dir=out, eval_fn=eval_fn,
                        save_fn=save if out is not None else None, progress=progress,
                        uniform_loss=math.log(handle.vocab_size))
    writer = mx.distributed.init().rank() == 0
    path = str(save_adapter(handle.model, out, adapter_config, extra)) if out is not None and writer else None
    return SFTResult(train=result, adapter_path=path, adapter_config=adapter_config,
                     val_losses=initial + result.evals)
