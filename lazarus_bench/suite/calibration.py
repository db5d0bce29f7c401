"""The report's calibration section: detection against planted strength, false positives on nulls that can fire,
the single controls that count, and the sanity checks (by construction) listed apart."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from tabulate import tabulate

from ..harness.controls import GradedRun, measured_verdicts
from ..stats import Verdict, wilson_interval
from . import plots
from .records import Record
from .summary import model_key


def _counted(current: int, off_lock: int) -> str:
    """Which measured records the figures below count: only those under the lock in force."""
    if not off_lock:
        return f"The figures below count all {current} measured records, every one under the lock in force."
    return (f"The figures below count the {current} measured records under the lock in force; the {off_lock} others "
            "(marked (†) in the verdict matrix) are in the tables but not counted.")


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _share(k: int, n: int) -> str:
    if not n:
        return "none run"
    low, high = wilson_interval(k, n)
    return f"{k}/{n} = {k / n:.2f} [{low:.2f}, {high:.2f}]"


def pooled_detection(runs: list[GradedRun], which: str) -> tuple[int, int]:
    """Detections and replicates pooled over graded runs at each run's claimed strength (``which="claimed"``) or at
    its threshold (``"threshold"``; runs whose threshold is not one of their strengths are left out)."""
    k = n = 0
    for run in runs:
        strength = run.claimed if which == "claimed" else run.threshold
        rate = None if strength is None else run.rate_at(strength)
        if rate is not None:
            k += round(rate * run.replicates)
            n += run.replicates
    return k, n


def _graded_rows(records: list[Record]) -> list[dict]:
    rows = []
    for r in records:
        measured = measured_verdicts(r.statistic) if r.statistic is not None else {}
        for g in r.graded or ():
            curve = ", ".join(f"{s:g}: {'not plantable' if k is None else f'{k}/{g.replicates}'}"
                              for s, k in zip(g.strengths, g.detected))
            mde = g.mde
            verdict = ("not built: " + g.reason if not g.built else
                       "INSENSITIVE (no strength reaches 80%)" if mde is None else
                       "powered" if mde <= g.claimed else
                       "below the claimed effect; the verdict does not rest on it" if not g.decides(measured) else
                       "UNDERPOWERED")
            rows.append({"claim": r.claim_id, "model": r.model.id, "control": g.name, "units": g.units,
                         "detected per strength": curve or "-", "empirical MDE": _g(mde),
                         "writeup's effect": _g(g.writeup), "threshold": _g(g.threshold),
                         "claimed (must be seen)": _g(g.claimed), "power": verdict})
    return rows


def _spread(values) -> str:
    """Median [5th, 95th percentile] of a null's headline statistics: where its draws sit."""
    if not len(values):
        return "-"
    low, mid, high = np.percentile(np.asarray(values, dtype=float), [5, 50, 95])
    return f"{mid:.3g} [{low:.3g}, {high:.3g}]"


def _threshold(r: Record) -> str:
    """The headline criterion's threshold (a rate's p_min, a rank's top fraction) and its claimed side where the
    statistic states one, else "-"."""
    details = r.statistic.details if r.statistic is not None else {}
    value = next((details[k] for k in ("threshold", "p_min", "top_fraction") if k in details), None)
    if not isinstance(value, (int, float)):
        return "-"
    return f"{details['direction']} {value:g}" if details.get("direction") else f"{value:g}"


def _null_rows(records: list[Record]) -> list[dict]:
    rows = []
    for r in records:
        for n in r.nulls or ():
            rows.append({"claim": r.claim_id, "model": r.model.id, "null": n.name,
                         "false positives": _share(n.flagged, n.replicates) if n.built else "not built: " + n.reason,
                         "nominal alpha": f"{n.alpha:g}",
                         "excess p (binomial vs alpha)": _g(n.excess_p()) if n.built else "-",
                         "null's statistic: median [5%, 95%]": _spread(n.statistics) if n.built else "-",
                         "real model's statistic": _g(r.statistic.statistic) if r.statistic is not None else "-",
                         "threshold": _threshold(r)})
    return rows


def _by_claim(counts: list[tuple[str, int, int]]) -> str:
    """Counts pooled per claim ("H01 8/360 = 0.02 [...]; ..."); claims with no replicates left out; "" with none."""
    pooled: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for claim, k, n in counts:
        pooled[claim][0] += k
        pooled[claim][1] += n
    return "; ".join(f"{claim} {_share(k, n)}" for claim, (k, n) in sorted(pooled.items()) if n)


