"""The grid on a Ray cluster: the runner's family queues become Ray tasks, one job of a queue at a time (a family's
cached runs are built before the claims that reuse them start), the longest queues first. Each task measures one
record where Ray places it and returns it; the driver saves it, so records land in the driver's report folder as the
local pool's do. Fixtures are cached in each node's own ``--cache-dir``: on a cluster without a shared folder a claim
whose family ran on another node trains its runs again (the same numbers: the cache is keyed by content)."""

from __future__ import annotations

from typing import Any, Callable

from ..errors import LazarusError

INSTALL = "pip install 'lazarus-bench[ray]'"


def run_ray(queues: list, jobs: int, kwargs: dict, overrides: dict | None, origins: dict, log: Callable[[str], None],
            finished: Callable[[Any, dict], None], address: str | None, measure: Callable[[Any, dict], dict],
            summary: Callable[[Any], dict]) -> None:
    """Run the family queues on the Ray cluster at ``address`` (None: a local one), at most ``jobs`` at a time:
    ``measure(job, kwargs)`` runs in a Ray task and returns the record as JSON; ``summary(record)`` is logged."""
    try:
        import ray
    except ImportError as exc:
        raise LazarusError(f"--engine ray needs Ray: {INSTALL}") from exc
    from .records import Record, save_record

    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(measure)
        running: dict[Any, tuple[Any, list]] = {}
        while any(queues) or running:
            busy = [id(queue) for _, queue in running.values()]
            for queue in [q for q in queues if q and id(q) not in busy][: max(0, jobs - len(running))]:
                job = queue.pop(0)
                log(f"start {job.claim} on {origins.get(job.model, {}).get('id', job.model)} ({job.protocol}) on Ray")
                ref = remote.remote(job, {**kwargs, "origins": origins, "overrides": (overrides or {}).get(job.claim)})
                running[ref] = (job, queue)
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                job, _ = running.pop(ref)
                try:
                    record = Record.from_dict(ray.get(ref))
                    save_record(kwargs["report_dir"], record)
                    outcome = summary(record)
                except Exception as exc:  # noqa: BLE001  (a lost task must not stop the other jobs)
                    outcome = {"status": "error", "reason": f"Ray task failed: {type(exc).__name__}: {exc}"}
                finished(job, outcome)
    finally:
        ray.shutdown()
