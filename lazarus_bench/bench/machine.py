"""The machine: CPU model, fp32 GEMM rates, peak RSS (this process or a child's, from /proc) and its description."""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from pathlib import Path

import mlx.core as mx

from .. import blas
from ..training.timing import median


def max_rss_bytes() -> int:
    """Peak resident set size of this process in bytes (VmHWM on Linux, else ``ru_maxrss``)."""
    peak = _proc_peak_rss("self")
    if peak:
        return peak
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * (1 if sys.platform == "darwin" else 1024)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


# OpenBLAS kernels without AVX2/FMA: on a CPU that has both, one of these means OpenBLAS did not recognise the CPU
PRE_AVX2_KERNELS = frozenset({"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Sandybridge", "Opteron",
                              "Opteron_SSE3", "Barcelona", "Bobcat", "Bulldozer", "Piledriver", "Steamroller"})


openblas_core = blas.kernel  # the kernel set OpenBLAS runs (``LAZARUS_BLAS_KERNEL`` pins it)


def kernel_fallback(core: str | None, avx2_fma: bool) -> str | None:
    """One line when OpenBLAS runs pre-AVX2 kernels on a CPU with AVX2 and FMA (``jit.cpu_has_fma()``): the pin
    was lifted (``LAZARUS_BLAS_KERNEL``) on a CPU that OpenBLAS does not recognise, or set to an old kernel."""
    if core not in PRE_AVX2_KERNELS or not avx2_fma:
        return None
    return (f"OpenBLAS runs its {core} kernels on a CPU with AVX2 and FMA: GEMM about 4x slower than the CPU "
            "allows, and records that differ from those made with another kernel (in the last float digits; more "
            f"after training: 5.5% in H07's GRPO run on zoo:base@s8); unset {blas.KERNEL_ENV} to run its AVX2 "
            f"kernels ({blas.PINNED_KERNEL}), those of the committed records")


def gemm_rate(n: int = 1024, repeats: int = 5) -> float:
    """fp32 GEMM GFLOP/s of MLX here (median of ``repeats``), the denominator of MFU."""
    return blas.gemm_gflops(n, repeats)


def shape_gemm_rate(m: int, k: int, n: int, repeats: int = 5) -> float:
    """fp32 GFLOP/s of an (m x k) @ (k x n) matmul here: the ceiling at a model's shapes.

    Each of the ``repeats`` (median) times enough back-to-back products to match one 1024^3 GEMM.
    """
    a = mx.random.normal((m, k), key=mx.random.key(0))
    b = mx.random.normal((k, n), key=mx.random.key(1))
    mx.eval(a @ b)
    inner = max(1, math.ceil(2 * 1024**3 / (2 * m * k * n)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            mx.eval(a @ b)
        times.append((time.perf_counter() - start) / inner)
    return 2 * m * k * n / median(times) / 1e9


def _proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process (every thread), from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_peak_rss(pid: int | str) -> int:
    """VmHWM (peak resident set of the current address space, bytes) from /proc, 0 if unreadable.

    Unlike ``ru_maxrss`` it does not inherit the parent's RSS from before ``exec``.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_info(measure_gemm: bool = True) -> dict:
    """CPU, cores, load, MLX/mlx-lm versions, device, active BLAS and the measured GEMM rate."""
    from ..runinfo import environment

    env = environment()
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "mlx_version": mx.__version__,
        "mlx_lm_version": env["packages"].get("mlx-lm"),
        "device": env["device"],
        "blas": env["blas"]["status"],
        "blas_library": env["blas"]["library"],
        "python": env["python"],
        "platform": env["platform"],
        "git_commit": env["git_commit"],
    }
    if measure_gemm:
        info["gemm_gflops"] = round(gemm_rate(), 1)
    return info


def machine_line(info: dict) -> str:
    gemm = f", fp32 GEMM 1024^3 {info['gemm_gflops']:.0f} GFLOP/s" if info.get("gemm_gflops") else ""
    load = f", load avg {'/'.join(str(x) for x in info['load_avg'])}" if info.get("load_avg") else ""
    return (f"{info['cpu']}, {info['usable_cores']}/{info['cores']} cores{load}; MLX {info['mlx_version']} "
            f"({info['device']}), mlx-lm {info['mlx_lm_version']}; BLAS {info['blas']}: {info['blas_library']}{gemm}")
