"""`lazarus-bench run --engine ray` on a local Ray cluster (a head and a worker node on the loopback address, started
and stopped here, bounded in time) writes the records the local process pool writes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lazarus_bench.errors import LazarusError
from lazarus_bench.suite.records import load_records
from lazarus_bench.suite.runner import run_suite

CLAIMS = ["H01", "H05a", "H12"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster():
    pytest.importorskip("ray", reason="the Ray engine is an optional extra: .venv/bin/pip install "
                        "'lazarus-bench[ray]' (.ci/run does)")
    ray = str(Path(sys.executable).with_name("ray"))
    # a short folder: Ray's unix sockets live under it, and socket paths are limited to ~107 bytes
    port, temp = _free_port(), tempfile.mkdtemp(prefix="ray", dir="/tmp" if Path("/tmp").is_dir() else None)
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run([ray, "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}",
                        *common], check=True, capture_output=True, timeout=120)
        subprocess.run([ray, "start", f"--address=127.0.0.1:{port}", *common], check=True, capture_output=True,
                       timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        try:
            subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)
        except subprocess.TimeoutExpired:  # a loaded machine: kill what `ray stop --force` would (every Ray process)
            for pattern in (temp, "ray::", "/ray/core/src/ray/", "ray/dashboard/", "ray/_private/"):
                subprocess.run(["pkill", "-9", "-f", pattern], capture_output=True, timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_engine_writes_the_local_pools_records(saved_model, tmp_path, ray_cluster):
    from tests.test_runner import _comparable

    model = str(saved_model("llama"))
    cmd = [sys.executable, "-m", "lazarus_bench.cli", "run", "--engine", "ray", "--address", ray_cluster, "--tier",
           "fast", "-m", model, "--claims", ",".join(CLAIMS), "--protocol", "corrected", "-j", "2", "--report-dir",
           str(tmp_path / "ray"), "--cache-dir", str(tmp_path / "ray-cache")]
    done = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count(" on Ray") == len(CLAIMS)
    run_suite([model], CLAIMS, tier="fast", report_dir=tmp_path / "pool", cache_dir=tmp_path / "pool-cache", jobs=2,
              protocols=["corrected"], log=lambda m: None)
    on_ray = {r.claim_id: r for r in load_records(tmp_path / "ray").records}
    local = {r.claim_id: r for r in load_records(tmp_path / "pool").records}
    assert on_ray.keys() == local.keys() == set(CLAIMS)
    for key in local:
        assert json.dumps(_comparable(on_ray[key]), sort_keys=True) == json.dumps(_comparable(local[key]),
                                                                                   sort_keys=True), key


def test_without_ray_the_engine_says_how_to_get_it(saved_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(LazarusError, match=r"--engine ray needs Ray: pip install 'lazarus-bench\[ray\]'"):
        run_suite([str(saved_model("llama"))], ["H12"], tier="fast", report_dir=tmp_path, engine="ray",
                  log=lambda m: None)
    assert not (tmp_path / "records").exists()