def null_rates_by_claim(records: list[Record]) -> str:
    """False positives pooled per claim over its built nulls ("H01 8/360 = 0.02 [...]; ..."), "" with none."""
    return _by_claim([(r.claim_id, n.flagged, n.replicates) for r in records for n in r.nulls or () if n.built])


# Claims whose graded strengths are in the units of the statistic their verdict reads, a plant no other conjunct sees:
# a replicate planted below the threshold is a draw from the criterion's null, and one on it the null's edge, where
# alpha bounds the test's size. Left out: H01 (its class-argmax conjunct sees any plant), H11 (strength scaled to a
# mean, criterion reads a maximum), H10 (strength in null SDs, criterion a Holm-adjusted empirical p).
IN_STATISTIC_UNITS = ("H03", "H05a", "H05b", "H07", "H14")


def boundary_size(records: list[Record]) -> tuple[int, int, str]:
    """Detections pooled over the ``IN_STATISTIC_UNITS`` claims' graded replicates at their threshold (H03 has no
    strength there): the rate at which the declared test calls a value on its own threshold significant (its size),
    and the same per claim."""
    counts = [(r.claim_id, *pooled_detection([g], "threshold")) for r in records if r.claim_id in IN_STATISTIC_UNITS
              for g in r.graded or () if g.built]
    return sum(c[1] for c in counts), sum(c[2] for c in counts), _by_claim(counts)


def _below(run: GradedRun) -> tuple[int, int]:
    """Detections and replicates at the strengths strictly below a built run's threshold (the criterion's null)."""
    if run.threshold is None:
        return 0, 0
    shown = [k for s, k in zip(run.strengths, run.detected) if s < run.threshold and k is not None]
    return sum(shown), len(shown) * run.replicates


def null_side(records: list[Record]) -> tuple[int, int, str]:
    """Detections pooled over the ``IN_STATISTIC_UNITS`` claims' graded replicates planted below their threshold,
    where every detection is a false positive of the criterion; per claim with the strengths they were planted at."""
    counts: dict[str, list] = defaultdict(lambda: [0, 0, set()])
    for r in (r for r in records if r.claim_id in IN_STATISTIC_UNITS):
        for g in (g for g in r.graded or () if g.built):
            k, n = _below(g)
            counts[r.claim_id][0] += k
            counts[r.claim_id][1] += n
            counts[r.claim_id][2].update(s for s in g.strengths if g.threshold is not None and s < g.threshold)
    parts = [f"{claim} at {', '.join(f'{s:g}' for s in sorted(strengths))}: {_share(k, n)}"
             for claim, (k, n, strengths) in sorted(counts.items()) if n]
    return sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values()), "; ".join(parts)


def without_rate(records: list[Record]) -> str:
    """Claims with a verdict (not NOT TESTABLE) but no false-positive estimate (no built null, no graded replicate
    below or on the threshold of an ``IN_STATISTIC_UNITS`` claim), each with the single negative checks it has
    instead and how often they fired; "" with none."""
    shown = [r for r in records if r.verdict != Verdict.NOT_TESTABLE]
    with_rate = {r.claim_id for r in shown if any(n.built for n in r.nulls or ())}
    with_rate |= {r.claim_id for r in shown if r.claim_id in IN_STATISTIC_UNITS
                  for g in r.graded or () if g.built and (_below(g)[1] or pooled_detection([g], "threshold")[1])}
    n_records: Counter = Counter()
    checks: dict[str, Counter] = defaultdict(Counter)
    for r in (r for r in shown if r.claim_id not in with_rate):
        n_records[r.claim_id] += 1
        negatives = (c for c in r.controls if c.kind == "negative" and c.built)
        checks[r.claim_id].update((c.name, c.sanity, c.detected) for c in negatives)
    parts = []
    for claim, n in sorted(n_records.items()):
        counts = checks[claim]
        found = [f"'{name}'{' (a sanity check)' if sanity else ''} flagged {counts[name, sanity, True]}/"
                 f"{counts[name, sanity, True] + counts[name, sanity, False]}"
                 for name, sanity in sorted({(name, sanity) for name, sanity, _ in counts})]
        parts.append(f"{claim} ({n} record{'s' * (n != 1)}; " + ("; ".join(found) or "no negative control") + ")")
    return "; ".join(parts)


def absence_claim(run: GradedRun) -> bool:
    """Whether the verdict rests on the threshold (a claim that an effect is absent), not on the writeup's effect."""
    return run.threshold is not None and run.claimed == run.threshold


