"""Each claim's population verdict over the builds of one recipe (CLAIMS.md revision 4), read from the records.

A claim file declares ``POPULATION``: per criterion, the scale of its build-level statistic and the test (and its
threshold and side where the record does not state them). The rules are :mod:`lazarus_bench.stats.population`'s. A
build is counted, never dropped: a record that is not testable (a gate failed, the run erred) is a gate-failed
build for every criterion. A criterion a record reports and the claim does not declare has no population test, so
the claim cannot be SUPPORTED (the summary names it). The declarations are outside the records' hash
(``codehash.VERDICT_ONLY``): they decide this verdict, not a record.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field

from ..errors import LazarusError
from ..harness.base import Claim
from ..harness.registry import get_claim
from ..stats import Verdict
from ..stats.population import (
    BuildsNeeded,
    PopulationCriterion,
    PopulationVerdict,
    builds_needed,
    combine,
    criterion_verdict,
    untested,
)
from .records import Record

KEYS = {"scale", "test", "threshold", "side", "minus"}


@dataclass(frozen=True)
class ClaimPopulation:
    """One claim's population verdict over ``builds`` (the builds' names), with the role they were counted in."""

    claim_id: str
    builds: list[str]
    role: str  # "confirmatory", "family NAME" (run --population) or "exploratory" (every build, tuned ones too)
    verdict: PopulationVerdict
    undeclared: list[str] = field(default_factory=list)


def _registered(claim_id: str) -> Claim | None:
    """The claim, or None for a record of a claim not registered here (a user's, without --include)."""
    try:
        return get_claim(claim_id)
    except LazarusError:
        return None


def declarations(claim_id: str) -> dict[str, dict | None]:
    """The claim file's ``POPULATION`` ({} when it declares none, or the claim is not registered); a criterion
    declared ``None`` has no test."""
    claim = _registered(claim_id)
    if claim is None:
        return {}
    module = importlib.import_module(claim.measure.__module__)
    declared = getattr(module, "POPULATION", {})
    for name, spec in declared.items():
        if spec is not None and set(spec) - KEYS:
            raise ValueError(f"{claim_id} POPULATION[{name!r}]: unknown keys {sorted(set(spec) - KEYS)}")
    return declared


def _parts(record: Record) -> dict:
    """The record's criteria by name: its parts, or its one headline statistic under the claim's one test name."""
    stat = record.statistic
    parts = (stat.details or {}).get("criteria") if stat is not None else None
    if parts:
        return parts
    claim = _registered(record.claim_id)
    names = list(claim.tests) if claim is not None else []
    return {names[0]: stat.to_dict()} if stat is not None and len(names) == 1 else {}


def testable(record: Record) -> bool:
    """A build that measured the claim: the record ran and no gate stopped it."""
    return record.status == "ok" and record.label != Verdict.NOT_TESTABLE.value and record.statistic is not None


def criterion(record: Record, name: str, spec: dict) -> PopulationCriterion | None:
    """The criterion as the lock declares it: the declaration's threshold and side, else the record's."""
    part = _parts(record).get(name) or {}
    details = part.get("details") or {}
    threshold = spec.get("threshold", details.get("threshold"))
    if isinstance(threshold, str):
        threshold = record.params.get(threshold)
    side = spec.get("side", details.get("direction"))
    if threshold is None or side is None:
        return None
    return PopulationCriterion(name, float(threshold), side, spec.get("scale", "identity"), spec.get("test", "t"))


def build_value(record: Record, name: str, spec: dict) -> float | None:
    """The build-level statistic of criterion ``name`` (less ``minus``, a key of the record's details), or None for
    a build that did not measure it."""
    if not testable(record):
        return None
    part = _parts(record).get(name)
    value = part.get("statistic") if part else None
    if value is None or not math.isfinite(value):
        return None
    if spec.get("minus"):
        value -= float((record.statistic.details or {})[spec["minus"]])
    return float(value)


def population(claim_id: str, records: list[Record], builds: list[str], role: str,
               alpha: float = 0.05) -> ClaimPopulation:
    """The population verdict of one claim from one record per build (same claim, variant and recipe)."""
    declared = declarations(claim_id)
    reported = sorted({n for r in records if testable(r) for n in _parts(r)})
    undeclared = [n for n in reported if declared.get(n) is None]
    results = []
    for name, spec in declared.items():
        if spec is None:
            continue
        found = next((c for c in (criterion(r, name, spec) for r in records if testable(r)) if c is not None), None)
        results.append(untested(name, len(records)) if found is None else
                       criterion_verdict([build_value(r, name, spec) for r in records], found, alpha))
    verdict = combine(results, alpha, undeclared)
    return ClaimPopulation(claim_id, builds, role, verdict, undeclared)


def power_plan(claim_id: str, records: list[Record], alpha: float = 0.05, power: float = 0.8) -> list[BuildsNeeded]:
    """The stage 1 power analysis of one claim over its development builds: per declared criterion, the builds its
    population test needs (CLAIMS.md revision 4: it fixes the number of confirmatory builds)."""
    plans = []
    for name, spec in declarations(claim_id).items():
        if spec is None:
            continue
        found = next((c for c in (criterion(r, name, spec) for r in records if testable(r)) if c is not None), None)
        if found is not None:
            plans.append(builds_needed([build_value(r, name, spec) for r in records], found, alpha, power))
    return plans
