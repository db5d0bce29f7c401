"""H04: the multiply-vs-add probe direction is not vocabulary-aligned (rank of the word among all rows).

The direction is the class-mean difference of the residual stream, not the standardised probe's weights (see
``direction``); the positive control is H05a's dual-reward-trained model, whose lens names the operation (see
``h05_trained``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import prompts, stats
from ..analysis import probes
from ..analysis.directions import word_ranks
from ..analysis.features import last_token_states
from ..analysis.lens import target_spellings
from ..analysis.projections import cosine_scores, normalize_rows, ranks_of
from ..errors import LazarusError
from ..harness.base import POSITIVE, ClaimContext, Control, Outcome, not_instruct
from ..harness.common import NULL_CHUNK
from ..harness.controls import GradedControl, NullControl
from ..harness.fixtures import dual_model
from ..harness.params import Param
from ..harness.registry import claim
from ..models import ModelHandle
from ..options import COUNT, OPEN_PROB, Choice
from ..stats import ClaimStatistic, Verdict, ecdf


class VocabRanker:
    """Ranks of one word's spellings (first tokens) by cosine of a residual direction (final-norm gain folded in)
    with every unembedding row, as ``directions.word_ranks`` computes them, for many directions."""

    def __init__(self, handle, word: str):
        self._set(handle.unembedding(), handle.final_norm_gain(),
                  [ids[0] for ids in target_spellings(handle, word).values()])

    @classmethod
    def from_arrays(cls, unembedding, gain, ids) -> "VocabRanker":
        """A ranker over a given unembedding (V, d), final-norm gain (d,) and the word's first-token ids."""
        ranker = cls.__new__(cls)
        ranker._set(unembedding, gain, ids)
        return ranker

    def _set(self, unembedding, gain, ids) -> None:
        self.W = np.array(unembedding, dtype=np.float32)
        self.gain = np.array(gain, dtype=np.float32)
        self.vocab_size = int(self.W.shape[0])
        self.ids = sorted({int(i) for i in ids})

    def best_rank(self, direction) -> int:
        scores = cosine_scores(np.asarray(direction, dtype=np.float32), self.W, gain=self.gain)
        return min(ranks_of(scores, self.ids).values())

    def best_cosine(self, direction) -> float:
        """The largest cosine of the direction (gain folded) with the word's spellings' rows."""
        scores = cosine_scores(np.asarray(direction, dtype=np.float32), self.W, gain=self.gain)
        return float(np.max(np.asarray(scores)[self.ids]))

    def null_best_cosines(self, n: int, seed: int) -> np.ndarray:
        """The same for ``n`` standard Gaussian residual directions (seeded as ``null_best_ranks``)."""
        rng = np.random.default_rng(seed)
        Z = rng.standard_normal((n, self.W.shape[1]), dtype=np.float32)
        rows = normalize_rows(self.W)[self.ids]
        return (normalize_rows(Z * self.gain) @ rows.T).max(axis=1)

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


PROMPT_SETS = ("symbol", "word")


def multiply_add_items(prompt_set: str) -> list:
    """The multiply and add prompts of the writeup's ``classifier`` command (symbol prompts, train and test) or of
    the word set (revision 1's choice, kept for comparison)."""
    if prompt_set == "symbol":
        pool = [*prompts.symbol_set("train"), *prompts.symbol_set("test")]
    elif prompt_set == "word":
        pool = list(prompts.word_set())
    else:
        raise LazarusError(f"prompt_set must be one of {', '.join(PROMPT_SETS)}, not '{prompt_set}'")
    return [it for it in pool if it.label in ("multiply", "add")]


def multiply_add_features(handle, layer: int, prompt_set: str = "symbol",
                          suffix: str = "") -> tuple[np.ndarray, np.ndarray, list]:
    """Last-token states at ``layer`` for the multiply and add prompts of ``prompt_set``, each text + ``suffix``."""
    items = multiply_add_items(prompt_set)
    X, _ = last_token_states(handle, [it.text + suffix for it in items], [layer])
    return X[0], np.asarray([it.label for it in items]), items


