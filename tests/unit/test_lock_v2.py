"""Lock v2 (CLAIMS.md revision 4): hashes of meaning over every file that feeds a record, the verdict rules beside
them, and a freeze that holds the environment, the recipe and the confirmatory builds' number."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from lazarus_bench import codehash
from lazarus_bench.cli import main as cli_main
from lazarus_bench.harness import lock2, prereg
from lazarus_bench.harness.registry import all_claims, get_claim
from lazarus_bench.zoo.recipe import SIZES, recipe_hash


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the package's code and data (no weights) that the hasher reads instead of the installed one."""
    copy = tmp_path / codehash.PACKAGE.name
    shutil.copytree(codehash.PACKAGE, copy, ignore=shutil.ignore_patterns("weights", "__pycache__"))
    monkeypatch.setattr(codehash, "PACKAGE", copy)
    codehash.clear_caches()
    yield copy
    codehash.clear_caches()


def _hashes() -> dict[str, str]:
    codehash.clear_caches()
    return {c.id: lock2.lock_hash(c) for c in all_claims()}


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path.name}"
    path.write_text(text.replace(old, new))


def test_a_docstring_edit_changes_no_hash_and_a_changed_rule_changes_every_claims(package_copy):
    before, rules = _hashes(), lock2.rules_hash()
    verdicts = package_copy / "stats" / "verdicts.py"
    _edit(verdicts, "2. criterion met and", "2. the criterion is met and")  # a docstring's words
    assert _hashes() == before and lock2.rules_hash() == rules
    _edit(verdicts, "p_value < alpha)", "p_value <= alpha)")  # the decision rule itself
    after = _hashes()
    assert all(after[c] != before[c] for c in before), "every claim's verdict goes through decide()"
    assert lock2.rules_hash() == rules, "the population rules do not import the per-build decision"


def test_a_changed_population_rule_changes_the_rules_hash_and_no_claims(package_copy):
    before, rules = _hashes(), lock2.rules_hash()
    _edit(package_copy / "stats" / "population.py", "SUPPORTED if p_claimed < alpha", "SUPPORTED if p_claimed <= alpha")
    assert _hashes() == before and lock2.rules_hash() != rules


def test_a_claims_own_file_and_its_population_declaration_change_only_its_hash(package_copy, monkeypatch):
    before = _hashes()
    anchor = "def family_targets("
    _edit(package_copy / "claims" / "h13_remain_token.py", anchor, f"def _unused():\n    return 1\n\n\n{anchor}")
    after = _hashes()
    assert {c for c in before if after[c] != before[c]} == {"H13"}
    module = __import__(get_claim("H01").measure.__module__, fromlist=["POPULATION"])
    monkeypatch.setitem(module.POPULATION, "argmax_at_chance", {"threshold": 0.45, "side": "below"})
    changed = _hashes()
    assert {c for c in after if changed[c] != after[c]} == {"H01"}


