"""Fixture-cache keys follow the code that builds the fixture: a change to a module it imports rebuilds it, a change
to another claim's file does not (H05b reuses H05a's dual-reward runs after an unrelated edit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lazarus_bench import cache, codehash
from lazarus_bench.harness.fixtures import DUAL_RUN_KEYS
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.suite import reuse


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A stand-in package: a imports b lazily, c is unrelated; hashes computed against it."""
    root = tmp_path / "lazarus_bench"
    (root / "data").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("def f():\n    from . import b\n    return b.X\n")
    (root / "b.py").write_text("X = 1\n")
    (root / "c.py").write_text("Y = 1\n")
    (root / "data" / "prompts.txt").write_text("7 * 8 = \n")
    monkeypatch.setattr(codehash, "PACKAGE", root)
    codehash.clear_caches()
    yield root
    codehash.clear_caches()


def _key(parts: dict, code: str) -> str:
    codehash.clear_caches()
    return cache.FixtureCache(Path("/nonexistent"), code=code).path(parts).name


def test_a_fixture_key_changes_with_its_imports_and_data_only(package):
    parts = {"method": "m", "seed": 0}
    key = _key(parts, "lazarus_bench.a")
    (package / "c.py").write_text("Y = 2\n")
    assert _key(parts, "lazarus_bench.a") == key
    (package / "b.py").write_text("X = 2\n")
    changed = _key(parts, "lazarus_bench.a")
    assert changed != key
    (package / "data" / "prompts.txt").write_text("7 * 9 = \n")
    assert _key(parts, "lazarus_bench.a") not in (key, changed)
    assert _key({**parts, "seed": 1}, "lazarus_bench.a") != _key(parts, "lazarus_bench.a")


def test_a_module_outside_the_package_is_refused(package):
    with pytest.raises(ValueError, match="not a module"):
        codehash.module_code("numpy.linalg")


def test_h05a_and_h05b_ask_for_the_same_dual_reward_runs():
    h05a, h05b = get_claim("H05a"), get_claim("H05b")
    for tier in ("fast", "slow"):
        pa, pb = h05a.parameters(tier), h05b.parameters(tier)
        assert {k: pa[k] for k in DUAL_RUN_KEYS} == {k: pb[k] for k in DUAL_RUN_KEYS}
    assert set(h05b.protocols) <= set(h05a.protocols) and h05a.default_seeds == h05b.default_seeds


def test_the_dual_reward_key_does_not_follow_other_claims_files():
    fixtures = codehash.module_file("lazarus_bench.harness.fixtures")
    files = codehash.closure(fixtures)
    claims = {p.name for p in files if p.parent.name == "claims" and p.name.startswith("h")}
    assert not claims  # no claim module: editing one keeps every dual-reward run valid
    assert codehash.PACKAGE / "training" / "dual_reward.py" in files
    assert reuse.claim_files(get_claim("H05b")) >= files
