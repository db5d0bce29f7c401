"""H13: after SFT, subtraction prompts show a 'remain' token near 62% depth; answers crystallise late."""

from __future__ import annotations

import weakref
from dataclasses import replace
from typing import Sequence

import numpy as np

from .. import prompts, stats
from ..analysis.lens import logit_lens, target_spellings
from ..cache import FixtureCache
from ..errors import LazarusError
from ..harness.base import NEGATIVE, POSITIVE, ClaimContext, Control, ControlUnavailable, Gate, Outcome, not_instruct
from ..harness.common import blocks, depth_window
from ..harness.fixtures import SEED001_CODE, seed001_lora, seed001_lora_parts
from ..harness.params import Param
from ..harness.registry import claim
from ..harness.scale import random_level
from ..harness.scale import rise as rise_over
from ..models import ModelHandle, load_model
from ..options import NON_NEGATIVE, PROB, Choice, Interval
from ..stats import Verdict
from ..stats.verdicts import combine


def family_targets(handle: ModelHandle, words: Sequence[str]) -> tuple[list[str], list[str]]:
    """The family words this tokenizer can spell, and those it cannot."""
    ok, missing = [], []
    for word in words:
        try:
            target_spellings(handle, word)
            ok.append(word)
        except LazarusError:
            missing.append(word)
    return ok, missing


def family_prob(res, words: Sequence[str]) -> np.ndarray:
    """Per layer: the probability that the next word is one of the family (both spellings).

    Teacher-forced full-word probabilities are summed over distinct token sequences, dropping any
    sequence that extends another one (its probability is already inside the shorter one's).
    """
    forms = {}
    for word in words:
        for spelling in res.targets[word].spellings.values():
            forms.setdefault(tuple(spelling.ids), spelling.full_prob)
    keep = [ids for ids in forms if not any(o != ids and ids[:len(o)] == o for o in forms)]
    return np.sum([forms[ids] for ids in keep], axis=0)


def h13_lens(handle: ModelHandle, params: dict, words: Sequence[str]) -> list[dict]:
    """Lens on the ``operation`` prompts (subtraction): remain-family and answer first-token probability per block."""
    items = list(prompts.seed000_tests().where(label=params["operation"]))
    if not items:
        raise LazarusError(f"seed 000's tests have no '{params['operation']}' prompt")
    answers = [str(it.answer) for it in items]
    results = logit_lens(handle, [it.text for it in items], [*words, *sorted(set(answers))], layers=blocks(handle),
                         top_k=params["top_k"])
    rows = []
    for item, answer, res in zip(items, answers, results):
        ans = res.targets[answer].spellings["without_space"]
        p_ans = ans.first_prob
        first = next((b for b in blocks(handle) if p_ans[b] >= params["answer_prob"]), None)
        rows.append({"prompt": item.text, "answer": item.answer, "answer_first_token": handle.decode_token(ans.ids[0]),
                     "family_by_layer": family_prob(res, words).tolist(), "answer_prob_by_layer": p_ans.tolist(),
                     "crystallisation_layer": first,
                     "top5": {str(b): [(t, round(q, 5)) for t, _, q in res.top[b][0][:5]] for b in blocks(handle)}})
    return rows


def no_planted_remain(ctx: ClaimContext) -> ClaimContext:
    raise ControlUnavailable("not built: the claim joins the remain family near 62% depth and late answer "
                             "crystallisation in one lens, and an edit that writes 'remaining' at one block also moves "
                             "the later blocks' answer probabilities, so no single edit plants the effect cleanly")


_PEAKS: weakref.WeakKeyDictionary[ClaimContext, tuple[float, float]] = weakref.WeakKeyDictionary()


def remain_peaks(ctx: ClaimContext) -> tuple[float, float]:
    """The base model's lens: mean over prompts of the remain family's peak probability over blocks, on the
    subtraction prompts and on the other operations' prompts (once per context: both gates read it)."""
    if ctx not in _PEAKS:
        _PEAKS[ctx] = _remain_peaks(ctx)
    return _PEAKS[ctx]


def _remain_peaks(ctx: ClaimContext) -> tuple[float, float]:
    handle = ctx.handle()
    words, _ = family_targets(handle, prompts.remain_family())
    if not words:
        return 0.0, 0.0

    def peak(items) -> float:
        results = logit_lens(handle, [it.text for it in items], words, layers=blocks(handle), top_k=1)
        return float(np.mean([family_prob(res, words).max() for res in results]))

    tests = prompts.seed000_tests()
    return peak(list(tests.where(label="subtract"))), peak([it for it in tests if it.label != "subtract"])


def remain_presence(ctx: ClaimContext) -> float:
    """The remain family's peak probability on subtraction prompts before SFT: SFT can grow a family the lens
    already shows, and a ratio of two near-zero probabilities (the association gate alone) says nothing."""
    return remain_peaks(ctx)[0]


