"""Claim parameters, each declared once with its default, valid range and one line of help.

A parameter only one claim file reads is declared there, as ``Param(default, range, help=...)``. One that several
claim files read (the significance level, a training run's steps) has its range and help here, in ``SHARED``; each
claim gives only its default. The help is display text: the meaning hash leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..options import (
    ABOVE_ZERO,
    COUNT,
    COUNT0,
    FRACTION_OF_DEPTH,
    NON_NEGATIVE,
    OPEN_PROB,
    PROB,
    RELATIVE_FALL,
    SEED,
    Choice,
    Each,
    Interval,
    OrNone,
    Range,
)


@dataclass(frozen=True)
class Param:
    """One parameter of one claim: its default, the values it may take and what it sets, in the claim's units."""

    default: Any
    range: Range
    help: str


@dataclass(frozen=True)
class Shared:
    """A parameter several claim files read: its range and help; each claim that reads it gives its default."""

    range: Range
    help: str


SHARED: dict[str, Shared] = {
    "C": Shared(ABOVE_ZERO, help="inverse L2 regularisation strength of the logistic-regression probe"),
    "alpha": Shared(OPEN_PROB, help="significance level of every declared test of the claim"),
    "batch_size": Shared(COUNT, help="training examples per batch"),
    "budget_rounds": Shared(Interval(int, 1, 100),
                            help="GRPO budget: rounds of the writeup's steps a run may train to meet its floors"),
    "cls_weight": Shared(PROB,
                         help="weight w (0-1) of the lens classification loss in the training objective (0: none)"),
    "data_seed": Shared(SEED, help="seed of the generated training data (each run adds its own seed)"),
    "full_lr": Shared(ABOVE_ZERO, help="learning rate of the full fine-tuning arm"),
    "group_size": Shared(Interval(int, 2), help="completions sampled per prompt in each GRPO group"),
    "k_random": Shared(Interval(float, 0.0, 1000.0),
                       help="k in T' = max(T, k x R): multiples of the random level a threshold stays above (0: T)"),
    "layer": Shared(COUNT0, help="block whose probe accuracy is tested (H02) or is the near-chance baseline (H03)"),
    "layer_fraction": Shared(FRACTION_OF_DEPTH,
                             help="depth (0-1 of the blocks) the claim reads, trains or centres its window at: "
                                  "int(f x L)"),
    "layer_window_fraction": Shared(Interval(float, 0.0, 0.5),
                                    help="half-width (fraction of depth) of the window around layer_fraction for "
                                         "peak blocks"),
    "lora_lr": Shared(ABOVE_ZERO, help="learning rate of the LoRA arm"),
    "lora_rank": Shared(COUNT, help="rank of the dual-reward LoRA adapter"),
    "loss_window": Shared(COUNT,
                          help="last training steps averaged for a run's final classification and answer losses"),
    "lr": Shared(NON_NEGATIVE, help="learning rate of the claim's training run"),
    "lr_scale": Shared(NON_NEGATIVE, help="factor on the training runs' learning rate (0: the untrained control)"),
    "max_accuracy": Shared(PROB, help="largest restricted-argmax accuracy (0-1) a collapsed seed may have"),
    "max_new_tokens": Shared(COUNT, help="most new tokens generated per GRPO completion"),
    "max_off_mode": Shared(COUNT0, help="prompts whose argmax may differ from the mode word in a collapsed seed"),
    "max_prob": Shared(PROB, help="largest lens probability (0-1): op words at any layer (H01), task-token peak (H11)"),
    "max_trainable_fraction": Shared(PROB, help="largest share (0-1) of the model's parameters LoRA may train"),
    "min_cls_loss_fall": Shared(RELATIVE_FALL,
                                help="gate: smallest fall of the classification loss (fraction of its start) a run "
                                     "must show"),
    "min_collapse_rate": Shared(PROB, help="smallest share (0-1) of seeds whose lens collapses onto one word"),
    "min_memory_ratio": Shared(ABOVE_ZERO, help="smallest peak-memory ratio full / LoRA"),
    "min_params": Shared(COUNT0, help="gate: fewest model parameters for the cost ratios to count"),
    "min_readout_move": Shared(PROB,
                               help="gate: smallest move of a class word's full-vocab lens prob (0-1) from the "
                                    "untrained model"),
    "min_reward_rise": Shared(Interval(float, -1.0, 1.0),
                              help="gate: smallest rise of mean GRPO reward, last fifth of the steps minus first "
                                   "fifth"),
    "min_rise_ratio": Shared(ABOVE_ZERO, help="smallest multiple of its step-0 value the task-token peak must reach"),
    "min_seeds": Shared(COUNT, help="fewest seeds a verdict may rest on (fewer: inconclusive)"),
    "min_speed_ratio": Shared(ABOVE_ZERO, help="smallest training tokens/s ratio LoRA / full"),
    "min_variance_share": Shared(PROB, help="gate: smallest share (0-1) of GRPO groups whose rewards differ"),
    "n_bootstrap": Shared(Interval(int, 20), help="bootstrap resamples of the confidence interval"),
    "n_permutations": Shared(COUNT0, help="label permutations of the permutation null"),
    "n_splits": Shared(Interval(int, 2), help="cross-validation folds of the probe"),
    "n_train": Shared(COUNT, help="training examples"),
    "n_val": Shared(COUNT, help="validation examples"),
    "only_op": Shared(OrNone(Choice(("multiply", "add", "subtract", "divide"))),
                      help="train GRPO on prompts of this operation only (null: all operations)"),
    "plant_prob": Shared(Interval(float, 0.0, 0.99),
                         help="graded control: mean lens P(op word) planted at the claim's block (0: none)"),
    "plant_replicate": Shared(Interval(int, 0, 2**20),
                              help="graded control: which calibration-prompt draw sets the plant's strength"),
    "prompt_set": Shared(Choice(("symbol", "word")),
                         help="prompts of the multiply-vs-add direction: symbol or word prompts"),
    "prompts_per_step": Shared(COUNT, help="prompts per GRPO step"),
    "random_draws": Shared(Interval(int, 1, 100),
                           help="random-init models whose statistic's mean is R, the random level of a threshold"),
    "reference": Shared(Choice(("full", "lora")),
                        help="method of the comparison arm: full fine-tuning, or LoRA (the negative control)"),
    "seed": Shared(SEED, help="seed of the probes' CV folds, permutations, bootstrap and random nulls"),
    "start_reward_range": Shared(Each(PROB, min_len=2, max_len=2),
                                 help="gate: [low, high] bounds of mean GRPO reward over the first fifth of the "
                                      "steps"),
    "steps": Shared(OrNone(COUNT), help="training steps of each run (null: the writeup's run length)"),
    "top_k": Shared(COUNT, help="top tokens per router expert checked for op words (H10) or kept per lens block (H13)"),
}