def direction(X, y) -> np.ndarray:
    """The multiply-vs-add direction in the residual stream (before the final norm, whose gain ``VocabRanker`` and
    ``word_ranks`` fold in): the class-mean difference mean(x | multiply) - mean(x | add).

    Why not the probe's weights: the probe standardises every feature, and its weights mapped back to the residual
    stream (coef / sigma, ``probes.binary_direction``) are still not the direction the classes differ along. With
    a dozen prompts in d dimensions the penalised fit in standardised coordinates is close to the standardised mean
    difference delta / sigma, so coef / sigma ~ delta / sigma**2: an inverse-variance reweighting. Where the class
    signal itself carries a coordinate's variance (sigma_i ~ |c u_i| for a signal c u), that weight is ~ 1 / u_i,
    pointing away from u. The class-mean difference has expectation exactly c u (no scaling, no penalty): it is the
    direction along which the two classes' residuals, and so their lens logits, differ. On zoo:base's H05a-trained
    model (lens P(' multiply') 0.90 at block 4) it ranks the word 1st of 1,024; the standardised weights rank it
    6th in one run and 26th in another (the fit is unstable). tests/test_probes.py and tests/test_probe_direction.py
    plant u in anisotropic features and recover it (cosine ~1) where coef / sigma does not. The probe is still
    fitted, to show that the classes are separable (``probe_above_chance``); its weights' rank is reported beside
    (``probe_weight_best_rank``), never used."""
    return probes.mean_difference_direction(X, y, "multiply", "add")


def h05_trained(ctx: ClaimContext) -> ClaimContext:
    """The positive control CLAIMS.md names: H05a's corrected dual-reward model (seed 0, the cached adapter of
    ``fixtures.dual_model``), read on the symbol prompts in the form H05a trains and evaluates them, with the
    trailing space ('7 * 8 = '). That is where the effect exists: on zoo:base its lens at block 4 gives ' multiply'
    0.90 on the multiply prompts with the space and < 0.001 without it, so the bare '7 * 8 =' could not show it."""
    return ctx.variant(handle=dual_model(ctx), params={"prompt_suffix": " "})


def interpolated_h05(ctx: ClaimContext, fraction: float, replicate: int) -> ClaimContext:
    """``h05_trained`` with H05a's LoRA delta (dual-reward seed ``replicate``) scaled by ``fraction``: 0 is this
    model, 1 the trained one."""
    handle = dual_model(ctx, seed=replicate)
    lora = [m for _, m in handle.model.named_modules() if hasattr(m, "lora_a") and hasattr(m, "scale")]
    if not lora:
        raise LazarusError(f"{ctx.model_id}: the dual-reward adapter loaded no LoRA layer to scale")
    for module in lora:
        module.scale = float(module.scale) * fraction
    return ctx.variant(handle=handle, params={"prompt_suffix": " "})


def random_init_draw(ctx: ClaimContext, replicate: int) -> ClaimContext:
    """A random-init model of the same architecture (init seed ``replicate``) and a new bootstrap seed."""
    return ctx.variant(handle=ctx.random_control(seed=100 + replicate), params={"seed": 1 + replicate})


def rank_sides(boot: np.ndarray, top: float, alpha: float) -> tuple[bool, bool, float, float]:
    """Which side of the top-fraction cut-off the resampled directions' percentiles put the word, with the same
    confidence for either (CLAIMS.md revision 4): inside when the upper alpha-quantile is at or below the cut-off and
    fewer than alpha of them lie outside; outside the mirror image. Returns (inside, outside, p outside, p inside)."""
    low, high = (float(q) for q in np.quantile(boot, [alpha, 1.0 - alpha]))
    p_claim = float((1 + np.count_nonzero(boot <= top)) / (boot.size + 1))
    p_against = float((1 + np.count_nonzero(boot > top)) / (boot.size + 1))
    return high <= top and p_against < alpha, low > top and p_claim < alpha, p_claim, p_against


