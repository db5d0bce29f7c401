"""requirements.lock pins every dependency setup.sh installs, and the tests run on the locked versions: a record's
code hash means the same computation only with the same packages beside it."""

from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
CORE = ("mlx", "mlx-lm", "numpy", "scipy", "scikit-learn", "tokenizers")  # what computes a record's numbers


def pins() -> dict[str, str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    found = [re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line) for line in lines if line and not line.startswith("#")]
    assert all(found), [line for line, m in zip(lines, found) if not m]
    return {m.group(1).lower().replace("_", "-"): m.group(2) for m in found}


def test_every_dependency_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    names = {re.match(r"[A-Za-z0-9_.-]+", spec).group(0).lower().replace("_", "-") for spec in wanted}
    locked = pins()
    assert names <= set(locked), sorted(names - set(locked))
    assert "-c requirements.lock" in (ROOT / "setup.sh").read_text()


def test_the_tests_run_on_the_locked_versions():
    locked = pins()
    assert {name: md.version(name) for name in CORE} == {name: locked[name] for name in CORE}


def test_ci_runs_the_optional_checks_and_lets_none_skip():
    """The transformers comparison, the Ray engine and the saved-data-set loader skip in the test tier without their
    packages; `.ci/run` installs them (torch's CPU build, pinned) and fails if any of these checks skipped."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"pip install .*-c requirements\.lock torch==2\.13\.0 ray==[0-9.]+ datasets==[0-9.]+", ci)
    for test in ("tests/test_zoo_transformers.py", "tests/test_ray_engine.py", "tests/test_engram_claims.py"):
        assert test in ci and (ROOT / test).is_file(), test
    assert 'grep -q "^SKIPPED"' in ci and "-rs" in ci
