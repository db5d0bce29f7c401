"""H03: word prompts show emergence: a probe near chance at block 0 that peaks in middle layers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from .. import prompts, stats
from ..analysis import probes
from ..analysis.features import last_token_states
from ..errors import LazarusError
from ..harness.base import POSITIVE, ClaimContext, Control, ControlUnavailable, Outcome
from ..harness.common import (
    EMB,
    LayerProbes,
    cluster_means,
    cv_predictions,
    floats_or_none,
    layer_curve,
    nested_peak,
    permutation_p,
    probe_prompt_set,
    probed_labels,
    probed_texts,
    random_init_control,
)
from ..harness.controls import GradedControl
from ..harness.params import Param
from ..harness.plants import Wrapped
from ..harness.registry import claim
from ..options import PROB, Choice, Interval
from ..prompts import PromptSet
from ..stats import ClaimStatistic, Verdict


def planted_head(keys: mx.array, key_classes: mx.array, directions: mx.array):
    """A block's hook that adds class c's direction at every position of each row that holds one of class c's
    tokens, recognised by its residual (which, with no attention before this block, is the token's own). A
    hand-written attention head that reads the operation word: the class appears at this block and not before."""
    keys = keys / mx.linalg.norm(keys, axis=-1, keepdims=True)

    def hook(x: mx.array, h: mx.array) -> mx.array:
        unit = x.astype(mx.float32) / mx.linalg.norm(x.astype(mx.float32), axis=-1, keepdims=True)
        seen = mx.max((unit @ keys.T > 0.999).astype(mx.float32), axis=1)  # (batch, keys)
        written = mx.minimum(seen @ key_classes, 1.0) @ directions  # (batch, hidden)
        return h + written[:, None, :].astype(h.dtype)

    return hook


def planted_feature(ctx: ClaimContext) -> ClaimContext:
    """Emergence by construction: attention silenced before the middle block (so block 0 sees only the last
    token, which the de-confounded set balances across classes) and a planted head at the middle block that writes
    a class direction (4x the residual norm) wherever a class-specific token occurs."""
    handle = ctx.fresh_handle()
    middle = max(1, handle.layer_at_depth(0.5))
    silence_attention(handle, handle.layers[:middle])
    items = list(prompts.word_set_deconfounded())
    labels = sorted({it.label for it in items})
    tokens = {label: set() for label in labels}
    for it in items:
        tokens[it.label].update(handle.encode(it.text))
    specific = sorted((t, labels.index(c)) for c in labels for t in tokens[c]
                      - set().union(*(tokens[o] for o in labels if o != c)))
    if {c for _, c in specific} != set(range(len(labels))):
        raise ControlUnavailable("some class has no token of its own in the de-confounded prompts")
    keys = handle.forward([[t] for t, _ in specific]).hidden[middle][:, 0].astype(mx.float32)
    key_classes = mx.array(np.eye(len(labels), dtype=np.float32)[[c for _, c in specific]])
    rng = np.random.default_rng(ctx.params["seed"])
    basis = np.linalg.qr(rng.standard_normal((handle.hidden_size, len(labels))))[0].T
    scale = 4.0 * float(mx.mean(mx.linalg.norm(keys, axis=-1)))
    handle.layers[middle] = Wrapped(handle.layers[middle], planted_head(keys, key_classes,
                                                                        mx.array(basis.astype(np.float32) * scale)))
    return ctx.variant(handle=handle)


def silence_attention(handle, layers) -> None:
    """Zero the attention output of ``layers``: their residual at a position then depends on its token alone."""
    for layer in layers:
        out = getattr(getattr(layer, "self_attn", None), "o_proj", None)
        if out is None or "scales" in out:
            raise ControlUnavailable(f"no dense self_attn.o_proj in {handle.model_type} blocks to silence")
        out.weight = mx.zeros_like(out.weight)


def planted_prompts(keys: mx.array, bags: mx.array, written: mx.array):
    """A block's hook that adds ``written[j]`` at every position of a row whose set of tokens (recognised by their
    token-only residuals ``keys``) is prompt j's (``bags[j]``); rows matching no prompt are left alone."""
    keys = keys / mx.linalg.norm(keys, axis=-1, keepdims=True)
    sizes = mx.sum(bags, axis=1)

    def hook(x: mx.array, h: mx.array) -> mx.array:
        unit = x.astype(mx.float32) / mx.linalg.norm(x.astype(mx.float32), axis=-1, keepdims=True)
        seen = mx.max((unit @ keys.T > 0.999).astype(mx.float32), axis=1)  # (batch, keys)
        match = (seen @ bags.T == sizes) & (mx.sum(seen, axis=1, keepdims=True) == sizes)  # (batch, prompts)
        return h + (match.astype(mx.float32) @ written)[:, None, :].astype(h.dtype)

    return hook


