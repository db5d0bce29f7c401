"""H02: symbol prompts make a probe trivially perfect at block 0 (the operator token is in the prompt).

Prompts are clustered: the symbol set has one template and, per class, 16 operand pairs (the writeup's 4, then
generated ones of its form; CLAIMS.md revision 4); the j-th operand pair of every class forms cluster j, which is
also the leave-one-pair-out fold.
Cross-validated predictions inside a cluster share their fate, so they are never counted as independent binomial
trials: a shortfall is tested over clusters (``probes.cluster_shortfall_test``), the permutation null shuffles labels
within clusters, and the CI resamples clusters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import prompts, stats
from ..analysis import probes
from ..analysis.features import last_token_states
from ..errors import LazarusError
from ..harness.base import POSITIVE, ClaimContext, Control, Outcome
from ..harness.common import (
    EMB,
    LayerProbes,
    cluster_means,
    cv_predictions,
    floats_or_none,
    layer_curve,
    permutation_p,
    probe_prompt_set,
    probed_texts,
)
from ..harness.controls import NullControl
from ..harness.params import Param
from ..harness.registry import claim
from ..options import PROB, SEED, Choice, Interval, OrNone
from ..prompts import PromptSet
from ..stats import ClaimStatistic, Verdict

CLUSTER = ("operand pair (the j-th operand pair of every class; one template, so a template x operand-pair cell; "
           "the leave-one-pair-out fold)")
SCHEMES = ("stratified", "leave-one-pair-out")


@dataclass
class H02Fit:
    """H02's fits: cross-validated predictions at the tested block, the permutation null, the probes read on the
    held-out test prompts and the random-init model's probes; the rest of the measure tests and words these."""

    train: PromptSet
    test: PromptSet
    probed: LayerProbes
    row: int
    strat: np.ndarray
    group: np.ndarray
    null: np.ndarray
    best: int
    held_out: dict
    y_test: np.ndarray
    control: LayerProbes

    @property
    def y(self) -> np.ndarray:
        return self.probed.y

    @property
    def pairs(self) -> list[int]:
        return [it.pair for it in self.train]

    @property
    def counts(self) -> tuple[int, int, int]:
        """(prompts, correct under stratified CV, correct under leave-one-pair-out)."""
        return int(self.y.size), int(np.sum(self.strat == self.y)), int(np.sum(self.group == self.y))

    @property
    def perm_p(self) -> float:
        """The stratified accuracy's p against the within-cluster permutation null."""
        n, k_s, _ = self.counts
        return permutation_p(k_s / n, self.null)


def check_declared_tests(ctx: ClaimContext) -> None:
    """Refuse a declared test this measure does not implement: it runs the cluster shortfall test and a permutation
    null within clusters, nothing else."""
    for criterion, declared in (("accuracy", probes.CLUSTER_SHORTFALL_TEST), ("above_null", "within")):
        if declared not in ctx.test(criterion):
            raise LazarusError(f"H02 implements '{declared}' for '{criterion}', not '{ctx.test(criterion)}'")


def held_out_predictions(handle, probed: LayerProbes, test: PromptSet, row: int,
                         p: dict) -> tuple[int, dict, np.ndarray]:
    """Probes fitted on every training prompt at the best block and at the tested one, read on the test prompts:
    (the best block's row, {"best"/"layer": (block label, prediction)}, the test labels)."""
    blocks = [i for i, label in enumerate(probed.labels) if label != EMB]
    best = blocks[int(np.argmax([probed.report.layers[i].accuracy for i in blocks]))]
    X_test, _ = last_token_states(handle, probed_texts(test, p))
    y_test = np.asarray(test.labels())
    held_out = {}
    for name, r in (("best", best), ("layer", row)):
        pred = probes.fit_predict(probed.features[r], probed.y, X_test[r], y_test=y_test, C=p["C"], seed=p["seed"])
        held_out[name] = (probed.labels[r], pred)
    return best, held_out, y_test


