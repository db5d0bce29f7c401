"""Fast tier with known answers: every graded control's strongest plant must be decided as present on the micro zoo.

The claim tests in ``test_claims.py`` pass whatever a micro model's verdict is, since its effects say little; these
cannot: a claim whose decision rule were inverted would call its own strongest plant absent and fail here. A plant the
micro model cannot carry skips with the reason. The claims whose plants need several trained seeds get their known
answers from canned statistics passed through their real decision path."""

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


def _slow_ctx(claim_id: str, handle) -> ClaimContext:
    from lazarus_bench.harness.registry import get_claim

    claim = get_claim(claim_id)
    return ClaimContext(claim, model_info(handle), tier="slow", seeds=list(range(5)), params=claim.parameters("slow"),
                        shared=handle)


def _h04(ctx, present: bool):
    """The rank part on bootstrap percentiles all inside the top 1% (present) or far outside it."""
    import numpy as np

    from lazarus_bench.claims.h04_probe_direction_vocab import outside_top_part, side_tests

    p, pct = ctx.params, 0.002 if present else 0.3
    boot = np.full(200, pct) + np.linspace(0.0, 0.001, 200)
    return outside_top_part("multiply", int(pct * 1024), 1024, side_tests(boot, p["alpha"], p["top_fraction"]), 24,
                            p["top_fraction"])


def _h05a(ctx, present: bool):
    """Five seeds that name the operation on 8/8 prompts at 60% of a 90% ceiling (present), or on 2/8 at 1%."""
    from lazarus_bench.claims.h05_dual_reward_names_op import h05a_verdict

    right, prob = (8, 0.54) if present else (2, 0.01)
    samples = [{"n_prompts": 8, "correct_after": right, "vocab_prob_after": prob + 0.001 * s,
                "restricted_prob_after": prob} for s in range(5)]
    return h05a_verdict(samples, ctx.params, ctx.claim.tests, {"reached": 0.9}, {"scale_free": 0.05})[0]


def _h07(ctx, present: bool):
    """Five GRPO seeds whose lens puts an op word at 30% (present) or 0.01% against a T' of 1%."""
    from lazarus_bench.claims.h07_grpo_no_classifier import lens_part

    return lens_part([(0.3 if present else 1e-4) + 1e-3 * s for s in range(5)], {"scale_free": 0.01}, ctx)


def _h11(ctx, present: bool):
    """Five SFT seeds whose task-token peak reaches 50% (present) or 1% against a T' of 10%."""
    from types import SimpleNamespace

    from lazarus_bench.claims.h11_sft_task_tokens import H11Fit, h11_parts

    steps, peak = [0, 100], 0.5 if present else 0.01
    runs = [{"seed": s, "by_step": {k: [{"peak": peak * (k > 0) + 1e-3 * s, "peak_layer": 4}] for k in steps}}
            for s in range(5)]
    fit = H11Fit(p=ctx.params, handle=SimpleNamespace(n_layers=8), runs=runs, steps=steps, near=[3, 4, 5],
                 base=1e-3, levels={"mean": {"random_level": 1e-4}}, ceiling={"scale_free": 0.1})
    return h11_parts(fit, ctx)["stays_below"]


CANNED = {"H04": _h04, "H05a": _h05a, "H07": _h07, "H11": _h11}


@pytest.mark.parametrize("claim_id", sorted(CANNED))
def test_canned_statistics_get_their_known_verdict(claim_id, micro_zoo):
    """The claims whose plants the fast tier cannot decide (one seed, a few steps) get their known answer on canned
    statistics through their real decision path: the effect present reads the graded control's verdict, absent the
    opposite one."""
    from lazarus_bench.harness.registry import get_claim
    from lazarus_bench.stats import Verdict

    ctx = _slow_ctx(claim_id, ModelPool().get("zoo-micro:base"))
    (graded,) = get_claim(claim_id).graded
    absent = Verdict.SUPPORTED if graded.effect == Verdict.REFUTED else Verdict.REFUTED
    assert Verdict(CANNED[claim_id](ctx, True).verdict) == graded.effect
    assert Verdict(CANNED[claim_id](ctx, False).verdict) == absent