def written_classes(labels: list[str], strength: float, rng: np.random.Generator) -> list[str]:
    """The class each prompt's plant writes: its own with probability q = (strength - 25%) / 75%, else one of the
    4 classes at random (its own included), so a probe that reads the written class is right with probability
    ``strength`` on each prompt, independently. The draws are the same at every strength (common random numbers)."""
    q = (strength - 0.25) / 0.75
    if not 0.0 <= q <= 1.0:
        raise LazarusError(f"H03's planted accuracy {strength:g} is outside [25%, 100%]")
    classes = sorted(set(labels))
    own, other = rng.random(len(labels)), rng.integers(len(classes), size=len(labels))
    return [label if u < q else classes[c] for label, u, c in zip(labels, own, other)]


def prompts_planted(ctx: ClaimContext, strength: float, replicate: int) -> ClaimContext:
    """Emergence that a probe reads at a rate it must earn: attention silenced in every block (so no block sees any
    token but its own, and block 0 is at chance: the last token is balanced across classes), then at the middle block
    each prompt gets a class direction (unit basis x the mean residual norm): its own class's with probability
    q, a random class's otherwise (``written_classes``). Each prompt is right with probability ``strength``, so the
    cells the sign test counts, and the verdict, vary between replicates."""
    handle = ctx.fresh_handle()
    middle = max(1, handle.layer_at_depth(0.5))
    silence_attention(handle, handle.layers)
    items = list(prompts.word_set_deconfounded())
    labels = sorted({it.label for it in items})
    encoded = [set(handle.encode(text)) for text in probed_texts(items, ctx.params)]
    vocab = sorted(set().union(*encoded))
    bags = np.zeros((len(items), len(vocab)), dtype=np.float32)
    for j, ids in enumerate(encoded):
        bags[j, [vocab.index(t) for t in ids]] = 1.0
    if len({row.tobytes() for row in bags}) < len(items):
        raise ControlUnavailable("two de-confounded prompts hold the same tokens: rows cannot be told apart")
    keys = handle.forward([[t] for t in vocab]).hidden[middle][:, 0].astype(mx.float32)
    unit = np.array(keys / mx.linalg.norm(keys, axis=-1, keepdims=True))
    if np.max(unit @ unit.T - 2 * np.eye(len(vocab))) > 0.999:
        raise ControlUnavailable(f"two tokens share a residual direction at block {middle}: rows cannot be told apart")
    rng = np.random.default_rng([ctx.params["seed"], replicate])
    basis = np.linalg.qr(rng.standard_normal((handle.hidden_size, len(labels))))[0].T
    scale = float(mx.mean(mx.linalg.norm(keys, axis=-1)))
    drawn = written_classes([it.label for it in items], strength, rng)
    written = np.stack([basis[labels.index(c)] * scale for c in drawn]).astype(np.float32)
    handle.layers[middle] = Wrapped(handle.layers[middle], planted_prompts(keys, mx.array(bags), mx.array(written)))
    return ctx.variant(handle=handle)


