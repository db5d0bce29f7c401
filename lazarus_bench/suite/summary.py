"""The report's first page and its verdicts across zoo builds: one row per claim (population verdict, builds
testable, each build's verdict, effect, empirical MDE, what could not be tested) and a claims x builds verdict map;
then each claim's builds side by side with the between- and within-build variance where the statistic pools."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

from tabulate import tabulate

from ..errors import LazarusError
from ..harness.base import bound_text
from ..models import model_fingerprint
from ..stats import Verdict, build_variance
from ..stats.population import MIN_CONFIRMATORY
from ..zoo.registry import build_info, split_build
from . import plots
from .population import ClaimPopulation, population, power_plan
from .records import Record

VERDICT_MAP = "verdict_map.png"
COLOURS = {"SUPPORTED": "#4daf4a", "REFUTED": "#e41a1c", "INCONCLUSIVE": "#ffbf00", "NOT TESTABLE": "#bdbdbd",
           "n/a": "#ffffff", "ERROR": "#000000"}
BUILD_DEPENDENT = "build-dependent"


def model_key(model_id: str) -> tuple[str, int, str]:
    """Sort key for model ids: each model's root (development) build first, then its other builds in seed order
    ('zoo:base' < 'zoo:base@s4' < 'zoo:base@s12'), where string order would put s12 before s4."""
    name, _, build = model_id.partition("@")
    return name, len(build), build


def zoo_parts(model_id: str) -> tuple[str, str] | None:
    """(prefix, name) of a zoo model id ('zoo:base@s4' -> ('zoo', 'base@s4')); None for any other model."""
    prefix, _, name = model_id.rpartition(":")
    return (prefix, name) if prefix in ("zoo", "zoo-micro") else None


def variant_build(record: Record) -> tuple[str, str]:
    """(variant, build): 'zoo:base@s2' -> ('zoo:base', 's2'); the root build is 's<seed>' from the record, or from
    the shipped manifest when a record made before records carried it ran on the shipped model's very weights, else
    'root'; a family member's label in 'population:NAME' (``run --population``); '' for any other model outside the
    zoo (its own variant, one build)."""
    family = (record.model.build or {}).get("population")
    if family:
        return f"population:{family}", record.model.build.get("label") or record.model.id
    parts = zoo_parts(record.model.id)
    if parts is None:
        return record.model.id, ""
    prefix, name = parts
    kind, build = split_build(name)
    seed = (record.model.build or {}).get("seed")
    if build is None and seed is None:
        seed = _shipped_seed(record.model.id, record.model.hash)
    return f"{prefix}:{kind}", build or (f"s{seed}" if seed is not None else "root")


def _shipped_seed(model_id: str, model_hash: str) -> int | None:
    """The seed of the shipped build of ``model_id`` if its content hash is ``model_hash``, else None."""
    try:
        same = model_fingerprint(model_id) == model_hash
    except (LazarusError, OSError):
        return None
    return (build_info(model_id) or {}).get("seed") if same else None


RECIPE_WEIGHT_DECAY = 0.1  # the zoo recipe's base weight decay (SIZES["default"], v3); older builds differ


def role(record: Record) -> str:
    """The build's role from the record (and its base's weight decay where a record gives it: the recipe variant);
    the zoo's root build is the development build by definition."""
    parts = zoo_parts(record.model.id)
    default = "development" if parts and split_build(parts[1])[1] is None else "-"
    decay = recipe(record)
    named = (record.model.build or {}).get("role") or default
    return named + (f", weight decay {decay:g}" if decay != RECIPE_WEIGHT_DECAY else "")


UNIT_VALUES = ("values", "gain_per_cell")  # where a headline statistic keeps the per-unit values it averages


def _values(record: Record) -> list[float] | None:
    details = (record.statistic.details or {}) if record.statistic is not None and record.status == "ok" else {}
    values = next((details[k] for k in UNIT_VALUES if details.get(k)), None)
    return [float(v) for v in values] if values else None