def test_lock_v2_is_frozen_over_v1_with_its_number_and_the_environment_and_then_refused(tmp_path, capsys):
    path = str(tmp_path / "lock.json")
    assert cli_main(["claims", "--freeze", "--confirmatory", "8", "--power", "x", "--lock-file", path]) == 2
    assert "belong to lock v2" in capsys.readouterr().err
    assert cli_main(["claims", "--freeze", "--basis", "v1", "--lock-file", path]) == 0
    assert cli_main(["claims", "--freeze", "--lock-file", path]) == 2
    assert "frozen at v1, closed when stage 1 began" in capsys.readouterr().err
    with pytest.raises(SystemExit) as fewer:  # parsed against its declared range, before anything is read
        cli_main(["claims", "--freeze", "--confirmatory", "7", "--power", "x", "--lock-file", path])
    assert fewer.value.code == 2 and "--confirmatory: expected an integer in [8, inf)" in capsys.readouterr().err
    assert cli_main(["claims", "--confirmatory", "9", "--lock-file", path]) == 2  # an option --freeze alone reads
    assert cli_main(["claims", "--freeze", "--confirmatory", "11", "--power", "H04 d = 0.9 needs 11",
                     "--lock-file", path]) == 0
    data = prereg.read_lock_file(path)
    frozen = data["frozen"]
    assert frozen["version"] == 2 and frozen["confirmatory"] == 11 and data["closed"][0]["frozen"]["version"] == 1
    assert frozen["claims"] == {c.id: lock2.lock_hash(c) for c in all_claims()}
    assert frozen["rules"] == lock2.rules_hash() and frozen["python"] == codehash.python_tag()
    assert frozen["requirements"] == hashlib.sha256(lock2.REQUIREMENTS.read_bytes()).hexdigest()
    assert frozen["recipe"]["hash"] == recipe_hash(SIZES["default"]) and frozen["recipe"]["development_seeds"]
    assert "sha256('<freeze commit>:<i>')" in frozen["seed_rule"]
    assert lock2.status(get_claim("H01"), data) == "matches"
    assert prereg.check(get_claim("H01"), prereg.effective_hashes(data))["status"] == "differs"  # v1's hash
    assert lock2.drift(data) == [] and prereg.lock_version(data) == "v2"
    capsys.readouterr()
    assert cli_main(["claims", "--lock-file", path]) == 0
    listing = capsys.readouterr().out
    assert "lock v2" in listing and "no longer holds" not in listing and listing.count("matches") == len(all_claims())
    moved = {**data, "frozen": {**frozen, "requirements": "0" * 64, "recipe": {**frozen["recipe"], "hash": "x"}}}
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    assert cli_main(["claims", "--lock-file", str(tmp_path / "moved.json")]) == 0
    out = capsys.readouterr().out
    assert "no longer holds here: requirements: locked 000" in out and "no longer holds here: recipe: locked x" in out
    assert cli_main(["claims", "--freeze", "--confirmatory", "12", "--power", "y", "--lock-file", path]) == 2
    assert "frozen at v2" in capsys.readouterr().err