TEST_DESCRIPTION = (
    "nested leave-one-template-out (peak layer chosen by inner stratified CV on the other templates); block-0, peak "
    "and gain each by the exact sign test over template x operand-pair cells (a cell's prompts share their "
    "cross-validated fate, so prompts are not independent trials; the gain's significance against 0, its shortfall "
    "against the minimum gain); cluster bootstrap CI of the gain (magnitude only); max-statistic null for the "
    "stratified peak with labels permuted within cells")


def accuracy_curve(probed, control, null: np.ndarray, blocks: list[int]) -> dict:
    """Probe accuracy by layer (both CV schemes, the permutation null's mean, the control task, the random-init
    model)."""
    null_mean = [None] * len(probed.labels)
    for j, i in enumerate(blocks):
        null_mean[i] = float(null[:, j].mean())
    return layer_curve(probed, {
        "stratified CV": floats_or_none(probed.series("accuracy")),
        "leave-one-template-out": floats_or_none(probed.series("group_accuracy")),
        "permutation null mean": null_mean,
        "control task (Hewitt-Liang)": floats_or_none(probed.series("control_accuracy")),
        "random-init stratified": floats_or_none(control.series("accuracy")),
        "random-init leave-one-template-out": floats_or_none(control.series("group_accuracy")),
    })


@dataclass
class H03Fit:
    """H03's fits on the word prompts: probes of every layer (and of the other prompt set), block 0's cross-validated
    predictions, the within-cell permutation null and the nested, selection-free peak; the rest tests and words
    these."""

    p: dict
    words: PromptSet
    groups: list
    other_name: str
    other: LayerProbes
    probed: LayerProbes
    blocks: list[int]
    candidates: list[int]
    cells: list[str]
    strat0: np.ndarray
    group0: np.ndarray
    null: np.ndarray
    chosen: np.ndarray
    base_pred: np.ndarray
    chosen_row: np.ndarray

    @property
    def y(self) -> np.ndarray:
        return self.probed.y

    @property
    def n(self) -> int:
        return int(self.y.size)

    @property
    def base_row(self) -> int:
        return self.probed.row(self.p["layer"])

    @property
    def k0(self) -> tuple[int, int]:
        """Block-0 prompts correct under stratified and under leave-one-template-out CV."""
        return int(np.sum(self.strat0 == self.y)), int(np.sum(self.group0 == self.y))

    @property
    def acc_s(self) -> np.ndarray:
        return np.array(self.probed.series("accuracy"))

    @property
    def acc_g(self) -> np.ndarray:
        return np.array(self.probed.series("group_accuracy"))

    @property
    def peak_s(self) -> int:
        """The row of the stratified peak among the blocks after the base block."""
        return self.candidates[int(np.argmax(self.acc_s[self.candidates]))]

    @property
    def peak_g(self) -> int:
        return self.candidates[int(np.argmax(self.acc_g[self.candidates]))]

    @property
    def p_peak(self) -> float:
        """The stratified peak's p against the max-statistic null over the candidate blocks."""
        cand_cols = [self.blocks.index(i) for i in self.candidates]
        return permutation_p(float(self.acc_s[self.peak_s]), self.null[:, cand_cols].max(axis=1))

    @property
    def correct_sel(self) -> np.ndarray:
        return (self.chosen == self.y).astype(float)

    @property
    def correct_base(self) -> np.ndarray:
        return (self.base_pred == self.y).astype(float)

    @property
    def diff(self) -> np.ndarray:
        """Per prompt: correct at the selection-free peak minus correct at the base block."""
        return self.correct_sel - self.correct_base

    @property
    def k_sel(self) -> int:
        return int(self.correct_sel.sum())

    @property
    def gain(self) -> float:
        return float(self.diff.mean())


def h03_prompt_sets(p: dict) -> tuple[PromptSet, str, PromptSet]:
    """The word prompts the claim probes (``prompt_set``), and the other set's name and prompts, reported beside."""
    sets = {"deconfounded": prompts.word_set_deconfounded(), "writeup": prompts.word_set()}
    if p["prompt_set"] not in sets:
        raise LazarusError(f"H03 prompt_set must be one of {', '.join(sets)}, not '{p['prompt_set']}'")
    other_name = next(name for name in sets if name != p["prompt_set"])
    return sets[p["prompt_set"]], other_name, sets[other_name]


