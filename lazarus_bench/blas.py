"""Load a fast system BLAS into the process before MLX binds to its bundled reference BLAS.

The Linux ``mlx[cpu]`` wheel links a reference (netlib) BLAS at ~6 GFLOP/s. Loading OpenBLAS
with RTLD_GLOBAL before ``mlx.core`` is imported makes the dynamic linker resolve MLX's
``cblas_*`` symbols to OpenBLAS instead (~30x faster GEMM). This module must not import mlx.

It is also the one place that pins the BLAS thread count: OpenBLAS results change with its thread
count, so every process (in-process runs, spawned workers, pytest-xdist workers) computes with
``LAZARUS_BLAS_THREADS`` threads (default 1; the tiny zoo models gain nothing from a second thread),
whatever ``OPENBLAS_NUM_THREADS`` the caller set. The count goes into every record and cache key.

OpenBLAS's results also depend on the kernel set it picks for the CPU (AVX2, AVX-512, or a pre-AVX2 fallback on a
CPU it does not recognise), so on an x86 CPU with AVX2 and FMA every process runs its ``Haswell`` kernels, whatever
``OPENBLAS_CORETYPE`` the caller set: records are then bitwise the same on any such host. ``LAZARUS_BLAS_KERNEL``
names another kernel set, or ``auto`` for OpenBLAS's own choice. The kernel goes into every record and cache key.
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings
from dataclasses import dataclass

DISABLE_ENV = "LAZARUS_NO_BLAS_PRELOAD"
PATH_ENV = "LAZARUS_BLAS_PATH"
THREADS_ENV = "LAZARUS_BLAS_THREADS"
KERNEL_ENV = "LAZARUS_BLAS_KERNEL"
PINNED_KERNEL = "Haswell"  # AVX2 + FMA: the newest kernel set every x86 CPU with both runs (AVX-512 ones ~25% faster)
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")

CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib/libopenblas.so.0",
)

FIX = "install it with: sudo apt-get install -y libopenblas0-pthread (or set LAZARUS_BLAS_PATH)"


@dataclass(frozen=True)
class BlasState:
    """What the preload did: ``status`` is preloaded, disabled, not-needed, missing or too-late."""

    status: str
    path: str | None
    detail: str

    @property
    def fast(self) -> bool:
        return self.status in ("preloaded", "not-needed")


_STATE: BlasState | None = None
_THREADS: int | None = None


def pinned_threads() -> int:
    """The BLAS thread count every computation uses: ``LAZARUS_BLAS_THREADS``, default 1."""
    raw = os.environ.get(THREADS_ENV, "").strip() or "1"
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SystemExit(f"lazarus_bench: {THREADS_ENV}={raw!r} is not a positive integer; unset it or set e.g. 1")
    return value


def pin_threads() -> int:
    """Pin every BLAS/OpenMP pool of this process (and of processes it starts) to ``pinned_threads()``.

    The environment variables reach libraries loaded later (numpy's own OpenBLAS, child processes);
    threadpoolctl resets the pools of libraries already loaded (the preloaded OpenBLAS included).
    """
    global _THREADS
    n = pinned_threads()
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)
    _THREADS = n
    return n


def pinned_kernel() -> str | None:
    """The OpenBLAS kernel set every computation uses: ``LAZARUS_BLAS_KERNEL``, default ``Haswell`` on an x86 CPU
    with AVX2 and FMA; None (OpenBLAS's own choice) for ``auto`` or another CPU."""
    from .jit import cpu_has_fma

    wanted = os.environ.get(KERNEL_ENV, "").strip()
    if wanted == "auto":
        return None
    return wanted or (PINNED_KERNEL if cpu_has_fma() else None)


def kernel() -> str | None:
    """The kernel set the OpenBLAS that MLX calls is running, as it reports it (None without OpenBLAS)."""
    library = resolved_library()
    if not library or "openblas" not in os.path.basename(library).lower():
        return None
    try:
        get = ctypes.CDLL(library).openblas_get_corename
    except (OSError, AttributeError):
        return None
    get.restype = ctypes.c_char_p
    return get().decode()


def _find_library() -> str | None:
    explicit = os.environ.get(PATH_ENV)
    if explicit:
        return explicit
    return next((p for p in CANDIDATES if os.path.exists(p)), None)


def preload() -> BlasState:
    """Preload OpenBLAS once per process (Linux only) and remember what happened."""
    global _STATE
    if _STATE is not None:
        return _STATE
    if not sys.platform.startswith("linux"):
        _STATE = BlasState("not-needed", None, "macOS/other: MLX uses Accelerate or its own GPU kernels")
    elif os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        _STATE = BlasState("disabled", None, f"{DISABLE_ENV} is set: MLX uses its bundled reference BLAS")
    elif "mlx.core" in sys.modules:
        _STATE = BlasState("too-late", None, "mlx.core was imported before lazarus_bench; import lazarus_bench first")
    else:
        path = _find_library()
        if path is None:
            _STATE = BlasState("missing", None, f"no OpenBLAS found; {FIX}")
        else:
            if pinned := pinned_kernel():
                os.environ["OPENBLAS_CORETYPE"] = pinned  # read once, when the library loads
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                _STATE = BlasState("preloaded", os.path.realpath(path), "OpenBLAS loaded with RTLD_GLOBAL")
            except OSError as exc:
                _STATE = BlasState("missing", None, f"could not load {path}: {exc}; {FIX}")
            named = os.environ.get(KERNEL_ENV, "").strip()
            if _STATE.status == "preloaded" and named not in ("", "auto") and (kernel() or "").lower() != named.lower():
                raise SystemExit(f"lazarus_bench: {KERNEL_ENV}={named!r}: this OpenBLAS has no such kernel set (it "
                                 f"runs {kernel()}); name one it has, e.g. {PINNED_KERNEL}, or 'auto' for its choice")
    if _STATE.status in ("missing", "too-late"):
        warnings.warn(
            f"lazarus_bench: running MLX on the reference BLAS (~30x slower matmul): {_STATE.detail}",
            RuntimeWarning,
            stacklevel=2,
        )
        print(f"WARNING: slow BLAS: {_STATE.detail}", file=sys.stderr)
    pin_threads()
    return _STATE


def state() -> BlasState:
    return preload()


def resolved_library(symbol: str = "cblas_sgemm") -> str | None:
    """Path of the shared object that the process-global lookup of ``symbol`` resolves to.

    MLX's libmlx binds its BLAS symbols through the same global scope, so this is the BLAS
    it calls. Found by locating the symbol's address in /proc/self/maps (Linux only).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        address = ctypes.cast(getattr(ctypes.CDLL(None), symbol), ctypes.c_void_p).value
    except AttributeError:
        address = None
    if address is None:
        return _mlx_dependency_blas()
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= address < hi and len(parts) >= 6:
                return os.path.realpath(parts[5])
    return None


def _mlx_dependency_blas() -> str | None:
    """The BLAS that MLX loaded as its own dependency (when nothing global provides cblas).

    The wheel's vendored libraries live in ``mlx*.libs``; numpy's and scipy's bundled OpenBLAS are
    mapped too but MLX never calls them, so they are never named.
    """
    with open("/proc/self/maps") as maps:
        paths = {os.path.realpath(parts[5]) for parts in (line.split() for line in maps)
                 if len(parts) >= 6 and "blas" in os.path.basename(parts[5]).lower()}
    vendored = sorted(p for p in paths if any(part.startswith("mlx") for part in p.split(os.sep)[:-1]))
    others = sorted(p for p in paths if not any(part.startswith(("numpy", "scipy")) for part in p.split(os.sep))
                    and "scipy_openblas" not in os.path.basename(p))
    return (vendored or others or [None])[0]


def thread_count() -> int | None:
    """Threads of the BLAS that MLX calls, as the library itself reports them (None when it cannot say)."""
    from threadpoolctl import threadpool_info

    lib = resolved_library()
    counts = [pool["num_threads"] for pool in threadpool_info()
              if lib is not None and os.path.realpath(pool["filepath"]) == lib]
    return counts[0] if counts else None


def fingerprint() -> str:
    """What of the BLAS can change a result: the library MLX calls, its thread count and kernel set (cache keys)."""
    lib = resolved_library() or state().path or "platform default"
    return f"{os.path.basename(lib)}:threads={_THREADS or pinned_threads()}:kernel={kernel() or '-'}"


def describe() -> str:
    """One line: which BLAS MLX is using, why, and with how many threads."""
    s = state()
    lib = resolved_library()
    return f"{s.status}: {lib or s.path or 'platform default'} ({_THREADS or pinned_threads()} thread(s))"


def gemm_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Measured float32 GEMM rate of MLX on the default device, in GFLOP/s (median of repeats)."""
    import time

    import mlx.core as mx

    a = mx.random.normal((n, n), key=mx.random.key(0))
    b = mx.random.normal((n, n), key=mx.random.key(1))
    mx.eval(a @ b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        mx.eval(a @ b)
        times.append(time.perf_counter() - start)
    times.sort()
    return 2 * n**3 / times[len(times) // 2] / 1e9
