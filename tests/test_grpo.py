"""GRPO: reward, TRL advantages, k3 KL, ratio = 1 policy gradient, completion-only log-probs, determinism, LoRA."""

from __future__ import annotations

from collections import Counter

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from lazarus_bench.analysis.generate import eos_ids
from lazarus_bench.errors import LazarusError
from lazarus_bench.models import load_model
from lazarus_bench.prompts import grpo_spec
from lazarus_bench.training.grpo import (
    GRPOConfig,
    GrpoPrompt,
    Rollout,
    RolloutBatcher,
    answer_reward,
    class_token_ids,
    evaluate_answers,
    frozen_copy,
    generate,
    group_advantages,
    grpo_objective,
    k3_kl,
    rollout_arrays,
    sample_prompts,
    seed002_configs,
    token_logps,
    train_grpo,
)
from lazarus_bench.training.loop import TrainConfig
from lazarus_bench.training.lora import VO, LoraSpec


@pytest.fixture
def fresh(saved_model):
    """A freshly loaded tiny llama (safe to train in place)."""
    return lambda: load_model(str(saved_model("llama")))


def _cfg(steps=2, lr=1e-2, **kw):
    fields = {"prompts_per_step": 3, "group_size": 3, "max_new_tokens": 6, **kw}
    return GRPOConfig(train=TrainConfig(steps=steps, lr=lr, compile=False, log_every=1, name="grpo_test"), **fields)


def _toy_batch(handle, n=4, width=9, seed=0):
    """Random token rows with a completion mask starting at a different position in each row."""
    rng = np.random.default_rng(seed)
    ids = mx.array(rng.integers(3, handle.vocab_size, size=(n, width)), dtype=mx.int32)
    mask = np.zeros((n, width - 1), dtype=np.float32)
    for i in range(n):
        mask[i, 2 + i % 3 : width - 1 - i % 2] = 1.0
    return ids[:, :-1], ids[:, 1:], mx.array(mask)


def test_reward_parsing():
    assert answer_reward("56", 56) == 1.0
    assert answer_reward(" 56 is it", 56) == 1.0
    assert answer_reward("-3", -3) == 1.0
    assert answer_reward("-3", 3) == 0.0
    assert answer_reward("abc", 56) == 0.0
    assert answer_reward("5 6", 56) == 0.0
    assert answer_reward("x = 12, not 56", 56) == 0.0


def test_advantages_match_numpy():
    rewards = np.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0], dtype=float)
    got = group_advantages(rewards, 4)
    want = []
    for grp in rewards.reshape(-1, 4):
        m = grp.sum() / 4
        s = np.sqrt(((grp - m) ** 2).sum() / 3)  # torch.std default: unbiased
        want += list((grp - m) / (s + 1e-4))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.all(got[4:8] == 0) and np.all(got[8:12] == 0)
    np.testing.assert_allclose(got[:4], [1 / (np.sqrt(1 / 3) + 1e-4) * 0.5 * s for s in (1, -1, -1, 1)], rtol=1e-6)


def test_k3_kl_and_gradient_vanish_at_reference(fresh):
    handle = fresh()
    model = handle.model
    ref = frozen_copy(model)
    inputs, targets, mask = _toy_batch(handle)
    ref_logps = token_logps(ref(inputs), targets)

    def loss(m):
        logp = token_logps(m(inputs), targets)
        value, _ = grpo_objective(logp, mx.stop_gradient(logp), ref_logps, mx.zeros((inputs.shape[0],)), mask,
                                  0.2, beta=1.0)
        return value

    value, grads = nn.value_and_grad(model, loss)(model)
    assert abs(float(value)) < 1e-7
    assert max(float(mx.max(mx.abs(g))) for _, g in tree_flatten(grads)) < 1e-6
    a = mx.array(np.random.default_rng(1).normal(size=200).astype(np.float32))
    b = mx.array(np.random.default_rng(2).normal(size=200).astype(np.float32))
    assert float(mx.min(k3_kl(a, b))) >= 0.0 and float(mx.max(k3_kl(a, a))) == 0.0