def robust(records: list[Record]) -> dict:
    """The verdict across builds of one variant: each build's, the agreement, and the robust verdict (every build
    agrees), else INCONCLUSIVE, build-dependent."""
    labels = [r.label for r in records]
    counts = Counter(labels)
    top, count = counts.most_common(1)[0]
    split = ", ".join(f"{label} {k}" for label, k in sorted(counts.items()))
    out = {"builds": [variant_build(r)[1] for r in records], "verdicts": labels, "k": len(records),
           "agreement": f"{top} {count}/{len(records)}" if len(counts) == 1 else f"split: {split} of {len(records)}"}
    if len(records) == 1:
        return {**out, "verdict": top, "reason": "one build: not replicated across builds"}
    if count == len(records):
        out.update(verdict=top, reason=f"every build agrees ({count}/{count})")
    else:
        per = ", ".join(f"{b or r.model.id}: {lab}" for b, lab, r in zip(out["builds"], labels, records))
        out.update(verdict="INCONCLUSIVE", reason=f"{BUILD_DEPENDENT} ({per})")
    return out


def pooled(records: list[Record]) -> dict | None:
    """Variance components between and within builds, when two builds or more measured and each recorded per-unit
    values (a NOT TESTABLE build's values are no effect)."""
    values = [_values(r) for r in records if _measured(r)]
    return build_variance(values) if len(values) >= 2 and all(values) else None


def groups(records: list[Record]) -> dict[tuple[str, str], list[Record]]:
    """Corrected-protocol records that ran (not skipped), by (claim, variant): the root build first, the others in
    seed order."""
    out: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        if r.protocol == "corrected" and r.status != "skipped":
            out[(r.claim_id, variant_build(r)[0])].append(r)
    for key in out:
        out[key].sort(key=lambda r: model_key(r.model.id))
    return dict(out)


def recipe(record: Record) -> float:
    """The base weight decay a record's build was pretrained with: builds that share it are one recipe's draws."""
    return float((record.model.build or {}).get("weight_decay", RECIPE_WEIGHT_DECAY))


def by_recipe(records: list[Record]) -> str:
    """The verdict within each recipe that has two builds or more ("weight decay 0.1 (s8, s9, s12): REFUTED 3/3"):
    agreement among draws of one recipe, apart from agreement across recipes."""
    recipes: dict[float, list[Record]] = defaultdict(list)
    for r in records:
        recipes[recipe(r)].append(r)
    parts = []
    for decay, rs in sorted(recipes.items()):
        if len(rs) >= 2:
            v = robust(rs)
            parts.append(f"weight decay {decay:g} ({', '.join(variant_build(r)[1] for r in rs)}): {v['verdict']} "
                         f"({v['agreement']})")
    return "; ".join(parts) or "-"


def home(claim_id: str, grouped: dict[tuple[str, str], list[Record]]) -> str | None:
    """The variant a claim is reported on: a base model where it ran on one, else the first it ran on (MoE claims
    on the MoE variant); derived variants are other models, never replicates of the base."""
    variants = sorted((v for c, v in grouped if c == claim_id), key=lambda v: (-len(grouped[(claim_id, v)]), v))
    bases = [v for v in variants if grouped[(claim_id, v)][0].model.info.get("kind") == "base"]
    return (bases or variants or [None])[0]


def _num(value) -> str:
    return "-" if value is None or value != value else f"{value:.3g}"


def interval(low, high) -> str:
    """A CI as "[low, high]", or "[no interval]" where the claim defines none (e.g. every resampled cell equal)."""
    if low is None or high is None or low != low or high != high:
        return "[no interval]"
    return f"[{_num(low)}, {_num(high)}]"


def _measured(record: Record) -> bool:
    """Whether the record's statistic is the claim's own: a NOT TESTABLE record's is the gate that stopped it."""
    return record.statistic is not None and record.status == "ok" and record.label != str(Verdict.NOT_TESTABLE)


