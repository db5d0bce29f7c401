"""Logit lens against independent numpy computations, on saved tiny models loaded through the public API."""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest
from scipy.special import log_softmax
from scipy.stats import rankdata

from lazarus_bench.analysis.lens import EMB, logit_lens, resolve_layers
from lazarus_bench.errors import LazarusError
from lazarus_bench.models import dense_weight, load_model, save_model
from lazarus_bench.tiny import ARCHS, build_model, tiny_config

PROMPTS = ["7 * 8 = ", "12 * 5 = ", "What is 3 plus 4?", "9 * 9 = "]


def numpy_lens(handle, cfg, hidden: np.ndarray) -> np.ndarray:
    """Final RMSNorm with its real gain, then the unembedding, then the config's scaling/soft-capping."""
    gain = np.array(handle.final_norm.weight, dtype=np.float64)
    if cfg["model_type"] == "gemma2":
        gain = 1.0 + gain
    h = hidden.astype(np.float64)
    normed = h / np.sqrt(np.mean(h**2, axis=-1, keepdims=True) + cfg["rms_norm_eps"]) * gain
    logits = normed @ np.array(dense_weight(handle.embed if handle.tied else handle.lm_head), dtype=np.float64).T
    if "logits_scaling" in cfg:
        logits = logits / cfg["logits_scaling"]
    if cfg.get("final_logit_softcapping"):
        cap = cfg["final_logit_softcapping"]
        logits = np.tanh(logits / cap) * cap
    return log_softmax(logits, axis=-1)


@pytest.mark.parametrize("arch", ["llama", "llama_untied", "gemma2", "granite", "mixtral"])
def test_lens_matches_numpy(arch, handle_of):
    handle = handle_of(arch)
    cfg = handle.config
    results = logit_lens(handle, PROMPTS[:2], ["multiply", "sum"], top_k=5)
    for res in results:
        capture = handle.forward(mx.array([res.token_ids]))
        for row, layer in enumerate(res.layers):
            depth = 0 if layer == EMB else layer + 1
            lp = numpy_lens(handle, cfg, np.array(capture.hidden[depth][0, -1]))
            p = np.exp(lp)
            top = np.argsort(-lp)[:5]
            assert [t[1] for t in res.top[row][0]] == top.tolist()
            np.testing.assert_allclose([t[2] for t in res.top[row][0]], p[top], rtol=1e-3, atol=1e-7)
            assert res.entropy[row, 0] == pytest.approx(-(p * lp).sum(), rel=1e-3)
            for word in ("multiply", "sum"):
                for sp in res.targets[word].spellings.values():
                    assert sp.first_prob[row] == pytest.approx(p[sp.ids[0]], rel=1e-3, abs=1e-9)
                    assert sp.rank[row] == int(rankdata(-lp, method="min")[sp.ids[0]])
        final = np.exp(numpy_lens(handle, cfg, np.array(capture.hidden[-1][0, -1])))
        kl_emb = float((final * (np.log(final) - numpy_lens(handle, cfg, np.array(capture.hidden[0][0, -1])))).sum())
        assert res.kl_to_final[0, 0] == pytest.approx(kl_emb, rel=1e-3, abs=1e-6)
        assert res.kl_to_final[-1, 0] == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_last_layer_lens_is_model_output(arch, handle_of):
    handle = handle_of(arch)
    res = logit_lens(handle, PROMPTS, ["product"], top_k=3)
    for r in res:
        logits = np.array(handle.model(mx.array([r.token_ids]))[0, -1], dtype=np.float64)
        p = np.exp(log_softmax(logits))
        assert r.top[-1][0][0][1] == int(np.argmax(logits))
        for sp in r.targets["product"].spellings.values():
            assert sp.first_prob[-1] == pytest.approx(p[sp.ids[0]], rel=1e-3, abs=1e-9)


