"""H09: the H08 collapse survives the four fixes tried (balanced ops, entropy bonus, low LR, w = 0.9)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from .. import stats
from ..harness.base import ClaimContext, Outcome
from ..harness.registry import claim
from ..stats import ClaimStatistic
from .h08_grpo_dual_collapse import (
    DUAL_GRPO_GATES,
    GRPO_CONTROLS,
    GRPO_FAST,
    GRPO_PARAMS,
    GRPO_TESTS,
    chance_collapse_rate,
    collapse_claim,
    collapse_parts,
    collapse_words,
    grpo_before,
    grpo_curves,
    run_summary,
    runs_fitness,
    trained_run,
    with_untrained,
)

FIXES = ("balanced", "entropy", "low_lr", "cls_heavy")


def h09_statistic(by_fix: dict[str, list[dict]], chance: float, p: dict,
                  before: dict) -> tuple[ClaimStatistic, dict]:
    """Each fix tested as in H08 (untrained control included); Holm across the fixes, for the support and for
    the refutation p-values."""
    alpha = p["alpha"]
    per = {fix: collapse_claim(rows, chance, p, f"fraction of seeds collapsed ({fix})") for fix, rows in by_fix.items()}
    adjusted = dict(zip(per, stats.holm([s.p_value for s in per.values()])))
    adjusted_below = dict(zip(per, stats.holm([s.details["p_below_p_min"] for s in per.values()])))
    table, parts = {}, {}
    for fix, s in per.items():
        opposite = s.ci_high < p["min_collapse_rate"] and adjusted_below[fix] < alpha
        met = s.details["k"] >= p["min_collapse_rate"] * s.n - 1e-9
        v = stats.decide(met, float(adjusted[fix]), alpha, n=s.n, min_n=p["min_seeds"], opposite_shown=opposite)
        checked = with_untrained(replace(s, verdict=v.verdict, reason=v.reason), by_fix[fix], before)
        controlled = stats.combine(checked, collapse_parts(checked, by_fix[fix], before))
        table[fix] = {**s.to_dict(), "holm_p": float(adjusted[fix]), "holm_p_below": float(adjusted_below[fix]),
                      "verdict": str(controlled.verdict), "reason": controlled.reason,
                      "same_as_untrained": controlled.details["same_as_untrained"]}
        parts[fix] = controlled
    weakest = min(per, key=lambda f: (per[f].statistic, -adjusted[f]))
    statistic = stats.combine(replace(per[weakest], name=f"fraction of seeds collapsed, weakest fix ({weakest})",
                                      p_value=float(max(adjusted.values())),
                                      details={**per[weakest].details, "per_fix": table, "weakest_fix": weakest,
                                               "correction": "Holm across the fixes"}), parts)
    return statistic, table


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {fix: {"threshold": "min_collapse_rate", "side": "above"} for fix in FIXES}


@claim(
    id="H09",
    no_graded=("not built, as for H08: each fix's collapse rate is a count of seeds, so a planted share fixes the "
               "test's answer by construction; the positive control (GRPO on one operation's prompts) is trained"),
    title="The collapse survives the four fixes tried",
    statement="GRPO + dual-reward still collapses with balanced sampling, an entropy bonus, LR 2e-6, or w = 0.9.",
    source="seed 002 (Mode Collapse Fix Attempts)",
    criterion="each fix collapses as in H08, in rounds of its own steps (20, 20, 50, 100) within 10 rounds, "
               "untrained control included (balanced; + entropy 0.5; LR 2e-6; "
               "w = 0.9), Holm-corrected across the four",
    writeup="every fix still mode-collapsed ('subtract' for most)",
    params=dict(GRPO_PARAMS),
    tests={**GRPO_TESTS, "correction": "Holm across the four fixes"},
    fast=GRPO_FAST,
    training=True,
    default_seeds={"fast": 1, "slow": 5},
    gates=DUAL_GRPO_GATES,
    controls=GRPO_CONTROLS,
)
def measure_h09(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    before, layers, lens_before = grpo_before(ctx)
    chance = chance_collapse_rate(before["labels"], collapse_words(before["labels"]), p)
    total = len(FIXES) * len(ctx.seeds)
    by_fix = {fix: [trained_run(ctx, fix, seed, before, i * len(ctx.seeds) + j, total)
                    for j, seed in enumerate(ctx.seeds)] for i, fix in enumerate(FIXES)}
    statistic, table = h09_statistic(by_fix, chance, p, before)
    statistic = replace(statistic, details={**statistic.details, "n_seeds": len(ctx.seeds),
                                            "test": ctx.test("collapsed"), "correction": ctx.test("correction"),
                                            "before_training": run_summary(before)})
    curves = grpo_curves(by_fix, layers, lens_before)
    ours = "; ".join(
        f"{fix}: collapsed {t['details']['k']}/{t['n']} (Holm p={t['holm_p']:.3g}), modes "
        f"{dict(Counter(r['mode_word'] for r in by_fix[fix]))}, steps {[r['steps'] for r in by_fix[fix]]}"
        for fix, t in table.items()
    ) + f"; chance {chance:.3f}; before training {'collapsed' if before['collapsed'] else 'not collapsed'}"
    samples = [run_summary(r) for runs in by_fix.values() for r in runs]
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves,
                   fitness=runs_fitness([r for runs in by_fix.values() for r in runs], before),
                   extra={"chance_collapse_rate": chance, "per_fix": table})
