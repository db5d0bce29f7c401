"""Claim families: the one scheduling rule of both engines. A claim that reuses another's cached training runs
(``Claim.after``) runs after it, on the same model, in the same worker: ``lazarus-bench run``'s process pool and
pytest-xdist (``FamilyScheduling``) group jobs by ``scope`` alike."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Sequence, TypeVar

from ..harness.registry import all_claims

T = TypeVar("T")


def family_root(claim_id: str) -> str | None:
    """The claim whose cached training runs this claim (or a claim reusing it) shares, if any."""
    users = {c.id: c.after for c in all_claims()}
    if claim_id not in users:
        return None
    roots = set(users[claim_id]) or ({claim_id} if any(claim_id in after for after in users.values()) else set())
    return min(roots) if roots else None


def scope(claim_id: str, tier: str, model: str) -> str:
    """The work unit of a (claim, tier, model) job: its family on that tier and model, or the claim alone."""
    return "|".join((family_root(claim_id) or claim_id, tier, model))


def depth(claim_id: str) -> int:
    """How many ``after`` hops lie between the claim and its family's root (the root runs first)."""
    after = {c.id: c.after for c in all_claims()}.get(claim_id, ())
    return 1 + max(map(depth, after)) if after else 0


def units(jobs: Sequence[T], key: Callable[[T], tuple[str, str, str]]) -> list[list[T]]:
    """``jobs`` grouped by ``scope`` (``key(job)`` = claim, tier, model), each group in dependency order (root first,
    then the given order)."""
    grouped: dict[str, list[T]] = {}
    for job in jobs:
        grouped.setdefault(scope(*key(job)), []).append(job)
    return [sorted(group, key=lambda j: depth(key(j)[0])) for group in grouped.values()]


_CLAIM_NODE = re.compile(r"::test_(?P<claim>[A-Za-z0-9]+)\[(?P<tier>fast|slow)-(?P<model>.*)\]$")


def xdist_scope(nodeid: str) -> str:
    """The pytest-xdist work unit of a hypothesis test: its family's ``scope``, or the test alone if its claim has
    no family (tests that are not hypothesis tests too)."""
    node = _CLAIM_NODE.search(nodeid)
    if not node or family_root(node["claim"]) is None:
        return nodeid
    return scope(node["claim"], node["tier"], node["model"])


def __getattr__(name: str):
    """``FamilyScheduling``, pytest-xdist's scheduler for the hypothesis tests, built on first use: xdist is a test
    extra, and the runner imports this module without it."""
    if name == "FamilyScheduling":
        return _scheduling_class()
    raise AttributeError(name)


@lru_cache(maxsize=None)
def _scheduling_class():
    from xdist.scheduler import LoadScopeScheduling

    class FamilyScheduling(LoadScopeScheduling):
        """``--dist loadgroup`` grouped by node id rather than by ``xdist_group`` marks: on pytest 9.2 the marks
        silently stop grouping (pytest-xdist issue 1386), and a family split over two workers would train its
        shared runs twice or wait on the other worker's cache lock."""

        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return FamilyScheduling
