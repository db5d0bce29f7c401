"""Greedy continuations with a KV cache, batched by prompt length, and exact-integer answer scoring."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import mlx.core as mx

from ..models import ModelHandle

_INT = re.compile(r"-?\d+")


def first_int(text: str) -> int | None:
    """The first integer in a text (how every writeup scored answers)."""
    match = _INT.search(text)
    return int(match.group(0)) if match else None


def eos_ids(tokenizer) -> set[int]:
    """Every end-of-sequence id a tokenizer declares (mlx-lm wrappers may list several)."""
    ids = set(getattr(tokenizer, "eos_token_ids", None) or [])
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    return {int(i) for i in ids}


def greedy_ids(model, encoded: Sequence[Sequence[int]], stop: set[int], max_new_tokens: int = 8) -> list[list[int]]:
    """Greedy new token ids after each encoded prompt (stopping at ``stop``), KV-cached, equal lengths batched."""
    from mlx_lm.models.cache import make_prompt_cache

    groups: dict[int, list[int]] = defaultdict(list)
    for i, ids in enumerate(encoded):
        groups[len(ids)].append(i)
    out: list[list[int]] = [[] for _ in encoded]
    for members in groups.values():
        cache = make_prompt_cache(model)
        logits = model(mx.array([list(encoded[i]) for i in members]), cache=cache)[:, -1]
        done = [False] * len(members)
        for _ in range(max_new_tokens):
            nxt = mx.argmax(logits, axis=-1)
            for row, token in enumerate(nxt.tolist()):
                if not done[row]:
                    if token in stop:
                        done[row] = True
                    else:
                        out[members[row]].append(int(token))
            if all(done):
                break
            logits = model(nxt[:, None], cache=cache)[:, -1]
    return out


def greedy_tokens(handle: ModelHandle, prompts: Sequence[str], max_new_tokens: int = 8,
                  add_special_tokens: bool = True) -> list[list[int]]:
    """Greedy new tokens for each prompt (stopping at EOS), prompts of equal length batched together."""
    encoded = [handle.encode(p, add_special_tokens=add_special_tokens) for p in prompts]
    return greedy_ids(handle.model, encoded, eos_ids(handle.tokenizer), max_new_tokens)


def greedy_texts(handle: ModelHandle, prompts: Sequence[str], max_new_tokens: int = 8) -> list[str]:
    tok = handle.hf_tokenizer
    return [tok.decode(ids, skip_special_tokens=True).split("\n")[0]
            for ids in greedy_tokens(handle, prompts, max_new_tokens)]


@dataclass
class AnswerEval:
    """Greedy exact-match accuracy: the first integer of each continuation against the answer."""

    accuracy: float
    n: int
    correct: list[bool] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "n": self.n, "correct": self.correct, "outputs": self.outputs}


def answer_accuracy(handle: ModelHandle, prompts: Sequence[str], answers: Sequence[int],
                    max_new_tokens: int = 6) -> AnswerEval:
    outputs = greedy_texts(handle, prompts, max_new_tokens)
    correct = [first_int(o) == int(a) for o, a in zip(outputs, answers)]
    return AnswerEval(accuracy=sum(correct) / max(len(correct), 1), n=len(correct), correct=correct, outputs=outputs)
