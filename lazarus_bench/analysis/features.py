"""Hidden-state features for probes: the raw residual at the last token after every layer."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import mlx.core as mx
import numpy as np

from ..models import ModelHandle
from .lens import _depth, resolve_layers


def last_token_states(
    handle: ModelHandle,
    prompts: Sequence[str],
    layers: Sequence[int | str] | None = None,
    *,
    add_special_tokens: bool = True,
) -> tuple[np.ndarray, list]:
    """Residual stream (no final norm) at each prompt's last token: array (n_layers, n_prompts, hidden).

    Prompts are batched by token length; the layer labels (``"emb"``, 0..L-1) are returned alongside. Float64, so
    a probe fitted on them (sklearn's or ``logreg``'s) runs in double precision and the two fits agree.
    """
    labels = resolve_layers(handle, layers)
    encoded = [handle.encode(p, add_special_tokens=add_special_tokens) for p in prompts]
    groups: dict[int, list[int]] = defaultdict(list)
    for i, ids in enumerate(encoded):
        groups[len(ids)].append(i)
    out = np.zeros((len(labels), len(prompts), handle.hidden_size), dtype=np.float64)
    for members in groups.values():
        capture = handle.forward(mx.array([encoded[i] for i in members]))
        for row, layer in enumerate(labels):
            states = capture.hidden[_depth(handle, layer)][:, -1].astype(mx.float32)
            out[row, members] = np.array(states)
    return out, labels
