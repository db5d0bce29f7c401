"""One parameterised hypothesis test per claim of the registry (H01-H15) over the model fixtures.

Slow tier (the full protocol): a test passes when its claim is SUPPORTED on that model and fails
otherwise (REFUTED, INCONCLUSIVE, error), unless ``--report-only``. Fast tier (micro zoo, reduced
steps): a pipeline check that fails only when the claim cannot be measured (an error), since verdicts
on micro models say little; it runs the corrected and original protocols (the one-factor ablations
are pipeline-tested in tests/test_protocols.py). A claim that does not apply to a model is skipped with the reason.
Every outcome is written as a result record and rendered into the report.
"""

from __future__ import annotations

import pytest

from lazarus_bench.errors import LazarusError
from lazarus_bench.harness.registry import all_claims
from lazarus_bench.stats import Verdict
from lazarus_bench.suite.runner import run_claim


def _check(claim, tier, model_id, suite, request):
    if model_id.startswith("zoo-micro:"):
        request.getfixturevalue("micro_zoo")
    if model_id.startswith("replica:"):
        request.getfixturevalue("replicas")
    try:
        records = [
            run_claim(claim, model_id, tier=tier, n_seeds=suite["seeds"], report_dir=suite["report_dir"],
                      protocol=protocol, pool=suite["pool"])
            for protocol in claim.tier_protocols(tier)
        ]
    except LazarusError as exc:  # the model did not load (no record is written for it) or a record was not saved
        pytest.fail(f"{claim.id} on {model_id}: {exc}", pytrace=False)
    main = records[0]
    summary = "; ".join(f"{r.protocol}: {r.verdict or r.status} ({r.reason})" for r in records)
    if (crashed := next((r for r in records if r.status == "error"), None)) and not suite["report_only"]:
        pytest.fail(f"{claim.id} on {model_id} ({crashed.protocol}): error: {crashed.reason}", pytrace=False)
    if main.status == "skipped":
        pytest.skip(f"{claim.id} on {model_id}: {main.reason}")
    if main.verdict == Verdict.NOT_TESTABLE:
        pytest.skip(f"{claim.id} on {model_id}: NOT TESTABLE: {main.reason}")
    if suite["report_only"] or tier == "fast":
        return
    if main.verdict != Verdict.SUPPORTED:
        pytest.fail(f"{claim.id} not supported on {model_id}: {summary}", pytrace=False)


def _make_test(claim):
    def test(tier, model_id, suite, request):
        _check(claim, tier, model_id, suite, request)

    test.__name__ = f"test_{claim.id}"
    test.__doc__ = f"{claim.id}: {claim.statement}"
    return test


for _claim in all_claims():
    globals()[f"test_{_claim.id}"] = _make_test(_claim)
