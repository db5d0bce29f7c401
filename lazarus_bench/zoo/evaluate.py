"""Greedy evaluation of the zoo quality gates.

Each prompt is encoded with the BOS token, continued greedily (batched over prompts of equal
length) for a few tokens until ``<|end|>`` or a newline, and scored by exact match of the first
integer in the continuation.

Metrics (:data:`METRICS`): ``eval_prompts`` (the fixed evaluation prompts except ``45 * 45``),
``heldout`` (held-out additions/subtractions, symbolic form), ``word`` (``"What is 7 times 8?"``) and
``chat`` (the same questions in chat format); :func:`gate_misses` judges them against the gates.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from ..analysis.generate import first_int, greedy_ids
from .corpus import eval_items, heldout_triples, word_question_items
from .gates import GATES, METRICS, gate_misses
from .tokenizer import EOS, chat_prompt


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


def grpo_start_reward(model, tokenizer, *, seed: int = 0, n_prompts: int = 96, group_size: int = 4,
                      max_new_tokens: int = 8, temperature: float = 1.0) -> dict:
    """Reward rate of seed 002's GRPO prompts sampled as GRPO samples them (temperature 1, groups of 4) from
    the untrained model: overall, per operation, and the share of groups whose rewards vary (GRPO's signal)."""
    from ..prompts import grpo_spec
    from ..training.grpo import answer_reward, generate, sample_prompts

    prompts = sample_prompts(grpo_spec(), n_prompts, seed=seed)
    ids = [_encode(tokenizer, p.text) for p in prompts]
    outs = generate(model, ids, group_size, max_new_tokens, temperature, mx.random.key(seed), {_tid(tokenizer, EOS)})
    rewards = np.array([answer_reward(_decode(tokenizer, c.tokens), prompts[i // group_size].answer)
                        for i, c in enumerate(outs)]).reshape(n_prompts, group_size)
    labels = np.array([p.label for p in prompts])
    return {"rate": float(rewards.mean()), "groups_with_variance": float(np.mean(rewards.std(axis=1) > 0)),
            "by_operation": {lab: float(rewards[labels == lab].mean()) for lab in sorted(set(labels))},
            "prompts": n_prompts, "group_size": group_size, "temperature": temperature}


def statement_accuracy(model, tokenizer, *, seed: int = 0) -> dict:
    """Does the model tell a correct from a wrong equation? For each gated evaluation fact, the statements
    ``"a op b = c is"`` (true answer) and ``"... = c' is"`` (off by 1, 2 or 10): the model judges it correct
    when ``" correct"`` outscores ``" wrong"`` as the next token. Accuracy over all statements (chance 50%)."""
    import random

    from .corpus import wrong_answer

    rng = random.Random(f"lazarus-zoo-statements-{seed}")
    good, bad = (_encode(tokenizer, w)[-1] for w in (" correct", " wrong"))
    hits = []
    for it in eval_items():
        if not it.gated:
            continue
        for shown, truth in ((it.expected, True), (wrong_answer(rng, it.triple), False)):
            a, op, b = it.triple
            logits = model(mx.array([_encode(tokenizer, f"{a} {op} {b} = {shown} is")]))[0, -1]
            hits.append(bool(logits[good] > logits[bad]) == truth)
    return {"accuracy": float(np.mean(hits)), "statements": len(hits)}


def evaluate(model, tokenizer, *, seed: int = 0, chat: bool = False, details: bool = False,
             n_heldout: int | None = None) -> dict:
    """Metrics dict: accuracy per metric (gates are judged by :func:`gate_misses`) and (``details``) every item."""
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
    metrics["grpo_start_reward"] = grpo_start_reward(model, tokenizer, seed=seed)
    metrics["statements"] = statement_accuracy(model, tokenizer, seed=seed)
    if details:
        metrics["details"] = det
    return metrics


def evaluate_dir(model_dir, *, chat: bool = True, details: bool = False, n_heldout: int | None = None) -> dict:
    """Load a zoo model directory with ``mlx_lm.load`` (upcast to float32) and evaluate it (chat format
    included for every kind: the instruct gate compares its chat score with the base's); ``n_heldout`` as the build
    evaluated, so a re-evaluation reads the same held-out items."""
    import json
    from pathlib import Path

    import mlx_lm

    model, tok = mlx_lm.load(str(model_dir))
    model.set_dtype(mx.float32)
    seed = 0
    man = Path(model_dir) / "manifest.json"
    if man.exists():
        seed = json.loads(man.read_text()).get("corpus_seed", 0)
    return evaluate(model, tok, seed=seed, chat=chat, details=details, n_heldout=n_heldout)


__all__ = ["GATES", "METRICS", "gate_misses", "evaluate", "evaluate_dir", "greedy_complete", "first_int"]