def _git(repo, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def _by_hand(commit: str, n: int, skip) -> list[int]:
    seeds, i = [], 0
    while len(seeds) < n:
        seed = int(hashlib.sha256(f"{commit}:{i}".encode()).hexdigest()[:8], 16)
        seeds += [] if seed in skip or seed in seeds else [seed]
        i += 1
    return seeds


def test_the_seeds_are_drawn_once_from_the_tagged_freeze_commit(tmp_path, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    lock = repo / "LOCK.json"
    assert cli_main(["claims", "--freeze", "--basis", "v1", "--lock-file", str(lock)]) == 0
    _git(repo, "add", "LOCK.json")
    _git(repo, "commit", "-qm", "v1")
    _git(repo, "tag", "at-v1")
    assert cli_main(["claims", "--draw-seeds", "at-v1", "--lock-file", str(lock)]) == 2
    assert "holds no lock v2" in capsys.readouterr().err
    assert cli_main(["claims", "--freeze", "--confirmatory", "9", "--power", "p", "--lock-file", str(lock)]) == 0
    assert cli_main(["claims", "--draw-seeds", "at-v1", "--lock-file", str(lock)]) == 2  # the tag predates it
    assert "does not hold the lock v2 frozen" in capsys.readouterr().err
    assert cli_main(["claims", "--draw-seeds", "nowhere", "--lock-file", str(lock)]) == 2
    assert "nowhere: no such tag or commit" in capsys.readouterr().err
    capsys.readouterr()
    assert cli_main(["claims", "--lock-file", str(lock)]) == 0
    assert "confirmatory seeds: not drawn yet" in capsys.readouterr().out
    _git(repo, "commit", "-qam", "freeze v2")
    _git(repo, "tag", "lock-v2")
    assert cli_main(["claims", "--draw-seeds", "lock-v2", "--lock-file", str(lock)]) == 0
    commit = _git(repo, "rev-parse", "HEAD")
    seeds = _by_hand(commit, 9, skip=(101, 102, 103, 104, 105))
    drawn = json.loads((repo / "CONFIRMATORY.json").read_text())
    assert drawn["seeds"] == seeds and drawn["commit"] == commit and drawn["tag"] == "lock-v2"
    assert cli_main(["claims", "--draw-seeds", "lock-v2", "--lock-file", str(lock)]) == 2
    assert "drawn once" in capsys.readouterr().err and json.loads((repo / "CONFIRMATORY.json").read_text()) == drawn
    assert cli_main(["claims", "--lock-file", str(lock)]) == 0
    assert f"seeds drawn from lock-v2 ({commit[:12]}): {seeds[0]}, {seeds[1]}," in capsys.readouterr().out


def test_the_committed_draw_is_the_rule_applied_to_its_freeze_commit():
    """Skips until the seeds are drawn; from then on a seed edited by hand, or a draw from another commit, fails."""
    drawn = lock2.read_drawn()
    if not drawn:
        pytest.skip("no confirmatory seeds drawn yet (lock v2 is not frozen)")
    try:
        then = json.loads(_git(prereg.LOCK.parent, "show", f"{drawn['commit']}:./{prereg.LOCK.name}"))
    except Exception as exc:  # a checkout without history: the rule is still checked below
        then = {"frozen": prereg.read_lock_file()["frozen"]}
        print(f"git history not readable ({exc})")
    frozen = then["frozen"]
    assert frozen["version"] == 2 and frozen == prereg.read_lock_file()["frozen"]
    assert drawn["seeds"] == _by_hand(drawn["commit"], frozen["confirmatory"], frozen["recipe"]["development_seeds"])


def test_an_amendment_to_lock_v2_stores_the_verdicts_after_and_whether_it_was_post_hoc(tmp_path, capsys, monkeypatch):
    from lazarus_bench.stats import Verdict
    from lazarus_bench.suite.deviations import prereg_section, registered_verdicts
    from lazarus_bench.suite.records import Record, save_record
    from lazarus_bench.suite.summary import answer

    lock, before_dir, after_dir = tmp_path / "lock.json", tmp_path / "before", tmp_path / "after"
    assert cli_main(["claims", "--freeze", "--basis", "v1", "--lock-file", str(lock)]) == 0
    assert cli_main(["claims", "--freeze", "--confirmatory", "8", "--power", "p", "--lock-file", str(lock)]) == 0
    h01 = get_claim("H01")
    old = lock2.lock_hash(h01)
    save_record(before_dir, Record.bare("H01", "zoo:base", verdict=Verdict.INCONCLUSIVE, prereg={"hash": old}))
    amend = ["claims", "--amend", "H01", "--why", "a wrong margin", "--records", str(before_dir), "--lock-file",
             str(lock)]
    assert cli_main(amend) == 2
    assert "needs --after DIR" in capsys.readouterr().err
    module = __import__(h01.measure.__module__, fromlist=["POPULATION"])
    monkeypatch.setitem(module.POPULATION, "argmax_at_chance", {"threshold": 0.45, "side": "below"})
    new = lock2.lock_hash(h01)
    assert cli_main([*amend, "--after", str(tmp_path), "--post-hoc", "yes"]) == 2  # no records folder there
    assert f"--after {tmp_path}: no records folder there" in capsys.readouterr().err
    save_record(after_dir, Record.bare("H01", "zoo:base", verdict=Verdict.SUPPORTED, prereg={"hash": old}))
    assert cli_main([*amend, "--after", str(after_dir), "--post-hoc", "yes"]) == 2  # made before the change
    assert "zoo:base corrected was made by other code" in capsys.readouterr().err
    save_record(after_dir, Record.bare("H01", "zoo:base", verdict=Verdict.SUPPORTED, prereg={"hash": new}))
    assert cli_main([*amend, "--after", str(after_dir), "--post-hoc", "yes"]) == 0
    data = prereg.read_lock_file(lock)
    entry = data["amendments"][0]
    assert entry["claims"] == {"H01": new} and entry["post_hoc"] is True and prereg.lock_version(data) == "v2+1"
    assert entry["verdicts_before"] == {"H01 zoo:base corrected": "INCONCLUSIVE"}
    assert entry["verdicts_after"] == {"H01 zoo:base corrected": "SUPPORTED"}
    assert lock2.status(h01, data) == "matches"
    assert cli_main([*amend, "--after", str(after_dir), "--post-hoc", "no"]) == 2  # nothing changed since
    assert "nothing to amend for H01" in capsys.readouterr().err
    now = [Record.bare("H01", "zoo:base", verdict=Verdict.REFUTED, prereg={"hash": new})]
    text = "\n".join(prereg_section(now, prereg.effective_hashes(data), data))
    assert "; H01; **post hoc**): changed H01. Why: a wrong margin." in text
    populations = entry["population_before"], entry["population_after"]
    assert set(populations[0]) == set(populations[1]) == {"H01"} and registered_verdicts(data) == populations[0]
    assert f"before -> amended: H01 {populations[0]['H01']} -> {populations[1]['H01']}." in text
    _, first_screen = answer(now, {}, registered_verdicts(data))
    assert first_screen[0]["verdict"].endswith(f"(amended; pre-registered: {populations[0]['H01']})")
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| ")]
    assert rows == [["record", "before (pre-registered)", "amended", "now"],
                    ["H01 zoo:base corrected", "INCONCLUSIVE", "SUPPORTED", "REFUTED"]]


def test_zoo_build_confirmatory_builds_the_drawn_seeds_stamped_with_the_draw(tmp_path, capsys, monkeypatch):
    """The build itself is the zoo's (tested with it); here: which seeds, which checks, which stamp. One rank: each
    rank of a build parses the command again in its own process, where the draw read is the committed file."""
    from lazarus_bench.cli import zoo as zoo_cli
    from lazarus_bench.zoo import build

    with pytest.raises(SystemExit) as none:
        cli_main(["zoo", "build", "--builds", "confirmatory", "--dir", str(tmp_path)])
    assert none.value.code == 2 and "no confirmatory seeds drawn yet" in capsys.readouterr().err
    drawn = {"seeds": [7, 9], "commit": "c" * 40, "recipe": {"hash": recipe_hash(SIZES["default"])}}
    monkeypatch.setattr(lock2, "read_drawn", lambda path=None: drawn)
    made = []
    monkeypatch.setattr(build, "build_zoo", lambda out, **kw: made.append((out.name, kw["seed"], kw["stamp"])) or {})
    monkeypatch.setattr(zoo_cli, "_print_built", lambda *a: None)
    assert cli_main(["zoo", "build", "--builds", "confirmatory", "--size", "micro", "--dir", str(tmp_path)]) == 2
    assert "built with recipe v3 (--size default), not micro" in capsys.readouterr().err and not made
    with pytest.raises(SystemExit):  # the drawn seeds or seeds by number, not both
        cli_main(["zoo", "build", "--builds", "confirmatory,8", "--dir", str(tmp_path)])
    assert cli_main(["zoo", "build", "--builds", "confirmatory", "--ranks", "1", "--dir", str(tmp_path)]) == 0
    lock = prereg.lock_version(prereg.read_lock_file())
    assert made == [(f"s{s}", s, {"lock": {"version": lock, "frozen": True, "drawn_from": "c" * 40}}) for s in (7, 9)]
    drawn["recipe"] = {"hash": "another"}
    assert cli_main(["zoo", "build", "--builds", "7", "--ranks", "1", "--dir", str(tmp_path)]) == 2
    assert "not the one lock v2 froze" in capsys.readouterr().err and len(made) == 2


def test_no_confirmatory_build_or_record_was_committed_before_the_freeze():
    """Skips until the seeds are drawn; from then on git history must show every commit that added a confirmatory
    seed's build or record after the freeze commit (a build seen before the freeze could have shaped the lock)."""
    import subprocess

    drawn = lock2.read_drawn()
    if not drawn:
        pytest.skip("no confirmatory seeds drawn yet (lock v2 is not frozen)")
    try:
        top = _git(prereg.LOCK.parent, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no git history to read ({exc})")
    for seed in drawn["seeds"]:
        paths = [f":(glob)**/builds/s{seed}/**", f":(glob)reports/records/*_s{seed}-*"]
        for commit in _git(top, "log", "--diff-filter=A", "--format=%H", "--", *paths).split():
            early = subprocess.run(["git", "-C", top, "merge-base", "--is-ancestor", drawn["commit"], commit])
            assert early.returncode == 0, f"seed {seed}: commit {commit[:12]} adds it without the freeze before it"


def test_records_are_stamped_with_the_v2_hash_once_v2_is_in_force(tmp_path, monkeypatch):
    """The runner's stamp (``prereg.check``) hashes as the lock in force does: v1's hash under v1, lock v2's (the
    meaning of the whole closure) under v2, so ``claims --amend --after`` can match records made by amended code."""
    monkeypatch.setattr(prereg, "LOCK", tmp_path / "LOCK.json")
    prereg.freeze(basis="test")
    h01 = get_claim("H01")
    assert prereg.check(h01)["hash"] == prereg.claim_hash(h01) != lock2.lock_hash(h01)
    lock2.freeze(tmp_path / "LOCK.json", basis="test", confirmatory=8, power="test", recipe={"name": "v3", "hash": "x"})
    stamp = prereg.check(h01)
    assert stamp["hash"] == lock2.lock_hash(h01) and stamp["status"] == "matches"
