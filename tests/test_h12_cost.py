"""H12 (cost): the widened random-init model, checked against an independent parameter count, and the claim end to
end on a tiny model (fast tier)."""

from __future__ import annotations

import json

import pytest
from mlx.utils import tree_flatten

from lazarus_bench.claims.h12_lora_vs_full_cost import llama_params, one_analysis, widened_config
from lazarus_bench.harness.base import ModelInfo
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.tiny import build_model, tiny_config
from lazarus_bench.zoo.registry import resolve_zoo


def counted(config: dict) -> int:
    """Parameters of the mlx-lm model a config builds, counted from its arrays."""
    return sum(v.size for _, v in tree_flatten(build_model(config, randomise_norms=False).parameters()))


@pytest.mark.parametrize("arch", ["llama", "llama_untied"])
def test_the_shape_count_equals_the_built_models(arch):
    config = tiny_config(arch)
    assert llama_params(config) == counted(config)
    wide = widened_config(config, 300_000)
    assert llama_params(wide) == counted(wide) >= 300_000


def test_the_zoo_widens_to_101_7m_parameters_at_width_1024():
    """Revision 4's model: the zoo's architecture (width 128, MLP 384, 8 layers, V 1,024, tied) at the smallest
    width with >= 100M parameters: 1,024 (MLP 3,072), 101,729,280 parameters; width 896 has too few."""
    config = json.loads((resolve_zoo("zoo:base") / "config.json").read_text())
    wide = widened_config(config, 100_000_000)
    assert (wide["hidden_size"], wide["intermediate_size"], wide["num_hidden_layers"]) == (1024, 3072, 8)
    assert wide["head_dim"] * wide["num_attention_heads"] == 1024 and wide["num_key_value_heads"] * 2 == 32
    assert llama_params(wide) == counted(wide) == 101_729_280
    narrower = {**wide, "hidden_size": 896, "intermediate_size": 2688, "num_attention_heads": 28,
                "num_key_value_heads": 14}
    assert llama_params(narrower) < 100_000_000


@pytest.mark.parametrize("model_id, kind, skipped", [("zoo:base", "base", False), ("zoo:base@s102", "base", True),
                                                      ("zoo:moe", "moe", True), ("zoo:instruct", "instruct", True),
                                                      ("/models/Llama-3.2-1B", "base", False)])
def test_one_analysis_on_the_zoos_own_base_or_a_users_base(model_id, kind, skipped):
    info = ModelInfo(model_id=model_id, model_type="mixtral" if kind == "moe" else "llama", kind=kind, n_layers=8,
                     is_moe=kind == "moe", tied=True)
    assert (one_analysis(info) is not None) == skipped
    assert get_claim("H12c").applies(info) == one_analysis(info)


def test_h12c_end_to_end_on_a_tiny_model(saved_model, tmp_path):
    """The fast tier widens the tiny model to >= 200k parameters, times both arms, and reads the trainable share
    from the runs: LoRA's trainable parameters over the widened model's, as an independent count of its arrays."""
    from lazarus_bench.suite.runner import run_claim

    model = saved_model("llama")
    record = run_claim(get_claim("H12c"), str(model), tier="fast", report_dir=tmp_path, cache_dir=tmp_path / "c",
                       log=lambda m: None, overrides={"min_seeds": 1})
    assert record.status == "ok", record.traceback or record.reason
    details = record.statistic.details
    config = widened_config(json.loads((model / "config.json").read_text()), 200_000)
    assert details["parameters"] == counted(config) and details["architecture"]["hidden_size"] == 128
    by = {s["method"]: s for s in record.samples}
    assert by["full"]["trainable_params"] == by["full"]["total_params"] == counted(config)
    share = details["criteria"]["trainable_fraction"]["statistic"]
    assert share == pytest.approx(by["lora"]["trainable_params"] / counted(config))
    assert {c.name for c in record.controls} == {"LoRA against LoRA"}
