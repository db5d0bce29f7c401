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
    group.addoption("--overwrite", action="store_true",
                    help="replace report pages in --report-dir that lazarus_bench did not write (by default: refused)")
    group.addoption("--report-only", action="store_true",
                    help="record every verdict but keep the exit code 0 (claims that fail are reported, not failed)")


def pytest_configure(config):
    """Register the ``--include`` folders' claims before the hypothesis tests are generated from the registry, and
    check a --report-dir the user named: a bad one (or one holding pages the tool did not write) is one usage line
    now, not a traceback after the claims ran."""
    from lazarus_bench.errors import LazarusError
    from lazarus_bench.io import check_writable

    try:
        if config.getoption("--include", default=None):
            from lazarus_bench.harness.registry import include

            include(config.getoption("--include"))
        report_dir = Path(config.getoption("--report-dir", default=REPORT_DIR))
        if str(report_dir) != REPORT_DIR:
            check_writable(report_dir / "REPORT.md")
        if report_dir.is_dir():  # nor one holding a user's own REPORT.md, refused before the claims run
            from lazarus_bench.suite.report import check_report_dir

            check_report_dir(report_dir, config.getoption("--overwrite", default=False))
    except LazarusError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """With ``-n N``, distribute by group: a claim that reuses another's cached runs goes to that claim's worker."""
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "loadgroup"


# Test modules whose module-scoped fixture measures claims (tens of seconds): one worker runs all their tests and
# builds the fixture once, where every worker that drew one of them would build it again.
SHARED_FIXTURE_MODULES = frozenset({"tests/test_probe_claims.py", "tests/test_zoo_build.py"})


def work_unit(nodeid: str) -> str:
    """A test's pytest-xdist work unit: its module if that is one of ``SHARED_FIXTURE_MODULES``, else its claim
    family's (``xdist_scope``: the test alone unless it is a hypothesis test of a claim with a family)."""
    from lazarus_bench.suite.families import xdist_scope

    module = nodeid.partition("::")[0]
    return module if module in SHARED_FIXTURE_MODULES else xdist_scope(nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With ``--dist loadgroup``, each claim family (a claim and those reusing its cached runs) is one work unit, and
    so is each module of ``SHARED_FIXTURE_MODULES``."""
    if config.getvalue("dist") == "loadgroup":
        from lazarus_bench.suite.families import FamilyScheduling

        class SuiteScheduling(FamilyScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return work_unit(nodeid)

        return SuiteScheduling(config, log)
    return None
