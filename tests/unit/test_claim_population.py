"""Each claim's population verdict from records: the claim files' declarations read through the records' criteria,
gate-failed builds counted, undeclared criteria blocking SUPPORTED, and declarations outside the records' hash."""

import ast
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from lazarus_bench import codehash
from lazarus_bench.harness.registry import all_claims
from lazarus_bench.stats import ClaimStatistic, Verdict
from lazarus_bench.suite.population import declarations, population
from lazarus_bench.suite.records import Record, load_records

ROOT = Path(codehash.__file__).resolve().parent
REPORTS = ROOT.parent / "reports"


def _part(value: float, threshold: float | None = None, direction: str | None = None) -> dict:
    details = {"threshold": threshold, "direction": direction} if threshold is not None else {}
    return {"name": "part", "statistic": value, "details": details}


def _h01(build: int, below: float, largest: float, accuracy: float, verdict: str = "SUPPORTED") -> Record:
    """An H01 record of build ``build`` with its three criteria (the sign-tested one states its threshold)."""
    criteria = {"below_threshold": _part(below, 0.01, "below"), "every_prompt_below": _part(largest, 0.01, "below"),
                "argmax_at_chance": _part(accuracy)}
    stat = ClaimStatistic(name="max P(op word) per prompt", statistic=below, ci_low=0.0, ci_high=1.0, confidence=0.9,
                          effect_size=None, p_value=0.01, n=8, verdict=verdict, reason="",
                          details={"criteria": criteria} if verdict != "NOT TESTABLE" else {})
    return Record.bare("H01", f"zoo:base@s{build}", verdict=verdict, statistic=stat, params={"max_prob": 0.01})


def _logit(p):
    return np.log(np.asarray(p) / (1 - np.asarray(p)))


def test_eight_builds_below_the_threshold_give_supported_with_the_declared_test():
    below = [2e-4, 1e-4, 5e-4, 3e-4, 8e-5, 4e-4, 2e-4, 6e-4]
    records = [_h01(i, b, 3 * b, 0.25) for i, b in enumerate(below)]
    pop = population("H01", records, [f"s{i}" for i in range(8)], "confirmatory")
    assert pop.verdict.verdict == Verdict.SUPPORTED and pop.undeclared == []
    by_name = {c.criterion: c for c in pop.verdict.criteria}
    expected = st.ttest_1samp(_logit(below), _logit(0.01), alternative="less").pvalue  # logit scale, as declared
    assert by_name["below_threshold"].p_claimed == pytest.approx(expected, rel=1e-9)
    largest = st.ttest_1samp(_logit(np.array(below) * 3), _logit(0.01), alternative="less").pvalue
    assert by_name["every_prompt_below"].p_claimed == pytest.approx(largest, rel=1e-9)  # threshold from max_prob
    assert by_name["argmax_at_chance"].n_testable == 8


def test_gate_failed_builds_count_and_four_of_eight_is_not_testable():
    records = [_h01(i, 2e-4 * (i + 1), 1e-3, 0.25, "SUPPORTED" if i < 4 else "NOT TESTABLE") for i in range(8)]
    pop = population("H01", records, [f"s{i}" for i in range(8)], "confirmatory")
    assert pop.verdict.verdict == Verdict.NOT_TESTABLE
    assert {(c.n_testable, c.n_builds) for c in pop.verdict.criteria} == {(4, 8)}
    five = population("H01", records[:6], [f"s{i}" for i in range(6)], "confirmatory")
    assert five.verdict.verdict == Verdict.NOT_TESTABLE  # 4 of 6
    six = [_h01(i, 2e-4 * (i + 1), 1e-3, 0.25) for i in range(5)] + records[4:6]
    assert population("H01", six, [f"s{i}" for i in range(7)], "confirmatory").verdict.verdict == Verdict.SUPPORTED


