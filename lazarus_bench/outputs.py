"""Which files in an output folder this tool wrote: a small manifest per folder, so a user's own file is never replaced.

The manifest (``.lazarus-outputs.json``) maps each file the tool wrote to the SHA-256 it wrote. A file that is listed
with that hash is the tool's and may be replaced; any other file at a path the tool would write is the user's, and a
command refuses it with one line unless the user passes ``--overwrite``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

from .errors import LazarusError
from .io import write_text

MANIFEST = ".lazarus-outputs.json"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def owned(folder: str | Path) -> dict[str, str]:
    """``{relative path: sha256}`` of the files the tool wrote in ``folder`` (empty without a readable manifest)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {k: v for k, v in files.items() if isinstance(v, str)} if isinstance(files, dict) else {}


def is_owned(folder: str | Path, name: str, manifest: dict[str, str] | None = None) -> bool:
    """Whether ``folder/name`` is a file the tool wrote and nobody changed since."""
    path = Path(folder) / name
    manifest = owned(folder) if manifest is None else manifest
    return path.is_file() and not path.is_symlink() and manifest.get(name) == _sha(path)


def foreign(folder: str | Path, names: Iterable[str]) -> list[str]:
    """The ``names`` that exist in ``folder`` but were not written by the tool (or were changed after)."""
    folder, manifest = Path(folder), owned(folder)
    return [n for n in names if (folder / n).exists() and not is_owned(folder, n, manifest)]


def refuse_foreign(folder: str | Path, names: Iterable[str], option: str, overwrite: bool = False) -> None:
    """One line, before any work, when ``option``'s folder holds a file the tool did not write at a path it would."""
    if overwrite:
        return
    if found := foreign(folder, names):
        what = f"{found[0]} and {len(found) - 1} more were" if len(found) > 1 else f"{found[0]} was"
        raise LazarusError(f"{option} {folder}: {what} not written by lazarus-bench (or changed since): move it, "
                           "choose another folder, or pass --overwrite to replace it")


def record(folder: str | Path, names: Iterable[str], drop: Iterable[str] = ()) -> None:
    """Add the files ``names`` (as they are now) to ``folder``'s manifest, and forget ``drop``."""
    folder = Path(folder)
    manifest = owned(folder)
    for name in drop:
        manifest.pop(name, None)
    manifest.update({n: _sha(folder / n) for n in names if (folder / n).is_file()})
    write_text(folder / MANIFEST, json.dumps({"tool": "lazarus_bench", "files": dict(sorted(manifest.items()))},
                                             indent=1) + "\n")


def remove_stale(folder: str | Path, prefix: str, keep: Iterable[str]) -> list[str]:
    """Remove the files under ``prefix`` that the tool wrote but did not write this time (``keep``), leaving any it
    did not write; returns the manifest entries under ``prefix`` not kept (to drop from the manifest)."""
    folder, manifest, keep = Path(folder), owned(folder), set(keep)
    stale = [n for n in manifest if n.startswith(prefix) and n not in keep]
    for name in stale:
        if is_owned(folder, name, manifest):
            (folder / name).unlink()
    return stale
