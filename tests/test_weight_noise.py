"""The weight-noise plant (graded controls): it adds exactly scale x RMS x a seeded normal draw to each block matrix
(0 restores the weights bitwise) and its scale is calibrated to lose the asked accuracy points."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from lazarus_bench import prompts
from lazarus_bench.harness.base import ControlUnavailable
from lazarus_bench.harness.weight_noise import WeightNoise, plant_accuracy_drop
from lazarus_bench.models import load_model


def _block_matrices(handle):
    from mlx.utils import tree_flatten

    return [[(n, np.array(v.astype(mx.float32))) for n, v in tree_flatten(layer.parameters()) if v.ndim == 2]
            for layer in handle.layers]


def test_weight_noise_is_scale_times_rms_times_a_seeded_normal_draw(saved_model):
    handle = load_model(str(saved_model("llama")))
    before = _block_matrices(handle)
    plant = WeightNoise(handle, (14, 0, 1))
    plant.scale = 0.3
    rng = np.random.default_rng([14, 0, 1])  # the same draw, in the same order, from numpy
    for mats, now in zip(before, _block_matrices(handle)):
        for (name, w), (_, got) in zip(mats, now):
            expected = w + 0.3 * np.sqrt(np.mean(w**2)) * rng.standard_normal(w.shape, dtype=np.float32)
            np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-3 * np.abs(w).max(), err_msg=name)
    plant.scale = 0.0
    for mats, now in zip(before, _block_matrices(handle)):
        assert all(np.array_equal(w, got) for (_, w), (_, got) in zip(mats, now))
    other = WeightNoise(load_model(str(saved_model("llama"))), (14, 0, 2))
    assert not np.array_equal(np.array(other._noise[0][0]), np.array(plant._noise[0][0]))


def test_planted_accuracy_drop_loses_the_asked_points_on_its_calibration_prompts():
    from lazarus_bench.analysis.generate import answer_accuracy

    handle = load_model("zoo:base")
    items = [it for it in prompts.two_stage_extra(60, seed=1000).where(category="symbolic")]
    texts, answers = [it.text for it in items], [it.answer for it in items]
    before = answer_accuracy(handle, texts, answers).accuracy
    assert before > 0.6
    planted = plant_accuracy_drop(handle, 30.0, texts, answers, (14, 0, 0))
    lost = 100 * (before - answer_accuracy(handle, texts, answers).accuracy)
    assert planted["calibration_lost"] == pytest.approx(lost) and 30.0 <= lost < 50.0
    assert 0 < planted["noise_scale"] < 100
    with pytest.raises(ControlUnavailable, match="loses fewer than"):
        plant_accuracy_drop(load_model("zoo:base"), 100 * before + 1, texts, answers, (14, 0, 0))
