"""Planted lens effects (graded controls): the plant writes exactly scale x direction at its block into the prompts
that hold the class marker and nowhere else, and its scale is calibrated to the asked lens probability."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from lazarus_bench import prompts
from lazarus_bench.analysis.lens import logit_lens
from lazarus_bench.harness.base import ControlUnavailable
from lazarus_bench.harness.plants import (
    ClassPlant,
    calibrate_scale,
    class_markers,
    plant_op_words,
    strongest_directions,
    word_directions,
)
from lazarus_bench.models import load_model
from lazarus_bench.training.data import class_token_ids


def _states(handle, texts):
    return [[np.array(h.astype(mx.float32))[0] for h in handle.forward(mx.array([handle.encode(t)])).hidden]
            for t in texts]


def test_plant_adds_scale_times_direction_where_the_marker_is(saved_model):
    path = str(saved_model("llama"))
    plain, planted = load_model(path), load_model(path)
    ops = ["multiply", "add"]
    sets = [prompts.resampled_dual_reward_eval(s) for s in (1, 2)]
    items = [it for ps in sets for it in ps if it.label in ops]
    markers = class_markers(planted, [type(sets[0])(name="x", items=tuple(items), source=sets[0].source)], ops)
    assert [planted.decode_token(m).strip() for m in markers] == ["*", "+"]
    block = 2
    directions = np.random.default_rng(0).standard_normal((2, planted.hidden_size)).astype(np.float32)
    plant = ClassPlant(planted, markers, directions, block)
    texts = ["7 * 8 = ", "3 + 4 = ", "9 - 2 = "]
    plant.scale = 0.0
    for a, b in zip(_states(plain, texts), _states(planted, texts)):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    plant.scale = 2.5
    before, after = _states(plain, texts), _states(planted, texts)
    for i, expected in enumerate([2.5 * directions[0], 2.5 * directions[1], np.zeros_like(directions[0])]):
        for layer in range(block + 1):  # up to the block's input: untouched
            np.testing.assert_array_equal(before[i][layer], after[i][layer])
        np.testing.assert_allclose(after[i][block + 1] - before[i][block + 1], np.broadcast_to(expected, before[i][
            block + 1].shape), atol=1e-4)


def test_word_directions_are_unit_gain_folded_unembedding_rows(handle_of):
    from lazarus_bench.analysis.lens import target_spellings

    handle = handle_of("llama")
    got = word_directions(handle, ["multiply"])[0]
    ids = target_spellings(handle, "multiply")["with_space"]
    row = np.array(handle.unembedding())[ids[0]] * np.array(handle.final_norm_gain())
    np.testing.assert_allclose(got, row / np.linalg.norm(row), rtol=1e-5)


@pytest.mark.parametrize("target", [0.005, 0.02])
def test_calibrated_scale_reaches_the_asked_probability(saved_model, target):
    from lazarus_bench.claims.h01_lens_op_words import op_word_lens

    handle = load_model(str(saved_model("llama")))
    words = list(prompts.operation_words())
    calib = prompts.resampled_dual_reward_eval(5)
    plant = ClassPlant(handle, class_markers(handle, [calib], words), word_directions(handle, words), 2)

    def mean_prob():
        results, probs = op_word_lens(handle, calib, words)
        row = results[0].layers.index(2)
        return float(np.mean([probs[label][i, row] for i, label in enumerate(calib.labels())]))

    scale = calibrate_scale(plant, mean_prob, target)
    assert scale > 0 and plant.scale == scale
    assert mean_prob() == pytest.approx(target, rel=0.02)
    with pytest.raises(ControlUnavailable, match="cannot raise the word's probability to 0.2"):
        calibrate_scale(plant, mean_prob, 0.2)  # 'subtract' and 'divide' are two tokens here: the plant raises one


def _true_word_probs(handle, prompt_set, block):
    words = list(prompts.operation_words())
    results = logit_lens(handle, prompt_set.texts(), words, layers=[block], top_k=1)
    return np.array([r.targets[label].full_prob_sum[0] for r, label in zip(results, prompt_set.labels())])


def _word_probs(handle, block):
    """Lens P('multiply') on text with no operator symbol."""
    texts = ["The cat sat on the mat", "seven times eight is", "Calculate the total"]
    return np.array([r.targets["multiply"].full_prob_sum[0]
                     for r in logit_lens(handle, texts, ["multiply"], layers=[block], top_k=1)])


@pytest.mark.parametrize("target", [0.01, 0.3])
def test_planted_op_word_reaches_its_calibrated_probability(target):
    handle = load_model("zoo:base")
    block = handle.layer_at_depth(0.55)
    calib, measured = prompts.resampled_dual_reward_eval(5), prompts.resampled_dual_reward_eval(6)
    before_measured, before_plain = _true_word_probs(handle, measured, block), _word_probs(handle, block)
    assert before_measured.max() < 0.01
    plant = plant_op_words(handle, block, target, calib, [measured])
    assert plant.scale > 0
    assert _true_word_probs(handle, calib, block).mean() == pytest.approx(target, rel=1e-3)
    got = _true_word_probs(handle, measured, block).mean()
    assert target / 3 < got < min(1.0, 3 * target), "the strength transfers to prompts the calibration never saw"
    np.testing.assert_array_equal(_word_probs(handle, block), before_plain)
    plant.scale = 0.0
    np.testing.assert_array_equal(_true_word_probs(handle, measured, block), before_measured)


def test_strongest_directions_beat_the_unembedding_row_and_match_numpy():
    """At the final norm's fixed point the row itself gives the token ~0.1 on the zoo; the ascended direction ~0.9."""
    handle = load_model("zoo:base")
    W, g = np.array(handle.unembedding(), dtype=np.float64), np.array(handle.final_norm_gain(), dtype=np.float64)

    def lens_prob(d, t):
        z = W @ (g * d / np.sqrt(np.mean(d**2)))
        p = np.exp(z - z.max())
        return p[t] / p.sum()

    ids = list(class_token_ids(handle, prompts.operation_words()).values())  # H05a's read-out tokens
    got = strongest_directions(handle, ids)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    for t, d in zip(ids, got):
        assert lens_prob(d, t) > 0.8 > 0.2 > lens_prob(W[t] * g, t)