def test_full_word_probability_is_teacher_forced(handle_of):
    handle = handle_of("llama")
    word = "zebra"
    res = logit_lens(handle, PROMPTS[:1], [word])[0]
    sp = res.targets[word].spellings["with_space"]
    assert len(sp.ids) > 1
    seq = res.token_ids + sp.ids[:-1]
    logits = np.array(handle.model(mx.array([seq]))[0], dtype=np.float64)
    lp = log_softmax(logits, axis=-1)
    start = len(res.token_ids) - 1
    want = np.exp(sum(lp[start + j, t] for j, t in enumerate(sp.ids)))
    assert sp.full_prob[-1] == pytest.approx(want, rel=1e-3)
    assert sp.first_prob[-1] == pytest.approx(np.exp(lp[start, sp.ids[0]]), rel=1e-3)
    assert np.all(sp.full_prob <= sp.first_prob + 1e-12)
    summed = res.targets[word].full_prob_sum
    np.testing.assert_allclose(summed, sum(s.full_prob for s in res.targets[word].spellings.values()))


@pytest.mark.parametrize("arch", ["llama", "llama_untied"])
def test_full_word_probability_at_every_layer_reads_that_layer(arch, handle_of):
    """Below the last layer too: the product over the word's pieces of the numpy lens at that layer's residual, each
    piece at its teacher-forced position of the prompt extended by the earlier pieces."""
    handle = handle_of(arch)
    word = "zebra"
    res = logit_lens(handle, PROMPTS[:1], [word])[0]
    sp = res.targets[word].spellings["with_space"]
    assert len(sp.ids) > 1
    capture = handle.forward(mx.array([res.token_ids + sp.ids[:-1]]))
    start = len(res.token_ids) - 1
    for row, layer in enumerate(res.layers):
        depth = 0 if layer == EMB else layer + 1
        lp = [numpy_lens(handle, handle.config, np.array(capture.hidden[depth][0, start + j]))
              for j in range(len(sp.ids))]
        want = np.exp(sum(lp[j][t] for j, t in enumerate(sp.ids)))
        assert sp.full_prob[row] == pytest.approx(want, rel=2e-3, abs=1e-12), (layer, sp.full_prob[row], want)


def test_batching_equals_one_by_one(handle_of):
    handle = handle_of("qwen2")
    together = logit_lens(handle, PROMPTS, ["add"])
    for prompt, batched in zip(PROMPTS, together):
        alone = logit_lens(handle, [prompt], ["add"])[0]
        assert alone.prompt == batched.prompt == prompt
        np.testing.assert_allclose(alone.entropy, batched.entropy, rtol=1e-4)
        np.testing.assert_allclose(
            alone.targets["add"].first_prob_sum, batched.targets["add"].first_prob_sum, rtol=1e-4, atol=1e-9
        )


def test_all_positions(handle_of):
    handle = handle_of("llama")
    res = logit_lens(handle, PROMPTS[:1], all_positions=True, top_k=2)[0]
    assert res.positions == list(range(len(res.token_ids)))
    assert res.entropy.shape == (handle.n_layers + 1, len(res.token_ids))
    last = logit_lens(handle, PROMPTS[:1], top_k=2)[0]
    np.testing.assert_allclose(res.entropy[:, -1], last.entropy[:, 0], rtol=1e-5)
    assert [t[1] for t in res.top[3][-1]] == [t[1] for t in last.top[3][0]]
    np.testing.assert_allclose([t[2] for t in res.top[3][-1]], [t[2] for t in last.top[3][0]], rtol=1e-5)


def test_layer_selection_and_errors(handle_of):
    handle = handle_of("llama")
    assert resolve_layers(handle, [2, EMB, "1"]) == [EMB, 1, 2]
    res = logit_lens(handle, PROMPTS[:1], layers=[1])[0]
    assert res.layers == [1] and res.entropy.shape == (1, 1)
    with pytest.raises(LazarusError, match="out of range"):
        logit_lens(handle, PROMPTS[:1], layers=[handle.n_layers])
    with pytest.raises(LazarusError, match="empty prompt"):
        logit_lens(handle, [""])
    with pytest.raises(LazarusError, match="empty target"):
        logit_lens(handle, PROMPTS[:1], ["  "])


