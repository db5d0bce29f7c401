"""Probe claims on untrained models: H02 (symbol prompts are separable at block 0), H03 (word prompts show
emergence after block 0) and H04 (the multiply-vs-add probe direction is not vocabulary-aligned)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict, cross_val_score

from .. import probes, prompts, stats
from ..directions import word_ranks
from ..errors import LazarusError
from ..features import last_token_states
from ..lens import target_spellings
from ..projections import cosine_scores, normalize_rows, ranks_of
from ..stats import Verdict, ecdf
from .base import Claim, ClaimContext, Outcome, not_instruct, register

EMB = "emb"
NULL_CHUNK = 64


# ------------------------------------------------------------------------------------------------ probe helpers


@dataclass
class LayerProbes:
    """Last-token features of every layer and the per-layer probe report for one prompt set."""

    labels: list
    features: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    report: probes.ProbeReport

    def row(self, layer) -> int:
        return self.labels.index(layer)

    def series(self, name: str) -> list[float | None]:
        return [getattr(p, name) for p in self.report.layers]


def probe_prompt_set(handle, prompt_set, groups, params) -> LayerProbes:
    """Probe every layer (embedding output and each block): shuffled stratified k-fold, leave-one-group-out and the
    Hewitt-Liang control task keyed by operand pair."""
    X, labels = last_token_states(handle, prompt_set.texts())
    y = np.asarray(prompt_set.labels())
    groups = np.asarray(groups)
    report = probes.probe_layers(
        X, y, groups, layer_labels=labels, n_splits=params["n_splits"], n_permutations=0,
        control_keys=[it.item for it in prompt_set], seed=params["seed"], C=params["C"],
    )
    return LayerProbes(labels=labels, features=X, y=y, groups=groups, report=report)


def cv_predictions(X, y, groups, *, n_splits: int, seed: int, C: float) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold prediction of every prompt under the probe's stratified k-fold and under leave-one-group-out
    (same classifier and folds as ``probes.probe_layer``)."""
    k = probes.effective_n_splits(y, n_splits)
    clf = probes.make_classifier(C=C, seed=seed)
    strat = cross_val_predict(clf, X, y, cv=probes.stratified_cv(k, seed))
    group = cross_val_predict(clf, X, y, groups=groups, cv=LeaveOneGroupOut())
    return strat, group


def permutation_null(features: np.ndarray, y, *, n_splits: int, n_permutations: int, seed: int, C: float) -> np.ndarray:
    """Stratified-CV accuracy of each layer under label permutations, shape (n_permutations, n_layers).

    One permutation is shared by all layers of a row, so a row's maximum is the max-statistic null over layers.
    """
    k = probes.effective_n_splits(y, n_splits)
    cv = probes.stratified_cv(k, seed)
    rng = np.random.default_rng(seed)
    null = np.zeros((n_permutations, len(features)))
    for b in range(n_permutations):
        permuted = rng.permutation(y)
        for i, X in enumerate(features):
            clf = probes.make_classifier(C=C, seed=seed)
            null[b, i] = cross_val_score(clf, X, permuted, cv=cv, scoring="accuracy", error_score="raise").mean()
    return null


def permutation_p(observed: float, null) -> float:
    """Empirical p = (1 + #null >= observed) / (n + 1)."""
    null = np.asarray(null, dtype=np.float64)
    return float((1 + np.count_nonzero(null >= observed - 1e-9)) / (null.size + 1))


