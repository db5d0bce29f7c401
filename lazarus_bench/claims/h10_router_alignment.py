"""Router claims on MoE models: H10 (router rows are no more vocabulary-aligned than random directions)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Callable

import mlx.core as mx
import numpy as np
from scipy.linalg import null_space
from scipy.stats import gumbel_r

from .. import prompts, stats
from ..analysis.lens import target_spellings
from ..analysis.projections import RouterAlignment, normalize_rows, router_vocab_alignment
from ..errors import LazarusError
from ..harness.base import POSITIVE, ClaimContext, Control, ControlUnavailable, Curve, Gate, Outcome, needs_moe
from ..harness.controls import GradedControl, NullControl
from ..harness.params import Param
from ..harness.registry import claim
from ..options import ABOVE_ZERO, COUNT, PROB, Each, Interval
from ..stats import ClaimStatistic, Verdict, ecdf
from ..zoo.registry import MANIFEST, resolve_zoo

NULL_CHUNK = 256
PLANT_NULL = 2000  # random directions giving the graded plant its null mean and SD


def operation_tokens(handle) -> tuple[dict[int, str], list[str]]:
    """Single-token spellings (bare and with a leading space) of the task and operation words: id -> 'word/spelling';
    plus the spellings that are several tokens and so cannot be a top token."""
    words = list(dict.fromkeys([*prompts.task_vocabulary("seed000").words(), *prompts.operation_words()]))
    ids: dict[int, str] = {}
    multi: list[str] = []
    for word in words:
        try:
            forms = target_spellings(handle, word)
        except LazarusError:
            multi.append(f"{word} (not spellable)")
            continue
        for spelling, toks in forms.items():
            if len(toks) == 1:
                ids.setdefault(toks[0], f"{word}/{spelling}")
            else:
                multi.append(f"{word}/{spelling} ({len(toks)} tokens)")
    return ids, multi


def null_top_k_hits(W: np.ndarray, g_f: np.ndarray, token_ids: list[int], *, top_k: int, n_null: int,
                    seed: int) -> np.ndarray:
    """For the same random unit directions as ``router_vocab_alignment``'s null: does the top-k of each hold one of
    ``token_ids``? (cosine with the gain-folded unembedding rows)."""
    rng = np.random.default_rng(seed)
    Z = normalize_rows(rng.standard_normal((n_null, W.shape[1]), dtype=np.float32))
    U = normalize_rows(W * g_f).astype(np.float32)
    hits = np.zeros(n_null, dtype=bool)
    if not token_ids:
        return hits
    k = min(top_k, U.shape[0])
    for start in range(0, n_null, NULL_CHUNK):
        S = Z[start:start + NULL_CHUNK] @ U.T
        kth = np.partition(S, S.shape[1] - k, axis=1)[:, S.shape[1] - k]
        hits[start:start + NULL_CHUNK] = (S[:, token_ids] >= kth[:, None]).any(axis=1)
    return hits


def without_common_direction(rows: np.ndarray, Wg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Router rows and gain-folded unembedding rows in coordinates of the orthogonal complement of the unembedding's
    common direction (its mean unit row), where random directions are again an isotropic null (in d - 1 dimensions).

    An anisotropic unembedding gives a row along the common direction a high cosine with every token at once; this
    view keeps only token-specific alignment. Also returns the common direction and its strength (norm of the mean
    unit row: 0 isotropic, 1 all rows equal).
    """
    mean = normalize_rows(Wg).mean(axis=0)
    strength = float(np.linalg.norm(mean))
    if strength == 0.0:
        raise LazarusError("the unembedding's unit rows average to zero: no common direction to remove")
    m = mean / strength
    Q = null_space(m[None].astype(np.float64)).astype(np.float32)
    return rows @ Q, Wg @ Q, m, strength


def substring_matches(tokens: list[str], words) -> list[str]:
    """Seed 000's rule (token lower-cased and stripped contains a task word): known to over-match, reported only."""
    out = []
    for tok in tokens:
        text = tok.lower().strip()
        hit = next((w for w in words if text and w in text), None)
        if hit is not None:
            out.append(f"{tok!r}~{hit}")
    return out


