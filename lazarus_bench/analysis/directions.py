"""Where a residual-stream direction points in vocabulary space, for a loaded model."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..models import ModelHandle
from .lens import target_spellings
from .projections import cosine_scores, ranks_of


def word_ranks(handle: ModelHandle, direction: np.ndarray, words: Sequence[str], *, fold_gain: bool = True) -> dict:
    """Cosine of ``direction`` with every unembedding row; 1-based rank and score of each word's spellings.

    With ``fold_gain`` the final-norm gain g is applied to the direction first (the lens maps a
    residual direction w to the logits W_U (g * w)). Multi-token spellings are ranked by their first token.
    """
    gain = np.array(handle.final_norm_gain()) if fold_gain else None
    scores = cosine_scores(np.asarray(direction, dtype=np.float32), np.array(handle.unembedding()), gain=gain)
    out = {"vocab_size": int(scores.shape[0]), "fold_gain": fold_gain, "words": {}}
    for word in words:
        forms = target_spellings(handle, word)
        ranks = ranks_of(scores, [ids[0] for ids in forms.values()])
        out["words"][word.strip()] = {
            key: {"token_id": ids[0], "n_tokens": len(ids), "rank": ranks[ids[0]], "score": float(scores[ids[0]])}
            for key, ids in forms.items()
        }
    return out
