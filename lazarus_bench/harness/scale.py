"""Scale-free thresholds (CLAIMS.md revision 4, "Thresholds on a model of another size").

A probability keeps no meaning across vocabularies and widths, so a low threshold T becomes T' = max(T, k x R) and a
rise is after / max(before, k x R), where R is the same statistic on random-init models of the model's architecture and
tokenizer. On the writeups' reference models k x R is far below T, so T' = T there.
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np

from ..models import ModelHandle
from ..tiny import build_model

INIT_SEEDS = 100  # random-init model i of a draw uses init seed INIT_SEEDS + i
_LEVELS: dict[tuple, list[list[float]]] = {}  # per process: a pure function of its key, so workers agree


def random_models(handle: ModelHandle, draws: int):
    """``draws`` random-init models of ``handle``'s architecture and tokenizer (init seeds 100, 101, ...)."""
    for i in range(draws):
        model = build_model(dict(handle.config), seed=INIT_SEEDS + i, randomise_norms=False)
        yield ModelHandle(model=model, tokenizer=handle.tokenizer, model_id=f"random-init({handle.model_id})",
                          config=handle.config)


def _readings(handle: ModelHandle, name: str, read: Callable[[ModelHandle], list[float]], draws: int) -> list:
    """``read`` on each of ``draws`` random-init models, once per process for an architecture, tokenizer and reading
    ``name`` (which must name everything the reading depends on)."""
    key = (json.dumps(dict(handle.config), sort_keys=True, default=str), len(handle.tokenizer.get_vocab()),
           getattr(handle.tokenizer, "name_or_path", ""), name, draws)
    if key not in _LEVELS:
        _LEVELS[key] = [[float(v) for v in read(h)] for h in random_models(handle, draws)]
    return _LEVELS[key]


def random_level(handle: ModelHandle, name: str, statistic: Callable[[ModelHandle], float], draws: int) -> dict:
    """R: ``statistic`` on each of ``draws`` random-init models and their mean (see ``_readings``)."""
    values = [v[0] for v in _readings(handle, name, lambda h: [statistic(h)], draws)]
    return {"random_level": float(np.mean(values)), "random_draws": values, "statistic": name}


def random_levels(handle: ModelHandle, name: str, read: Callable[[ModelHandle], list[float]], draws: int,
                  summaries: dict[str, Callable[[list[float]], float]]) -> dict[str, dict]:
    """R of several summaries (mean, max, ...) of one reading, each random-init model read once."""
    readings = _readings(handle, name, read, draws)
    out = {}
    for label, summary in summaries.items():
        values = [float(summary(r)) for r in readings]
        out[label] = {"random_level": float(np.mean(values)), "random_draws": values, "statistic": f"{name} ({label})"}
    return out


def low_threshold(threshold: float, level: dict, k: float) -> dict:
    """A low probability that must stay low: T' = max(T, k x R), with both forms and R in the record."""
    return {**level, "writeup": threshold, "k": k, "scale_free": max(threshold, k * level["random_level"])}


def rise(after: float, before: float, level: dict, k: float) -> float:
    """A rise from a baseline, from a floor of k x R: after / max(before, k x R)."""
    return after / max(before, k * level["random_level"])