def gumbel_tail_p(values: np.ndarray, null: np.ndarray) -> np.ndarray:
    """P(null max cosine >= value) from a Gumbel fit to the null maxima (a maximum over the vocabulary is an extreme
    value): unlike the empirical p, whose floor 1/(n_null + 1) keeps Holm over many experts from ever rejecting, the
    tail resolves experts far beyond the null."""
    loc, scale = gumbel_r.fit(np.asarray(null, dtype=np.float64))
    return gumbel_r.sf(np.asarray(values, dtype=np.float64), loc, scale)


def _with_router_rows(ctx: ClaimContext, rows: Callable[..., np.ndarray]) -> ClaimContext:
    """A fresh copy of the model whose every router weight is replaced by ``rows(weight, router, W, g_f)``."""
    handle = ctx.fresh_handle()
    W = np.array(handle.unembedding(), dtype=np.float32)
    g_f = np.array(handle.final_norm_gain(), dtype=np.float32)
    for router in handle.routers():
        module = handle.router_linear(router)
        if "scales" in module:
            raise ControlUnavailable("quantized router weights: the control edits dense weights only")
        new = rows(np.array(router.weight, dtype=np.float32), router, W, g_f)
        module.weight = mx.array(new.astype(np.float32)).astype(module.weight.dtype)
    return ctx.variant(handle=handle)


def planted_router(ctx: ClaimContext) -> ClaimContext:
    """Expert 0 of every router made equal (norm gains folded in, as measured) to " multiply"'s unembedding row."""
    token = _multiply_token(ctx)

    def rows(weight, router, W, g_f):
        weight = weight.copy()
        weight[0] = W[token] * g_f / np.array(router.norm_gain, dtype=np.float32)
        return weight

    return _with_router_rows(ctx, rows)


def graded_router(ctx: ClaimContext, z: float, replicate: int) -> ClaimContext:
    """Expert 0 of every router made to have cosine mu + z sigma (as measured: norm gains folded in) with " multiply"'s
    gain-folded unembedding row, mu and sigma the random-direction null of the max cosine at this model's dimension
    and vocabulary; the rest of the row a random direction orthogonal to the word's (seeded by ``replicate``), its
    norm kept. So the plant's size is in the unit the rule reads: null SDs."""
    token = _multiply_token(ctx)
    handle = ctx.handle()
    W = np.array(handle.unembedding(), dtype=np.float32)
    g_f = np.array(handle.final_norm_gain(), dtype=np.float32)
    probe = np.random.default_rng(0).standard_normal((1, W.shape[1])).astype(np.float32)
    null = router_vocab_alignment(probe, W, None, g_f, top_k=1, n_null=PLANT_NULL, seed=ctx.params["seed"]).null
    cosine = null.mean + z * null.std
    if cosine >= 1.0:
        raise ControlUnavailable(f"z = {z:g} asks for cosine {cosine:.3f} >= 1 at d = {W.shape[1]}")
    rng = np.random.default_rng(10_000 + replicate)

    def rows(weight, router, W, g_f):
        gain = np.array(router.norm_gain, dtype=np.float32)
        target = W[token] * g_f
        target = target / np.linalg.norm(target)
        noise = rng.standard_normal(target.shape).astype(np.float32)
        noise -= (noise @ target) * target
        measured = cosine * target + math.sqrt(1.0 - cosine**2) * noise / np.linalg.norm(noise)
        weight = weight.copy()
        weight[0] = measured * np.linalg.norm(weight[0] * gain) / gain
        return weight

    return _with_router_rows(ctx, rows)


def _router_figure(ctx: ClaimContext, name: str) -> float:
    """A zoo moe's recorded router figure (``moved``: share of its norm the router moved from its random start;
    ``loss_fall``: LM loss fall against that start's router), NaN where its manifest has none (the gate fails), and
    1 for a checkpoint outside the zoo, whose router its makers trained."""
    if not ctx.model_id.startswith(("zoo:", "zoo-micro:")):
        return 1.0
    manifest = json.loads((resolve_zoo(ctx.model_id) / MANIFEST).read_text())
    router = (manifest.get("metrics") or {}).get("router") or {}
    return float(router[name]) if name in router else math.nan


