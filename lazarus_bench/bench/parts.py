"""Where a verdict's worker-seconds go: each claim run once on one model, its wall time split into the gates, the
claim's own measure, single controls, graded controls and nulls, by timers around the runner's calls.

The records go to a scratch folder and are compared with the committed ones, so the split is of the same work."""

from __future__ import annotations

import functools
import json
import math
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

PARTS = ("gates", "measure", "controls", "graded", "nulls", "other")
_VOLATILE = ("wall_s", "seconds", "timestamp", "work", "environment")
_CLOCK_KEYS = frozenset({"tokens_per_s", "train_seconds"})  # clock readings a claim keeps inside its samples


class PartClock:
    """Seconds per part; a part reached inside another (a control runs the claim's measure) counts to the outer."""

    def __init__(self, now: Callable[[], float] = time.perf_counter):
        self.seconds: dict[str, float] = defaultdict(float)
        self._now = now
        self._depth = 0

    def wrap(self, part: str, fn: Callable) -> Callable:
        """``fn`` timed into ``part``; it keeps ``fn``'s name and module, which the claim's hash reads."""
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            start = self._now()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] += self._now() - start
                self._depth -= 1
        return timed


@contextmanager
def timed_runner(clock: PartClock) -> Iterator[None]:
    """The runner's gate, control, graded and null calls timed into ``clock`` (restored on exit)."""
    from ..harness import base, controls
    from ..suite import runner

    patches = [(runner, "trained_gate", "gates"), (base.Gate, "check", "gates"), (base.Control, "run", "controls"),
               (controls.GradedControl, "run", "graded"), (controls.NullControl, "run", "nulls")]
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
    try:
        for owner, name, part in patches:
            setattr(owner, name, clock.wrap(part, owner.__dict__[name]))
        yield
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def comparable(record: dict) -> dict:
    """A record without what differs between two runs of the same work: wall time, timestamp, counters, host, and
    the lock version in force when it ran (its claim hash is in ``inputs``); ``_walk`` also skips the clock
    readings inside samples."""
    out = {k: v for k, v in record.items() if k not in _VOLATILE}
    if isinstance(out.get("prereg"), dict):
        out["prereg"] = {k: v for k, v in out["prereg"].items() if k != "lock_version"}
    return out


def _walk(a, b, path: str, worst: list) -> str | None:
    """The first path where ``a`` and ``b`` differ other than in a number's value; ``worst[0]`` gets the largest
    relative difference of two numbers. Clock readings kept inside samples (tokens/s, seconds) are set aside."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(set(a) ^ set(b))}"
        return next((d for k in sorted(a) if k not in _CLOCK_KEYS and (d := _walk(a[k], b[k], f"{path}.{k}", worst))),
                    None)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} vs {len(b)}"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := _walk(x, y, f"{path}[{i}]", worst))), None)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if numbers:
        if a == b or (math.isnan(a) and math.isnan(b)):
            return None
        if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
            return f"{path}: {a} vs {b}"
        worst[0] = max(worst[0], abs(a - b) / max(abs(a), abs(b)))
        return None
    return None if a == b else f"{path}: {str(a)[:60]!r} vs {str(b)[:60]!r}"


def agreement(record: dict, committed: dict | None) -> dict | None:
    """How a re-measured record compares with the committed one: same verdict; bitwise identical; else the largest
    relative difference between their numbers and the first difference that is not a number's value."""
    if committed is None:
        return None
    worst = [0.0]
    first = _walk(comparable(record), comparable(committed), "record", worst)
    return {"verdict_equal": record.get("verdict") == committed.get("verdict"),
            "identical": first is None and worst[0] == 0.0, "max_rel_diff": worst[0], "first_difference": first}


def _corrected_record(records_dir: Path, claim_id: str, model_id: str) -> dict | None:
    """The corrected-protocol record of ``claim_id`` on ``model_id`` in ``records_dir``, if there is one."""
    for path in sorted(records_dir.glob(f"{claim_id}__*__corrected.json")):
        rec = json.loads(path.read_text())
        if rec["model"]["id"] == model_id and rec["claim"]["id"] == claim_id:
            return rec
    return None


