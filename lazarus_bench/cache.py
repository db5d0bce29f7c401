"""On-disk cache of trained fixtures (adapters, checkpoints), keyed by a content hash of what made them.

An entry is built in a temporary directory and renamed into place, so an interrupted build never
leaves a half-written entry; each entry's manifest holds the sha256 of its files, and an entry whose
files no longer match is detected, removed and rebuilt. A lock per entry makes concurrent workers that need
the same entry build it once: the others wait and read it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from . import blas, codehash
from .io import sha256_file, write_json

MANIFEST = "cache_manifest.json"
DEFAULT_ROOT_ENV = "LAZARUS_CACHE_DIR"
NOT_RESULT_CODE = ("cli", "suite", "bench", "zoo")


def default_root() -> Path:
    return Path(os.environ.get(DEFAULT_ROOT_ENV) or Path.home() / ".cache" / "lazarus_bench")


@lru_cache(maxsize=None)
def code_version() -> str:
    """Hash of every source that computes a result (all but the CLI, suite, benchmarks and zoo builder, whose
    models are hashed by content): a code change invalidates cached fixtures."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] in NOT_RESULT_CODE:
            continue
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(parts: dict[str, Any], code: str | None = None) -> str:
    """Stable hash of the JSON of ``parts`` (model hash, method, config, seed), the code version and the BLAS.
    ``code`` names the module that builds the fixture: only its code and what it imports count (else all code)."""
    payload = json.dumps({**parts, "code_version": fixture_code_version(code), "blas": blas.fingerprint()},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def fixture_code_version(code: str | None) -> str:
    """The code hash a fixture depends on: module ``code``'s import closure and the data files, else all code."""
    return codehash.module_code(code) if code else code_version()


class FixtureCache:
    """Directory of built fixtures: ``get_or_build(parts, build)`` returns the entry's directory. ``code``: the
    module that builds them (``__name__``), so a change elsewhere (another claim's file) keeps them valid."""

    def __init__(self, root: str | Path | None = None, code: str | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.code = code

    def path(self, parts: dict[str, Any]) -> Path:
        return self.root / cache_key(parts, self.code)

    def valid(self, entry: Path) -> bool:
        manifest = entry / MANIFEST
        if not manifest.is_file():
            return False
        try:
            files = json.loads(manifest.read_text())["files"]
        except (OSError, ValueError, KeyError):
            return False
        return all((entry / name).is_file() and sha256_file(entry / name) == digest for name, digest in files.items())

    def remove_stale_builds(self) -> list[Path]:
        """Remove the temporary folders of builds whose process is gone (killed mid-build); return them."""
        removed = []
        for tmp in self.root.glob(".*.*.*"):
            parts = tmp.name.split(".")
            if not tmp.is_dir() or len(parts) < 4 or not parts[2].isdigit() or _alive(int(parts[2])):
                continue
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
        return removed

    def get_or_build(self, parts: dict[str, Any], build: Callable[[Path], Any]) -> Path:
        """The cached entry for ``parts``, building it with ``build(tmp_dir)`` if missing or corrupt (once, when
        several processes ask at the same time)."""
        entry = self.path(parts)
        if self.valid(entry):
            return entry
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / f".{entry.name}.lock"):
            return self._build(entry, parts, build)

    def _build(self, entry: Path, parts: dict[str, Any], build: Callable[[Path], Any]) -> Path:
        if entry.exists():
            if self.valid(entry):
                return entry
            shutil.rmtree(entry, ignore_errors=True)
        self.remove_stale_builds()
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{entry.name}.{os.getpid()}."))
        try:
            build(tmp)
            files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            write_json(tmp / MANIFEST, {"parts": parts, "code_version": fixture_code_version(self.code),
                                         "code": self.code, "files": files})
            os.rename(tmp, entry)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if self.valid(entry):
                return entry
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return entry


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive ``flock`` on ``path``, released when the block ends or the process dies."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