def h02_fit(ctx: ClaimContext) -> H02Fit:
    """Probe the symbol set on this model and on its random-init twin, with the tested block's cross-validated
    predictions, the within-cluster permutation null and the held-out test predictions."""
    p = ctx.params
    handle = ctx.handle()
    train, test = prompts.symbol_set_extended(p["n_pairs"]), prompts.symbol_set("test")
    pairs = [it.pair for it in train]
    probed = probe_prompt_set(handle, train, pairs, p)
    row = probed.row(p["layer"])
    X, y = probed.features[row], probed.y
    strat, group = cv_predictions(X, y, probed.groups, n_splits=p["n_splits"], seed=p["seed"], C=p["C"])
    null = probes.cluster_permutation_null(X[None], y, pairs, n_splits=p["n_splits"],
                                           n_permutations=p["n_permutations"], seed=p["seed"], C=p["C"])[:, 0]
    best, held_out, y_test = held_out_predictions(handle, probed, test, row, p)
    control = probe_prompt_set(ctx.random_control(), train, pairs, p)
    return H02Fit(train=train, test=test, probed=probed, row=row, strat=strat, group=group, null=null, best=best,
                  held_out=held_out, y_test=y_test, control=control)


def cluster_shortfalls(fit: H02Fit, threshold: float, alpha: float) -> dict:
    """The shortfall test over operand-pair clusters (the unit: a cluster's prompts share their cross-validated fate)
    for each CV scheme, Holm over the two, and the test as it decides (the smaller p must reach alpha / 2)."""
    y, pairs = fit.y, fit.pairs
    shortfall = {name: probes.cluster_shortfall_test(pred == y, pairs, threshold, alpha)
                 for name, pred in zip(SCHEMES, (fit.strat, fit.group))}
    holm = dict(zip(SCHEMES, stats.holm([shortfall[s]["p_value"] for s in SCHEMES]).tolist()))
    decisive = probes.cluster_shortfall_test(fit.strat == y, pairs, threshold, alpha / len(SCHEMES))
    return {"tests": shortfall, "holm": holm, "decisive": decisive, "m": shortfall["stratified"]["n_clusters"]}


def both_schemes(fit: H02Fit, cv: dict) -> str:
    """The correct prompts and the operand pairs with no error, under each CV scheme."""
    n, m = fit.counts[0], cv["m"]
    counts = {s: f"{sh['k_correct']}/{n} correct, {sh['clusters_entirely_correct']}/{m} operand pairs all correct"
              for s, sh in cv["tests"].items()}
    return f"{counts['stratified']} (stratified); {counts['leave-one-pair-out']} (leave-one-pair-out)"


def accuracy_reason(fit: H02Fit, cv: dict, p: dict, met: bool, refuted: list[str]) -> str:
    """Why the accuracy part is decided as it is: the clusters with an error under each refuting scheme, the
    threshold met, or how many flawed clusters a refutation would need."""
    alpha, layer, threshold = p["alpha"], p["layer"], p["min_accuracy"]
    shortfall, holm, decisive, m = cv["tests"], cv["holm"], cv["decisive"], cv["m"]
    both = both_schemes(fit, cv)
    if refuted:
        return (f"block-{layer} accuracy below {threshold:.0%}: {both}; errors in "
                + " and ".join(f"{shortfall[s]['clusters_flawed']} of {m} clusters ({s}, cluster binomial "
                               f"Holm p={holm[s]:.3g})" for s in refuted)
                + f"; an accuracy of {threshold:.0%} allows at most "
                  f"{shortfall['stratified']['null_flawed_rate'] * m:.2g} flawed clusters on average")
    if met:
        return f"block-{layer} {both}: >= {threshold:.0%}"
    reason = (f"block-{layer} {both}: below {threshold:.0%}, not significantly over the {m} "
              f"operand-pair clusters (cluster binomial Holm p={min(holm.values()):.3g}; ")
    return reason + (f"it needs errors in >= {decisive['critical_flawed']} of {m} clusters)"
                     if decisive["critical_flawed"] else f"no outcome over {m} clusters can reach p < {alpha})")


