"""MLX's CPU JIT with FMA: the wrapper adds the flags, its kernels get their own cache, and records are bitwise
those of MLX's own flags (a compiled training step included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lazarus_bench import jit
from lazarus_bench.suite.records import load_records

needs_fma = pytest.mark.skipif(not jit.cpu_has_fma(), reason="this CPU has no FMA/AVX2: the JIT keeps MLX's flags")


def test_mode_reads_the_environment(monkeypatch):
    monkeypatch.setenv(jit.JIT_ENV, "plain")
    assert jit.mode() == "plain"
    monkeypatch.setenv(jit.JIT_ENV, "fast")
    with pytest.raises(ValueError, match="LAZARUS_JIT='fast': expected auto, fma or plain"):
        jit.mode()


@needs_fma
def test_the_wrapper_adds_the_flags_and_the_kernels_their_own_cache():
    assert jit.mode() == "fma" and os.environ["TMPDIR"] == os.environ[jit.ROOT_ENV]
    wrapper = Path(os.environ["PATH"].split(os.pathsep)[0]) / "g++"
    assert wrapper.parent == Path(os.environ[jit.ROOT_ENV]) / "bin"
    assert Path(os.environ[jit.ROOT_ENV]).name.endswith(jit._flags_tag())  # other flags, another kernel cache
    assert wrapper.read_text().rstrip().endswith(" ".join(jit.FLAGS)) and os.access(wrapper, os.X_OK)
    real = wrapper.read_text().split('"')[1]
    assert Path(real).is_file() and Path(real).parent != wrapper.parent  # never the wrapper calling itself


KERNELS = """
import hashlib, sys
import mlx.core as mx
from lazarus_bench import jit
mx.random.seed(0)
edges = [float('nan'), float('inf'), -float('inf'), 88.5, -88.5, 88.0, -88.0, 87.9, -87.9, 0.0, -0.0, 1e-40]
x = mx.concatenate([mx.random.normal((100_003,)) * 6, mx.array(edges)])
outs = [mx.compile(lambda x: x * mx.sigmoid(x))(x), mx.compile(lambda x: mx.exp(x) + 1)(x),
        mx.compile(lambda x: mx.log1p(mx.exp(-mx.abs(x))) + mx.tanh(x))(x)]
print(jit.mode(), hashlib.sha256(b"".join(bytes(memoryview(o)) for o in outs)).hexdigest())
"""


def _child(code_or_args, mode, **kw):
    """A fresh process in ``mode``; each mode keeps its usual kernel cache (MLX's under the system temp folder, the
    FMA one beside it), so kernels built by earlier runs are reused, as they would be in a user's."""
    system_tmp = str(Path(os.environ[jit.ROOT_ENV]).parent) if jit.ROOT_ENV in os.environ else os.environ.get("TMPDIR")
    env = {**{k: v for k, v in os.environ.items() if k not in ("TMPDIR", jit.ROOT_ENV)}, jit.JIT_ENV: mode,
           **({"TMPDIR": system_tmp} if system_tmp else {})}
    args = [sys.executable, "-c", code_or_args] if isinstance(code_or_args, str) else [sys.executable, *code_or_args]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, **kw)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@needs_fma
def test_compiled_kernels_are_bitwise_the_same_with_fma():
    plain, fma = (_child(KERNELS, m).split() for m in ("plain", "fma"))
    assert plain[0] == "plain" and fma[0] == "fma" and plain[1] == fma[1]
    assert list((Path(os.environ[jit.ROOT_ENV]) / "mlx").rglob("*.so")), "the FMA kernels are built apart"


@pytest.mark.thorough
@needs_fma
def test_records_with_a_compiled_training_step_are_bitwise_the_same(saved_model, tmp_path):
    from tests.test_runner import _comparable

    model, records = str(saved_model("llama")), {}
    for mode in ("plain", "fma"):
        out = tmp_path / mode
        _child(["-m", "lazarus_bench.cli", "run", "--tier", "fast", "-m", model, "--claims", "H05a", "--protocol",
                "corrected", "-j", "1", "--report-dir", str(out), "--cache-dir", str(tmp_path / f"c-{mode}"),
                "--params", '{"H05a": {"min_cls_loss_fall": 0, "min_ceiling_over_floor": 0}}'], mode,
               cwd=Path(__file__).resolve().parents[1])
        [record] = load_records(out).records
        assert record.environment["jit"] == mode and record.status == "ok"
        records[mode] = json.dumps(_comparable(record), sort_keys=True)
    assert records["plain"] == records["fma"]


@needs_fma
def test_a_compiler_that_rejects_the_flags_keeps_mlx_own(monkeypatch, tmp_path):
    import shutil

    assert jit.compiler_takes(shutil.which("g++"), jit.FLAGS)
    assert not jit.compiler_takes(shutil.which("g++"), ("--param=no-such-gcc-param=1",))
    for key in ("PATH", "TMPDIR", jit.ROOT_ENV, jit.JIT_ENV):
        monkeypatch.setenv(key, os.environ.get(key, ""))  # restored after the test
    monkeypatch.setenv(jit.ROOT_ENV, str(tmp_path / "root"))
    monkeypatch.setattr(jit, "FLAGS", ("--param=no-such-gcc-param=1",))
    assert jit.configure() == "plain" and jit.mode() == "plain"
    assert not (tmp_path / "root" / "bin" / "g++").exists()