def later_blocks(labels: list, base: int) -> list[int]:
    """The rows of the blocks after block ``base``, where the peak is looked for (one line if there are none)."""
    rows = [i for i, label in enumerate(labels) if label != EMB and label > base]
    if not rows:
        raise LazarusError(f"H03 needs a block after block {base}; this model has "
                           f"{sum(label != EMB for label in labels)} block(s)")
    return rows


def cells_of(words: PromptSet) -> list[str]:
    """Each prompt's template x operand-pair cell: the unit the sign tests and the null's permutations count."""
    return [f"template {it.template}, pair {it.pair}" for it in words]


def h03_fit(ctx: ClaimContext) -> H03Fit:
    """Probe both word sets, then block 0's cross-validated predictions, the permutation null within template x
    operand-pair cells (the unit: a cell's prompts share their cross-validated fate) and the nested peak."""
    p = ctx.params
    base = p["layer"]
    words, other_name, other_set = h03_prompt_sets(p)
    groups = [it.template for it in words]
    probed = probe_prompt_set(ctx.handle(), words, groups, p)
    other = probe_prompt_set(ctx.handle(), other_set, [it.template for it in other_set], p)
    y = probed.y
    base_row = probed.row(base)
    blocks = [i for i, label in enumerate(probed.labels) if label != EMB]
    candidates = later_blocks(probed.labels, base)
    strat0, group0 = cv_predictions(probed.features[base_row], y, probed.groups, n_splits=p["n_splits"],
                                    seed=p["seed"], C=p["C"])
    cells = cells_of(words)
    if "within template x operand-pair cells" not in ctx.test("peak_above_null"):
        raise LazarusError(f"H03 implements a within-cell permutation null, not '{ctx.test('peak_above_null')}'")
    null = probes.cluster_permutation_null(probed.features[blocks], y, cells, n_splits=p["n_splits"],
                                           n_permutations=p["n_permutations"], seed=p["seed"], C=p["C"])
    chosen, base_pred, chosen_row = nested_peak(probed.features, y, probed.groups, candidates, base_row,
                                                n_splits=p["n_splits"], seed=p["seed"], C=p["C"])
    return H03Fit(p=p, words=words, groups=groups, other_name=other_name, other=other, probed=probed, blocks=blocks,
                  candidates=candidates, cells=cells, strat0=strat0, group0=group0, null=null, chosen=chosen,
                  base_pred=base_pred, chosen_row=chosen_row)


def gain_statistics(fit: H03Fit, ctx: ClaimContext) -> dict:
    """The selection-free gain per cell: its sign test against 0, its cluster bootstrap interval (NaN when every cell
    is the same at both layers: a bootstrap then says nothing) and Cohen's d."""
    p, alpha = ctx.params, ctx.params["alpha"]
    _, diff_cells = cluster_means(fit.diff, fit.cells)
    m = len(diff_cells)
    gain_test = stats.threshold_claim(diff_cells, 0.0, "above", alpha, test=ctx.test("gain"), min_n=1,
                                      name="gain per template x pair cell")
    level = 1.0 - 2.0 * alpha
    degenerate = float(np.ptp(diff_cells)) == 0.0
    boot = stats.bootstrap_ci(diff_cells, np.mean, confidence=level, n_resamples=p["n_bootstrap"], seed=p["seed"])
    low, high = (math.nan, math.nan) if degenerate else (boot.ci_low, boot.ci_high)
    effect = stats.one_sample_d(diff_cells, 0.0, confidence=level) if m >= 2 else None
    return {"cells": diff_cells, "m": m, "test": gain_test, "level": level, "degenerate": degenerate, "low": low,
            "high": high, "effect": effect}