def h02_parts(fit: H02Fit, cv: dict, p: dict) -> dict[str, ClaimStatistic]:
    """The criteria's parts: the block's accuracy under both CV schemes (tested over clusters) and above the null."""
    alpha, threshold = p["alpha"], p["min_accuracy"]
    n, k_s, k_g = fit.counts
    perm_p = fit.perm_p
    met = k_s / n >= threshold - 1e-9 and k_g / n >= threshold - 1e-9
    refuted = [s for s in SCHEMES if cv["holm"][s] < alpha]
    return {
        "accuracy": stats.evidence("accuracy (both CV schemes)", value=k_s / n, n=cv["m"],
                                   p_value=min(cv["holm"].values()), against=bool(refuted), met=met,
                                   reason=accuracy_reason(fit, cv, p, met, refuted)),
        "above_null": stats.evidence("within-cluster permutation", value=k_s / n, n=n, p_value=perm_p,
                                     met=perm_p < alpha,
                                     reason=f"within-cluster permutation p={perm_p:.3g} "
                                            f"{'<' if perm_p < alpha else '>='} {alpha} ({p['n_permutations']} "
                                            "permutations)"),
    }


def cluster_effect(fit: H02Fit, m: int, p: dict) -> tuple[stats.EffectSize, dict]:
    """Accuracy minus the threshold with a cluster bootstrap interval over the operand pairs (NaN when every cluster
    has the same accuracy: resampling clusters then says nothing): the effect and the interval's terms."""
    alpha, threshold = p["alpha"], p["min_accuracy"]
    n, k_s, _ = fit.counts
    level = 1.0 - 2.0 * alpha
    _, acc_cells = cluster_means(fit.strat == fit.y, fit.pairs)
    degenerate = float(np.ptp(acc_cells)) == 0.0
    boot = stats.bootstrap_ci(acc_cells, np.mean, confidence=level, n_resamples=p["n_bootstrap"], seed=p["seed"])
    ci_low, ci_high = (math.nan, math.nan) if degenerate else (boot.ci_low, boot.ci_high)
    effect = stats.EffectSize(name=f"accuracy - {threshold:.0%} (accuracy points)", value=k_s / n - threshold,
                              ci_low=ci_low - threshold, ci_high=ci_high - threshold, confidence=level,
                              ci_method=f"cluster bootstrap over {m} operand pairs", se=math.nan, n1=m,
                              degenerate=degenerate,
                              note="every cluster has the same accuracy: no interval" if degenerate else "")
    return effect, {"ci_low": ci_low, "ci_high": ci_high, "confidence": level, "degenerate": degenerate}


def h02_details(fit: H02Fit, cv: dict, degenerate: bool, ctx: ClaimContext) -> dict:
    """The statistic's details: counts and accuracies under both schemes, the cluster tests, the null, the MDE, the
    control task, the random-init model and the held-out test accuracies."""
    p = ctx.params
    layer, (n, k_s, k_g), m = p["layer"], fit.counts, cv["m"]
    shortfall, decisive, probed = cv["tests"], cv["decisive"], fit.probed
    classes = sorted(set(fit.y.tolist()))
    layer_probe, c_layer = probed.report.layers[fit.row], fit.control.report.layers[fit.control.row(layer)]
    return {
        "layer": layer, "n_classes": len(classes), "chance": 1.0 / len(classes), "alpha": p["alpha"],
        "threshold": p["min_accuracy"],
        "accuracy_stratified": k_s / n, "accuracy_leave_one_pair_out": k_g / n, "k_stratified": k_s,
        "k_leave_one_pair_out": k_g, "n_prompts": n, "n_clusters": m, "n_pairs": m, "cluster": CLUSTER,
        "clusters_entirely_correct": {s: sh["clusters_entirely_correct"] for s, sh in shortfall.items()},
        "accuracy_per_pair": {s: sh["accuracy_per_cluster"] for s, sh in shortfall.items()},
        "shortfall_p": {s: sh["p_value"] for s, sh in shortfall.items()}, "shortfall_p_holm": cv["holm"],
        "shortfall_tests": shortfall, "permutation_p": fit.perm_p, "n_permutations": int(p["n_permutations"]),
        "null_mean": float(fit.null.mean()), "null_std": float(fit.null.std()),
        "ci_method": f"cluster bootstrap (percentile/BCa over the {m} operand-pair accuracies), NaN when all equal",
        "ci_degenerate": degenerate,
        "mde": decisive["mde"], "mde_accuracy": decisive["mde_accuracy"],
        "mde_definition": decisive["mde_definition"] + " (Holm's first step over the two CV schemes)",
        "test": (f"accuracy: {ctx.test('accuracy')}, unit {CLUSTER}; above_null: {ctx.test('above_null')} "
                 f"(stratified {layer_probe.n_splits}-fold accuracy)"),
        "control_task_accuracy": layer_probe.control_accuracy,
        "selectivity": layer_probe.selectivity, "random_init_accuracy": c_layer.accuracy,
        "random_init_group_accuracy": c_layer.group_accuracy, "random_init_selectivity": c_layer.selectivity,
        "best_layer": probed.labels[fit.best], "test_accuracy_best_layer": fit.held_out["best"][1].accuracy,
        "test_accuracy_layer": fit.held_out["layer"][1].accuracy, "n_test": int(fit.y_test.size),
    }