ROUTER_GATES = (
    Gate(name="router moved from its start",
         description="manipulation floor: the share of its norm the router moved from its random initialisation "
                     "(zoo manifests; a released checkpoint's router is taken as trained): an untrained router is "
                     "random by construction and says nothing about what training does",
         value=lambda ctx: _router_figure(ctx, "moved"), threshold_param="min_router_moved"),
    Gate(name="router lowers the loss",
         description="manipulation floor: LM loss fall of the trained router against its random start's (zoo "
                     "manifests; a released checkpoint's router is taken as trained): a router that does not route "
                     "better than random was not trained",
         value=lambda ctx: _router_figure(ctx, "loss_fall"), threshold_param="min_router_loss_fall"),
)


def _multiply_token(ctx: ClaimContext) -> int:
    op_ids, _ = operation_tokens(ctx.handle())
    tokens = [t for t, w in op_ids.items() if w.split("/")[0] == "multiply"]
    if not tokens:
        raise ControlUnavailable("'multiply' is not a single token of this vocabulary")
    return tokens[0]


def random_routers(ctx: ClaimContext, replicate: int = 0) -> ClaimContext:
    """Every router row replaced by a Gaussian direction of the same norm (seeded by ``replicate``): aligned only by
    chance, with the spread of real router rows' norms."""
    rng = np.random.default_rng(1 + replicate)

    def rows(weight, router, W, g_f):
        noise = rng.standard_normal(weight.shape).astype(np.float32)
        return noise / np.linalg.norm(noise, axis=1, keepdims=True) * np.linalg.norm(weight, axis=1, keepdims=True)

    return _with_router_rows(ctx, rows)


def expert_samples(handle, align, perp, where: list[tuple[int, int]], per_expert: dict[str, np.ndarray],
                   op_ids: dict[int, str], words: list[str]) -> list[dict]:
    """One row per expert: where it sits, its max cosine and test values (``per_expert``: name -> one value per
    expert), its top tokens and the operation words among them."""
    samples = []
    for i, expert in enumerate(align.experts):
        layer, e = where[i]
        tokens = [handle.decode_token(t) for t in expert.top_token_ids]
        values = {name: float(column[i]) for name, column in per_expert.items()}
        samples.append({
            "layer": layer, "expert": e, "max_cosine": expert.max_cosine, "z": values["z"],
            "p_value": expert.p_value, "p_holm": values["p_holm"], "p_tail_holm": values["p_tail_holm"],
            "max_cosine_without_common_direction": perp.experts[i].max_cosine,
            "z_without_common_direction": values["z_without_common_direction"],
            "cosine_with_common_direction": values["cosine_with_common_direction"],
            "top_tokens": [[tok, int(t), float(c)] for tok, t, c in zip(tokens, expert.top_token_ids,
                                                                         expert.top_cosines)],
            "op_word_matches": [op_ids[t] for t in expert.top_token_ids if t in op_ids],
            "substring_matches": substring_matches(tokens, words),
        })
    return samples


def h10_curves(per_layer: dict[int, np.ndarray], null_stats, maxima: np.ndarray, null: np.ndarray,
               threshold: float) -> dict[str, Curve]:
    """Max cosine per MoE layer beside the random null and the writeup's threshold, and both distributions."""
    layers = list(per_layer)
    grid = np.linspace(min(null.min(), maxima.min()), max(null.max(), maxima.max(), threshold), 15)
    by_layer = Curve(
        x=tuple(str(layer) for layer in layers),
        series={"mean expert max cosine": [float(per_layer[lay].mean()) for lay in layers],
                "largest expert max cosine": [float(per_layer[lay].max()) for lay in layers],
                "random null mean": [null_stats.mean] * len(layers), "random null p95": [null_stats.p95] * len(layers),
                f"writeup threshold {threshold}": [threshold] * len(layers)},
        xlabel="MoE layer", ylabel="max cosine with an unembedding row")
    cdf = Curve(x=tuple(f"{g:.3f}" for g in grid),
                series={"router rows": ecdf(maxima, grid), "random directions": ecdf(null, grid)},
                xlabel="max cosine over the vocabulary", ylabel="cumulative fraction")
    return {"max_cosine_by_layer": by_layer, "max_cosine_cdf": cdf}


