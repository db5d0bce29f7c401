"""Incremental runs: a record whose inputs are unchanged is reused, not measured again.

A record's inputs are the claim's locked hash, the model's content hash, protocol, tier, parameters, seeds, the
BLAS, the trained-model gate's threshold, the instruct variant a paired claim reads (its id and hash: a skip for
want of one, or a run against an older one, is not reused once the pair is built or rebuilt), and the code of what
it calls: the claim's module and every lazarus_bench module it imports (transitively, lazy imports included), the
runner's own, the package's data files, and the same for the claims it reads runs from (``after``). A change to one
claim's file recomputes that claim only; a change to a shared module (statistics, lens, training) recomputes every
claim that imports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import blas
from ..codehash import closure, data_files, digest
from ..harness import prereg
from ..harness.base import Claim, needs_instruct_pair
from ..harness.pairs import instruct_pair_of
from ..harness.registry import get_claim
from ..models import model_fingerprint


def claim_files(claim: Claim) -> frozenset[Path]:
    """The code a record of ``claim`` depends on: its module's closure, the runner's, and its ``after`` claims'."""
    import sys

    files = set(closure(Path(sys.modules[claim.measure.__module__].__file__).resolve()))
    files |= closure(Path(__file__).resolve().parent / "runner.py")
    for other in claim.after:
        files |= claim_files(get_claim(other))
    return frozenset(files)


def inputs(claim: Claim, model_id: str, model_hash: str, protocol: str, tier: str, params: dict[str, Any],
           seeds: list[int], trained_threshold: float) -> dict[str, Any]:
    """Everything a record of this job is a function of (see the module docstring)."""
    pair = instruct_pair_of(model_id) if claim.applies is needs_instruct_pair else None
    return {"instruct_pair": [pair, model_fingerprint(pair)] if pair else None,
            "claim_hash": prereg.claim_hash(claim), "after": {c: prereg.claim_hash(get_claim(c)) for c in claim.after},
            "model_hash": model_hash, "protocol": protocol, "tier": tier,
            "params": json.loads(json.dumps(params, sort_keys=True, default=str)), "seeds": list(seeds),
            "code": digest(claim_files(claim) | set(data_files())), "blas": blas.fingerprint(),
            "trained_gate": trained_threshold}
