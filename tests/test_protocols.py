"""One-factor protocol ablations: each original defect alone on top of the corrected dual-reward protocol."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from lazarus_bench import prompts, stats
from lazarus_bench.claims.h11_sft_task_tokens import lens_top_for
from lazarus_bench.errors import LazarusError
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.models import load_model
from lazarus_bench.protocols import ONE_FACTOR, ORIGINAL_DIFFERENCES, PROTOCOLS, protocol_defects
from lazarus_bench.suite.records import ModelRef, Record
from lazarus_bench.suite.report import _one_factor, read_all, render
from lazarus_bench.suite.runner import ModelPool, run_claim
from lazarus_bench.training.dual_reward import DualRewardConfig, training_examples

CHANGED = {"optimizer": {"train"}, "batch_size": {"batch_size"}, "lora_scale": {"lora"}}


def test_each_one_factor_protocol_has_exactly_its_defect():
    assert protocol_defects("corrected") == frozenset()
    assert protocol_defects("original") == frozenset(ORIGINAL_DIFFERENCES)
    assert PROTOCOLS[:2] == ("corrected", "original") and set(ONE_FACTOR) <= set(PROTOCOLS)
    assert len(ONE_FACTOR) == len(ORIGINAL_DIFFERENCES)
    assert protocol_defects("corrected+noncausal_mask", "lens") == {"noncausal_mask"}
    with pytest.raises(LazarusError, match="unknown protocol"):
        protocol_defects("corrected+noncausal_mask")
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
                           pool=ModelPool(), log=lambda m: None, cache_dir=tmp_path / "cache",
                           overrides={"min_cls_loss_fall": 0.0, "min_ceiling_over_floor": 0.0})
        assert record.status == "ok", record.reason
        passed = all(g.passed for g in record.fitness)
        assert passed, record.reason
        # the graded control calibrates the read-out and test, which an ablation shares: measured once, under corrected
        expected = [] if "+" in protocol else ["op word planted in the untrained model"]
        assert [g.name for g in record.graded or ()] == expected
    text = read_all(render(out).parent)
    section = text.split("## One-factor protocol ablations")[1].split("\n## ")[0]
    assert "| corrected+optimizer " in section and "| corrected+lora_scale " in section
    assert "Single defects that move it:" in section


def test_h11_lens_one_factor_protocols(saved_model):
    """Seed 000's lens with both defects removed is the corrected lens; with one removed it is neither."""
    import numpy as np

    from lazarus_bench import prompts
    from lazarus_bench.claims.h11_sft_task_tokens import lens_top_for, original_lens_top
    from lazarus_bench.models import load_model

    assert {"corrected+noncausal_mask", "corrected+input_unembedding"} <= set(get_claim("H11").protocols)
    handle = load_model(str(saved_model("llama")))
    texts = prompts.seed000_tests().texts()[:3]
    corrected = lens_top_for("corrected")(handle, texts, 5)
    fixed = original_lens_top(handle, texts, 5, causal=True, input_unembedding=False)
    for a, b in zip(corrected, fixed):
        for row_a, row_b in zip(a, b):
            assert [t[1] for t in row_a] == [t[1] for t in row_b]
            np.testing.assert_allclose([t[2] for t in row_a], [t[2] for t in row_b], rtol=1e-4, atol=1e-6)
    noncausal = lens_top_for("corrected+noncausal_mask")(handle, texts, 5)
    assert any(abs(r1[0][2] - r2[0][2]) > 1e-4 for a, b in zip(corrected, noncausal) for r1, r2 in zip(a, b))


def test_fast_tier_skips_the_one_factor_ablations():
    from lazarus_bench.suite.runner import plan

    h05a = get_claim("H05a")
    assert h05a.tier_protocols("slow") == h05a.protocols and len(h05a.protocols) == 9
    assert h05a.tier_protocols("fast") == ("corrected", "original")
    assert [j.protocol for j in plan([h05a], ["m"], None, "fast", "/nonexistent")] == ["corrected", "original"]
    assert len(plan([h05a], ["m"], None, "slow", "/nonexistent")) == 9


def test_h14_original_is_its_single_defect_ablation(saved_model, tmp_path):
    """H14's original protocol differs from corrected only in the stage-2 optimiser: the report shows it as the
    one-factor row of that defect."""
    from dataclasses import replace

    from lazarus_bench.claims.h14_two_stage import two_stage_configs
    from lazarus_bench.protocols import SINGLE_DEFECT_ORIGINAL

    params = get_claim("H14").parameters("fast")
    corrected, original = two_stage_configs(params, 0, "corrected"), two_stage_configs(params, 0, "original")
    for name in corrected:
        s2 = original[name].stage2.train
        assert (s2.optimizer, s2.grad_clip) == ("sgd", None)
        same = replace(original[name], stage2=replace(original[name].stage2, train=replace(
            s2, optimizer=corrected[name].stage2.train.optimizer, grad_clip=corrected[name].stage2.train.grad_clip)))
        assert same == corrected[name]
    path, out = str(saved_model("llama")), tmp_path / "reports"
    for protocol in ("corrected", "original"):
        record = run_claim(get_claim("H14"), path, tier="fast", report_dir=out, protocol=protocol,
                           pool=ModelPool(), log=lambda m: None, cache_dir=tmp_path / "cache",
                           overrides={"min_stage1_accuracy": 0.0})
        assert record.status == "ok", record.reason
    section = read_all(render(out).parent).split("## One-factor protocol ablations")[1].split("\n## ")[0]
    assert f"| corrected+{SINGLE_DEFECT_ORIGINAL['H14']} " in section and "### H14 on" in section
    assert "only in `optimizer`" in section


def test_the_report_says_the_input_unembedding_ablation_is_vacuous_on_a_tied_head(saved_model):
    """On a tied head seed 000's lens with only the input-embedding defect is the corrected lens (so the ablation
    cannot show that defect), and the report says so under that model's ablation table; not on an untied head."""
    handle = load_model(str(saved_model("llama")))
    assert handle.tied
    texts = prompts.seed000_tests().texts()[:3]
    for a, b in zip(lens_top_for("corrected")(handle, texts, 5),
                    lens_top_for("corrected+input_unembedding")(handle, texts, 5)):
        for row_a, row_b in zip(a, b):
            assert [t[1] for t in row_a] == [t[1] for t in row_b]
            np.testing.assert_allclose([t[2] for t in row_a], [t[2] for t in row_b], rtol=1e-4, atol=1e-6)
    stat = stats.threshold_claim([0.1, 0.2, 0.3], 0.5, "below", 0.05, test="sign", min_n=3, name="s")

    def section(tied: bool) -> str:
        model = ModelRef(id="m", slug="m", hash="", info={"tied": tied})
        runs = [Record.bare("H11", "m", protocol=p, statistic=stat, verdict=stat.verdict).replace(model=model)
                for p in ("corrected", "corrected+input_unembedding", "corrected+noncausal_mask")]
        return "\n".join(_one_factor({"H11": runs}))

    assert "the `input_unembedding` ablation computes the corrected lens" in section(tied=True)
    assert "input_unembedding` ablation computes" not in section(tied=False) and "### H11 on m" in section(False)
