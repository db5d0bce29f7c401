"""Training core: LoRA identity at step 0, what changes, shifted loss, determinism, resume, NaN, adapters, fuse."""

from __future__ import annotations

import json
from dataclasses import replace

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from scipy.special import log_softmax

from lazarus_bench.errors import LazarusError
from lazarus_bench.models import load_model, save_model
from lazarus_bench.training.data import (
    Example,
    arithmetic_examples,
    assert_disjoint,
    encode_examples,
    pad_batch,
)
from lazarus_bench.training.dual_reward import (
    ORIGINAL_DIFFERENCES,
    DualRewardConfig,
    make_loss,
    train_dual_reward,
)
from lazarus_bench.training.loop import TrainConfig, TrainingDiverged, train_loop
from lazarus_bench.training.lora import LoraSpec, apply_lora, fuse_lora
from lazarus_bench.training.sft import SFTConfig, encoded_batches, sft_loss, train_sft

EXAMPLES = arithmetic_examples(64, seed=1)


def fresh(saved_model, arch="llama"):
    return load_model(str(saved_model(arch)))


def sft_cfg(steps=6, **train):
    return SFTConfig(train=TrainConfig(steps=steps, lr=1e-2, optimizer="adam", log_every=100, **train),
                     batch_size=4, lora=LoraSpec(rank=4))


def params(model):
    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}


def test_lora_at_step_zero_equals_base(saved_model):
    handle = fresh(saved_model)
    ids = mx.array([handle.encode("7 * 8 = ")])
    before = np.array(handle.model(ids))
    apply_lora(handle.model, LoraSpec(rank=4), handle.n_layers, seed=3)
    np.testing.assert_array_equal(np.array(handle.model(ids)), before)


def test_training_changes_only_lora_parameters(saved_model):
    handle = fresh(saved_model)
    base = params(handle.model)
    train_sft(handle, EXAMPLES, cfg=sft_cfg(), progress=False)
    after = params(handle.model)
    lora_keys = [k for k in after if ".lora_" in k]
    assert lora_keys and all(k.endswith(("lora_a", "lora_b")) for k in lora_keys)
    assert any(not np.array_equal(after[k], 0 * after[k]) for k in lora_keys if k.endswith("lora_b"))
    for key, value in base.items():
        moved = key.replace(".weight", ".linear.weight") if key.replace(".weight", ".linear.weight") in after else key
        np.testing.assert_array_equal(after[moved], value, err_msg=f"base parameter {key} changed")


def test_param_change_is_the_distance_the_trainable_parameters_moved(saved_model):
    """The manipulation check: ||theta_after - theta_before|| over the trainable (LoRA) parameters, and 0 at lr 0."""
    handle = fresh(saved_model)
    apply_lora(handle.model, LoraSpec(rank=4), handle.n_layers, seed=0)
    before = {k: np.array(v) for k, v in tree_flatten(handle.model.trainable_parameters())}
    batches = encoded_batches(handle, EXAMPLES, 4, 0)
    result = train_loop(handle.model, sft_loss, batches, sft_cfg().train, progress=False)
    after = {k: np.array(v) for k, v in tree_flatten(handle.model.trainable_parameters())}
    delta = np.sqrt(sum(np.sum((after[k].astype(np.float64) - v) ** 2) for k, v in before.items()))
    norm = np.sqrt(sum(np.sum(v.astype(np.float64) ** 2) for v in before.values()))
    assert result.param_change == pytest.approx(delta, rel=1e-9) and result.param_change > 0
    assert result.param_change_relative == pytest.approx(delta / norm, rel=1e-9)
    still = fresh(saved_model)
    apply_lora(still.model, LoraSpec(rank=4), still.n_layers, seed=0)
    frozen = train_loop(still.model, sft_loss, encoded_batches(still, EXAMPLES, 4, 0),
                        replace(sft_cfg().train, lr=0.0), progress=False)
    assert frozen.param_change == 0.0 and frozen.param_change_relative == 0.0