def remain_association(ctx: ClaimContext) -> float:
    """How much more the base model's lens shows the remain family on subtraction prompts than on the other
    operations' prompts (subtraction / the rest). A model with no such association (ratio near 1) cannot grow
    "remain" out of it during SFT."""
    sub, others = remain_peaks(ctx)
    return sub / max(others, 1e-30)


def late_start(n_layers: int, late_fraction: float) -> int:
    """The first block in the last ``late_fraction`` of depth (b / L >= 1 - late_fraction): 13 of 16, 7 of 8; the
    last block on a model too shallow to have one there."""
    return next((b for b in range(n_layers) if b / n_layers >= 1.0 - late_fraction - 1e-12), n_layers - 1)


def remain_level(handle: ModelHandle, params: dict, words: Sequence[str], near: Sequence[int]) -> dict:
    """R: the remain family's window peak (mean over the prompts) on random-init models of this architecture."""
    return random_level(handle, f"H13 remain family in blocks {list(near)}, {params['operation']} prompts",
                        lambda h: h13_summary(h13_lens(h, params, words), near, h.n_layers)[0], params["random_draws"])


def h13_summary(rows: list[dict], near: Sequence[int], late_from: int) -> tuple[float, float]:
    """Mean over prompts of the family's maximum within the window, and the share of prompts crystallising late."""
    peaks = [max(r["family_by_layer"][b] for b in near) for r in rows]
    late = [r["crystallisation_layer"] is not None and r["crystallisation_layer"] >= late_from for r in rows]
    return float(np.mean(peaks)), float(np.mean(late))


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {"remain_rises": {"scale": "log"}, "late_answer": {}}