def _effect(rs: list[Record]) -> str:
    components = pooled(rs)
    measured = [r for r in rs if _measured(r)]
    if not measured:
        return "-"
    name = measured[0].statistic.name
    if components:
        return (f"{name} = {_num(components['grand_mean'])} "
                f"{interval(components['ci_low'], components['ci_high'])} over {len(measured)} builds")
    per_build = [(variant_build(r)[1], f"{_num(r.statistic.statistic)} "
                                       f"{interval(r.statistic.ci_low, r.statistic.ci_high)}")
                 for r in measured]
    if len(rs) == 1:
        return f"{name} = {per_build[0][1]}"
    return f"{name} = " + _per_build(per_build, lambda b, v: f"{v} ({b})")


def _build_outcome(record: Record) -> str:
    """One build's verdict and statistic; for NOT TESTABLE, the gate that stopped it and its value."""
    if record.statistic is None:
        return record.label
    if not _measured(record):
        return f"{record.label} ({record.statistic.name} {_num(record.statistic.statistic)})"
    return f"{record.label} {_num(record.statistic.statistic)}"


def _mde(rs: list[Record]) -> str:
    """Each graded control's empirical MDE on each build, beside the writeup's effect (and the threshold, where a claim
    of absence rests on it), in the control's units."""
    by_name: dict[str, list[tuple[str, object]]] = defaultdict(list)
    for r in rs:
        for g in r.graded or ():
            if g.built:
                by_name[g.name].append((variant_build(r)[1], g))
    if not by_name:
        return "no graded control"
    parts = []
    for runs in by_name.values():
        g = runs[0][1]
        found = _per_build([(build, f"{g2.mde:.4g}" if g2.mde is not None else "none found") for build, g2 in runs],
                           lambda b, v: f"{b} {v}", ", ")
        rests = "" if g.claimed == g.writeup else f", the verdict rests on the threshold {g.claimed:.4g}"
        parts.append(f"{found} vs writeup {g.writeup:.4g}{rests} ({g.units})")
    return "; ".join(parts)