def bootstrap_best_ranks(X, y, ranker: VocabRanker, *, n_bootstrap: int, seed: int) -> np.ndarray:
    """Best rank of the spellings for directions recomputed on prompts resampled with replacement within each
    class."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(y == c) for c in np.unique(y)]
    out = np.zeros(n_bootstrap, dtype=int)
    for b in range(n_bootstrap):
        idx = np.concatenate([rng.choice(m, size=m.size, replace=True) for m in members])
        out[b] = ranker.best_rank(direction(X[idx], y[idx]))
    return out


@dataclass
class H04Fit:
    """H04's measurements: the direction at the tested block and the word's ranks along it, the probe, the resampled
    and random directions' rank percentiles, and the other prompt set's and the random-init model's ranks."""

    p: dict
    handle: ModelHandle
    layer: int
    items: list
    y: np.ndarray
    texts: list[str]
    states: np.ndarray
    w: np.ndarray
    probe_w: np.ndarray
    words: list[str]
    top_side: dict
    bottom_side: dict
    ranker: VocabRanker
    probe: probes.LayerProbe
    boot: np.ndarray
    null: np.ndarray
    null_cos: np.ndarray
    other: str
    other_rank: int
    c_rank: int

    @property
    def V(self) -> int:
        return self.top_side["vocab_size"]

    @property
    def best_rank(self) -> int:
        """The best rank of the claim's word over its spellings."""
        return min(f["rank"] for f in self.top_side["words"][self.p["word"]].values())

    @property
    def best_pct(self) -> float:
        return self.best_rank / self.V


def all_block_states(handle, p: dict) -> tuple[list, np.ndarray, list[str], np.ndarray]:
    """The multiply and add prompts of ``prompt_set`` with the suffix, and their last-token states at every block
    from one forward: (items, labels, texts, states)."""
    items = multiply_add_items(p["prompt_set"])
    y = np.asarray([it.label for it in items])
    texts = [it.text + p["prompt_suffix"] for it in items]
    states, _ = last_token_states(handle, texts, list(range(handle.n_layers)))
    return items, y, texts, states


def h04_fit(ctx: ClaimContext) -> H04Fit:
    """The class-mean direction at the tested block, its ranks, the probe, the bootstrap and random-direction nulls,
    then the same direction on the other prompt set and on a random-init model."""
    p = ctx.params
    handle = ctx.handle()
    layer = handle.layer_at_depth(p["layer_fraction"])
    items, y, texts, states = all_block_states(handle, p)
    X = states[list(range(handle.n_layers)).index(layer)]
    w = direction(X, y)
    probe_w = probes.binary_direction(X, y, "multiply", "add", C=p["C"], seed=p["seed"])
    words = list(dict.fromkeys([p["word"], *prompts.operation_words()]))
    top_side, bottom_side = word_ranks(handle, w, words), word_ranks(handle, -w, words)
    V = top_side["vocab_size"]
    ranker = VocabRanker(handle, p["word"])
    probe = probes.probe_layer(X, y, n_splits=p["n_splits"], n_permutations=p["n_permutations"], seed=p["seed"],
                               C=p["C"])
    boot = bootstrap_best_ranks(X, y, ranker, n_bootstrap=p["n_bootstrap"], seed=p["seed"]) / V
    null = ranker.null_best_ranks(p["n_null"], p["seed"]) / V
    null_cos = ranker.null_best_cosines(p["n_null"], p["seed"])
    other = "word" if p["prompt_set"] == "symbol" else "symbol"
    o_X, o_y, _ = multiply_add_features(handle, layer, other, p["prompt_suffix"])
    other_rank = ranker.best_rank(direction(o_X, o_y))
    c_handle = ctx.random_control()
    c_X, c_y, _ = multiply_add_features(c_handle, layer, p["prompt_set"], p["prompt_suffix"])
    c_rank = VocabRanker(c_handle, p["word"]).best_rank(direction(c_X, c_y))
    return H04Fit(p=p, handle=handle, layer=layer, items=items, y=y, texts=texts, states=states, w=w, probe_w=probe_w,
                  words=words, top_side=top_side, bottom_side=bottom_side, ranker=ranker, probe=probe, boot=boot,
                  null=null, null_cos=null_cos, other=other, other_rank=other_rank, c_rank=c_rank)


