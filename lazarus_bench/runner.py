"""Run claims on models and write one record per (claim, model, protocol) as soon as it finishes."""

from __future__ import annotations

import hashlib
import sys
import time
import traceback
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from .cache import sha256_file
from .claims.base import ZOO_INSTRUCT_PAIRS, Claim, ClaimContext, ModelInfo, all_claims, claim_dict, get_claim
from .claims.base import model_info, outcome_dict, slug
from .errors import LazarusError
from .records import save_record
from .runinfo import environment

_HASHES: dict[str, str] = {}


def model_hash(model_id: str, path: str | Path | None) -> str:
    """sha256 over a local checkpoint's config and weights (the zoo's manifest when it has one)."""
    if model_id in _HASHES:
        return _HASHES[model_id]
    digest = hashlib.sha256()
    root = Path(path) if path is not None else None
    if root is not None and root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix in (".json", ".safetensors") and p.is_file())
        for p in files:
            digest.update(p.name.encode())
            digest.update(sha256_file(p).encode())
    else:
        digest.update(f"hub:{model_id}".encode())
    _HASHES[model_id] = digest.hexdigest()[:16]
    return _HASHES[model_id]


def _local_path(model_id: str) -> Path | None:
    from .models import resolve_zoo

    if model_id.startswith(("zoo:", "zoo-micro:")):
        return resolve_zoo(model_id)
    path = Path(model_id).expanduser()
    return path if path.is_dir() else None


class ModelPool:
    """Loads each model once for analysis; training claims get fresh copies through their context."""

    def __init__(self):
        self._handles: dict[str, Any] = {}

    def get(self, model_id: str):
        from .models import load_model

        if model_id not in self._handles:
            self._handles[model_id] = load_model(model_id)
        return self._handles[model_id]


def _base_record(claim: Claim, info: ModelInfo | None, model_id: str, protocol: str, tier: str, params: dict,
                 seeds: list[int], pool_path: Path | None) -> dict:
    return {
        "claim": claim_dict(claim),
        "model": {
            "id": model_id,
            "slug": slug(model_id),
            "hash": model_hash(model_id, pool_path) if info is not None else None,
            "info": asdict(info) if info is not None else None,
        },
        "protocol": protocol,
        "tier": tier,
        "params": params,
        "seeds": seeds,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def run_claim(claim: Claim, model_id: str, *, tier: str = "slow", n_seeds: int | None = None,
              report_dir: str | Path = "reports", protocol: str = "corrected", overrides: dict | None = None,
              pool: ModelPool | None = None, log: Callable[[str], None] | None = None,
              cache_dir: str | Path | None = None) -> dict:
    """Measure one claim on one model and save its record; inapplicable claims and failures are recorded too."""
    pool = pool or ModelPool()
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    params = claim.parameters(tier, overrides)
    n = n_seeds if n_seeds is not None else claim.default_seeds[tier]
    seeds = list(range(n)) if claim.training else []
    start = time.perf_counter()
    info, path = None, None
    try:
        handle = pool.get(model_id)
        path = _local_path(model_id)
        info = model_info(handle, ZOO_INSTRUCT_PAIRS)
    except LazarusError as exc:
        record = {**_base_record(claim, None, model_id, protocol, tier, params, seeds, None),
                  "status": "skipped", "reason": f"model failed to load: {exc}"}
        save_record(report_dir, record)
        return record
    record = _base_record(claim, info, model_id, protocol, tier, params, seeds, path)
    reason = claim.applies(info)
    if reason:
        record.update(status="skipped", reason=reason)
        save_record(report_dir, record)
        return record
    ctx = ClaimContext(claim, info, tier=tier, seeds=seeds, params=params, protocol=protocol, cache_dir=cache_dir,
                       log=log, shared=handle)
    try:
        outcome = claim.measure(ctx)
        record.update(status="ok", verdict=str(outcome.verdict), reason=outcome.statistic.reason,
                      **outcome_dict(outcome))
    except LazarusError as exc:
        record.update(status="error", reason=str(exc))
    except Exception as exc:  # noqa: BLE001  (a broken measure must not lose the other records)
        record.update(status="error", reason=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    record["wall_s"] = round(time.perf_counter() - start, 2)
    record["environment"] = environment()
    save_record(report_dir, record)
    return record


def run_suite(models: Sequence[str], claim_ids: Sequence[str] | None = None, *, tier: str = "slow",
              n_seeds: int | None = None, report_dir: str | Path = "reports", protocols: Sequence[str] | None = None,
              overrides: dict[str, dict] | None = None, log: Callable[[str], None] | None = None,
              cache_dir: str | Path | None = None) -> list[dict]:
    """Every requested claim on every model (each protocol the claim offers), with progress per claim and model."""
    claims = [get_claim(c) for c in claim_ids] if claim_ids else all_claims()
    pool = ModelPool()
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    jobs = [(c, m, p) for c in claims for m in models for p in c.protocols if protocols is None or p in protocols]
    records = []
    for i, (claim, model_id, protocol) in enumerate(jobs, 1):
        log(f"[{i}/{len(jobs)}] {claim.id} on {model_id} ({protocol})")
        record = run_claim(claim, model_id, tier=tier, n_seeds=n_seeds, report_dir=report_dir, protocol=protocol,
                           overrides=(overrides or {}).get(claim.id), pool=pool, log=log, cache_dir=cache_dir)
        summary = record.get("verdict") or record["status"].upper()
        log(f"[{i}/{len(jobs)}] {claim.id} on {model_id}: {summary} ({record.get('reason', '')}) "
            f"in {record.get('wall_s', 0)} s")
        records.append(record)
    return records
