"""Shared fixtures: a tiny BPE tokenizer and tiny random models saved in Hugging Face layout."""

from __future__ import annotations

import os

import pytest

from lazarus_bench.hf_tokenizer import train_bpe
from lazarus_bench.models import load_model, save_model
from lazarus_bench.tiny import build_model, tiny_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = "multiply add subtract divide times plus minus remaining remainder sum product difference"


def _corpus():
    lines = []
    for a in range(1, 13):
        for b in range(1, 13):
            lines.append(f"{a} * {b} = {a * b}. To multiply {a} by {b} gives the product {a * b}.")
            lines.append(f"What is {a} plus {b}? {a + b}. Add them: the sum. {WORDS}")
    lines += [f"{w}:{w}" for w in WORDS.split() for _ in range(40)]
    return lines


@pytest.fixture(scope="session", autouse=True)
def open_trained_gate():
    """The tests measure claims on tiny random-weight models, which the trained-model gate rightly stops (NOT
    TESTABLE) before any measure runs; they open it for the session (this process and the workers it starts),
    except tests marked ``trained_gate`` (``default_trained_gate``), as the gate's own tests are."""
    from lazarus_bench.suite.runner import TRAINED_ENV

    before = os.environ.get(TRAINED_ENV)
    os.environ[TRAINED_ENV] = "1e9"
    yield
    if before is None:
        os.environ.pop(TRAINED_ENV, None)
    else:
        os.environ[TRAINED_ENV] = before


@pytest.fixture(autouse=True)
def default_trained_gate(request, monkeypatch):
    from lazarus_bench.suite.runner import TRAINED_ENV

    if request.node.get_closest_marker("trained_gate") is not None:
        monkeypatch.delenv(TRAINED_ENV, raising=False)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    return train_bpe(_corpus(), vocab_size=320, out_dir=tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def tokenizer_vocab(tokenizer_dir):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).get_vocab_size()


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory, tokenizer_dir, tokenizer_vocab):
    """Factory: save a tiny random model of ``arch`` with the BPE tokenizer and return its directory."""
    cache = {}

    def make(arch: str, seed: int = 0):
        if (arch, seed) not in cache:
            cfg = tiny_config(arch, vocab_size=tokenizer_vocab)
            model = build_model(cfg, seed=seed)
            cache[(arch, seed)] = save_model(
                model, cfg, tmp_path_factory.mktemp(arch), tokenizer_dir=str(tokenizer_dir)
            )
        return cache[(arch, seed)]

    return make


@pytest.fixture(scope="session")
def lora_adapter(tmp_path_factory, saved_model):
    """An mlx-lm LoRA adapter folder for the tiny llama (random non-zero LoRA weights, rank 4 on V/O), and the
    in-memory model it describes: ``(adapter_dir, model)``."""
    import json

    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.tuner.utils import linear_to_lora_layers

    handle = load_model(str(saved_model("llama")))
    model = build_model(tiny_config("llama", vocab_size=handle.vocab_size), seed=0)
    lora = {"rank": 4, "scale": 10.0, "dropout": 0.0, "keys": ["self_attn.v_proj", "self_attn.o_proj"]}
    model.freeze()
    linear_to_lora_layers(model, 4, lora)
    trainable = dict(tree_flatten(model.trainable_parameters()))
    keys = mx.random.split(mx.random.key(7), len(trainable))
    model.update(tree_unflatten([(k, 0.1 * mx.random.normal(v.shape, key=keys[i]))
                                 for i, (k, v) in enumerate(trainable.items())]))
    adapter = tmp_path_factory.mktemp("adapter")
    mx.save_safetensors(str(adapter / "adapters.safetensors"), dict(tree_flatten(model.trainable_parameters())))
    (adapter / "adapter_config.json").write_text(
        json.dumps({"fine_tune_type": "lora", "num_layers": 4, "lora_parameters": lora})
    )
    return adapter, model


@pytest.fixture(scope="session")
def handle_of(saved_model):
    """Factory: a ModelHandle loaded through the public API from a saved tiny model."""
    cache = {}

    def make(arch: str):
        if arch not in cache:
            cache[arch] = load_model(str(saved_model(arch)))
        return cache[arch]

    return make


@pytest.fixture
def check_gates():
    """``check_gates(record, expected_values)``: see ``_check_gates``."""
    return _check_gates


def _check_gates(record, expected: dict[str, float]) -> None:
    """Each fitness gate's value equals the test's own recomputation, and the verdict is NOT TESTABLE exactly when a
    gate failed (the measurement's own verdict kept as ``measured_verdict``)."""
    import pytest

    trained, *own = record.fitness
    assert trained.name == "trained language model" and trained.passed  # opened by ``open_trained_gate``
    gates = {g.name: g for g in own}
    assert set(gates) == set(expected)
    for name, value in expected.items():
        g = gates[name]
        assert g.value == pytest.approx(value, rel=1e-6, abs=1e-12), name
        low, high = g.threshold if g.direction == "within" else (
            (g.threshold, float("inf")) if g.direction == "above" else (float("-inf"), g.threshold))
        assert g.passed == (low <= g.value <= high), name
    failed = [g for g in gates.values() if not g.passed]
    assert (record.verdict == "NOT TESTABLE") == bool(failed)
    assert record.statistic.verdict == (record.measured_verdict or record.verdict)