def side_tests(boot: np.ndarray, alpha: float, top: float) -> dict:
    """The bootstrap interval of the rank percentile and the side of the cut-off it settles (``rank_sides``)."""
    ci_low, ci_high = (float(q) for q in np.quantile(boot, [alpha, 1.0 - alpha]))
    in_top, outside, p_claim, p_against = rank_sides(boot, top, alpha)
    return {"ci_low": ci_low, "ci_high": ci_high, "in_top": in_top, "outside": outside, "p_claim": p_claim,
            "p_against": p_against}


def rank_tests(fit: H04Fit, alpha: float, top: float) -> dict:
    """``side_tests``, the cosine's z against random directions, and the rank's p against random directions and
    against uniform ranks."""
    z = (fit.ranker.best_cosine(fit.w) - float(fit.null_cos.mean())) / float(fit.null_cos.std(ddof=1))
    p_align = float((1 + np.count_nonzero(fit.null <= fit.best_pct)) / (fit.null.size + 1))
    return {**side_tests(fit.boot, alpha, top), "z": z, "p_align": p_align,
            "p_uniform": fit.ranker.uniform_p(fit.best_rank)}


def rank_reason(word: str, best_rank: int, V: int, t: dict, top: float) -> str:
    """Why the rank part is decided as it is: inside the top fraction, outside it, or not settled."""
    best_pct = best_rank / V
    if t["in_top"]:
        return (f"'{word}' stays in the top {top:.0%} of the vocabulary (best rank {best_rank}/{V}) for the "
                f"directions of resampled prompts (bootstrap upper bound {t['ci_high']:.2%}, p={t['p_against']:.3g})")
    if t["outside"]:
        return (f"best rank {best_rank}/{V} ({best_pct:.1%}); bootstrap lower bound {t['ci_low']:.2%} > {top:.0%} "
                f"(p={t['p_claim']:.3g})")
    return (f"best rank {best_rank}/{V} ({best_pct:.1%}); bootstrap interval [{t['ci_low']:.2%}, {t['ci_high']:.2%}] "
            f"does not settle whether it is outside the top {top:.0%}")


def outside_top_part(word: str, best_rank: int, V: int, t: dict, n: int, top: float) -> ClaimStatistic:
    """The rank part: the word's best rank percentile outside the top fraction for resampled prompts."""
    return stats.evidence("best rank percentile", value=best_rank / V, n=n,
                          p_value=t["p_against"] if t["in_top"] else t["p_claim"], against=t["in_top"],
                          met=t["outside"], reason=rank_reason(word, best_rank, V, t, top))


def h04_parts(fit: H04Fit, t: dict, alpha: float, top: float) -> dict[str, ClaimStatistic]:
    """The criteria's parts: the word's rank outside the top fraction, and the probe above chance."""
    probe, n = fit.probe, int(fit.y.size)
    probe_ok = probe.p_value is not None and probe.p_value < alpha
    return {
        "outside_top": outside_top_part(fit.p["word"], fit.best_rank, fit.V, t, n, top),
        "probe_above_chance": stats.evidence(
            "multiply-vs-add probe accuracy", value=probe.accuracy, n=n, p_value=probe.p_value,
            met=probe_ok, reason=f"probe accuracy {probe.accuracy:.0%} (permutation p={probe.p_value:.3g})" + (
                "" if probe_ok else ": not above chance, so its direction may be noise")),
    }