def l0_against(fit: H03Fit, ctx: ClaimContext, m: int) -> list[str]:
    """The CV schemes whose block-0 accuracy the sign test over cells puts above the near-chance bound, worded."""
    p, y, n = ctx.params, fit.y, fit.n
    against = []
    for name, pred in (("stratified", fit.strat0), ("leave-one-template-out", fit.group0)):
        cl = stats.threshold_claim(cluster_means(pred == y, fit.cells)[1], p["max_l0_accuracy"], "below", p["alpha"],
                                   test=ctx.test("l0_near_chance"), min_n=1)
        if cl.verdict == Verdict.REFUTED:
            against.append(f"block-{p['layer']} accuracy ({name}) {int(np.sum(pred == y))}/{n}: above "
                           f"{p['max_l0_accuracy']:.0%} in {cl.n - cl.details['on_claimed_side']} of {m} cells "
                           f"(sign test over cells p={cl.details['p_opposite']:.3g})")
    return against


def peak_part(correct: np.ndarray, stratified_peak: float, cells: list[str], ctx: ClaimContext) -> ClaimStatistic:
    """The peak part: SUPPORTED when the selection-free peak and the stratified maximum both reach the minimum;
    REFUTED when the sign test over cells puts most cells below it."""
    p, n, k = ctx.params, int(correct.size), int(correct.sum())
    low = p["min_peak_accuracy"] - 1e-9
    met = k / n >= low and stratified_peak >= low
    by_cell = stats.threshold_claim(cluster_means(correct, cells)[1], p["min_peak_accuracy"], "above", p["alpha"],
                                    test=ctx.test("peak"), min_n=1)
    against, m = by_cell.verdict == Verdict.REFUTED, by_cell.n
    return stats.evidence(
        "selection-free peak accuracy", value=k / n, n=m, against=against, met=met,
        reason=f"selection-free peak accuracy {k}/{n} " + (
            f"below {p['min_peak_accuracy']:.0%} in most of {m} cells (sign test over cells "
            f"p={by_cell.details['p_opposite']:.3g})" if against else
            f"{'>=' if met else '<'} {p['min_peak_accuracy']:.0%}"))


def read_peak(ctx: ClaimContext) -> Outcome:
    """The peak part alone, for the graded control that plants it: the probed set's states, the stratified accuracy
    at each block after the base block and the nested selection-free peak; no null, no other set, no random model."""
    p = ctx.params
    words, _, _ = h03_prompt_sets(p)
    X, labels = last_token_states(ctx.handle(), probed_texts(words, p))
    y, groups = probed_labels(words, p), np.asarray([it.template for it in words])
    candidates = later_blocks(labels, p["layer"])
    stratified = [probes.probe_layer(X[r], y, n_splits=p["n_splits"], n_permutations=0, seed=p["seed"],
                                     C=p["C"]).accuracy for r in candidates]
    chosen, _, _ = nested_peak(X, y, groups, candidates, labels.index(p["layer"]), n_splits=p["n_splits"],
                               seed=p["seed"], C=p["C"])
    cells = cells_of(words)
    part = peak_part((chosen == y).astype(float), max(stratified), cells, ctx)
    return Outcome(statistic=stats.pending("selection-free peak accuracy", part.statistic, n=part.n),
                   ours=part.reason, parts={"peak": part})