def test_first_update_ratio_one_and_policy_gradient(fresh):
    handle = fresh()
    model = handle.model
    inputs, targets, mask = _toy_batch(handle, seed=3)
    adv = mx.array([1.5, -0.5, 0.0, -1.0])

    def clipped(m):
        logp = token_logps(m(inputs), targets)
        assert float(mx.max(mx.abs(mx.exp(logp - mx.stop_gradient(logp)) - 1))) == 0.0
        return grpo_objective(logp, mx.stop_gradient(logp), mx.zeros_like(logp), adv, mask, 0.2, beta=0.0)[0]

    def plain(m):
        logp = token_logps(m(inputs), targets)
        return ((-adv[:, None] * logp * mask).sum(-1) / mask.sum(-1)).mean()

    v1, g1 = nn.value_and_grad(model, clipped)(model)
    v2, g2 = nn.value_and_grad(model, plain)(model)
    assert abs(float(v1) - float(-(adv * (mask.sum(-1) > 0)).mean())) < 1e-6
    flat1, flat2 = dict(tree_flatten(g1)), dict(tree_flatten(g2))
    assert flat1.keys() == flat2.keys()
    scale = max(float(mx.max(mx.abs(g))) for g in flat2.values())
    assert scale > 0
    for k in flat1:
        np.testing.assert_allclose(np.array(flat1[k]), np.array(flat2[k]), atol=1e-5 * scale, rtol=1e-4)


