"""Hashes of meaning: a docstring, comment, formatting, help text or progress line changes no record input and no
lock hash; a changed constant, rule or Python version does."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from lazarus_bench import codehash
from lazarus_bench.harness import prereg
from lazarus_bench.harness.registry import get_claim

ROOT = Path(codehash.__file__).resolve().parent
CLAIM_FILE = ROOT / "claims" / "h01_lens_op_words.py"
STATS_FILE = ROOT / "stats" / "tests.py"


def _norm(path: Path, text: str) -> str:
    return codehash.normalised(text, codehash._dotted(path))


@pytest.mark.parametrize("path", [CLAIM_FILE, STATS_FILE], ids=["claim file", "stats"])
def test_wording_changes_nothing(path):
    source = path.read_text()
    reworded = ('"""Another module docstring, in other words."""\n# a comment\n\n'
                + source.split('"""', 2)[2].replace("    return", "    # why\n    return", 1)
                .replace("):\n", "):  # trailing comment\n", 1))
    assert reworded != source
    assert _norm(path, reworded) == _norm(path, source)


@pytest.mark.parametrize("path, old, new", [(CLAIM_FILE, '"max_prob": 0.01', '"max_prob": 0.02'),
                                            (STATS_FILE, "p0: float = 0.5", "p0: float = 0.4")],
                         ids=["claim file", "stats"])
def test_a_changed_constant_changes_the_hash(path, old, new):
    source = path.read_text()
    assert old in source
    assert _norm(path, source.replace(old, new, 1)) != _norm(path, source)


def test_help_text_and_progress_lines_change_nothing():
    base = ("from .. import progress, stats\nfrom dataclasses import field\n"
            "def f(p):\n    x = field(default=1, metadata={'help': 'one', 'range': 2})\n"
            "    p.add_argument('--n', type=int, help='how many')\n    return stats.mean(x)\n")
    edited = (base.replace("'one'", "'another line of help'").replace("'how many'", "'the count'")
              .replace("    return", "    progress.step('steps', 1, 2)\n    return"))
    assert codehash.normalised(edited, "lazarus_bench.claims.x") == codehash.normalised(base, "lazarus_bench.claims.x")
    other = base.replace("    return", "    stats.step('steps', 1, 2)\n    return")
    assert codehash.normalised(other, "lazarus_bench.claims.x") != codehash.normalised(base, "lazarus_bench.claims.x")
    ranged = base.replace("'range': 2", "'range': 3")
    assert codehash.normalised(ranged, "lazarus_bench.claims.x") != codehash.normalised(base, "lazarus_bench.claims.x")


def test_the_python_version_is_hashed_beside_the_code(monkeypatch):
    assert codehash.python_tag().endswith(f"python {sys.version_info.major}.{sys.version_info.minor}")
    files = {CLAIM_FILE}
    here = codehash.digest(files)
    monkeypatch.setattr(codehash, "python_tag", lambda: f"{codehash.SCHEME} python 3.99")
    assert codehash.digest(files) != here


def test_display_only_modules_are_outside_every_closure():
    from lazarus_bench.harness.registry import all_claims
    from lazarus_bench.suite import reuse

    for claim in all_claims():
        names = {codehash._dotted(p) for p in reuse.claim_files(claim)}
        outside = sorted(n for n in names if codehash.display_only(n) or n.endswith(".codehash"))
        assert not outside, (claim.id, outside)
        assert "lazarus_bench.stats.tests" in names or claim.id.startswith("U")


def test_claim_hash_ignores_prose_and_follows_rules():
    claim = get_claim("H01")
    here = prereg.claim_hash(claim)
    assert prereg.claim_hash(dataclasses.replace(claim, statement="Reworded.", title="New title")) == here
    assert prereg.claim_hash(dataclasses.replace(claim, params={**claim.params, "max_prob": 0.02})) != here
    assert prereg.claim_hash(dataclasses.replace(claim, tests={**claim.tests, "below_threshold": "t"})) != here


def test_the_lock_applies_a_rehash_only_under_its_own_scheme(tmp_path):
    lock = tmp_path / "LOCK.json"
    lock.write_text('{"frozen": {"version": 1, "claims": {"H01": "old"}}, "amendments": []}')
    data = prereg.rehash(lock, basis="test")
    assert prereg.effective_hashes(data)["H01"] == prereg.claim_hash(get_claim("H01"))
    data["rehashed"]["scheme"] = "ast-0 python 2.7"
    assert prereg.effective_hashes(data)["H01"] == "old"