def read_outside_top(ctx: ClaimContext) -> Outcome:
    """The rank part alone, for the graded control and the null that read it: the tested block's states, the
    class-mean direction and its resampled ranks; no probe, random directions, other prompt set or random-init
    model."""
    p = ctx.params
    handle = ctx.handle()
    X, y, _ = multiply_add_features(handle, handle.layer_at_depth(p["layer_fraction"]), p["prompt_set"],
                                    p["prompt_suffix"])
    ranker = VocabRanker(handle, p["word"])
    boot = bootstrap_best_ranks(X, y, ranker, n_bootstrap=p["n_bootstrap"], seed=p["seed"]) / ranker.vocab_size
    t = side_tests(boot, p["alpha"], p["top_fraction"])
    part = outside_top_part(p["word"], ranker.best_rank(direction(X, y)), ranker.vocab_size, t, int(y.size),
                            p["top_fraction"])
    return Outcome(statistic=stats.pending("best rank percentile", part.statistic, n=part.n), ours=part.reason,
                   parts={"outside_top": part})


def rank_by_layer(fit: H04Fit) -> list[float]:
    """The word's best rank percentile along the class-mean direction at every block."""
    return [fit.ranker.best_rank(direction(fit.states[j], fit.y)) / fit.V for j in range(fit.handle.n_layers)]


def h04_details(fit: H04Fit, t: dict, ctx: ClaimContext) -> dict:
    """The statistic's details: the rank and its cut-off, the bootstrap and random-direction tests, the probe, the
    random-init model, the other prompt set and the rank by block."""
    p, V, top, ranker = ctx.params, fit.V, ctx.params["top_fraction"], fit.ranker
    ci_low, ci_high = t["ci_low"], t["ci_high"]
    level = 1.0 - 2.0 * p["alpha"]
    return {
        "layer": fit.layer, "vocab_size": V, "top_fraction": top, "top_cutoff_rank": int(math.floor(top * V)),
        "best_rank": fit.best_rank, "best_percentile": fit.best_pct, "n_spellings": len(ranker.ids),
        "bootstrap_p_in_top": t["p_claim"], "bootstrap_p_outside_top": t["p_against"],
        "n_bootstrap": int(fit.boot.size),
        "cosine_z": t["z"], "cosine_z_definition": "best spelling cosine minus the mean of random directions' best "
                                                   "cosines, over their SD (description; the rank percentile decides)",
        "bootstrap_median": float(np.median(fit.boot)),
        "p_aligned_vs_random": t["p_align"], "p_aligned_uniform": t["p_uniform"], "n_null": int(fit.null.size),
        "null_median": float(np.median(fit.null)), "probe_accuracy": fit.probe.accuracy,
        "probe_permutation_p": fit.probe.p_value,
        "random_init_best_rank": fit.c_rank, "random_init_percentile": fit.c_rank / V, "alpha": p["alpha"],
        "direction_method": "class-mean difference of the residual stream (multiply - add), final-norm gain folded",
        "test": "; ".join(f"{c}: {ctx.test(c)}" for c in ("outside_top", "aligned", "probe_above_chance")),
        "probe_weight_best_rank": ranker.best_rank(fit.probe_w),
        "probe_weight_note": "best rank of the standardised probe's weights mapped to the residual stream (coef / "
                             "sigma, gain folded): reported beside, never used (see ``direction``)",
        "mde": stats.mde_from_ci(ci_low, ci_high, level) if ci_high > ci_low else math.nan,
        "mde_definition": "rank-percentile shift detectable at alpha with power 0.8, normal approximation from the "
                          "bootstrap interval; NaN (not defined) when every resampled direction gives the same rank, "
                          "so the interval has no width",
        "prompt_set": p["prompt_set"], "n_prompts": len(fit.items),
        f"{fit.other}_set_best_rank": fit.other_rank, f"{fit.other}_set_best_percentile": fit.other_rank / V,
        "rank_definition": "1-based rank by descending cosine over all unembedding rows (1 + #strictly greater); "
                           "percentile = rank / vocabulary size; outside the top fraction iff percentile > it",
        "rank_percentile_by_layer": rank_by_layer(fit),
    }


