"""Incremental runs: a record whose inputs are unchanged is reused, not measured again.

A record's inputs are the claim's locked hash, the model's content hash, protocol, tier, parameters, seeds, the
BLAS, the trained-model gate's threshold, and the code of what it calls: the claim's module and every lazarus_bench
module it imports (transitively, lazy imports included), the runner's own, the package's data files, and the same
for the claims it reads runs from (``after``). A change to one claim's file recomputes that claim only; a change to
a shared module (statistics, lens, training) recomputes every claim that imports it.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import blas
from ..claims import prereg
from ..claims.base import Claim, get_claim

PACKAGE = Path(__file__).resolve().parent.parent
DATA_DIRS = ("data",)


def _module_file(dotted: str) -> Path | None:
    """The file of ``lazarus_bench.a.b`` (its ``__init__.py`` for a package), None outside the package."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE.name:
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _dotted(path: Path) -> str:
    """``lazarus_bench.a.b`` for a package file; "" for a claim file outside it (``--include``)."""
    if not path.is_relative_to(PACKAGE):
        return ""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[Path]:
    """The package files ``path`` imports anywhere in its body (``from . import x`` resolves to x's file)."""
    here = _dotted(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        found |= {f for f in map(_module_file, names) if f is not None}
    return found


@lru_cache(maxsize=None)
def closure(path: Path) -> frozenset[Path]:
    """``path`` and every package file it reaches through imports."""
    seen, todo = {path}, [path]
    while todo:
        for dep in _imports(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return frozenset(seen)


def _digest(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update((p.relative_to(PACKAGE).as_posix() if p.is_relative_to(PACKAGE) else p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def claim_files(claim: Claim) -> frozenset[Path]:
    """The code a record of ``claim`` depends on: its module's closure, the runner's, and its ``after`` claims'."""
    import sys

    files = set(closure(Path(sys.modules[claim.measure.__module__].__file__).resolve()))
    files |= closure(Path(__file__).resolve().parent / "runner.py")
    for other in claim.after:
        files |= claim_files(get_claim(other))
    return frozenset(files)


def inputs(claim: Claim, model_hash: str, protocol: str, tier: str, params: dict[str, Any], seeds: list[int],
           trained_threshold: float) -> dict[str, Any]:
    """Everything a record of this job is a function of (see the module docstring)."""
    data = [p for d in DATA_DIRS for p in (PACKAGE / d).rglob("*") if p.is_file()]
    return {"claim_hash": prereg.claim_hash(claim), "after": {c: prereg.claim_hash(get_claim(c)) for c in claim.after},
            "model_hash": model_hash, "protocol": protocol, "tier": tier,
            "params": json.loads(json.dumps(params, sort_keys=True, default=str)), "seeds": list(seeds),
            "code": _digest(claim_files(claim) | set(data)), "blas": blas.fingerprint(),
            "trained_gate": trained_threshold}
