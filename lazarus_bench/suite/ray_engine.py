"""The grid on a Ray cluster: the runner's family queues become Ray tasks, one job of a queue at a time (a family's
cached runs are built before the claims that reuse them start), the longest queues first. Each task measures one
record where Ray places it and returns it; the driver saves it, so records land in the driver's report folder as the
local pool's do. Fixtures are cached in each node's own ``--cache-dir``: on a cluster without a shared folder a claim
whose family ran on another node trains its runs again (the same numbers: the cache is keyed by content)."""

from __future__ import annotations

from typing import Any, Callable

from ..errors import LazarusError

INSTALL = "pip install 'lazarus-bench[ray]'"
_POOL = None  # a Ray worker's loaded models, kept for its later tasks


def _measure(job, kwargs: dict) -> dict:
    """One job in a Ray worker: the record as JSON (saved by the driver), measured in a scratch report folder."""
    import tempfile

    from ..claims.base import get_claim
    from .runner import ModelPool, run_claim

    global _POOL
    _POOL = _POOL or ModelPool()
    origins = kwargs.pop("origins", {})
    with tempfile.TemporaryDirectory() as scratch:
        record = run_claim(get_claim(job.claim), job.model, protocol=job.protocol, pool=_POOL,
                           origin=origins.get(job.model), **{**kwargs, "report_dir": scratch})
    return record.to_dict()


def run_ray(queues: list, jobs: int, kwargs: dict, overrides: dict | None, origins: dict, log: Callable[[str], None],
            finished: Callable[[Any, dict], None], address: str | None) -> None:
    """Run the family queues on the Ray cluster at ``address`` (None: a local one), at most ``jobs`` at a time."""
    try:
        import ray
    except ImportError as exc:
        raise LazarusError(f"--engine ray needs Ray: {INSTALL}") from exc
    from .records import Record, save_record
    from .runner import job_summary

    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        measure = ray.remote(num_cpus=1, max_retries=0)(_measure)
        running: dict[Any, tuple[Any, list]] = {}
        while any(queues) or running:
            busy = [id(queue) for _, queue in running.values()]
            for queue in [q for q in queues if q and id(q) not in busy][: max(0, jobs - len(running))]:
                job = queue.pop(0)
                log(f"start {job.claim} on {origins.get(job.model, {}).get('id', job.model)} ({job.protocol}) on Ray")
                ref = measure.remote(job, {**kwargs, "origins": origins, "overrides": (overrides or {}).get(job.claim)})
                running[ref] = (job, queue)
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                job, _ = running.pop(ref)
                try:
                    record = Record.from_dict(ray.get(ref))
                    save_record(kwargs["report_dir"], record)
                    summary = job_summary(record)
                except Exception as exc:  # noqa: BLE001  (a lost task must not stop the other jobs)
                    summary = {"status": "error", "reason": f"Ray task failed: {type(exc).__name__}: {exc}"}
                finished(job, summary)
    finally:
        ray.shutdown()
