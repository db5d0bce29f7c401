"""Every ``LAZARUS_*`` environment variable, checked before a command does any work, as its option would be.

A setting read late fails after minutes of measuring (or not at all: a misspelt name is silently ignored), so each
command checks them all first and stops with one line naming the variable.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, Mapping

from ..errors import LazarusError
from ..io import check_writable


def _positive_int(value: str) -> None:
    if not re.fullmatch(r"\s*[0-9]+\s*", value) or int(value) < 1:
        raise ValueError("expected a positive whole number, e.g. 1")


def _positive_number(value: str) -> None:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise ValueError("expected a positive number (held-out loss as a share of ln V)")


def _choice(*choices: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value.strip() not in choices:
            raise ValueError(f"expected one of {', '.join(repr(c) for c in choices)}")
    return check


def _kernel(value: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_]+", value.strip()):
        raise ValueError("expected an OpenBLAS core name (e.g. Haswell) or auto")


def _file(value: str) -> None:
    if not Path(value).expanduser().is_file():
        raise ValueError("no such file")


def _folder(value: str) -> None:
    if not Path(value).expanduser().is_dir():
        raise ValueError("no such folder")


def _writable_folder(value: str) -> None:
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError("exists and is not a folder")
    try:
        check_writable(path / "probe")
    except LazarusError:
        raise ValueError("not a folder this user can write to") from None


def _folders(value: str) -> None:
    if missing := [f for f in value.split(os.pathsep) if f and not Path(f).is_dir()]:
        raise ValueError(f"{missing[0]} is not a folder of claim files")


def _pairs(value: str) -> None:
    try:
        named = json.loads(value) if value.strip() else {}
    except ValueError:
        named = None
    if not isinstance(named, dict) or not all(isinstance(v, str) for v in [*named, *named.values()]):
        raise ValueError("expected a JSON object of base -> instruct model ids")


# name -> (what it sets, its check); the library reads each where it is used, this table checks them all up front
SETTINGS: dict[str, tuple[str, Callable[[str], None]]] = {
    "LAZARUS_CACHE_DIR": ("the cache of trained fixtures", _writable_folder),
    "LAZARUS_ZOO_DIR": ("the zoo that zoo: ids name", _folder),
    "LAZARUS_MICRO_ZOO_DIR": ("where the micro zoo is built", _writable_folder),
    "LAZARUS_DATA_DIR": ("saved SST-2 and AG News folders", _folder),
    "LAZARUS_INCLUDE": ("folders of a user's claim files", _folders),
    "LAZARUS_INSTRUCT_PAIRS": ("base -> instruct pairs", _pairs),
    "LAZARUS_MAX_HELDOUT_LOSS_RATIO": ("the trained-model gate's threshold", _positive_number),
    "LAZARUS_BLAS_THREADS": ("BLAS threads", _positive_int),
    "LAZARUS_BLAS_KERNEL": ("the OpenBLAS kernel set", _kernel),
    "LAZARUS_BLAS_PATH": ("the OpenBLAS library to preload", _file),
    "LAZARUS_NO_BLAS_PRELOAD": ("skip the OpenBLAS preload", _choice("", "0", "1")),
    "LAZARUS_JIT": ("the JIT's compiler flags", _choice("auto", "fma", "plain", "")),
    "LAZARUS_JIT_ROOT": ("the JIT's kernel cache", _writable_folder),
    "LAZARUS_VOCAB_SDIST": ("llama.cpp's vocabulary test files", _file),
    "LAZARUS_RANK_CHILD": ("set for a build's worker ranks", _choice("", "1")),
}


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Raise one ``LazarusError`` for the first ``LAZARUS_*`` variable that is unknown or out of range."""
    environ = os.environ if environ is None else environ
    for name in sorted(n for n in environ if n.startswith("LAZARUS_")):
        value = environ[name]
        if name not in SETTINGS:
            close = [n for n in SETTINGS if _similar(n, name)]
            hint = f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(SETTINGS)}"
            raise LazarusError(f"{name} is not a lazarus_bench setting{hint}")
        what, check = SETTINGS[name]
        try:
            check(value)
        except ValueError as exc:
            raise LazarusError(f"{name}={value!r} ({what}): {exc}") from None


def _similar(a: str, b: str) -> bool:
    import difflib

    return difflib.SequenceMatcher(None, a, b).ratio() > 0.85