@dataclass
class H10Fit:
    """H10's measurements: every expert's router row against the gain-folded unembedding and random directions, with
    and without the unembedding's common direction, and the experts of each MoE layer (the unit)."""

    routers: list
    W: np.ndarray
    g_f: np.ndarray
    where: list[tuple[int, int]]
    n_null: int
    align: RouterAlignment
    perp: RouterAlignment
    strength: float
    along: np.ndarray
    z: np.ndarray
    z_perp: np.ndarray
    p_holm: np.ndarray
    in_layer: dict[int, list[int]]

    @property
    def maxima(self) -> np.ndarray:
        return self.align.max_cosines

    @property
    def null(self) -> np.ndarray:
        return np.asarray(self.align.null.values)

    @property
    def layers(self) -> list[int]:
        return list(self.in_layer)

    def per_layer_mean(self, values: np.ndarray) -> list[float]:
        """The mean of a per-expert value over the experts of each MoE layer."""
        return [float(values[idx].mean()) for idx in self.in_layer.values()]


def h10_fit(handle, p: dict) -> H10Fit:
    """Every router row (its norm gain folded in) against the vocabulary and random directions, from enough draws that
    an empirical p can reach alpha / experts (Holm), and again without the unembedding's common direction."""
    routers = handle.routers()
    W = np.array(handle.unembedding(), dtype=np.float32)
    g_f = np.array(handle.final_norm_gain(), dtype=np.float32)
    rows = np.concatenate([np.array(r.weight, dtype=np.float32) * np.array(r.norm_gain, dtype=np.float32)[None]
                           for r in routers])
    where = [(r.layer, e) for r in routers for e in range(r.num_experts)]
    n_null = math.ceil(p["null_per_test"] * len(where) / p["alpha"])
    align = router_vocab_alignment(rows, W, None, g_f, top_k=p["top_k"], n_null=n_null, seed=p["seed"])
    rows_perp, W_perp, common, strength = without_common_direction(rows, W * g_f)
    perp = router_vocab_alignment(rows_perp, W_perp, top_k=p["top_k"], n_null=n_null, seed=p["seed"])
    layers = sorted({layer for layer, _ in where})
    return H10Fit(routers=routers, W=W, g_f=g_f, where=where, n_null=n_null, align=align, perp=perp,
                  strength=strength, along=normalize_rows(rows) @ common,
                  z=(align.max_cosines - align.null.mean) / align.null.std,
                  z_perp=(perp.max_cosines - perp.null.mean) / perp.null.std, p_holm=stats.holm(align.p_values),
                  in_layer={layer: [i for i, (lay, _) in enumerate(where) if lay == layer] for layer in layers})


def layer_z_tests(fit: H10Fit, ctx: ClaimContext) -> tuple[ClaimStatistic, ClaimStatistic]:
    """Equivalence of the mean z per MoE layer with the random null, with and without the common direction."""
    p = ctx.params
    equivalence = stats.threshold_claim(fit.per_layer_mean(fit.z), p["equivalence_null_sd"], "below", p["alpha"],
                                        test=ctx.test("aligned"),
                                        name="expert max cosine above the random-direction null (null SDs), mean "
                                             "per MoE layer")
    token_specific = stats.threshold_claim(fit.per_layer_mean(fit.z_perp), p["equivalence_null_sd"], "below",
                                           p["alpha"], test=ctx.test("token_specific"),
                                           name="same, without the unembedding's common direction")
    return equivalence, token_specific


def gumbel_tails(fit: H10Fit) -> tuple[np.ndarray, np.ndarray]:
    """Holm-adjusted Gumbel tail p of every expert, with and without the common direction."""
    return (stats.holm(gumbel_tail_p(fit.maxima, fit.null)),
            stats.holm(gumbel_tail_p(fit.perp.max_cosines, np.asarray(fit.perp.null.values))))


