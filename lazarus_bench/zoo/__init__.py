"""The embedded model zoo: tiny models the project pretrains itself (offline counterparts of
real checkpoints). Submodules: ``corpus`` (deterministic data + held-out split), ``tokenizer``
(byte-level BPE, HF layout), ``pretrain`` (MLX training loop), ``evaluate`` (quality gates),
``registry`` (resolve ``zoo:NAME``, ``verify`` manifests) and ``build`` (``build_zoo``). Submodules importing mlx
are loaded lazily so that ``import lazarus_bench.zoo`` stays cheap."""

from __future__ import annotations

import importlib

__all__ = [
    "corpus",
    "tokenizer",
    "pretrain",
    "evaluate",
    "build",
    "registry",
    "build_zoo",
    "verify",
    "ZooIntegrityError",
]


def __getattr__(name: str):
    if name in ("corpus", "tokenizer", "pretrain", "evaluate", "build", "registry"):
        return importlib.import_module(f"{__name__}.{name}")
    if name in ("verify", "ZooIntegrityError", "resolve_zoo", "zoo_root"):
        return getattr(importlib.import_module(f"{__name__}.registry"), name)
    if name in ("build_zoo", "verify_zoo", "SIZES", "KINDS"):
        return getattr(importlib.import_module(f"{__name__}.build"), name)
    raise AttributeError(name)


def _unpack_shipped() -> None:
    """The shipped weights travel packed (``zoo.pack``): a fresh clone unpacks them on first import, once."""
    from pathlib import Path

    from .pack import ensure_unpacked

    ensure_unpacked(Path(__file__).resolve().parent / "weights")


_unpack_shipped()
