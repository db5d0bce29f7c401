"""Run under ``mlx.launch -n N`` (or alone): train with sharded batches and dump the final weights."""

from __future__ import annotations

import lazarus_bench  # noqa: F401  (BLAS preload before mlx.core)

# isort: split
import json
import sys

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from lazarus_bench.training.loop import TrainConfig, train_loop

GLOBAL_BATCH = 8


def regression() -> tuple[nn.Module, list[float], int]:
    """Least squares with a global batch of 8 split across ranks; the loss is a per-row mean."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5)).astype(np.float32)
    y = (X @ rng.normal(size=(5, 1)) + 0.1 * rng.normal(size=(64, 1))).astype(np.float32)
    mx.random.seed(0)
    model = nn.Linear(5, 1)

    def loss_fn(m, xb, yb):
        return ((m(xb) - yb) ** 2).mean(), mx.array(xb.shape[0]), {}

    def batch_at(step, rank, world):
        rows = np.arange(step * GLOBAL_BATCH, (step + 1) * GLOBAL_BATCH) % 64
        share = GLOBAL_BATCH // world
        mine = rows[rank * share:(rank + 1) * share]
        return mx.array(X[mine]), mx.array(y[mine])

    result = train_loop(model, loss_fn, batch_at, TrainConfig(steps=12, lr=0.05, optimizer="sgd", grad_clip=None),
                        progress=False)
    return model, result.losses, result.world_size


def sft(model_dir: str) -> tuple[nn.Module, list[float], int]:
    """A real LoRA SFT run of a saved tiny model; every rank must end with the same weights."""
    from lazarus_bench.models import load_model
    from lazarus_bench.training.data import arithmetic_examples
    from lazarus_bench.training.lora import LoraSpec
    from lazarus_bench.training.sft import SFTConfig, train_sft

    handle = load_model(model_dir)
    cfg = SFTConfig(train=TrainConfig(steps=5, lr=1e-2, optimizer="adam"), batch_size=4, lora=LoraSpec(rank=4))
    result = train_sft(handle, arithmetic_examples(64, seed=1), cfg=cfg, progress=False)
    return handle.model, result.train.losses, result.train.world_size


if __name__ == "__main__":
    kind, out = sys.argv[1], sys.argv[2]
    model, losses, world = regression() if kind == "regression" else sft(sys.argv[3])
    rank = mx.distributed.init().rank()
    weights = {k: np.array(v).ravel().tolist() for k, v in tree_flatten(model.trainable_parameters())}
    with open(f"{out}.{rank}.json", "w") as fh:
        json.dump({"weights": weights, "losses": losses, "world": world}, fh)
