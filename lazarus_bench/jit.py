"""MLX's CPU JIT with FMA: ``mx.compile`` builds its kernels with ``g++ -std=c++17 -O3 -Wall -fPIC -shared`` and,
in the Linux wheel, no ``-mfma``, so every ``fmaf`` in them (its exp, sigmoid) is a libm call in scalar code.

Where the CPU has FMA and AVX2 a ``g++`` wrapper earlier on PATH adds ``-mfma -mavx2 -ffp-contract=off``: hardware
FMA rounds exactly as ``fmaf`` does and no other operation is contracted, so results stay bitwise identical
(``tests/test_jit.py``). Two more flags let g++ vectorize the kernels' loops: ``-fno-trapping-math`` (a select may
evaluate both sides; it changes which FP exceptions could trap, never a value) and a larger inline budget for
functions not declared inline (MLX's ``simd::exp`` is a template called per element, which g++ -O3 otherwise leaves
a call, so the loop has control flow and stays scalar). Each lane then computes the same operations in the same
order as the scalar loop, so the bits do not change. MLX caches built kernels under ``$TMPDIR/mlx`` by their source
alone, so each flag set gets its own ``TMPDIR``: without it, kernels built earlier with other flags are reused.
``LAZARUS_JIT=plain`` keeps MLX's own flags.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

JIT_ENV = "LAZARUS_JIT"
ROOT_ENV = "LAZARUS_JIT_ROOT"  # set by ``configure``: child processes use the same wrapper and kernel cache
FLAGS = ("-mfma", "-mavx2", "-ffp-contract=off", "-fno-trapping-math", "--param=max-inline-insns-auto=64")


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


def _flags_tag() -> str:
    """A short hash of the flags: the kernel cache of one flag set is never reused by another."""
    return hashlib.sha256(" ".join(FLAGS).encode()).hexdigest()[:8]


def compiler_takes(compiler: str, flags: tuple[str, ...]) -> bool:
    """True when ``compiler`` builds a shared object with MLX's JIT flags plus ``flags`` (a clang installed as g++
    may reject GCC's ``--param``): checked once, before the wrapper is written."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.cpp"
        src.write_text('extern "C" float probe(float x) { return x * 2.0f; }\n')
        cmd = [compiler, "-std=c++17", "-O3", "-fPIC", "-shared", *flags, str(src), "-o", str(Path(tmp) / "probe.so")]
        try:
            return subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


def configure() -> str:
    """Put the FMA wrapper first on PATH and give its kernels their own cache (before the first compile); returns
    the mode: ``plain`` (MLX's own flags) where the compiler rejects ours. Idempotent; child processes inherit it
    through the environment."""
    current = mode()
    if current == "plain":
        return current
    root = Path(os.environ.get(ROOT_ENV) or Path(tempfile.gettempdir()) / f"lazarus-jit-fma-{_flags_tag()}")
    bin_dir = root / "bin"
    wrapper = bin_dir / "g++"
    if not wrapper.is_file():
        search = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != str(bin_dir))
        compiler = shutil.which("g++", path=search)
        if compiler is None or not compiler_takes(compiler, FLAGS):
            os.environ[JIT_ENV] = "plain"  # this process and its children keep MLX's own flags
            return "plain"
        bin_dir.mkdir(parents=True, exist_ok=True)
        tmp = wrapper.with_suffix(f".{os.getpid()}")
        tmp.write_text(f'#!/bin/sh\nexec "{compiler}" "$@" {" ".join(FLAGS)}\n')
        tmp.chmod(0o755)
        tmp.replace(wrapper)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != str(bin_dir):
        os.environ["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    os.environ["TMPDIR"] = os.environ[ROOT_ENV] = str(root)
    tempfile.tempdir = None  # Python's own temp files follow TMPDIR too
    return current
