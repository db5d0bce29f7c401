"""Typed records: every committed record loads and writes back to the same JSON; a broken one is one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lazarus_bench.errors import LazarusError
from lazarus_bench.harness.base import ControlRun, GateResult
from lazarus_bench.stats import ClaimStatistic, Verdict
from lazarus_bench.suite.records import SCHEMA_VERSION, Record, load_records, read_record, save_record

COMMITTED = Path(__file__).resolve().parents[2] / "reports" / "records"


@pytest.fixture(scope="module")
def committed() -> list[tuple[Path, dict, Record]]:
    """Every committed record file: its path, its JSON and the typed record read from it (read once)."""
    return [(path, json.loads(path.read_text()), read_record(path)) for path in sorted(COMMITTED.glob("*.json"))]


def test_every_committed_record_round_trips_through_the_typed_record(committed):
    assert len(committed) >= 100
    for path, data, record in committed:
        assert json.loads(json.dumps(record.to_dict())) == data, path.name
        assert record.status in ("ok", "skipped", "error")
        if record.status == "ok":
            assert isinstance(record.verdict, Verdict) and isinstance(record.statistic, ClaimStatistic)
            assert all(isinstance(c, ControlRun) and isinstance(c.effect_verdict, Verdict) for c in record.controls)
            assert all(isinstance(g, GateResult) for g in record.fitness)


@pytest.mark.parametrize("change, message", [
    (lambda d: {**d, "schema_version": 0}, "schema version 0, this lazarus_bench reads 1"),
    (lambda d: {k: v for k, v in d.items() if k != "status"}, "missing status"),
    (lambda d: {**d, "verdicts": "SUPPORTED"}, "unknown verdicts"),
    (lambda d: {**d, "status": "fine"}, "status 'fine' is not ok, skipped or error"),
    (lambda d: {**d, "verdict": "PROBABLY"}, "'PROBABLY' is not a valid Verdict"),
    (lambda d: {**d, "model": {"id": "m"}}, "missing model.id/slug"),
    (lambda d: [d], "not a JSON object"),
])
def test_a_broken_record_is_one_line_and_left_out_of_the_report(tmp_path, change, message):
    good = Record.bare("H01", "m", verdict=Verdict.SUPPORTED)
    save_record(tmp_path, good)
    path = next((tmp_path / "records").glob("*.json"))
    (tmp_path / "records" / "broken.json").write_text(json.dumps(change(json.loads(path.read_text()))))
    with pytest.raises(LazarusError) as info:
        read_record(tmp_path / "records" / "broken.json")
    assert message in str(info.value) and "\n" not in str(info.value)
    loaded = load_records(tmp_path)
    assert [r.claim_id for r in loaded.records] == ["H01"] and loaded.records[0] == good
    assert [name for name, _ in loaded.skipped] == ["broken.json"] and message in loaded.skipped[0][1]


def test_records_are_frozen_and_written_with_their_schema_version(tmp_path):
    record = Record.bare("H02", "m", status="skipped", reason="dense model")
    with pytest.raises(AttributeError):
        record.status = "ok"
    data = json.loads(save_record(tmp_path, record).read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["status"] == "skipped" and "verdict" not in data


def test_final_verdict_reproduces_every_committed_verdict(committed):
    """The one decision function, fed each committed record's statistic, gates and controls (graded and nulls too),
    gives the verdict (and the measured verdict) the record carries: the runner decides nothing else."""
    from lazarus_bench.harness.controls import calibrate, measured_verdicts
    from lazarus_bench.stats import final_verdict

    checked = 0
    for path, _, record in committed:
        if record.status != "ok":
            continue
        s = record.statistic
        parts = {} if s.verdict == Verdict.NOT_TESTABLE else {s.name: s}
        label = record.calibration
        decision = final_verdict(parts, "all", record.fitness,
                                 (label, "") if label == "not run" else
                                 calibrate(record.controls, record.graded or (), record.nulls or (),
                                           measured_verdicts(s) if parts else None))
        assert decision.verdict == record.verdict, path.name
        assert (decision.measured if decision.by != "rule" else None) == record.measured_verdict, path.name
        assert decision.reason == record.reason or not parts, path.name
        checked += 1
    assert checked >= 75


def test_curves_are_typed_and_keep_their_record_form(committed):
    from lazarus_bench.harness.base import Curve, Outcome

    curves = [c for _, data, _ in committed for c in (data.get("curves") or {}).values()]
    assert len(curves) > 100 and all(Curve.of(c).to_dict() == c for c in curves)
    typed = Curve(x=("0", "1", "2"), series={"a": [0.1, None, 0.3]}, ylabel="P")
    assert typed.to_dict() == {"x": ["0", "1", "2"], "series": {"a": [0.1, None, 0.3]}, "ylabel": "P"}
    with pytest.raises(LazarusError, match="longer than its 2 x labels"):
        Curve(x=("0", "1"), series={"a": [1.0, 2.0, 3.0]})
    with pytest.raises(LazarusError, match="unknown field"):
        Curve.of({"x": [], "series": {}, "colour": "red"})
    statistic = ClaimStatistic("s", 0.0, 0.0, 0.0, 0.9, None, None, 1, Verdict.SUPPORTED, "")
    assert Outcome(statistic=statistic, ours="", curves={"c": typed}).curves == {"c": typed.to_dict()}


@pytest.mark.parametrize("data, message", [(b'{"a": "\xff"}', "not UTF-8 text (byte 0xff at line 1, column 8)"),
                                           (b"{\x00}", "a binary file"), (b"{not json", "not valid JSON")])
def test_an_undecodable_record_goes_through_the_one_reader(tmp_path, data, message):
    save_record(tmp_path, Record.bare("H01", "m", verdict=Verdict.SUPPORTED))
    (tmp_path / "records" / "bad.json").write_bytes(data)
    with pytest.raises(LazarusError, match="^bad.json: unreadable, ") as info:
        read_record(tmp_path / "records" / "bad.json")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert [name for name, _ in load_records(tmp_path).skipped] == ["bad.json"]