def test_shifted_answer_loss_equals_numpy(saved_model):
    handle = fresh(saved_model)
    rows = encode_examples(lambda t, b: handle.encode(t, add_special_tokens=b),
                           [Example("7 * 8 = ", "56"), Example("12 + 30 = ", "42")], eos_id=None)
    batch = pad_batch(rows, pad_id=0)
    loss, ntok, aux = sft_loss(handle.model, *batch.arrays())
    want = []
    for r in rows:
        lp = log_softmax(np.array(handle.model(mx.array([r.ids]))[0], dtype=np.float64), axis=-1)
        want += [-lp[t - 1, r.ids[t]] for t in range(r.prompt_len, len(r.ids))]
    assert float(loss) == pytest.approx(np.mean(want), rel=1e-4)
    assert int(ntok) == sum(len(r.ids) - 1 for r in rows)


def test_determinism_per_seed(saved_model):
    a = train_sft(fresh(saved_model), EXAMPLES, cfg=sft_cfg(), progress=False).train.losses
    b = train_sft(fresh(saved_model), EXAMPLES, cfg=sft_cfg(), progress=False).train.losses
    c = train_sft(fresh(saved_model), EXAMPLES, cfg=sft_cfg(seed=5), progress=False).train.losses
    assert a == b and a != c


def test_checkpoints_at_steps_and_adapter_round_trip(saved_model, tmp_path):
    handle = fresh(saved_model)
    val = arithmetic_examples(8, seed=9)
    result = train_sft(handle, EXAMPLES, val, cfg=sft_cfg(steps=6, save_at=(2, 4)), out_dir=tmp_path, progress=False)
    assert sorted(result.train.checkpoints) == [2, 4]
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["fine_tune_type"] == "lora" and config["lora_parameters"]["rank"] == 4
    ids = mx.array([handle.encode("7 * 8 = ")])
    reloaded = load_model(str(saved_model("llama")), adapter_path=str(tmp_path))
    np.testing.assert_allclose(np.array(reloaded.model(ids)), np.array(handle.model(ids)), rtol=1e-5, atol=1e-6)
    step2 = load_model(str(saved_model("llama")), adapter_path=str(tmp_path / "step_2"))
    assert not np.allclose(np.array(step2.model(ids)), np.array(handle.model(ids)), atol=1e-4)
    assert [v["step"] for v in result.val_losses] == [0, 6]


def test_fuse_writes_a_normal_checkpoint(saved_model, tmp_path):
    handle = fresh(saved_model)
    train_sft(handle, EXAMPLES, cfg=sft_cfg(), progress=False)
    ids = mx.array([handle.encode("7 * 8 = ")])
    want = np.array(handle.model(ids))
    fuse_lora(handle.model)
    assert not any(".lora_" in k for k, _ in tree_flatten(handle.model.parameters()))
    save_model(handle.model, handle.config, tmp_path, tokenizer_dir=str(saved_model("llama")))
    fused = load_model(str(tmp_path))
    np.testing.assert_allclose(np.array(fused.model(ids)), want, rtol=1e-4, atol=1e-5)


def test_full_fine_tune_trains_everything(saved_model):
    handle = fresh(saved_model)
    base = params(handle.model)
    cfg = replace(sft_cfg(), lora=None)
    result = train_sft(handle, EXAMPLES, cfg=cfg, progress=False)
    after = params(handle.model)
    assert result.train.trainable_params == result.train.total_params
    assert all(not np.array_equal(after[k], v) for k, v in base.items() if "norm" not in k)


def test_resume_equals_uninterrupted(saved_model, tmp_path):
    cfg = sft_cfg(steps=8, checkpoint_every=2)
    full = train_sft(fresh(saved_model), EXAMPLES, cfg=cfg, progress=False)
    handle = fresh(saved_model)
    cfg_run = cfg
    from lazarus_bench.training.sft import prepare

    prepare(handle, cfg_run)
    batches = encoded_batches(handle, EXAMPLES, cfg.batch_size, cfg.train.seed)
    part = train_loop(handle.model, sft_loss, batches, cfg.train, out_dir=tmp_path, progress=False, stop_after=4)
    assert part.steps_done == 4
    handle = fresh(saved_model)
    prepare(handle, cfg_run)
    rest = train_loop(handle.model, sft_loss, batches, cfg.train, out_dir=tmp_path, progress=False)
    assert rest.resumed_from == 4
    np.testing.assert_allclose(rest.losses, full.train.losses, rtol=1e-5)


