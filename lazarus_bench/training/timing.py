"""Step timing of a training loop: the steady-state tokens/s that H12 and the benchmarks both report."""

from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Sequence

import numpy as np

WARMUP_STEPS = 2


def median(values: Sequence[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(statistics.median(values)) if values else float("nan")


class StepTimer:
    """Wraps a train loop's ``batch_at`` and records when each batch is requested and handed over.

    The loop asks for batch k+1 right after step k is evaluated, so step k's compute time is
    ``enter[k+1] - exit[k]`` (batch building excluded, as mlx-lm times it) and its wall time
    ``enter[k+1] - enter[k]``; the same on the process CPU clock (every thread) gives CPU seconds.
    Batches are SFT-style tuples: inputs first, ``valid`` fourth.
    """

    def __init__(self, batch_at: Callable):
        self.batch_at = batch_at
        self.enter: list[float] = []
        self.exit: list[float] = []
        self.cpu_enter: list[float] = []
        self.cpu_exit: list[float] = []
        self.tokens: list[int] = []
        self.computed: list[int] = []
        self.shape: tuple[int, int] = (0, 0)

    def __call__(self, step: int, rank: int = 0, world: int = 1):
        self.enter.append(time.perf_counter())
        self.cpu_enter.append(time.process_time())
        batch = self.batch_at(step, rank, world)
        self.shape = tuple(int(n) for n in batch[0].shape)
        self.tokens.append(int(batch[3].sum().item()))
        self.computed.append(int(batch[0].size))
        self.cpu_exit.append(time.process_time())
        self.exit.append(time.perf_counter())
        return batch

    def step_seconds(self, end: float) -> list[float]:
        return [e - x for x, e in zip(self.exit, self.enter[1:] + [end])]

    def step_cpu_seconds(self, cpu_end: float) -> list[float]:
        return [e - x for x, e in zip(self.cpu_exit, self.cpu_enter[1:] + [cpu_end])]

    def wall_seconds(self, end: float) -> list[float]:
        return [e - s for s, e in zip(self.enter, self.enter[1:] + [end])]


def steady_slice(n_steps: int) -> slice:
    """The steps that count: all but the first ``WARMUP_STEPS`` (compilation, allocator growth)."""
    return slice(min(WARMUP_STEPS, max(n_steps - 1, 0)), None)


def steady_tokens_per_s(step_tokens: Sequence[float], step_seconds: Sequence[float]) -> float:
    """Mean tokens of a steady step over the median steady step time: the tokens/s every table reports."""
    steady = steady_slice(len(step_seconds))
    return float(np.mean(step_tokens[steady])) / median(step_seconds[steady])


def timed_rates(timer: StepTimer, end: float, cpu_end: float) -> dict:
    """Steady-state tokens/s of a finished run timed by ``timer`` (wall and per CPU-second)."""
    return {"tokens_per_s": steady_tokens_per_s(timer.tokens, timer.step_seconds(end)),
            "tokens_per_cpu_s": steady_tokens_per_s(timer.tokens, timer.step_cpu_seconds(cpu_end)),
            "timed_steps": len(timer.tokens)}
