"""Data parallelism through mx.distributed: ``mlx.launch -n 2`` on this CPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = str(Path(__file__).with_name("dp_worker.py"))
LAUNCH = shutil.which("mlx.launch") or str(Path(sys.executable).with_name("mlx.launch"))


def _run(n: int, kind: str, out: Path, *extra: str) -> list[dict]:
    if n == 1:
        cmd = [sys.executable, WORKER, kind, str(out), *extra]
    else:
        if not Path(LAUNCH).exists():
            pytest.skip("mlx.launch is not installed")
        cmd = [LAUNCH, "-n", str(n), "--python", sys.executable, WORKER, kind, str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [json.loads(Path(f"{out}.{rank}.json").read_text()) for rank in range(n)]


def test_two_ranks_average_gradients_like_one_process(tmp_path):
    single = _run(1, "regression", tmp_path / "one")[0]
    ranks = _run(2, "regression", tmp_path / "two")
    assert single["world"] == 1 and all(r["world"] == 2 for r in ranks)
    for name, value in single["weights"].items():
        for r in ranks:
            np.testing.assert_allclose(r["weights"][name], value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ranks[0]["losses"], single["losses"], rtol=1e-5)


def test_sft_under_mlx_launch_keeps_ranks_in_sync(tmp_path, saved_model):
    ranks = _run(2, "sft", tmp_path / "sft", str(saved_model("llama")))
    assert all(r["world"] == 2 for r in ranks)
    for name, value in ranks[0]["weights"].items():
        np.testing.assert_array_equal(ranks[1]["weights"][name], value)
    assert ranks[0]["losses"] == ranks[1]["losses"] and np.isfinite(ranks[0]["losses"]).all()
