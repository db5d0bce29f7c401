"""Pre-registration: a hash of each claim's criteria, parameters and measure source, checked against a lock.

``lazarus-bench claims --freeze`` writes the confirmatory version once; every later change is an amendment
(``--amend ID --why TEXT``: what, why, records touched, verdicts before). Every record carries its claim's hash and
whether it matches the lock in force; the report flags records that do not and lists the amendments.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import json
from pathlib import Path

from .. import codehash
from ..codehash import normalised, python_tag
from ..errors import LazarusError
from ..io import write_json
from .base import Claim, claim_dict
from .registry import all_claims

LOCK = Path(__file__).with_name("LOCK.json")
POWER_RULE = "lazarus_bench.harness.controls"  # the rule that reads each graded control: in every claim's v2 hash


FRAMEWORK = ("base", "prereg", "controls", "registry", "params")  # machinery: editing it unlocks no claim
HASHED = ("lazarus_bench.claims", "lazarus_bench.harness")  # claim files and the helpers they share


def _sibling_imports(source: str, module: str) -> set[str]:
    """Claim modules and shared helpers that ``module``'s source imports relatively (``from ..harness.common``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.ImportFrom) and node.module and node.level in (1, 2)):
            continue
        base = module.rsplit(".", node.level)[0]
        name = f"{base}.{node.module}"
        if name.rsplit(".", 1)[0] in HASHED and name.rsplit(".", 1)[1] not in FRAMEWORK:
            found.add(name)
    return found


def measure_sources(claim: Claim) -> dict[str, str]:
    """Source of the claim's module and of the claim modules and helpers it imports, transitively."""
    pending, sources = [claim.measure.__module__], {}
    while pending:
        name = pending.pop()
        if name in sources:
            continue
        sources[name] = inspect.getsource(importlib.import_module(name))
        pending += sorted(_sibling_imports(sources[name], name) - set(sources))
    return dict(sorted(sources.items()))


PROSE = ("title", "statement", "source", "criterion", "writeup", "no_graded", "description")  # words, not rules


def _without_prose(value):
    if isinstance(value, dict):
        return {k: _without_prose(v) for k, v in value.items() if k not in PROSE}
    if isinstance(value, list):
        return [_without_prose(v) for v in value]
    return value


