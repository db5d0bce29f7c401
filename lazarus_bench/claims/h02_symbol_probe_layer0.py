"""H02: symbol prompts make a probe trivially perfect at block 0 (the operator token is in the prompt)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import prompts, stats
from ..analysis import probes
from ..analysis.features import last_token_states
from ..stats import Verdict
from .base import NEGATIVE, POSITIVE, ClaimContext, Control, Outcome, claim
from .common import (
    EMB,
    cv_predictions,
    floats_or_none,
    layer_curve,
    permutation_null,
    permutation_p,
    probe_prompt_set,
    probed_texts,
)


@claim(
    id="H02",
    title="Symbol prompts make probes trivially perfect at block 0",
    statement="A linear probe separates the four operations from symbol prompts ('7 * 8 =') already after block 0.",
    source="seed 002 (Results: Linear Probe Accuracy by Layer; CORRECTION: Symbol vs Word-Based Prompts)",
    criterion="accuracy at block 0 >= 95% under stratified shuffled k-fold AND leave-one-pair-out CV, above the "
               "label-permutation null (p < 0.05); control task and random-init model reported",
    writeup="100% at L0 (and every layer) for Llama-3.2-1B, TinyLlama, Granite (16 prompts, 4-fold)",
    params={"min_accuracy": 0.95, "layer": 0, "n_splits": 4, "n_permutations": 100, "C": 1.0, "alpha": 0.05,
            "seed": 0, "position": "last", "label_permutation": None},
    fast={"n_permutations": 30},
    controls=(
        Control("permuted labels", NEGATIVE, "the same prompts with their operation labels shuffled (seed 1): no "
                "probe can beat chance", lambda ctx: ctx.variant(params={"label_permutation": 1}), Verdict.SUPPORTED),
        Control("operator position", POSITIVE, "the probe read at the operator symbol's own token ('7 *'): the "
                "class is in that token's embedding by construction",
                lambda ctx: ctx.variant(params={"position": "operator"}), Verdict.SUPPORTED),
    ),
)
def measure_h02(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    alpha, layer = p["alpha"], p["layer"]
    handle = ctx.handle()
    train, test = prompts.symbol_set("train"), prompts.symbol_set("test")
    probed = probe_prompt_set(handle, train, [it.pair for it in train], p)
    row = probed.row(layer)
    X, y = probed.features[row], probed.y
    strat, group = cv_predictions(X, y, probed.groups, n_splits=p["n_splits"], seed=p["seed"], C=p["C"])
    n, classes = int(y.size), sorted(set(y.tolist()))
    k_s, k_g = int(np.sum(strat == y)), int(np.sum(group == y))
    null = permutation_null(X[None], y, n_splits=p["n_splits"], n_permutations=p["n_permutations"], seed=p["seed"],
                            C=p["C"])[:, 0]
    perm_p = permutation_p(k_s / n, null)

    blocks = [i for i, label in enumerate(probed.labels) if label != EMB]
    best = blocks[int(np.argmax([probed.report.layers[i].accuracy for i in blocks]))]
    X_test, _ = last_token_states(handle, probed_texts(test, p))
    y_test = np.asarray(test.labels())
    held_out = {}
    for name, r in (("best", best), ("layer", row)):
        pred = probes.fit_predict(probed.features[r], y, X_test[r], y_test=y_test, C=p["C"], seed=p["seed"])
        held_out[name] = (probed.labels[r], pred)

    control = probe_prompt_set(ctx.random_control(), train, [it.pair for it in train], p)
    c_layer = control.report.layers[control.row(layer)]

    chance = 1.0 / len(classes)
    folds = probed.report.layers[row].n_splits
    prop_s = stats.proportion_claim(k_s, n, p["min_accuracy"], alpha, chance=chance,
                                    name=f"block-{layer} probe accuracy (stratified {folds}-fold)")
    prop_g = stats.proportion_claim(k_g, n, p["min_accuracy"], alpha, chance=chance, name="leave-one-pair-out")
    met = k_s / n >= p["min_accuracy"] - 1e-9 and k_g / n >= p["min_accuracy"] - 1e-9
    refuted = [name for name, prop in (("stratified", prop_s), ("leave-one-pair-out", prop_g))
               if prop.verdict == Verdict.REFUTED]
    if refuted:
        verdict = Verdict.REFUTED
        reason = (f"block-{layer} accuracy significantly below {p['min_accuracy']:.0%} under "
                  f"{' and '.join(refuted)} CV")
    elif met and perm_p < alpha:
        verdict = Verdict.SUPPORTED
        reason = (f"block-{layer} accuracy {k_s}/{n} (stratified) and {k_g}/{n} (leave-one-pair-out) >= "
                  f"{p['min_accuracy']:.0%}, permutation p={perm_p:.3g} < {alpha}")
    elif met:
        verdict = Verdict.INCONCLUSIVE
        reason = (f"accuracy meets {p['min_accuracy']:.0%} but permutation p={perm_p:.3g} >= {alpha} "
                  f"({p['n_permutations']} permutations)")
    else:
        verdict = Verdict.INCONCLUSIVE
        reason = (f"block-{layer} accuracy {k_s}/{n} (stratified), {k_g}/{n} (leave-one-pair-out) below "
                  f"{p['min_accuracy']:.0%} but not significantly")
    layer_probe = probed.report.layers[row]
    details = {
        **prop_s.details, "layer": layer, "n_classes": len(classes), "accuracy_stratified": k_s / n,
        "accuracy_leave_one_pair_out": k_g / n, "k_leave_one_pair_out": k_g,
        "wilson_leave_one_pair_out": [prop_g.ci_low, prop_g.ci_high], "permutation_p": perm_p,
        "n_permutations": int(p["n_permutations"]), "null_mean": float(null.mean()), "null_std": float(null.std()),
        "binomial_p_vs_chance": prop_s.p_value, "control_task_accuracy": layer_probe.control_accuracy,
        "selectivity": layer_probe.selectivity, "random_init_accuracy": c_layer.accuracy,
        "random_init_group_accuracy": c_layer.group_accuracy, "random_init_selectivity": c_layer.selectivity,
        "best_layer": probed.labels[best], "test_accuracy_best_layer": held_out["best"][1].accuracy,
        "test_accuracy_layer": held_out["layer"][1].accuracy, "n_test": int(y_test.size),
    }
    statistic = replace(prop_s, p_value=perm_p, verdict=verdict, reason=reason, details=details)

    samples = [{"prompt": it.text, "split": "train", "label": it.label, "pair": it.pair, "layer": layer,
                "pred_stratified": str(strat[i]), "pred_leave_one_pair_out": str(group[i]),
                "correct_stratified": bool(strat[i] == y[i]), "correct_leave_one_pair_out": bool(group[i] == y[i])}
               for i, it in enumerate(train)]
    for name, (label, pred) in held_out.items():
        for i, it in enumerate(test):
            samples.append({"prompt": it.text, "split": "test", "label": it.label, "layer": label,
                            "fitted_at": name, "pred": str(pred.labels[i]),
                            "correct": bool(pred.labels[i] == y_test[i]),
                            "proba_true": float(pred.proba[i][pred.classes.index(it.label)])})
    curves = {"probe_accuracy": layer_curve(probed, {
        "stratified CV": floats_or_none(probed.series("accuracy")),
        "leave-one-pair-out": floats_or_none(probed.series("group_accuracy")),
        "control task (Hewitt-Liang)": floats_or_none(probed.series("control_accuracy")),
        "random-init stratified": floats_or_none(control.series("accuracy")),
        "random-init leave-one-pair-out": floats_or_none(control.series("group_accuracy")),
        "chance": [chance] * len(probed.labels),
    })}
    ours = (f"block-{layer} probe accuracy {k_s}/{n} stratified, {k_g}/{n} leave-one-pair-out; permutation p="
            f"{perm_p:.3g} (null mean {null.mean():.1%}); control-task selectivity {layer_probe.selectivity:+.2f}; "
            f"random-init block {layer}: {c_layer.accuracy:.1%} / {c_layer.group_accuracy:.1%}; held-out test "
            f"{held_out['best'][1].accuracy:.0%} at block {probed.labels[best]}")
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves)