def h03_parts(fit: H03Fit, gain: dict, ctx: ClaimContext) -> tuple[dict[str, ClaimStatistic], ClaimStatistic]:
    """The criteria's parts (block 0 near chance, the peak, the gain, the peak above the null), and the gain's
    shortfall test against the minimum gain, which the details report."""
    p, alpha, base, n, m = ctx.params, ctx.params["alpha"], ctx.params["layer"], fit.n, gain["m"]
    (k0_s, k0_g), g, gain_test, p_peak = fit.k0, fit.gain, gain["test"], fit.p_peak
    l0_ok = k0_s / n <= p["max_l0_accuracy"] + 1e-9 and k0_g / n <= p["max_l0_accuracy"] + 1e-9
    gain_ok = g >= p["min_gain"] - 1e-9
    l0_refuted = l0_against(fit, ctx, m)
    gain_short = stats.threshold_claim(gain["cells"], p["min_gain"], "above", alpha, test=ctx.test("gain"), min_n=1)
    gain_against = gain_short.verdict == Verdict.REFUTED
    parts = {
        "l0_near_chance": stats.evidence(
            f"block-{base} accuracy", value=k0_s / n, n=m, against=bool(l0_refuted), met=l0_ok,
            reason="; ".join(l0_refuted) or f"block {base} at {k0_s / n:.0%}/{k0_g / n:.0%} "
                                            f"({'<=' if l0_ok else '>'} {p['max_l0_accuracy']:.0%})"),
        "peak": peak_part(fit.correct_sel, float(fit.acc_s[fit.peak_s]), fit.cells, ctx),
        "gain": stats.evidence(
            "selection-free gain", value=g, n=m, p_value=gain_test.p_value, against=gain_against,
            met=gain_ok and gain_test.p_value < alpha,
            reason=f"selection-free gain {g:+.1%} " + (
                f"below {p['min_gain']:.0%} in {m - gain_short.details['on_claimed_side']} of {m} cells (sign test "
                f"over cells p={gain_short.details['p_opposite']:.3g})" if gain_against else
                f"{'>=' if gain_ok else '<'} {p['min_gain']:.0%} (sign test over {m} cells "
                f"p={gain_test.p_value:.3g})")),
        "peak_above_null": stats.evidence(
            "max-statistic permutation", value=float(fit.acc_s[fit.peak_s]), n=n, p_value=p_peak,
            met=p_peak < alpha, reason=f"max-statistic permutation p={p_peak:.3g} "
                                       f"{'<' if p_peak < alpha else '>='} {alpha}"),
    }
    return parts, gain_short


def other_set_details(fit: H03Fit) -> dict:
    """Block-0 and peak accuracy on the prompt set the claim does not test, reported beside."""
    other, base = fit.other, fit.p["layer"]
    return {"accuracy_l0_stratified": float(other.series("accuracy")[other.row(base)]),
            "accuracy_l0_leave_one_template_out": float(other.series("group_accuracy")[other.row(base)]),
            "peak_accuracy_stratified": float(max(np.array(other.series("accuracy"))[fit.candidates]))}


def h03_details(fit: H03Fit, gain: dict, gain_short: ClaimStatistic, control: LayerProbes) -> dict:
    """The statistic's details: block-0 and peak accuracies under both schemes, the null, the nested gain per cell
    and its tests, the random-init model and the other prompt set."""
    p, base, n, m, diff = fit.p, fit.p["layer"], fit.n, gain["m"], fit.diff
    k0_s, k0_g = fit.k0
    acc_s, acc_g, peak_s, peak_g, base_row = fit.acc_s, fit.acc_g, fit.peak_s, fit.peak_g, fit.base_row
    c_acc, gain_test, labels = np.array(control.series("accuracy")), gain["test"], fit.probed.labels
    return {
        "layer": base, "n_prompts": n, "chance": 1.0 / len(set(fit.y.tolist())), "alpha": p["alpha"],
        "accuracy_l0_stratified": k0_s / n, "accuracy_l0_leave_one_template_out": k0_g / n,
        "peak_layer_stratified": labels[peak_s], "peak_accuracy_stratified": float(acc_s[peak_s]),
        "peak_layer_leave_one_template_out": labels[peak_g],
        "peak_accuracy_leave_one_template_out": float(acc_g[peak_g]),
        "naive_gain_stratified": float(acc_s[peak_s] - acc_s[base_row]),
        "naive_gain_leave_one_template_out": float(acc_g[peak_g] - acc_g[base_row]),
        "cross_scheme_gain": float(acc_g[peak_s] - acc_g[base_row]),
        "max_statistic_p": fit.p_peak, "n_permutations": int(p["n_permutations"]),
        "selected_peak_accuracy": fit.k_sel / n, "selected_layers": sorted({labels[r] for r in fit.chosen_row}),
        "gain": fit.gain, "gain_ci": [gain["low"], gain["high"]], "gain_ci_degenerate": gain["degenerate"],
        "gain_p_cells": gain_test.p_value, "gain_below_min_p_cells": gain_short.details["p_opposite"],
        "n_cells": m, "cluster": "template x operand pair",
        "cluster_note": "a cell's 4 prompts (one per class) differ only in the operation word and share their "
                        "cross-validated fate; cells sharing a template (one leave-one-template-out fold) or an "
                        "operand pair are treated as independent",
        "gain_per_cell": gain["cells"].tolist(),
        "mde": gain_test.details["mde"],
        "mde_definition": f"gain per cell (accuracy points): {gain_test.details['mde_definition']}; {m} cells",
        "discordant": {"peak_only": int(np.sum(diff > 0)), "l0_only": int(np.sum(diff < 0))},
        "selectivity_at_peak": fit.probed.report.layers[peak_s].selectivity,
        "random_init_l0_accuracy": float(c_acc[control.row(base)]),
        "random_init_peak_accuracy": float(c_acc[fit.candidates].max()),
        "peak_depth_fraction": labels[peak_s] / len(fit.blocks),
        "prompt_set": p["prompt_set"],
        f"{fit.other_name}_set": other_set_details(fit),
        "test": TEST_DESCRIPTION,
    }