def test_one_criterion_on_the_wrong_side_refutes_and_an_undeclared_one_blocks_supported():
    records = [_h01(i, 2e-4, 1e-3, a) for i, a in enumerate([0.75, 0.875, 0.625, 0.75, 1.0, 0.875])]
    pop = population("H01", records, [f"s{i}" for i in range(6)], "confirmatory")
    assert pop.verdict.verdict == Verdict.REFUTED and "argmax_at_chance" in pop.verdict.reason
    extra = [r.replace(statistic=replace(r.statistic, details={"criteria": {
        **r.statistic.details["criteria"], "new_part": _part(0.5)}})) for r in
        [_h01(i, 2e-4, 1e-3, 0.25) for i in range(6)]]
    blocked = population("H01", extra, [f"s{i}" for i in range(6)], "confirmatory")
    assert blocked.verdict.verdict == Verdict.INCONCLUSIVE and blocked.undeclared == ["new_part"]
    assert "no population test declared for new_part" in blocked.verdict.reason


def test_a_null_subtracted_from_the_details():
    """H02's above-null criterion is the accuracy less the permuted labels' mean accuracy, above 0."""
    def h02(i, acc, null):
        crit = {"accuracy": _part(acc), "above_null": _part(acc)}
        stat = ClaimStatistic(name="acc", statistic=acc, ci_low=0.0, ci_high=1.0, confidence=0.9, effect_size=None,
                              p_value=0.01, n=16, verdict="SUPPORTED", reason="",
                              details={"criteria": crit, "null_mean": null})
        return Record.bare("H02", f"zoo:base@s{i}", verdict="SUPPORTED", statistic=stat, params={"min_accuracy": 0.95})
    accs, nulls = [0.97, 0.99, 1.0, 0.96, 0.98], [0.3, 0.2, 0.25, 0.3, 0.28]
    pop = population("H02", [h02(i, a, n) for i, (a, n) in enumerate(zip(accs, nulls))], list("abcde"), "-")
    above = next(c for c in pop.verdict.criteria if c.criterion == "above_null")
    assert above.estimate == pytest.approx(np.mean(np.array(accs) - np.array(nulls)))


def test_every_criterion_the_committed_records_report_is_declared():
    """A claim's criteria in the shipped records each have a declaration (None: no population test, named)."""
    reported: dict[str, set] = {}
    for r in load_records(REPORTS).records:
        parts = ((r.statistic.details or {}).get("criteria") or {}) if r.statistic is not None else {}
        reported.setdefault(r.claim_id, set()).update(parts)
    assert reported
    for claim in all_claims():
        declared = declarations(claim.id)
        assert declared, f"{claim.id} declares no POPULATION"
        assert reported.get(claim.id, set()) <= set(declared), claim.id


def test_population_declarations_change_no_record_hash_and_no_record_reads_them():
    source = (ROOT / "claims" / "h01_lens_op_words.py").read_text()
    assert "POPULATION = {" in source
    edited = source.replace('"threshold": 0.4', '"threshold": 0.45', 1)
    dotted = "lazarus_bench.claims.h01_lens_op_words"
    assert edited != source and codehash.normalised(edited, dotted) == codehash.normalised(source, dotted)
    kept = source.replace("POPULATION = {", "OTHER = {", 1)  # only that name is outside the tree
    assert codehash.normalised(kept, dotted) != codehash.normalised(source, dotted)
    readers = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and node.id == "POPULATION" and isinstance(node.ctx, ast.Load) \
                    or isinstance(node, ast.Constant) and node.value == "POPULATION":
                readers.add(str(path.relative_to(ROOT)))
    # the reader, the hasher that leaves them out of records, and lock v2's hash (prereg), which hashes them: a record
    # carries that hash as its stamp, never a value computed from a declaration
    assert readers == {"suite/population.py", "codehash.py", "harness/prereg.py"}
    roots = [*(ROOT / "claims").glob("h*.py"), ROOT / "suite" / "runner.py"]
    for module in (ROOT / "suite" / "population.py", ROOT / "harness" / "lock2.py"):
        assert all(module not in codehash.closure(p) for p in roots), module  # no record reads it
    json.dumps(declarations("H09"))  # plain data: the lock can hash it


