"""Incremental runs: a record whose inputs are unchanged is kept, anything that changes them (parameters, the code a
claim calls, --fresh) measures it again, and the report lists what was kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lazarus_bench.codehash import PACKAGE, closure
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.suite import reuse
from lazarus_bench.suite.records import load_records
from lazarus_bench.suite.report import read_all, render
from lazarus_bench.suite.runner import run_suite

CLAIMS_DIR = PACKAGE / "claims"
HARNESS_DIR = PACKAGE / "harness"


def test_a_claims_code_is_its_module_its_imports_and_the_claims_it_reads():
    h01, h04 = (reuse.claim_files(get_claim(c)) for c in ("H01", "H04"))
    assert {CLAIMS_DIR / "h01_lens_op_words.py", HARNESS_DIR / "plants.py", HARNESS_DIR / "base.py",
            PACKAGE / "stats" / "__init__.py", PACKAGE / "suite" / "runner.py"} <= h01
    assert CLAIMS_DIR / "h07_grpo_no_classifier.py" not in h01 | h04
    assert CLAIMS_DIR / "h05_dual_reward_names_op.py" in h04  # H04's positive control is H05a's trained model
    lazy = closure(HARNESS_DIR / "base.py")
    assert PACKAGE / "models.py" in lazy and PACKAGE / "tiny.py" in lazy  # imports inside functions


@pytest.mark.parametrize("runs, claim", [("grpo_run", "h07_grpo_no_classifier"), ("sft_checkpoints",
                                          "h11_sft_task_tokens"), ("two_stage_run", "h14_two_stage")])
def test_a_claims_cached_training_is_keyed_by_the_training_code_not_the_read_out(runs, claim):
    """H07's, H11's and H14's trained runs are keyed by the module that builds them: a change to how the claim reads
    them (its own file) keeps them, a change to the training they call does not."""
    built_by = closure(HARNESS_DIR / f"{runs}.py")
    assert CLAIMS_DIR / f"{claim}.py" not in built_by and CLAIMS_DIR / f"{claim}.py" in reuse.claim_files(
        get_claim(claim[:3].upper()))
    assert PACKAGE / "training" / ("grpo.py" if runs == "grpo_run" else "sft.py") in built_by


def _run(model, out, **kw):
    return run_suite([model], ["H01", "H12"], tier="fast", report_dir=out, cache_dir=out / "cache",
                     log=lambda m: None, **kw)


def test_unchanged_inputs_reuse_the_record_and_changed_ones_do_not(saved_model, tmp_path, monkeypatch):
    model, out = str(saved_model("llama")), tmp_path / "r"
    first = _run(model, out)
    assert not any(s.get("reused") for s in first)
    before = {p.name: p.read_bytes() for p in (out / "records").glob("*.json")}
    again = _run(model, out)
    assert all(s.get("reused") for s in again) and len(again) == len(first)
    assert {p.name: p.read_bytes() for p in (out / "records").glob("*.json")} == before  # nothing measured: no write
    assert read_all(render(out).parent) == read_all(render(out).parent)  # the report is a function of the records

    changed = _run(model, out, overrides={"H01": {"max_prob": 0.02}})
    assert {s["claim"]: bool(s.get("reused")) for s in changed} == {"H01": False, "H12": True}
    assert not any(s.get("reused") for s in _run(model, out, fresh=True))
    assert not any(r.reused for r in load_records(out).records)  # every record measured by the last run

    h01 = str(CLAIMS_DIR / "h01_lens_op_words.py")
    real = Path.read_text
    edit = {"text": "\n# a comment: no change of meaning\n"}
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: real(self, *a, **k) + (edit["text"]
                                                                                        if str(self) == h01 else ""))
    _clear_code_caches()
    assert all(s.get("reused") for s in _run(model, out))
    edit["text"] = "\nEDITED = 1\n"
    _clear_code_caches()
    edited = _run(model, out)
    assert {s["claim"]: bool(s.get("reused")) for s in edited} == {"H01": False, "H12": True}


def _clear_code_caches():
    from lazarus_bench import codehash

    codehash.clear_caches()


def test_a_failed_record_is_never_reused(saved_model, tmp_path):
    model, out = str(saved_model("llama")), tmp_path / "r"
    _run(model, out)
    path = next((out / "records").glob("H12__*.json"))
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "status": "error"}))
    assert {s["claim"]: bool(s.get("reused")) for s in _run(model, out)} == {"H01": True, "H12": False}


@pytest.mark.parametrize("model", ["meta-llama/Llama-3.2-1B"])
def test_hub_models_are_never_reused(model, tmp_path):
    from lazarus_bench.suite.runner import Job, reused_record

    (tmp_path / "records").mkdir()
    assert reused_record(Job("H01", model, "corrected", 1.0), tmp_path, "fast", None, None, model) is None


def test_a_paired_claim_is_measured_again_once_its_instruct_variant_is_built_or_rebuilt(saved_model, tmp_path,
                                                                                      monkeypatch):
    from lazarus_bench.harness.pairs import INSTRUCT_PAIRS
    from lazarus_bench.suite.runner import Job, reused_record, run_claim

    model, out = str(saved_model("llama")), tmp_path / "r"
    skip = run_claim(get_claim("H06"), model, tier="fast", report_dir=out, cache_dir=out / "cache")
    assert skip.status == "skipped" and "no instruct variant" in skip.reason

    def reused() -> bool:
        return reused_record(Job("H06", model, "corrected", 1.0), out, "fast", None, None, model) is not None

    assert reused()
    monkeypatch.setitem(INSTRUCT_PAIRS, model, str(saved_model("llama", seed=1)))
    assert not reused()  # the pair now exists: the skip is stale
    h06 = get_claim("H06")
    first = reuse.inputs(h06, model, "hash", "corrected", "fast", {}, [0], 1.0)
    monkeypatch.setitem(INSTRUCT_PAIRS, model, str(saved_model("llama", seed=2)))
    rebuilt = reuse.inputs(h06, model, "hash", "corrected", "fast", {}, [0], 1.0)
    assert first["instruct_pair"][1] != rebuilt["instruct_pair"][1]  # another instruct model: measured again
    assert reuse.inputs(get_claim("H01"), model, "hash", "corrected", "fast", {}, [0], 1.0)["instruct_pair"] is None
