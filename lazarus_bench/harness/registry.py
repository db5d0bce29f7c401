"""The claim registry: ``@claim`` registers a measure with its data; the packaged claim files and a user's
``--include`` folders are loaded by name, like lm-eval's task include path."""

from __future__ import annotations

import hashlib
import importlib
import os
import pkgutil
import re
from pathlib import Path
from typing import Any, Callable

from ..errors import LazarusError
from .base import Claim, ClaimContext, Outcome

REGISTRY: dict[str, Claim] = {}
PACKAGED = "lazarus_bench.claims"  # the packaged claim files, one ``hNN_*.py`` module per claim
CLAIM_MODULE = re.compile(r"^h\d\d_\w+$")


def claim_modules() -> list[str]:
    """The packaged claim modules, in id order."""
    return sorted(m.name for m in pkgutil.iter_modules(importlib.import_module(PACKAGED).__path__)
                  if CLAIM_MODULE.match(m.name))


def ensure_loaded() -> None:
    """Import every packaged claim module once (each registers its claim on import), by name like a plug-in."""
    for name in claim_modules():
        importlib.import_module(f"{PACKAGED}.{name}")


def register(claim: Claim) -> Claim:
    """Add ``claim`` to the registry; refused when its id is taken or a gate's threshold is not one of its
    parameters (that would be a KeyError at run time)."""
    if claim.id in REGISTRY:
        raise ValueError(f"claim {claim.id} registered twice")
    for gate in claim.gates:
        if gate.threshold_param not in claim.params:
            raise LazarusError(f"{claim.id}: gate '{gate.name}' reads parameter '{gate.threshold_param}', which the "
                               f"claim does not declare (parameters: {', '.join(claim.params) or 'none'})")
    REGISTRY[claim.id] = claim
    return claim


def claim(**fields: Any) -> Callable[[Callable[["ClaimContext"], Outcome]], Callable[["ClaimContext"], Outcome]]:
    """Decorator: register the decorated measure as the claim described by ``fields`` (its data sits on its code)."""

    def wrap(measure: Callable[["ClaimContext"], Outcome]) -> Callable[["ClaimContext"], Outcome]:
        register(Claim(measure=measure, **fields))
        return measure

    return wrap


def get_claim(claim_id: str) -> Claim:
    ensure_loaded()
    load_included()
    by_upper = {k.upper(): k for k in REGISTRY}
    key = by_upper.get(claim_id.strip().upper())
    if key is None:
        raise LazarusError(f"unknown claim id '{claim_id}' (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[key]


def all_claims() -> list[Claim]:
    ensure_loaded()
    load_included()
    return [REGISTRY[k] for k in sorted(REGISTRY)]


INCLUDE_ENV = "LAZARUS_INCLUDE"  # users' claim folders, kept in the environment so that worker processes load them too
_INCLUDED: set[Path] = set()


def include(folders: list[str] | tuple[str, ...]) -> None:
    """Register the claims defined in every ``*.py`` file of ``folders`` (here and in every worker started later), like
    lm-eval's include path: a user's claim is one file like a packaged one, in the same registry and report."""
    known = [f for f in os.environ.get(INCLUDE_ENV, "").split(os.pathsep) if f]
    for folder in folders:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise LazarusError(f"--include {folder}: not a folder of claim files")
        if str(path) not in known:
            known.append(str(path))
    os.environ[INCLUDE_ENV] = os.pathsep.join(known)
    load_included()


def load_included() -> None:
    """Import each file of the include folders once; a file that fails or registers nothing is one line."""
    for folder in filter(None, os.environ.get(INCLUDE_ENV, "").split(os.pathsep)):
        if not Path(folder).is_dir():
            raise LazarusError(f"{INCLUDE_ENV}: {folder} is not a folder of claim files")
        for file in sorted(Path(folder).glob("*.py")):
            file = file.resolve()
            if not file.name.startswith("_") and file not in _INCLUDED:
                _INCLUDED.add(file)
                _import_claim_file(file)


def _import_claim_file(file: Path) -> None:
    import importlib.util
    import sys

    name = f"lazarus_user_claim_{file.stem}_{hashlib.sha256(str(file).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    before = set(REGISTRY)
    try:
        spec.loader.exec_module(module)
    except ValueError as exc:
        raise LazarusError(f"claim file {file}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (a user's file that fails to import is one line, not a traceback)
        raise LazarusError(f"claim file {file} failed to import: {type(exc).__name__}: {exc}") from None
    if set(REGISTRY) == before:
        raise LazarusError(f"claim file {file} registers no claim (decorate its measure with @claim(...))")
