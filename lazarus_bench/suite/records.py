"""Result records: one JSON file per (claim, model, protocol) run, written atomically, schema-versioned.

Modelled on lm-evaluation-harness result manifests: claim, model and its hash, config, seeds,
statistic with CI and effect size, n, verdict, per-item samples, environment, wall time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io import write_json

SCHEMA_VERSION = 1
RECORDS_DIR = "records"


def record_path(report_dir: str | Path, claim_id: str, model_slug: str, protocol: str) -> Path:
    return Path(report_dir) / RECORDS_DIR / f"{claim_id}__{model_slug}__{protocol}.json"


def save_record(report_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write one record atomically (a finished record is never half-written or lost to a later crash)."""
    path = record_path(report_dir, record["claim"]["id"], record["model"]["slug"], record["protocol"])
    return write_json(path, {"schema_version": SCHEMA_VERSION, **record})


@dataclass
class Loaded:
    records: list[dict]
    skipped: list[tuple[str, str]]


def load_records(report_dir: str | Path) -> Loaded:
    """Every readable record of the current schema; others are listed with the reason they were skipped."""
    records, skipped = [], []
    for path in sorted((Path(report_dir) / RECORDS_DIR).glob("*.json")):
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
        records.append(data)
    return Loaded(records, skipped)
