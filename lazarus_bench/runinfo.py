"""What a result was computed with: package versions, git commit, device, BLAS, platform."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

from . import blas, jit

PACKAGES = ("lazarus-bench", "mlx", "mlx-cpu", "mlx-metal", "mlx-cuda", "mlx-lm", "numpy", "scipy", "scikit-learn",
            "transformers", "tokenizers")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the checkout lazarus_bench runs from, with ``+dirty`` if it has local changes.

    Changes under ``reports/`` (what runs write) do not count: they are results, not code.
    """
    cwd = Path(path or Path(__file__).resolve().parent)
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                                ":(top,exclude)reports"], cwd=cwd,
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device() -> str:
    import mlx.core as mx

    return str(mx.default_device())


@functools.cache
def process_gemm_rate() -> float:
    """This process's float32 GEMM rate (1024^3, GFLOP/s), measured once: the peak its records' FLOPs are held to."""
    return round(blas.gemm_gflops(), 1)


def environment(measure_gemm: bool = False) -> dict:
    """The record that goes into every result file (and that ``lazarus-bench info`` prints)."""
    state = blas.state()
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "device": device(),
        "blas": {"status": state.status, "library": blas.resolved_library() or state.path, "detail": state.detail,
                 "threads": blas.thread_count(), "threads_env": blas.THREADS_ENV, "kernel": blas.kernel(),
                 "kernel_env": blas.KERNEL_ENV},
        "packages": package_versions(),
        "jit": jit.mode(),
        "git_commit": git_commit(),
    }
    if measure_gemm:
        info["blas"]["gemm_gflops_1024"] = process_gemm_rate()
    return info
