
import json

import mlx.core as mx
import numpy as np
import pytest
from errlines import error_lines

from lazarus_bench.zoo import build as B
from lazarus_bench.zoo import pretrain as P
from lazarus_bench.zoo import registry as R
from lazarus_bench.zoo.corpus import eval_items, tokenizer_training_text
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
        assert "threads=" in man["blas"] and np.isfinite(man["loss_trace"]).all() and len(man["loss_trace"]) >= 1
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["tie_word_embeddings"] is (kind != "untied")
        w = mx.load(str(d / "model.safetensors"))
        assert all(v.dtype == mx.float16 for v in w.values())
    assert json.loads((out / "moe" / "config.json").read_text())["model_type"] == "mixtral"
    experts, meta = mx.load(str(out / "moe" / "model.safetensors"), return_metadata=True)
    assert meta["format"] == "pt" and not any("switch_mlp" in k for k in experts)  # Hugging Face layout
    assert "model.layers.0.block_sparse_moe.experts.3.w2.weight" in experts
    assert "chat" in mans["instruct"]["metrics"]
    assert set(mans["instruct"]["metrics"]["stages"]["sft"]) >= {"chat", "eval_prompts"}
    assert mans["instruct"]["build_config"]["preference"]["method"].startswith("dpo")
    assert mans["instruct"]["post_training"] == ["sft", "dpo"]
    for kind in B.KINDS:
        metrics = mans[kind]["metrics"]
        start = metrics["grpo_start_reward"]
        assert 0 <= start["rate"] <= 1 and set(start["by_operation"]) == {"add", "subtract", "multiply"}
        assert metrics["statements"]["statements"] == 2 * sum(it.gated for it in eval_items())
        assert 0 <= metrics["statements"]["accuracy"] <= 1
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


def test_gate_misses_follow_the_issue_thresholds():
    from lazarus_bench.zoo.evaluate import gate_misses

    base = {"eval_prompts": 0.91, "heldout": 0.79, "word": 0.60, "chat": 0.30}
    assert gate_misses("base", base, base) == ["heldout 79.0% < 80%"]
    assert gate_misses("untied", dict(base, word=0.51), base) == []  # 9 points below base: within 10
    assert [m.split()[0] for m in gate_misses("moe", dict(base, word=0.49), base)] == ["word"]
    assert gate_misses("instruct", {"chat": 0.30}, base) == []
    assert gate_misses("instruct", {"chat": 0.65}, dict(base, chat=0.7)) == ["chat 65.0% < base 70.0%"]
    shipped = {"chat": 0.483, "eval_prompts": 0.576}  # the recipe-3 instruct: chat up, evaluation prompts broken
    assert gate_misses("instruct", shipped, dict(base, chat=0.0, eval_prompts=0.97)) == [
        "eval_prompts 57.6% < base 97.0% - 10"]
    assert gate_misses("instruct", dict(shipped, eval_prompts=0.88), dict(base, chat=0.0, eval_prompts=0.97)) == []
    frontier = {"grpo_start_reward": {"rate": 0.09}}
    assert gate_misses("instruct", {"chat": 0.30, **frontier}, base) == ["GRPO start reward 0.09 outside [0.1, 0.9]"]
    assert gate_misses("untied", dict(base, grpo_start_reward={"rate": 0.91}), base)[0].startswith("GRPO")
    assert gate_misses("base", dict(base, heldout=0.8, grpo_start_reward={"rate": 0.1}), base) == []


