"""Pre-registration: a hash of each claim's criteria, parameters and measure source, checked against a lock.

``lazarus-bench claims --lock`` writes the lock (committed beside the claims); every record carries its claim's
hash and whether it matches the lock, and the report flags records that do not.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import json
from pathlib import Path

from ..errors import LazarusError
from ..io import write_json
from .base import Claim, all_claims, claim_dict

LOCK = Path(__file__).with_name("LOCK.json")


FRAMEWORK = ("base", "prereg")  # the registry's machinery, not a measure: editing it does not unlock every claim


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


def claim_hash(claim: Claim) -> str:
    """sha256 over the claim's data (criteria, parameters, gates, controls) and its measure sources."""
    payload = {"claim": claim_dict(claim), "sources": measure_sources(claim)}
    text = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def read_lock(path: str | Path = LOCK) -> dict[str, str]:
    """The locked hashes by claim id ({} when there is no lock file)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): str(v) for k, v in data["claims"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LazarusError(f"pre-registration lock {path} is unreadable ({exc}); rewrite it with "
                           "'lazarus-bench claims --lock'") from exc


def write_lock(path: str | Path = LOCK) -> dict[str, str]:
    """Hash every registered claim into the lock file (atomically) and return the hashes."""
    hashes = {c.id: claim_hash(c) for c in all_claims()}
    write_json(Path(path), {"note": "pre-registration lock: sha256 of each claim's criteria, parameters and "
                                    "measure source; rewrite with 'lazarus-bench claims --lock'", "claims": hashes})
    return hashes


def check(claim: Claim, lock: dict[str, str] | None = None) -> dict[str, str | None]:
    """The claim's hash against the lock: status ``matches``, ``differs`` or ``not locked``."""
    lock = read_lock() if lock is None else lock
    current, locked = claim_hash(claim), lock.get(claim.id)
    status = "not locked" if locked is None else ("matches" if locked == current else "differs")
    return {"hash": current, "locked": locked, "status": status}
