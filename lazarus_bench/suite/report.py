"""Render result records into ``REPORT.md``: a verdict matrix, then per claim the writeup's number beside ours.

Reports are regenerated from the records, never edited by hand; plots are PNG files next to the report.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from tabulate import tabulate

from .. import outputs
from ..errors import LazarusError
from ..harness import prereg
from ..harness.base import Curve, bound_text
from ..harness.registry import all_claims
from ..io import write_text
from ..protocols import SINGLE_DEFECT_ORIGINAL
from ..stats import ClaimStatistic, Verdict
from ..zoo.registry import MANIFEST, resolve_zoo
from . import calibration, plots, populations, summary
from .deviations import prereg_section, prereg_status, registered_verdicts
from .records import RECORDS_DIR, Record, load_records


def _commits(records: list[Record]) -> str:
    """The code the measured records came from (skips run none): one commit, or each with its record count."""
    counts = Counter(r.environment.get("git_commit") or "-" for r in records if r.environment)
    if not counts:
        return "-"
    if len(counts) == 1:
        return next(iter(counts))
    return "commits " + ", ".join(f"{c[:7]} ({n} records)" for c, n in counts.most_common())


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "undefined"
        return f"{value:.{digits}g}"
    return str(value)


def _newest(records: list[Record]) -> str:
    """The newest record's timestamp: the report is a function of its records, so rendering twice writes the same."""
    stamps = [r.timestamp for r in records if r.timestamp]
    return max(stamps) if stamps else "no date"


def _cell(record: Record, lock: dict[str, str] | None = None) -> str:
    """The verdict matrix's cell: the verdict (flagged (†) when off the lock in force), n/a or ERROR."""
    off = lock is not None and record.status == "ok" and prereg_status(record, lock) != "matches"
    return record.label + (" (†)" if off else "")


