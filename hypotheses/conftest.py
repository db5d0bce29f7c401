"""Model fixtures for the hypothesis tests: every ``--model`` given, or the embedded zoo by default."""

from __future__ import annotations

import pytest

from lazarus_bench.errors import LazarusError
from lazarus_bench.models import load_model

DEFAULT_MODELS = ("zoo:base", "zoo:instruct", "zoo:untied", "zoo:moe")


def pytest_generate_tests(metafunc):
    if "model_id" in metafunc.fixturenames:
        models = metafunc.config.getoption("--model") or list(DEFAULT_MODELS)
        metafunc.parametrize("model_id", models, scope="session")


@pytest.fixture(scope="session")
def model_handles():
    """Load each model once per session; a model that fails to load skips its tests with the reason."""
    cache: dict = {}

    def get(model_id: str):
        if model_id not in cache:
            try:
                cache[model_id] = load_model(model_id)
            except LazarusError as exc:
                cache[model_id] = exc
        if isinstance(cache[model_id], LazarusError):
            pytest.skip(str(cache[model_id]))
        return cache[model_id]

    return get
