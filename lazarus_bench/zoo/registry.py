"""Where zoo models live and whether they are intact: resolve ``zoo:NAME`` ids, verify manifests.

Kept free of mlx and of ``models`` so that ``models`` can resolve zoo ids without an import cycle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..cache import default_root
from ..errors import LazarusError
from ..io import sha256_file

MANIFEST = "manifest.json"
REBUILD_COMMAND = "lazarus-bench zoo build"


class ZooIntegrityError(LazarusError):
    """A zoo file is missing or does not match its manifest."""


ZOO_ENV = "LAZARUS_ZOO_DIR"
MICRO_ZOO_ENV = "LAZARUS_MICRO_ZOO_DIR"
DEFAULT_MODELS = ("zoo:base", "zoo:instruct", "zoo:untied", "zoo:moe")  # the main job's models and the slow tier's
PREFIXES = ("zoo:", "zoo-micro:", "replica:")  # ids resolved here: the zoo, the micro zoo, real-checkpoint replicas


def zoo_root(micro: bool = False) -> Path:
    """Where zoo models live: the shipped weights (or $LAZARUS_ZOO_DIR); the micro zoo is built into a cache."""
    if micro:
        default = default_root() / "zoo-micro"
        return Path(os.environ.get(MICRO_ZOO_ENV) or default)
    return Path(os.environ.get(ZOO_ENV) or Path(__file__).parent / "weights")


def replica_root() -> Path:
    """Where the real-checkpoint replicas (``replica:NAME``) are built: the cache."""
    return default_root() / "replicas"


def resolve_zoo(model_id: str) -> Path:
    """Directory of ``zoo:NAME``, ``zoo-micro:NAME`` or ``replica:NAME`` (a bare NAME means ``zoo:``), checked
    against its manifest."""
    micro = model_id.startswith("zoo-micro:")
    name = model_id.split(":", 1)[1] if ":" in model_id else model_id
    root = replica_root() if model_id.startswith("replica:") else zoo_root(micro)
    path = root / name
    if not (path / "config.json").is_file():
        known = sorted(p.name for p in root.glob("*") if (p / "config.json").is_file()) if root.is_dir() else []
        build = ("lazarus-bench zoo replicas" if model_id.startswith("replica:")
                 else "lazarus-bench zoo build" + (" --size micro" if micro else ""))
        raise LazarusError(
            f"zoo model '{model_id}' not found in {root} (available: {', '.join(known) or 'none'}); "
            f"build it with: {build}"
        )
    verify(path)
    return path


def repair_hint(model_dir: str | os.PathLike) -> str:
    """How to repair this particular zoo directory: the shipped weights are restored, a built one is rebuilt in
    place (a plain ``zoo build`` would write to the cache and leave the named folder broken)."""
    d = Path(model_dir).resolve()
    if d.parent == (Path(__file__).parent / "weights").resolve():
        return "restore the shipped weights: `git checkout -- lazarus_bench/zoo/weights` (or reinstall lazarus_bench)"
    size = "micro" if d.parent == zoo_root(micro=True).resolve() else None
    try:
        man = json.loads((d / MANIFEST).read_text())
        kind, size = man["kind"], size or man.get("size", "default")
    except (OSError, ValueError, KeyError, TypeError):
        kind = d.name if d.name in ("base", "instruct", "untied", "moe") else None
    if kind == "replica":
        return "rebuild it: `lazarus-bench zoo replicas --force`"
    if kind is None:
        return "restore it from where it came from"
    return (f"rebuild it in place: `{REBUILD_COMMAND} --dir {d.parent} --models {kind} --force"
            + (" --size micro`" if size == "micro" else "`"))


def verify(model_dir: str | os.PathLike) -> dict:
    """Check every file of a zoo model against its manifest; return the manifest.

    Raises :class:`ZooIntegrityError` with a one-line message naming the file and how to repair that directory on
    a missing manifest, a missing file or a sha256 mismatch."""
    d = Path(model_dir)
    man_path = d / MANIFEST
    if not man_path.is_file():
        raise ZooIntegrityError(f"zoo model {d}: {MANIFEST} is missing; {repair_hint(d)}")
    try:
        man = json.loads(man_path.read_text())
        files = man["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise ZooIntegrityError(f"zoo model {d}: {MANIFEST} is unreadable ({e}); {repair_hint(d)}") from None
    for name, digest in sorted(files.items()):
        p = d / name
        if not p.is_file():
            raise ZooIntegrityError(f"zoo model {d}: file {name} is missing; {repair_hint(d)}")
        if sha256_file(p) != digest:
            raise ZooIntegrityError(
                f"zoo model {d}: file {name} does not match its sha256 in {MANIFEST} (corrupt or modified); "
                f"{repair_hint(d)}"
            )
    return man