def h02_samples(fit: H02Fit, layer: int) -> list[dict]:
    """One row per training prompt (its cross-validated predictions) and per test prompt and fitted block."""
    strat, group, y = fit.strat, fit.group, fit.y
    samples = [{"prompt": it.text, "split": "train", "label": it.label, "pair": it.pair, "layer": layer,
                "pred_stratified": str(strat[i]), "pred_leave_one_pair_out": str(group[i]),
                "correct_stratified": bool(strat[i] == y[i]), "correct_leave_one_pair_out": bool(group[i] == y[i])}
               for i, it in enumerate(fit.train)]
    for name, (label, pred) in fit.held_out.items():
        for i, it in enumerate(fit.test):
            samples.append({"prompt": it.text, "split": "test", "label": it.label, "layer": label,
                            "fitted_at": name, "pred": str(pred.labels[i]),
                            "correct": bool(pred.labels[i] == fit.y_test[i]),
                            "proba_true": float(pred.proba[i][pred.classes.index(it.label)])})
    return samples


def h02_curves(fit: H02Fit) -> dict:
    """Probe accuracy by layer under both schemes, the control task, the random-init model and chance."""
    probed, control = fit.probed, fit.control
    chance = 1.0 / len(sorted(set(fit.y.tolist())))
    return {"probe_accuracy": layer_curve(probed, {
        "stratified CV": floats_or_none(probed.series("accuracy")),
        "leave-one-pair-out": floats_or_none(probed.series("group_accuracy")),
        "control task (Hewitt-Liang)": floats_or_none(probed.series("control_accuracy")),
        "random-init stratified": floats_or_none(control.series("accuracy")),
        "random-init leave-one-pair-out": floats_or_none(control.series("group_accuracy")),
        "chance": [chance] * len(probed.labels),
    })}


def h02_ours(fit: H02Fit, cv: dict, layer: int) -> str:
    """The record's one-line summary of what this model showed."""
    (n, _, _), m, perm_p = fit.counts, cv["m"], fit.perm_p
    layer_probe, c_layer = fit.probed.report.layers[fit.row], fit.control.report.layers[fit.control.row(layer)]
    return (f"block-{layer} probe: {both_schemes(fit, cv)} (unit: {m} operand-pair clusters of {n // m} prompts; "
            f"cluster binomial Holm p={min(cv['holm'].values()):.3g}); within-cluster permutation p={perm_p:.3g} "
            f"(null mean {fit.null.mean():.1%}); control-task selectivity {layer_probe.selectivity:+.2f}; random-init "
            f"block {layer}: {c_layer.accuracy:.1%} / {c_layer.group_accuracy:.1%}; held-out test "
            f"{fit.held_out['best'][1].accuracy:.0%} at block {fit.probed.labels[fit.best]}")


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {
    "accuracy": {"threshold": "min_accuracy", "side": "above"},
    "above_null": {"minus": "null_mean", "threshold": 0.0, "side": "above"},  # accuracy above the permuted labels'
}


