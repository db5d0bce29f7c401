"""Helpers several claims' measures share: lens word curves, per-layer probes with their nulls, SFT data."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import mlx.core as mx
import numpy as np
from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict, cross_val_score

from .. import prompts
from ..analysis import probes
from ..analysis.features import last_token_states
from ..analysis.lens import logit_lens
from ..models import ModelHandle
from ..stats import Verdict
from ..training.data import arithmetic_examples, assert_disjoint
from ..training.dual_reward import class_token_ids
from ..training.loop import TrainConfig
from ..training.lora import LoraSpec
from ..training.sft import SFTConfig
from .base import NEGATIVE, Control, Gate

EMB = "emb"
NULL_CHUNK = 64
TopK = list[list[list[tuple[str, int, float]]]]


def mean_series(series: Sequence[Sequence[float]]) -> list[float]:
    """Element-wise mean over runs (runs of different length are averaged where they have values)."""
    width = max((len(s) for s in series), default=0)
    table = np.full((len(series), width), np.nan)
    for i, s in enumerate(series):
        table[i, : len(s)] = s
    with np.errstate(all="ignore"):
        return [float(v) for v in np.nanmean(table, axis=0)] if width else []


def step_curve(series: dict[str, list[float]], ylabel: str) -> dict:
    width = max((len(s) for s in series.values()), default=0)
    return {"x": [str(i) for i in range(1, width + 1)], "series": series, "xlabel": "step", "ylabel": ylabel}


def restricted_lens(handle, texts: Sequence[str], words: Sequence[str],
                    layer_fraction: float) -> tuple[int, list, list]:
    """Lens at block int(fraction L), last prompt token: per prompt the softmax over the words' first tokens
    (no space) and those tokens' full-vocabulary probabilities (``evaluate_classifier``'s definition)."""
    ids = class_token_ids(handle, words)
    index = mx.array([ids[w] for w in words])
    layer = handle.layer_at_depth(layer_fraction)
    restricted, vocab = [], []
    for text in texts:
        capture = handle.forward(mx.array([handle.encode(text)]))
        logits = handle.lens_logits(capture.hidden[layer + 1][0, -1]).astype(mx.float32)
        restricted.append(np.array(mx.softmax(logits[index])).tolist())
        vocab.append(np.array(mx.softmax(logits)[index]).tolist())
    return layer, restricted, vocab


def word_probs(handle, texts: Sequence[str], words: Sequence[str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Each word's lens probability per prompt and layer (full word, both spellings summed): (prompts, layers)."""
    results = logit_lens(handle, list(texts), list(words), top_k=1)
    layers = [str(layer) for layer in results[0].layers]
    return layers, {w: np.stack([r.targets[w].full_prob_sum for r in results]) for w in words}


def word_curves(handle, texts: Sequence[str], words: Sequence[str]) -> tuple[list[str], dict[str, list[float]]]:
    """Per layer, each word's lens probability averaged over the prompts."""
    layers, probs = word_probs(handle, texts, words)
    return layers, {w: v.mean(axis=0).tolist() for w, v in probs.items()}


def true_word_curve(handle, evalset) -> tuple[list[str], list[float]]:
    """Per layer, the lens probability of each prompt's own operation word, averaged over the prompts."""
    layers, probs = word_probs(handle, evalset.texts(), prompts.operation_words())
    return layers, np.mean([probs[label][i] for i, label in enumerate(evalset.labels())], axis=0).tolist()


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


def probed_texts(items, params: dict) -> list[str]:
    """The prompts' texts; with ``position: operator`` each is cut after its operator symbol, so the last token is
    the operator itself (H02's positive control: that position carries the class by construction)."""
    if params.get("position", "last") == "last":
        return [it.text for it in items]
    return [it.text[: it.text.index(f" {it.op}") + 2] for it in items]


def probed_labels(items, params: dict) -> np.ndarray:
    """The prompts' labels; ``label_permutation: SEED`` shuffles them (a negative control: no class to find)."""
    y = np.asarray([it.label for it in items])
    seed = params.get("label_permutation")
    return y if seed is None else np.random.default_rng(seed).permutation(y)


def probe_prompt_set(handle, prompt_set, groups, params) -> LayerProbes:
    """Probe every layer (embedding output and each block): shuffled stratified k-fold, leave-one-group-out and the
    Hewitt-Liang control task keyed by operand pair."""
    X, labels = last_token_states(handle, probed_texts(prompt_set, params))
    y = probed_labels(prompt_set, params)
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


def cluster_means(values, clusters: Sequence) -> tuple[list, np.ndarray]:
    """Mean of ``values`` within each cluster (e.g. a template x operand-pair cell of prompts whose cross-validated
    predictions are not independent): the units a clustered test counts. Returns (cluster keys, means)."""
    values, clusters = np.asarray(values, dtype=np.float64), list(clusters)
    keys = list(dict.fromkeys(clusters))
    return keys, np.array([values[[c == k for c in clusters]].mean() for k in keys])


def layer_curve(probed: LayerProbes, series: dict[str, list], ylabel: str = "probe accuracy") -> dict:
    return {"x": [str(label) for label in probed.labels], "series": series, "xlabel": "layer (after block)",
            "ylabel": ylabel}