def h04_samples(fit: H04Fit) -> list[dict]:
    """One row per operation word and spelling: its rank and score along the direction, and its rank from the
    bottom (along the opposite direction)."""
    samples = []
    for wd in fit.words:
        for spelling, info in fit.top_side["words"][wd].items():
            low = fit.bottom_side["words"][wd][spelling]
            samples.append({
                "word": wd, "spelling": spelling, "token_id": info["token_id"],
                "token": fit.handle.decode_token(info["token_id"]), "n_tokens": info["n_tokens"],
                "rank": info["rank"], "percentile": info["rank"] / fit.V, "score": info["score"],
                "rank_from_bottom": low["rank"],
            })
    return samples


def h04_curves(fit: H04Fit, by_layer: list[float]) -> dict:
    """The rank percentile's distribution for resampled, random and uniform directions, and the rank by block."""
    word, top, n_layers = fit.p["word"], fit.p["top_fraction"], fit.handle.n_layers
    grid = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]
    m = len(fit.ranker.ids)
    return {"rank_percentile_cdf": {
        "x": [f"{g:.1%}" for g in grid],
        "series": {"bootstrap directions": ecdf(fit.boot, grid), "random directions": ecdf(fit.null, grid),
                   "uniform ranks": [1.0 - (1.0 - g) ** m for g in grid]},
        "xlabel": f"best rank of '{word}' / vocabulary size", "ylabel": "cumulative fraction",
    }, "rank_percentile_by_layer": {
        "x": [str(j) for j in range(n_layers)], "xlabel": "block", "ylabel": f"best rank of '{word}' / vocabulary size",
        "series": {"mean-difference direction": by_layer, f"top {top:.0%} cutoff": [top] * n_layers},
    }}


def h04_ours(fit: H04Fit, t: dict, details: dict) -> str:
    """The record's one-line summary of what this model showed."""
    p, V, top, level = fit.p, fit.V, fit.p["top_fraction"], 1.0 - 2.0 * fit.p["alpha"]
    return (f"'{p['word']}' best rank {fit.best_rank}/{V} ({fit.best_pct:.2%}) at block {fit.layer} "
            f"(class-mean-difference direction; the probe's standardised weights: "
            f"{details['probe_weight_best_rank']}/{V}); bootstrap {level:.0%} interval [{t['ci_low']:.2%}, "
            f"{t['ci_high']:.2%}], {np.mean(fit.boot <= top):.0%} of resampled directions in the top {top:.0%}; "
            f"random directions p={t['p_align']:.3g}; probe accuracy {fit.probe.accuracy:.0%}; random-init rank "
            f"{fit.c_rank}/{V}; {p['prompt_set']} prompts ({len(fit.items)}), on the {fit.other} set the rank is "
            f"{fit.other_rank}/{V}")


# The population verdict over builds (CLAIMS.md revision 4): per criterion, the build-level statistic's scale and
# test, and its threshold and side where the record does not state them. Outside the records' hash.
POPULATION = {
    "outside_top": {"scale": "logit", "threshold": "top_fraction", "side": "above"},  # rank percentile
    "probe_above_chance": {"threshold": 0.5, "side": "above"},  # binary probe: chance 1/2
}