def random_expectation(fit: H10Fit) -> float:
    """The max cosine a random direction is expected to reach over the vocabulary: sqrt(2 ln V / d)."""
    return math.sqrt(2.0 * math.log(fit.align.vocab_size) / fit.align.d_model)


def cosine_effect(fit: H10Fit, confidence: float) -> stats.EffectSize:
    """The mean of the layers' mean max cosine above the random-direction expectation (no interval)."""
    layer_max = np.array(fit.per_layer_mean(fit.maxima))
    return stats.EffectSize(name="mean max cosine - sqrt(2 ln V / d) (random-direction expectation)",
                            value=float(layer_max.mean()) - random_expectation(fit), ci_low=math.nan,
                            ci_high=math.nan, confidence=confidence, ci_method="none", se=math.nan, n1=len(fit.layers))


def op_word_null(fit: H10Fit, op_ids: dict[int, str], p: dict) -> dict:
    """How often the top-k of a random direction holds an operation word, as drawn and smoothed ((hits + 1) / (n +
    2), so that a layer's chance is never 0)."""
    null_hits = null_top_k_hits(fit.W, fit.g_f, list(op_ids), top_k=p["top_k"], n_null=fit.n_null, seed=p["seed"])
    return {"null_rate": float(null_hits.mean()), "smoothed": (int(null_hits.sum()) + 1) / (null_hits.size + 2)}


def h10_samples(handle, fit: H10Fit, tail_holm: np.ndarray, op_ids: dict[int, str]) -> list[dict]:
    """One row per expert (``expert_samples``), with seed 000's task words and the operation words for the
    substring rule."""
    words = [w.lower() for w in dict.fromkeys([*prompts.task_vocabulary("seed000").words(),
                                               *prompts.operation_words()])]
    return expert_samples(handle, fit.align, fit.perp, fit.where, {"z": fit.z, "p_holm": fit.p_holm,
                                                                   "p_tail_holm": tail_holm,
                                                                   "z_without_common_direction": fit.z_perp,
                                                                   "cosine_with_common_direction": fit.along},
                          op_ids, words)


def op_word_layers(fit: H10Fit, samples: list[dict], smoothed: float) -> dict:
    """Experts and MoE layers with an operation word in a top-k list, and the binomial test over layers against the
    chance that a layer of as many random directions has one."""
    layer_hits = sum(any(samples[i]["op_word_matches"] for i in idx) for idx in fit.in_layer.values())
    per_layer_rate = float(np.mean([1.0 - (1.0 - smoothed) ** len(idx) for idx in fit.in_layer.values()]))
    return {"n_match": sum(bool(s["op_word_matches"]) for s in samples), "layer_hits": layer_hits,
            "per_layer_rate": per_layer_rate,
            "test": stats.binomial_test(layer_hits, len(fit.layers), per_layer_rate, "greater")}


def aligned_experts(fit: H10Fit, alpha: float) -> list[int]:
    """The experts beyond the random-direction null after Holm over every expert (CLAIMS.md revision 4)."""
    return [i for i in range(len(fit.align.experts)) if fit.p_holm[i] < alpha]


def experts_reason(fit: H10Fit, samples: list[dict], aligned: list[int]) -> str:
    """How many experts are beyond the null, and the strongest of them."""
    if not aligned:
        return (f"no expert beyond the random-direction null after Holm over {len(fit.align.experts)} experts "
                f"({fit.n_null} draws)")
    best = max(aligned, key=lambda i: fit.maxima[i])
    return (f"{len(aligned)} expert(s) beyond the random-direction null after Holm ({fit.n_null} draws); strongest: "
            f"layer {fit.where[best][0]} expert {fit.where[best][1]}, max cosine {fit.maxima[best]:.3f} with "
            f"{samples[best]['top_tokens'][0][0]!r} (z={fit.z[best]:.1f})")


