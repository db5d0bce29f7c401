"""pytest-benchmark suite: skipped unless selected with ``-m benchmark`` or ``--benchmark-only``.

pytest-benchmark times each case; tokens/s, MLX peak memory and process max RSS go into
``extra_info``, and MLX version, device, active BLAS and the GEMM rate into ``machine_info``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lazarus_bench.bench import machine
from lazarus_bench.bench import run as bench_run

SKIP = "benchmark: run with `pytest tests/benchmarks -m benchmark --benchmark-only`"


def benchmarks_selected(config: pytest.Config) -> bool:
    """True under ``--benchmark-only`` or when the ``-m`` expression selects the ``benchmark`` marker."""
    if config.getoption("benchmark_only", default=False):
        return True
    expression = config.getoption("markexpr", default="") or ""
    if not expression:
        return False
    from _pytest.mark.expression import Expression

    return bool(Expression.compile(expression).evaluate(lambda name, **_kw: name == "benchmark"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if benchmarks_selected(config):
        return
    for item in items:
        if item.get_closest_marker("benchmark") is not None:
            item.add_marker(pytest.mark.skip(reason=SKIP))


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    info = machine.machine_info()
    machine_info["lazarus_bench"] = info
    machine_info.update(mlx_version=info["mlx_version"], mlx_device=info["device"], blas=info["blas"],
                        blas_library=info["blas_library"], gemm_gflops=info["gemm_gflops"])


@pytest.fixture
def record(benchmark):
    """``record(figures)``: put a measurement's scalar figures (and this process's max RSS) into ``extra_info``."""

    def put(figures: dict) -> dict:
        for key, value in figures.items():
            if isinstance(value, (int, str, bool)) or value is None:
                benchmark.extra_info[key] = value
            elif isinstance(value, float):
                benchmark.extra_info[key] = value if math.isfinite(value) else None
        benchmark.extra_info["process_max_rss_gb"] = machine.max_rss_bytes() / 1e9
        return figures

    return put


@pytest.fixture(scope="session")
def bench_model_dir(tmp_path_factory) -> Path:
    """zoo:base when built, else a random-init model of its architecture saved with the bench tokenizer."""
    path, _source = bench_run.bench_model(tmp_path_factory.mktemp("bench-model"))
    return path


@pytest.fixture(scope="session")
def sft_examples():
    from lazarus_bench.training.data import arithmetic_examples

    return arithmetic_examples(256, seed=0)
