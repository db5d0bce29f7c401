
import json

import mlx.core as mx
import numpy as np
import pytest

from lazarus_bench.zoo import build as B
from lazarus_bench.zoo import pretrain as P
from lazarus_bench.zoo import registry as R
from lazarus_bench.zoo.corpus import tokenizer_training_text
from lazarus_bench.zoo.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def micro_zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo")
    mans = B.build_zoo(out, size="micro", seed=0, progress=False, steps=6, instruct_steps=3)
    return out, mans


def test_micro_build_loads_and_evaluates(micro_zoo):
    import mlx_lm

    out, mans = micro_zoo
    assert set(mans) == set(B.KINDS)
    for kind in B.KINDS:
        d = out / kind
        for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                  "manifest.json"):
            assert (d / f).is_file(), (kind, f)
        man = R.verify(d)
        assert man["kind"] == kind and man["corpus_seed"] == 0
        assert set(man["metrics"]) >= {"eval_prompts", "heldout", "word"}
        assert man["tokens_per_s"] > 0
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["tie_word_embeddings"] is (kind != "untied")
        w = mx.load(str(d / "model.safetensors"))
        assert all(v.dtype == mx.float16 for v in w.values())
    assert json.loads((out / "moe" / "config.json").read_text())["model_type"] == "mixtral"
    assert "chat" in mans["instruct"]["metrics"]
    model, tok = mlx_lm.load(str(out / "base"))
    text = mlx_lm.generate(model, tok, "7 * 8 = ", max_tokens=3, verbose=False)
    assert isinstance(text, str)
    assert tok.encode("7 * 8 = ")[0] == tok.bos_token_id


def test_rebuild_skips_verified_models(micro_zoo):
    out, mans = micro_zoo
    again = B.build_zoo(out, size="micro", seed=0, progress=False, steps=6, instruct_steps=3,
                        evaluate_models=False)
    assert again["base"]["files"] == mans["base"]["files"]


def test_checksum_failure_is_clear(micro_zoo, tmp_path):
    import shutil

    out, _ = micro_zoo
    d = tmp_path / "base"
    shutil.copytree(out / "base", d)
    R.verify(d)
    p = d / "model.safetensors"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(R.ZooIntegrityError) as e:
        R.verify(d)
    msg = str(e.value)
    assert "model.safetensors" in msg and R.REBUILD_COMMAND in msg and "\n" not in msg
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    R.verify(d)
    (d / "tokenizer.json").unlink()
    with pytest.raises(R.ZooIntegrityError, match="tokenizer.json is missing"):
        R.verify(d)


@pytest.fixture(scope="module")
def tiny_setup():
    tok = build_tokenizer(0, texts=tokenizer_training_text(0, 800))
    cfg = B._arch_config("base", B.SIZES["micro"], tok.get_vocab_size())
    data = P.pretrain_data(tok, 0, 12 * 8, 32)
    return cfg, data


def _fresh(cfg):
    mx.random.seed(0)
    m = P.build_model(cfg)
    mx.eval(m.parameters())
    return m


@pytest.mark.parametrize("compiled", [True, False])
def test_seeded_and_resume_matches_uninterrupted(tiny_setup, tmp_path, compiled):
    cfg, data = tiny_setup
    tc = P.TrainConfig(steps=12, batch_size=8, seq_len=32, lr=3e-3, warmup=3, ckpt_every=4,
                       compile=compiled, seed=0)
    m1 = _fresh(cfg)
    r1 = P.train(m1, data, tc, progress=False)
    m1b = _fresh(cfg)
    r1b = P.train(m1b, data, tc, progress=False)
    assert r1.losses == r1b.losses  # same seed -> identical losses

    m2 = _fresh(cfg)
    part = P.train(m2, data, tc, ckpt_dir=tmp_path, progress=False, stop_after=6)  # "crash"
    assert part.steps == 6 and (tmp_path / P.CKPT_NAME).exists()
    m3 = _fresh(cfg)  # a new process would start from a fresh model
    r3 = P.train(m3, data, tc, ckpt_dir=tmp_path, progress=False)
    assert r3.resumed_from == 4  # last checkpoint before the interruption
    assert len(r3.losses) == 12
    np.testing.assert_allclose(r3.losses, r1.losses, rtol=1e-5, atol=1e-6)
    from mlx.utils import tree_flatten

    w1 = dict(tree_flatten(m1.parameters()))
    for k, v in tree_flatten(m3.parameters()):
        np.testing.assert_allclose(np.array(v), np.array(w1[k]), rtol=1e-4, atol=1e-5)
