"""H07-H09's manipulation floors (CLAIMS.md revision 3): each can fail, fails on a learning-rate-0 run, and a failed
floor makes the record NOT TESTABLE (never REFUTED); H08/H09 read the full-vocabulary lens probability."""

from __future__ import annotations

import numpy as np
import pytest

from lazarus_bench import prompts
from lazarus_bench.claims.h08_grpo_dual_collapse import collapse_eval, collapse_words, readout_move, runs_fitness
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.models import load_model
from lazarus_bench.suite.runner import run_claim

OPEN_PREREQUISITES = {"start_reward_range": [0.0, 1.0], "min_variance_share": 0.0}  # a tiny random model fails them
GRPO_GATES = {"start reward rate", "groups with reward variance", "reward rose"}
FLOORS = {"H07": {"reward rose": ("min_reward_rise", 0.05)},
          "H08": {"reward rose": ("min_reward_rise", 0.05), "cls loss fell": ("min_cls_loss_fall", 0.5),
                  "read-out moved": ("min_readout_move", 0.01)}}
FLOORS["H09"] = FLOORS["H08"]


@pytest.mark.parametrize("claim_id", ["H07", "H08", "H09"])
def test_floors_are_declared_with_the_writeups_figures_and_no_any_step_gate(claim_id):
    claim = get_claim(claim_id)
    gates = {g.name: g for g in claim.gates}
    assert set(gates) == GRPO_GATES | set(FLOORS[claim_id]), "no 'parameters changed' / 'KL' gate: any step passes it"
    for name, (param, value) in FLOORS[claim_id].items():
        assert gates[name].threshold_param == param and gates[name].direction == "above"
        assert claim.params[param] == value
    assert "0.288 -> 0.346" in gates["reward rose"].description
    if claim_id != "H07":
        assert "10.3 -> 1.07" in gates["cls loss fell"].description
        assert "80%" in gates["read-out moved"].description and "learning-rate-0" in gates["read-out moved"].description
    assert claim.params["min_seeds"] == 5 and claim.default_seeds == {"fast": 1, "slow": 5}


@pytest.mark.parametrize("claim_id", ["H07", "H08", "H09"])
def test_every_floor_fails_on_a_learning_rate_0_run(claim_id, saved_model, tmp_path):
    """A real GRPO run (tiny model, fast tier) at learning rate 0, prerequisites opened: each declared floor fails
    with its value, and the record is NOT TESTABLE, never REFUTED; the controls are not run."""
    lr0 = {"lr": 0.0} if claim_id == "H07" else {"lr_scale": 0.0}
    record = run_claim(get_claim(claim_id), str(saved_model("llama")), tier="fast", report_dir=tmp_path,
                       overrides={**OPEN_PREREQUISITES, **lr0}, log=lambda m: None)
    assert record.status == "ok", record.traceback or record.reason
    gates = {g.name: g for g in record.fitness}
    assert record.verdict == "NOT TESTABLE" and record.verdict != "REFUTED"
    assert record.controls == ()
    if claim_id == "H07":
        for name, (param, value) in FLOORS[claim_id].items():
            assert gates[name].threshold == value and gates[name].value < value and not gates[name].passed, name
            assert name in record.reason
        assert all(gates[name].passed for name in GRPO_GATES - set(FLOORS[claim_id]))
        return
    # H08/H09 stop at the first run below a smallest-over-runs floor: the classification loss did not fall
    assert not gates["cls loss fell"].passed and gates["cls loss fell"].value < 0.5 and "cls loss fell" in record.reason
    assert record.extra["descriptive"]["runs measured"].startswith("1 of ")
    assert set(gates) == {"trained language model", "cls loss fell"}, "nothing after the failed floor was measured"
    # with that floor opened (at learning rate 0 the loss moves only with the batches), the next one stops it:
    # learning rate 0 leaves the lens read-out exactly as it was
    opened = run_claim(get_claim(claim_id), str(saved_model("llama")), tier="fast", report_dir=tmp_path / "open",
                       overrides={**OPEN_PREREQUISITES, **lr0, "min_cls_loss_fall": -1e9}, log=lambda m: None)
    moved = {g.name: g for g in opened.fitness}["read-out moved"]
    assert opened.verdict == "NOT TESTABLE" and not moved.passed and moved.value == 0.0


def test_a_floor_stops_the_claims_own_run_but_not_a_controls():
    from lazarus_bench.harness.base import ClaimContext, ModelInfo, NotTestable

    claim = get_claim("H08")
    info = ModelInfo(model_id="m", model_type="llama", kind="base", n_layers=4, is_moe=False, tied=True)
    ctx = ClaimContext(claim, info, tier="fast", seeds=[0], params=dict(claim.params))
    with pytest.raises(NotTestable, match="cls loss fell"):
        ctx.floor("cls loss fell", 0.1, {"runs measured": "1 of 5"})
    ctx.floor("cls loss fell", 0.6)
    assert ctx.variant(params={"lr_scale": 0.0}).floor("cls loss fell", 0.1) is None


