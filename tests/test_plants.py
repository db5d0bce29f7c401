"""Planted lens effects (graded controls): the plant writes exactly scale x direction at its block into the prompts
that hold the class marker and nowhere else, and its scale is calibrated to the asked lens probability."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from lazarus_bench import prompts
from lazarus_bench.claims.base import ControlUnavailable
from lazarus_bench.claims.plants import ClassPlant, calibrate_scale, class_markers, word_directions
from lazarus_bench.models import load_model


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
