"""The OpenBLAS preload: what MLX resolves, the opt-out, and the loud warning when none is found."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lazarus_bench import blas

LINUX = sys.platform.startswith("linux")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LAZARUS_")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


@pytest.mark.skipif(not LINUX, reason="the preload only exists on Linux (macOS uses Accelerate)")
def test_mlx_resolves_preloaded_openblas():
    lib = next((p for p in blas.CANDIDATES if os.path.exists(p)), None)
    if lib is None:
        pytest.skip(f"OpenBLAS is not installed here: {blas.FIX}")
    out = _run(
        "import lazarus_bench, mlx.core as mx\n"
        "from lazarus_bench import blas\n"
        "mx.eval(mx.ones((64, 64)) @ mx.ones((64, 64)))\n"
        "print(blas.state().status); print(blas.resolved_library())\n"
        "print(any('openblas' in l and 'r-xp' in l for l in open('/proc/self/maps')))"
    )
    status, resolved, mapped = out.stdout.split()
    assert status == "preloaded"
    assert resolved == os.path.realpath(lib), "cblas_sgemm must resolve into the preloaded OpenBLAS"
    assert mapped == "True"


@pytest.mark.skipif(not LINUX, reason="the preload only exists on Linux")
def test_opt_out_leaves_reference_blas():
    """numpy's and scipy's bundled OpenBLAS are mapped too, but MLX keeps its vendored reference BLAS."""
    out = _run(
        "import lazarus_bench, mlx.core as mx, numpy, scipy.linalg\nfrom lazarus_bench import blas\n"
        "mx.eval(mx.ones((8, 8)) @ mx.ones((8, 8)))\nprint(blas.state().status); print(blas.resolved_library())",
        LAZARUS_NO_BLAS_PRELOAD="1",
    )
    status, resolved = out.stdout.split()
    assert status == "disabled"
    assert "openblas" not in resolved.lower() and "mlx" in resolved


@pytest.mark.skipif(not LINUX, reason="the preload only exists on Linux")
def test_missing_blas_warns_loudly_with_the_fix():
    out = _run("import lazarus_bench; from lazarus_bench import blas; print(blas.state().status)",
               LAZARUS_BLAS_PATH="/nonexistent/libopenblas.so.0")
    assert out.stdout.strip() == "missing"
    assert "apt-get install -y libopenblas0-pthread" in out.stderr


@pytest.mark.skipif(not LINUX, reason="the preload only exists on Linux")
def test_importing_mlx_first_is_reported():
    out = _run("import mlx.core, lazarus_bench; from lazarus_bench import blas; print(blas.state().status)")
    assert out.stdout.strip() == "too-late"
    assert "import lazarus_bench first" in out.stderr


def test_gemm_rate_is_positive():
    assert blas.gemm_gflops(n=128, repeats=3) > 0


def test_blas_threads_are_pinned_whatever_the_caller_set():
    """Every BLAS pool (MLX's and numpy's) runs LAZARUS_BLAS_THREADS threads, default 1, not OPENBLAS_NUM_THREADS."""
    code = ("import lazarus_bench, numpy, mlx.core as mx, threadpoolctl\n"
            "from lazarus_bench import blas\n"
            "print(sorted({p['num_threads'] for p in threadpoolctl.threadpool_info()}), blas.fingerprint())")
    default = _run(code, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    assert default.returncode == 0, default.stderr
    assert default.stdout.split()[0] == "[1]" and ":threads=1:" in default.stdout
    two = _run(code, LAZARUS_BLAS_THREADS="2")
    assert two.returncode == 0, two.stderr
    assert two.stdout.split()[0] == "[2]" and ":threads=2:" in two.stdout


def test_bad_thread_count_is_one_clear_line():
    out = _run("import lazarus_bench", LAZARUS_BLAS_THREADS="zero")
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        "lazarus_bench: LAZARUS_BLAS_THREADS='zero' is not a positive integer; unset it or set e.g. 1"]


@pytest.mark.skipif(not LINUX or not __import__("lazarus_bench.jit").jit.cpu_has_fma() or blas.kernel() is None,
                    reason="needs OpenBLAS on an x86 CPU with AVX2 and FMA")
def test_the_openblas_kernel_is_pinned_whatever_the_caller_set():
    """Every process runs OpenBLAS's Haswell kernels on an AVX2 + FMA CPU, whatever OPENBLAS_CORETYPE the caller set;
    LAZARUS_BLAS_KERNEL names another, ``auto`` leaves OpenBLAS's choice; the kernel is in the cache key."""
    code = "import lazarus_bench; from lazarus_bench import blas; print(blas.kernel(), blas.fingerprint())"

    def kernel_and_key(**env):
        out = _run(code, **env)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert kernel_and_key(LAZARUS_BLAS_KERNEL="auto", OPENBLAS_CORETYPE="Prescott")[0] == "Prescott"
    for caller in ("", "Prescott", "SkylakeX"):
        kernel, key = kernel_and_key(OPENBLAS_CORETYPE=caller)
        assert kernel == "Haswell" and key.endswith(":kernel=Haswell"), caller
    assert kernel_and_key(LAZARUS_BLAS_KERNEL="Sandybridge") == ["Sandybridge", blas.fingerprint().replace(
        f"kernel={blas.kernel()}", "kernel=Sandybridge")]


@pytest.mark.skipif(not LINUX or blas.kernel() is None, reason="needs OpenBLAS")
def test_a_kernel_openblas_does_not_have_is_one_clear_line():
    out = _run("import lazarus_bench", LAZARUS_BLAS_KERNEL="Foo")
    assert out.returncode != 0
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("lazarus_bench: LAZARUS_BLAS_KERNEL='Foo': this OpenBLAS has no such kernel set (it runs ")


def test_thread_count_is_in_the_environment_record_and_the_cache_key(monkeypatch):
    from lazarus_bench import cache
    from lazarus_bench.runinfo import environment

    assert environment()["blas"]["threads"] == blas.thread_count() == blas.pinned_threads()
    key = cache.cache_key({"model": "m", "seed": 0})
    monkeypatch.setattr(blas, "_THREADS", 3)
    assert cache.cache_key({"model": "m", "seed": 0}) != key