def kept_rows(previous: dict | None, model_id: str, tier: str) -> tuple[list[dict], dict]:
    """The rows of an earlier ``parts.json`` of the same model and tier, each naming the run (commit) it came from,
    and those runs' environments: a claim's row is replaced only once this run has measured it again, so a run
    stopped part-way keeps the others. Another model's or tier's file is refused, so no result the user did not
    name is replaced."""
    from ..errors import LazarusError

    if not previous:
        return [], {}
    if (previous.get("model"), previous.get("tier")) != (model_id, tier):
        raise LazarusError(f"the report folder's parts.json holds {previous.get('model')} ({previous.get('tier')} "
                           f"tier), not {model_id} ({tier} tier): use another --report-dir")
    runs = dict(previous.get("runs") or {previous["commit"]: previous["environment"]})
    rows = [{**r, "run": r.get("run", previous["commit"])} for r in previous["rows"]]
    return rows, runs


def measure_parts(model_id: str, claim_ids: Sequence[str] | None = None, records_dir: str | Path = "reports/records",
                  tier: str = "slow", log: Callable[[str], None] = print,
                  on_row: Callable[[dict], None] | None = None, previous: dict | None = None) -> dict:
    """Run each claim's corrected protocol on ``model_id`` in this process, one after another in the given order
    (a claim that reuses another's cached runs after the others), and split each record's wall time; ``on_row``
    gets the result so far after each claim, so a run stopped part-way keeps what it measured. ``previous`` (an
    earlier result for this model and tier) keeps its rows of the claims this run does not measure."""
    from ..harness.registry import all_claims, get_claim
    from ..runinfo import environment
    from ..suite.runner import ModelPool, run_claim
    from .machine import openblas_core

    claims = [get_claim(c) for c in claim_ids] if claim_ids else all_claims()
    order = sorted((c.id for c in claims if "corrected" in c.tier_protocols(tier)),
                   key=lambda c: bool(get_claim(c).after))
    rows, runs = kept_rows(previous, model_id, tier)
    pool = ModelPool()
    pool.get(model_id)  # a model that does not load stops here, before any claim runs
    env, core = environment(measure_gemm=True), openblas_core()
    gemm = env["blas"].get("gemm_gflops_1024")
    rate = f"{gemm:.0f} GFLOP/s" if gemm else "not measured"
    commit = env["git_commit"]
    runs[commit] = f"{env['machine']}, OpenBLAS kernel {core or '-'}, fp32 GEMM {rate} (one thread), commit {commit}"
    planned = [r["claim"] for r in rows if r["claim"] not in order] + order
    result = {"model": model_id, "tier": tier, "planned": planned, "rows": rows, "commit": commit,
              "openblas_core": core, "environment": runs[commit], "runs": _used(runs, rows, commit)}
    with tempfile.TemporaryDirectory(prefix="lazarus-parts-") as scratch:
        for claim_id in order:
            claim, clock = get_claim(claim_id), PartClock()
            timed = replace(claim, measure=clock.wrap("measure", claim.measure))
            with timed_runner(clock):
                run_claim(timed, model_id, tier=tier, report_dir=Path(scratch), pool=pool,
                          cache_dir=Path(scratch) / "cache", log=lambda _: None)
            record = _corrected_record(Path(scratch) / "records", claim_id, model_id)
            wall = float(record.get("wall_s") or 0.0)  # a skipped record (the claim does not apply) has none
            parts = {p: round(clock.seconds.get(p, 0.0), 2) for p in PARTS[:-1]}
            parts["other"] = round(max(wall - sum(parts.values()), 0.0), 2)
            committed = _corrected_record(Path(records_dir), claim_id, model_id)
            same = agreement(record, committed)
            row = {"claim": claim_id, "status": record["status"], "verdict": record.get("verdict"), "wall_s": wall,
                   "parts": parts, "vs_committed": same, "run": commit,
                   "committed_wall_s": None if committed is None else committed.get("wall_s")}
            earlier = [r for r in result["rows"] if r["claim"] == claim_id]
            if record["status"] == "error" and earlier:  # a failed run never replaces a finished row
                log(f"{claim_id}: ERROR ({record.get('reason', '')}); the earlier row (run {earlier[0]['run'][:7]}) "
                    "is kept")
                continue
            result["rows"] = [r for r in result["rows"] if r["claim"] != claim_id] + [row]
            result["runs"] = _used(runs, result["rows"], commit)
            log(f"{claim_id}: {wall:.0f} s {parts}; against the committed record: {_said(same)}")
            if on_row:
                on_row(result)
    return result


