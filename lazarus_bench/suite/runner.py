"""Run claims on models and write one record per (claim, model, protocol) as soon as it finishes."""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import flops, progress, stats, tokenization
from ..analysis.fitness import heldout_loss
from ..errors import LazarusError
from ..harness import prereg
from ..harness.base import (
    Claim,
    ClaimContext,
    Gate,
    GateResult,
    ModelInfo,
    NotTestable,
    ablation_scope,
    build_scope,
    claim_dict,
    model_info,
    outcome_dict,
    slug,
)
from ..harness.controls import calibrate, measured_verdicts
from ..harness.registry import all_claims, get_claim
from ..models import check_model_id, model_fingerprint
from ..runinfo import environment
from ..zoo.registry import build_info
from . import families, reuse
from .records import ModelRef, Record, save_record


class ModelPool:
    """Loads each model once for analysis; training claims get fresh copies through their context."""

    def __init__(self):
        self._handles: dict[str, Any] = {}
        self._audits: dict[str, dict] = {}

    def get(self, model_id: str):
        from ..models import load_model

        if model_id not in self._handles:
            self._handles[model_id] = load_model(model_id)
        return self._handles[model_id]

    def audit(self, model_id: str) -> dict:
        """The model's tokenization audit, computed once per pool (every record of the model carries it)."""
        if model_id not in self._audits:
            self._audits[model_id] = tokenization.audit(self.get(model_id))
        return self._audits[model_id]


