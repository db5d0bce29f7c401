"""Files: atomic JSON output, file checksums and JSON conversion, shared by the CLI, records, caches and the zoo."""

from __future__ import annotations

import contextlib
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
    try:
        return _check_writable(Path(path))
    except OSError as exc:  # a name too long to look up, a folder we may not list
        raise LazarusError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def _check_writable(target: Path) -> Path:
    path = str(target)
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
    return write_text(path, json.dumps(payload, indent=2, default=_json_default) + "\n")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically (a temporary file in the same folder, then rename). An OS error (no space,
    read-only, permission, name too long) is one ``LazarusError`` naming the path and the cause; the temporary file
    is removed and an earlier file of that name is kept."""
    target = check_writable(path)
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:64]}.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        raise LazarusError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and Path(tmp).exists():
            Path(tmp).unlink(missing_ok=True)
    return target


def write_safetensors(path: str | os.PathLike, arrays: dict, metadata: dict | None = None) -> Path:
    """``mx.save_safetensors`` atomically: a temporary file, then rename. mlx's write failure (a RuntimeError that
    names no cause) becomes one ``LazarusError`` with the path and the cause; the temporary file is removed."""
    import shutil

    import mlx.core as mx

    target = Path(path)
    tmp = target.with_name(f".{target.name[:64]}.tmp.safetensors")
    try:
        mx.save_safetensors(str(tmp), arrays, metadata=metadata or {})
        os.replace(tmp, target)
    except (OSError, RuntimeError) as exc:
        cause = getattr(exc, "strerror", None) or str(exc)
        with contextlib.suppress(OSError):
            if shutil.disk_usage(target.parent).free < sum(a.nbytes for a in arrays.values()):
                cause = "No space left on device"
        raise LazarusError(f"cannot write {str(path)!r}: {cause}") from None
    finally:
        tmp.unlink(missing_ok=True)
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