def test_nan_stops_with_clear_message_and_keeps_finished_work(saved_model, tmp_path):
    handle = fresh(saved_model)
    cfg = sft_cfg(steps=6, checkpoint_every=1)
    from lazarus_bench.training.sft import prepare

    prepare(handle, cfg)
    batches = encoded_batches(handle, EXAMPLES, cfg.batch_size, cfg.train.seed)

    def poisoned(model, *batch):
        loss, ntok, aux = sft_loss(model, *batch)
        step = len(losses_seen)
        losses_seen.append(None)
        return (loss * mx.array(float("nan")) if step == 3 else loss), ntok, aux

    losses_seen: list = []
    cfg_nocompile = replace(cfg.train, compile=False)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 4") as info:
        train_loop(handle.model, poisoned, batches, cfg_nocompile, out_dir=tmp_path, progress=False)
    assert len(info.value.result.losses) == 3 and info.value.result.stopped
    assert (tmp_path / "checkpoint.safetensors").exists()
    assert isinstance(info.value, LazarusError)


def test_corrupt_checkpoint_is_a_clear_error(saved_model, tmp_path):
    handle = fresh(saved_model)
    cfg = sft_cfg()
    (tmp_path / "checkpoint.safetensors").write_bytes(b"not a checkpoint")
    from lazarus_bench.training.sft import prepare

    prepare(handle, cfg)
    with pytest.raises(LazarusError, match="unreadable"):
        train_loop(handle.model, sft_loss, encoded_batches(handle, EXAMPLES, 4, 0), cfg.train, out_dir=tmp_path,
                   progress=False)


def test_disjointness_is_asserted():
    with pytest.raises(LazarusError, match="48 / 6 ="):
        assert_disjoint([Example("48 / 6 = ", "8")], ["48 / 6 = ", "7 * 8 = "])
    examples = arithmetic_examples(500, seed=0, exclude=["7 * 8 = "])
    assert all(e.prompt.strip() != "7 * 8 =" for e in examples)


def test_original_protocol_differs_exactly_where_documented():
    corrected = DualRewardConfig.for_protocol("corrected")
    original = DualRewardConfig.for_protocol("original")
    assert set(ORIGINAL_DIFFERENCES) == {"answer_loss", "optimizer", "classification_position", "bos_in_training",
                                         "batch_size", "lora_scale", "eval_prompts_in_training"}
    differing = {k for k in ("batch_size",) if getattr(corrected, k) != getattr(original, k)}
    differing |= {"optimizer"} if corrected.train.optimizer != original.train.optimizer else set()
    differing |= {"lora_scale"} if corrected.lora.scale != original.lora.scale else set()
    assert differing == {"batch_size", "optimizer", "lora_scale"}
    assert (corrected.lora.rank, corrected.lora.keys, corrected.cls_weight, corrected.layer_fraction) == (
        original.lora.rank, original.lora.keys, original.cls_weight, original.layer_fraction)


def test_dual_reward_losses_match_definitions(saved_model):
    """Corrected: shifted answer CE + lens CE at the last prompt token; original: unshifted + last answer token."""
    handle = fresh(saved_model)
    ops = {"multiply": handle.encode("multiply", add_special_tokens=False)[0]}
    rows = encode_examples(lambda t, b: handle.encode(t, add_special_tokens=b),
                           [Example("7 * 8 = ", "56", "multiply")], label_ids=ops)
    batch = pad_batch(rows)
    ids, plen = rows[0].ids, rows[0].prompt_len
    capture = handle.forward(mx.array([ids]))
    logp = log_softmax(np.array(capture.logits[0], dtype=np.float64), axis=-1)
    layer = handle.layer_at_depth(0.55) + 1
    for protocol in ("corrected", "original"):
        cfg = DualRewardConfig.for_protocol(protocol)
        loss, _, aux = make_loss(handle, cfg)(handle.model, *batch.arrays())
        if protocol == "corrected":
            answer = np.mean([-logp[t - 1, ids[t]] for t in range(plen, len(ids))])
            position = plen - 1
        else:
            answer = np.mean([-logp[t, ids[t]] for t in range(plen, len(ids))])
            position = len(ids) - 1
        lens = log_softmax(np.array(handle.lens_logits(capture.hidden[layer][0, position]), dtype=np.float64))
        assert float(aux["answer_loss"]) == pytest.approx(answer, rel=1e-4)
        assert float(aux["cls_loss"]) == pytest.approx(-lens[ops["multiply"]], rel=1e-4)
        assert float(loss) == pytest.approx(0.4 * -lens[ops["multiply"]] + 0.6 * answer, rel=1e-4)