def test_target_absent_from_word_level_vocabulary(tmp_path):
    """A tokenizer with an unknown token cannot spell every word: a clear error, not a silent id 0."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "7": 2, "*": 3, "8": 4, "=": 5, "multiply": 6}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>", "bos_token": "<s>"})
    )
    cfg = tiny_config("llama", vocab_size=len(vocab))
    save_model(build_model(cfg), cfg, tmp_path)
    handle = load_model(str(tmp_path))
    assert logit_lens(handle, ["7 * 8 ="], ["multiply"])[0].targets["multiply"].spellings["without_space"].ids == [6]
    with pytest.raises(LazarusError, match="'zebra' is not in the vocabulary"):
        logit_lens(handle, ["7 * 8 ="], ["zebra"])


def test_word_ranks_of_a_direction_match_numpy(handle_of):
    """A direction equal to a token's (gain-unfolded) unembedding row ranks that token first."""
    from scipy.stats import rankdata

    from lazarus_bench.analysis.directions import word_ranks

    handle = handle_of("llama_untied")
    W = np.array(handle.unembedding(), dtype=np.float64)
    g = np.array(handle.final_norm_gain(), dtype=np.float64)
    target = handle.encode(" plus", add_special_tokens=False)[0]
    direction = W[target] / g
    result = word_ranks(handle, direction, ["plus", "multiply"])
    assert result["words"]["plus"]["with_space"]["rank"] == 1
    assert result["words"]["plus"]["with_space"]["score"] == pytest.approx(1.0, abs=1e-5)
    cos = (W @ (g * direction)) / (np.linalg.norm(W, axis=1) * np.linalg.norm(g * direction))
    for key, entry in result["words"]["multiply"].items():
        assert entry["score"] == pytest.approx(cos[entry["token_id"]], abs=1e-5)
        assert entry["rank"] == int(rankdata(-cos, method="min")[entry["token_id"]])
    unfolded = word_ranks(handle, direction, ["plus"], fold_gain=False)
    assert unfolded["words"]["plus"]["with_space"]["score"] < 0.999


@pytest.mark.parametrize("k", [1, 5, 64])
def test_top_k_indices_match_a_full_numpy_sort(k):
    import mlx.core as mx

    from lazarus_bench.analysis.lens import top_k_indices

    scores = mx.random.normal((6, 2, 64), key=mx.random.key(k))
    expected = np.argsort(-np.array(scores), axis=-1, kind="stable")[..., :k]
    np.testing.assert_array_equal(np.array(top_k_indices(scores, k)), expected)


LINUX_CPU_WHEEL = pytest.mark.skipif(
    mx.default_device() != mx.cpu or not __import__("lazarus_bench.jit").jit.cpu_has_fma(),
    reason="bitwise equality holds where MLX's CPU kernels run one lane (the x86-64 Linux wheel); elsewhere the "
           "LogSumExp primitive accumulates in another order")


@LINUX_CPU_WHEEL
def test_log_softmax_is_bitwise_mlx_logsumexp():
    from lazarus_bench.analysis.lens import log_softmax as ours

    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((7, 3, 1_031)) * rng.choice([0.5, 8.0, 60.0], (7, 3, 1))).astype(np.float32)
    logits[0, 0, :500] = -np.inf  # masked entries
    logits[1, 1, :] = -np.inf  # a fully masked row: -inf minus -inf, NaN in both
    logits[2, 2, 17] = np.inf
    x = mx.array(logits)
    want, got = np.array(x - mx.logsumexp(x, axis=-1, keepdims=True)), np.array(ours(x))
    nan = np.isnan(want)  # the masked row, and +inf minus +inf (NaN payloads may differ)
    assert np.array_equal(nan, np.isnan(got)) and nan[1, 1].all() and nan[2, 2, 17]
    assert want[~nan].tobytes() == got[~nan].tobytes()
    np.testing.assert_allclose(got[3:], log_softmax(logits[3:].astype(np.float64), axis=-1), rtol=2e-6, atol=1e-5)


def test_lens_statistics_are_bitwise_the_unfused_ones(handle_of):
    """The fused exp/entropy/KL kernel gives exactly what the separate eager ops give."""
    from lazarus_bench.analysis.lens import _probs_and_terms

    rng = np.random.default_rng(1)
    lp, final_lp = (mx.array(np.log(rng.dirichlet(np.ones(257), size=(5, 2))).astype(np.float32)) for _ in range(2))
    final_p = mx.exp(final_lp)
    p, p_log_p, kl = _probs_and_terms(lp, final_lp, final_p)
    for a, b in ((p, mx.exp(lp)), (p_log_p, mx.exp(lp) * lp), (kl, final_p * (final_lp - lp))):
        assert np.array(a).tobytes() == np.array(b).tobytes()
