"""Root pytest configuration: BLAS preload before any test imports mlx, and the suite's command-line options."""

from __future__ import annotations

from pathlib import Path

import pytest

import lazarus_bench  # noqa: F401  (must precede every mlx import)
from lazarus_bench.options import option

REPORT_DIR = "reports/pytest"


def pytest_addoption(parser):
    group = parser.getgroup("lazarus", "lazarus_bench hypothesis suite")
    group.addoption("--model", action="append", default=[], metavar="MODEL",
                    help="model to test (repeatable): zoo:NAME, a checkpoint directory or a hub id; default: the zoo")
    group.addoption("--replicas", action="store_true",
                    help="run the claims on the real-checkpoint replicas (replica:NAME: real configs and "
                         "tokenizers, random weights), built once into the cache")
    group.addoption("--include", action="append", default=[], metavar="DIR",
                    help="also register (and test) the claims defined in DIR/*.py (repeatable)")
    group.addoption("--seeds", type=option("seeds"), default=None, metavar="N",
                    help="number of training seeds per training claim (tested across seeds)")
    group.addoption("--report-dir", default=REPORT_DIR, metavar="DIR",
                    help="where result records and the report go (default reports/pytest; the main job uses reports)")
    group.addoption("--report-only", action="store_true",
                    help="record every verdict but keep the exit code 0 (claims that fail are reported, not failed)")


def pytest_configure(config):
    """Register the ``--include`` folders' claims before the hypothesis tests are generated from the registry, and
    check a --report-dir the user named: a bad one is one usage line now, not a traceback after the claims ran."""
    from lazarus_bench.errors import LazarusError
    from lazarus_bench.io import check_writable

    try:
        if config.getoption("--include", default=None):
            from lazarus_bench.claims.base import include

            include(config.getoption("--include"))
        if config.getoption("--report-dir", default=REPORT_DIR) != REPORT_DIR:
            check_writable(Path(config.getoption("--report-dir")) / "REPORT.md")
    except LazarusError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """With ``-n N``, distribute by group: a claim that reuses another's cached runs goes to that claim's worker."""
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With ``--dist loadgroup``, each claim family (a claim and those reusing its cached runs) is one work unit."""
    if config.getvalue("dist") == "loadgroup":
        from lazarus_bench.suite.families import FamilyScheduling

        return FamilyScheduling(config, log)
    return None
