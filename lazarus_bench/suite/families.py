"""pytest-xdist scheduling by claim family (needs pytest-xdist, the test extra)."""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

from .runner import xdist_scope


class FamilyScheduling(LoadScopeScheduling):
    """``--dist loadgroup`` for the hypothesis tests, grouped by node id rather than by ``xdist_group`` marks: on
    pytest 9.2 the marks silently stop grouping (pytest-xdist issue 1386), and a family split over two workers would
    train its shared runs twice or wait on the other worker's cache lock."""

    def _split_scope(self, nodeid: str) -> str:
        return xdist_scope(nodeid)