def _clip(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` characters at a word boundary, marked with an ellipsis where cut."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    head = text[: width - 1]
    return (head.rsplit(" ", 1)[0] if " " in head else head).rstrip(" ,;:(") + "…"


def _by_design(record: Record, variant: str | None) -> bool:
    """A skip that says nothing about the claim: a replicate build's model other than the variant the claim is
    reported on (a replicate build's derived variants run only the claims about their kind)."""
    build = split_build(record.model.id.rpartition(":")[2])[1]
    return build is not None and variant_build(record)[0] != variant


def _untestable(claim_id: str, grouped: dict[tuple[str, str], list[Record]], skipped: dict[str, list[Record]],
                variant: str | None = None) -> str:
    """The summary's last cell: each failed gate once with its value on every model that failed it, ERROR runs with
    their first reason, then skips grouped by reason (not the skips of derived variants that only replicate their
    kind's claims)."""
    failed: dict[str, list[tuple[str, str]]] = defaultdict(list)  # "'gate' >= t" -> [(model, value)]
    notes: list[str] = []
    runs = sorted((r for (c, _), rs in grouped.items() if c == claim_id for r in rs
                   if r.label in ("NOT TESTABLE", "ERROR")), key=lambda r: model_key(r.model.id))
    for r in runs:
        gate = next((g for g in r.fitness if not g.passed), None) if r.label == "NOT TESTABLE" else None
        if gate is None:
            notes.append(f"{r.model.id}: {_clip(str(r.reason).split(';')[0], 90)}")
        else:
            failed[f"'{gate.name}' {bound_text(gate.direction, gate.threshold)}"].append(
                (_short(r.model.id), f"{gate.value:.3g}"))
    notes = [f"{gate}: {_values_on(found)}" for gate, found in failed.items()] + notes
    skips: dict[str, list[str]] = defaultdict(list)
    for r in sorted(skipped.get(claim_id, []), key=lambda r: model_key(r.model.id)):
        if not _by_design(r, variant):
            skips[_clip(r.reason, 70)].append(_short(r.model.id))
    notes += [f"n/a ({why}): {', '.join(models)}" for why, models in skips.items()]
    return "; ".join(notes) or "-"


def _per_build(found: list[tuple[str, str]], each: Callable[[str, str], str], sep: str = "; ") -> str:
    """Builds' values for the first page: "v on all N builds" when they agree, grouped by value where that at least
    halves the entries ("v on s1, s4; w on s8"), else one ``each(build, value)`` per build."""
    values = {v for _, v in found}
    if len(found) > 1 and len(values) == 1:
        return f"{found[0][1]} on all {len(found)} builds"
    if 2 * len(values) > len(found):
        return sep.join(each(b, v) for b, v in found)
    return _values_on(found)


def _values_on(found: list[tuple[str, str]]) -> str:
    """Per model ('base 0.03, base@s4 0.022'), or grouped by value where that at least halves the distinct entries
    ('1.71e+06 on base, base@s4; 5.25e+06 on moe')."""
    by_value: dict[str, list[str]] = defaultdict(list)
    for model, value in found:
        by_value[value].append(model)
    if 2 * len(by_value) > len(found):
        return ", ".join(f"{m} {v}" for m, v in found)
    return "; ".join(f"{v} on {', '.join(ms)}" for v, ms in by_value.items())


def _short(model_id: str) -> str:
    """A zoo model's id without its prefix ('zoo:base@s4' -> 'base@s4'); any other id as it is."""
    parts = zoo_parts(model_id)
    return parts[1] if parts and parts[1] else model_id


def claim_overview(claim_id: str, records: list[Record]) -> list[str]:
    """A claim page's opening: its verdict across the builds of the model it is about, the agreement, the effect,
    each build's empirical MDE and what could not be tested."""
    grouped = groups(records)
    skipped = [r for r in records if r.claim_id == claim_id and r.protocol == "corrected" and r.status == "skipped"]
    variant = home(claim_id, grouped)
    rs = grouped.get((claim_id, variant), [])
    if not rs:
        return ["Not run on any model it applies to.", ""]
    verdict = robust(rs)
    others = [f"{v.split(':')[-1]} {robust(g)['verdict']}" for (c, v), g in sorted(grouped.items())
              if c == claim_id and v != variant]
    return [f"**Across builds** of {variant} ({len(rs)}): **{verdict['verdict']}** ({verdict['agreement']}).", "",
            f"- Effect [CI]: {_effect(rs)}", f"- Empirical MDE: {_mde(rs)}",
            f"- Not testable or not run: {_untestable(claim_id, grouped, {claim_id: skipped}, variant)}",
            f"- Other variants (not replicates): {', '.join(others) or '-'}", ""]


def verdict_map(records: list[Record], report_dir: Path) -> str:
    """A claims x (model, build) grid coloured by the corrected-protocol verdict; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    cells = {(r.claim_id, r.model.id): r.label for r in records if r.protocol == "corrected"}
    claim_ids = sorted({c for c, _ in cells})
    columns = sorted({m for _, m in cells}, key=lambda m: (split_build(m.rpartition(":")[2])[0], model_key(m)))
    grid = [[to_rgb(COLOURS.get(cells.get((c, m), "n/a"), "#ffffff")) for m in columns] for c in claim_ids]
    fig, ax = plt.subplots(figsize=(max(3.0, 1.2 + 0.9 * len(columns)), max(2.2, 0.9 + 0.32 * len(claim_ids))),
                           dpi=100)
    ax.imshow(grid, aspect="auto")
    for i, c in enumerate(claim_ids):
        for j, m in enumerate(columns):
            label = cells.get((c, m), "")
            ax.text(j, i, {"NOT TESTABLE": "N/T", "INCONCLUSIVE": "INC", "SUPPORTED": "SUP", "REFUTED": "REF"}
                    .get(label, label), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(columns)), [m.replace("zoo:", "")[-28:] for m in columns], rotation=45, ha="right",
                  fontsize=7)
    ax.set_yticks(range(len(claim_ids)), claim_ids, fontsize=7)
    ax.set_title("verdict per claim and model (corrected protocol)", fontsize=8)
    return plots.save_figure(fig, report_dir, VERDICT_MAP, bbox_inches="tight")


def population_lines(records: list[Record]) -> list[str]:
    """Each claim's population verdict by criterion: the builds testable, the estimate and its interval over builds
    in the statistic's units, and the test with its one-sided p on each side of the threshold."""
    grouped, rows = groups(records), []
    for claim_id in sorted({c for c, _ in grouped}):
        pop, decay = population_of(claim_id, grouped[(claim_id, home(claim_id, grouped))])
        for c in pop.verdict.criteria:
            rows.append({"claim": claim_id, "criterion": c.criterion, "verdict": str(c.verdict),
                         "builds testable": f"{c.n_testable}/{c.n_builds} ({pop.role}, wd {decay:g})",
                         "estimate [90% CI]": f"{_num(c.estimate)} {interval(c.ci_low, c.ci_high)}",
                         "test": c.reason})
        rows += [{"claim": claim_id, "criterion": name, "verdict": "no population test declared"}
                 for name in pop.undeclared]
    if not rows:
        return []
    return ["## Population verdicts", "",
            "Per criterion, the build-level statistics of one recipe's builds (its confirmatory builds, else every "
            "build), tested against the threshold on the declared scale (CLAIMS.md revision 4); a gate-failed build "
            "counts and is not testable. A claim is SUPPORTED when every criterion is, REFUTED when one is at "
            "Holm-adjusted alpha.", "", tabulate(rows, headers="keys", tablefmt="github"), ""]


def across_builds(records: list[Record]) -> list[str]:
    """Each claim's population verdicts, then each variant built more than once: every build's verdict and statistic,
    the agreement, the unanimous verdict and the variance between builds against within them."""
    rows, variances = [], []
    for (claim_id, variant), rs in sorted(groups(records).items()):
        if len(rs) < 2:
            continue
        v = robust(rs)
        per = "; ".join(f"{variant_build(r)[1]} ({role(r)}): {_build_outcome(r)}" for r in rs)
        rows.append({"claim": claim_id, "model": variant, "per build": per, "agreement": v["agreement"],
                     "unanimous": v["verdict"], "within one recipe": by_recipe(rs)})
        p = pooled(rs)
        if p:
            measured = [r for r in rs if _measured(r)]
            variances.append({"claim": claim_id, "model": variant, "statistic": measured[0].statistic.name,
                           "builds": ", ".join(variant_build(r)[1] for r in measured),
                           "grand mean [CI]": f"{_num(p['grand_mean'])} {interval(p['ci_low'], p['ci_high'])}",
                           "build means": ", ".join(_num(m) for m in p["build_means"]),
                           "between-build var": _num(p["between"]), "within-build var": _num(p["within"]),
                           "units per build": ", ".join(map(str, p["n_per_build"]))})
    if not rows:
        return [*population_lines(records), *power_lines(records)]
    lines = [*population_lines(records), *power_lines(records), "## Across builds", "",
             "Independently pretrained builds of one zoo model (another seed; a build that varies the recipe's weight "
             "decay is named with it). The development build "
             "is the one criteria and controls were tuned on; confirmatory builds were built under the frozen lock. "
             "'Within one recipe' is the agreement among builds that differ only in their seed.",
             "", tabulate(rows, headers="keys", tablefmt="github"), ""]
    if variances:
        lines += ["Variance components of the headline statistic's per-unit values (seeds or prompts): builds, "
                  "then units, method of moments; the CI is a two-stage multi-bootstrap.", "",
                  tabulate(variances, headers="keys", tablefmt="github"), ""]
    return lines


# Short statements for the first table (the registry's titles run to 99 characters; the table stays <= 160 wide)
STATEMENTS = {
    "H01": "Base lens shows no operation words", "H02": "Symbol prompts: probe perfect at block 0",
    "H03": "Word prompts: probe emerges later", "H04": "Probe direction not vocabulary-aligned",
    "H05a": "Dual-reward V/O LoRA names the operation", "H05b": "Dual-reward V/O LoRA keeps the answers",
    "H06": "Base beats instruct under dual reward", "H07": "GRPO: answers improve, no classifier",
    "H08": "GRPO + dual reward collapses to one word", "H09": "The collapse survives four fixes",
    "H10": "MoE router rows not vocabulary-aligned", "H11": "LoRA SFT: weak task tokens near 56% depth",
    "H12": "LoRA cheaper than full fine-tuning", "H12c": "LoRA cheaper at >= 100M parameters",
    "H13": "SFT: 'remain' at 62% depth, answers late",
    "H14": "Two-stage: low LR keeps skills", "H15a": "Dual objective and engrams (sentiment)",
    "H15b": "Dual objective and engrams (topic)",
}
ABBREVIATIONS = {"SUPPORTED": "SUP", "REFUTED": "REF", "INCONCLUSIVE": "INC", "NOT TESTABLE": "N/T"}


def _headline(rs: list[Record]) -> str:
    """The headline effect: the pooled mean over builds with its CI, one build's value with its CI, or the median
    build with the range over builds."""
    measured = [r for r in rs if _measured(r)]
    if not measured:
        return "-"
    components = pooled(rs)
    if components:
        value = f"{_num(components['grand_mean'])} {interval(components['ci_low'], components['ci_high'])}"
    elif len(measured) == 1:
        s = measured[0].statistic
        value = f"{_num(s.statistic)} {interval(s.ci_low, s.ci_high)}"
    else:
        values = sorted(r.statistic.statistic for r in measured)
        value = f"median {_num(values[len(values) // 2])} (builds {_num(values[0])} to {_num(values[-1])})"
    return f"{_clip(measured[0].statistic.name, max(20, 54 - len(value)))}: {value}"


def _drawn(rs: list[Record]) -> tuple[list[Record], float, str]:
    """The records of the recipe with the most builds (its confirmatory builds, else every build), that recipe's
    weight decay, and the role they are counted in."""
    recipes: dict[float, list[Record]] = defaultdict(list)
    for r in rs:
        recipes[recipe(r)].append(r)
    decay, drawn = max(recipes.items(), key=lambda kv: (len(kv[1]), kv[0]))
    confirmatory = [r for r in drawn if (r.model.build or {}).get("role") == "confirmatory"]
    used = confirmatory or drawn
    family = (used[0].model.build or {}).get("population")
    return used, decay, "confirmatory" if confirmatory else f"family {family}" if family else "exploratory"


def population_of(claim_id: str, rs: list[Record]) -> tuple[ClaimPopulation, float]:
    """The population verdict over the builds of the recipe with the most builds (its confirmatory builds, else
    every build, exploratory), and that recipe's weight decay."""
    used, decay, counted = _drawn(rs)
    return population(claim_id, used, [variant_build(r)[1] for r in used], counted), decay


def power_lines(records: list[Record], minimum: int = MIN_CONFIRMATORY) -> list[str]:
    """Stage 1's power analysis, shown while the builds are exploratory: per criterion, the builds its population
    test needs to decide it on the side the development builds lie; the confirmatory builds this fixes."""
    grouped, rows = groups(records), []
    for claim_id in sorted({c for c, _ in grouped}):
        used, _, counted = _drawn(grouped[(claim_id, home(claim_id, grouped))])
        if counted != "exploratory":
            continue
        for plan in power_plan(claim_id, used):
            rows.append({"claim": claim_id, "criterion": plan.criterion,
                         "builds lie": f"{plan.side} side, d = {plan.effect:.2f}" if plan.side else "-",
                         "testable share": f"{plan.share:.0%}", "testable needed": plan.testable or "-",
                         "builds to draw": plan.drawn or f"out of reach: {plan.reason}"})
    if not rows:
        return []
    reach = [row["builds to draw"] for row in rows if isinstance(row["builds to draw"], int)]
    n = max([minimum, *reach])
    return ["## Builds needed", "",
            "Stage 1's power analysis (CLAIMS.md revision 4). Per criterion, the development builds' mean and SD on "
            "the test's scale are taken as the truth (d: their mean's distance from the threshold in SDs). A "
            "one-sided test at alpha 0.05 then needs the testable builds shown for 80% power (noncentral t; a "
            "signed-rank test 1/0.864 times as many), and the builds to draw at the testable share.", "",
            tabulate(rows, headers="keys", tablefmt="github"), "",
            f"Confirmatory builds: **{n}**: the largest count within reach, and at least {minimum}. "
            f"{len(rows) - len(reach)} of {len(rows)} criteria are out of reach.", ""]


def population_verdicts(records: list[Record], claim_ids: list[str] | None = None) -> dict[str, str]:
    """Each claim's population verdict over these records, as the first screen states it (an amendment stores them
    before and after, so the report can show the pre-registered verdict beside the amended one)."""
    grouped = groups(records)
    return {c: str(population_of(c, grouped[(c, home(c, grouped))])[0].verdict.verdict)
            for c in sorted({c for c, _ in grouped}) if claim_ids is None or c in claim_ids}


def answer(records: list[Record], claims: dict, registered: dict[str, str] | None = None) -> tuple[str, list[dict]]:
    """The report's first sentence and its table: one row per claim, its population verdict over the builds of one
    recipe of the model it is about, how many were testable, each build's verdict, and the headline effect.
    ``registered``: the pre-registered verdict of each amended claim, shown beside its verdict now."""
    grouped = groups(records)
    rows, counts = [], Counter()
    for claim_id in sorted({c for c, _ in grouped}):
        rs = grouped[(claim_id, home(claim_id, grouped))]
        pop, decay = population_of(claim_id, rs)
        verdict = str(pop.verdict.verdict)
        counts[verdict] += 1
        if claim_id in (registered or {}):
            verdict += f" (amended; pre-registered: {registered[claim_id]})"
        split = Counter(r.label for r in rs)
        testable = min((c.n_testable for c in pop.verdict.criteria), default=0)
        title = claims[claim_id].title if claim_id in claims else rs[0].claim.get("title", "")
        rows.append({"claim": claim_id, "statement": STATEMENTS.get(claim_id) or _clip(title, 44),
                     "verdict": verdict,
                     "builds": f"{testable}/{len(pop.builds)} testable; {len(rs)}: "
                               + ", ".join(f"{ABBREVIATIONS.get(v, v)} {k}" for v, k in sorted(split.items())),
                     "headline effect [CI]": _headline(rs)})
    order = ("SUPPORTED", "REFUTED", "INCONCLUSIVE", "NOT TESTABLE")
    told = ", ".join(f"{counts[v]} {v}" for v in order)
    sentence = (f"Of {len(rows)} claims, each judged by its population verdict over the builds of one recipe, {told}"
                + (f" ({', '.join(f'{k} {v}' for v, k in counts.items() if v not in order)})"
                   if set(counts) - set(order) else "") + ".")
    return sentence, rows


def build_matrix(records: list[Record]) -> list[dict]:
    """Per build: each claim's corrected-protocol verdict on the model it is about (H10's on the build's moe), one
    column per build ('-': not run on that build)."""
    grouped = groups(records)
    homes = {c: home(c, grouped) for c, _ in grouped}
    cells = {(c, variant_build(r)[1]): r.label for (c, v), rs in grouped.items() if v == homes[c] for r in rs}
    builds = sorted({b for _, b in cells}, key=lambda b: (len(b), b))
    return [{"claim": c, **{b or "-": ABBREVIATIONS.get(cells.get((c, b), "-"), cells.get((c, b), "-"))
                            for b in builds}} for c in sorted(homes)]