def threshold_detection_by_claim(records: list[Record], absent: bool) -> str:
    """Graded replicates detected at the threshold, per claim, for claims that an effect is absent (``absent``) or
    present: at the threshold a value counts against the claim, so the two sides expect opposite rates."""
    return _by_claim([(r.claim_id, *pooled_detection([g], "threshold")) for r in records for g in r.graded or ()
                      if g.built and absence_claim(g) == absent])


def _single_rows(records: list[Record], sanity: bool) -> list[dict]:
    rows = []
    for r in records:
        for c in (c for c in r.controls if c.sanity == sanity):
            state = ("not built: " + c.reason if not c.built else
                     ("detected" if c.detected else "MISSED") if c.kind == "positive" else
                     ("FLAGGED" if c.detected else "quiet"))
            rows.append({"claim": r.claim_id, "model": r.model.id, "protocol": r.protocol, "control": c.name,
                         "kind": c.kind, "outcome": f"{state} ({c.verdict})" if c.built else state})
    return rows


def plot_name(claim_id: str) -> str:
    return f"calibration__{claim_id}.png"


def plot_detection(records: list[Record], out_dir: Path) -> list[str]:
    """One PNG per claim: detection rate against planted strength, a line per model, the threshold and the writeup's
    effect marked; returns the paths relative to the report."""
    by_claim: dict[str, list[tuple[Record, GradedRun]]] = defaultdict(list)
    for r in records:
        for g in (g for g in r.graded or () if g.built):
            by_claim[r.claim_id].append((r, g))
    paths = []
    for claim_id, runs in sorted(by_claim.items()):
        fig, ax = plots.figure()
        for r, g in runs:
            shown = [(s, rate) for s, rate in zip(g.strengths, g.rates) if rate is not None]
            ax.plot(*zip(*shown), marker="o", markersize=3, label=f"{r.model.id} ({r.protocol})")
        g = runs[0][1]
        for value, label, style in ((g.threshold, "threshold", "--"), (g.writeup, "writeup", ":")):
            if value is not None:
                ax.axvline(value, linestyle=style, color="grey", label=f"{label} {value:g}")
        ax.axhline(0.8, color="red", alpha=0.3, label="80% (MDE)")
        if min(g.strengths) > 0 and max(g.strengths) / min(g.strengths) >= 20:
            ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.05)
        paths.append(plots.save(fig, ax, out_dir, plot_name(claim_id), xlabel=g.units,
                                ylabel="share of replicates detected", title=f"{claim_id}: {g.name}", legend_size=6))
    return paths