def test_dual_reward_trains_vo_lora_and_reports(saved_model, tmp_path):
    handle = fresh(saved_model)
    cfg = DualRewardConfig.for_protocol("corrected", n_train=64)
    cfg = replace(cfg, train=replace(cfg.train, steps=4, log_every=100))
    result = train_dual_reward(handle, cfg, out_dir=tmp_path, progress=False)
    names = [k for k, _ in tree_flatten(handle.model.trainable_parameters())]
    assert names and all(("v_proj" in k or "o_proj" in k) for k in names)
    assert set(result.train.metrics[0]) == {"cls_loss", "answer_loss"}
    assert result.before["classifier"]["n"] == 8 and result.after["answers"]["n"] == 8
    assert (tmp_path / "adapters.safetensors").exists()


def test_two_stage_fuses_then_trains_a_new_lora(saved_model, tmp_path):
    from lazarus_bench.training.two_stage import (
        TwoStageConfig,
        accuracy_drop,
        train_two_stage,
    )

    handle = fresh(saved_model)
    result = train_two_stage(handle, TwoStageConfig().scaled(3, 2), out_dir=tmp_path, progress=False)
    names = [k for k, _ in tree_flatten(handle.model.trainable_parameters())]
    assert names and all("v_proj" in k or "o_proj" in k for k in names), "stage 2 trains only its new V/O LoRA"
    assert not any("q_proj.lora" in k for k, _ in tree_flatten(handle.model.parameters())), "stage 1 was fused"
    fused = load_model(str(tmp_path / "fused_stage1"))
    assert fused.n_layers == handle.n_layers
    for stage in (result.baseline, result.stage1, result.stage2):
        assert set(stage) >= {"symbolic", "semantic", "classifier_prob"} and 0 <= stage["classifier_prob"] <= 1
    assert accuracy_drop(result) == pytest.approx(
        100 * (result.stage1["symbolic"]["accuracy"] - result.stage2["symbolic"]["accuracy"]))
    aggressive = TwoStageConfig.aggressive()
    assert (aggressive.stage2.cls_weight, aggressive.stage2.train.steps, aggressive.stage2.train.lr,
            aggressive.stage2.lora.rank) == (0.2, 200, 1e-4, 32)


def test_the_stopping_rule_is_asked_only_at_round_ends_and_cuts_the_same_run(saved_model):
    """GRPO's budget (CLAIMS.md revision 4): ``at_round_ends`` asks its floors only after steps 3, 6, 9, ...; the
    run it ends at step 6 has exactly the parameters and losses of the first 6 steps of the uncut 12-step run, and a
    rule that never holds spends the whole budget."""
    from lazarus_bench.harness.common import at_round_ends

    def run(until, stop_after=None):
        handle = fresh(saved_model)
        apply_lora(handle.model, LoraSpec(rank=4), handle.n_layers, seed=0)
        result = train_loop(handle.model, sft_loss, encoded_batches(handle, EXAMPLES, 4, 0), sft_cfg(steps=12).train,
                            progress=False, until=until, stop_after=stop_after)
        return result, params(handle.model)

    asked = []

    def floors(metrics):
        asked.append(len(metrics))
        return len(metrics) >= 5

    cut, cut_params = run(at_round_ends(3, floors))
    assert asked == [3, 6] and cut.until_met == 6 and cut.steps_done == 6
    six, six_params = run(None, stop_after=6)  # the 12-step run interrupted after 6 steps
    assert six.losses == cut.losses and all(np.array_equal(six_params[k], v) for k, v in cut_params.items())
    full, _ = run(at_round_ends(3, lambda metrics: False))
    assert full.until_met is None and full.steps_done == 12 and full.losses[:6] == cut.losses