def _used(runs: dict, rows: list[dict], commit: str) -> dict:
    """The environments of the runs the rows come from, and this run's."""
    return {c: e for c, e in runs.items() if c == commit or any(r["run"] == c for r in rows)}


def _said(vs: dict | None) -> str:
    if vs is None:
        return "no committed record"
    verdict = "same verdict" if vs["verdict_equal"] else "OTHER VERDICT"
    if vs["identical"]:
        return f"{verdict}, identical"
    numbers = f"numbers within {vs['max_rel_diff']:.1e} (relative)" if vs["max_rel_diff"] else "numbers equal"
    return f"{verdict}, {numbers}" + (f"; differs at {vs['first_difference']}" if vs["first_difference"] else "")


def render_parts(result: dict) -> str:
    """PARTS.md: one row per claim (seconds per part, its verdict, whether the record equals the committed one) and
    a total with each part's share."""
    from tabulate import tabulate

    runs = result.get("runs") or {result["commit"]: result["environment"]}
    several = len(runs) > 1  # rows from earlier runs kept: each names its run
    rows, totals = [], defaultdict(float)
    for row in result["rows"]:
        for part in PARTS:
            totals[part] += row["parts"][part]
        same = _said(row["vs_committed"])
        rows.append([row["claim"], row["verdict"] or row["status"], f"{row['wall_s']:,.0f}",
                     *(f"{row['parts'][p]:,.0f}" for p in PARTS), same]
                    + ([row.get("run", result["commit"])[:7]] if several else []))
    wall = sum(totals.values())
    rows.append(["total", "", f"{wall:,.0f}", *(f"{totals[p]:,.0f} ({totals[p] / wall:.0%})" if wall else "0"
                                                for p in PARTS), ""] + ([""] if several else []))
    head = ["claim", "verdict", "wall s", *PARTS, "against the committed record"] + (["run"] if several else [])
    where = "; ".join(f"run {c[:7]}: {e}" if several else e for c, e in runs.items())
    done = len(result["rows"])
    missing = [c for c in result.get("planned", []) if c not in {r["claim"] for r in result["rows"]}]
    partial = f" {done} of {done + len(missing)} claims so far; not yet measured: {', '.join(missing)}." \
        if missing else ""
    return (f"# Where a verdict's time goes: {result['model']}\n\n"
            f"Each claim's corrected protocol ({result['tier']} tier) run once in one process "
            f"(`lazarus-bench bench --parts {result['model']}`), its wall time split by timers around the runner's "
            "calls: the trained-model gate and the claim's declared gates, its measure (gates it reaches inside "
            "count here), single controls, graded controls and nulls (each runs the claim's own measure on a planted "
            "or null construction); other is model loading, the tokenization audit, the GEMM probe and writing the "
            "record. The last column compares each re-measured record with the committed one, wall time, timestamp, "
            "counters, host and lock version set aside: identical, or the largest relative difference between their "
            f"numbers. Seconds; {where}.{partial}\n\n"
            + tabulate(rows, head, tablefmt="github", disable_numparse=True) + "\n")