def floats_or_none(values) -> list[float | None]:
    return [None if v is None else float(v) for v in values]


def arithmetic_split(recipe: dict, n_train: int, n_val: int, seed: int, exclude: Sequence[str]) -> tuple[list, list]:
    """Seeded train and validation examples of a writeup's distribution, none of them an evaluation prompt."""
    examples = arithmetic_examples(n_train + n_val, seed, recipe["ops"], mul_range=recipe["mul_range"],
                                   add_range=recipe["add_range"], exclude=exclude)
    assert_disjoint(examples, exclude)
    return examples[:n_train], examples[n_train:]


def sft_config(steps: int, lr: float, seed: int, *, lora: bool, batch_size: int = 8, save_at: Sequence[int] = (),
               name: str = "sft") -> SFTConfig:
    """mlx-lm's ``lora`` defaults: Adam, no clipping, LoRA rank 8 scale 20 on every linear (or full fine-tuning)."""
    train = TrainConfig(steps=steps, lr=lr, optimizer="adam", grad_clip=None, seed=seed, save_at=tuple(save_at),
                        log_every=max(1, steps), name=name)
    return SFTConfig(train=train, batch_size=batch_size, lora=LoraSpec() if lora else None)


def blocks(handle: ModelHandle) -> list[int]:
    return list(range(handle.n_layers))


def depth_window(n_layers: int, centre: float, half_width: float) -> list[int]:
    """Blocks b whose depth b / L lies within ``half_width`` of ``centre`` (fractions of depth, CLAIMS.md revision 4;
    the writeup's L9 of 16 is depth 0.5625): about half_width x 2 x L blocks at any depth (the nearest block when the
    window holds none)."""
    near = [b for b in range(n_layers) if abs(b / n_layers - centre) <= half_width + 1e-9]
    return near or [min(int(centre * n_layers), n_layers - 1)]


GRPO_GATE_PARAMS = {"start_reward_range": [0.1, 0.9], "min_variance_share": 0.1, "min_reward_rise": 0.05,
                    "budget_rounds": 10}
GRPO_GATES = (
    Gate(name="start reward rate",
         description="mean reward over the first fifth of the GRPO steps, mean over seeds: outside [0.1, 0.9] nearly "
                     "every group shares one reward and GRPO has no signal",
         value=None, threshold_param="start_reward_range", direction="within"),
    Gate(name="groups with reward variance",
         description="share of GRPO groups whose rewards differ (only they carry a gradient), mean over seeds and "
                     "steps",
         value=None, threshold_param="min_variance_share"),
    Gate(name="reward rose",
         description="manipulation floor: mean reward over the last fifth of the GRPO steps minus the first fifth, "
                     "mean over seeds (0 in expectation at learning rate 0). 0.05 is the writeup's rise in the same "
                     "units: correct-answer probability 0.288 -> 0.346. A run trains in rounds of the writeup's "
                     "iteration count until its floors hold at a round's end, at most budget_rounds rounds; a run "
                     "whose reward still did not rise tested nothing, so it is NOT TESTABLE, never REFUTED",
         value=None, threshold_param="min_reward_rise"),
)


def fifths(values: Sequence[float]) -> tuple[float, float]:
    """Mean of the first and of the last fifth of a per-step series (at least one step each)."""
    n = max(1, len(values) // 5)
    return float(np.mean(values[:n])), float(np.mean(values[-n:]))


def reward_rise(metrics: Sequence[dict]) -> float:
    """The reward floor's statistic of one run: mean reward over its last fifth of steps minus its first fifth."""
    first, last = fifths([m["reward"] for m in metrics])
    return last - first


def grpo_fitness(metrics_per_seed: Sequence[Sequence[dict]]) -> dict[str, float]:
    """The GRPO gates' values from each run's per-step train metrics (``reward``, ``zero_std_frac``)."""
    start = [fifths([m["reward"] for m in ms])[0] for ms in metrics_per_seed]
    varied = [1.0 - float(np.mean([m["zero_std_frac"] for m in ms])) for ms in metrics_per_seed]
    return {"start reward rate": float(np.mean(start)), "groups with reward variance": float(np.mean(varied)),
            "reward rose": float(np.mean([reward_rise(ms) for ms in metrics_per_seed]))}


def budget(train: TrainConfig, rounds: int) -> TrainConfig:
    """A GRPO run's training within its budget (CLAIMS.md revision 4): ``rounds`` times the writeup's steps."""
    return replace(train, steps=train.steps * rounds)


def at_round_ends(round_steps: int, floors_met: Callable[[list[dict]], bool]) -> Callable[[int, Any], bool]:
    """The stopping rule of a run trained within a budget: at the end of each round of ``round_steps`` steps (never
    between), stop once the run so far meets its manipulation floors (``floors_met(per-step metrics)``)."""
    return lambda done, result: done % round_steps == 0 and floors_met(result.metrics)


def random_init_control(effect: Verdict) -> Control:
    """The negative control of the analysis claims: a random-init model of the same architecture and tokenizer."""
    return Control(name="random-init model", kind=NEGATIVE,
                   description="the same architecture and tokenizer with random weights: nothing was learned, so "
                               "there is no effect to find",
                   build=lambda ctx: ctx.variant(handle=ctx.random_control()), effect=effect)