def h03_samples(fit: H03Fit) -> list[dict]:
    """One row per prompt: its block-0 predictions under both schemes and its nested peak's layer and prediction."""
    labels = fit.probed.labels
    return [{"prompt": it.text, "label": it.label, "template": it.template, "pair": it.pair,
             "pred_l0_stratified": str(fit.strat0[i]), "pred_l0_leave_one_template_out": str(fit.group0[i]),
             "selected_layer": labels[fit.chosen_row[i]], "pred_selected": str(fit.chosen[i]),
             "correct_selected": bool(fit.correct_sel[i]), "correct_l0": bool(fit.correct_base[i])}
            for i, it in enumerate(fit.words)]


def h03_ours(fit: H03Fit, gain: dict, control: LayerProbes) -> str:
    """The record's one-line summary of what this model showed."""
    base, n, (k0_s, k0_g), labels = fit.p["layer"], fit.n, fit.k0, fit.probed.labels
    acc_s, acc_g, peak_s, peak_g = fit.acc_s, fit.acc_g, fit.peak_s, fit.peak_g
    c_acc = np.array(control.series("accuracy"))
    return (f"block {base}: {k0_s / n:.1%} stratified / {k0_g / n:.1%} leave-one-template-out; peak "
            f"{acc_s[peak_s]:.1%} at block {labels[peak_s]} (stratified, max-statistic p={fit.p_peak:.3g}) / "
            f"{acc_g[peak_g]:.1%} at block {labels[peak_g]} (leave-one-template-out); selection-free peak "
            f"{fit.k_sel / n:.1%}, gain {fit.gain:+.1%} [{gain['low']:+.1%}, {gain['high']:+.1%}] "
            f"(sign test over {gain['m']} template x pair cells p={gain['test'].p_value:.3g}); random-init model: "
            f"block {base} {c_acc[control.row(base)]:.1%}, peak {c_acc[fit.candidates].max():.1%}")


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {
    "l0_near_chance": {"threshold": "max_l0_accuracy", "side": "below"},
    "peak": {"threshold": "min_peak_accuracy", "side": "above"},
    "gain": {"threshold": "min_gain", "side": "above"},
    "peak_above_null": {"minus": "chance", "threshold": 0.0, "side": "above"},  # peak accuracy above chance
}


