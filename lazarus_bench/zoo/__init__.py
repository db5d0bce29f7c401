"""The embedded model zoo: tiny models the project pretrains itself (offline counterparts of
real checkpoints). Submodules: ``corpus`` (deterministic data + held-out split), ``tokenizer``
(byte-level BPE, HF layout), ``pretrain`` (MLX training loop), ``evaluate`` (quality gates) and
``build`` (``build_zoo`` / ``verify``). Submodules importing mlx are loaded lazily so that
``import lazarus_bench.zoo`` stays cheap."""

from __future__ import annotations

import importlib

__all__ = ["corpus", "tokenizer", "pretrain", "evaluate", "build", "build_zoo", "verify",
           "ZooIntegrityError"]


def __getattr__(name: str):
    if name in ("corpus", "tokenizer", "pretrain", "evaluate", "build"):
        return importlib.import_module(f"{__name__}.{name}")
    if name in ("build_zoo", "verify", "verify_zoo", "ZooIntegrityError", "SIZES", "KINDS"):
        return getattr(importlib.import_module(f"{__name__}.build"), name)
    raise AttributeError(name)