@claim(
    id="H13",
    no_graded=("not built: the claim joins the remain family's rise near 62% depth and late answer "
               "crystallisation in one lens, and an edit that writes 'remaining' at one block also moves the later "
               "blocks' answer probabilities (see the positive control's reason)"),
    title="After SFT, subtraction shows a 'remain' token at ~62% depth; answers crystallise late",
    statement="After LoRA SFT (500 steps), subtraction prompts show a 'remain' token at ~62% depth, and answers "
               "crystallise only in the last layers.",
    source="seed 001 (Subtraction Classifier at Layer 10; Answer Crystallization)",
    criterion="remain* family (both spellings, full-word probability) at the blocks within 1/16 of depth 0.62 rises "
               "to >= 2x max(before SFT, 10 x R) (R: the same on 5 random-init models), paired by seed; the "
               "writeup's >= 25% reported beside; the first block where the answer's first token is top-1 at p >= "
               "0.5 lies in the last 3/16 of depth for most prompts (share > 0.5); sign test across seeds",
    writeup="'remaining' 53.9% (89 - 34) and 46.3% (65 - 28) at L10 of 16; answers at L13-L15",
    params={"steps": 500, "lr": 1e-4, "batch_size": 8, "n_train": 4500, "data_seed": 1, "top_k": 5,
            "layer_fraction": 0.62, "layer_window_fraction": 0.0625, "min_rise_ratio": 2.0, "k_random": 10,
            "random_draws": 5,
            "min_family_prob": Param(0.25, PROB,
                                     help="smallest remain-family lens probability (0-1) in the depth window"),
            "answer_prob": Param(0.5, PROB,
                                 help="first-token probability (0-1) at which an answer counts as crystallised at "
                                      "a block"),
            "late_fraction": Param(0.1875, Interval(float, 0.0, 0.5, low_closed=False),
                                   help="last share of depth (0-0.5) in which an answer's crystallisation counts "
                                        "as late"),
            "min_late_share": Param(0.5, PROB,
                                    help="share (0-1) of prompts crystallising late that each seed must exceed"),
            "alpha": 0.05, "min_seeds": 5,
            "min_remain_presence": Param(0.01, PROB,
                                         help="gate: smallest base-model remain-family peak probability (0-1) on "
                                              "subtraction"),
            "min_remain_association": Param(2.0, NON_NEGATIVE,
                                            help="gate: smallest base-model remain-family peak ratio, subtraction "
                                                 "/ other ops"),
            "operation": Param("subtract", Choice(("multiply", "add", "subtract", "divide")),
                               help="operation whose seed-000 test prompts the lens reads")},
    applies=not_instruct,
    fast={"steps": 10, "n_train": 160},
    training=True,
    after=("H12",),
    layer_curve=("remain_family", "after SFT"),
    default_seeds={"fast": 1, "slow": 5},
    tests={"remain_rises": "sign", "late_answer": "sign"},
    gates=(Gate(name="remain presence before SFT",
                description="the base model's lens: remain-family peak probability on subtraction prompts, mean over "
                            "prompts (1% floor: the association ratio is meaningless between near-zero "
                            "probabilities)",
                value=remain_presence, threshold_param="min_remain_presence"),
           Gate(name="remain association before SFT",
                description="the base model's lens: remain-family peak probability on subtraction prompts over that "
                            "on the other operations' prompts (as web text gives a real model)",
                value=remain_association, threshold_param="min_remain_association"),),
    controls=(Control(name="addition prompts", kind=NEGATIVE,
                      description="the same SFT runs (cached adapters) read on the addition prompts: 'remaining' has "
                                  "no business there, so the remain family must not pass",
                      build=lambda ctx: ctx.variant(
params={"operation": "add"}),
                      effect=Verdict.SUPPORTED),
              Control(name="planted remain direction", kind=POSITIVE, description="not built (see the reason)",
                      build=no_planted_remain, effect=Verdict.SUPPORTED)),
)
def measure_h13(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    base = ctx.handle()
    words, missing = family_targets(base, prompts.remain_family())
    if not words:
        raise LazarusError("the tokenizer cannot spell any word of the remain family")
    near = depth_window(base.n_layers, p["layer_fraction"], p["layer_window_fraction"])
    late_from = late_start(base.n_layers, p["late_fraction"])
    before = h13_lens(base, p, words)
    base_family, base_late = h13_summary(before, near, late_from)
    level = remain_level(base, p, words, near)
    cache = FixtureCache(ctx.cache_dir, code=SEED001_CODE)
    runs = []
    for seed in ctx.seeds:
        parts = seed001_lora_parts(ctx.model_id, seed, p["steps"], p["lr"], p["batch_size"], p["n_train"],
                                   p["data_seed"])
        reused = cache.valid(cache.path(parts))
        adapter = cache.get_or_build(parts, lambda tmp, seed=seed: seed001_lora(ctx, p, seed, tmp))
        handle = load_model(ctx.model_id, adapter_path=str(adapter))
        rows = h13_lens(handle, p, words)
        family, late = h13_summary(rows, near, late_from)
        runs.append({"seed": seed, "rows": rows, "family": family, "late": late, "adapter_reused": reused})
        del handle
    alpha, min_n = p["alpha"], p["min_seeds"]
    family = [r["family"] for r in runs]
    rises = [rise_over(f, base_family, level, p["k_random"]) for f in family]
    late = [r["late"] for r in runs]
    parts = {
        "remain_rises": stats.threshold_claim(
            rises, p["min_rise_ratio"], "above", alpha, test=ctx.test("remain_rises"), min_n=min_n,
            name=f"remain-family prob in blocks {near} after SFT over max(before, {p['k_random']:g} x R)"),
        "late_answer": stats.threshold_claim(late, p["min_late_share"], "above", alpha,
                                             test=ctx.test("late_answer"), min_n=min_n,
                                             name=f"share of prompts whose answer first reaches p>={p['answer_prob']} "
                                                  f"as top-1 in blocks >= {late_from}"),
    }
    statistic = combine(parts["remain_rises"], parts)
    writeup_form = {"threshold": p["min_family_prob"], "mean_family": float(np.mean(family)),
                    "seeds_at_or_above": sum(f >= p["min_family_prob"] for f in family)}
    statistic = replace(statistic, details={**statistic.details, "window": near, "late_from": late_from,
                                            "random_level": level, "rises": rises, "writeup_form": writeup_form,
                                            "family_words": words, "missing_words": missing,
                                            "base_model": {"family": base_family, "late": base_late}})
    x = [str(b) for b in blocks(base)]

    def mean_layers(rows_list: list[list[dict]], key: str) -> list[float]:
        return np.mean([r[key] for rows in rows_list for r in rows], axis=0).tolist()

    curves = {
        "remain_family": {"x": x, "ylabel": "P(remain family)", "series": {
            "after SFT": mean_layers([r["rows"] for r in runs], "family_by_layer"),
            "base model": mean_layers([before], "family_by_layer")}},
        "answer_first_token": {"x": x, "ylabel": "P(answer first token)", "series": {
            "after SFT": mean_layers([r["rows"] for r in runs], "answer_prob_by_layer"),
            "base model": mean_layers([before], "answer_prob_by_layer")}},
    }
    samples = [{"seed": r["seed"], "model": "sft", "family_in_window": max(row["family_by_layer"][b] for b in near),
                "late": row["crystallisation_layer"] is not None and row["crystallisation_layer"] >= late_from, **row}
               for r in runs for row in r["rows"]]
    samples += [{"seed": None, "model": "base", "family_in_window": max(row["family_by_layer"][b] for b in near),
                 "late": row["crystallisation_layer"] is not None and row["crystallisation_layer"] >= late_from, **row}
                for row in before]
    ours = (f"remain family at blocks {near}: {np.mean(family):.1%} after SFT (base model {base_family:.1%}, "
            f"random-init level {level['random_level']:.2%}; rise x{np.mean(rises):.2f}; writeup's >= "
            f"{p['min_family_prob']:.0%}: {writeup_form['seeds_at_or_above']}/{len(family)} seeds); answers "
            f"crystallise (p>={p['answer_prob']}) in blocks >= {late_from} for "
            f"{np.mean(late):.0%} of {p['operation']} prompts (base model {base_late:.0%})")
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves,
                   extra={"adapter_reused_from_cache": {r["seed"]: r["adapter_reused"] for r in runs}})
