"""Is the model a trained language model at all? Next-token loss on a fixed held-out text against chance (ln V).

Every claim reads a model's internals as those of a language model; a random-weight checkpoint has none, so a
verdict on it would describe its initialisation. The text ships with the package (``data/heldout.txt``: arithmetic
in the symbolic, word-question and sentence forms every claim's prompts take) and is tokenized by the model's own
tokenizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

import mlx.core as mx
import numpy as np

from ..errors import LazarusError
from ..models import ModelHandle


def heldout_texts() -> list[str]:
    """The fixed held-out lines, in file order."""
    text = resources.files("lazarus_bench").joinpath("data", "heldout.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class HeldoutLoss:
    """Mean next-token cross-entropy (nats) over every predicted token of the held-out lines, and chance (ln V)."""

    nats: float
    chance: float
    tokens: int

    @property
    def ratio(self) -> float:
        """Loss as a share of chance: ~1 for random weights, well below 1 for a model that learned text."""
        return self.nats / self.chance


def heldout_loss(handle: ModelHandle, texts: list[str] | None = None) -> HeldoutLoss:
    """Next-token loss of ``handle`` on ``texts`` (default: the shipped held-out lines), one line at a time."""
    total, count = 0.0, 0
    for text in texts or heldout_texts():
        ids = handle.encode(text)
        if len(ids) < 2:
            continue
        logits = handle.model(mx.array([ids[:-1]])).astype(mx.float32)[0]
        logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        picked = np.array(mx.take_along_axis(logp, mx.array(ids[1:])[:, None], axis=-1))
        total -= float(picked.sum())
        count += len(ids) - 1
    if count == 0:
        raise LazarusError("held-out text: no line has two tokens under this tokenizer")
    return HeldoutLoss(nats=total / count, chance=math.log(handle.vocab_size), tokens=count)