@claim(
    id="H03",
    title="Word prompts show true emergence after block 0",
    statement="For word prompts ('What is 7 times 8?') a linear probe is near chance at block 0 and peaks in the "
               "middle layers.",
    source="seed 002 (CORRECTION: True Classifier Emergence: Word-Based Prompts)",
    criterion="on the de-confounded word set (operand pairs and templates balanced across classes; the writeup's "
               "set reported beside): block-0 accuracy <= 50% (stratified and leave-one-template-out), peak >= 75% at "
               "a block > 0 "
               "(selection-free nested estimate and stratified max, max-statistic permutation p < 0.05 with labels "
               "shuffled within template x operand-pair cells), "
               "peak - L0 >= 25 points (nested); block-0, peak and gain tested by the exact sign test over the 16 "
               "template x operand-pair cells (clustered prompts are not independent trials)",
    writeup="Llama-3.2-1B 43.8% -> 81.2% (L4-5), TinyLlama 12.5% -> 81.2% (L16-17), Granite 18.8% -> 31.2%",
    params={"max_l0_accuracy": Param(0.5, PROB, help="largest block-0 probe accuracy (0-1) counted as near chance"),
            "min_peak_accuracy": Param(0.75, PROB, help="smallest peak probe accuracy (0-1) at a block after block 0"),
            "min_gain": Param(0.25, Interval(float, -1.0, 1.0),
                              help="smallest selection-free probe accuracy gain (0-1) of the peak block over block "
                                   "0"),
            "layer": 0, "n_splits": 4, "n_permutations": 100, "n_bootstrap": 1999, "C": 1.0, "alpha": 0.05, "seed": 0,
            "prompt_set": Param("deconfounded", Choice(("deconfounded", "writeup")),
                                help="word prompts probed: the de-confounded set, or the writeup's own set")},
    tests={"l0_near_chance": "sign", "peak": "sign", "gain": "sign",
           "peak_above_null": "max-statistic label permutation within template x operand-pair cells"},
    fast={"n_permutations": 20, "n_bootstrap": 499},
    controls=(
        random_init_control(Verdict.SUPPORTED),
        Control(name="feature planted at a middle block", kind=POSITIVE,
                description="attention silenced before the middle block and a hand-written head there that writes a "
                            "class direction wherever the operation word occurs: chance at block 0, perfect from the "
                            "middle block on",
                build=planted_feature, effect=Verdict.SUPPORTED, sanity=True),
    ),
    graded=(GradedControl(name="emergence planted prompt by prompt",
                          description="attention silenced in every block; at the middle block each prompt gets its "
                                      "own class direction (the mean residual norm) with probability q and a random "
                                      "class's otherwise, so each prompt is right with probability 25% + 75% q, "
                                      "independently (one draw and direction basis per replicate, the same draws at "
                                      "every strength); read by the peak part alone. The writeup's peak is 81.25%. "
                                      "No strength sits on the 75% threshold: the peak part is met by its point "
                                      "estimate, so a plant there is seen about half the time, not at alpha",
                          units="expected peak accuracy (25% + 75% x the share of prompts planted with their class)",
                          strengths=(0.6875, 0.71875, 0.78125, 0.8125, 0.875), replicates=8, build=prompts_planted,
                          effect=Verdict.SUPPORTED, threshold=0.75, writeup=0.8125, part="peak"),),
    readers={"peak": read_peak},
)
def measure_h03(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    fit = h03_fit(ctx)
    gain = gain_statistics(fit, ctx)
    control = probe_prompt_set(ctx.random_control(), fit.words, fit.groups, p)
    parts, gain_short = h03_parts(fit, gain, ctx)
    statistic = stats.pending(
        f"selection-free gain: chosen peak layer minus block {p['layer']} (leave-one-template-out)", fit.gain,
        ci_low=gain["low"], ci_high=gain["high"], confidence=gain["level"], effect_size=gain["effect"],
        p_value=gain["test"].p_value, n=gain["m"], details=h03_details(fit, gain, gain_short, control))
    return Outcome(statistic=statistic, ours=h03_ours(fit, gain, control), samples=h03_samples(fit),
                   curves={"probe_accuracy": accuracy_curve(fit.probed, control, fit.null, fit.blocks)}, parts=parts)
