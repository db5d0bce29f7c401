"""MLX's CPU JIT with FMA: ``mx.compile`` builds its kernels with ``g++ -std=c++17 -O3 -Wall -fPIC -shared`` and,
in the Linux wheel, no ``-mfma``, so every ``fmaf`` in them (its exp, sigmoid) is a libm call in scalar code.

Where the CPU has FMA and AVX2 a ``g++`` wrapper earlier on PATH adds ``-mfma -mavx2 -ffp-contract=off``: hardware
FMA rounds exactly as ``fmaf`` does and no other operation is contracted, so results stay bitwise identical
(``tests/test_jit.py``). MLX caches built kernels under ``$TMPDIR/mlx`` by their source alone, so the FMA build gets
its own ``TMPDIR``: without it, kernels built earlier without the flags are reused and nothing changes.
``LAZARUS_JIT=plain`` keeps MLX's own flags.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from pathlib import Path

JIT_ENV = "LAZARUS_JIT"
ROOT_ENV = "LAZARUS_JIT_ROOT"  # set by ``configure``: child processes use the same wrapper and kernel cache
FLAGS = ("-mfma", "-mavx2", "-ffp-contract=off")


def cpu_has_fma() -> bool:
    """True on an x86-64 Linux CPU that reports both ``fma`` and ``avx2``."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return False
    return {"fma", "avx2"} <= set(flags)


def mode() -> str:
    """``fma`` or ``plain``: what the JIT builds with in this process."""
    wanted = os.environ.get(JIT_ENV, "auto").strip() or "auto"
    if wanted not in ("auto", "fma", "plain"):
        raise ValueError(f"{JIT_ENV}={wanted!r}: expected auto, fma or plain")
    if wanted == "plain" or not cpu_has_fma() or shutil.which("g++") is None:
        return "plain"
    return "fma"


def configure() -> str:
    """Put the FMA wrapper first on PATH and give its kernels their own cache (before the first compile); returns
    the mode. Idempotent, and child processes inherit it through the environment."""
    current = mode()
    if current == "plain":
        return current
    root = Path(os.environ.get(ROOT_ENV) or Path(tempfile.gettempdir()) / "lazarus-jit-fma")
    bin_dir = root / "bin"
    wrapper = bin_dir / "g++"
    if not wrapper.is_file():
        search = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != str(bin_dir))
        bin_dir.mkdir(parents=True, exist_ok=True)
        tmp = wrapper.with_suffix(f".{os.getpid()}")
        tmp.write_text(f'#!/bin/sh\nexec "{shutil.which("g++", path=search)}" "$@" {" ".join(FLAGS)}\n')
        tmp.chmod(0o755)
        tmp.replace(wrapper)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != str(bin_dir):
        os.environ["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    os.environ["TMPDIR"] = os.environ[ROOT_ENV] = str(root)
    tempfile.tempdir = None  # Python's own temp files follow TMPDIR too
    return current