def claim_hash(claim: Claim) -> str:
    """sha256 over the claim's rules (parameters, tests, gates, controls; not its prose) and the normalised syntax
    trees of its measure sources, with the Python tag: a wording, docstring or comment edit changes no hash."""
    sources = {name: normalised(text, name) for name, text in measure_sources(claim).items()}
    payload = {"claim": _without_prose(claim_dict(claim)), "sources": sources, "python": python_tag()}
    text = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def lock_hash(claim: Claim) -> str:
    """Lock v2's hash of a claim: its rules (not its prose), its population declaration, and the meaning of every file
    that feeds its records (its module's import closure, the power rule, the prompt data), with the Python tag."""
    path = codehash.module_file(claim.measure.__module__) or Path(inspect.getfile(claim.measure)).resolve()
    files = codehash.closure(path) | codehash.closure(codehash.module_file(POWER_RULE)) | set(codehash.data_files())
    population = getattr(importlib.import_module(claim.measure.__module__), "POPULATION", {})
    payload = {"claim": _without_prose(claim_dict(claim)), "population": population, "code": codehash.digest(files),
               "python": python_tag()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()


def read_lock_file(path: str | Path | None = None) -> dict:
    """The lock file: ``frozen`` (the confirmatory version: number, date, basis, hashes) and ``amendments`` (each
    change after the freeze: claims and their new hashes, what, why, records touched, verdicts before); ``{}`` when
    there is none. A file of the old unversioned form (only ``claims``) reads as frozen version 0."""
    path = Path(path or LOCK)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        if "frozen" not in data:
            data = {"frozen": {"version": 0, "claims": dict(data["claims"])}, "amendments": []}
        for entry in [data["frozen"], *data.setdefault("amendments", [])]:
            if not isinstance(entry["claims"], dict):
                raise TypeError("claims is not a mapping")
        return data
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LazarusError(f"pre-registration lock {path} is unreadable ({exc}); restore it from git") from exc


def effective_hashes(data: dict) -> dict[str, str]:
    """The hashes in force: the frozen version's, each amendment applied in order, then the same claims hashed by
    meaning (``rehashed``: the hash function changed, not the claims) where the lock holds that."""
    if not data:
        return {}
    hashes = {str(k): str(v) for k, v in data["frozen"]["claims"].items()}
    for amendment in data.get("amendments", []):
        hashes.update({str(k): str(v) for k, v in amendment["claims"].items()})
    rehashed = data.get("rehashed") or {}
    if rehashed.get("scheme") == python_tag():
        hashes.update({str(k): str(v) for k, v in rehashed["claims"].items()})
    return hashes


def rehash(path: str | Path | None = None, *, basis: str, date: str | None = None) -> dict:
    """Record every claim's hash under this hash scheme (``rehashed``), for claims whose code and rules are those the
    lock holds (``basis`` says how that was checked): a new hash function, not an amendment."""
    path = Path(path or LOCK)
    data = read_lock_file(path)
    data["rehashed"] = {"scheme": python_tag(), "date": date or _today(), "basis": basis,
                        "claims": {c.id: claim_hash(c) for c in all_claims()}}
    write_json(path, data)
    return data


def read_lock(path: str | Path | None = None) -> dict[str, str]:
    """The hashes in force by claim id ({} when there is no lock file)."""
    return effective_hashes(read_lock_file(path))


def lock_version(data: dict) -> str:
    """``vN`` for a frozen version with no amendment, ``vN+k`` after k amendments."""
    if not data:
        return "none"
    k = len(data.get("amendments", []))
    return f"v{data['frozen']['version']}" + (f"+{k}" if k else "")


def freeze(path: str | Path | None = None, *, basis: str, date: str | None = None) -> dict:
    """Freeze the confirmatory version: every registered claim's hash. Refused once a version is frozen (a change
    after that is an amendment), so a lock can never be rewritten to follow the results."""
    path = Path(path or LOCK)
    data = read_lock_file(path)
    if data and data["frozen"].get("version", 0) >= 1:
        raise LazarusError(f"{path} is frozen at {lock_version(data)}; change a claim with "
                           "'lazarus-bench claims --amend ID --why TEXT' instead")
    frozen = {"version": 1, "date": date or _today(), "basis": basis,
              "claims": {c.id: claim_hash(c) for c in all_claims()}}
    data = {"note": NOTE, "frozen": frozen, "amendments": []}
    write_json(Path(path), data)
    return data


def amend(claim_ids: list[str], *, why: str, what: str, verdicts_before: dict[str, str],
          records_touched: list[str], path: str | Path | None = None, date: str | None = None) -> dict:
    """Append an amendment for claims whose hash changed since the version in force; refused for a claim whose hash
    did not change, without a reason, or before a version is frozen."""
    path = Path(path or LOCK)
    data = read_lock_file(path)
    if not data or data["frozen"].get("version", 0) < 1:
        raise LazarusError(f"{path} has no frozen version; freeze one with 'lazarus-bench claims --freeze' first")
    if stage1(data):
        raise LazarusError(f"stage 1 is open since {data['stage1']['date']}: lock v1 is closed and claims change "
                           "without amendments until lock v2 is frozen")
    if not why.strip():
        raise LazarusError("an amendment needs its reason (--why)")
    current = effective_hashes(data)
    claims = {c.id: c for c in all_claims()}
    unknown = [i for i in claim_ids if i not in claims]
    if unknown:
        raise LazarusError(f"unknown claim id(s) {', '.join(unknown)} (known: {', '.join(sorted(claims))})")
    hashes = {i: claim_hash(claims[i]) for i in claim_ids}
    unchanged = [i for i, h in hashes.items() if current.get(i) == h]
    if unchanged:
        raise LazarusError(f"nothing to amend for {', '.join(unchanged)}: the hash equals the lock's")
    entry = {"number": len(data["amendments"]) + 1, "date": date or _today(), "claims": hashes,
             "what": what, "why": why, "records_touched": sorted(records_touched),
             "verdicts_before": dict(sorted(verdicts_before.items()))}
    data["amendments"].append(entry)
    write_json(Path(path), data)
    return entry


def open_stage1(path: str | Path | None = None, *, why: str, date: str | None = None) -> dict:
    """Close lock v1 for stage 1 of the registered report (CLAIMS.md revision 4): until lock v2 is frozen, claims
    change on the development builds without amendments and every verdict is exploratory. Refused without a reason,
    on a lock not at v1, or when stage 1 is already open."""
    path = Path(path or LOCK)
    data = read_lock_file(path)
    if not data or data["frozen"].get("version", 0) != 1:
        raise LazarusError(f"{path} is not at lock v1: stage 1 closes v1 only")
    if data.get("stage1"):
        raise LazarusError(f"stage 1 is open since {data['stage1']['date']}: freeze lock v2 to close it")
    if not why.strip():
        raise LazarusError("opening stage 1 needs its reason (--why)")
    data["stage1"] = {"date": date or _today(), "why": why}
    write_json(path, data)
    return data


def stage1(data: dict) -> dict | None:
    """The open stage 1 (its date and reason) of a lock that closed v1 for it and has not frozen v2, else None."""
    return data.get("stage1") if data and data["frozen"].get("version", 0) == 1 else None


def _today() -> str:
    from datetime import date

    return date.today().isoformat()


NOTE = ("pre-registration lock: sha256 of each claim's criteria, declared tests, parameters and measure source. "
        "'frozen' is the confirmatory version; every later change is an amendment "
        "('lazarus-bench claims --amend ID --why TEXT'), listed in the report under 'Deviations from the "
        "pre-registration'. Never edit by hand.")


def check(claim: Claim, lock: dict[str, str] | None = None) -> dict[str, str | None]:
    """The claim's hash against the lock in force: status ``matches``, ``differs`` or ``not locked``, and the lock
    version (``v1+2``: frozen version 1 and two amendments) when read from the committed file."""
    data = read_lock_file() if lock is None else None
    lock = effective_hashes(data) if lock is None else lock
    v2 = data is not None and data and data["frozen"].get("version", 0) >= 2
    current, locked = (lock_hash(claim) if v2 else claim_hash(claim)), lock.get(claim.id)
    status = "not locked" if locked is None else ("matches" if locked == current else "differs")
    out = {"hash": current, "locked": locked, "status": status}
    if data is not None:
        out["lock_version"] = lock_version(data)
    return out
