"""Every command-line option's valid range, declared once: the CLI's argument types and the library's config checks
read these tables, so a new option cannot get a weaker check in one place. Claim parameters use the same ranges."""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

from .errors import LazarusError

INF = math.inf


@dataclass(frozen=True)
class Interval:
    """Numbers of ``kind`` (int or float) between ``low`` and ``high``, each end closed or open; always finite."""

    kind: type
    low: float = -INF
    high: float = INF
    low_closed: bool = True
    high_closed: bool = True
    step: int | None = None  # integers only: the value is ``low`` plus a multiple of ``step``

    def __str__(self) -> str:
        low = "-inf" if self.low == -INF else self._number(self.low)
        high = "inf" if self.high == INF else self._number(self.high)
        left = "[" if self.low_closed and self.low != -INF else "("
        right = "]" if self.high_closed and self.high != INF else ")"
        steps = f", {low} plus a multiple of {self.step}" if self.step else ""
        return f"{'an integer' if self.kind is int else 'a finite number'} in {left}{low}, {high}{right}{steps}"

    def _number(self, end: float) -> str:
        return str(int(end)) if self.kind is int else f"{end:g}"

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy scalars are Real too
            return False
        if self.kind is int and not (isinstance(value, numbers.Integral) or float(value).is_integer()):
            return False
        if not math.isfinite(value):
            return False
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below and (not self.step or (int(value) - int(self.low)) % self.step == 0)

    def parse(self, text: str) -> Any:
        """``text`` as a number of this interval, or ``ValueError`` saying what was expected."""
        try:
            value = self.kind(text)
        except (TypeError, ValueError):
            raise ValueError(f"expected {self}, got {text!r}") from None
        if not self.contains(value):
            raise ValueError(f"expected {self}, got {text!r}")
        return value


@dataclass(frozen=True)
class Choice:
    """One of ``values``."""

    values: tuple

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def contains(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)


@dataclass(frozen=True)
class Each:
    """A list (possibly empty unless ``min_len``) whose every item lies in ``item``."""

    item: Interval | Choice
    min_len: int = 0
    max_len: int | None = None

    def __str__(self) -> str:
        size = f" of {self.min_len}" + (f" to {self.max_len}" if self.max_len else " or more") if self.min_len else ""
        return f"a list{size}, each {self.item}"

    def contains(self, value: Any) -> bool:
        return (isinstance(value, (list, tuple)) and len(value) >= self.min_len
                and (self.max_len is None or len(value) <= self.max_len) and all(self.item.contains(v) for v in value))


@dataclass(frozen=True)
class OrNone:
    """None (the declared default meaning) or a value of ``inner``."""

    inner: Interval | Choice | Each

    def __str__(self) -> str:
        return f"null or {self.inner}"

    def contains(self, value: Any) -> bool:
        return value is None or self.inner.contains(value)


Range = Interval | Choice | Each | OrNone

COUNT = Interval(int, 1)
COUNT0 = Interval(int, 0)
SEED = Interval(int, 0, 2**32 - 1)
PROB = Interval(float, 0.0, 1.0)
OPEN_PROB = Interval(float, 0.0, 1.0, low_closed=False, high_closed=False)
ABOVE_ZERO = Interval(float, 0.0, low_closed=False)
NON_NEGATIVE = Interval(float, 0.0)
FRACTION_OF_DEPTH = Interval(float, 0.0, 1.0)
POINTS = Interval(float, 0.0, 100.0)
RELATIVE_FALL = Interval(float, -INF, 1.0)  # (before - after) / before: 1 at most, negative for a rise

# Command-line options (and the library config fields they set), by the option's name without dashes.
OPTIONS: dict[str, Range] = {
    "steps": COUNT0,  # 0 steps is the untrained null run (as learning rate 0): allowed, it trains nothing
    "lr": NON_NEGATIVE,  # learning rate 0 is the project's own null run: allowed, and it trains nothing
    "seed": SEED,
    "data_seed": SEED,
    "batch_size": COUNT,
    "n_train": COUNT,
    "rank": COUNT,
    "lora_rank": COUNT,
    "scale": ABOVE_ZERO,
    "save_at": Each(COUNT),
    "ranks": Interval(int, 1, 64),
    "weight_decay": Interval(float, 0.0, 1.0),
    "cls_weight": PROB,  # the loss is w * cls + (1 - w) * answer: w > 1 trains the model to unlearn its answers
    "stage1_steps": COUNT,
    "stage2_steps": COUNT,
    "warmup": COUNT0,
    "top_k": COUNT,
    "permutations": COUNT0,
    "null": COUNT,
    "seeds": COUNT,
    "jobs": Interval(int, 1, 256),
}

def check(table: dict[str, Range], name: str, value: Any, owner: str = "") -> Any:
    """``value`` if it lies in ``name``'s declared range, else a one-line ``LazarusError`` naming the range."""
    declared = table.get(name)
    if declared is None:
        raise LazarusError(f"{owner}{name}: no declared range (add it to lazarus_bench/options.py)")
    if not declared.contains(value):
        raise LazarusError(f"{owner}{name} = {value!r}: expected {declared}")
    return value


def option(name: str) -> Callable[[str], Any]:
    """The argparse type of command-line option ``name``: its declared interval, parsed from text."""
    declared = OPTIONS[name]
    interval = declared.item if isinstance(declared, Each) else declared
    if not isinstance(interval, Interval):
        raise LazarusError(f"option {name}: only numeric ranges have an argparse type")

    def parse(text: str) -> Any:
        try:
            return interval.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse names the type in "invalid <name> value" messages
    return parse


def check_steps(steps: int, save_at: tuple[int, ...] = (), owner: str = "") -> None:
    """Relations between training options: every save step within the run. (A warm-up as long as the run is a
    defined schedule, all warm-up: ``TrainConfig.learning_rate`` clamps it to the steps.)"""
    late = [s for s in save_at if s > steps]
    if late:
        raise LazarusError(f"{owner}save_at {late} lies beyond steps = {steps}: those adapters would never be saved")