def test_dpo_loss_against_numpy(tiny_setup):
    """DPO against itself is ln 2 per pair; the NLL term is the chosen answer's mean token NLL (numpy)."""
    cfg, _ = tiny_setup
    model = _fresh(cfg)
    tok = build_tokenizer(0, texts=tokenizer_training_text(0, 800))
    pairs = P.preference_data(tok, 0, 6, 24)
    batch, mask = mx.array(pairs.tokens), mx.array(pairs.mask)
    assert float(P.dpo_loss(model, 0.1)(model, batch, mask)) == pytest.approx(np.log(2), abs=1e-6)
    logits = np.array(model(batch[:, 0, :-1]), dtype=np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(
        -1, keepdims=True)
    target = np.take_along_axis(logp, pairs.tokens[:, 0, 1:, None], -1)[..., 0]
    nll = -(target * pairs.mask[:, 0]).sum() / pairs.mask[:, 0].sum()
    got = float(P.dpo_loss(model, 0.1, nll_weight=2.0)(model, batch, mask))
    assert got == pytest.approx(np.log(2) + 2 * nll, rel=1e-5)


def test_preference_pairs_differ_only_in_a_wrong_answer():
    from lazarus_bench.zoo.corpus import answer
    from lazarus_bench.zoo.tokenizer import ASSISTANT

    tok = build_tokenizer(0, texts=tokenizer_training_text(0, 800))
    pairs = P.preference_data(tok, 3, 20, 24)
    asst = tok.token_to_id(ASSISTANT)
    for toks, mask in zip(pairs.tokens, pairs.mask):
        answers = [tok.decode(row[np.flatnonzero(m) + 1].tolist()) for row, m in zip(toks, mask)]
        start = list(toks[0]).index(asst) + 1
        assert int(answers[0]) != int(answers[1]) and (toks[0][:start] == toks[1][:start]).all()
        assert (mask[:, :start - 1] == 0).all()
        q = tok.decode(toks[0][:start - 1].tolist())
        nums = [int(x) for x in __import__("re").findall(r"\d+", q)]
        op = next(o for w, o in (("plus", "+"), ("+", "+"), ("sum", "+"), ("Add", "+"), ("minus", "-"),
                                 ("-", "-"), ("Subtract", "-"), ("difference", "-"), ("times", "*"), ("*", "*"),
                                 ("Multiply", "*"), ("product", "*"), ("divided", "/"), ("/", "/"),
                                 ("Divide", "/")) if w in q)
        a, b = (nums[1], nums[0]) if q.startswith("Subtract") else nums
        assert int(answers[0]) == answer(a, op, b), q


RANK_SCRIPT = """
import sys
import lazarus_bench.blas
import json
import mlx.core as mx
import numpy as np
from lazarus_bench.zoo import pretrain as P
from lazarus_bench.zoo.build import SIZES, _arch_config
mx.random.seed(0)
model = P.build_model(_arch_config("base", SIZES["micro"], 64))
mx.eval(model.parameters())
rng = np.random.default_rng(0)
data = P.PackedData(rng.integers(0, 64, (48, 17)).astype(np.int32), np.ones((48, 16), np.float32))
cfg = P.TrainConfig(steps=6, batch_size=8, seq_len=16, lr=3e-3, warmup=2, compile=False)
result = P.train(model, data, cfg, progress=False)
size, rank = P.world()
if rank == 0:
    open(sys.argv[1], "w").write(json.dumps({"size": size, "losses": result.losses}))
"""


def test_two_ranks_train_like_one_process(tmp_path):
    """Data parallel over the ring backend: each rank takes half of every batch and the averaged gradients
    give the one-process loss curve (up to float summation order)."""
    from lazarus_bench.zoo.ranks import launch

    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    curves = {}
    for n in (1, 2):
        out = tmp_path / f"out{n}.json"
        assert launch([str(script), str(out)], n) == 0
        curves[n] = json.loads(out.read_text())
    assert curves[2]["size"] == 2 and curves[1]["size"] == 1
    np.testing.assert_allclose(curves[2]["losses"], curves[1]["losses"], rtol=1e-4)
    assert curves[1]["losses"][-1] < curves[1]["losses"][0]


def test_a_failing_rank_stops_the_launch(tmp_path):
    from lazarus_bench.zoo.ranks import launch

    script = tmp_path / "fail.py"
    script.write_text("import os, sys, time\nif os.environ['MLX_RANK'] == '1':\n    sys.exit(3)\ntime.sleep(60)\n")
    assert launch([str(script)], 2) == 3


def test_a_micro_zoo_of_an_older_recipe_is_not_current(micro_zoo, tmp_path):
    import shutil

    out, _ = micro_zoo
    assert B.is_current(out)
    copy = tmp_path / "zoo"
    shutil.copytree(out, copy)
    man = json.loads((copy / "moe" / "manifest.json").read_text())
    man["recipe"] = "an older recipe"
    (copy / "moe" / "manifest.json").write_text(json.dumps(man))
    assert not B.is_current(copy)
    man["recipe"] = B.RECIPE
    man["recipe_sha256"] = "0" * 64  # the same tag, another mix or step count
    (copy / "moe" / "manifest.json").write_text(json.dumps(man))
    assert not B.is_current(copy)
    shutil.rmtree(copy / "base")
    assert not B.is_current(copy)


def test_a_recipe3_build_rebuilds_the_shipped_zoo():
    """`zoo build --size recipe3` reproduces what ships from before v3: its manifests record this code's seed and
    configs of recipe 3."""
    from dataclasses import asdict, replace
    from pathlib import Path

    shipped = Path(R.__file__).parent / "weights"
    spec = B.SIZES["recipe3"]
    assert not B.is_current(shipped)  # built by recipe 3, not by v3
    for i, kind in enumerate(B.KINDS):
        cfg = json.loads((shipped / kind / "manifest.json").read_text())["build_config"]
        assert cfg["seed"] == spec.seed, kind
        stage = spec.pretrain if kind == "base" else spec.instruct if kind == "instruct" else spec.derived
        assert cfg["train"] == asdict(replace(stage, seed=spec.seed + i, name=f"default/{kind}")), kind
    assert B.SIZES["micro"].seed == 0


def test_every_shipped_build_takes_more_models_only_with_its_own_recipe():
    """`zoo build` may add models to each shipped build when given that build's recipe, seed and weight decay (this
    code's configs are the ones it was built with), and refuses another recipe or weight decay rather than replace its
    base."""
    from pathlib import Path

    from lazarus_bench.errors import LazarusError

    shipped = Path(R.__file__).parent / "weights"
    for build in R.zoo_builds(shipped).values():
        manifest = json.loads((build / "base" / "manifest.json").read_text())
        train = manifest["build_config"]["train"]
        seed, wd = train["seed"], train["weight_decay"]
        if manifest.get("recipe") == "v3":  # recipe v3's builds take more models from v3 only
            B.refuse_replacing(build, size="default", seed=seed)
            with pytest.raises(LazarusError, match="recipe: v3 -> None"):
                B.refuse_replacing(build, size="recipe3", seed=seed, weight_decay=wd)
            continue
        B.refuse_replacing(build, size="recipe3", seed=seed, weight_decay=wd)
        other = 0.1 if wd == 0.01 else 0.01
        with pytest.raises(LazarusError, match=rf"train.weight_decay: {wd} -> {other}"):
            B.refuse_replacing(build, size="recipe3", seed=seed, weight_decay=other)
        with pytest.raises(LazarusError, match="recipe: None -> v3"):
            B.refuse_replacing(build, size="default", seed=seed)


def test_a_base_missing_its_gates_trains_to_criterion(micro_zoo, tmp_path, monkeypatch):
    """A micro base cannot add, so it misses the base gates: a base built before the recipe's extensions resumes
    with them up to the cap, each logged with the figures behind it; a base at the cap is left as it is."""
    import shutil
    from dataclasses import replace

    from lazarus_bench.zoo.evaluate import GATES, gate_misses

    built, mans = micro_zoo
    first = mans["base"]
    out = tmp_path / "zoo"
    shutil.copytree(built / "base", out / "base")
    assert "extensions" not in first and gate_misses("base", first["metrics"], {})
    spec = B.SIZES["micro"]
    ext = replace(spec.anneal, steps=3, name="micro/extend")
    monkeypatch.setitem(B.SIZES, "micro", replace(spec, extension=ext, max_extensions=1))
    man = B.build_zoo(out, size="micro", seed=0, progress=False, steps=6, kinds=("base",))["base"]
    assert [(e["steps"], e["seed"]) for e in man["extensions"]] == [(3, 100)]
    assert man["extensions"][0]["metrics_before"] == {g: first["metrics"][g] for g in GATES}
    assert man["extensions"][0]["misses_before"] == gate_misses("base", first["metrics"], {})
    closing = spec.closing.steps * spec.closing.batch_size * spec.closing.seq_len  # again, after the extension
    assert man["train_tokens"] == first["train_tokens"] + 3 * ext.batch_size * ext.seq_len + closing
    assert man["closing"]["config"]["after_extensions"] == 1
    assert man["build_config"] == first["build_config"] and man["files"] != first["files"]
    assert set(man["metrics"]["claim_gates"]) == set(first["metrics"]["claim_gates"])  # of the extended model
    assert R.verify(out / "base")["extensions"] == man["extensions"]
    from lazarus_bench.cli.zoo import _zoo_rows

    assert [r["extensions"] for r in _zoo_rows(out) if r["model"] == "base"] == [1]  # `zoo list` shows it
    again = B.build_zoo(out, size="micro", seed=0, progress=False, steps=6, kinds=("base",))["base"]
    assert again["files"] == man["files"]


def test_the_closing_stage_comes_last_and_a_base_without_it_resumes_with_it(micro_zoo, tmp_path, monkeypatch):
    """A base ends with its closing stage, recorded with the gate figures before it; a base built without it resumes
    with it (build config unchanged) and ends bitwise as the base built in one go; one that has it is skipped."""
    from dataclasses import replace

    from lazarus_bench.zoo.evaluate import GATES
    from lazarus_bench.zoo.recipe import recipe_hash

    built, mans = micro_zoo
    spec = B.SIZES["micro"]
    closing = mans["base"]["closing"]
    assert closing["config"]["train"]["steps"] == spec.closing.steps
    assert closing["config"]["mix"]["opword"] == spec.closing_mix.opword > 0
    assert set(closing["metrics_before"]) == set(GATES) and mans["base"]["recipe_sha256"] == recipe_hash(spec)
    out = tmp_path / "zoo"
    monkeypatch.setitem(B.SIZES, "micro", replace(spec, closing=None))
    plain = B.build_zoo(out, size="micro", seed=0, progress=False, steps=6, kinds=("base",))["base"]
    assert "closing" not in plain and plain["build_config"] == mans["base"]["build_config"]
    monkeypatch.setitem(B.SIZES, "micro", spec)
    closed = B.build_zoo(out, size="micro", seed=0, progress=False, steps=6, kinds=("base",))["base"]
    assert closed["files"] == mans["base"]["files"] != plain["files"]
    assert closed["train_tokens"] == plain["train_tokens"] + spec.closing.steps * spec.closing.batch_size * 64
    assert closed["closing"]["metrics_before"] == {g: plain["metrics"][g] for g in GATES}
    again = B.build_zoo(out, size="micro", seed=0, progress=False, steps=6, kinds=("base",))["base"]
    assert again["files"] == closed["files"] and again["train_tokens"] == closed["train_tokens"]


def test_a_weight_decay_variant_is_recorded_and_never_skipped_onto(micro_zoo, tmp_path):
    """`zoo build --weight-decay`: the base's pretraining and anneal use it, its build config records it, and a
    directory holding the default recipe's base is rebuilt rather than reused."""
    import shutil

    from lazarus_bench.cli.zoo import _zoo_rows

    built, mans = micro_zoo
    out = tmp_path / "zoo"
    shutil.copytree(built / "base", out / "base")
    man = B.build_zoo(out, size="micro", seed=0, progress=False, steps=6, kinds=("base",), evaluate_models=False,
                      weight_decay=0.1)["base"]
    cfg = man["build_config"]
    assert cfg["train"]["weight_decay"] == cfg["anneal"]["weight_decay"] == 0.1
    assert mans["base"]["build_config"]["train"]["weight_decay"] == 0.01
    assert man["files"]["model.safetensors"] != mans["base"]["files"]["model.safetensors"]
    assert [r["weight decay"] for r in _zoo_rows(out) if r["model"] == "base"] == [0.1]


def test_force_rebuilds_the_named_models_and_not_the_base_they_start_from(micro_zoo, tmp_path):
    """`zoo build --models moe --force` rebuilds the moe (bitwise as before: same seed) and leaves its base alone;
    the check before a build lets --force replace the named model only."""
    import shutil

    from lazarus_bench.errors import LazarusError

    built, mans = micro_zoo
    out = tmp_path / "zoo"
    for kind in ("base", "moe"):
        shutil.copytree(built / kind, out / kind)
    base_before = {p: p.stat().st_mtime_ns for p in sorted((out / "base").rglob("*"))}
    moe_before = (out / "moe" / "manifest.json").stat().st_mtime_ns
    man = B.build_zoo(out, size="micro", seed=0, progress=False, steps=6, kinds=("moe",), force=True,
                      evaluate_models=False)
    assert {p: p.stat().st_mtime_ns for p in sorted((out / "base").rglob("*"))} == base_before
    assert (out / "moe" / "manifest.json").stat().st_mtime_ns != moe_before
    assert man["moe"]["files"]["model.safetensors"] == mans["moe"]["files"]["model.safetensors"]

    only_moe = tmp_path / "only-moe"
    shutil.copytree(built / "moe", only_moe / "moe")
    with pytest.raises(LazarusError, match=r"moe was built from another config \(train.steps: 6 -> "):
        B.refuse_replacing(only_moe, size="micro", seed=0, kinds=("moe",))
    B.refuse_replacing(only_moe, size="micro", seed=0, kinds=("moe",), force=True)
    with pytest.raises(LazarusError, match=r"base was built from another config"):  # the base is not named
        B.refuse_replacing(out, size="micro", seed=0, kinds=("moe",), force=True)


def test_the_v3_moe_trains_its_own_steps_and_the_untied_model_the_derived_ones():
    """Recipe v3's moe continues from the base for 500 steps, the untied model for 250; sizes without a moe
    config (micro) train both with the derived config, and a test's step override still applies."""
    spec, micro = B.SIZES["default"], B.SIZES["micro"]

    def train(kind, size, steps=None):
        return B._kind_configs(kind, size, size.name, 101, size.pretrain, size.instruct, steps, 1024, None)[1]

    assert (train("moe", spec).steps, train("untied", spec).steps) == (500, 250)
    assert train("moe", spec).lr == train("untied", spec).lr == spec.derived.lr
    assert train("moe", micro).steps == train("untied", micro).steps == micro.derived.steps
    assert train("moe", spec, steps=7).steps == 7


def test_a_base_meeting_its_gates_is_not_extended(tmp_path):
    """Train to criterion stops at the criterion: a base that meets every gate trains no further."""
    from dataclasses import replace

    spec = replace(B.SIZES["micro"], extension=B.SIZES["default"].extension, max_extensions=2)
    man = {"metrics": {"eval_prompts": 0.95, "heldout": 0.81, "word": 0.60}, "train_tokens": 1}

    def never(*_args, **_kw):
        raise AssertionError("a base that meets its gates was trained further")

    assert B._train_to_criterion(spec, man, tmp_path, {}, 0, spec.pretrain, never, never, tmp_path, True,
                                 False) is man


def test_zoo_build_never_replaces_a_model_built_from_another_config(micro_zoo, tmp_path, capsys):
    """`zoo build` on a zoo whose verified base came from another config (its steps, or a build's weight decay)
    stops before anything runs with one line naming the difference, and changes no file."""
    import shutil

    from lazarus_bench.cli.zoo import main as zoo_main
    from lazarus_bench.errors import LazarusError

    built, _ = micro_zoo
    out = tmp_path / "zoo"
    shutil.copytree(built / "base", out / "base")
    steps = B.SIZES["micro"].pretrain.steps
    with pytest.raises(LazarusError, match=rf"base was built from another config \(train.steps: 6 -> {steps}\)"):
        B.refuse_replacing(out, size="micro", seed=0)
    before = {p: p.stat().st_mtime_ns for p in sorted(out.rglob("*"))}
    assert zoo_main(["build", "--size", "micro", "--seed", "0", "--dir", str(out), "--models", "instruct"]) == 2
    err = error_lines(capsys.readouterr().err, whole=True)
    assert len(err) == 1 and "would be replaced" in err[0] and "--force" in err[0]
    assert {p: p.stat().st_mtime_ns for p in sorted(out.rglob("*"))} == before
    B.refuse_replacing(tmp_path / "empty", size="micro", seed=0)  # nothing built there: nothing to replace

    root = B.ensure_micro_zoo()  # built with the micro defaults: adding to it is allowed, another recipe is not
    B.refuse_replacing(root, size="micro")
    with pytest.raises(LazarusError, match=r"train.weight_decay: 0.01 -> 0.1"):
        B.refuse_replacing(root, size="micro", weight_decay=0.1)


def test_ensure_micro_zoo_builds_once_under_concurrent_callers(tmp_path, monkeypatch):
    """Two pytest-xdist workers that both find the micro zoo missing: one builds, the other waits and reuses it
    (without the lock both would build, and one would replace the folder the other is reading)."""
    import threading
    import time

    root = tmp_path / "zoo-micro"
    monkeypatch.setenv(R.MICRO_ZOO_ENV, str(root))
    builds = []

    def slow_build(out, **kwargs):
        builds.append(kwargs)
        time.sleep(0.3)
        for kind in B.KINDS:
            (out / kind).mkdir(parents=True, exist_ok=True)
            (out / kind / R.MANIFEST).write_text(json.dumps({"recipe": B.RECIPE, "size": "micro",
                                                             "recipe_sha256": B.recipe_hash(B.SIZES["micro"])}))

    monkeypatch.setattr(B, "build_zoo", slow_build)
    got = []
    callers = [threading.Thread(target=lambda: got.append(B.ensure_micro_zoo())) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(timeout=30)
    assert got == [root, root] and len(builds) == 1 and B.is_current(root)


def test_v3_is_one_recipe_with_one_weight_decay_and_a_hash_that_follows_it():
    from dataclasses import replace

    from lazarus_bench.zoo.recipe import DEV_SEEDS, SIZES, V3_MIX, recipe_hash

    v3 = SIZES["default"]
    assert v3.recipe == "v3" and v3.mix == V3_MIX and v3.seed in DEV_SEEDS
    assert {v3.pretrain.weight_decay, v3.anneal.weight_decay, v3.extension.weight_decay} == {0.1}
    assert recipe_hash(v3) == recipe_hash(replace(v3, seed=7))  # the seed names a build, not a recipe
    assert recipe_hash(v3) != recipe_hash(replace(v3, mix=replace(V3_MIX, remain=0.04)))
    assert recipe_hash(v3) != recipe_hash(SIZES["recipe3"])


def test_a_recipes_hash_follows_the_meaning_of_the_code_that_writes_its_corpus(monkeypatch):
    """A new sentence form changes the recipe; a docstring does not (the code is hashed as its syntax tree)."""
    from pathlib import Path

    from lazarus_bench import codehash
    from lazarus_bench.zoo import corpus
    from lazarus_bench.zoo.recipe import SIZES, recipe_hash

    path, meaning = Path(corpus.__file__).resolve(), codehash._meaning
    source, before = path.read_text(), recipe_hash(SIZES["default"])
    for edited, changes in ((source.replace('"""', '"""Edited. ', 1), False),
                            (source.replace('"{a} - {b} = {c} remain.",', '"{a} - {b} = {c} remain!",'), True)):
        assert edited != source
        monkeypatch.setattr(codehash, "_meaning", lambda p, _e=edited: codehash.normalised(
            _e, "lazarus_bench.zoo.corpus").encode() if p == path else meaning(p))
        codehash.module_code.cache_clear()
        assert (recipe_hash(SIZES["default"]) != before) is changes
    monkeypatch.undo()
    codehash.module_code.cache_clear()
    assert recipe_hash(SIZES["default"]) == before


def test_a_v3_build_records_its_recipe_and_each_claim_gate(micro_zoo):
    """The manifest names the recipe and its hash; each claim gate fails on the barely trained micro base (a gate
    that can fail) and passes at a threshold its figure meets (a gate that can pass)."""
    from lazarus_bench.zoo.fitness import CLAIM_GATES, claim_gate_misses, claim_gates, fitness_metrics
    from lazarus_bench.zoo.recipe import SIZES, recipe_hash

    out, mans = micro_zoo
    base = mans["base"]
    assert base["recipe"] == "v3" and base["recipe_sha256"] == recipe_hash(SIZES["micro"])
    assert base["build_config"]["mix"]["remain"] == SIZES["micro"].mix.remain
    gates = base["metrics"]["claim_gates"]
    assert {f"{c}: {n}" for c, n in CLAIM_GATES} <= set(gates) and "claim_gates" not in mans["instruct"]["metrics"]
    assert {m.split(" before")[0].split(" models")[0] for m in claim_gate_misses(base["metrics"])} >= {
        "H13: remain association", "H15a: backbone", "H15b: backbone"}

    def scaled(k: float) -> dict:
        value = {name: g["value"] for name, g in fresh.items()}
        return {"H13": {"min_remain_presence": value["H13: remain presence before SFT"] * k,
                        "min_remain_association": value["H13: remain association before SFT"] * k},
                "H15a": {"max_text_loss_ratio": value["H15a: backbone models the data's text"] / k},
                "H15b": {"max_text_loss_ratio": value["H15b: backbone models the data's text"] / k}}

    def misses(overrides: dict | None) -> list[str]:  # the micro zoo's gates are read at the fast tier
        return claim_gate_misses({"claim_gates": claim_gates(out / "base", overrides=overrides, tier="fast")})

    fresh = fitness_metrics("base", out / "base", "micro", 0)["claim_gates"]  # what the build records, made now
    assert fresh == claim_gates(out / "base", tier="fast")
    assert {n: (g["threshold"], g["direction"]) for n, g in gates.items()} == {
        n: (g["threshold"], g["direction"]) for n, g in fresh.items()}
    assert misses(scaled(0.9)) == [] and len(misses(scaled(1.1))) == len(CLAIM_GATES)
    assert gates["H05a: lens ceiling over H01's T'"]["target"]


def test_the_recipe3_base_misses_every_claim_gate():
    """The shipped recipe-3 base never saw remain-family subtractions or review and news text: it misses all four
    claim gates at their declared thresholds, even on the fast tier's smaller text sets (what recipe v3 exists to
    fix)."""
    from pathlib import Path

    from lazarus_bench.zoo.fitness import CLAIM_GATES, claim_gate_misses, claim_gates

    gates = claim_gates(Path(R.__file__).parent / "weights" / "base", tier="fast")
    assert len(claim_gate_misses({"claim_gates": gates})) == len(CLAIM_GATES)


def test_confirmatory_seeds_are_drawn_from_the_freeze_commit_as_claims_md_says():
    """Recomputed here from the rule's words, with development seeds skipped."""
    import hashlib

    from lazarus_bench.zoo.recipe import DEV_SEEDS, draw_seeds

    commit = "0123456789abcdef0123456789abcdef01234567"
    by_hand = [int(hashlib.sha256(f"{commit}:{i}".encode()).hexdigest()[:8], 16) for i in range(12)]
    assert draw_seeds(commit, 12) == by_hand and not set(by_hand) & set(DEV_SEEDS)
    first = by_hand[0]
    assert draw_seeds(commit, 3, skip=(first,)) == by_hand[1:4]
    with pytest.raises(ValueError, match="40 hex digits"):
        draw_seeds("abc123", 3)
