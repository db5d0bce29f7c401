"""What the main job and the zoo build cost, read from what they wrote: the records' ``wall_s`` and clock readings
and the zoo manifests' seconds and tokens (measured by those runs themselves, not re-timed here)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from ..suite.summary import model_key

ZOO_KINDS = ("base", "instruct", "untied", "moe")


def main_job_costs(records_dir: str | Path) -> dict | None:
    """Worker-seconds per claim and model (sum of ``wall_s`` over protocols), the (claim, model) verdicts (corrected
    records that ran) they bought, per claim its controls' seconds over its measures' (records that store both), per
    model the span from the first record's start to the last one's end (``timestamp`` is written when a record ends),
    and the suite's efficiency, overall and per claim: counted FLOPs over each record's wall time x its worker's GEMM
    rate. None without records."""
    per_claim: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    spans: dict[str, list[float]] = {}
    work = {"flops": 0.0, "peak_flops": 0.0, "records": 0, "uncounted": 0}
    by_claim: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # claim -> [FLOPs, peak FLOPs]
    verdicts: dict[str, int] = defaultdict(int)  # claim -> (claim, model) verdicts: corrected-protocol records run
    longest: dict[str, float] = defaultdict(float)  # claim -> its longest record's wall (one job: not divisible)
    split: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # claim -> [measure s, controls s]
    for path in sorted(Path(records_dir).glob("*.json")):
        try:
            rec = json.loads(path.read_text())
            claim, model, wall = rec["claim"]["id"], rec["model"]["id"], float(rec.get("wall_s") or 0.0)
            end = datetime.fromisoformat(rec["timestamp"]).timestamp()
        except (OSError, ValueError, KeyError, TypeError):
            continue
        per_claim[claim][model] += wall
        longest[claim] = max(longest[claim], wall)
        if rec.get("status") == "ok" and rec.get("protocol") == "corrected":
            verdicts[claim] += 1
        seconds = rec.get("seconds") or {}
        if seconds.get("measure"):
            split[claim][0] += float(seconds["measure"])
            split[claim][1] += float(seconds.get("controls") or 0.0)
        counted, gemm = rec.get("work"), (rec.get("environment") or {}).get("blas", {}).get("gemm_gflops_1024")
        if isinstance(counted, dict) and gemm:
            done, peak = float(counted.get("flops") or 0.0), wall * float(gemm) * 1e9
            work["flops"] += done
            work["peak_flops"] += peak
            work["records"] += 1
            by_claim[claim][0] += done
            by_claim[claim][1] += peak
        elif wall > 0:  # skipped records took no time
            work["uncounted"] += 1
        first, last = spans.get(model, [end - wall, end])
        spans[model] = [min(first, end - wall), max(last, end)]
    if not per_claim:
        return None
    models = sorted(spans, key=model_key)  # builds in seed order: zoo:base@s4 before zoo:base@s12
    totals = {m: sum(c.get(m, 0.0) for c in per_claim.values()) for m in models}
    work["efficiency"] = work["flops"] / work["peak_flops"] if work["peak_flops"] else None
    work["per_claim"] = {c: done / peak for c, (done, peak) in sorted(by_claim.items()) if peak}
    return {"models": models, "per_claim": {c: dict(v) for c, v in sorted(per_claim.items())},
            "verdicts": dict(sorted(verdicts.items())), "longest_s": dict(sorted(longest.items())),
            "controls_over_measure": {c: ctl / m for c, (m, ctl) in sorted(split.items())},
            "worker_s": totals, "span_s": {m: spans[m][1] - spans[m][0] for m in models}, "work": work}


def zoo_build_costs(zoo_dir: str | Path) -> dict | None:
    """Each shipped model's build seconds, training tokens, tokens/s and ranks, their sum, and the last manifest's
    running total (the whole build's wall time only when one run built every model). None without manifests."""
    rows, total = [], None
    for kind in ZOO_KINDS:
        try:
            man = json.loads((Path(zoo_dir) / kind / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        rows.append({"model": kind, "build_s": man.get("build_seconds"), "train_tokens": man.get("train_tokens"),
                     "tokens_per_s": man.get("tokens_per_s"), "ranks": man.get("ranks"),
                     "recipe": man.get("recipe")})
        total = man.get("wall_seconds_total_so_far", total)
    if not rows:
        return None
    summed = sum(r["build_s"] or 0.0 for r in rows)
    return {"models": rows, "wall_s": total, "sum_build_s": summed,
            "one_run": total is not None and total >= summed - 1.0}