def _base_record(claim: Claim, info: ModelInfo, model_id: str, protocol: str, tier: str, params: dict,
                 seeds: list[int], origin: dict | None = None) -> dict:
    """The fields every record has, known before anything is measured."""
    name = origin["id"] if origin else model_id
    model = ModelRef(id=name, slug=slug(name), hash=model_fingerprint(model_id), info=asdict(info),
                     **({"path": model_id, "base": origin["base"], "adapter": origin["adapter"]} if origin else
                        {"build": build_info(model_id)}))
    return {
        "claim": claim_dict(claim),
        "model": model,
        "protocol": protocol,
        "tier": tier,
        "params": params,
        "seeds": tuple(seeds),
        "prereg": prereg.check(claim),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def not_testable_outcome(exc: NotTestable) -> dict:
    """The record fields of a run stopped at a failed gate: the gate's value as the statistic (no test was made, so
    no CI, effect or MDE), and the descriptive numbers measured before it."""
    failed = next(g for g in exc.gates if not g.passed)
    return {"statistic": stats.not_testable(failed.name, failed.value, str(exc)),
            "ours": f"{failed.name} = {failed.value:.4g}", "samples": [], "curves": {},
            "extra": {"descriptive": exc.details}, "mde": {"value": None, "units": failed.name,
                                                           "how": "no test: the model failed a fitness gate"}}


def record_mde(s) -> dict:
    """The minimum detectable effect at alpha and power 0.8 for the n used: the test's own (details["mde"]) or, for a
    statistic without one, the normal-theory value from its confidence interval."""
    if s.details.get("mde") is not None:
        return {"value": s.details["mde"], "units": s.name, "how": s.details.get("mde_definition", "the test's own")}
    value = stats.mde_from_ci(s.ci_low, s.ci_high, s.confidence)
    return {"value": value, "units": s.name,
            "how": "normal approximation from the CI: (z_alpha + z_0.8) x half-width / z_alpha"}


def _decided(decision: stats.Decision) -> dict:
    """The verdict fields of a record: the final verdict, and the measured one where a gate or calibration differs."""
    out = {"verdict": decision.verdict, "reason": decision.reason}
    if decision.measured is not None and decision.by != "rule":
        out["measured_verdict"] = decision.measured
    return out


TRAINED_ENV = "LAZARUS_MAX_HELDOUT_LOSS_RATIO"
TRAINED_DEFAULT = 0.6
TRAINED_GATE = Gate(name="trained language model",
                    description="next-token loss on the package's fixed held-out arithmetic text (data/heldout.txt, "
                                "the model's own tokenizer) as a share of chance, ln V: random weights sit near 1, "
                                "so a model above the threshold learned no text and nothing it shows is a finding",
                    value=None, threshold_param="max_heldout_loss_ratio", direction="below")


def trained_threshold() -> float:
    """The trained-model gate's threshold: ``$LAZARUS_MAX_HELDOUT_LOSS_RATIO``, default 0.6 (one line if not a
    positive number)."""
    raw = os.environ.get(TRAINED_ENV, str(TRAINED_DEFAULT))
    try:
        threshold = float(raw)
    except ValueError:
        threshold = float("nan")
    if not threshold > 0:
        raise LazarusError(f"{TRAINED_ENV}={raw!r}: expected a positive number (held-out loss as a share of ln V)")
    return threshold


def trained_gate(handle) -> GateResult:
    """The gate every claim has, checked before its own: held-out loss / ln V at most ``trained_threshold()`` (the
    value used is in every record's fitness)."""
    return TRAINED_GATE.evaluate(heldout_loss(handle).ratio, {TRAINED_GATE.threshold_param: trained_threshold()})


def measure_record(claim: Claim, ctx: ClaimContext) -> dict:
    """The measured fields of a record: gates, outcome, controls, calibration and the verdict
    ``stats.final_verdict`` decides from them."""
    progress.job(claim.id, ctx.model_id)
    trained = trained_gate(ctx.handle())
    before = [trained, *(gate.check(ctx) for gate in claim.gates if gate.value is not None)] if trained.passed \
        else [trained]
    try:
        if not all(g.passed for g in before):  # decided before the run: no measure, training or control is spent
            raise NotTestable(before)
        started = time.perf_counter()
        outcome = claim.measure(ctx)
        measured = time.perf_counter() - started
    except NotTestable as exc:
        gates = exc.gates if exc.gates[0] in before else before + exc.gates
        decision = stats.final_verdict({}, gates=gates)
        return {"fitness": tuple(gates), **not_testable_outcome(exc), "controls": (), "calibration": "not run",
                **_decided(decision)}
    fitness = before + [gate.check(ctx, outcome) for gate in claim.gates if gate.value is None]
    failed = any(not g.passed for g in fitness)
    # a model that failed a gate gets no verdict, so nothing to calibrate: its controls would be compute for nothing
    controls = () if failed else tuple(control.run(claim, ctx) for control in claim.controls)
    # a one-factor ablation (corrected+<defect>) changes the run, not the read-out and test the graded and null
    # controls calibrate: those are measured once, under the protocol it ablates
    calibrated = not failed and "+" not in ctx.protocol
    graded = tuple(g.run(claim, ctx) for g in claim.graded) if calibrated else ()
    nulls = tuple(n.run(claim, ctx) for n in claim.nulls) if calibrated else ()
    label, why = ("not run", "") if failed else calibrate(controls, graded, nulls,
                                                          measured_verdicts(outcome.statistic))
    decision = stats.final_verdict(outcome.named_parts(), outcome.rule, fitness, (label, why))
    seconds = {"measure": round(measured, 2), "controls": round(time.perf_counter() - started - measured, 2)}
    return {"fitness": tuple(fitness), **outcome_dict(outcome), "mde": record_mde(outcome.statistic),
            "seconds": seconds,
            "controls": controls, "calibration": label, **({"graded": graded, "nulls": nulls} if graded or nulls
                                                            else {}), **_decided(decision)}


def run_claim(claim: Claim, model_id: str, *, tier: str = "slow", n_seeds: int | None = None,
              report_dir: str | Path = "reports", protocol: str = "corrected", overrides: dict | None = None,
              pool: ModelPool | None = None, log: Callable[[str], None] | None = None,
              cache_dir: str | Path | None = None, origin: dict | None = None) -> Record:
    """Measure one claim on one model and save its record; inapplicable claims and failures are recorded too.

    ``origin`` names a checkpoint fused from a base model and an adapter (``fused_models``): the record shows
    that name, the base and the adapter, and the fused path it ran on."""
    pool = pool or ModelPool()
    log = log or say
    params = claim.parameters(tier, overrides)
    n = n_seeds if n_seeds is not None else claim.default_seeds[tier]
    seeds = list(range(n)) if claim.training else []
    start, counts = time.perf_counter(), flops.totals()
    handle = pool.get(model_id)  # a model that does not load is the caller's error: no record is written for it
    info = model_info(handle)
    fields = {**_base_record(claim, info, model_id, protocol, tier, params, seeds, origin),
              "tokenization": pool.audit(model_id)}
    fields["inputs"] = reuse.inputs(claim, model_id, fields["model"].hash, protocol, tier, params, seeds,
                                    trained_threshold())
    reason = claim.applies(info) or ablation_scope(protocol, info) or build_scope(claim, protocol, info)
    if reason:
        record = Record(**fields, status="skipped", reason=reason)
        save_record(report_dir, record)
        return record
    ctx = ClaimContext(claim, info, tier=tier, seeds=seeds, params=params, protocol=protocol, cache_dir=cache_dir,
                       log=log, shared=handle)
    try:
        fields.update(status="ok", **measure_record(claim, ctx))
    except LazarusError as exc:
        fields.update(status="error", reason=str(exc))
    except Exception as exc:  # noqa: BLE001  (a broken measure must not lose the other records)
        fields.update(status="error", reason=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    record = Record(**fields, wall_s=round(time.perf_counter() - start, 2), work=flops.since(counts),
                    environment=environment(measure_gemm=True))
    save_record(report_dir, record)
    return record


def say(message: str) -> None:
    """A progress line on stderr; a closed stream (``2>&1 | head``) silences progress instead of failing the run."""
    try:
        print(message, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        sys.stderr = open(os.devnull, "w")


def check_overrides(overrides: Any, claims: Sequence[Claim], tier: str) -> None:
    """``{claim id: {param: value}}`` for claims being run, each parameter known and of its default's kind."""
    if overrides is None:
        return
    if not isinstance(overrides, dict):
        raise LazarusError(f"parameters must be a JSON object {{claim id: {{name: value}}}}, got {overrides!r}")
    selected = {c.id: c for c in claims}
    for key, value in overrides.items():
        claim = get_claim(key)
        if claim.id not in selected:
            raise LazarusError(f"parameters given for {claim.id}, which is not among the claims run")
        if key != claim.id:
            raise LazarusError(f"parameters key {key!r}: write the claim id as {claim.id!r}")
        claim.parameters(tier, value)


@dataclass(frozen=True)
class Job:
    claim: str
    model: str
    protocol: str
    cost: float


def _previous_wall(report_dir: str | Path, claim: Claim, model_id: str, protocol: str, tier: str) -> float | None:
    from .records import record_path

    try:
        old = json.loads(record_path(report_dir, claim.id, slug(model_id), protocol).read_text())
        return float(old["wall_s"]) if old.get("tier") == tier and old.get("status") == "ok" else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def plan(claims: Sequence[Claim], models: Sequence[str], protocols: Sequence[str] | None, tier: str,
         report_dir: str | Path) -> list[Job]:
    """Every (claim, model, protocol) job with a cost estimate: the last run's wall time, else a rough default."""
    jobs = []
    for claim in claims:
        for model_id in models:
            for protocol in claim.tier_protocols(tier):
                if protocols is not None and protocol not in protocols:
                    continue
                cost = _previous_wall(report_dir, claim, model_id, protocol, tier)
                jobs.append(Job(claim.id, model_id, protocol, cost if cost is not None else
                                (100.0 if claim.training else 10.0)))
    return jobs


def default_jobs() -> int:
    """Parallel claim runs: one per core on CPU (tiny models use one core each), one on a GPU."""
    import mlx.core as mx

    if mx.default_device() != mx.cpu:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


_WORKER_POOL: ModelPool | None = None


def _worker_run(job: Job, kwargs: dict) -> dict:
    """Run one job in a worker process (its models stay loaded for its later jobs); a short summary comes back."""
    global _WORKER_POOL
    _WORKER_POOL = _WORKER_POOL or ModelPool()
    origins = kwargs.pop("origins", {})
    record = run_claim(get_claim(job.claim), job.model, protocol=job.protocol, pool=_WORKER_POOL,
                       origin=origins.get(job.model), **kwargs)
    return job_summary(record)


def measure_remote(job: Job, kwargs: dict) -> dict:
    """One job where a Ray task runs it (``ray_engine``): the whole record as JSON, measured in a scratch report
    folder; the driver saves it."""
    import tempfile

    global _WORKER_POOL
    _WORKER_POOL = _WORKER_POOL or ModelPool()
    origins = kwargs.pop("origins", {})
    with tempfile.TemporaryDirectory() as scratch:
        record = run_claim(get_claim(job.claim), job.model, protocol=job.protocol, pool=_WORKER_POOL,
                           origin=origins.get(job.model), **{**kwargs, "report_dir": scratch})
    return record.to_dict()


def job_summary(record: Record) -> dict:
    """What the parent process logs of a finished job."""
    return {"status": record.status, "verdict": None if record.verdict is None else str(record.verdict),
            "reason": record.reason, "wall_s": record.wall_s}


def run_suite(models: Sequence[str], claim_ids: Sequence[str] | None = None, *, tier: str = "slow",
              n_seeds: int | None = None, report_dir: str | Path = "reports", protocols: Sequence[str] | None = None,
              overrides: dict[str, dict] | None = None, log: Callable[[str], None] | None = None,
              cache_dir: str | Path | None = None, jobs: int = 1, adapter: str | None = None,
              fresh: bool = False, engine: str = "local", address: str | None = None) -> list[dict]:
    """Every requested claim on every model (each protocol the claim offers), with progress per claim and model.
    A job whose record in ``report_dir`` has the same inputs (``reuse``) keeps that record unless ``fresh``.
    ``engine="ray"`` sends the jobs to the Ray cluster at ``address`` (``ray_engine``) instead of local processes.

    ``adapter`` (an mlx-lm LoRA adapter folder) is fused into each model first (``models.fuse_adapter``).

    With ``jobs`` > 1 the runs go to that many worker processes (BLAS threads pinned as in-process, see
    ``blas``); every
    worker saves its records as it finishes them. Returns a summary per job in completion order.
    """
    from ..cache import default_root

    claims = _checked_request(models, claim_ids, n_seeds, jobs, overrides, tier)
    log = log or say
    origins = fused_models(models, adapter, cache_dir or default_root(), log) if adapter else {}
    models = list(origins) or list(models)
    pending = plan(claims, models, protocols, tier, report_dir)
    summaries: list[dict] = []
    if not fresh:
        summaries, pending = _reused(pending, report_dir, tier, n_seeds, overrides, origins, log)
    n_reused = len(summaries)
    queues = sorted(families.units(pending, lambda j: (j.claim, tier, j.model)), key=lambda q: -sum(j.cost for j in q))
    kwargs = dict(tier=tier, n_seeds=n_seeds, report_dir=str(report_dir), cache_dir=str(cache_dir or default_root()))

    def named(job: Job) -> str:
        """The model as the user named it (a fused checkpoint reads "BASE + adapter PATH")."""
        return origins.get(job.model, {}).get("id", job.model)

    def finished(job: Job, summary: dict) -> None:
        summaries.append({"claim": job.claim, "model": job.model, "protocol": job.protocol, **summary})
        outcome = summary.get("verdict") or str(summary.get("status", "")).upper()
        log(f"[{len(summaries) - n_reused}/{len(pending)}] {job.claim} on {named(job)} ({job.protocol}): {outcome} "
            f"({summary.get('reason', '')}) in {summary.get('wall_s') or 0} s")

    if engine == "ray":
        from .ray_engine import run_ray

        run_ray(queues, jobs, kwargs, overrides, origins, log, finished, address, measure_remote, job_summary)
        return summaries
    if engine != "local":
        raise LazarusError(f"engine '{engine}': expected local or ray")
    if jobs <= 1:
        pool = ModelPool()
        for job in (j for queue in queues for j in queue):
            log(f"start {job.claim} on {named(job)} ({job.protocol})")
            record = run_claim(get_claim(job.claim), job.model, protocol=job.protocol, pool=pool, log=log,
                               overrides=(overrides or {}).get(job.claim), origin=origins.get(job.model), **kwargs)
            finished(job, job_summary(record))
        return summaries
    _run_pool(queues, jobs, kwargs, overrides, origins, log, finished)
    return summaries


def _checked_request(models: Sequence[str], claim_ids: Sequence[str] | None, n_seeds: int | None, jobs: int,
                     overrides: dict[str, dict] | None, tier: str) -> list[Claim]:
    """The claims asked for, after every argument of the run is checked: one line for the first that is wrong."""
    if claim_ids is not None and not claim_ids:
        raise LazarusError("no claim ids given (leave them out to run every claim)")
    claims = [get_claim(c) for c in claim_ids] if claim_ids else all_claims()
    if n_seeds is not None and n_seeds < 1:
        raise LazarusError(f"seeds must be >= 1, got {n_seeds}")
    if jobs < 1:
        raise LazarusError(f"jobs must be >= 1, got {jobs}")
    if not models:
        raise LazarusError("no models given")
    check_overrides(overrides, claims, tier)
    trained_threshold()
    for model_id in models:
        check_model_id(model_id)
    return claims


def _reused(pending: list[Job], report_dir: str | Path, tier: str, n_seeds: int | None,
            overrides: dict[str, dict] | None, origins: dict, log: Callable[[str], None]) -> tuple[list, list]:
    """The summaries of the jobs whose records in ``report_dir`` have the same inputs, and the jobs left to run."""
    kept = {job: reused_record(job, report_dir, tier, n_seeds, (overrides or {}).get(job.claim),
                               origins.get(job.model, {}).get("id", job.model)) for job in pending}
    summaries = [{"claim": job.claim, "model": job.model, "protocol": job.protocol, **summary}
                 for job, summary in kept.items() if summary is not None]
    if summaries:
        log(f"reused {len(summaries)} of {len(pending)} records whose inputs are unchanged (--fresh re-runs them)")
    return summaries, [job for job, summary in kept.items() if summary is None]


def reused_record(job: Job, report_dir: str | Path, tier: str, n_seeds: int | None, overrides: dict | None,
                  name: str) -> dict | None:
    """The summary of ``job``'s finished record if its inputs equal this run's, else None. The file is rewritten (and
    marked reused) only when its lock status changed, so a run that measures nothing changes no file. Hub models are
    never reused: their id is not their content."""
    from ..io import write_json
    from ..models import local_path
    from ..runinfo import git_commit
    from .records import record_path

    claim = get_claim(job.claim)
    path = record_path(report_dir, claim.id, slug(name), job.protocol)
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(old, dict) or old.get("status") not in ("ok", "skipped") or local_path(job.model) is None:
        return None
    n = n_seeds if n_seeds is not None else claim.default_seeds[tier]
    want = reuse.inputs(claim, job.model, model_fingerprint(job.model), job.protocol, tier,
                        claim.parameters(tier, overrides), list(range(n)) if claim.training else [],
                        trained_threshold())
    if old.get("inputs") != want:
        return None
    stamp = prereg.check(claim)
    if old.get("prereg") != stamp:  # the lock moved: the record's standing changed; otherwise nothing is written
        old.update(prereg=stamp, reused={"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                         "commit": git_commit()})
        write_json(path, old)
    return {"status": old["status"], "verdict": old.get("verdict"), "reason": old.get("reason", ""),
            "wall_s": 0.0, "reused": True}


def _run_pool(queues: list[list[Job]], jobs: int, kwargs: dict, overrides: dict | None, origins: dict,
              log: Callable[[str], None], finished: Callable[[Job, dict], None]) -> None:
    """Run the family queues on ``jobs`` worker processes: at most one job of a queue at a time (a family's runs
    are cached before the claims that reuse them start), the longest queues first."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    executor = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_worker_init,
                                   initargs=(os.getpid(),))
    running: dict[Any, tuple[Job, list[Job]]] = {}
    try:
        while any(queues) or running:
            busy = [id(queue) for _, queue in running.values()]
            for queue in [q for q in queues if q and id(q) not in busy][: max(0, jobs - len(running))]:
                job = queue.pop(0)
                log(f"start {job.claim} on {origins.get(job.model, {}).get('id', job.model)} ({job.protocol})")
                future = executor.submit(_worker_run, job, {**kwargs, "origins": origins,
                                                            "overrides": (overrides or {}).get(job.claim)})
                running[future] = (job, queue)
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                job, _ = running.pop(future)
                try:
                    summary = future.result()
                except Exception as exc:  # noqa: BLE001  (a dead worker must not stop the other jobs)
                    summary = {"status": "error", "reason": f"worker failed: {type(exc).__name__}: {exc}"}
                finished(job, summary)
    except BaseException:
        _stop_workers(executor)
        raise
    executor.shutdown()


def fused_models(models: Sequence[str], adapter: str, cache_dir: str | Path,
                 log: Callable[[str], None]) -> dict[str, dict]:
    """{fused checkpoint path: origin} for ``adapter`` fused into each model (built once, then cached)."""
    from ..models import adapter_fingerprint, fuse_adapter

    origins = {}
    for model_id in models:
        log(f"fusing adapter {adapter} into {model_id}")
        path = str(fuse_adapter(model_id, adapter, cache_dir))
        origins[path] = {"id": f"{model_id} + adapter {adapter}", "base": model_id,
                         "adapter": {"path": adapter, "hash": adapter_fingerprint(adapter)}}
    return origins


def _worker_init(parent: int) -> None:
    """A worker ignores Ctrl-C (the parent stops it) and dies with its parent, even one killed with SIGKILL."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _stop_workers(executor) -> None:
    """Kill the workers now (their unfinished jobs leave no record) and release the pool without waiting."""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        if process.is_alive():
            process.kill()
    executor.shutdown(wait=False, cancel_futures=True)