def section(records: list[Record], claims: dict, out_dir: Path, lock: dict[str, str] | None) -> list[str]:
    """The calibration section of REPORT.md; its headline figures count only records under the lock in force (an
    older record may hold a by-construction control not yet marked as such), every record while none is (stage 1)."""
    measured = sorted((r for r in records if r.status == "ok"),
                      key=lambda r: (r.claim_id, model_key(r.model.id), r.protocol))
    if not measured:
        return []
    current = [r for r in measured if lock is None or (r.prereg or {}).get("hash") == lock.get(r.claim_id)]
    graded = [g for r in current for g in r.graded or () if g.built]
    nulls = [n for r in current for n in r.nulls or () if n.built]
    counted = [c for r in current for c in r.controls if c.built and not c.sanity]
    sanity = [c for r in current for c in r.controls if c.built and c.sanity]
    positives = [c for c in counted if c.kind == "positive"]
    negatives = [c for c in counted if c.kind == "negative"]
    at_claimed, at_threshold = pooled_detection(graded, "claimed"), pooled_detection(graded, "threshold")
    flagged = sum(n.flagged for n in nulls), sum(n.replicates for n in nulls)
    boundary, below = boundary_size(current), null_side(current)
    without = sorted(c for c in claims if not claims[c].graded)
    lines = [
        "## Calibration", "",
        "What the harness can see, from known-answer runs of each claim's own measure (CLAIMS.md revision 3). "
        "Graded positive controls plant the effect at strengths frozen in the lock; the empirical MDE is the smallest "
        "strength detected in >= 80% of replicates (and at every stronger one). A verdict whose claimed effect lies "
        "below it is INCONCLUSIVE (UNDERPOWERED) where seeing that effect would have changed the verdict (power bounds "
        "what a run could miss: not a run that saw the effect, nor one another conjunct refuted); one whose graded "
        "control never reaches 80% is INCONCLUSIVE "
        "(INSENSITIVE). Nulls remove the effect with the real measurement's variance; a null that fires more often "
        "than its alpha (exact binomial, p < 0.05) makes the verdict INCONCLUSIVE (not specific). " + _counted(
            len(current), len(measured) - len(current)), "",
        f"- **Sensitivity at the claimed effect** (graded replicates detected at the strength each verdict rests on: "
        f"the writeup's effect, or the threshold of a claim that an effect is absent): {_share(*at_claimed)}.",
        f"- **Detection at the criterion's threshold**: {_share(*at_threshold)} pooled, which mixes opposite "
        "expectations, so read it by claim (values on the threshold count against both sides of the sign test). "
        "Where the claim is that an effect is present, the threshold is the edge of its null: a test that holds its "
        "size detects a plant there at most alpha of the time, so this is the test's size, not its power: "
        f"{threshold_detection_by_claim(current, False) or 'none'}. Where the claim is that an effect is absent, it "
        "depends on what the criterion reads: at most alpha where a strength is in the units of the statistic it "
        "reads, unless another conjunct of the claim sees the plant (a class argmax above chance refutes 'no "
        "operation words' at any strength); nearly always where it reads a maximum over prompts or layers of a "
        "plant scaled by its mean (the largest value then lies above the threshold); less where the threshold is "
        "below the empirical MDE: "
        f"{threshold_detection_by_claim(current, True) or 'none'}.",
        f"- **Size at the boundary**: {_share(*boundary[:2])} (nominal alpha 0.05): graded replicates planted exactly "
        "at the threshold, in the units of the statistic the verdict reads, where nothing else in the claim sees the "
        f"plant (by claim: {boundary[2] or 'none'}). A value on the threshold is the least favourable case of the "
        "null, so this is the false-positive rate alpha bounds; the nulls below sit farther from it.",
        f"- **False positives just below the threshold**: {_share(*below[:2])} (nominal alpha 0.05): graded "
        "replicates of the same claims planted below the threshold, where the criterion's effect is absent, so every "
        f"detection is a false positive ({below[2] or 'none'}). The nearest null draws to the boundary the harness "
        "has; H01, H10 and H11 stay out because their plant is not in the units the verdict reads (a class argmax "
        "above chance sees any plant; a cosine against a criterion in null SDs; a mean-scaled plant against a "
        "maximum).",
        f"- **False-positive rate on nulls that can fire**: {_share(*flagged)} (nominal alpha 0.05); by claim: "
        f"{null_rates_by_claim(current) or 'none'}. Alpha bounds a test's false-positive rate where the true effect "
        "sits on the criterion's threshold; a null plants no effect, so its rate is at most alpha and lower the "
        "farther its draws sit from the threshold (the table below gives each null's statistics beside the "
        "threshold and the real model's). Power is what the graded curves measure, not this rate.",
        f"- **Single controls that count**: positives detected "
        f"{_share(sum(c.detected for c in positives), len(positives))}; negatives flagged "
        f"{_share(sum(c.detected for c in negatives), len(negatives))}.",
        f"- **Sanity checks** (detected or quiet by construction: a read-out at the planted token, a row set equal to "
        f"its target, a learning rate of 0; not counted above): {sum(bool(c.passed) for c in sanity)}/{len(sanity)} "
        "gave their known answer.",
        "- **Claims with a verdict but no false-positive rate** (no null that can fire, no plant on or below the "
        "threshold in the statistic's units): "
        f"{without_rate(current) or 'none'}. A single negative run per record is a check, not a rate: these "
        "verdicts' false-positive rate rests on the declared test's nominal alpha alone.",
        "- **Claims without a graded control**: " + ("; ".join(
            f"{c} ({claims[c].no_graded or 'none declared yet'})" for c in without) or "none") + ".", "",
    ]
    rows = _graded_rows(measured)
    if rows:
        lines += ["### Detection against planted strength", "", tabulate(rows, headers="keys", tablefmt="github"), ""]
        lines += [f"![{Path(p).stem}]({p})" for p in plot_detection(measured, out_dir)] + [""]
    for title, rows in (("### Nulls that can fire", _null_rows(measured)),
                        ("### Single controls (counted)", _single_rows(measured, sanity=False)),
                        ("### Sanity checks (by construction, not counted)", _single_rows(measured, sanity=True))):
        if rows:
            lines += [title, "", tabulate(rows, headers="keys", tablefmt="github"), ""]
    return lines
