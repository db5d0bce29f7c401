"""One-factor protocol ablations: each original defect alone on top of the corrected dual-reward protocol."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from lazarus_bench.claims.base import get_claim
from lazarus_bench.errors import LazarusError
from lazarus_bench.protocols import ONE_FACTOR, ORIGINAL_DIFFERENCES, PROTOCOLS, protocol_defects
from lazarus_bench.suite.report import render
from lazarus_bench.suite.runner import ModelPool, run_claim
from lazarus_bench.training.dual_reward import DualRewardConfig, training_examples

CHANGED = {"optimizer": {"train"}, "batch_size": {"batch_size"}, "lora_scale": {"lora"}}


def test_each_one_factor_protocol_has_exactly_its_defect():
    assert protocol_defects("corrected") == frozenset()
    assert protocol_defects("original") == frozenset(ORIGINAL_DIFFERENCES)
    assert PROTOCOLS == ("corrected", "original", *ONE_FACTOR) and len(ONE_FACTOR) == len(ORIGINAL_DIFFERENCES)
    for defect in ORIGINAL_DIFFERENCES:
        assert protocol_defects(f"corrected+{defect}") == {defect}
    with pytest.raises(LazarusError, match="unknown protocol"):
        protocol_defects("corrected+nonsense")


@pytest.mark.parametrize("defect", list(ORIGINAL_DIFFERENCES))
def test_one_factor_config_differs_from_corrected_only_there(defect):
    corrected = asdict(DualRewardConfig.for_protocol("corrected"))
    single = asdict(DualRewardConfig.for_protocol(f"corrected+{defect}"))
    original = asdict(DualRewardConfig.for_protocol("original"))
    differs = {k for k in corrected if k != "protocol" and corrected[k] != single[k]}
    assert differs == CHANGED.get(defect, set())
    for key in differs:
        assert single[key] == original[key]


def test_eval_prompt_leak_only_with_its_defect():
    from lazarus_bench import prompts

    evals = set(prompts.dual_reward_eval().texts())
    leaky = DualRewardConfig.for_protocol("corrected+eval_prompts_in_training", n_train=4000)
    clean = DualRewardConfig.for_protocol("corrected+bos_in_training", n_train=4000)
    assert {e.prompt for e in training_examples(leaky)} & evals
    assert not {e.prompt for e in training_examples(clean)} & evals


def test_report_names_the_single_defects_that_move_h05a(saved_model, tmp_path):
    assert set(ONE_FACTOR) <= set(get_claim("H05a").protocols)
    path, out = str(saved_model("llama")), tmp_path / "reports"
    for protocol in ("corrected", "corrected+optimizer", "corrected+lora_scale"):
        record = run_claim(get_claim("H05a"), path, tier="fast", report_dir=out, protocol=protocol,
                           pool=ModelPool(), log=lambda m: None, cache_dir=tmp_path / "cache")
        assert record["status"] == "ok", record.get("reason")
    text = render(out).read_text()
    section = text.split("## One-factor protocol ablations")[1].split("\n## ")[0]
    assert "| corrected+optimizer " in section and "| corrected+lora_scale " in section
    assert "Single defects that move it:" in section
