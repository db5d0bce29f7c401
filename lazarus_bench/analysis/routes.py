"""Which experts each token is routed to at every MoE layer: the routers' own logits, recorded in one forward pass."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..errors import LazarusError
from ..models import ModelHandle, Router


class _Recorder(nn.Module):
    """Stands in for a router module during a trace and keeps its output (the router logits)."""

    def __init__(self, inner: nn.Module, store: list):
        super().__init__()
        self.inner = inner
        self._store = store

    def __call__(self, x: mx.array) -> mx.array:
        out = self.inner(x)
        self._store.append(out)
        return out


@contextmanager
def _recording(handle: ModelHandle, routers: list[Router]) -> Iterator[dict[int, list]]:
    stores: dict[int, list] = {}
    swapped = []
    for router in routers:
        parts = router.path.split(".")
        parent = handle.layers[router.layer]
        for name in parts[2:-1]:
            parent = parent[name]
        inner = parent[parts[-1]]
        stores[router.layer] = []
        setattr(parent, parts[-1], _Recorder(inner, stores[router.layer]))
        swapped.append((parent, parts[-1], inner))
    try:
        yield stores
    finally:
        for parent, name, inner in swapped:
            setattr(parent, name, inner)


@dataclass
class TokenRoute:
    """One token at one MoE layer: the experts it went to (router top-k) and the softmax over all experts."""

    layer: int
    position: int
    token: str
    experts: list[int]
    probs: list[float]

    def to_dict(self) -> dict:
        return {"layer": self.layer, "position": self.position, "token": self.token, "experts": self.experts,
                "probs": self.probs}


def route_trace(handle: ModelHandle, text: str) -> list[TokenRoute]:
    """Every token's routing at every MoE layer for ``text``: top-k experts by router logit (k = the model's
    experts per token) with the softmax probability of each expert."""
    routers = handle.routers()
    if not routers:
        raise LazarusError(f"model '{handle.model_id}' ({handle.model_type}) has no MoE router: it is a dense model")
    ids = handle.encode(text)
    with _recording(handle, routers) as stores:
        mx.eval(handle.model(mx.array([ids])))
    out = []
    for router in routers:
        if len(stores[router.layer]) != 1:
            raise LazarusError(f"router at {router.path} was called {len(stores[router.layer])} times in one pass")
        logits = np.array(stores[router.layer][0].astype(mx.float32))[0]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        k = router.top_k or 1
        for pos, token_id in enumerate(ids):
            top = np.argsort(-logits[pos], kind="stable")[:k]
            out.append(TokenRoute(router.layer, pos, handle.decode_token(token_id), [int(e) for e in top],
                                  [float(p) for p in probs[pos]]))
    return out
