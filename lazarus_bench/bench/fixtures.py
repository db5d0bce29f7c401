"""Bench models and data: the bench tokenizer, zoo-like llama configs, random-init models, fixed-length texts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def arithmetic_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` short arithmetic statements ("7 * 8 = 56"), the SFT data's shape."""
    from ..training.data import arithmetic_examples

    return [e.prompt + e.response for e in arithmetic_examples(n, seed)]


def bench_corpus() -> list[str]:
    """Text for the bench tokenizer: arithmetic, operation words and the prompt sets' templates."""
    from .. import prompts

    words = " ".join(prompts.operation_words()) + " times plus minus product sum difference calculate what is"
    lines = arithmetic_texts(3000, seed=1)
    lines += [f"Calculate: {a} + {b} = {a + b}" for a in range(10, 99, 7) for b in range(10, 99, 11)]
    lines += [f"What is {a} times {b}? {a * b}" for a in range(1, 13) for b in range(1, 13)]
    lines += prompts.word_set().texts() + prompts.dual_reward_eval().texts()
    lines += [words] * 50
    return lines


def bench_tokenizer(out_dir: str | os.PathLike, vocab_size: int = 1024) -> Path:
    """A byte-level BPE (digits split one per token) trained on ``bench_corpus``."""
    from ..hf_tokenizer import train_bpe

    return train_bpe(bench_corpus(), vocab_size=vocab_size, out_dir=out_dir)


def tokenizer_vocab(tokenizer_dir: str | os.PathLike) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json")).get_vocab_size()


def llama_config(hidden: int, layers: int, vocab: int, *, intermediate: int | None = None, heads: int = 4,
                 kv_heads: int = 2, tied: bool = True) -> dict:
    """A zoo-like llama config (the zoo's ``base``: tied, GQA 4/2, intermediate 3 x hidden)."""
    from ..tiny import tiny_config

    return tiny_config("llama", hidden_size=hidden, num_hidden_layers=layers,
                       intermediate_size=intermediate or 3 * hidden, num_attention_heads=heads,
                       num_key_value_heads=kv_heads, vocab_size=vocab, head_dim=hidden // heads,
                       rope_theta=10000.0, max_position_embeddings=512, tie_word_embeddings=tied)


def save_bench_model(out_dir: str | os.PathLike, config: dict, tokenizer_dir: str | os.PathLike,
                     seed: int = 0) -> Path:
    """Build a random-init llama from ``config`` and save it (fp32, HF layout, with the tokenizer)."""
    from ..models import save_model
    from ..tiny import build_model

    return save_model(build_model(config, seed=seed), config, out_dir, tokenizer_dir=str(tokenizer_dir))


def fixed_length_texts(n: int, chars: int, seed: int = 0) -> list[str]:
    """``n`` texts of exactly ``chars`` characters alternating digits and single symbols ("7*8=56;3+4=7;").

    The bench tokenizer splits digits one per token and never merges a lone symbol between digits, so
    each text is exactly ``chars`` tokens: rows of identical length, with no padding in either trainer.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        parts, length = [], 0
        while length < chars + 1:
            a, b = (int(x) for x in rng.integers(1, 13, 2))
            op = "*+"[int(rng.integers(0, 2))]
            fact = f"{a}{op}{b}={a * b if op == '*' else a + b};"
            parts.append(fact)
            length += len(fact)
        out.append("".join(parts)[:chars])
    return out


def load_handle(model_dir: str | os.PathLike):
    from ..models import load_model

    return load_model(str(model_dir))
