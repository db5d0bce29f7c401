"""pytest-xdist scheduling by claim family (needs pytest-xdist, the test extra)."""

from __future__ import annotations

import re

from xdist.scheduler import LoadScopeScheduling

from ..claims.base import all_claims


def family_root(claim_id: str) -> str | None:
    """The claim whose cached training runs this claim (or a claim reusing it) shares, if any: the family that
    pytest-xdist keeps on one worker so the runs exist before the claims that reuse them."""
    users = {c.id: c.after for c in all_claims()}
    if claim_id not in users:
        return None
    roots = set(users[claim_id]) or ({claim_id} if any(claim_id in after for after in users.values()) else set())
    return min(roots) if roots else None


_CLAIM_NODE = re.compile(r"::test_(?P<claim>[A-Za-z0-9]+)\[(?P<tier>fast|slow)-(?P<model>.*)\]$")


def xdist_scope(nodeid: str) -> str:
    """The pytest-xdist work unit of a hypothesis test: its claim family on one tier and model (so the runs exist
    before the claims that reuse them run, on the same worker), or the test alone if its claim has no family."""
    node = _CLAIM_NODE.search(nodeid)
    root = family_root(node["claim"]) if node else None
    return "|".join((root, node["tier"], node["model"])) if root and node else nodeid


class FamilyScheduling(LoadScopeScheduling):
    """``--dist loadgroup`` for the hypothesis tests, grouped by node id rather than by ``xdist_group`` marks: on
    pytest 9.2 the marks silently stop grouping (pytest-xdist issue 1386), and a family split over two workers would
    train its shared runs twice or wait on the other worker's cache lock."""

    def _split_scope(self, nodeid: str) -> str:
        return xdist_scope(nodeid)