@claim(
    id="H04",
    title="The probe's direction is not vocabulary-aligned",
    statement="The multiply-vs-add probe direction at 55% depth does not point at the 'multiply' unembedding row.",
    source="seed 002 (Probe Direction Vocabulary Projection)",
    criterion="best rank of ' multiply'/'multiply' (cosine of the gain-folded multiply-vs-add direction, the "
               "class-mean difference of the residual stream, with every unembedding row) outside the top 1% of "
               "the vocabulary, for resampled prompts: SUPPORTED when the bootstrap's lower bound is outside and fewer "
               "than alpha of the resampled directions inside, REFUTED the mirror image (the same confidence either "
               "side); a linear probe above chance; the cosine's z against random directions as description; the "
               "writeup's symbol prompts (its classifier command)",
    writeup="multiply rank 24,300 / 128,256 (19%), score +0.0355 (Llama-3.2-1B, L8)",
    params={"word": Param("multiply", Choice(("multiply", "add", "subtract", "divide")),
                          help="word whose unembedding rank the direction is tested on"),
            "top_fraction": Param(0.01, OPEN_PROB,
                                  help="top share (0-1) of the vocabulary the word's best rank must stay out of"),
            "layer_fraction": 0.55, "n_splits": 4, "n_permutations": 100, "n_bootstrap": 200, "C": 1.0,
            "alpha": 0.05, "seed": 0, "prompt_set": "symbol",
            "prompt_suffix": Param("", Choice(("", " ")), help="text appended to every prompt"),
            "n_null": Param(1000, COUNT, help="random directions in the null distribution")},
    applies=not_instruct,
    tests={"outside_top": "bootstrap bound past the cut-off and the share of resampled directions on the other side "
                          "(either side)",
           "aligned": "random-direction null (empirical p; description)", "probe_above_chance": "label permutation"},
    fast={"n_permutations": 20, "n_bootstrap": 40, "n_null": 200},
    after=("H05a",),
    controls=(
        Control(name="dual-reward-trained model", kind=POSITIVE,
                description="this model after H05a's corrected dual-reward run (seed 0, cached), read on the symbol "
                            "prompts in the form H05a trains and evaluates them ('7 * 8 = ', with the trailing "
                            "space): its lens at 55% depth names the operation there, so the direction must rank the "
                            "word in the top 1%",
                build=h05_trained, effect=Verdict.REFUTED),
    ),
    graded=(GradedControl(name="H05a's delta interpolated",
                          description="this model plus a fraction of H05a's corrected dual-reward LoRA delta (LoRA "
                                      "scale x fraction; one dual-reward seed per replicate), read on the symbol "
                                      "prompts with the trailing space as H05a trains them; fraction 1 is the "
                                      "trained dual-reward model (the writeup's: lens P(op word) 36-81%)",
                          units="fraction of H05a's trained LoRA delta", strengths=(0.1, 0.25, 0.5, 0.75, 1.0),
                          replicates=5, build=interpolated_h05, effect=Verdict.REFUTED, threshold=None, writeup=1.0,
                          part="outside_top"),),
    nulls=(NullControl(name="random-init models",
                       description="random-init models of the same architecture and tokenizer (a new init seed and "
                                   "bootstrap seed per replicate): no direction can be vocabulary-aligned by "
                                   "learning",
                       replicates=20, build=random_init_draw, effect=Verdict.REFUTED, part="outside_top"),),
    layer_curve=("rank_percentile_by_layer", "mean-difference direction"),
    readers={"outside_top": read_outside_top},
)
def measure_h04(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    alpha, top = p["alpha"], p["top_fraction"]
    fit = h04_fit(ctx)
    t = rank_tests(fit, alpha, top)
    parts = h04_parts(fit, t, alpha, top)
    details = h04_details(fit, t, ctx)
    statistic = stats.pending(
        f"best rank percentile of '{p['word']}' spellings (mean-difference direction at block {fit.layer})",
        fit.best_pct, ci_low=t["ci_low"], ci_high=t["ci_high"], confidence=1.0 - 2.0 * alpha, p_value=t["p_claim"],
        n=int(fit.y.size), details=details)
    extra = {"direction": [float(v) for v in fit.w], "bootstrap_percentiles": [float(v) for v in fit.boot],
             "null_percentiles": [float(v) for v in fit.null], "prompts": fit.texts}
    return Outcome(statistic=statistic, ours=h04_ours(fit, t, details), samples=h04_samples(fit),
                   curves=h04_curves(fit, details["rank_percentile_by_layer"]), extra=extra, parts=parts)
