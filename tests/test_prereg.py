"""Pre-registration: claim hashes, the committed lock, and the report's flag for records off the lock."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from lazarus_bench.cli import main as cli_main
from lazarus_bench.errors import LazarusError
from lazarus_bench.harness import prereg
from lazarus_bench.harness.registry import all_claims, get_claim
from lazarus_bench.stats import Verdict
from lazarus_bench.suite.records import Record
from lazarus_bench.suite.report import read_all, render
from lazarus_bench.suite.runner import ModelPool, run_claim


def test_hash_covers_criteria_parameters_and_measure_sources():
    h08 = get_claim("H08")
    base = prereg.claim_hash(h08)
    assert prereg.claim_hash(replace(h08, params={**h08.params, "max_accuracy": 0.6})) != base
    assert prereg.claim_hash(replace(h08, criterion=h08.criterion + ".")) == base  # prose: not a rule
    assert prereg.claim_hash(replace(h08, tests={**h08.tests, "collapses": "t"})) != base
    assert prereg.claim_hash(replace(h08, fast={**h08.fast, "steps": 3})) != base
    assert prereg.claim_hash(get_claim("H08")) == base
    sources = prereg.measure_sources(get_claim("H09"))
    assert {"lazarus_bench.claims.h09_collapse_fixes", "lazarus_bench.claims.h08_grpo_dual_collapse",
            "lazarus_bench.harness.common"} <= set(sources)
    assert "def measure_h09" in sources["lazarus_bench.claims.h09_collapse_fixes"]


def test_committed_lock_is_current():
    """Changing a claim's criteria, tests, parameters or measure after the freeze fails here until it is logged as an
    amendment ('lazarus-bench claims --amend ID --why TEXT') and LOCK.json is committed with the change."""
    data = prereg.read_lock_file()
    assert data["frozen"]["version"] >= 1, "the committed lock must be a frozen confirmatory version"
    opened = prereg.stage1(data)
    if opened:
        pytest.skip(f"stage 1 open since {opened['date']}: lock v1 is closed ({opened['why']}); claims change until "
                    "lock v2 is frozen (claims --freeze), and every verdict is exploratory")
    lock = prereg.effective_hashes(data)
    statuses = {c.id: prereg.check(c, lock)["status"] for c in all_claims()}
    stale = {k: v for k, v in statuses.items() if v != "matches"}
    assert not stale, stale


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=Path(prereg.__file__).parent, capture_output=True, text=True,
                          check=True).stdout


def test_committed_lock_changes_only_by_amendments():
    """Every committed version of LOCK.json after the freeze keeps the frozen hashes and the earlier amendments as
    they were, and each change of a hash in force comes with a new amendment naming that claim."""
    try:
        commits = _git("log", "--format=%H", "--", "LOCK.json").split()
        top = Path(_git("rev-parse", "--show-toplevel").strip())
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no git history to read ({exc})")
    rel = prereg.LOCK.resolve().relative_to(top.resolve()).as_posix()
    versions = [json.loads(_git("show", f"{c}:{rel}")) for c in reversed(commits)]
    versions.append(prereg.read_lock_file())
    versions = [v for v in versions if "frozen" in v and v["frozen"].get("version", 0) >= 1]
    for old, new in zip(versions, versions[1:]):
        assert new["frozen"] == old["frozen"], "the frozen version was rewritten: log an amendment instead"
        assert new["amendments"][: len(old["amendments"])] == old["amendments"], "an amendment was edited or removed"
        added = {k for a in new["amendments"][len(old["amendments"]):] for k in a["claims"]}
        rehashed = new.get("rehashed") or {}
        if rehashed.get("scheme") != (old.get("rehashed") or {}).get("scheme"):  # a new hash function, not new rules
            added |= set(rehashed.get("claims", {}))
        before, after = prereg.effective_hashes(old), prereg.effective_hashes(new)
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        assert changed <= added, f"hashes changed without an amendment: {sorted(changed - added)}"


def test_freeze_and_amend_cli(tmp_path, capsys):
    path = tmp_path / "lock.json"
    assert cli_main(["claims", "--freeze", "--basis", "test", "--lock-file", str(path)]) == 0
    data = json.loads(path.read_text())
    hashes = prereg.effective_hashes(data)
    assert set(hashes) == {c.id for c in all_claims()} and data["amendments"] == []
    h01 = get_claim("H01")
    assert prereg.check(h01, hashes)["status"] == "matches"
    assert prereg.check(h01, {**hashes, "H01": "0" * 64})["status"] == "differs"
    assert prereg.check(h01, {})["status"] == "not locked"
    assert cli_main(["claims", "--freeze", "--lock-file", str(path)]) == 2, "a frozen lock cannot be re-frozen"
    assert "frozen at v1" in capsys.readouterr().err
    assert cli_main(["claims", "--amend", "H01", "--why", "x", "--lock-file", str(path)]) == 2
    assert "nothing to amend for H01" in capsys.readouterr().err
    data["frozen"]["claims"]["H01"] = "0" * 64  # as if H01 changed after the freeze
    path.write_text(json.dumps(data))
    assert prereg.check(h01, prereg.read_lock(path))["status"] == "differs"
    assert cli_main(["claims", "--amend", "H01", "--lock-file", str(path)]) == 2, "an amendment needs --why"
    assert "--why" in capsys.readouterr().err
    assert cli_main(["claims", "--amend", "h01", "--why", "a reason", "--records", str(tmp_path / "none"),
                     "--lock-file", str(path)]) == 0
    amended = prereg.read_lock_file(path)
    assert amended["frozen"]["claims"]["H01"] == "0" * 64, "the frozen version is kept as it was"
    assert amended["amendments"][0]["claims"] == {"H01": prereg.claim_hash(h01)}
    assert amended["amendments"][0]["why"] == "a reason" and prereg.lock_version(amended) == "v1+1"
    assert prereg.check(h01, prereg.read_lock(path))["status"] == "matches"
    path.write_text("{not json")
    with pytest.raises(LazarusError, match="unreadable"):
        prereg.read_lock(path)


def test_report_flags_records_off_the_lock_and_opens_with_the_replication_summary(saved_model, tmp_path, monkeypatch):
    """Under a lock in force (a v1 frozen from the registry here: the committed one may be closed for stage 1)."""
    monkeypatch.setattr(prereg, "LOCK", tmp_path / "LOCK.json")
    prereg.freeze(basis="test")
    path = str(saved_model("llama"))
    out = tmp_path / "reports"
    for claim_id in ("H01", "H02"):
        record = run_claim(get_claim(claim_id), path, tier="fast", report_dir=out, pool=ModelPool(),
                           log=lambda m: None, cache_dir=tmp_path / "cache")
        assert record.prereg["status"] == "matches" and "value" in record.mde
    h02 = next((out / "records").glob("H02__*.json"))
    data = json.loads(h02.read_text())
    data["prereg"]["hash"] = "f" * 64
    h02.write_text(json.dumps(data))
    text = read_all(render(out).parent)
    assert "H01 on" not in text.split("## Pre-registration")[1].split("##")[0]
    assert f"H02 on {path} (corrected): differs" in text
    matrix = text.split("## Verdict matrix")[1].split("##")[0]
    assert matrix.count("(†)") == 1
    h01_page = (out / "claims" / "H01.md").read_text()
    assert get_claim("H01").writeup in h01_page.split("## Replication summary")[1].split("\n## ")[0]
    layers = text.split("## Sensitivity to the analysis layer")[1].split("\n## ")[0]
    h01 = json.loads(next((out / "records").glob("H01__*.json")).read_text())
    curve = h01["curves"]["argmax_accuracy_by_layer"]
    d = h01["statistic"]["details"]
    at = curve["x"].index(str(int(0.55 * h01["model"]["info"]["n_layers"])))
    assert curve["series"]["argmax accuracy"][at] == d["argmax_hits"] / d["n_prompts"]
    assert "| H01 " in layers and "H02" not in layers


def test_report_lists_amendments_with_verdicts_before_and_after():
    from lazarus_bench.suite.deviations import prereg_section

    records = [Record.bare("H04", "zoo:base", verdict=Verdict.REFUTED, prereg={"hash": "b" * 64})]
    data = {"frozen": {"version": 1, "date": "2026-11-24", "basis": "rev 3", "claims": {"H04": "a" * 64}},
            "amendments": [{"number": 1, "date": "2026-11-25", "claims": {"H04": "b" * 64}, "what": "new control",
                            "why": "the old one could not fail", "records_touched": ["H04 zoo:base corrected"],
                            "verdicts_before": {"H04 zoo:base corrected": "SUPPORTED"}}]}
    text = "\n".join(prereg_section(records, prereg.effective_hashes(data), data))
    assert "Lock v1+1" in text and "Every record's claim hash matches" in text
    deviations = text.split("## Deviations from the pre-registration")[1]
    assert "Amendment 1" in deviations and "the old one could not fail" in deviations
    assert "| H04 zoo:base corrected | SUPPORTED | REFUTED |" in deviations
    stale = [records[0].replace(prereg={"hash": "a" * 64})]  # written before the amendment: no "after" yet
    text = "\n".join(prereg_section(stale, prereg.effective_hashes(data), data))
    assert "| SUPPORTED | not re-run under the lock in force |" in text
    frozen_only = "\n".join(prereg_section(records, {"H04": "a" * 64}, {**data, "amendments": []}))
    assert "None: every claim is measured as frozen" in frozen_only and "H04 on zoo:base (corrected): differs" \
        in frozen_only


def test_report_renders_records_of_an_earlier_claim_version():
    """A record written before a claim renamed its layer curve's series (flagged off the lock) is left out of the
    layer table instead of failing the whole report."""
    from lazarus_bench.suite.report import _layer_sensitivity

    claims = {c.id: c for c in all_claims()}
    old = Record.bare("H04", "m", curves={"rank_percentile_by_layer": {"x": ["0", "1"],
                                                                       "series": {"probe direction": [0.5, 0.4]}}})
    assert _layer_sensitivity([old], claims) == []
    new = old.replace(curves={"rank_percentile_by_layer": {"x": ["0", "1"],
                                                           "series": {"mean-difference direction": [0.5, 0.4]}}})
    assert "| H04 " in "\n".join(_layer_sensitivity([new], claims))


def test_docs_claims_is_the_registry(capsys):
    """docs/claims.md, the specification a clone ships, is `lazarus-bench claims --spec` of the registry as
    committed: regenerate it with that command when a claim changes."""
    assert cli_main(["claims", "--spec"]) == 0
    generated = capsys.readouterr().out
    shipped = (Path(prereg.__file__).parents[2] / "docs" / "claims.md").read_text()
    assert shipped == generated, "docs/claims.md is stale: run 'lazarus-bench claims --spec > docs/claims.md'"
    for claim in all_claims():
        assert f"## {claim.id}: {claim.title}" in generated and claim.criterion in generated
        assert all(f"`{k}`: {v}" in generated for k, v in claim.tests.items())


def test_stage1_closes_v1_once_with_a_reason_and_refuses_amendments(tmp_path, capsys):
    """CLAIMS.md revision 4's stage 1: ``claims --open-stage1 --why TEXT`` closes lock v1 (kept as it was) until lock
    v2 is frozen; amendments to v1 are refused meanwhile, and the report says no lock is in force."""
    path = tmp_path / "lock.json"
    assert cli_main(["claims", "--freeze", "--basis", "test", "--lock-file", str(path)]) == 0
    frozen = json.loads(path.read_text())
    assert cli_main(["claims", "--open-stage1", "--lock-file", str(path)]) == 2
    assert "reason" in capsys.readouterr().err and "stage1" not in json.loads(path.read_text())
    assert cli_main(["claims", "--open-stage1", "--why", "revision 4", "--lock-file", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["stage1"]["why"] == "revision 4" and data["frozen"] == frozen["frozen"]
    assert prereg.stage1(prereg.read_lock_file(path)) == data["stage1"]
    assert cli_main(["claims", "--open-stage1", "--why", "again", "--lock-file", str(path)]) == 2
    assert "stage 1 is open since" in capsys.readouterr().err
    with pytest.raises(LazarusError, match="stage 1 is open"):
        prereg.amend(["H01"], why="x", what="x", verdicts_before={}, records_touched=[], path=path)
    from lazarus_bench.suite.deviations import prereg_section

    text = "\n".join(prereg_section([], None, prereg.read_lock_file(path)))
    assert "Stage 1 is open since" in text and "revision 4" in text and "exploratory" in text
