"""The Ray engine's overhead against the local process pool on the same jobs, and whether their records agree.

Each round runs ``lazarus-bench run`` once per engine in a fresh process with an empty report folder and cache (the
fast tier on the micro zoo, 2 jobs): wall time of the whole command (Ray's own start-up included, as a user pays it),
the records' summed worker seconds, and per record whether verdict and statistic are identical across engines.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLAIMS = ("H01", "H05a", "H12")
MODEL = "zoo-micro:base"


def _run(engine: str, claims: tuple[str, ...], model: str, jobs: int, timeout: float) -> dict:
    """One ``lazarus-bench run`` with ``engine``: its wall seconds, worker seconds and comparable records."""
    with tempfile.TemporaryDirectory(prefix=f"lazarus-engine-{engine}-") as tmp:
        cmd = [sys.executable, "-m", "lazarus_bench.cli", "run", "--engine", engine, "--tier", "fast", "-m", model,
               "--claims", ",".join(claims), "--protocol", "corrected", "-j", str(jobs), "--report-dir",
               str(Path(tmp) / "r"), "--cache-dir", str(Path(tmp) / "c")]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        wall = time.perf_counter() - t0
        if done.returncode:
            raise RuntimeError(f"{engine} run failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        records = {p.name: json.loads(p.read_text()) for p in sorted((Path(tmp) / "r" / "records").glob("*.json"))}
    return {"wall_s": wall, "worker_s": sum(float(r.get("wall_s") or 0.0) for r in records.values()),
            "records": {name: {"verdict": r.get("verdict"), "statistic": r.get("statistic")}
                        for name, r in records.items()}}


def measure_engines(rounds: int = 2, claims: tuple[str, ...] = CLAIMS, model: str = MODEL, jobs: int = 2,
                    timeout: float = 1200) -> dict:
    """Local pool and Ray, interleaved ``rounds`` times: median walls, the overhead, and record agreement."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return {"available": False, "reason": "Ray is not installed (pip install 'lazarus-bench[ray]')"}
    runs: dict[str, list[dict]] = {"local": [], "ray": []}
    for _ in range(rounds):
        for engine in runs:
            runs[engine].append(_run(engine, claims, model, jobs, timeout))
    first = {engine: rs[0]["records"] for engine, rs in runs.items()}
    names = sorted(first["local"])
    same = {n: json.dumps(first["local"][n], sort_keys=True) == json.dumps(first["ray"].get(n), sort_keys=True)
            for n in names}
    wall = {engine: statistics.median(r["wall_s"] for r in rs) for engine, rs in runs.items()}
    return {"available": True, "rounds": rounds, "claims": list(claims), "model": model, "jobs": jobs,
            "wall_s": wall, "worker_s": {e: statistics.median(r["worker_s"] for r in rs) for e, rs in runs.items()},
            "walls": {e: [r["wall_s"] for r in rs] for e, rs in runs.items()},
            "overhead_s": wall["ray"] - wall["local"], "ratio": wall["ray"] / wall["local"],
            "records": len(names), "identical": sum(same.values()),
            "differ": [n for n, ok in same.items() if not ok] + sorted(set(first["ray"]) - set(names))}


def engines_section(engines: dict | None, table, fmt) -> list[str]:
    """BENCH.md's section on the Ray engine against the local pool."""
    if not engines:
        return []
    if not engines.get("available"):
        return ["", f"## Ray engine vs the local pool: not measured ({engines.get('reason', '')})"]
    rows = [[engine, fmt(engines["wall_s"][engine]), ", ".join(fmt(w) for w in engines["walls"][engine]),
             fmt(engines["worker_s"][engine])] for engine in ("local", "ray")]
    differ = f" Records that differ: {', '.join(engines['differ'])}." if engines["differ"] else ""
    return ["", f"## Ray engine vs the local pool (`run --engine ray`, a local Ray started by the command; "
                f"{engines['rounds']} interleaved rounds, medians)", "",
            f"Jobs: {', '.join(engines['claims'])} on {engines['model']}, fast tier, corrected protocol, "
            f"`-j {engines['jobs']}`, empty cache each run.", "",
            table(rows, ["engine", "wall s (median)", "wall s (each round)", "worker s"]), "",
            f"Ray's overhead on these jobs: {fmt(engines['overhead_s'])} s per run (x{fmt(engines['ratio'])} the local "
            f"pool's wall), Ray's start-up and object store included. Records identical (verdict and statistic): "
            f"{engines['identical']}/{engines['records']}.{differ}"]
