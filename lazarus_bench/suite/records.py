"""Result records: one JSON file per (claim, model, protocol) run, written atomically, schema-versioned.

Modelled on lm-evaluation-harness result manifests: claim, model and its hash, config, seeds,
statistic with CI and effect size, n, verdict, per-item samples, environment, wall time and FLOPs counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LazarusError
from ..io import write_json

SCHEMA_VERSION = 1
RECORDS_DIR = "records"
FAILED_DIR = "failed"
REQUIRED = {"claim": ("id",), "model": ("id", "slug"), "protocol": (), "status": ()}


def record_path(report_dir: str | Path, claim_id: str, model_slug: str, protocol: str) -> Path:
    return Path(report_dir) / RECORDS_DIR / f"{claim_id}__{model_slug}__{protocol}.json"


def failed_path(report_dir: str | Path, claim_id: str, model_slug: str, protocol: str) -> Path:
    return Path(report_dir) / RECORDS_DIR / FAILED_DIR / f"{claim_id}__{model_slug}__{protocol}.json"


def save_record(report_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write one record atomically (never half-written). A run that did not finish (error or skip) never replaces an
    earlier finished record of the same (claim, model, protocol): it goes to ``records/failed/`` beside it."""
    key = (record["claim"]["id"], record["model"]["slug"], record["protocol"])
    path = record_path(report_dir, *key)
    if record.get("status") != "ok" and _status(path) == "ok":
        path = failed_path(report_dir, *key)
    elif record.get("status") == "ok":
        failed_path(report_dir, *key).unlink(missing_ok=True)
    return write_json(path, {"schema_version": SCHEMA_VERSION, **record})


def _status(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data.get("status") if isinstance(data, dict) else None


def _missing_keys(data: dict) -> list[str]:
    missing = []
    for key, inner in REQUIRED.items():
        if key not in data:
            missing.append(key)
        elif inner and not (isinstance(data[key], dict) and all(k in data[key] for k in inner)):
            missing += [f"{key}.{k}" for k in inner if not isinstance(data[key], dict) or k not in data[key]]
    return missing


@dataclass
class Loaded:
    records: list[dict]
    skipped: list[tuple[str, str]]
    failed: list[dict] = field(default_factory=list)


def load_records(report_dir: str | Path) -> Loaded:
    """Every readable record of the current schema; others are listed with the reason they were skipped. Failed
    re-runs kept beside a finished record (``records/failed/``) come back in ``failed``."""
    folder = Path(report_dir) / RECORDS_DIR
    if not folder.is_dir():
        raise LazarusError(f"no records folder {str(folder)!r}: "
                           f"run `lazarus-bench run --report-dir {report_dir}` first")
    records, skipped = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            skipped.append((path.name, f"unreadable ({type(exc).__name__})"))
            continue
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            skipped.append(
                (path.name, f"schema version {version}, this lazarus_bench reads {SCHEMA_VERSION}; re-run it")
            )
            continue
        missing = _missing_keys(data)
        if missing:
            skipped.append((path.name, f"not a complete record (missing {', '.join(missing)})"))
            continue
        records.append(data)
    failed = []
    for path in sorted((folder / FAILED_DIR).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and not _missing_keys(data):
            failed.append(data)
    return Loaded(records, skipped, failed)