@claim(
    id="H02",
    title="Symbol prompts make probes trivially perfect at block 0",
    statement="A linear probe separates the four operations from symbol prompts ('7 * 8 =') already after block 0.",
    source="seed 002 (Results: Linear Probe Accuracy by Layer; CORRECTION: Symbol vs Word-Based Prompts)",
    criterion="on 64 symbol prompts (the writeup's 16 and 48 generated of its form: 4 classes x 16 operand pairs), "
               "accuracy at block 0 >= 95% under stratified shuffled k-fold AND leave-one-pair-out CV, above the "
               "label-permutation null (labels shuffled within operand-pair clusters, p < 0.05); refuted when the "
               "number of operand-pair clusters with an error is significant against the bound an accuracy of 95% "
               "puts on it (exact binomial over clusters, Holm over the two CV schemes): the prompts of a cluster "
               "are not independent trials; control task and random-init model reported",
    writeup="100% at L0 (and every layer) for Llama-3.2-1B, TinyLlama, Granite (16 prompts, 4-fold)",
    params={"min_accuracy": Param(0.95, PROB,
                                  help="smallest probe accuracy (0-1) at the tested block under both CV schemes"),
            "n_pairs": Param(16, Interval(int, 4, 64),
                             help="operand pairs per class of the symbol probe set (the writeup's 4, then "
                                  "generated)"),
            "layer": 0, "n_splits": 4, "n_permutations": 100, "n_bootstrap": 1999, "C": 1.0, "alpha": 0.05, "seed": 0,
            "position": Param("last", Choice(("last", "operator")),
                              help="token the probe reads: the prompt's last, or its operator symbol"),
            "label_permutation": Param(None, OrNone(SEED),
                                       help="seed shuffling the probe's class labels (null: the true labels)")},
    tests={"accuracy": probes.CLUSTER_SHORTFALL_TEST + " (unit: operand-pair cluster; Holm over the stratified and "
                       "leave-one-pair-out schemes)",
           "above_null": "label permutation within operand-pair clusters"},
    fast={"n_permutations": 30, "n_bootstrap": 499},
    controls=(
        Control(name="operator position", kind=POSITIVE,
                description="the probe read at the operator symbol's own token ('7 *'): the class is in that token's "
                            "embedding by construction",
                build=lambda ctx: ctx.variant(params={"position": "operator"}), effect=Verdict.SUPPORTED, sanity=True),
    ),
    nulls=(NullControl(name="permuted labels",
                       description="the same prompts with their operation labels shuffled (a new permutation per "
                                   "replicate): no probe can beat chance",
                       replicates=20, build=lambda ctx, r: ctx.variant(params={"label_permutation": 1 + r}),
                       effect=Verdict.SUPPORTED),),
    no_graded=("the effect is the operator token's identity at block 0, which every model's embedding carries: a "
               "plant of graded strength there would grade an edit the writeup never measured, not its claim"),
)
def measure_h02(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    layer = p["layer"]
    check_declared_tests(ctx)
    fit = h02_fit(ctx)
    cv = cluster_shortfalls(fit, p["min_accuracy"], p["alpha"])
    parts = h02_parts(fit, cv, p)
    effect, ci = cluster_effect(fit, cv["m"], p)
    n, k_s, _ = fit.counts
    statistic = stats.pending(
        f"block-{layer} probe accuracy (stratified {fit.probed.report.layers[fit.row].n_splits}-fold)", k_s / n,
        ci_low=ci["ci_low"], ci_high=ci["ci_high"], confidence=ci["confidence"], effect_size=effect,
        p_value=fit.perm_p, n=cv["m"], details=h02_details(fit, cv, ci["degenerate"], ctx))
    return Outcome(statistic=statistic, ours=h02_ours(fit, cv, layer), samples=h02_samples(fit, layer),
                   curves=h02_curves(fit), parts=parts)