def mean_reason(fit: H10Fit, equivalence: ClaimStatistic, token_specific: ClaimStatistic, op: dict, p: dict) -> str:
    """Why the average part is decided as it is: aligned also without the common direction, aligned only along it,
    equivalent to random, or not shown either way."""
    margin, z, z_perp, n = p["equivalence_null_sd"], fit.z, fit.z_perp, len(fit.align.experts)
    if equivalence.verdict == Verdict.REFUTED and token_specific.verdict == Verdict.REFUTED:
        return (f"router rows are more aligned than random by more than {margin} null SD (mean z={z.mean():.2f}), "
                f"also without the unembedding's common direction (mean z={z_perp.mean():.2f})")
    if equivalence.verdict == Verdict.REFUTED:
        return (f"router rows beat random directions (mean z={z.mean():.2f}) only along the unembedding's common "
                f"direction (strength {fit.strength:.2f}); without it mean z={z_perp.mean():.2f}: anisotropy, not "
                f"token-specific alignment")
    if equivalence.verdict == Verdict.SUPPORTED:
        return (f"mean z={z.mean():.2f}, upper bound {equivalence.ci_high:.2f} < {margin} null SD "
                f"(p={equivalence.p_value:.3g}); operation words in {op['n_match']}/{n} top-{p['top_k']} lists vs "
                f"{op['null_rate']:.1%} for random directions")
    return f"equivalence with the random null not shown: {equivalence.reason}"


def h10_parts(fit: H10Fit, samples: list[dict], op: dict, equivalence: ClaimStatistic,
              token_specific: ClaimStatistic, p: dict) -> dict[str, ClaimStatistic]:
    """The criteria's parts: no expert aligned, operation words not enriched, random-like on average."""
    alpha, n, n_layers, ops = p["alpha"], len(fit.align.experts), len(fit.layers), op["test"]
    aligned = aligned_experts(fit, alpha)
    n_holm = int(np.sum(fit.p_holm < alpha))
    ops_reason = (f"{op['layer_hits']}/{n_layers} MoE layers have an expert holding an operation word in its top "
                  f"{p['top_k']}, {'more than' if ops.p_value < alpha else 'not more than'} random directions "
                  f"({op['per_layer_rate']:.1%} per layer; p={ops.p_value:.3g})")
    both_refuted = equivalence.verdict == Verdict.REFUTED and token_specific.verdict == Verdict.REFUTED
    return {
        "no_expert_aligned": stats.evidence("experts beyond the null after Holm", value=n_holm, n=n,
                                            against=bool(aligned), met=n_holm == 0,
                                            reason=experts_reason(fit, samples, aligned)),
        "op_words_not_enriched": stats.evidence("MoE layers with an operation-word expert", value=op["layer_hits"],
                                                n=n_layers, p_value=ops.p_value, against=ops.p_value < alpha,
                                                met=True, reason=ops_reason),
        "random_like_on_average": stats.evidence("mean z over MoE layers", value=float(fit.z.mean()),
                                                 n=equivalence.n, p_value=equivalence.p_value,
                                                 against=both_refuted, met=equivalence.verdict == Verdict.SUPPORTED,
                                                 reason=mean_reason(fit, equivalence, token_specific, op, p)),
    }