def test_logps_cover_completion_tokens_only(fresh):
    handle = fresh()
    model = handle.model
    prompts = [GrpoPrompt("Calculate: 7 * 8 = ", "multiply", 56), GrpoPrompt("Calculate: 12 + 30 = ", "add", 42)]
    prompt_ids = [handle.encode(p.text) for p in prompts]
    completions = generate(model, prompt_ids, 2, 5, 1.0, mx.random.key(0), eos_ids(handle.tokenizer))
    rollout = Rollout(prompts, prompt_ids, completions, ["", "", "", ""], np.zeros(4), np.zeros(4, np.float32), 2,
                      sum(len(c.tokens) for c in completions), 0.0)
    arrays = rollout_arrays(rollout, frozen_copy(model), 1.0, class_token_ids(handle, ["multiply", "add"]), 0)
    inputs, targets, cmask, valid, _, ref_logps, sample_logps, last_prompt, labels = arrays[:9]
    logp = token_logps(model(inputs), targets)
    for i, c in enumerate(completions):
        p = prompt_ids[i // 2]
        assert np.array(cmask[i]).sum() == len(c.tokens)
        assert int(last_prompt[i]) == len(p) - 1 and np.array(cmask[i])[: len(p) - 1].sum() == 0
        one = model(mx.array([p + c.tokens]))[0].astype(mx.float32)
        lsm = one - mx.logsumexp(one, axis=-1, keepdims=True)
        manual = sum(float(lsm[len(p) - 1 + j, t]) for j, t in enumerate(c.tokens))
        assert abs(float((logp[i] * cmask[i]).sum()) - manual) < 1e-4
        np.testing.assert_allclose(np.array(sample_logps[i])[np.array(cmask[i]) > 0], c.logps, atol=1e-6)
    np.testing.assert_allclose(np.array(logp * cmask), np.array(sample_logps), atol=1e-4)
    np.testing.assert_allclose(np.array(ref_logps * cmask), np.array(sample_logps), atol=1e-4)
    assert np.array(labels).tolist() == [class_token_ids(handle, ["multiply"])["multiply"]] * 2 + \
        [handle.encode("add", add_special_tokens=False)[0]] * 2


def test_generation_stops_at_eos(fresh):
    handle = fresh()
    prompt = [handle.encode("Calculate: 7 * 8 = ")]
    greedy = generate(handle.model, prompt, 1, 4, 0.0, None, set())[0]
    stop = {greedy.tokens[1]}
    cut = generate(handle.model, prompt, 1, 4, 0.0, None, stop)[0]
    assert cut.tokens == greedy.tokens[: greedy.tokens.index(greedy.tokens[1]) + 1] and cut.finished


def test_sampling_seeded(fresh):
    handle = fresh()
    ref = frozen_copy(handle.model)
    ids = class_token_ids(handle, ["add", "subtract", "multiply"])
    cfg = _cfg(max_new_tokens=8)
    a = RolloutBatcher(handle, ref, cfg, ids).rollout(step=0)
    b = RolloutBatcher(handle, ref, cfg, ids).rollout(step=0)
    c = RolloutBatcher(handle, ref, _cfg(max_new_tokens=8, seed=1), ids).rollout(step=0)
    d = RolloutBatcher(handle, ref, cfg, ids).rollout(step=1)
    tokens = lambda r: [x.tokens for x in r.completions]  # noqa: E731
    assert tokens(a) == tokens(b) and a.prompts == b.prompts
    assert tokens(a) != tokens(c) and tokens(a) != tokens(d)
    assert len(a.completions) == 9 and a.rewards.shape == (9,)


def test_training_deterministic(fresh):
    def run(seed):
        cfg = _cfg(steps=2, seed=seed, beta=0.04)
        res = train_grpo(fresh(), cfg, progress=False, reward_fn=lambda text, _a: float(len(text) % 2))
        return res.train.losses, res.train.metrics

    l0, m0 = run(0)
    l0b, m0b = run(0)
    l1, _ = run(1)
    assert l0 == l0b
    assert [{k: v for k, v in m.items() if not k.startswith("gen_")} for m in m0] == \
        [{k: v for k, v in m.items() if not k.startswith("gen_")} for m in m0b]
    assert l0 != l1


def test_full_parameter_run_logs_and_saves(fresh, tmp_path):
    handle = fresh()
    before = {k: np.array(v) for k, v in tree_flatten(handle.model.parameters())}
    res = train_grpo(handle, _cfg(steps=2, beta=0.04), out_dir=tmp_path, progress=False,
                     reward_fn=lambda text, _a: float(len(text) % 2))
    m = res.train.metrics
    for key in ("reward", "zero_std_frac", "kl", "clip_ratio", "completion_len", "grpo_loss", "gen_tokens_per_s"):
        assert key in m[0]
    assert "cls_loss" not in m[0]
    assert m[0]["kl"] < 1e-6 and m[1]["kl"] > 0 and m[0]["clip_ratio"] == 0.0
    assert m[0]["sampler_logp_gap"] < 1e-4
    assert res.gen_tokens > 0 and res.gen_tokens_per_s > 0 and res.train_tokens_per_s > 0
    after = dict(tree_flatten(handle.model.parameters()))
    assert any(not np.array_equal(before[k], np.array(after[k])) for k in before)
    assert res.weights_path is not None and res.adapter_path is None
    reloaded = load_model(res.weights_path)
    np.testing.assert_array_equal(np.array(reloaded.model(mx.array([[1, 2, 3]]))),
                                  np.array(handle.model(mx.array([[1, 2, 3]]))))
    assert set(res.to_dict()) >= {"train", "gen_tokens_per_s", "train_tokens_per_s", "class_token_ids"}


def test_lora_changes_only_lora_and_logs_cls(fresh, tmp_path):
    handle = fresh()
    before = {k: np.array(v) for k, v in tree_flatten(handle.model.parameters())}
    cfg = _cfg(steps=2, cls_weight=0.5, entropy_bonus=0.1, balanced_ops=True, lora=LoraSpec(rank=4, keys=VO))
    res = train_grpo(handle, cfg, out_dir=tmp_path, progress=False)
    m = res.train.metrics
    for key in ("cls_loss", "cls_ce", "cls_acc", "cls_top_share", "lens_batch_entropy"):
        assert key in m[0]
    assert abs(m[0]["cls_loss"] - (m[0]["cls_ce"] - 0.1 * m[0]["lens_batch_entropy"])) < 1e-4
    assert res.cls_layer == handle.layer_at_depth(0.55)
    changed_lora = 0
    for k, v in tree_flatten(handle.model.parameters()):
        if ".lora_" in k:
            changed_lora += int(np.abs(np.array(v)).max() > 0) if k.endswith("lora_b") else 0
        else:
            np.testing.assert_array_equal(np.array(v), before[k.replace(".linear.", ".")], err_msg=k)
    assert changed_lora > 0
    assert res.train.trainable_params < res.train.total_params / 10
    reloaded = load_model(handle.model_id, adapter_path=res.adapter_path)
    x = mx.array([handle.encode("Calculate: 7 * 8 = ")])
    np.testing.assert_allclose(np.array(reloaded.model(x)), np.array(handle.model(x)), atol=1e-4)


def test_balanced_ops_counts():
    spec = grpo_spec()
    for n in (9, 12):
        items = sample_prompts(spec, n, seed=5, balanced=True)
        assert set(Counter(p.label for p in items).values()) == {n // 3}
    items = sample_prompts(spec, 8, seed=5, balanced=True)
    counts = Counter(p.label for p in items).values()
    assert max(counts) - min(counts) <= 1 and sum(counts) == 8
    for p in items:
        a, op, b = p.text.removeprefix("Calculate: ").split()[:3]
        assert p.answer == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
    plain = sample_prompts(spec, 8, seed=5)
    assert [p.text for p in plain] == spec.sample(8, seed=5).texts()


def test_config_validation_and_presets():
    with pytest.raises(LazarusError):
        train_grpo(None, GRPOConfig(group_size=1))  # type: ignore[arg-type]
    with pytest.raises(LazarusError):
        GRPOConfig(entropy_bonus=0.5).validate()
    presets = seed002_configs()
    assert presets["dual"].cls_weight == 0.4 and presets["cls_heavy"].cls_weight == 0.9
    assert presets["low_lr"].train.lr == 2e-6 and presets["entropy"].entropy_bonus == 0.5
    assert presets["balanced"].balanced_ops and presets["grpo"].cls_weight == 0.0
    for cfg in presets.values():
        cfg.validate()
        assert cfg.to_dict()["train"]["steps"] == cfg.train.steps


def test_evaluate_answers(fresh):
    handle = fresh()
    prompt = "Calculate: 7 * 8 = "
    out = evaluate_answers(handle, [(prompt, 56), (prompt, 3)], max_new_tokens=4)
    assert out["n"] == 2 and 0.0 <= out["accuracy"] <= 1.0
    logits = handle.model(mx.array([handle.encode(prompt)]))[0, -1].astype(mx.float32)
    p = np.array(mx.softmax(logits))
    five = handle.encode("56", add_special_tokens=False)[0]
    assert abs(out["items"][0]["answer_prob"] - p[five]) < 1e-6
    assert out["items"][0]["answer_rank"] == int((p > p[five]).sum()) + 1
    greedy = generate(handle.model, [handle.encode(prompt)], 1, 4, 0.0, None, eos_ids(handle.tokenizer))[0]
    text = handle.tokenizer.decode(greedy.tokens, skip_special_tokens=True)
    assert out["items"][0]["completion"] == text


def test_grpo_raises_a_learnable_reward(fresh):
    digit_share = lambda text, _a: sum(ch.isdigit() for ch in text) / max(len(text), 1)  # noqa: E731
    cfg = _cfg(steps=16, lr=3e-3, prompts_per_step=4, group_size=4, max_new_tokens=6)
    rewards = [m["reward"] for m in train_grpo(fresh(), cfg, progress=False, reward_fn=digit_share).train.metrics]
    assert np.mean(rewards[-3:]) > 0.5 > 0.1 > np.mean(rewards[:3])


@pytest.mark.parametrize("arch", ["llama", "qwen2", "granite", "mixtral", "olmoe", "gpt_oss", "qwen2_moe", "gemma2"])
def test_one_decode_loop_equals_each_prompt_alone(arch):
    """Prompts of six lengths left-padded into one decode loop give the tokens and log-probs each prompt gets alone
    (gpt_oss: past its sliding window; gemma2 falls back to one loop per length)."""
    from lazarus_bench.tiny import build_model, tiny_config
    from lazarus_bench.training import grpo

    model = build_model(tiny_config(arch), seed=1)
    rng = np.random.default_rng(0)
    prompts = [[int(v) for v in rng.integers(1, 90, n)] for n in (3, 5, 7, 5, 2, 9)]
    together = grpo.generate(model, prompts, 2, 6, 0.0, None, set())
    alone = [c for p in prompts for c in grpo.generate(model, [p], 2, 6, 0.0, None, set())]
    assert [c.tokens for c in together] == [c.tokens for c in alone]
    np.testing.assert_allclose(np.concatenate([c.logps for c in together]), np.concatenate([c.logps for c in alone]),
                               atol=1e-5, rtol=0)
    assert (grpo._batch_cache(model, [0] * 12) is None) == (arch not in grpo.BATCHED_TYPES)
    assert (arch in grpo.BATCHED_TYPES) == (arch != "gemma2")
