"""Pre-registration: claim hashes, the committed lock, and the report's flag for records off the lock."""

from __future__ import annotations

import json
from dataclasses import replace

from lazarus_bench.claims import prereg
from lazarus_bench.claims.base import all_claims, get_claim
from lazarus_bench.cli import main as cli_main
from lazarus_bench.suite.report import render
from lazarus_bench.suite.runner import ModelPool, run_claim


def test_hash_covers_criteria_parameters_and_measure_sources():
    h08 = get_claim("H08")
    base = prereg.claim_hash(h08)
    assert prereg.claim_hash(replace(h08, params={**h08.params, "max_accuracy": 0.6})) != base
    assert prereg.claim_hash(replace(h08, criterion=h08.criterion + ".")) != base
    assert prereg.claim_hash(replace(h08, fast={**h08.fast, "steps": 3})) != base
    assert prereg.claim_hash(get_claim("H08")) == base
    sources = prereg.measure_sources(get_claim("H09"))
    assert {"lazarus_bench.claims.h09_collapse_fixes", "lazarus_bench.claims.h08_grpo_dual_collapse",
            "lazarus_bench.claims.common"} <= set(sources)
    assert "def measure_h09" in sources["lazarus_bench.claims.h09_collapse_fixes"]


def test_committed_lock_is_current():
    """Changing a claim's criteria, parameters or measure without re-locking fails here: re-run
    'lazarus-bench claims --lock' and commit LOCK.json with the change."""
    lock = prereg.read_lock()
    statuses = {c.id: prereg.check(c, lock)["status"] for c in all_claims()}
    stale = {k: v for k, v in statuses.items() if v != "matches"}
    assert not stale, stale


def test_lock_cli_and_statuses(tmp_path, capsys):
    path = tmp_path / "lock.json"
    assert cli_main(["claims", "--lock", "--lock-file", str(path)]) == 0
    hashes = json.loads(path.read_text())["claims"]
    assert set(hashes) == {c.id for c in all_claims()}
    h01 = get_claim("H01")
    assert prereg.check(h01, hashes)["status"] == "matches"
    assert prereg.check(h01, {**hashes, "H01": "0" * 64})["status"] == "differs"
    assert prereg.check(h01, {})["status"] == "not locked"
    path.write_text("{not json")
    try:
        prereg.read_lock(path)
    except Exception as exc:  # noqa: BLE001
        assert "unreadable" in str(exc)
    else:
        raise AssertionError("a corrupt lock must be reported")


def test_report_flags_records_off_the_lock_and_opens_with_the_replication_summary(saved_model, tmp_path):
    path = str(saved_model("llama"))
    out = tmp_path / "reports"
    for claim_id in ("H01", "H02"):
        record = run_claim(get_claim(claim_id), path, tier="fast", report_dir=out, pool=ModelPool(),
                           log=lambda m: None, cache_dir=tmp_path / "cache")
        assert record["prereg"]["status"] == "matches" and "value" in record["mde"]
    h02 = next((out / "records").glob("H02__*.json"))
    data = json.loads(h02.read_text())
    data["prereg"]["hash"] = "f" * 64
    h02.write_text(json.dumps(data))
    text = render(out).read_text()
    summary = text.index("## Replication summary")
    assert summary < text.index("## Verdict matrix")
    assert "H01 on" not in text.split("## Pre-registration")[1].split("##")[0]
    assert f"H02 on {path} (corrected): differs" in text
    matrix = text.split("## Verdict matrix")[1].split("##")[0]
    assert matrix.count("(†)") == 1
    assert get_claim("H01").writeup in text[summary:text.index("## Verdict matrix")]
    layers = text.split("## Sensitivity to the analysis layer")[1].split("\n## ")[0]
    h01 = json.loads(next((out / "records").glob("H01__*.json")).read_text())
    curve = h01["curves"]["argmax_accuracy_by_layer"]
    d = h01["statistic"]["details"]
    at = curve["x"].index(str(int(0.55 * h01["model"]["info"]["n_layers"])))
    assert curve["series"]["argmax accuracy"][at] == d["argmax_hits"] / d["n_prompts"]
    assert "| H01 " in layers and "H02" not in layers
