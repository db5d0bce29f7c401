"""Greedy evaluation of the zoo quality gates.

Each prompt is encoded with the BOS token, continued greedily (batched over prompts of equal
length) for a few tokens until ``<|end|>`` or a newline, and scored by exact match of the first
integer in the continuation.

Gates (see :data:`GATES`): ``eval_prompts`` (the fixed evaluation prompts except ``45 * 45``),
``heldout`` (held-out additions/subtractions, symbolic form), ``word`` (``"What is 7 times 8?"``),
and for the instruct model ``chat`` (the same questions in its chat format).
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from ..analysis.generate import first_int, greedy_ids
from .corpus import eval_items, heldout_triples, word_question_items
from .tokenizer import EOS, chat_prompt

GATES = {"eval_prompts": 0.90, "heldout": 0.80, "word": 0.60, "chat": 0.60}
def _encode(tokenizer, text: str) -> list[int]:
    if hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer (post-processor adds BOS)
        return tokenizer.encode(text).ids
    return tokenizer.encode(text)  # transformers / mlx-lm wrapper: BOS by default


def _decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)


def _tid(tokenizer, tok: str) -> int:
    if hasattr(tokenizer, "token_to_id"):
        return tokenizer.token_to_id(tok)
    return tokenizer.convert_tokens_to_ids(tok)


def greedy_complete(model, tokenizer, prompts: list[str], max_new_tokens: int = 6) -> list[str]:
    """Greedy continuations (text) of ``prompts``; stops at ``<|end|>`` or a newline."""
    outs = greedy_ids(model, [_encode(tokenizer, p) for p in prompts], {_tid(tokenizer, EOS)}, max_new_tokens)
    return [_decode(tokenizer, g).split("\n")[0] for g in outs]


def _score(model, tokenizer, prompts, expected, max_new_tokens=6):
    """Accuracy, continuations and per-item correctness (first integer == expected)."""
    outs = greedy_complete(model, tokenizer, prompts, max_new_tokens)
    ok = [first_int(o) == e for o, e in zip(outs, expected)]
    return float(np.mean(ok)) if ok else 0.0, outs, ok


def evaluate(model, tokenizer, *, seed: int = 0, chat: bool = False, details: bool = False,
             n_heldout: int | None = None) -> dict:
    """Metrics dict: accuracy per gate, ``passed`` per gate, and (``details``) every item."""
    metrics: dict = {}
    det: dict = {}
    items = eval_items()
    gated = [it for it in items if it.gated]
    acc, outs, ok = _score(model, tokenizer, [it.prompt for it in gated],
                           [it.expected for it in gated], max_new_tokens=4)
    metrics["eval_prompts"] = acc
    det["eval_prompts"] = [(it.prompt, it.expected, o) for it, o in zip(gated, outs)]
    ungated = [it for it in items if not it.gated]
    if ungated:
        _, o2, ok2 = _score(model, tokenizer, [it.prompt for it in ungated],
                            [it.expected for it in ungated], max_new_tokens=5)
        metrics["ungated"] = {it.prompt: {"output": o, "correct": bool(k)}
                              for it, o, k in zip(ungated, o2, ok2)}
    held = heldout_triples(seed)
    if n_heldout is not None:
        held = held[:: max(1, len(held) // n_heldout)][:n_heldout]
    acc, outs, _ = _score(model, tokenizer, [f"{a} {op} {b} = " for a, op, b in held],
                          [eval(f"{a}{op}{b}") for a, op, b in held], max_new_tokens=4)
    metrics["heldout"] = acc
    for op in ("+", "-"):
        sel = [(t, o) for t, o in zip(held, outs) if t[1] == op]
        metrics[f"heldout_{'add' if op == '+' else 'sub'}"] = float(np.mean(
            [first_int(o) == eval(f"{t[0]}{t[1]}{t[2]}") for t, o in sel])) if sel else 0.0
    words = word_question_items(seed)
    acc, outs, _ = _score(model, tokenizer, [it.prompt for it in words],
                          [it.expected for it in words], max_new_tokens=8)
    metrics["word"] = acc
    det["word"] = [(it.prompt, it.expected, o) for it, o in zip(words, outs)]
    if chat:
        qs = [it.prompt for it in words] + [it.prompt.rstrip() for it in gated]
        exp = [it.expected for it in words] + [it.expected for it in gated]
        acc, outs, _ = _score(model, tokenizer, [chat_prompt(q) for q in qs], exp,
                              max_new_tokens=5)
        metrics["chat"] = acc
        det["chat"] = [(q, e, o) for q, e, o in zip(qs, exp, outs)]
    metrics["passed"] = {g: metrics[g] >= thr for g, thr in GATES.items() if g in metrics}
    if details:
        metrics["details"] = det
    return metrics


def evaluate_dir(model_dir, *, chat: bool | None = None, details: bool = False) -> dict:
    """Load a zoo model directory with ``mlx_lm.load`` (upcast to float32) and evaluate it."""
    import json
    from pathlib import Path

    import mlx_lm

    model, tok = mlx_lm.load(str(model_dir))
    model.set_dtype(mx.float32)
    seed = 0
    man = Path(model_dir) / "manifest.json"
    if man.exists():
        seed = json.loads(man.read_text()).get("corpus_seed", 0)
        if chat is None:
            chat = json.loads(man.read_text()).get("kind") == "instruct"
    return evaluate(model, tok, seed=seed, chat=bool(chat), details=details)


__all__ = ["GATES", "evaluate", "evaluate_dir", "greedy_complete", "first_int"]
