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
            pytest.skip("mlx.launch (mlx's launcher) is not installed: .venv/bin/pip install -c requirements.lock mlx")
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


def test_batches_split_each_step_across_ranks_without_changing_it():
    """Rank r of N takes every N-th row of the one-process batch, so the data do not depend on N."""
    from lazarus_bench.training.data import Batches, Encoded

    rows = [Encoded(list(range(2 + i % 5)), 1) for i in range(23)]
    batches = Batches(rows, batch_size=6, seed=3)
    for step in (0, 3, 7):
        whole = batches.indices(step)
        for world in (2, 3):
            parts = [batches.indices(step, rank, world) for rank in range(world)]
            np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.sort(whole))
            np.testing.assert_array_equal(parts[0], whole[::world])


def _cli_sft(model_dir, out: Path, ranks: int) -> dict:
    cmd = [sys.executable, "-m", "lazarus_bench.cli", "train", "sft", "--model", str(model_dir), "-o", str(out),
           "--steps", "6", "--lr", "1e-3", "--batch-size", "5", "--n-train", "60", "--ranks", str(ranks)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    from safetensors.numpy import load_file

    return {"losses": json.loads((out / "result.json").read_text())["result"]["train"]["losses"],
            "weights": load_file(str(out / "adapters.safetensors"))}


def test_train_sft_on_two_ranks_takes_the_steps_of_one_process(tmp_path, saved_model):
    """``lazarus-bench train sft --ranks 2``: rows of different response lengths and an odd batch, so only a
    response-token-weighted gradient average over the ranks reproduces the one-process run."""
    model = saved_model("llama")
    one = _cli_sft(model, tmp_path / "one", 1)
    two = _cli_sft(model, tmp_path / "two", 2)
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=2e-5)
    assert one["weights"].keys() == two["weights"].keys()
    for name, value in one["weights"].items():
        np.testing.assert_allclose(two["weights"][name], value, rtol=1e-4, atol=1e-6)
    trained = [v for k, v in one["weights"].items() if k.endswith("lora_b")]
    assert trained and all(np.abs(v).max() > 0 for v in trained)  # LoRA B starts at zero: the run trained


def test_train_ranks_reject_a_batch_smaller_than_the_ranks_in_one_line(tmp_path, saved_model):
    cmd = [sys.executable, "-m", "lazarus_bench.cli", "train", "sft", "--model", str(saved_model("llama")), "-o",
           str(tmp_path / "o"), "--batch-size", "1", "--ranks", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "smaller than --ranks 2" in proc.stderr and not (tmp_path / "o").exists()
