"""The report's pre-registration page: records off the lock in force, and every amendment with the verdicts it
changed (before and after as measured when it was made, and now), marked post hoc where it followed them."""

from __future__ import annotations

from tabulate import tabulate

from ..harness import prereg
from .records import Record


def prereg_status(record: Record, lock: dict[str, str]) -> str:
    """``matches`` when the record's claim hash equals the lock's, else ``differs``, ``not locked`` or ``no hash``."""
    recorded = (record.prereg or {}).get("hash")
    locked = lock.get(record.claim_id)
    if recorded is None:
        return "no hash"
    if locked is None:
        return "not locked"
    return "matches" if recorded == locked else "differs"


def prereg_section(records: list[Record], lock: dict[str, str] | None, data: dict | None = None) -> list[str]:
    """Records whose claim hash (criteria, tests, parameters, measure source) is not the lock's in force, marked
    (†), then every amendment to the frozen version with its verdicts before and after; in stage 1 (no lock in
    force: ``lock`` None) what closed lock v1."""
    lines = ["## Pre-registration", ""]
    opened = prereg.stage1(data)
    if opened:
        n = len(prereg.effective_hashes(data))
        return lines + [f"Stage 1 is open since {opened['date']}: lock v1 ({n} claims, "
                        f"{len(data.get('amendments', []))} amendments) is closed ({opened['why']}). Claims change on "
                        "the development builds until lock v2 is frozen, and every verdict is exploratory.", ""]
    off = [(r, prereg_status(r, lock)) for r in records]
    off = [(r, status) for r, status in off if status != "matches"]
    if data:
        frozen = data["frozen"]
        lines += [f"Lock {prereg.lock_version(data)}: version {frozen['version']} frozen "
                  f"{frozen.get('date', '(undated)')} ({frozen.get('basis', 'no basis given')}), "
                  f"{len(data.get('amendments', []))} amendment(s) since.", ""]
    if not off:
        lines += [f"Every record's claim hash matches the lock in force ({len(lock)} claims).", ""]
    else:
        lines += [f"(†) {len(off)} of {len(records)} records were not produced under the lock in force: their "
                  "criteria, tests, parameters or measure differ from the pre-registered ones, or they carry no "
                  "hash.", ""]
        lines += [f"- {r.claim_id} on {r.model.id} ({r.protocol}): {status}" for r, status in off]
        lines += [""]
    return lines + deviations(records, data)


def deviations(records: list[Record], data: dict | None) -> list[str]:
    """Each amendment: what, why, the records it touched, their verdicts before and now."""
    lines = ["## Deviations from the pre-registration", ""]
    amendments = (data or {}).get("amendments", [])
    if not amendments:
        return lines + ["None: every claim is measured as frozen.", ""]
    in_force = prereg.effective_hashes(data)
    now = {f"{r.claim_id} {r.model.id} {r.protocol}":
           (r.verdict or r.status) if (r.prereg or {}).get("hash") == in_force.get(r.claim_id)
           else "not re-run under the lock in force" for r in records}
    for a in amendments:
        lines += [f"**Amendment {a['number']}** ({a['date']}; {', '.join(a['claims'])}{_timing(a)}): {a['what']}. "
                  f"Why: {a['why']}. Records touched: {len(a['records_touched'])}.", ""]
        if a.get("population_before") or a.get("population_after"):
            lines += ["Population verdicts, before -> amended: " + "; ".join(
                f"{c} {a['population_before'].get(c, 'none')} -> {a['population_after'].get(c, 'none')}"
                for c in sorted(set(a["population_before"]) | set(a["population_after"]))) + ".", ""]
        rows = [_row(a, k, v, now) for k, v in a["verdicts_before"].items()]
        if rows:
            lines += [tabulate(rows, headers="keys", tablefmt="github"), ""]
    return lines


def _timing(amendment: dict) -> str:
    """Lock v2's mark: whether the amendment followed results it changes (absent from lock v1's amendments)."""
    if "post_hoc" not in amendment:
        return ""
    return "; **post hoc**" if amendment["post_hoc"] else "; declared before the results it changes"


def _row(amendment: dict, key: str, before: str, now: dict[str, str]) -> dict[str, str]:
    """One record's verdicts: as measured before the amendment, after it (lock v2 stores both then), and now."""
    if "verdicts_after" not in amendment:
        return {"record": key, "before": before, "after": now.get(key, "not re-run")}
    return {"record": key, "before (pre-registered)": before,
            "amended": amendment["verdicts_after"].get(key, "not re-run"), "now": now.get(key, "not re-run")}


def registered_verdicts(data: dict | None) -> dict[str, str]:
    """Each amended claim's pre-registered population verdict: the one its first amendment to lock v2 found."""
    out: dict[str, str] = {}
    for a in (data or {}).get("amendments", []):
        for claim_id, verdict in a.get("population_before", {}).items():
            out.setdefault(claim_id, verdict)
    return out