def _run(vocab_after: dict, cls_loss: list[float]) -> dict:
    n = len(cls_loss)
    return {"vocab_prob_by_word": vocab_after, "mode_word": max(vocab_after, key=vocab_after.get),
            "curves": {"cls_loss": cls_loss, "reward": [0.2] * (n // 2) + [0.4] * (n - n // 2),
                       "zero_std_frac": [0.5] * n}}


def test_readout_floor_reads_the_largest_full_vocabulary_move_either_way():
    before = {"vocab_prob_by_word": {"multiply": 0.30, "add": 0.10, "subtract": 0.05}}
    up = _run({"multiply": 0.30, "add": 0.50, "subtract": 0.05}, [10.0] * 5)
    assert readout_move(up, before) == pytest.approx(0.40)
    down = _run({"multiply": 0.02, "add": 0.12, "subtract": 0.06}, [10.0] * 5)
    assert readout_move(down, before) == pytest.approx(0.28), \
        "a lens term that moved mass without collapsing still moved the read-out (a clean refutation stays testable)"
    same = _run(dict(before["vocab_prob_by_word"]), [10.0, 9.9, 10.1, 10.0, 10.0])
    fit = runs_fitness([same, up], before)
    assert fit["read-out moved"] == 0.0 and fit["cls loss fell"] == pytest.approx(0.0), "smallest over the runs"
    trained = _run({"multiply": 0.1, "add": 0.8, "subtract": 0.05}, [10.3, 8.0, 5.0, 2.0, 1.07])
    fit = runs_fitness([trained], before)
    assert fit["cls loss fell"] == pytest.approx(1 - 1.07 / 10.3) and fit["cls loss fell"] >= 0.5
    assert fit["read-out moved"] == pytest.approx(0.7) and fit["reward rose"] == pytest.approx(0.2)


def test_collapse_eval_reads_full_vocabulary_probabilities(saved_model):
    """H08/H09's probabilities are the class words' full-vocabulary lens probabilities (first token, no space, as the
    writeup's evaluate_classifier); the predicted class is the argmax among the class words of those probabilities.
    Checked against the independent logit-lens code path."""
    from lazarus_bench.analysis.lens import logit_lens

    handle = load_model(str(saved_model("llama")))
    params = get_claim("H08").parameters("fast")
    out = collapse_eval(handle, params)
    evalset = prompts.grpo_collapse_lens()
    words = collapse_words(evalset.labels())
    lens = logit_lens(handle, evalset.texts(), words, layers=[out["layer"]], top_k=1)
    full = np.array([[r.targets[w].spellings["without_space"].first_prob[0] for w in words] for r in lens])
    assert out["predicted"] == [words[i] for i in full.argmax(axis=1)]
    for i, w in enumerate(words):
        assert out["vocab_prob_by_word"][w] == pytest.approx(full[:, i].mean(), rel=1e-4)
    m = words.index(out["mode_word"])
    assert out["mode_vocab_prob"] == pytest.approx(full[:, m].mean(), rel=1e-4)
    renormalised = (full / full.sum(axis=1, keepdims=True))[:, m].mean()
    assert out["mode_restricted_prob"] == pytest.approx(renormalised, rel=1e-4)
    assert out["mode_vocab_prob"] < out["mode_restricted_prob"], "full vocabulary, not the class-word softmax"


@pytest.mark.parametrize("claim_id, variant, rounds", [("H07", "grpo", 30), ("H08", "dual", 20),
                                                       ("H09", "balanced", 20), ("H09", "entropy", 20),
                                                       ("H09", "low_lr", 50), ("H09", "cls_heavy", 100)])
def test_each_run_trains_in_rounds_of_the_writeups_steps_within_ten_rounds(claim_id, variant, rounds):
    """The budget is declared (``budget_rounds`` = 10, so in the lock) and a round is the writeup's iteration count:
    H07 30 steps, H08 20, H09's fixes 20 / 20 / 50 / 100."""
    from lazarus_bench.claims import h07_grpo_no_classifier as h07
    from lazarus_bench.claims import h08_grpo_dual_collapse as h08

    p = get_claim(claim_id).parameters("slow")
    assert p["budget_rounds"] == 10
    if claim_id == "H07":
        assert p["steps"] == rounds and h07.grpo_config(p, 0).train.steps == 10 * rounds
    else:
        assert h08.grpo_config(variant, 0, p).train.steps == rounds


def test_the_lens_floor_is_read_only_when_the_cheap_floors_hold(saved_model, monkeypatch):
    """H08's rule reads the lens (a forward pass) only when the reward rose and the classification loss fell; on an
    unchanged model the read-out moved exactly 0, so the rule does not stop the run."""
    from lazarus_bench.claims import h08_grpo_dual_collapse as h08

    handle = load_model(str(saved_model("llama")))
    p = get_claim("H08").parameters("fast")
    before = collapse_eval(handle, p)
    calls = []
    real = h08.collapse_eval
    monkeypatch.setattr(h08, "collapse_eval", lambda *a: calls.append(1) or real(*a))
    flat = [{"reward": 0.3, "cls_loss": 10.0}] * 10
    assert not h08.floors_met(handle, flat, before, p) and calls == []
    rose = [{"reward": 0.2, "cls_loss": 10.0}] * 5 + [{"reward": 0.4, "cls_loss": 10.0}] * 5
    assert not h08.floors_met(handle, rose, before, p) and calls == []
    both = [{"reward": 0.2, "cls_loss": 10.0}] * 5 + [{"reward": 0.4, "cls_loss": 1.0}] * 5
    assert not h08.floors_met(handle, both, before, p) and calls == [1]
    assert h08.floors_met(handle, both, before, {**p, "min_readout_move": 0.0}) and calls == [1, 1]
