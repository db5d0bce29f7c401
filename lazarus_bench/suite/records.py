"""Result records: one JSON file per (claim, model, protocol) run, written atomically, schema-versioned.

Modelled on lm-evaluation-harness result manifests: claim, model and its hash, config, seeds,
statistic with CI and effect size, n, verdict, per-item samples, environment, wall time and FLOPs counted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from ..errors import LazarusError
from ..harness.base import ControlRun, GateResult
from ..harness.controls import GradedRun, NullRun
from ..io import jsonable, write_json
from ..stats import ClaimStatistic, EffectSize, Verdict
from ..userfiles import read_user_json

SCHEMA_VERSION = 1
READABLE_VERSIONS = (1,)
RECORDS_DIR = "records"
FAILED_DIR = "failed"
Status = Literal["ok", "skipped", "error"]


@dataclass(frozen=True)
class ModelRef:
    """The model a record was measured on."""

    id: str  # as the user named it (a fused adapter reads "BASE + adapter PATH")
    slug: str  # filename-safe id with a short hash
    hash: str  # content hash of the weights, config and tokenizer files
    info: dict[str, Any]  # ModelInfo: type, kind, layers, MoE, tied, instruct pair
    path: str | None = None  # the fused checkpoint actually loaded, for a model with an adapter
    base: str | None = None  # the base model an adapter was fused into
    adapter: dict[str, Any] | None = None  # the adapter's path and hash
    build: dict[str, Any] | None = None  # a zoo model's build: seed, role (development, confirmatory), lock

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None or f.default is not None}


@dataclass(frozen=True)
class Record:
    """One (claim, model, protocol) run: what was run, on what, and what came out. ``verdict`` is the one
    ``stats.final_verdict`` decided; ``measured_verdict`` the measurement's own where a gate or calibration
    overrode it."""

    claim: dict[str, Any]  # the claim's data as run (``claim_dict``): statement, criterion, parameters, tests
    model: ModelRef  # the model measured
    protocol: str  # "corrected", "original" or "corrected+<defect>"
    tier: str  # "fast" (pipeline check) or "slow" (the full protocol)
    params: dict[str, Any]  # the parameters used, overrides applied
    seeds: tuple[int, ...]  # training seeds (empty for analysis claims)
    prereg: dict[str, Any]  # the claim's hash and its status against the lock in force
    timestamp: str  # UTC start time
    status: Status  # ok (measured), skipped (claim does not apply) or error
    reason: str  # why the verdict, the skip or the error
    tokenization: dict[str, Any] | None = None  # what the claims fed the model on its tokenizer
    fitness: tuple[GateResult, ...] = ()  # the claim's gates measured on the model
    verdict: Verdict | None = None  # the verdict (None unless status is ok)
    statistic: ClaimStatistic | None = None  # the headline statistic with CI, effect size, p, n and details
    ours: str | None = None  # one-line summary of what was measured
    samples: list[dict[str, Any]] = field(default_factory=list)  # per-item rows (prompt, seed, layer)
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)  # plotted series by name
    extra: dict[str, Any] = field(default_factory=dict)  # descriptive numbers that decide nothing
    mde: dict[str, Any] | None = None  # minimum detectable effect at alpha, power 0.8: value, units, how
    controls: tuple[ControlRun, ...] = ()  # the claim's controls measured with it
    graded: tuple[GradedRun, ...] | None = None  # graded positive controls: detections per planted strength, MDE
    nulls: tuple[NullRun, ...] | None = None  # null controls that can fire: false positives over replicates
    calibration: str | None = None  # what the controls say: calibrated, insensitive, not specific, not run, ...
    measured_verdict: Verdict | None = None  # the measurement's verdict when a gate or calibration overrode it
    wall_s: float | None = None  # wall time of the run in seconds
    seconds: dict[str, float] | None = None  # of which the measure's and the controls' (calibration's) wall seconds
    work: dict[str, Any] | None = None  # FLOPs and tokens counted during the run
    environment: dict[str, Any] | None = None  # packages, BLAS, device, git commit
    traceback: str | None = None  # the traceback of an unexpected error
    inputs: dict[str, Any] | None = None  # what the record is a function of (``reuse.inputs``): equal inputs, reused
    reused: dict[str, Any] | None = None  # set when a later run reused this record instead of measuring again

    @property
    def claim_id(self) -> str:
        return self.claim["id"]

    @property
    def key(self) -> tuple[str, str, str]:
        """(claim id, model slug, protocol): one record per key in a report directory."""
        return self.claim["id"], self.model.slug, self.protocol

    @property
    def label(self) -> str:
        """The outcome as the verdict matrix shows it: the verdict, n/a (skipped) or ERROR."""
        return str(self.verdict) if self.status == "ok" else "n/a" if self.status == "skipped" else "ERROR"

    @classmethod
    def bare(cls, claim_id: str, model_id: str, status: Status = "ok", **fields_: Any) -> "Record":
        """A record with no run behind it (the report's pure helpers and their tests build such)."""
        defaults = dict(protocol="corrected", tier="slow", params={}, seeds=(), prereg={}, timestamp="", reason="")
        return cls(claim={"id": claim_id}, model=ModelRef(id=model_id, slug=model_id, hash="", info={}),
                   status=status, **{**defaults, **fields_})

    def replace(self, **changes: Any) -> "Record":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON form (schema ``SCHEMA_VERSION``); unset optional fields are left out."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            if f.name in ("fitness", "controls", "curves", "samples", "extra") and not value and \
                    self.status != "ok":
                continue
            out[f.name] = jsonable([asdict(g) for g in value] if f.name == "fitness" else value)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> "Record":
        """A record from its JSON form; raises ``ValueError`` with one line naming what is wrong (schema version,
        missing or unknown field)."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"schema version {version}, this lazarus_bench reads {SCHEMA_VERSION}; re-run it")
        body = {k: v for k, v in data.items() if k != "schema_version"}
        names = {f.name: f for f in fields(cls)}
        unknown = sorted(set(body) - set(names))
        missing = [n for n, f in names.items() if n not in body and _required(f)]
        if not isinstance(body.get("claim"), dict) or "id" not in body.get("claim", {}):
            missing.append("claim.id")
        if not isinstance(body.get("model"), dict) or not {"id", "slug"} <= set(body.get("model", {})):
            missing.append("model.id/slug")
        if missing or unknown:
            raise ValueError("not a complete record (" + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else []) +
                ([f"unknown {', '.join(unknown)}"] if unknown else [])) + ")")
        if body["status"] not in ("ok", "skipped", "error"):
            raise ValueError(f"status {body['status']!r} is not ok, skipped or error")
        model = dict(body["model"])
        body["model"] = ModelRef(**{"hash": "", "info": {}, **model})
        body["seeds"] = tuple(body.get("seeds") or ())
        body["fitness"] = tuple(GateResult(**g) for g in body.get("fitness") or ())
        body["controls"] = tuple(ControlRun.from_dict(c) for c in body.get("controls") or ())
        for name, kind in (("graded", GradedRun), ("nulls", NullRun)):
            if body.get(name) is not None:
                body[name] = tuple(kind.from_dict(c) for c in body[name])
        for name in ("verdict", "measured_verdict"):
            if body.get(name) is not None:
                body[name] = Verdict(body[name])
        if body.get("statistic") is not None:
            body["statistic"] = statistic_from_dict(body["statistic"])
        return cls(**body)


def _required(f) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


def statistic_from_dict(data: dict[str, Any]) -> ClaimStatistic:
    """A ``ClaimStatistic`` from its JSON form (its effect size typed too)."""
    effect = data.get("effect_size")
    return ClaimStatistic(**{**data, "verdict": Verdict(data["verdict"]),
                             "effect_size": None if effect is None else EffectSize(**effect)})


def record_path(report_dir: str | Path, claim_id: str, model_slug: str, protocol: str) -> Path:
    return Path(report_dir) / RECORDS_DIR / f"{claim_id}__{model_slug}__{protocol}.json"


def failed_path(report_dir: str | Path, claim_id: str, model_slug: str, protocol: str) -> Path:
    return Path(report_dir) / RECORDS_DIR / FAILED_DIR / f"{claim_id}__{model_slug}__{protocol}.json"


def save_record(report_dir: str | Path, record: Record) -> Path:
    """Write one record atomically (never half-written). A run that did not finish (error or skip) never replaces an
    earlier finished record of the same (claim, model, protocol): it goes to ``records/failed/`` beside it."""
    path = record_path(report_dir, *record.key)
    if record.status != "ok" and _status(path) == "ok":
        path = failed_path(report_dir, *record.key)
    elif record.status == "ok":
        failed_path(report_dir, *record.key).unlink(missing_ok=True)
    return write_json(path, record.to_dict())


def _status(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data.get("status") if isinstance(data, dict) else None


def read_record(path: str | Path) -> Record:
    """One record file; a file that is not a readable record of this schema is one ``LazarusError`` line."""
    path = Path(path)
    try:
        data = read_user_json(path, "record", shape=object)
    except LazarusError as exc:
        raise LazarusError(f"{path.name}: unreadable, {str(exc).removeprefix(f'record {path}: ')}") from None
    try:
        return Record.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise LazarusError(f"{path.name}: {exc}") from None


@dataclass
class Loaded:
    records: list[Record]
    skipped: list[tuple[str, str]]
    failed: list[Record] = field(default_factory=list)


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
            records.append(read_record(path))
        except LazarusError as exc:
            skipped.append((path.name, str(exc).removeprefix(f"{path.name}: ")))
    failed = []
    for path in sorted((folder / FAILED_DIR).glob("*.json")):
        try:
            failed.append(read_record(path))
        except LazarusError:
            continue
    return Loaded(records, skipped, failed)
