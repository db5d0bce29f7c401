"""Scaling and memory model: the zoo pretraining step by model size and by batch size, with MFU and memory."""

from __future__ import annotations

from typing import Callable, Sequence

from .fixtures import llama_config
from .training import bracket_gemm, measure_pretrain

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
