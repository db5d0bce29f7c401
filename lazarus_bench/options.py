"""Every option's valid range, declared once: the CLI's argument types, the library's config checks and the claim
parameter checks (``--params``) all read these tables, so a new option cannot get a weaker check in one place."""

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

    def __str__(self) -> str:
        low = "-inf" if self.low == -INF else self._number(self.low)
        high = "inf" if self.high == INF else self._number(self.high)
        left = "[" if self.low_closed and self.low != -INF else "("
        right = "]" if self.high_closed and self.high != INF else ")"
        return f"{'an integer' if self.kind is int else 'a finite number'} in {left}{low}, {high}{right}"

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
        return above and below

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
POSITIVE = Interval(float, 0.0, low_closed=False)
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
    "scale": POSITIVE,
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

# Claim parameters (``--params``), by name: the writeups' numbers, test sizes and thresholds.
PARAMS: dict[str, Range] = {
    "C": POSITIVE,
    "aggressive_cls_weight": OrNone(PROB),
    "aggressive_lr_scale": NON_NEGATIVE,
    "aggressive_optimizer": OrNone(Choice(("adamw", "adam", "sgd"))),
    "aggressive_planted_drop": OrNone(POINTS),
    "aggressive_stage2_steps": COUNT,
    "alpha": OPEN_PROB,
    "answer_prob": PROB,
    "batch_size": COUNT,
    "budget_rounds": Interval(int, 1, 100),
    "argmax_margin": Interval(float, 0.0, 0.75),
    "argmax_prompts": Interval(int, 8, 400),
    "checkpoints": Each(COUNT, min_len=2),
    "cls_weight": PROB,
    "cluster_share": PROB,
    "cluster_weight": NON_NEGATIVE,
    "control_margin": PROB,
    "data": Choice(("auto", "generated", "real")),
    "data_seed": SEED,
    "equivalence_null_sd": POSITIVE,
    "eval_seed": SEED,
    "feedback": Choice((True, False)),
    "first_log_step": COUNT,
    "full_lr": POSITIVE,
    "group_size": Interval(int, 2),
    "k_random": Interval(float, 0.0, 1000.0),  # 0: the writeup's threshold alone (T' = T)
    "label_permutation": OrNone(SEED),
    "late_fraction": Interval(float, 0.0, 0.5, low_closed=False),
    "layer": COUNT0,
    "layer_fraction": FRACTION_OF_DEPTH,
    "layer_window_fraction": Interval(float, 0.0, 0.5),
    "lora_lr": POSITIVE,
    "lora_rank": COUNT,
    "loss_window": COUNT,
    "low_lr_scale": NON_NEGATIVE,
    "lr": NON_NEGATIVE,
    "lr_scale": NON_NEGATIVE,
    "plant_calibration_draws": Interval(int, 1, 300),  # a third are products: more than ~350 cannot all differ
    "plant_prob": Interval(float, 0.0, 0.99),
    "plant_replicate": Interval(int, 0, 2**20),
    "random_draws": Interval(int, 1, 100),
    "max_accuracy": PROB,
    "max_accuracy_drop": PROB,
    "max_ceiling": PROB,
    "max_classifier_prob": PROB,
    "max_cosine": Interval(float, 0.0, 1.0),
    "max_drop_low_lr": POINTS,
    "max_l0_accuracy": PROB,
    "max_new_tokens": COUNT,
    "max_off_mode": COUNT0,
    "max_op_word_prob": PROB,
    "max_prob": PROB,
    "max_probe_change": PROB,
    "max_text_loss_ratio": POSITIVE,
    "max_trainable_fraction": PROB,
    "min_accuracy": PROB,
    "min_ari": Interval(float, -0.5, 1.0),
    "min_base_answers": PROB,
    "min_cls_loss_fall": RELATIVE_FALL,
    "min_cluster_accuracy": PROB,
    "min_collapse_rate": PROB,
    "min_correct": COUNT0,
    "min_drop_aggressive": POINTS,
    "min_family_prob": PROB,
    "min_gain": Interval(float, -1.0, 1.0),
    "min_late_share": PROB,
    "min_m1_above_chance": Interval(float, -1.0, 1.0),  # accuracy minus chance
    "min_memory_ratio": POSITIVE,
    "min_lens_ceiling": PROB,
    "min_params": COUNT0,
    "min_peak_accuracy": PROB,
    "min_post_trained": PROB,
    "min_instruct_chat_gain": Interval(float, -1.0, 1.0),
    "min_instruct_skill_change": Interval(float, -1.0, 1.0),
    "min_prob": PROB,
    "min_readout_move": PROB,
    "min_remain_association": NON_NEGATIVE,
    "min_remain_presence": PROB,
    "min_reward_rise": Interval(float, -1.0, 1.0),
    "min_rise_ratio": POSITIVE,
    "min_seeds": COUNT,
    "min_speed_ratio": POSITIVE,
    "min_spellable": PROB,
    "min_stage1_accuracy": PROB,
    "min_stage2_accuracy_move": POINTS,
    "min_val_loss_fall": RELATIVE_FALL,
    "min_variance_share": PROB,
    "n_bootstrap": Interval(int, 20),
    "n_eval": COUNT,
    "n_examples": COUNT,
    "n_lens_heldout": COUNT,
    "n_null": COUNT,
    "n_pairs": Interval(int, 4, 64),
    "null_word_draw": Interval(int, -1, 2**20),
    "n_permutations": COUNT0,
    "n_splits": Interval(int, 2),
    "n_train": COUNT,
    "n_val": COUNT,
    "only_op": OrNone(Choice(("multiply", "add", "subtract", "divide"))),
    "operation": Choice(("multiply", "add", "subtract", "divide")),
    "planted_drop": OrNone(POINTS),
    "position": Choice(("last", "operator")),
    "prompt_set": Choice(("symbol", "word")),
    "prompt_suffix": Choice(("", " ")),
    "prompts_per_step": COUNT,
    "reference": Choice(("full", "lora")),
    "reference_vocab": COUNT,
    "seed": SEED,
    "stage1_steps": COUNT,
    "stage2_steps": COUNT,
    "start_reward_range": Each(PROB, min_len=2, max_len=2),
    "steps": OrNone(COUNT),  # None: the writeup's run length
    "top_fraction": OPEN_PROB,
    "top_k": COUNT,
    "top_k_written": COUNT,
    "val_fraction": OPEN_PROB,
    "val_loss_margin": NON_NEGATIVE,
    "variants": Each(Choice(("M1", "M2", "M3")), min_len=1),
    "verdict_top_k": OrNone(COUNT),
    "word": Choice(("multiply", "add", "subtract", "divide")),
    "writeup_baseline": PROB,
    "writeup_peak": PROB,
    "writeup_relative_gain": NON_NEGATIVE,
    "writeup_typical": Each(Interval(float, 0.0, 1.0), min_len=2, max_len=2),
}

# Where one claim reads a parameter differently from the others.
CLAIM_PARAMS: dict[tuple[str, str], Range] = {
    ("H03", "prompt_set"): Choice(("deconfounded", "writeup")),
    ("H01", "prompt_seed"): Interval(int, -1, 2**32 - 1),
}


def param_range(claim_id: str, name: str) -> Range | None:
    """The declared range of claim ``claim_id``'s parameter ``name`` (None when undeclared)."""
    return CLAIM_PARAMS.get((claim_id, name), PARAMS.get(name))


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
