"""Supervised examples, their tokenisation, and deterministic batches with a shifted response-only mask."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import mlx.core as mx
import numpy as np

from ..errors import LazarusError

OPS = {"*": "multiply", "+": "add", "-": "subtract", "/": "divide"}


@dataclass(frozen=True)
class Example:
    """A prompt, the response to learn, and the operation label (for dual-reward targets)."""

    prompt: str
    response: str
    label: str = ""


def class_token_ids(handle, words: Sequence[str]) -> dict[str, int]:
    """Each class word -> the first token of the word without a leading space (the writeups' target spelling,
    their ``encode(word)[0]``): the ids the dual-reward and GRPO classification terms train and read."""
    return {w: handle.encode(w, add_special_tokens=False)[0] for w in words}


def arithmetic_examples(
    n: int,
    seed: int,
    ops: Sequence[str] = ("*", "+", "-", "/"),
    *,
    mul_range: tuple[int, int] = (1, 12),
    add_range: tuple[int, int] = (0, 99),
    exclude: Iterable[str] = (),
    template: str = "{a} {op} {b} = ",
) -> list[Example]:
    """``n`` seeded arithmetic examples (``"7 * 8 = "`` -> ``"56"``), none of whose prompts is in ``exclude``.

    * and / stay in the ``mul_range`` tables (division exact), + and - use ``add_range`` (no negatives).
    """
    rng = random.Random(seed)
    banned = {e.strip() for e in exclude}
    out: list[Example] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise LazarusError(f"cannot draw {n} examples outside the {len(banned)} excluded prompts")
        op = rng.choice(list(ops))
        if op in "*/":
            a, b = rng.randint(*mul_range), rng.randint(*mul_range)
            if op == "/":
                a = a * b
        else:
            a, b = rng.randint(*add_range), rng.randint(*add_range)
            if op == "-" and b > a:
                a, b = b, a
        prompt = template.format(a=a, op=op, b=b)
        if prompt.strip() in banned:
            continue
        answer = {"*": a * b, "+": a + b, "-": a - b, "/": a // b if b else 0}[op]
        out.append(Example(prompt, str(answer), OPS[op]))
    return out


def assert_disjoint(train: Iterable[Example], evaluation: Iterable[str]) -> None:
    """Raise if any evaluation prompt is also a training prompt (the originals leaked 48/6, 81/9, 12*5)."""
    seen = {e.prompt.strip() for e in train}
    leaked = sorted({p.strip() for p in evaluation} & seen)
    if leaked:
        raise LazarusError(f"evaluation prompts occur in the training data: {', '.join(leaked)}")


@dataclass
class Encoded:
    """Token ids of prompt+response and where the response starts."""

    ids: list[int]
    prompt_len: int
    label_id: int = -1


def encode_examples(
    encode: Callable[[str, bool], list[int]],
    examples: Sequence[Example],
    *,
    add_bos: bool = True,
    eos_id: int | None = None,
    label_ids: dict[str, int] | None = None,
    continuation: Callable[[str, str], list[int]] | None = None,
) -> list[Encoded]:
    """Tokenise prompt and response separately (so the boundary is exact); optional EOS after the response.

    ``continuation(response, prompt)`` gives the response's ids as they follow the prompt (``ModelHandle.continuation``:
    a SentencePiece tokenizer would otherwise put a lone '▁' between them)."""
    out = []
    for ex in examples:
        prompt = encode(ex.prompt, add_bos)
        tail = continuation(ex.response, ex.prompt) if continuation else encode(ex.response, False)
        response = tail + ([eos_id] if eos_id is not None else [])
        if not response:
            raise LazarusError(f"empty response for prompt {ex.prompt!r}")
        out.append(Encoded(prompt + response, len(prompt), (label_ids or {}).get(ex.label, -1)))
    return out


@dataclass
class Batch:
    """Right-padded inputs and next-token targets (target j = token j+1), with masks and positions.

    ``mask[i, j]`` is 1 when target j is a response token (j + 1 >= prompt_len): the shifted,
    response-only answer loss. ``valid`` marks every real (non-pad) input position.
    """

    inputs: mx.array
    targets: mx.array
    mask: mx.array
    valid: mx.array
    last_prompt: mx.array
    last_token: mx.array
    labels: mx.array

    def arrays(self) -> tuple[mx.array, ...]:
        return (self.inputs, self.targets, self.mask, self.valid, self.last_prompt, self.last_token, self.labels)


def pad_batch(rows: Sequence[Encoded], pad_id: int = 0, width: int | None = None) -> Batch:
    """Right-pad encoded rows to ``width`` (padding sits after each sequence, so causality hides it).

    A fixed width for a whole data set keeps shapes constant, so a compiled step compiles once.
    """
    width = width or max(len(r.ids) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(rows), width - 1), dtype=np.float32)
    valid = np.zeros((len(rows), width - 1), dtype=np.float32)
    for i, r in enumerate(rows):
        ids[i, : len(r.ids)] = r.ids
        mask[i, r.prompt_len - 1 : len(r.ids) - 1] = 1.0
        valid[i, : len(r.ids) - 1] = 1.0
    return Batch(
        inputs=mx.array(ids[:, :-1]),
        targets=mx.array(ids[:, 1:]),
        mask=mx.array(mask),
        valid=mx.array(valid),
        last_prompt=mx.array(np.array([r.prompt_len - 1 for r in rows], dtype=np.int32)),
        last_token=mx.array(np.array([len(r.ids) - 2 for r in rows], dtype=np.int32)),
        labels=mx.array(np.array([r.label_id for r in rows], dtype=np.int32)),
    )


class Batches:
    """Deterministic batches: step -> rows of a seeded per-epoch permutation, split across ranks."""

    def __init__(self, rows: Sequence[Encoded], batch_size: int, seed: int, pad_id: int = 0):
        if not rows:
            raise LazarusError("no training examples")
        self.rows, self.batch_size, self.seed, self.pad_id = list(rows), batch_size, seed, pad_id
        self.width = max(len(r.ids) for r in self.rows)
        self._orders: dict[int, np.ndarray] = {}

    def indices(self, step: int, rank: int = 0, world: int = 1) -> np.ndarray:
        """Rows of step ``step``'s batch that rank ``rank`` of ``world`` takes (every ``world``-th), so the
        batches do not depend on the number of ranks."""
        n, b = len(self.rows), self.batch_size
        if b < world:
            raise LazarusError(f"batch size {b} is smaller than the {world} ranks it is split over")
        flat = np.arange(b)[rank::world] + step * b
        out = np.empty(len(flat), dtype=np.int64)
        for i, k in enumerate(flat):
            epoch = int(k // n)
            if epoch not in self._orders:
                self._orders[epoch] = np.random.default_rng([self.seed, epoch]).permutation(n)
            out[i] = self._orders[epoch][k % n]
        return out

    def __call__(self, step: int, rank: int = 0, world: int = 1) -> tuple[mx.array, ...]:
        return pad_batch([self.rows[i] for i in self.indices(step, rank, world)], self.pad_id, self.width).arrays()

    def all(self, batch_size: int | None = None) -> list[tuple[mx.array, ...]]:
        """Every row once, in order, in batches (for validation)."""
        b = batch_size or self.batch_size
        return [pad_batch(self.rows[i : i + b], self.pad_id, self.width).arrays() for i in range(0, len(self.rows), b)]