def h10_details(fit: H10Fit, equivalence: ClaimStatistic, token_specific: ClaimStatistic, shift, tails: tuple,
                op: dict, p: dict) -> dict:
    """The statistic's details: the null, the aligned experts by either test, the max cosines against the writeup's
    numbers, the view without the common direction, and the operation-word counts."""
    alpha, align, maxima, null, threshold = p["alpha"], fit.align, fit.maxima, fit.null, p["max_cosine"]
    tail_holm, tail_holm_perp = tails
    tail_aligned = [i for i in range(len(align.experts)) if tail_holm[i] < alpha and tail_holm_perp[i] < alpha]
    return {
        **equivalence.details, "n_experts": len(align.experts), "n_moe_layers": len(fit.layers),
        "d_model": align.d_model, "vocab_size": align.vocab_size, "n_null": align.null.n,
        "null_mean": align.null.mean, "null_std": align.null.std,
        "aligned_experts": [list(fit.where[i]) for i in aligned_experts(fit, alpha)], "null_p95": align.null.p95,
        "null_p99": align.null.p99,
        "aligned_by_gumbel_tail_also_without_common_direction": [list(fit.where[i]) for i in tail_aligned],
        "mean_max_cosine": float(maxima.mean()), "median_max_cosine": float(np.median(maxima)),
        "max_max_cosine": float(maxima.max()), "min_max_cosine": float(maxima.min()),
        "writeup_threshold": threshold, "experts_below_threshold": float(np.mean(maxima < threshold)),
        "null_below_threshold": float(np.mean(null < threshold)), "writeup_typical": list(p["writeup_typical"]),
        "experts_in_writeup_typical": float(np.mean((maxima >= p["writeup_typical"][0])
                                                    & (maxima <= p["writeup_typical"][1]))),
        "shift_p_greater": shift.p_value, "n_holm_significant": int(np.sum(fit.p_holm < alpha)),
        "common_direction_strength": fit.strength,
        "mean_abs_cosine_with_common_direction": float(np.abs(fit.along).mean()),
        "mean_z_without_common_direction": float(fit.z_perp.mean()),
        "ci_without_common_direction": [token_specific.ci_low, token_specific.ci_high],
        "verdict_without_common_direction": str(token_specific.verdict),
        "null_mean_without_common_direction": fit.perp.null.mean,
        "null_std_without_common_direction": fit.perp.null.std,
        "op_word_experts": op["n_match"], "op_word_null_rate": op["null_rate"],
        "op_word_null_rate_smoothed": op["smoothed"], "op_word_layers": op["layer_hits"],
        "op_word_null_rate_per_layer": op["per_layer_rate"],
        "unit": "MoE layer (experts of a layer are not independent: upcycled experts start as copies)",
        "random_direction_expectation": random_expectation(fit), "mean_z_per_layer": fit.per_layer_mean(fit.z),
        "op_word_p": op["test"].p_value, "literal_no_op_word_expert": op["n_match"] == 0,
        "op_word_tokens": {str(k): v for k, v in op["ids"].items()}, "op_word_multi_token": op["multi"],
        "router_bias_ignored": any(r.bias is not None for r in fit.routers),
    }


def h10_ours(fit: H10Fit, op: dict, p: dict) -> str:
    """The record's one-line summary of what this model showed."""
    align, maxima, null, z, threshold = fit.align, fit.maxima, fit.null, fit.z, p["max_cosine"]
    n_holm = int(np.sum(fit.p_holm < p["alpha"]))
    return (f"{len(align.experts)} experts in {len(fit.layers)} MoE layers: max cosine mean {maxima.mean():.3f} "
            f"(range {maxima.min():.3f}-{maxima.max():.3f}) vs random null {align.null.mean:.3f} +- "
            f"{align.null.std:.3f} at d={align.d_model}; mean z={z.mean():.2f} ({fit.z_perp.mean():.2f} without the "
            f"unembedding's common direction, strength {fit.strength:.2f}); {np.mean(maxima < threshold):.0%} below "
            f"the writeup's {threshold} (null: {np.mean(null < threshold):.0%}); {n_holm} expert(s) beyond the null "
            f"(Holm); operation word in {op['n_match']}/{len(align.experts)} top-{p['top_k']} lists (random "
            f"directions {op['null_rate']:.1%})")


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {
    "no_expert_aligned": {"threshold": 0.5, "side": "below"},  # experts beyond the null after Holm: none
    "op_words_not_enriched": None,  # a binomial p per build against the random rate, which the record does not keep
    "random_like_on_average": {"threshold": "equivalence_null_sd", "side": "below"},  # mean z
}


