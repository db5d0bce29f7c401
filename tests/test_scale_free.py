"""Scale-free thresholds (CLAIMS.md revision 4): R from random-init models, T' = max(T, k x R), a rise from k x R, the
graded control's strength at the SESOI, and H01 deciding with T' and its argmax equivalence."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import scipy.stats as sps

from lazarus_bench.claims.h01_lens_op_words import argmax_equivalence, h01_statistics, scale_free_threshold
from lazarus_bench.errors import LazarusError
from lazarus_bench.harness import scale
from lazarus_bench.harness.controls import GradedControl
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.models import load_model
from lazarus_bench.stats import Verdict
from lazarus_bench.tiny import build_model


def test_t_prime_equals_the_writeups_threshold_on_a_large_vocabulary_and_rises_on_a_small_one():
    level = {"random_level": 0.0009}
    assert scale.low_threshold(0.01, level, 10)["scale_free"] == pytest.approx(0.01)
    small = scale.low_threshold(0.01, {"random_level": 0.009}, 10)
    assert small["scale_free"] == pytest.approx(0.09) and small["writeup"] == 0.01 and small["k"] == 10
    assert scale.rise(0.03, 0.001, {"random_level": 0.002}, 10) == pytest.approx(1.5), "from k x R, not from noise"
    assert scale.rise(0.5, 0.1, {"random_level": 0.002}, 10) == pytest.approx(5.0)


def test_the_random_level_is_the_mean_over_random_init_models_computed_once(saved_model, monkeypatch):
    """R is the statistic's mean over models of init seeds 100-104 of the same architecture (rebuilt here with
    mlx-lm), and a second request of the same key does not rebuild them."""
    handle = load_model(str(saved_model("llama")))
    monkeypatch.setattr(scale, "_LEVELS", {})
    seen = []

    def first_weight(h):
        seen.append(1)
        return float(np.abs(np.array(h.embed.weight)).mean())

    level = scale.random_level(handle, "test statistic", first_weight, 5)
    config = json.loads((saved_model("llama") / "config.json").read_text())
    expected = [float(np.abs(np.array(build_model(config, seed=100 + i, randomise_norms=False)
                                      .model.embed_tokens.weight)).mean()) for i in range(5)]
    assert level["random_draws"] == pytest.approx(expected)
    assert level["random_level"] == pytest.approx(np.mean(expected))
    assert len(set(level["random_draws"])) == 5
    assert scale.random_level(handle, "test statistic", first_weight, 5) == level and len(seen) == 5


@pytest.mark.parametrize("hits, verdict", [(12, Verdict.SUPPORTED), (38, Verdict.INCONCLUSIVE),
                                           (60, Verdict.REFUTED)])
def test_the_argmax_part_is_an_equivalence_with_the_same_confidence_either_side(hits, verdict):
    """96 prompts, chance 25% + 15 points: below 40% by the exact one-sided binomial supports, above it refutes."""
    part = argmax_equivalence(hits, 96, 0.25, 0.15, 0.05)
    assert part.verdict == verdict
    below = sps.binomtest(hits, 96, 0.40, alternative="less").pvalue
    above = sps.binomtest(hits, 96, 0.40, alternative="greater").pvalue
    assert part.details["p_below"] == pytest.approx(below) and part.details["p_above"] == pytest.approx(above)
    assert (below < 0.05) == (verdict == Verdict.SUPPORTED) and (above < 0.05) == (verdict == Verdict.REFUTED)


def test_a_sesoi_control_must_see_twice_the_distance_from_the_random_level():
    control = GradedControl(name="c", description="d", units="p", strengths=(0.001, 0.01, 0.1, 0.4), replicates=2,
                            build=lambda ctx, s, r: ctx, effect=Verdict.REFUTED, threshold=0.01, writeup=0.0005,
                            claimed="sesoi", scale_free=lambda ctx: {"scale_free": 0.09, "random_level": 0.009})
    threshold, claimed, unit = control.targets(None)
    assert threshold == pytest.approx(0.09) and claimed == pytest.approx(0.009 + 2 * 0.081) and unit == 1.0
    relative = replace(control, strengths=(0.1, 0.5, 1.0, 2.0, 4.0), relative=True)
    threshold, claimed, unit = relative.targets(None)
    assert threshold == 1.0 and claimed == pytest.approx(2 - 0.009 / 0.09) and unit == pytest.approx(0.09)
    with pytest.raises(LazarusError, match="relative"):
        replace(control, claimed="writeup", relative=True)
    with pytest.raises(LazarusError, match="scale_free"):
        GradedControl(name="c", description="d", units="p", strengths=(0.001, 0.01, 0.1, 0.4), replicates=2,
                      build=lambda ctx, s, r: ctx, effect=Verdict.REFUTED, threshold=0.01, writeup=0.0005,
                      claimed="sesoi")


def test_h01_decides_with_t_prime_and_records_both_forms(saved_model, tmp_path):
    """On a tiny model (V = 96) the random level is far above 1%/10, so T' = 10 R decides; R is recomputed here from
    five random-init models with H01's own statistic."""
    from lazarus_bench.suite.runner import run_claim

    path = str(saved_model("llama"))
    record = run_claim(get_claim("H01"), path, tier="fast", report_dir=tmp_path, cache_dir=tmp_path / "c",
                       log=lambda m: None)
    assert record.status == "ok", record.traceback or record.reason
    forms = record.statistic.details["threshold_forms"]
    handle = load_model(path)
    p = record.params
    config = json.loads((saved_model("llama") / "config.json").read_text())
    from lazarus_bench.models import ModelHandle

    random = [max(h01_statistics(ModelHandle(model=build_model(config, seed=100 + i, randomise_norms=False),
                                             tokenizer=handle.tokenizer, model_id="r", config=handle.config),
                                 {**p, "prompt_seed": -1})[0]) for i in range(5)]
    assert forms["random_level"] == pytest.approx(np.mean(random)) and forms["writeup"] == 0.01
    assert forms["scale_free"] == pytest.approx(max(0.01, 10 * np.mean(random)))
    assert forms == scale_free_threshold(handle, p)
    criteria = record.statistic.details["criteria"]
    assert criteria["every_prompt_below"]["details"]["threshold"] == forms["scale_free"]
    assert record.statistic.details["argmax_n"] == 96


def test_random_levels_read_each_random_model_once(saved_model):
    """Several summaries of one reading (H11's mean and max peak) read each random-init model once, and each equals
    numpy's summary of that model's reading; a second call reads nothing again."""
    from lazarus_bench.models import load_model

    handle = load_model(str(saved_model("llama")))
    calls = []

    def read(h):
        calls.append(h.model_id)
        return [float(x) for x in np.asarray(h.unembedding(), dtype=np.float64)[:3].sum(axis=1)]

    out = scale.random_levels(handle, "three unembedding row sums", read, 3, {"mean": np.mean, "max": max})
    assert len(calls) == 3
    again = scale.random_levels(handle, "three unembedding row sums", read, 3, {"max": max})
    assert len(calls) == 3 and again["max"] == out["max"]
    readings = [read(h) for h in scale.random_models(handle, 3)]
    assert out["mean"]["random_draws"] == [float(np.mean(r)) for r in readings]
    assert out["max"]["random_level"] == float(np.mean([max(r) for r in readings]))
    assert out["mean"]["statistic"] == "three unembedding row sums (mean)"