def test_a_users_family_of_checkpoints_is_one_population_in_the_report(tmp_path):
    """`run --population NAME` records the family; the report reads it and judges the members as builds of one
    recipe: one population verdict, each member a build named by its shortest distinct path."""
    from lazarus_bench import outputs
    from lazarus_bench.errors import LazarusError
    from lazarus_bench.suite import populations, summary
    from lazarus_bench.suite.records import Loaded

    members = [f"runs/s{i}/base" for i in range(101, 107)]
    populations.add(tmp_path, "v3-dev", members[:3])
    populations.add(tmp_path, "v3-dev", members[2:])  # a second run adds its members
    assert populations.read(tmp_path) == {"v3-dev": sorted(members)}
    assert outputs.is_owned(tmp_path, populations.FILE)
    with pytest.raises(LazarusError, match="already belongs to the family 'v3-dev'"):
        populations.add(tmp_path, "other", [members[0], "x/y"])
    assert populations.labels(["a/s1/base", "b/s2/base", "c/s3/moe"]) == {"a/s1/base": "s1/base",
                                                                        "b/s2/base": "s2/base", "c/s3/moe": "moe"}
    records = [replace(_h01(i, 2e-4 * (i + 1), 1e-3, 0.25), model=replace(_h01(i, 0, 0, 0).model, id=m,
                                                                          info={"kind": "base"}))
               for i, m in enumerate(members)] + [_h01(9, 0.5, 0.5, 1.0)]  # another model: its own variant
    tagged = populations.tagged(Loaded(records=records, skipped=[]), tmp_path).records
    assert [summary.variant_build(r) for r in tagged[:2]] == [("population:v3-dev", "s101/base"),
                                                              ("population:v3-dev", "s102/base")]
    sentence, rows = summary.answer(tagged, {})
    assert rows[0]["verdict"] == "SUPPORTED" and rows[0]["builds"].startswith("6/6 testable; 6: SUP 6")
    pop, _ = summary.population_of("H01", [r for r in tagged if r.model.id in members])
    assert pop.role == "family v3-dev" and pop.builds[0] == "s101/base"
    (tmp_path / populations.FILE).write_text("[1, 2]")  # not the tool's any more: refused, and unreadable
    with pytest.raises(LazarusError, match="not written by lazarus-bench"):
        populations.add(tmp_path, "v3-dev", members)
    with pytest.raises(LazarusError, match="expected {family: \\[model ids\\]}"):
        populations.read(tmp_path)


def test_exploratory_builds_show_the_builds_needed_and_confirmatory_builds_plan_nothing():
    """H01 over six development builds: the plan of its logit-scale criterion equals the noncentral t computed here,
    a criterion without spread needs the fewest builds, and N is the largest plan, at least 8."""
    from lazarus_bench.suite import summary

    below = [8e-3, 2e-3, 1.2e-2, 5e-3, 9e-3, 3e-3]
    records = [_h01(101 + i, b, 1.1 * b, 0.25) for i, b in enumerate(below)]
    lines = summary.power_lines(records)
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in "\n".join(lines).splitlines() if line.startswith("| H01")}
    y = _logit(below)
    d = (y.mean() - _logit(0.01)) / y.std(ddof=1)
    n = next(k for k in range(5, 65) if st.nct.sf(st.t.ppf(0.95, k - 1), k - 1, abs(d) * np.sqrt(k)) >= 0.8)
    assert rows["below_threshold"][2:] == [f"claimed side, d = {d:.2f}", "100%", str(n), str(n)]
    assert rows["argmax_at_chance"][2:] == ["claimed side, d = -inf", "100%", "5", "5"]
    largest = _logit(1.1 * np.array(below))
    n_largest = next(k for k in range(5, 65) if st.nct.sf(st.t.ppf(0.95, k - 1), k - 1, abs(
        (largest.mean() - _logit(0.01)) / largest.std(ddof=1)) * np.sqrt(k)) >= 0.8)
    assert max(n, n_largest) > 8 and f"Confirmatory builds: **{max(n, n_largest)}**" in "\n".join(lines)
    confirmatory = [r.replace(model=replace(r.model, build={"role": "confirmatory"})) for r in records]
    assert summary.power_lines(confirmatory) == []
