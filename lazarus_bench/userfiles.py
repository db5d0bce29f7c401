"""The one reader of files a user names: a bad file is one line that names it and the position, never a traceback.

It only reads and checks (outside every record's code hash): a folder, a missing or unreadable file, a binary file,
bytes that are not UTF-8, an oversized line and JSON of the wrong shape each raise :class:`LazarusError`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import LazarusError

MAX_LINE = 100_000  # characters: a prompt or training row longer than this is not text a tokenizer should see


def read_user_text(path: str | Path, what: str, max_line: int = MAX_LINE) -> str:
    """The text of ``path`` (UTF-8, a BOM allowed), checked before anything tokenises it."""
    p = Path(path)
    if p.is_dir():
        raise LazarusError(f"{what} {p}: a folder, not a file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise LazarusError(f"{what} {p}: cannot read it ({exc.strerror or exc})") from None
    if b"\x00" in data:
        at = data.index(b"\x00")
        raise LazarusError(f"{what} {p}: a binary file (a NUL byte at {_where(data, at)}), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LazarusError(f"{what} {p}: not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                           f"{_where(data, exc.start)})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if len(line) > max_line:
            raise LazarusError(f"{what} {p}: line {n} has {len(line):,} characters (at most {max_line:,})")
    return text


def read_user_json(path: str | Path, what: str, shape: type = dict) -> object:
    """JSON from ``path`` whose top level is a ``shape`` (an object unless said otherwise)."""
    text = read_user_text(path, what)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LazarusError(f"{what} {path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") \
            from None
    if not isinstance(value, shape):
        raise LazarusError(f"{what} {path}: expected a JSON {shape.__name__ if shape is not dict else 'object'}, "
                           f"got {type(value).__name__}")
    return value


def _where(data: bytes, offset: int) -> str:
    """'line L, column C' of a byte offset (1-based)."""
    line = data.count(b"\n", 0, offset) + 1
    column = offset - data.rfind(b"\n", 0, offset)
    return f"line {line}, column {column}"
