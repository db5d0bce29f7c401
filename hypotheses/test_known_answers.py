"""Fast tier with known answers: every graded control's strongest plant must be decided as present on the micro zoo.

The claim tests in ``test_claims.py`` pass whatever a micro model's verdict is, since its effects say little; these
cannot: a claim whose decision rule were inverted would call its own strongest plant absent and fail here. A plant the
micro model cannot carry skips with the reason."""

from __future__ import annotations

import pytest

from lazarus_bench.harness.base import ClaimContext, ControlUnavailable, NotTestable, model_info
from lazarus_bench.harness.registry import all_claims
from lazarus_bench.suite.known import strongest_plant_verdict
from lazarus_bench.suite.runner import ModelPool

GRADED = [(c, g) for c in all_claims() for g in c.graded]
MODELS = ("zoo-micro:base", "zoo-micro:moe")  # the first a claim applies to carries its plant
FAST_TIER_CANNOT_DECIDE = {  # the fast tier trains one seed for a few steps: these plants read INCONCLUSIVE there
    "H04": "its plant interpolates H05a's delta, which the fast tier trains for 4 dual-reward steps on one seed",
    "H05a": "one seed of 4 dual-reward steps: a seed-level sign test cannot be significant over one seed",
    "H07": "one seed of 3 GRPO steps: a seed-level test cannot be significant over one seed",
    "H11": "one SFT seed: a seed-level test cannot be significant over one seed",
}


@pytest.mark.parametrize("claim,graded", GRADED, ids=[f"{c.id}:{g.name}" for c, g in GRADED])
def test_the_strongest_plant_is_decided_present(claim, graded, micro_zoo, tmp_path):
    if claim.id in FAST_TIER_CANNOT_DECIDE:
        pytest.skip(f"{claim.id}: {FAST_TIER_CANNOT_DECIDE[claim.id]}; its known answer is the slow tier's")
    _check_plant(claim, graded, tmp_path)


def _check_plant(claim, graded, tmp_path):
    pool = ModelPool()
    for model_id in MODELS:
        handle = pool.get(model_id)
        if claim.applies(model_info(handle)) is None:
            break
    else:
        pytest.skip(f"{claim.id} applies to none of {', '.join(MODELS)}")
    seeds = list(range(claim.default_seeds["fast"])) if claim.training else []
    ctx = ClaimContext(claim, model_info(handle), tier="fast", seeds=seeds, params=claim.parameters("fast"),
                       cache_dir=tmp_path, shared=handle)
    try:
        verdict = strongest_plant_verdict(claim, graded, ctx)
    except (ControlUnavailable, NotTestable) as exc:
        pytest.skip(f"{claim.id} on {model_id}: the plant at {graded.strengths[-1]:g} cannot be carried: {exc}")
    assert verdict == graded.effect, (f"{claim.id} on {model_id}: its plant at {graded.strengths[-1]:g} "
                                      f"{graded.units} read {verdict}, not {graded.effect}")


def test_an_inverted_rule_fails_its_known_answer(micro_zoo, tmp_path):
    """H03 with its peak part's decision inverted (SUPPORTED and REFUTED swapped) calls its own strongest plant
    absent, so the known-answer test above would fail on it."""
    from dataclasses import replace

    from lazarus_bench.harness.base import Outcome
    from lazarus_bench.harness.registry import get_claim
    from lazarus_bench.stats import Verdict

    h03 = get_claim("H03")
    swap = {Verdict.SUPPORTED: Verdict.REFUTED, Verdict.REFUTED: Verdict.SUPPORTED}

    def inverted(ctx):
        part = h03.reader("peak")(ctx).parts["peak"]
        flipped = replace(part, verdict=swap.get(Verdict(part.verdict), part.verdict))
        return Outcome(statistic=flipped, ours="", parts={"peak": flipped})

    (graded,) = h03.graded
    _check_plant(h03, graded, tmp_path)
    with pytest.raises(AssertionError, match="read REFUTED, not SUPPORTED"):
        _check_plant(replace(h03, readers={"peak": inverted}), graded, tmp_path)
