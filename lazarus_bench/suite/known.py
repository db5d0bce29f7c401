"""Known answers (CLAIMS.md revision 4, issue 71): each claim's own graded plant at its strongest strength, read by
the claim's real decision path, must get the verdict that reads "present". The fast tier asserts it on the micro zoo,
so an inverted rule fails there instead of passing whatever the verdict."""

from __future__ import annotations

from ..harness.base import Claim, ClaimContext
from ..harness.controls import GradedControl, measured_verdicts
from ..stats import Verdict


def strongest_plant_verdict(claim: Claim, graded: GradedControl, ctx: ClaimContext) -> Verdict:
    """The verdict of the part ``graded`` reads (the headline when it reads none) with its effect planted at its
    strongest strength, replicate 0; raises ControlUnavailable or NotTestable when the model cannot carry it."""
    planted = graded.build(ctx, graded.strengths[-1], 0)
    return measured_verdicts(claim.reader(graded.part)(planted).statistic)[graded.part]