def _plot(record: Record, out_dir: Path) -> list[str]:
    """One PNG per curve of the record; returns paths relative to the report."""
    paths = []
    for name, raw in record.curves.items():
        curve = Curve.of(raw)
        fig, ax = plots.figure()
        x = curve.x
        for label, ys in curve.series.items():
            ax.plot(range(len(ys)), ys, marker="o", markersize=3, label=label)
        step = max(1, len(x) // 12)
        ax.set_xticks(range(0, len(x), step))
        ax.set_xticklabels(x[::step], fontsize=7)
        stem = f"{record.claim_id}__{record.model.slug}__{record.protocol}__{name}"
        title = f"{record.claim_id} {name} - {record.model.id} ({record.protocol})"
        paths.append(plots.save(fig, ax, out_dir, f"{stem}.png", xlabel=curve.xlabel or "layer",
                                ylabel=curve.ylabel or name, title=title))
    return paths


def has_records(report_dir: str | Path) -> bool:
    """Whether ``report_dir/records`` holds any record file (rendering none gives an empty report)."""
    return any((Path(report_dir) / RECORDS_DIR).glob("*.json"))


PAGES = {"details.md": "Every table by build", "calibration.md": "Calibration",
         "deviations.md": "Pre-registration and deviations", "reused.md": "Reused records"}
CLAIMS_DIR = "claims"  # reports/claims/<ID>.md: one page per claim


def check_report_dir(report_dir: str | Path, overwrite: bool = False, out_name: str = "REPORT.md") -> None:
    """Refuse, before any work, a report folder holding a page the tool could write (a claim's page: any claim
    registered or recorded there) but did not write itself."""
    report_dir = Path(report_dir)
    ids = {c.id for c in all_claims()} | {p.name.split("__")[0] for p in (report_dir / RECORDS_DIR).glob("*.json")}
    _refuse_foreign(report_dir, out_name, ids, overwrite)


def _refuse_foreign(report_dir: Path, out_name: str, ids, overwrite: bool) -> None:
    """One line if a file the render of claims ``ids`` may write is not the tool's: a page, or in ``plots/`` the
    verdict map or a claim's curve or calibration plot (a user's other files there are never touched)."""
    folder = report_dir / plots.PLOTS
    ours = tuple(f"{i}__" for i in ids) + tuple(calibration.plot_name(i) for i in ids) + (summary.VERDICT_MAP,)
    figures = [f"{plots.PLOTS}/{p.name}" for p in folder.iterdir() if p.name.startswith(ours)] \
        if folder.is_dir() else []
    pages = [f"{CLAIMS_DIR}/{claim_id}.md" for claim_id in sorted(ids)]
    outputs.refuse_foreign(report_dir, [out_name, *PAGES, *pages, *sorted(figures)], "--report-dir", overwrite)


def render(report_dir: str | Path = "reports", out_name: str = "REPORT.md", overwrite: bool = False) -> Path:
    """Write ``report_dir/REPORT.md`` (the answer on one screen), a page per claim in ``claims/`` and the pages of
    :data:`PAGES` (with plots) from every record in ``report_dir/records``; a page or plot already there is
    replaced only if this tool wrote it (its output manifest says so) or ``overwrite``; its own stale plots go."""
    report_dir = Path(report_dir)
    loaded = populations.tagged(load_records(report_dir), report_dir)
    by_claim: dict[str, list[Record]] = defaultdict(list)
    for record in loaded.records:
        by_claim[record.claim_id].append(record)
    _refuse_foreign(report_dir, out_name, set(by_claim) | {c.id for c in all_claims()}, overwrite)
    with plots.recording() as written:
        path = _write(report_dir, out_name, loaded, by_claim)
    claim_pages = [f"{CLAIMS_DIR}/{claim_id}.md" for claim_id in sorted(by_claim)]
    stale = outputs.remove_stale(report_dir, f"{CLAIMS_DIR}/", claim_pages)
    stale += outputs.remove_stale(report_dir, f"{plots.PLOTS}/", written)
    outputs.record(report_dir, [out_name, *PAGES, *claim_pages, *sorted(set(written))], drop=stale)
    return path


def _write(report_dir: Path, out_name: str, loaded, by_claim: dict[str, list[Record]]) -> Path:
    """Every page and plot of a render; returns REPORT.md's path."""
    models = sorted({r.model.id for r in loaded.records}, key=summary.model_key)
    claims = {c.id: c for c in all_claims()}
    lock_data = prereg.read_lock_file()
    lock = None if prereg.stage1(lock_data) else prereg.effective_hashes(lock_data)
    generated = (f"Generated from {len(loaded.records)} records (the newest of {_newest(loaded.records)}) in "
                 f"`{report_dir / 'records'}` by `lazarus-bench report"
                 f"{'' if report_dir == Path('reports') else f' --report-dir {report_dir}'}`; do not edit.")
    pages = {
        "details.md": [*summary.across_builds(loaded.records), *_zoo_quality(models),
                       *_model_fitness(loaded.records), *_tokenization(loaded.records),
                       *_verdict_matrix(loaded.records, by_claim, claims, models, lock),
                       *_protocol_dependence(by_claim), *_layer_sensitivity(loaded.records, claims),
                       *_one_factor(by_claim), *_time_spent(loaded.records, models)],
        "calibration.md": calibration.section(loaded.records, claims, report_dir, lock),
        "deviations.md": prereg_section(loaded.records, lock, lock_data),
        "reused.md": _reused(loaded.records),
    }
    for name, body in pages.items():
        write_text(report_dir / name, "\n".join([f"# {PAGES[name]}", "", generated, "", *body]) + "\n")
    _claim_pages(report_dir, by_claim, claims)
    lines = ["# lazarus_bench report", ""]
    lines += _first_screen(loaded.records, claims, report_dir, sorted(by_claim), registered_verdicts(lock_data))
    env = next((r.environment for r in loaded.records if r.environment), None)
    if env:
        lines += [f"Environment: {env['device']}, BLAS {env['blas']['status']} ({env['blas']['library']}), "
                  f"mlx {env['packages'].get('mlx', '?')}, mlx-lm {env['packages'].get('mlx-lm', '?')}, "
                  f"git {_commits(loaded.records)}."
                  + (" Benchmarks: [BENCH.md](BENCH.md)." if (report_dir / "BENCH.md").is_file() else ""), ""]
    lines += [generated, ""]
    if loaded.skipped:
        lines += ["## Records not read", ""] + [f"- `{name}`: {why}" for name, why in loaded.skipped] + [""]
    lines += failed_reruns(loaded.failed)
    return write_text(report_dir / out_name, "\n".join(lines) + "\n")


def _first_screen(records: list[Record], claims: dict, report_dir: Path, claim_ids: list[str],
                  registered: dict[str, str]) -> list[str]:
    """One sentence with the result, the table across builds (an amended claim's pre-registered verdict beside its
    verdict), the verdict map, the verdicts per build, the links."""
    sentence, rows = summary.answer(records, claims, registered)
    if not rows:
        return ["No claim was measured on a model it applies to.", ""]
    matrix = summary.build_matrix(records)
    lines = [sentence, "", "## Verdict per claim, across builds", "",
             "Verdict: population verdict over one recipe's builds ([by criterion](details.md#population-verdicts)). "
             "Builds: testable of counted; each build's verdict. Headline effect: every build that measured.", "",
             tabulate(rows, headers="keys", tablefmt="github"), "",
             f"![verdict map]({summary.verdict_map(records, report_dir)})", "",
             "## Verdict per build (corrected protocol)", "",
             "Each claim on the model it is about in each build (H10: the build's moe; H06: its base and instruct "
             "pair); `-`: not run there. Derived variants and protocols: "
             "[the verdict matrix](details.md#verdict-matrix).",
             "", tabulate(matrix, headers="keys", tablefmt="github"), ""]
    links = " · ".join(f"[{c}]({CLAIMS_DIR}/{c}.md)" for c in claim_ids)
    lines += ["## Detail", "", f"- Each claim, every model and protocol: {links}",
              "- [Calibration](calibration.md): controls, graded plants and nulls, per claim and model.",
              "- [Pre-registration and deviations](deviations.md): the lock, and each amendment's verdicts.",
              "- [Every table by build](details.md): agreement across builds, model quality and fitness, "
              "tokenization, protocol ablations, where the time went.",
              "- [Reused records](reused.md): records kept from an earlier run, and when they were measured.", ""]
    return lines


def _verdict_matrix(records: list[Record], by_claim: dict[str, list[Record]], claims: dict, models: list[str],
                    lock: dict[str, str] | None) -> list[str]:
    """Every claim on every model, each protocol's verdict in the cell."""
    rows = []
    for claim_id in sorted(set(claims) | set(by_claim)):
        row = {"claim": claim_id, "title": claims[claim_id].title if claim_id in claims else
               f"{by_claim[claim_id][0].claim.get('title', '')} (not in the registry: --include its folder)"}
        for model in models:
            cells = [f"{_cell(r, lock)}" + (f" ({r.protocol})" if r.protocol != "corrected" else "")
                     for r in sorted(by_claim.get(claim_id, []), key=lambda r: r.protocol) if r.model.id == model]
            row[model] = " / ".join(cells) if cells else "not run"
        rows.append(row)
    return ["## Verdict matrix", "", tabulate(rows, headers="keys", tablefmt="github"), "", _outcome_counts(records),
            ""]


def _claim_pages(report_dir: Path, by_claim: dict[str, list[Record]], claims: dict) -> None:
    """``claims/<ID>.md``: the claim, the writeup beside ours on every build, every record."""
    out = report_dir / CLAIMS_DIR
    out.mkdir(parents=True, exist_ok=True)
    for claim_id, records in sorted(by_claim.items()):
        lines = [f"# {claim_id}", "", "[Back to the report](../REPORT.md)", ""]
        lines += summary.claim_overview(claim_id, records)
        lines += _replication_summary(records, claims)
        lines += _claim_section(claim_id, claims.get(claim_id), records, report_dir)
        text = "\n".join(lines).replace("](plots/", "](../plots/")
        write_text(out / f"{claim_id}.md", text + "\n")


def read_all(report_dir: str | Path) -> str:
    """REPORT.md and every page it links (claims in id order), as one text: what a reader can reach from it."""
    report_dir = Path(report_dir)
    names = ["REPORT.md", *PAGES, *(f"{CLAIMS_DIR}/{p.name}" for p in sorted((report_dir / CLAIMS_DIR).glob("*.md")))]
    return "\n".join((report_dir / n).read_text() for n in names if (report_dir / n).is_file())


def failed_reruns(failed: list[Record]) -> list[str]:
    """Runs that did not finish where an earlier finished record exists: that one is shown, these are listed."""
    if not failed:
        return []
    lines = ["## Failed re-runs", "", "These runs did not finish; the earlier finished record of the same claim, model "
             "and protocol is the one shown above (the failed one is kept in `records/failed/`).", ""]
    for r in failed:
        reason = str(r.reason or "").splitlines()
        lines.append(f"- {r.claim_id} on {r.model.id} ({r.protocol}), {r.timestamp}: "
                     f"{r.status}: {reason[0] if reason else ''}")
    return lines + [""]


def _replication_summary(records: list[Record], claims: dict) -> list[str]:
    """One row per claim and model (corrected protocol): the writeup's number beside ours with its CI, the verdict,
    the model's fitness and the calibration, so a reader sees what replicated and what the model could not test."""
    rows = []
    for r in sorted(records, key=lambda r: (r.claim_id, summary.model_key(r.model.id))):
        if r.protocol != "corrected" or r.status == "skipped":
            continue
        claim_id = r.claim_id
        if r.status != "ok":
            ours, verdict, gates, calib = "-", _cell(r), "-", "-"
        else:
            s = r.statistic
            ours = f"{s.name} = {_fmt(s.statistic)} {summary.interval(s.ci_low, s.ci_high)}"
            verdict = str(r.verdict)
            gates = ", ".join(f"{g.name} {'pass' if g.passed else 'FAIL'}" for g in r.fitness) or "-"
            calib = r.calibration or "-"
        rows.append({"claim": claim_id, "writeup (its model)": r.claim["writeup"], "model": r.model.id,
                     "ours [CI]": ours, "verdict": verdict, "fitness": gates, "calibration": calib})
    if not rows:
        return []
    return ["## Replication summary", "", tabulate(rows, headers="keys", tablefmt="github"), ""]


VACUOUS_ON_TIED = {"input_unembedding": "On a tied head the input embedding is the unembedding, so the "
                   "`input_unembedding` ablation computes the corrected lens: it cannot show that defect, whatever "
                   "it reads. An untied model could, and one-factor ablations run on base models only (the zoo's "
                   "are tied)."}


def _one_factor(by_claim: dict[str, list[Record]]) -> list[str]:
    """Corrected, full original, and each original defect alone on top of corrected: the statistic of each and the
    single defects that move it (verdict changed, or the statistic outside the corrected run's CI)."""
    lines: list[str] = []
    for claim_id, records in sorted(by_claim.items()):
        by_model: dict[str, dict[str, dict]] = defaultdict(dict)
        for r in records:
            if r.status == "ok":
                by_model[r.model.id][r.protocol] = r
        for model, runs in sorted(by_model.items(), key=lambda kv: summary.model_key(kv[0])):
            runs = dict(runs)
            if claim_id in SINGLE_DEFECT_ORIGINAL and "original" in runs:
                runs[f"corrected+{SINGLE_DEFECT_ORIGINAL[claim_id]}"] = runs.pop("original")
            single = sorted(p for p in runs if p.startswith("corrected+"))
            if not single or "corrected" not in runs:
                continue
            base = runs["corrected"].statistic
            rows, movers = [], []
            for protocol in ["corrected", *single, *(["original"] if "original" in runs else [])]:
                s = runs[protocol].statistic
                verdict = runs[protocol].verdict
                outside = not (base.ci_low <= s.statistic <= base.ci_high)
                moves = protocol != "corrected" and (verdict != runs["corrected"].verdict or outside)
                if moves and protocol.startswith("corrected+"):
                    movers.append(protocol.removeprefix("corrected+"))
                rows.append({"protocol": protocol, "statistic": _fmt(s.statistic),
                             "minus corrected": _fmt(s.statistic - base.statistic), "verdict": str(verdict),
                             "moves it": "yes" if moves else ("-" if protocol == "corrected" else "no")})
            defect = SINGLE_DEFECT_ORIGINAL.get(claim_id)
            note = [f"The original protocol differs from the corrected one only in `{defect}`, so its run is that "
                    "defect's one-factor ablation.", ""] if defect else []
            if runs["corrected"].model.info.get("tied"):
                for ablated, why in VACUOUS_ON_TIED.items():
                    note += [why, ""] if f"corrected+{ablated}" in single else []
            lines += [f"### {claim_id} on {model}: {base.name}", "", *note,
                      tabulate(rows, headers="keys", tablefmt="github"), "",
                      "Single defects that move it: " + (", ".join(movers) or "none") + ".", ""]
    if not lines:
        return []
    return ["## One-factor protocol ablations", "",
            "Each original defect alone on top of the corrected protocol; a defect moves the result when the verdict "
            "changes or the statistic leaves the corrected run's confidence interval.", "", *lines]


def _layer_sensitivity(records: list[Record], claims: dict) -> list[str]:
    """The depth claims' statistic at every layer (the claim's ``layer_curve``), beside the layer the criterion
    reads, so a reader sees whether the verdict hangs on the choice of int(0.55 L)."""
    rows = []
    for r in sorted(records, key=lambda r: (r.claim_id, summary.model_key(r.model.id))):
        claim = claims.get(r.claim_id)
        if claim is None or claim.layer_curve is None or r.status != "ok" or r.protocol != "corrected":
            continue
        name, series = claim.layer_curve
        curve = Curve.of(r.curves[name]) if name in r.curves else None
        if not curve or not curve.series or (series is not None and series not in curve.series):
            continue  # a record written by an earlier version of the claim (flagged off the lock) may lack it
        values = curve.series[series] if series is not None else list(curve.series.values())[-1]
        best = max(range(len(values)), key=lambda i: values[i] if values[i] is not None else float("-inf"))
        rows.append({"claim": r.claim_id, "model": r.model.id, "curve": f"{name}" + (
            f" ({series})" if series else ""), "by layer": " ".join(
                f"{x}:{_fmt(v, 2)}" for x, v in zip(curve.x, values)),
            "largest at": curve.x[best]})
    if not rows:
        return []
    return ["## Sensitivity to the analysis layer", "",
            "Each depth claim's statistic at every layer (the criterion reads one layer, e.g. int(0.55 L)); plots in "
            "the claim sections.", "", tabulate(rows, headers="keys", tablefmt="github"), ""]


def _tests(statistic: ClaimStatistic) -> str:
    """The declared test of each criterion the verdict combined (or of the statistic itself)."""
    criteria = statistic.details.get("criteria") or {"": statistic.to_dict()}
    named = [f"{k}: {c['details']['test']}" if k else str(c["details"]["test"])
             for k, c in criteria.items() if isinstance(c.get("details"), dict) and c["details"].get("test")]
    return "; ".join(named) or "-"


def _mde(mde: dict | None) -> str:
    """The MDE at alpha and power 0.8: a number, 'none detectable' when no outcome at this n can be significant, or
    'n/a' with no spread to scale it; never a 0 that reads as 'any effect is detected'."""
    value = (mde or {}).get("value")
    if value is None or value != value:
        return "n/a"
    if value == float("inf"):
        return "none detectable at this n"
    return _fmt(value) if value > 0 else "n/a"


def _fitness(record: Record) -> str:
    """The claim's fitness gates on this model: value vs threshold, pass or fail."""
    gates = record.fitness
    return "; ".join(f"{g.name} {_fmt(g.value)} {bound_text(g.direction, g.threshold)}: "
                     f"{'pass' if g.passed else 'FAIL'}" for g in gates) or "-"


def _zoo_quality(models: list[str]) -> list[str]:
    """The zoo models' own quality gates (from their manifests): what the embedded models can do at all."""
    rows = []
    for model in models:
        if not model.startswith(("zoo:", "zoo-micro:")):
            continue
        try:
            manifest = json.loads((resolve_zoo(model) / MANIFEST).read_text())
        except (LazarusError, OSError, ValueError):
            continue
        gates, metrics = manifest.get("gates", {}), manifest.get("metrics", {})
        rows.append({"model": model, **{name: f"{_fmt(metrics.get(name))} (gate {_fmt(gate)})"
                                        for name, gate in gates.items() if name in metrics}})
    if not rows:
        return []
    return ["## Zoo model quality", "", "Accuracy on the zoo's own quality gates (manifest figures; a model below a "
            "gate tests less than its real counterpart would).", "", tabulate(rows, headers="keys",
                                                                             tablefmt="github"), ""]


def _model_fitness(records: list[Record]) -> list[str]:
    """What each model can test: every fitness gate measured on it (claim, value, threshold, pass or fail)."""
    rows = [{"model": r.model.id, "claim": r.claim_id, "protocol": r.protocol, "gate": g.name,
             "value": _fmt(g.value), "needs": bound_text(g.direction, g.threshold),
             "": "pass" if g.passed else "FAIL"}
            for r in sorted(records, key=lambda r: (summary.model_key(r.model.id), r.claim_id, r.protocol))
            for g in r.fitness]
    if not rows:
        return []
    return ["## Model fitness", "", "Fitness gates (CLAIMS.md revision 2): a model that fails one cannot test the "
            "claim, which is then NOT TESTABLE (never REFUTED).", "", tabulate(rows, headers="keys", tablefmt="github"),
            ""]


def _pieces(pieces: list[str]) -> str:
    return "`" + " ".join(repr(p)[1:-1] for p in pieces) + "`"


def _tokenization(records: list[Record]) -> list[str]:
    """Per model, what the claims fed it (from the records' tokenization audit): prompt and answer pieces, BOS, the
    target words that are not one token, and the chat prompt its template renders."""
    audits = {}
    for r in records:
        if r.tokenization:
            audits.setdefault(r.model.id, r.tokenization)
    rows = []
    for model, a in sorted(audits.items(), key=lambda kv: summary.model_key(kv[0])):
        split = [f"{w} ({'/'.join(str(len(v[k])) for k in ('bare', 'spaced'))})" for w, v in a["words"].items()
                 if "error" in v or len(v["bare"]) > 1 or len(v["spaced"]) > 1]
        missing = [w for w, v in a["words"].items() if "error" in v]
        chat = a.get("chat") or {}
        rows.append({"model": model, "BOS": f"{a['bos_token']} added" if a["bos_added"] else "none added",
                     "prompt": _pieces(a["prompt"]["pieces"]), "answer after it": _pieces(a["answer"]["pieces"]),
                     "encode(answer)": _pieces(a["answer"]["bare_encode_pieces"]),
                     "words of several pieces (bare/spaced)": ", ".join(split) or "none",
                     "not spellable": ", ".join(missing) or "none",
                     "chat prompt": ("none" if not chat.get("template") else chat.get("error") or
                                     _pieces([chat["rendered"]]) + (" (BOS doubled if encoded with special tokens)"
                                                                    if chat.get("bos_doubled_by_encode") else ""))})
    if not rows:
        return []
    return ["## Tokenization audit", "", "What the claims fed each model on its own tokenizer: the arithmetic prompt "
            "and the answer's pieces as they follow it (where a bare `encode(answer)` differs, a SentencePiece '▁' or "
            "a separate space token would have been the target), the target words that are not a single token, BOS, "
            "and the chat template's prompt. Every record carries the full audit under `tokenization`.", "",
            tabulate(rows, headers="keys", tablefmt="github"), ""]


def _outcome_counts(records: list[Record]) -> str:
    """One line: how many records ended in each outcome (NOT TESTABLE: the model failed a fitness gate)."""
    counts = Counter(_cell(r) for r in records)
    order = [str(v) for v in Verdict] + ["n/a", "ERROR"]
    return "Outcomes: " + ", ".join(f"{name} {counts.get(name, 0)}" for name in order) + "."


def _protocol_dependence(by_claim: dict[str, list[Record]]) -> list[str]:
    """Claims whose verdict changes between the writeup's original protocol and the corrected one."""
    rows = []
    for claim_id, records in sorted(by_claim.items()):
        per_model: dict[str, dict[str, str]] = defaultdict(dict)
        for r in records:
            per_model[r.model.id][r.protocol] = _cell(r)
        for model, verdicts in per_model.items():
            if "original" in verdicts and "corrected" in verdicts:
                rows.append(
                    {
                        "claim": claim_id,
                        "model": model,
                        "original protocol": verdicts["original"],
                        "corrected protocol": verdicts["corrected"],
                        "depends on the original code's defects": "yes"
                        if verdicts["original"] != verdicts["corrected"]
                        else "no",
                    }
                )
    if not rows:
        return []
    return [
        "## Protocol ablations",
        "",
        "The writeup's original code (its defects opted in) beside the corrected protocol:",
        "",
        tabulate(rows, headers="keys", tablefmt="github"),
        "",
    ]


def _time_spent(records: list[Record], models: list[str]) -> list[str]:
    """Worker-seconds per claim and model (every protocol of a record summed): where a run's time went."""
    cost: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in records:
        cost[r.claim_id][r.model.id] += float(r.wall_s or 0.0)
    if not cost:
        return []
    def secs(v: float) -> str:
        return f"{v:,.0f}"

    rows = [{"claim": c, **{m: secs(cost[c][m]) if m in cost[c] else "-" for m in models},
             "total": secs(sum(cost[c].values()))} for c in sorted(cost)]
    rows.append({"claim": "total", **{m: secs(sum(cost[c].get(m, 0.0) for c in cost)) for m in models},
                 "total": secs(sum(sum(v.values()) for v in cost.values()))})
    seeded = [r for r in records if r.seeds]
    seed_secs = sum(float(r.wall_s or 0.0) for r in seeded)
    n_seeds = sorted({len(r.seeds) for r in seeded})
    cost_line = (f"Records whose unit is the training seed ran {'/'.join(map(str, n_seeds))} seed(s) and took "
                 f"{secs(seed_secs)} of the {secs(sum(sum(v.values()) for v in cost.values()))} worker-seconds. "
                 "Five seeds is the smallest count at which the exact one-sided sign test can reach p < 0.05 (floor "
                 "1/32; 3 seeds: 1/8), so seed-level work costs 5/3 of a 3-seed protocol.") if seeded else ""
    return ["## Where the time went", "", "Worker-seconds per claim and model (each record's wall time, every "
            "protocol summed; cached training runs count where they were trained). " + cost_line, "",
            tabulate(rows, headers="keys", tablefmt="github"), ""]


def _reused(records: list[Record]) -> list[str]:
    """Records a later run kept instead of measuring again (inputs unchanged): which, and from which run."""
    kept = [r for r in records if r.reused]
    if not kept:
        return []
    rows = [{"record": f"{r.claim_id} / {r.model.id} / {r.protocol}", "measured": r.timestamp,
             "at commit": (r.environment or {}).get("git_commit") or "-", "reused": r.reused.get("at", "-")}
            for r in sorted(kept, key=lambda r: r.key)]
    return ["## Reused records", "", f"{len(kept)} of {len(records)} records were not measured again: their inputs "
            "(claim hash, model hash, protocol, tier, parameters, seeds, BLAS, trained-gate threshold and the code "
            "they call) equal the run's (`lazarus-bench run --fresh` measures them again). Their wall time above is "
            "the measuring run's.", "", tabulate(rows, headers="keys", tablefmt="github"), ""]


def _claim_section(claim_id: str, claim, records: list[Record], report_dir: Path) -> list[str]:
    first = records[0].claim
    lines = [
        f"## {claim_id}: {first['title']}",
        "",
        f"**Claim.** {first['statement']}",
        "",
        f"**Source.** {first['source']}. **Criterion.** {first['criterion']}.",
        "",
        f"**Writeup.** {first['writeup']}",
        "",
    ]
    rows, details, plots = [], [], []
    for r in sorted(records, key=lambda r: (summary.model_key(r.model.id), r.protocol)):
        if r.status != "ok":
            rows.append(
                {
                    "model": r.model.id,
                    "protocol": r.protocol,
                    "verdict": _cell(r),
                    "statistic": "-",
                    "CI": "-",
                    "effect size": "-",
                    "p": "-",
                    "test": "-",
                    "n": "-",
                    "MDE": "-",
                    "seeds": "-",
                    "wall s": _fmt(r.wall_s),
                }
            )
            details.append(f"- {r.model.id} ({r.protocol}): {r.status}: {r.reason}")
            continue
        s = r.statistic
        effect = s.effect_size
        rows.append(
            {
                "model": r.model.id,
                "protocol": r.protocol,
                "verdict": str(r.verdict),
                "statistic": f"{s.name} = {_fmt(s.statistic)}",
                "CI": f"{summary.interval(s.ci_low, s.ci_high)} ({_fmt(s.confidence)})",
                "effect size": f"{effect.name} = {_fmt(effect.value)}" if effect else "-",
                "p": _fmt(s.p_value),
                "test": _tests(s),
                "n": s.n,
                "MDE": _mde(r.mde),
                "seeds": len(r.seeds) or "-",
                "fitness": _fitness(r),
                "wall s": _fmt(r.wall_s),
            }
        )
        measured = f" (the measurement alone: {r.measured_verdict})" if r.measured_verdict else ""
        details.append(
            f"- {r.model.id} ({r.protocol}, tier {r.tier}): {r.ours}. Verdict: "
            f"{r.verdict}{measured} - {r.reason}."
        )
        plots += _plot(r, report_dir)
    lines += [tabulate(rows, headers="keys", tablefmt="github"), "", *details, ""]
    lines += [f"![{Path(p).stem}]({p})" for p in plots]
    return lines + [""]