def nested_peak(features: np.ndarray, y, groups, candidates: list[int], base: int, *, n_splits: int, seed: int,
                C: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leave-one-group-out predictions at a layer chosen WITHOUT the held-out group (first maximum of inner stratified
    CV over ``candidates`` on the training groups) and at the ``base`` layer: a selection-free peak and gain."""
    y, groups = np.asarray(y), np.asarray(groups)
    chosen_pred, base_pred = np.empty_like(y), np.empty_like(y)
    chosen_row = np.zeros(y.size, dtype=int)
    for g in np.unique(groups):
        test, train = groups == g, groups != g
        cv = probes.stratified_cv(probes.effective_n_splits(y[train], n_splits), seed)
        inner = [cross_val_score(probes.make_classifier(C=C, seed=seed), features[r][train], y[train], cv=cv,
                                 scoring="accuracy", error_score="raise").mean() for r in candidates]
        best = candidates[int(np.argmax(inner))]
        for row, out in ((best, chosen_pred), (base, base_pred)):
            clf = probes.make_classifier(C=C, seed=seed).fit(features[row][train], y[train])
            out[test] = clf.predict(features[row][test])
        chosen_row[test] = best
    return chosen_pred, base_pred, chosen_row


def significant(k: int, n: int, p0: float, alternative: str, alpha: float) -> bool:
    """Exact binomial test of k/n against p0 in the given direction, at alpha."""
    return stats.binomial_test(k, n, p0, alternative).p_value < alpha


def layer_curve(probed: LayerProbes, series: dict[str, list], ylabel: str = "probe accuracy") -> dict:
    return {"x": [str(label) for label in probed.labels], "series": series, "xlabel": "layer (after block)",
            "ylabel": ylabel}


def _floats(values) -> list[float | None]:
    return [None if v is None else float(v) for v in values]


# ------------------------------------------------------------------------------------------------ H02


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
    X_test, _ = last_token_states(handle, test.texts())
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
        "stratified CV": _floats(probed.series("accuracy")),
        "leave-one-pair-out": _floats(probed.series("group_accuracy")),
        "control task (Hewitt-Liang)": _floats(probed.series("control_accuracy")),
        "random-init stratified": _floats(control.series("accuracy")),
        "random-init leave-one-pair-out": _floats(control.series("group_accuracy")),
        "chance": [chance] * len(probed.labels),
    })}
    ours = (f"block-{layer} probe accuracy {k_s}/{n} stratified, {k_g}/{n} leave-one-pair-out; permutation p="
            f"{perm_p:.3g} (null mean {null.mean():.1%}); control-task selectivity {layer_probe.selectivity:+.2f}; "
            f"random-init block {layer}: {c_layer.accuracy:.1%} / {c_layer.group_accuracy:.1%}; held-out test "
            f"{held_out['best'][1].accuracy:.0%} at block {probed.labels[best]}")
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves)


register(Claim(
    id="H02",
    title="Symbol prompts make probes trivially perfect at block 0",
    statement="A linear probe separates the four operations from symbol prompts ('7 * 8 =') already after block 0.",
    source="seed 002 (Results: Linear Probe Accuracy by Layer; CORRECTION: Symbol vs Word-Based Prompts)",
    criterion=("accuracy at block 0 >= 95% under stratified shuffled k-fold AND leave-one-pair-out CV, above the "
               "label-permutation null (p < 0.05); control task and random-init model reported"),
    writeup="100% at L0 (and every layer) for Llama-3.2-1B, TinyLlama, Granite (16 prompts, 4-fold)",
    params={"min_accuracy": 0.95, "layer": 0, "n_splits": 4, "n_permutations": 100, "C": 1.0, "alpha": 0.05,
            "seed": 0},
    measure=measure_h02,
    fast={"n_permutations": 30},
))


# ------------------------------------------------------------------------------------------------ H03


def measure_h03(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    alpha, base = p["alpha"], p["layer"]
    words = prompts.word_set()
    groups = [it.template for it in words]
    probed = probe_prompt_set(ctx.handle(), words, groups, p)
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

    null = permutation_null(probed.features[blocks], y, n_splits=p["n_splits"], n_permutations=p["n_permutations"],
                            seed=p["seed"], C=p["C"])
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
    sign = stats.sign_test(diff, 0.0, "greater")
    level = 1.0 - 2.0 * alpha
    boot = stats.bootstrap_ci(diff, np.mean, confidence=level, n_resamples=p["n_bootstrap"], seed=p["seed"])
    effect = stats.one_sample_d(diff, 0.0, confidence=level) if n >= 2 else None

    control = probe_prompt_set(ctx.random_control(), words, groups, p)
    c_acc = np.array(control.series("accuracy"))

    l0_ok = k0_s / n <= p["max_l0_accuracy"] + 1e-9 and k0_g / n <= p["max_l0_accuracy"] + 1e-9
    peak_ok = k_sel / n >= p["min_peak_accuracy"] - 1e-9 and acc_s[peak_s] >= p["min_peak_accuracy"] - 1e-9
    gain_ok = gain >= p["min_gain"] - 1e-9
    tests_ok = p_peak < alpha and sign.p_value < alpha
    against = []
    for name, k in (("stratified", k0_s), ("leave-one-template-out", k0_g)):
        if significant(k, n, p["max_l0_accuracy"], "greater", alpha):
            against.append(f"block-{base} accuracy ({name}) {k}/{n} significantly above {p['max_l0_accuracy']:.0%}")
    if significant(k_sel, n, p["min_peak_accuracy"], "less", alpha):
        against.append(f"selection-free peak accuracy {k_sel}/{n} significantly below {p['min_peak_accuracy']:.0%}")
    if math.isfinite(boot.ci_high) and boot.ci_high < p["min_gain"]:
        against.append(f"gain CI upper bound {boot.ci_high:+.3f} < {p['min_gain']}")
    failed = [text for ok, text in ((l0_ok, f"block-{base} accuracy > {p['max_l0_accuracy']:.0%}"),
                                    (peak_ok, f"peak accuracy < {p['min_peak_accuracy']:.0%}"),
                                    (gain_ok, f"gain < {p['min_gain']:.0%}"),
                                    (tests_ok, f"max-statistic permutation p={p_peak:.3g} or paired p="
                                               f"{sign.p_value:.3g} not < {alpha}")) if not ok]
    if against:
        verdict, reason = Verdict.REFUTED, "; ".join(against)
    elif not failed:
        verdict = Verdict.SUPPORTED
        reason = (f"block {base} at {k0_s / n:.0%}/{k0_g / n:.0%}, selection-free peak {k_sel / n:.0%}, gain "
                  f"{gain:+.1%} (paired permutation p={sign.p_value:.3g}), max-statistic p={p_peak:.3g}")
    else:
        verdict, reason = Verdict.INCONCLUSIVE, "not shown: " + "; ".join(failed)

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
        "gain": gain, "gain_ci": [boot.ci_low, boot.ci_high], "paired_permutation_p": sign.p_value,
        "discordant": {"peak_only": int(np.sum(diff > 0)), "l0_only": int(np.sum(diff < 0))},
        "selectivity_at_peak": probed.report.layers[peak_s].selectivity,
        "random_init_l0_accuracy": float(c_acc[control.row(base)]),
        "random_init_peak_accuracy": float(c_acc[candidates].max()),
        "peak_depth_fraction": probed.labels[peak_s] / len(blocks),
        "test": "nested leave-one-template-out (peak layer chosen by inner stratified CV on the other templates), "
                "exact paired sign-flip permutation test of per-prompt correctness; max-statistic label-permutation "
                "null for the stratified peak",
    }
    statistic = stats.ClaimStatistic(
        name=f"selection-free gain: chosen peak layer minus block {base} (leave-one-template-out)",
        statistic=gain, ci_low=boot.ci_low, ci_high=boot.ci_high, confidence=level, effect_size=effect,
        p_value=sign.p_value, n=n, verdict=verdict, reason=reason, details=details,
    )
    samples = [{"prompt": it.text, "label": it.label, "template": it.template, "pair": it.pair,
                "pred_l0_stratified": str(strat0[i]), "pred_l0_leave_one_template_out": str(group0[i]),
                "selected_layer": probed.labels[chosen_row[i]], "pred_selected": str(chosen[i]),
                "correct_selected": bool(correct_sel[i]), "correct_l0": bool(correct_base[i])}
               for i, it in enumerate(words)]
    null_mean = [None] * len(probed.labels)
    for j, i in enumerate(blocks):
        null_mean[i] = float(null[:, j].mean())
    curves = {"probe_accuracy": layer_curve(probed, {
        "stratified CV": _floats(acc_s),
        "leave-one-template-out": _floats(acc_g),
        "permutation null mean": null_mean,
        "control task (Hewitt-Liang)": _floats(probed.series("control_accuracy")),
        "random-init stratified": _floats(c_acc),
        "random-init leave-one-template-out": _floats(control.series("group_accuracy")),
    })}
    ours = (f"block {base}: {k0_s / n:.1%} stratified / {k0_g / n:.1%} leave-one-template-out; peak "
            f"{acc_s[peak_s]:.1%} at block {probed.labels[peak_s]} (stratified, max-statistic p={p_peak:.3g}) / "
            f"{acc_g[peak_g]:.1%} at block {probed.labels[peak_g]} (leave-one-template-out); selection-free peak "
            f"{k_sel / n:.1%}, gain {gain:+.1%} [{boot.ci_low:+.1%}, {boot.ci_high:+.1%}] "
            f"(paired p={sign.p_value:.3g}); random-init peak {c_acc[candidates].max():.1%}")
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves)


register(Claim(
    id="H03",
    title="Word prompts show true emergence after block 0",
    statement=("For word prompts ('What is 7 times 8?') a linear probe is near chance at block 0 and peaks in the "
               "middle layers."),
    source="seed 002 (CORRECTION: True Classifier Emergence: Word-Based Prompts)",
    criterion=("block-0 accuracy <= 50% (stratified and leave-one-template-out), peak >= 75% at a block > 0 "
               "(selection-free nested estimate and stratified max, max-statistic permutation p < 0.05), "
               "peak - L0 >= 25 points (nested, paired permutation p < 0.05)"),
    writeup="Llama-3.2-1B 43.8% -> 81.2% (L4-5), TinyLlama 12.5% -> 81.2% (L16-17), Granite 18.8% -> 31.2%",
    params={"max_l0_accuracy": 0.5, "min_peak_accuracy": 0.75, "min_gain": 0.25, "layer": 0, "n_splits": 4,
            "n_permutations": 100, "n_bootstrap": 1999, "C": 1.0, "alpha": 0.05, "seed": 0},
    measure=measure_h03,
    fast={"n_permutations": 20, "n_bootstrap": 499},
))


# ------------------------------------------------------------------------------------------------ H04


class VocabRanker:
    """Ranks of one word's spellings (first tokens) by cosine of a residual direction (final-norm gain folded in)
    with every unembedding row, as ``directions.word_ranks`` computes them, for many directions."""

    def __init__(self, handle, word: str):
        self.W = np.array(handle.unembedding(), dtype=np.float32)
        self.gain = np.array(handle.final_norm_gain(), dtype=np.float32)
        self.vocab_size = int(self.W.shape[0])
        self.ids = sorted({ids[0] for ids in target_spellings(handle, word).values()})

    def best_rank(self, direction) -> int:
        scores = cosine_scores(np.asarray(direction, dtype=np.float32), self.W, gain=self.gain)
        return min(ranks_of(scores, self.ids).values())

    def null_best_ranks(self, n: int, seed: int) -> np.ndarray:
        """Best rank of the spellings for ``n`` standard Gaussian residual directions (seeded)."""
        rng = np.random.default_rng(seed)
        Z = rng.standard_normal((n, self.W.shape[1]), dtype=np.float32)
        U = normalize_rows(self.W)
        out = np.zeros(n, dtype=int)
        for start in range(0, n, NULL_CHUNK):
            S = normalize_rows(Z[start:start + NULL_CHUNK] * self.gain) @ U.T
            ranks = (S[:, None, :] > S[:, self.ids][:, :, None]).sum(axis=-1) + 1
            out[start:start + NULL_CHUNK] = ranks.min(axis=1)
        return out

    def uniform_p(self, rank: int) -> float:
        """P(best rank <= rank) when the spellings' ranks are a uniformly random set of distinct positions."""
        m, V = len(self.ids), self.vocab_size
        return 1.0 - math.comb(V - rank, m) / math.comb(V, m)


def multiply_add_features(handle, layer: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Last-token states at ``layer`` for the word set's multiply and add prompts."""
    items = [it for it in prompts.word_set() if it.label in ("multiply", "add")]
    X, _ = last_token_states(handle, [it.text for it in items], [layer])
    return X[0], np.asarray([it.label for it in items]), items


def bootstrap_best_ranks(X, y, ranker: VocabRanker, *, n_bootstrap: int, seed: int, C: float) -> np.ndarray:
    """Best rank of the spellings for probes refitted on prompts resampled with replacement within each class."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(y == c) for c in np.unique(y)]
    out = np.zeros(n_bootstrap, dtype=int)
    for b in range(n_bootstrap):
        idx = np.concatenate([rng.choice(m, size=m.size, replace=True) for m in members])
        w = probes.binary_direction(X[idx], y[idx], "multiply", "add", C=C, seed=seed)
        out[b] = ranker.best_rank(w)
    return out


def measure_h04(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    alpha, word, top = p["alpha"], p["word"], p["top_fraction"]
    handle = ctx.handle()
    layer = handle.layer_at_depth(p["layer_fraction"])
    X, y, items = multiply_add_features(handle, layer)
    w = probes.binary_direction(X, y, "multiply", "add", C=p["C"], seed=p["seed"])
    words = list(dict.fromkeys([word, *prompts.operation_words()]))
    top_side = word_ranks(handle, w, words)
    bottom_side = word_ranks(handle, -w, words)
    V = top_side["vocab_size"]
    forms = top_side["words"][word]
    best_rank = min(f["rank"] for f in forms.values())
    best_pct = best_rank / V

    ranker = VocabRanker(handle, word)
    probe = probes.probe_layer(X, y, n_splits=p["n_splits"], n_permutations=p["n_permutations"], seed=p["seed"],
                               C=p["C"])
    boot = bootstrap_best_ranks(X, y, ranker, n_bootstrap=p["n_bootstrap"], seed=p["seed"], C=p["C"]) / V
    null = ranker.null_best_ranks(p["n_null"], p["seed"]) / V
    level = 1.0 - 2.0 * alpha
    ci_low, ci_high = (float(q) for q in np.quantile(boot, [alpha, 1.0 - alpha]))
    p_claim = float((1 + np.count_nonzero(boot <= top)) / (boot.size + 1))
    p_align = float((1 + np.count_nonzero(null <= best_pct)) / (null.size + 1))
    p_uniform = ranker.uniform_p(best_rank)

    c_handle = ctx.random_control()
    c_X, c_y, _ = multiply_add_features(c_handle, layer)
    c_rank = VocabRanker(c_handle, word).best_rank(
        probes.binary_direction(c_X, c_y, "multiply", "add", C=p["C"], seed=p["seed"]))

    probe_ok = probe.p_value is not None and probe.p_value < alpha
    if ci_high <= top and p_align < alpha:
        verdict = Verdict.REFUTED
        reason = (f"'{word}' stays in the top {top:.0%} of the vocabulary for refitted probes (bootstrap upper "
                  f"bound {ci_high:.2%}) and ranks higher than for random directions (p={p_align:.3g})")
    elif ci_low > top and p_claim < alpha and probe_ok:
        verdict = Verdict.SUPPORTED
        reason = (f"best rank {best_rank}/{V} ({best_pct:.1%}); bootstrap lower bound {ci_low:.2%} > {top:.0%} "
                  f"(p={p_claim:.3g}); probe accuracy {probe.accuracy:.0%} (permutation p={probe.p_value:.3g})")
    elif ci_low > top and p_claim < alpha:
        verdict = Verdict.INCONCLUSIVE
        reason = (f"'{word}' is outside the top {top:.0%} but the multiply-vs-add probe is not above chance "
                  f"({probe.accuracy:.0%}, permutation p={probe.p_value:.3g}): its direction may be noise")
    else:
        verdict = Verdict.INCONCLUSIVE
        reason = (f"best rank {best_rank}/{V} ({best_pct:.1%}); bootstrap interval [{ci_low:.2%}, {ci_high:.2%}] "
                  f"does not settle whether it is outside the top {top:.0%}")
    details = {
        "layer": layer, "vocab_size": V, "top_fraction": top, "top_cutoff_rank": int(math.floor(top * V)),
        "best_rank": best_rank, "best_percentile": best_pct, "n_spellings": len(ranker.ids),
        "bootstrap_p_in_top": p_claim, "n_bootstrap": int(boot.size), "bootstrap_median": float(np.median(boot)),
        "p_aligned_vs_random": p_align, "p_aligned_uniform": p_uniform, "n_null": int(null.size),
        "null_median": float(np.median(null)), "probe_accuracy": probe.accuracy, "probe_permutation_p": probe.p_value,
        "random_init_best_rank": c_rank, "random_init_percentile": c_rank / V, "alpha": alpha,
        "rank_definition": "1-based rank by descending cosine over all unembedding rows (1 + #strictly greater); "
                           "percentile = rank / vocabulary size; outside the top fraction iff percentile > it",
    }
    statistic = stats.ClaimStatistic(
        name=f"best rank percentile of '{word}' spellings (probe direction at block {layer})",
        statistic=best_pct, ci_low=ci_low, ci_high=ci_high, confidence=level, effect_size=None, p_value=p_claim,
        n=int(y.size), verdict=verdict, reason=reason, details=details,
    )
    samples = []
    for wd in words:
        for spelling, info in top_side["words"][wd].items():
            low = bottom_side["words"][wd][spelling]
            samples.append({
                "word": wd, "spelling": spelling, "token_id": info["token_id"],
                "token": handle.decode_token(info["token_id"]), "n_tokens": info["n_tokens"], "rank": info["rank"],
                "percentile": info["rank"] / V, "score": info["score"], "rank_from_bottom": low["rank"],
            })
    grid = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]
    m = len(ranker.ids)
    curves = {"rank_percentile_cdf": {
        "x": [f"{g:.1%}" for g in grid],
        "series": {"bootstrap probes": ecdf(boot, grid), "random directions": ecdf(null, grid),
                   "uniform ranks": [1.0 - (1.0 - g) ** m for g in grid]},
        "xlabel": f"best rank of '{word}' / vocabulary size", "ylabel": "cumulative fraction",
    }}
    ours = (f"'{word}' best rank {best_rank}/{V} ({best_pct:.2%}) at block {layer}; bootstrap {level:.0%} interval "
            f"[{ci_low:.2%}, {ci_high:.2%}], {np.mean(boot <= top):.0%} of refits in the top {top:.0%}; random "
            f"directions p={p_align:.3g}; probe accuracy {probe.accuracy:.0%}; random-init rank {c_rank}/{V}")
    extra = {"direction": [float(v) for v in w], "bootstrap_percentiles": [float(v) for v in boot],
             "null_percentiles": [float(v) for v in null], "prompts": [it.text for it in items]}
    return Outcome(statistic=statistic, ours=ours, samples=samples, curves=curves, extra=extra)


register(Claim(
    id="H04",
    title="The probe's direction is not vocabulary-aligned",
    statement="The multiply-vs-add probe direction at 55% depth does not point at the 'multiply' unembedding row.",
    source="seed 002 (Probe Direction Vocabulary Projection)",
    criterion=("best rank of ' multiply'/'multiply' (cosine of the gain-folded probe weight with every unembedding "
               "row) outside the top 1% of the vocabulary, for refitted probes (bootstrap bound) and a probe above "
               "chance"),
    writeup="multiply rank 24,300 / 128,256 (19%), score +0.0355 (Llama-3.2-1B, L8)",
    params={"word": "multiply", "top_fraction": 0.01, "layer_fraction": 0.55, "n_splits": 4, "n_permutations": 100,
            "n_bootstrap": 200, "n_null": 1000, "C": 1.0, "alpha": 0.05, "seed": 0},
    measure=measure_h04,
    applies=not_instruct,
    fast={"n_permutations": 20, "n_bootstrap": 40, "n_null": 200},
))
