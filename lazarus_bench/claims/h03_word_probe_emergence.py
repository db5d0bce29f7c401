"""H03: word prompts show emergence: a probe near chance at block 0 that peaks in middle layers."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

from .. import prompts, stats
from ..analysis import probes
from ..errors import LazarusError
from ..harness.base import POSITIVE, ClaimContext, Control, ControlUnavailable, Outcome
from ..harness.common import (
    EMB,
    cluster_means,
    cv_predictions,
    floats_or_none,
    layer_curve,
    nested_peak,
    permutation_p,
    probe_prompt_set,
    probed_texts,
    random_init_control,
)
from ..harness.controls import GradedControl
from ..harness.params import Param
from ..harness.plants import Wrapped
from ..harness.registry import claim
from ..options import PROB, Choice, Interval
from ..stats import Verdict


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


N_CELLS = 16  # template x operand-pair cells of the de-confounded set, 4 prompts (one per class) each


def cells_planted(ctx: ClaimContext, strength: float, replicate: int) -> ClaimContext:
    """Emergence in a share of the cells: attention silenced in every block (so no block sees any token but its
    own), then at the middle block each prompt of a seeded choice of cells gets its class direction (unit basis
    x the mean residual norm) and the other cells nothing. Block 0 is at chance (the last token is balanced
    across classes) and a planted share s gives peak accuracy 25% + 75% s: ``strength`` is that accuracy, for a whole
    number of cells (a strength between two is refused: the plant would not be the strength the report shows)."""
    n = round((strength - 0.25) / 0.75 * N_CELLS)
    if not math.isclose(0.25 + 0.75 * n / N_CELLS, strength):
        raise LazarusError(f"H03's planted accuracy {strength:g} is not 25% + 75% x k/{N_CELLS} for a whole k")
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
    cells = sorted({(it.template, it.pair) for it in items})
    chosen = {cells[i] for i in rng.choice(len(cells), size=n, replace=False)}
    basis = np.linalg.qr(rng.standard_normal((handle.hidden_size, len(labels))))[0].T
    scale = float(mx.mean(mx.linalg.norm(keys, axis=-1)))
    written = np.stack([basis[labels.index(it.label)] * scale if (it.template, it.pair) in chosen
                        else np.zeros(handle.hidden_size) for it in items]).astype(np.float32)
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
    graded=(GradedControl(name="emergence planted in a share of cells",
                          description="attention silenced in every block; at the middle block the class direction "
                                      "(the mean residual norm) written for every prompt of a seeded share of the 16 "
                                      "template x pair cells, nothing for the rest: block 0 at chance, peak accuracy "
                                      "25% + 75% x share (one cell choice and direction basis per replicate); 10, "
                                      "11, 12 and 14 cells; the writeup's 81.2% is 13 of 16 prompts, 81.25%. The "
                                      "sign test over 16 cells needs 12 on the claimed side (p = 0.038; 11 gives p = "
                                      "0.105), so no plant below 12 cells can be seen: the MDE is the test's "
                                      "resolution, and the 75% threshold lies between 10 and 11 cells",
                          units="expected peak accuracy (25% + 75% x share of cells planted)",
                          strengths=(0.71875, 0.765625, 0.8125, 0.90625), replicates=4, build=cells_planted,
                          effect=Verdict.SUPPORTED, threshold=0.75, writeup=0.8125),),
)
def measure_h03(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    alpha, base = p["alpha"], p["layer"]
    sets = {"deconfounded": prompts.word_set_deconfounded(), "writeup": prompts.word_set()}
    if p["prompt_set"] not in sets:
        raise LazarusError(f"H03 prompt_set must be one of {', '.join(sets)}, not '{p['prompt_set']}'")
    words = sets[p["prompt_set"]]
    other_name = next(name for name in sets if name != p["prompt_set"])
    groups = [it.template for it in words]
    probed = probe_prompt_set(ctx.handle(), words, groups, p)
    other = probe_prompt_set(ctx.handle(), sets[other_name], [it.template for it in sets[other_name]], p)
    y, n = probed.y, int(probed.y.size)
    chance = 1.0 / len(set(y.tolist()))
    base_row = probed.row(base)
    blocks = [i for i, label in enumerate(probed.labels) if label != EMB]
    candidates = [i for i in blocks if probed.labels[i] > base]
    if not candidates:
        raise LazarusError(f"H03 needs a block after block {base}; this model has {len(blocks)} block(s)")

    strat0, group0 = cv_predictions(probed.features[base_row], y, probed.groups, n_splits=p["n_splits"],
                                    seed=p["seed"], C=p["C"])
    k0_s, k0_g = int(np.sum(strat0 == y)), int(np.sum(group0 == y))
    acc_s = np.array(probed.series("accuracy"))
    acc_g = np.array(probed.series("group_accuracy"))
    peak_s = candidates[int(np.argmax(acc_s[candidates]))]
    peak_g = candidates[int(np.argmax(acc_g[candidates]))]

    # prompts of one template x operand-pair cell share their cross-validated fate: the cell is the unit
    cells = [f"template {it.template}, pair {it.pair}" for it in words]
    if "within template x operand-pair cells" not in ctx.test("peak_above_null"):
        raise LazarusError(f"H03 implements a within-cell permutation null, not '{ctx.test('peak_above_null')}'")
    null = probes.cluster_permutation_null(probed.features[blocks], y, cells, n_splits=p["n_splits"],
                                           n_permutations=p["n_permutations"], seed=p["seed"], C=p["C"])
    cand_cols = [blocks.index(i) for i in candidates]
    max_null = null[:, cand_cols].max(axis=1)
    p_peak = permutation_p(float(acc_s[peak_s]), max_null)

    chosen, base_pred, chosen_row = nested_peak(probed.features, y, probed.groups, candidates, base_row,
                                                n_splits=p["n_splits"], seed=p["seed"], C=p["C"])
    correct_sel = (chosen == y).astype(float)
    correct_base = (base_pred == y).astype(float)
    diff = correct_sel - correct_base
    k_sel = int(correct_sel.sum())
    gain = float(diff.mean())
    _, diff_cells = cluster_means(diff, cells)
    m = len(diff_cells)
    gain_test = stats.threshold_claim(diff_cells, 0.0, "above", alpha, test=ctx.test("gain"), min_n=1,
                                      name="gain per template x pair cell")
    level = 1.0 - 2.0 * alpha
    degenerate = float(np.ptp(diff_cells)) == 0.0  # every cell the same at both layers: a bootstrap says nothing
    boot = stats.bootstrap_ci(diff_cells, np.mean, confidence=level, n_resamples=p["n_bootstrap"], seed=p["seed"])
    gain_low, gain_high = (math.nan, math.nan) if degenerate else (boot.ci_low, boot.ci_high)
    effect = stats.one_sample_d(diff_cells, 0.0, confidence=level) if m >= 2 else None

    control = probe_prompt_set(ctx.random_control(), words, groups, p)
    c_acc = np.array(control.series("accuracy"))

    l0_ok = k0_s / n <= p["max_l0_accuracy"] + 1e-9 and k0_g / n <= p["max_l0_accuracy"] + 1e-9
    peak_ok = k_sel / n >= p["min_peak_accuracy"] - 1e-9 and acc_s[peak_s] >= p["min_peak_accuracy"] - 1e-9
    gain_ok = gain >= p["min_gain"] - 1e-9
    l0_against = []
    for name, pred in (("stratified", strat0), ("leave-one-template-out", group0)):
        cl = stats.threshold_claim(cluster_means(pred == y, cells)[1], p["max_l0_accuracy"], "below", alpha,
                                   test=ctx.test("l0_near_chance"), min_n=1)
        if cl.verdict == Verdict.REFUTED:
            l0_against.append(f"block-{base} accuracy ({name}) {int(np.sum(pred == y))}/{n}: above "
                              f"{p['max_l0_accuracy']:.0%} in {cl.n - cl.details['on_claimed_side']} of {m} cells "
                              f"(sign test over cells p={cl.details['p_opposite']:.3g})")
    peak_cells = stats.threshold_claim(cluster_means(correct_sel, cells)[1], p["min_peak_accuracy"], "above", alpha,
                                       test=ctx.test("peak"), min_n=1)
    gain_short = stats.threshold_claim(diff_cells, p["min_gain"], "above", alpha, test=ctx.test("gain"), min_n=1)
    peak_against = peak_cells.verdict == Verdict.REFUTED
    gain_against = gain_short.verdict == Verdict.REFUTED
    gain_met = gain_ok and gain_test.p_value < alpha
    parts = {
        "l0_near_chance": stats.evidence(
            f"block-{base} accuracy", value=k0_s / n, n=m, against=bool(l0_against), met=l0_ok,
            reason="; ".join(l0_against) or f"block {base} at {k0_s / n:.0%}/{k0_g / n:.0%} "
                                            f"({'<=' if l0_ok else '>'} {p['max_l0_accuracy']:.0%})"),
        "peak": stats.evidence(
            "selection-free peak accuracy", value=k_sel / n, n=m, against=peak_against, met=peak_ok,
            reason=f"selection-free peak accuracy {k_sel}/{n} " + (
                f"below {p['min_peak_accuracy']:.0%} in most of {m} cells (sign test over cells "
                f"p={peak_cells.details['p_opposite']:.3g})" if peak_against else
                f"{'>=' if peak_ok else '<'} {p['min_peak_accuracy']:.0%}")),
        "gain": stats.evidence(
            "selection-free gain", value=gain, n=m, p_value=gain_test.p_value, against=gain_against, met=gain_met,
            reason=f"selection-free gain {gain:+.1%} " + (
                f"below {p['min_gain']:.0%} in {m - gain_short.details['on_claimed_side']} of {m} cells (sign test "
                f"over cells p={gain_short.details['p_opposite']:.3g})" if gain_against else
                f"{'>=' if gain_ok else '<'} {p['min_gain']:.0%} (sign test over {m} cells "
                f"p={gain_test.p_value:.3g})")),
        "peak_above_null": stats.evidence(
            "max-statistic permutation", value=float(acc_s[peak_s]), n=n, p_value=p_peak, met=p_peak < alpha,
            reason=f"max-statistic permutation p={p_peak:.3g} {'<' if p_peak < alpha else '>='} {alpha}"),
    }

    details = {
        "layer": base, "n_prompts": n, "chance": chance, "alpha": alpha,
        "accuracy_l0_stratified": k0_s / n, "accuracy_l0_leave_one_template_out": k0_g / n,
        "peak_layer_stratified": probed.labels[peak_s], "peak_accuracy_stratified": float(acc_s[peak_s]),
        "peak_layer_leave_one_template_out": probed.labels[peak_g],
        "peak_accuracy_leave_one_template_out": float(acc_g[peak_g]),
        "naive_gain_stratified": float(acc_s[peak_s] - acc_s[base_row]),
        "naive_gain_leave_one_template_out": float(acc_g[peak_g] - acc_g[base_row]),
        "cross_scheme_gain": float(acc_g[peak_s] - acc_g[base_row]),
        "max_statistic_p": p_peak, "n_permutations": int(p["n_permutations"]),
        "selected_peak_accuracy": k_sel / n, "selected_layers": sorted({probed.labels[r] for r in chosen_row}),
        "gain": gain, "gain_ci": [gain_low, gain_high], "gain_ci_degenerate": degenerate,
        "gain_p_cells": gain_test.p_value, "gain_below_min_p_cells": gain_short.details["p_opposite"],
        "n_cells": m, "cluster": "template x operand pair",
        "cluster_note": "a cell's 4 prompts (one per class) differ only in the operation word and share their "
                        "cross-validated fate; cells sharing a template (one leave-one-template-out fold) or an "
                        "operand pair are treated as independent",
        "gain_per_cell": diff_cells.tolist(),
        "mde": gain_test.details["mde"],
        "mde_definition": f"gain per cell (accuracy points): {gain_test.details['mde_definition']}; {m} cells",
        "discordant": {"peak_only": int(np.sum(diff > 0)), "l0_only": int(np.sum(diff < 0))},
        "selectivity_at_peak": probed.report.layers[peak_s].selectivity,
        "random_init_l0_accuracy": float(c_acc[control.row(base)]),
        "random_init_peak_accuracy": float(c_acc[candidates].max()),
        "peak_depth_fraction": probed.labels[peak_s] / len(blocks),
        "prompt_set": p["prompt_set"],
        f"{other_name}_set": {"accuracy_l0_stratified": float(other.series("accuracy")[other.row(base)]),
                              "accuracy_l0_leave_one_template_out":
                                  float(other.series("group_accuracy")[other.row(base)]),
                              "peak_accuracy_stratified": float(max(np.array(other.series("accuracy"))[candidates]))},
        "test": TEST_DESCRIPTION,
    }
    statistic = stats.pending(
        f"selection-free gain: chosen peak layer minus block {base} (leave-one-template-out)", gain,
        ci_low=gain_low, ci_high=gain_high, confidence=level, effect_size=effect, p_value=gain_test.p_value, n=m,
        details=details)
    samples = [{"prompt": it.text, "label": it.label, "template": it.template, "pair": it.pair,
                "pred_l0_stratified": str(strat0[i]), "pred_l0_leave_one_template_out": str(group0[i]),
                "selected_layer": probed.labels[chosen_row[i]], "pred_selected": str(chosen[i]),
                "correct_selected": bool(correct_sel[i]), "correct_l0": bool(correct_base[i])}
               for i, it in enumerate(words)]
    curves = {"probe_accuracy": accuracy_curve(probed, control, null, blocks)}
    ours = (f"block {base}: {k0_s / n:.1%} stratified / {k0_g / n:.1%} leave-one-template-out; peak "
            f"{acc_s[peak_s]:.1%} at block {probed.labels[peak_s]} (stratified, max-statistic p={p_peak:.3g}) / "
            f"{acc_g[peak_g]:.1%} at block {probed.labels[peak_g]} (leave-one-template-out); selection-free peak "
            f"{k_sel / n:.1%}, gain {gain:+.1%} [{gain_low:+.1%}, {gain_high:+.1%}] "
            f"(sign test over {m} template x pair cells p={gain_test.p_value:.3g}); random-init model: block {base} "
            f"{c_acc[control.row(base)]:.1%}, peak {c_acc[candidates].max():.1%}")
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves, parts=parts)