@claim(
    id="H10",
    title="MoE router rows are not vocabulary-aligned",
    statement="Router rows (norm gains folded in) are no more aligned with unembedding rows than random directions,"
               " and no expert's top tokens are operation words.",
    source="seed 002 (NEW HYPOTHESIS: MoE Router Vocabulary Mapping; Results)",
    criterion="per-expert max cosine within equivalence_null_sd of the random-direction null at the same dimension "
               "(one-sided t bound), no expert aligned (Holm-adjusted empirical p < alpha over all experts, from "
               ">= 20 x experts / alpha null draws; an aligned expert refutes), operation words in top-20 lists no "
               "more often than for random directions; excess alignment only along the unembedding's common "
               "direction is inconclusive; a trained router (floors); the writeup's absolute 0.2 reported beside",
    writeup="all 768 GPT-OSS-20B experts GENERAL; scores typically 0.07-0.11 (< 0.2); no operation-word expert",
    params={"max_cosine": Param(0.2, Interval(float, 0.0, 1.0),
                                help="the writeup's absolute max-cosine threshold, reported beside the verdict"),
            "writeup_typical": Param([0.07, 0.11], Each(Interval(float, 0.0, 1.0), min_len=2, max_len=2),
                                     help="the writeup's typical [low, high] expert max cosine, reported"),
            "top_k": 20,
            "null_per_test": Param(20, COUNT,
                                   help="random directions per expert per alpha: n_null = ceil(this x experts / "
                                        "alpha)"),
            "sesoi_z": Param(8.0, ABOVE_ZERO,
                             help="graded control: the planted z (null SDs) the rule must call aligned in >= 80%"),
            "min_router_moved": Param(0.2, PROB,
                                      help="gate: smallest share of its norm the router moved from its random start"),
            "min_router_loss_fall": Param(0.01, Interval(float, -1.0, 1.0),
                                          help="gate: smallest LM loss fall of the trained router against its start"),
            "equivalence_null_sd": Param(1.0, ABOVE_ZERO,
                                         help="margin (null SDs) the mean router max-cosine z per MoE layer must "
                                              "stay below"),
            "alpha": 0.05, "seed": 0},
    applies=needs_moe,
    tests={"aligned": "t", "token_specific": "t"},
    fast={"null_per_test": 1},
    gates=ROUTER_GATES,
    controls=(
        Control(name="planted router row", kind=POSITIVE,
                description="expert 0 of every MoE layer set to the unembedding row of ' multiply' (gain-folded): "
                            "vocabulary-aligned by construction (cosine 1)",
                build=planted_router, effect=Verdict.REFUTED, sanity=True),
    ),
    graded=(GradedControl(name="router row at a planted z",
                          description="expert 0 of every MoE layer given cosine mu + z sigma with ' multiply''s "
                                      "gain-folded unembedding row (mu, sigma: the random-direction null of the max "
                                      "cosine at this dimension), the rest a random orthogonal direction of the row's "
                                      "own norm (a new direction per replicate); read by the rule that calls an "
                                      "expert aligned",
                          units="planted expert's z against the random-direction null",
                          strengths=(2.0, 4.0, 6.0, 8.0, 12.0, 16.0), replicates=10, build=graded_router,
                          effect=Verdict.REFUTED, threshold=8.0, writeup=0.0, claimed="threshold",
                          part="no_expert_aligned"),),
    nulls=(NullControl(name="random router rows",
                       description="every router row replaced by a random direction of the same norm (a new draw per "
                                   "replicate)",
                       replicates=40, build=random_routers, effect=Verdict.REFUTED),),
)
def measure_h10(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    handle = ctx.handle()
    fit = h10_fit(handle, p)
    equivalence, token_specific = layer_z_tests(fit, ctx)
    shift = stats.permutation_test(fit.maxima, fit.null, alternative="greater", seed=p["seed"])
    tails = gumbel_tails(fit)
    op_ids, multi = operation_tokens(handle)
    op = {"ids": op_ids, "multi": multi, **op_word_null(fit, op_ids, p)}
    samples = h10_samples(handle, fit, tails[0], op_ids)
    op.update(op_word_layers(fit, samples, op["smoothed"]))
    parts = h10_parts(fit, samples, op, equivalence, token_specific, p)
    details = h10_details(fit, equivalence, token_specific, shift, tails, op, p)
    statistic = replace(equivalence, effect_size=cosine_effect(fit, equivalence.confidence), details=details)
    curves = h10_curves({layer: fit.maxima[idx] for layer, idx in fit.in_layer.items()}, fit.align.null, fit.maxima,
                        fit.null, p["max_cosine"])
    return Outcome(statistic=statistic, ours=h10_ours(fit, op, p), samples=samples, curves=curves, parts=parts,
                   extra={"null_values": [float(v) for v in fit.null]})
