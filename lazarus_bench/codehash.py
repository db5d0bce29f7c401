"""Hashes of the meaning of the code a result depends on: a module and every package module it imports, transitively.

The import graph is read from the source (``ast``), lazy imports included, so a change to one claim's file changes
the hash of what imports it and of nothing else (incremental runs, fixture-cache keys). A file is hashed as its
normalised syntax tree, so docstrings, comments, formatting and help text change no hash; the Python version is
hashed beside it (a tree's dump differs between versions). Display-only modules are outside every closure.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DATA_DIRS = ("data",)  # the package's data files (prompt sets): every result may read them
# Modules that only display or move values (command line, progress lines, help text, report rendering, benchmarks):
# outside every closure, and a statement that only calls one of them (a progress line) is not part of a tree.
DISPLAY_ONLY = ("cli", "progress", "suite.report", "suite.plots", "bench", "userfiles")
# Module-level declarations read only by the population verdict over builds (suite/population.py), never by a record:
# outside every record's tree; the lock hashes them with the verdict rules.
VERDICT_ONLY = ("POPULATION",)
SCHEME = "ast-1"  # bump when the normalisation changes: every record input and lock hash changes with it
SELF = "codehash"  # this module is outside every closure too: SCHEME names what its normalisation does


def display_only(dotted: str) -> bool:
    """Whether ``lazarus_bench.a.b`` is (in) a display-only module."""
    rel = dotted.partition(".")[2]
    return any(rel == m or rel.startswith(m + ".") for m in DISPLAY_ONLY)


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
        found |= {f for f in map(module_file, names)
                  if f is not None and not display_only(_dotted(f)) and _dotted(f) != f"{PACKAGE.name}.{SELF}"}
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


def _display_names(tree: ast.Module, package: str) -> set[str]:
    """Names bound in ``tree`` to display-only modules or their members (``from .. import progress``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                if display_only(f"{base}.{alias.name}") or display_only(base):
                    names.add(alias.asname or alias.name)
    return names


def _verdict_only(statement: ast.stmt) -> bool:
    """A module-level ``POPULATION = ...`` (annotated or not)."""
    targets = statement.targets if isinstance(statement, ast.Assign) else \
        [statement.target] if isinstance(statement, ast.AnnAssign) else []
    return len(targets) == 1 and isinstance(targets[0], ast.Name) and targets[0].id in VERDICT_ONLY


class _Normaliser(ast.NodeTransformer):
    """Drops docstrings, ``help=`` keywords, ``"help"`` entries of dict literals, imports of display-only modules,
    statements that only call one and module-level population declarations; keeps everything else."""

    def __init__(self, display: set[str]):
        self.display = display

    def visit_ImportFrom(self, node):
        node.names = [a for a in node.names if (a.asname or a.name) not in self.display]
        return node if node.names else None

    def _body(self, node):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]
        node.body = body or [ast.Pass()]
        return self.generic_visit(node)

    visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _body

    def visit_Module(self, node):
        node.body = [s for s in node.body if not _verdict_only(s)]
        return self._body(node)

    def visit_Expr(self, node):
        call = node.value
        func = call.func if isinstance(call, ast.Call) else None
        while isinstance(func, ast.Attribute):
            func = func.value
        if isinstance(func, ast.Name) and func.id in self.display:
            return None
        return self.generic_visit(node)

    def visit_Call(self, node):
        node.keywords = [k for k in node.keywords if k.arg != "help"]
        return self.generic_visit(node)

    def visit_Dict(self, node):
        kept = [(k, v) for k, v in zip(node.keys, node.values)
                if not (isinstance(k, ast.Constant) and k.value == "help")]
        node.keys, node.values = [k for k, _ in kept], [v for _, v in kept]
        return self.generic_visit(node)


def normalised(source: str, dotted: str = "") -> str:
    """The meaning of a source file: its syntax tree without docstrings, comments, formatting, help text or calls
    to display-only modules, dumped without positions."""
    tree = ast.parse(source)
    package = dotted.rpartition(".")[0] if dotted else ""
    tree = _Normaliser(_display_names(tree, package)).visit(tree)
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def python_tag() -> str:
    """What the dumps depend on besides the code: the hash scheme and the Python version."""
    return f"{SCHEME} python {sys.version_info.major}.{sys.version_info.minor}"


@lru_cache(maxsize=None)
def _meaning(path: Path) -> bytes:
    """A file's part of a digest, parsed once per process: a module's normalised tree, a data file's bytes."""
    if path.suffix != ".py":
        return path.read_bytes()
    dotted = _dotted(path)
    return normalised(path.read_text(), dotted if path.name != "__init__.py" else dotted + ".__init__").encode()


def clear_caches() -> None:
    """Forget what was read (tests that edit files in place)."""
    for fn in (_imports, closure, module_code, _meaning):
        fn.cache_clear()


def digest(paths) -> str:
    """One hash of the files' package-relative names and meanings (data files: their bytes), with the Python tag."""
    h = hashlib.sha256(python_tag().encode())
    for p in sorted(paths):
        h.update((p.relative_to(PACKAGE).as_posix() if p.is_relative_to(PACKAGE) else p.name).encode())
        h.update(_meaning(p))
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
