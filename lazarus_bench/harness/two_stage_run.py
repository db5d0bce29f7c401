"""H14's stage 1 (SFT, then fuse) for every branch, cached and keyed by this module's code (the training), not by
the claim's read-out: a change to how H14 reads its runs reuses them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from ..cache import FixtureCache, default_root
from ..errors import LazarusError
from ..io import write_json
from ..models import model_fingerprint
from ..training.data import arithmetic_examples, assert_disjoint
from ..training.lora import fuse_lora
from ..training.sft import train_sft
from ..training.two_stage import TWO_STAGE_OPS, TwoStageConfig, eval_prompt_texts, stage_metrics
from .base import ClaimContext


@dataclass
class StageOne:
    """A seed's SFT stage 1, fused: its weights on disk (one seed at a time in memory), metrics and the data."""

    weights: str
    reference: np.ndarray  # the fused model's logits on the first eval prompt: each branch must reproduce them
    baseline: dict
    after: dict
    train: dict
    examples: list
    split: int


def stage_one(ctx: ClaimContext, configs: dict[str, TwoStageConfig]) -> StageOne:
    """Stage 1 of ``train_two_stage`` (SFT, then fuse) for every branch, from the fixture cache: trained once per
    (model, stage-1 config, data) and shared by both protocols and every control, which differ only in stage 2."""
    first = next(iter(configs.values()))
    if any(c.stage1 != first.stage1 or (c.n_train, c.data_seed, c.mul_range, c.add_range)
           != (first.n_train, first.data_seed, first.mul_range, first.add_range) for c in configs.values()):
        raise LazarusError("two-stage branches must share stage 1 and its data")
    eval_texts = eval_prompt_texts()
    examples = arithmetic_examples(first.n_train, first.data_seed, TWO_STAGE_OPS, mul_range=first.mul_range,
                                   add_range=first.add_range, exclude=eval_texts)
    assert_disjoint(examples, eval_texts)
    split = int(0.9 * len(examples))

    def build(d: Path) -> None:
        ctx.log(f"two-stage stage 1 on {ctx.model_id}, seed {first.stage1.train.seed}")
        handle = ctx.fresh_handle()
        baseline = stage_metrics(handle)
        s1 = train_sft(handle, examples[:split], examples[split:], first.stage1, progress=False)
        fuse_lora(handle.model)
        mx.save_safetensors(str(d / "stage1.safetensors"), dict(tree_flatten(handle.model.parameters())))
        np.save(d / "reference.npy", np.array(handle.model(mx.array([handle.encode(eval_texts[0])]))))
        write_json(d / "stage1.json", {"baseline": baseline, "after": stage_metrics(handle), "train": s1.to_dict()})

    parts = {"method": "claims.h14_stage_one", "model": model_fingerprint(ctx.model_id), "stage1": asdict(first.stage1),
             "data": [first.n_train, first.data_seed, first.mul_range, first.add_range]}
    entry = FixtureCache(ctx.cache_dir or default_root(), code=__name__).get_or_build(parts, build)
    saved = json.loads((entry / "stage1.json").read_text())
    return StageOne(weights=str(entry / "stage1.safetensors"), reference=np.load(entry / "reference.npy"),
                    baseline=saved["baseline"], after=saved["after"], train=saved["train"], examples=examples,
                    split=split)
