"""Files: atomic JSON output, file checksums and JSON conversion, shared by the CLI, records, caches and the zoo."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import LazarusError


def check_writable(path: str | os.PathLike) -> Path:
    """Raise a ``LazarusError`` unless ``path`` can take a new file: not an existing link, folder, FIFO or device
    (an atomic write would replace it), and in a folder that exists or can be made and written to."""
    target = Path(path)
    if not target.name or target.name in (".", ".."):
        raise LazarusError(f"cannot write to {str(path)!r}: it names a folder, not a file")
    if target.is_symlink():
        raise LazarusError(f"refusing to write to {str(path)!r}: it is a symbolic link (replacing it would break it; "
                           "give the real path or a new file)")
    if target.exists() and not target.is_file():
        kind = "a folder" if target.is_dir() else "not a regular file (FIFO, device or socket)"
        raise LazarusError(f"refusing to write to {str(path)!r}: it is {kind}")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK) or _pseudo_fs(folder):
        raise LazarusError(f"cannot write to {str(path)!r}: folder {str(folder)!r} is not writable")
    return target


def _pseudo_fs(folder: Path) -> bool:
    resolved = folder.resolve()
    return any(resolved == Path(root) or Path(root) in resolved.parents for root in ("/proc", "/sys", "/dev"))


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write JSON atomically: a temporary file in the same folder, then rename (never half-written, and never in
    place of a link, folder or device: see ``check_writable``)."""
    target = check_writable(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise LazarusError(f"cannot write to {str(path)!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, default=_json_default)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def jsonable(value: Any) -> Any:
    """Numpy scalars/arrays, enums, paths and objects with ``to_dict`` (possibly nested) as plain JSON Python."""
    import numpy as np

    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    converted = jsonable(value)
    if converted is value:
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")
    return converted
