"""Progress lines for long claim runs: the claim, the part, the step and an estimated time left, on stderr.

Display only: no value flows back from here, and the code hash drops statements that only call this module, so a
progress line never makes a record stale. Quiet for the first minute of a job, then a line at most every 30 s.
"""

from __future__ import annotations

import sys
import time

QUIET_S = 60.0  # a job shorter than this prints nothing
EVERY_S = 30.0  # at most one line per this many seconds

_state = {"job": "", "job_start": 0.0, "part": "", "part_start": 0.0, "last": 0.0, "enabled": True}


def clock() -> float:
    return time.monotonic()


def job(claim: str, model: str) -> None:
    """A claim run on one model starts (its measurement first)."""
    now = clock()
    _state.update(job=f"{claim} on {model}", job_start=now, part="measurement", part_start=now, last=now)


def reset() -> None:
    """No job is running (a command starts): steps print nothing until the next ``job``."""
    _state.update(job="", job_start=0.0, part="", part_start=0.0, last=0.0)


def part(name: str) -> None:
    """The job moves to another part (a control, a graded strength): its time left restarts from here."""
    _state.update(part=name, part_start=clock())


def _eta(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def step(what: str, done: int, total: int) -> None:
    """``done`` of ``total`` steps of ``what`` (a training run, a control's replicates) are finished."""
    now = clock()
    if not _state["enabled"] or not _state["job"] or now - _state["job_start"] < QUIET_S:
        return
    if now - _state["last"] < EVERY_S and done < total:
        return
    _state["last"] = now
    elapsed = now - _state["part_start"]
    left = elapsed / done * (total - done) if done else float("nan")
    eta = _eta(left) if left == left else "?"
    line = f"[{_state['job']}] {_state['part']}: {what} {done}/{total}, about {eta} left in this part"
    try:
        print(line, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        _state["enabled"] = False  # the reader went away (``| head``): progress is not worth failing a run for
