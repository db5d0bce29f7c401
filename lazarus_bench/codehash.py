"""Content hashes of the code a result depends on: a module and every package module it imports, transitively.

The import graph is read from the source (``ast``), lazy imports included, so a change to one claim's file changes
the hash of what imports it and of nothing else (incremental runs, fixture-cache keys).
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DATA_DIRS = ("data",)  # the package's data files (prompt sets): every result may read them


def module_file(dotted: str) -> Path | None:
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
    """``lazarus_bench.a.b`` for a package file; "" for a file outside it (a claim file passed with ``--include``)."""
    if not path.is_relative_to(PACKAGE):
        return ""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@lru_cache(maxsize=None)
def _imports(path: Path) -> frozenset[Path]:
    """The package files ``path`` imports anywhere in its body (``from . import x`` resolves to x's file); parsed
    once per process, as every closure that reaches the file needs it."""
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
        found |= {f for f in map(module_file, names) if f is not None}
    return frozenset(found)


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


def digest(paths) -> str:
    """One hash of the files' package-relative names and bytes."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update((p.relative_to(PACKAGE).as_posix() if p.is_relative_to(PACKAGE) else p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=None)
def module_code(dotted: str) -> str:
    """The hash of module ``dotted``, what it imports and the data files: what a fixture built there depends on."""
    path = module_file(dotted)
    if path is None:
        raise ValueError(f"{dotted}: not a module of {PACKAGE.name}")
    return digest(closure(path) | set(data_files()))


def data_files() -> list[Path]:
    return [p for d in DATA_DIRS for p in (PACKAGE / d).rglob("*") if p.is_file()]
