"""Pre-registration: a hash of each claim's criteria, parameters and measure source, checked against a lock.

``lazarus-bench claims --freeze`` writes the confirmatory version once; every later change is an amendment
(``--amend ID --why TEXT``: what, why, records touched, verdicts before). Every record carries its claim's hash and
whether it matches the lock in force; the report flags records that do not and lists the amendments. Lock v1 hashes
a claim's rules and measure sources; lock v2 (CLAIMS.md revision 4) hashes the meaning of everything that feeds a
record, and holds the verdict rules, the recipe, the pinned environment and the confirmatory builds' number.
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
from .base import Claim, all_claims, claim_dict

LOCK = Path(__file__).with_name("LOCK.json")
REQUIREMENTS = codehash.PACKAGE.parent / "requirements.lock"  # the dependency lock the freeze pins
RULES = "lazarus_bench.stats.population"  # the population verdict over builds: one rules hash beside the claims'
POWER_RULE = "lazarus_bench.claims.controls"  # the rule that reads each graded control: in every claim's hash
MIN_CONFIRMATORY = 8  # confirmatory builds lock v2 needs at least (CLAIMS.md revision 4)
SEED_RULE = ("seed i is the first 8 hex digits of sha256('<freeze commit>:<i>') as an integer, i = 0, 1, ..., "
             "skipping development seeds and repeats, until the confirmatory number is drawn")


FRAMEWORK = ("base", "prereg", "controls")  # the registry's machinery, not a measure: editing it unlocks no claim


def _sibling_imports(source: str) -> set[str]:
    """Modules of this package a source imports relatively (``from .common import ...``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module and node.module not in FRAMEWORK:
            found.add(f"{__package__}.{node.module}")
    return found


def measure_sources(claim: Claim) -> dict[str, str]:
    """Source of the claim's module and of the claim modules and helpers it imports, transitively."""
    pending, sources = [claim.measure.__module__], {}
    while pending:
        name = pending.pop()
        if name in sources:
            continue
        sources[name] = inspect.getsource(importlib.import_module(name))
        pending += sorted(_sibling_imports(sources[name]) - set(sources))
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


def rules_hash() -> str:
    """The meaning of the population verdict's rules: its module and what it imports."""
    return codehash.digest(codehash.closure(codehash.module_file(RULES)))


def version_of(data: dict) -> int:
    """The frozen version a lock holds (0: none, or the old unversioned form)."""
    return int(data["frozen"].get("version", 0)) if data else 0


def hash_of(claim: Claim, version: int) -> str:
    """The claim's hash as lock ``version`` computes it."""
    return lock_hash(claim) if version >= 2 else claim_hash(claim)


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


def freeze(path: str | Path | None = None, *, basis: str, date: str | None = None, confirmatory: int | None = None,
           power: str = "", recipe: dict | None = None) -> dict:
    """Freeze a confirmatory version: every registered claim's hash. A lock with none gets v1; a lock at v1 (closed
    when stage 1 began) gets v2, which also holds the verdict rules, the pinned environment, the zoo ``recipe``, the
    seed rule and the ``confirmatory`` builds' number with its ``power`` analysis. Refused at v2: a later change is an
    amendment, so a lock can never be rewritten to follow the results."""
    path = Path(path or LOCK)
    data = read_lock_file(path)
    version = version_of(data) + 1
    if version > 2:
        raise LazarusError(f"{path} is frozen at {lock_version(data)}; change a claim with "
                           "'lazarus-bench claims --amend ID --why TEXT' instead")
    if version == 2 and (confirmatory is None or confirmatory < MIN_CONFIRMATORY or not power.strip() or not recipe):
        raise LazarusError(f"{path} is frozen at v1, closed when stage 1 began: lock v2 needs --confirmatory N "
                           f"(>= {MIN_CONFIRMATORY}, from the power analysis) and --power TEXT")
    if version == 1 and (confirmatory is not None or power):
        raise LazarusError("--confirmatory and --power belong to lock v2, frozen over a lock at v1")
    frozen = {"version": version, "date": date or _today(), "basis": basis,
              "claims": {c.id: hash_of(c, version) for c in all_claims()}}
    if version == 2:
        frozen.update(confirmatory=confirmatory, power=power, recipe=recipe, seed_rule=SEED_RULE, **environment())
    write_json(path, {"note": NOTE, "frozen": frozen, "amendments": [], **({"closed": [data]} if data else {})})
    return read_lock_file(path)


def environment() -> dict:
    """What lock v2 pins beside the code: the verdict rules' hash, the Python tag and the dependency lock's sha256."""
    if not REQUIREMENTS.is_file():
        raise LazarusError(f"{REQUIREMENTS}: no dependency lock to pin; freeze from a checkout of the project")
    return {"rules": rules_hash(), "python": python_tag(),
            "requirements": hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()}


def drift(data: dict, recipe_hash: str | None = None) -> list[str]:
    """What lock v2 pins that no longer holds here (the rules, the Python tag, the dependency lock, the recipe)."""
    frozen = data.get("frozen", {}) if data else {}
    if version_of(data) < 2:
        return []
    now = {**environment(), "recipe": recipe_hash or frozen["recipe"]["hash"]}
    then = {**{k: frozen[k] for k in ("rules", "python", "requirements")}, "recipe": frozen["recipe"]["hash"]}
    return [f"{k}: locked {then[k]}, here {now[k]}" for k in then if then[k] != now[k]]


def amend(claim_ids: list[str], *, why: str, what: str, verdicts_before: dict[str, str],
          records_touched: list[str], path: str | Path | None = None, date: str | None = None) -> dict:
    """Append an amendment for claims whose hash changed since the version in force; refused for a claim whose hash
    did not change, without a reason, or before a version is frozen."""
    path = Path(path or LOCK)
    data = read_lock_file(path)
    if not data or data["frozen"].get("version", 0) < 1:
        raise LazarusError(f"{path} has no frozen version; freeze one with 'lazarus-bench claims --freeze' first")
    if not why.strip():
        raise LazarusError("an amendment needs its reason (--why)")
    current, version = effective_hashes(data), version_of(data)
    claims = {c.id: c for c in all_claims()}
    unknown = [i for i in claim_ids if i not in claims]
    if unknown:
        raise LazarusError(f"unknown claim id(s) {', '.join(unknown)} (known: {', '.join(sorted(claims))})")
    hashes = {i: hash_of(claims[i], version) for i in claim_ids}
    unchanged = [i for i, h in hashes.items() if current.get(i) == h]
    if unchanged:
        raise LazarusError(f"nothing to amend for {', '.join(unchanged)}: the hash equals the lock's")
    entry = {"number": len(data["amendments"]) + 1, "date": date or _today(), "claims": hashes,
             "what": what, "why": why, "records_touched": sorted(records_touched),
             "verdicts_before": dict(sorted(verdicts_before.items()))}
    data["amendments"].append(entry)
    write_json(Path(path), data)
    return entry


def _today() -> str:
    from datetime import date

    return date.today().isoformat()


NOTE = ("pre-registration lock: sha256 of each claim's criteria, declared tests, parameters and measure source. "
        "'frozen' is the confirmatory version; every later change is an amendment "
        "('lazarus-bench claims --amend ID --why TEXT'), listed in the report under 'Deviations from the "
        "pre-registration'. Never edit by hand.")


def check(claim: Claim, lock: dict[str, str] | None = None, version: int = 1) -> dict[str, str | None]:
    """The claim's hash against the lock in force (``lock``: hashes of a lock at ``version``): status ``matches``,
    ``differs`` or ``not locked``, and the lock version (``v1+2``: frozen version 1 and two amendments) when read
    from the committed file."""
    data = read_lock_file() if lock is None else None
    lock = effective_hashes(data) if lock is None else lock
    current, locked = hash_of(claim, version_of(data) if data is not None else version), lock.get(claim.id)
    status = "not locked" if locked is None else ("matches" if locked == current else "differs")
    out = {"hash": current, "locked": locked, "status": status}
    if data is not None:
        out["lock_version"] = lock_version(data)
    return out
