"""Shipped zoo weights, packed: each ``model.safetensors`` travels as ``model.safetensors.planes.xz`` and is unpacked
next to it, byte for byte, before its first use (the manifest's sha256 is of the unpacked file).

The pack is xz over the safetensors header followed by the tensor bytes split into byte planes (every element's
first byte, then every second byte, ...) when all tensors share one element size. The high byte of a float16 holds
its sign and exponent and compresses well; interleaved with the mantissa bytes it does not. A pack is 15-20% smaller
than its file (5-13% smaller than xz of the file as it is), which lets the 80 MB of shipped weights hold more models.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import tempfile
import warnings
from pathlib import Path

from ..io import sha256_file
from .registry import MANIFEST

SUFFIX = ".planes.xz"
SHIP_LIMIT = 200e6  # bytes: every build the main job uses, with its variants, packed
ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
            "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _split(data: bytes) -> tuple[bytes, bytes, int]:
    """A safetensors file's header (with its 8-byte length), its tensor bytes, and the plane width: the one element
    size of all its tensors, else 1 (no planes)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    sizes = {ITEMSIZE.get(v["dtype"], 1) for k, v in header.items() if k != "__metadata__"}
    body = data[8 + n:]
    width = sizes.pop() if len(sizes) == 1 else 1
    return data[:8 + n], body, width if len(body) % width == 0 else 1


def pack_bytes(data: bytes) -> bytes:
    """The packed form of a safetensors file's bytes (deterministic: the same file always packs the same)."""
    import numpy as np

    head, body, width = _split(data)
    planes = np.frombuffer(body, dtype=np.uint8).reshape(-1, width).T.tobytes()
    return lzma.compress(head + planes, preset=9 | lzma.PRESET_EXTREME)


def unpack_bytes(packed: bytes) -> bytes:
    """The safetensors file's bytes back from :func:`pack_bytes`."""
    import numpy as np

    data = lzma.decompress(packed)
    head, planes, width = _split(data)
    return head + np.frombuffer(planes, dtype=np.uint8).reshape(width, -1).T.tobytes()


def packed_files(root: Path) -> list[Path]:
    """Every pack under ``root``."""
    return sorted(root.rglob(f"*{SUFFIX}"))


def target(pack: Path) -> Path:
    """The file a pack unpacks to."""
    return pack.with_name(pack.name[: -len(SUFFIX)])


def _write_atomic(out: Path, data: bytes) -> None:
    """Write ``data`` to ``out`` through a temporary file and a rename: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o644)
        f.write(data)
    os.replace(tmp, out)


def pack(weights: Path) -> Path:
    """Write ``weights``' pack next to it (checked to unpack to the same bytes); returns the pack's path."""
    data = weights.read_bytes()
    packed = pack_bytes(data)
    if unpack_bytes(packed) != data:
        raise ValueError(f"{weights}: its pack does not unpack to the same bytes")
    out = weights.with_name(weights.name + SUFFIX)
    _write_atomic(out, packed)
    return out


def is_packed(weights: Path) -> bool:
    """Whether ``weights`` has a pack that unpacks to its bytes (not one left from before a rebuild)."""
    packed = weights.with_name(weights.name + SUFFIX)
    try:
        return packed.is_file() and unpack_bytes(packed.read_bytes()) == weights.read_bytes()
    except lzma.LZMAError:
        return False


def unpacked_models(root: Path) -> list[Path]:
    """The models under ``root`` (interrupted builds' checkpoints aside) without a pack that unpacks to their bytes:
    git ignores ``model.safetensors`` in the shipped weights, so these would not ship."""
    return [w for w in sorted(root.rglob("model.safetensors")) if ".checkpoints" not in w.parts and not is_packed(w)]


def shipped_bytes(root: Path) -> int:
    """What the zoo folder ships: every file but the unpacked twins of packs and interrupted builds' checkpoints."""
    unpacked = {target(p) for p in packed_files(root)}
    return sum(p.stat().st_size for p in root.rglob("*")
               if p.is_file() and p not in unpacked and ".checkpoints" not in p.parts)


def _manifest_sha(out: Path) -> str | None:
    """The sha256 the model's manifest names for ``out``; None without a manifest or an entry."""
    manifest = out.parent / MANIFEST
    return json.loads(manifest.read_text())["files"].get(out.name) if manifest.is_file() else None


def unpack(pack: Path) -> Path:
    """Write the pack's file next to it, atomically (parallel workers may race; they write the same bytes), after
    checking it against the model's manifest; stamp it with the pack's mtime; return its path. A pack whose bytes do
    not match raises ValueError."""
    data = unpack_bytes(pack.read_bytes())
    out = target(pack)
    expected = _manifest_sha(out)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(f"{pack}: unpacked bytes do not match {out.name}'s sha256 in {out.parent / MANIFEST}")
    _write_atomic(out, data)
    _stamp(pack, out)
    return out


def _stamp(pack: Path, out: Path) -> None:
    """Give the unpacked file its pack's mtime: a file changed since (damaged, or its pack replaced by a pull) no
    longer carries it, and two stat calls find it."""
    mtime = pack.stat().st_mtime_ns
    os.utime(out, ns=(mtime, mtime))


def _stamped(pack: Path) -> bool:
    return target(pack).stat().st_mtime_ns == pack.stat().st_mtime_ns


def ensure_unpacked(root: Path) -> list[Path]:
    """Unpack every pack under ``root`` whose file is missing (a fresh clone) or changed since it was unpacked and no
    longer what its manifest names (damaged, or left from before a pull); returns what was written. The unpacked file
    is derived (git ignores it; the pack ships), so replacing it is a repair. A pack that cannot be written (a
    read-only install) or does not match its manifest (damaged: `git checkout` restores it) is skipped: loading the
    model then names the file."""
    written = []
    for pack in packed_files(root):
        out = target(pack)
        try:
            if out.is_file() and _stamped(pack):
                continue
            if out.is_file() and sha256_file(out) == _manifest_sha(out):
                _stamp(pack, out)  # unchanged bytes with another mtime (unpacked before stamps, or touched)
                continue
            if out.is_file():
                warnings.warn(f"{out} does not match its manifest: unpacking it again from {pack.name}", stacklevel=2)
            written.append(unpack(pack))
        except (PermissionError, ValueError, lzma.LZMAError):
            continue
    return written
