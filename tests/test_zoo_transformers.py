"""The development build's zoo models load in Hugging Face transformers (torch, CPU) as the same model mlx-lm loads.

A checkpoint in the wrong layout loads in transformers without an error but with randomly initialised
parts (the old ``switch_mlp`` MoE experts did), so the test checks that no weight was missing or unused
and that the logits agree. Needs torch: ``pip install lazarus-bench[hf]`` or ``tox -e hf``."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: .venv/bin/pip install torch==2.13.0 (its CPU "
                            "build; .ci/run does) or tox -e hf")
import transformers  # noqa: E402  (mlx-lm's own dependency)

PROMPTS = ["7 * 8 = ", "What is 23 plus 45?", "The remaining cake was eaten by the children."]


@pytest.mark.parametrize("kind", ["base", "instruct", "untied", "moe"])
def test_zoo_model_loads_in_transformers_with_mlx_lm_logits(kind):
    import mlx.core as mx
    import mlx_lm

    from lazarus_bench.zoo.registry import resolve_zoo

    path = str(resolve_zoo(f"zoo:{kind}"))
    hf, info = transformers.AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                                                 output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    model, tok = mlx_lm.load(path)
    model.set_dtype(mx.float32)
    for prompt in PROMPTS:
        ids = tok.encode(prompt)
        ours = np.array(model(mx.array([ids]))[0])
        with torch.no_grad():
            theirs = hf(torch.tensor([ids])).logits[0].numpy()
        assert theirs.shape == ours.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["Llama-3.2-1B", "TinyLlama-1.1B-Chat-v1.0", "granite-3.1-2b-base", "Qwen2.5-7B",
                                  "OLMoE-1B-7B-0924"])
def test_replica_loads_in_transformers_with_mlx_lm_logits(name):
    """The replicas are Hugging Face checkpoints too (OLMoE's experts unstacked); gpt-oss is left out: transformers
    stores its experts as fused, interleaved gate_up tensors, which the replica does not write."""
    import mlx.core as mx
    import mlx_lm

    from lazarus_bench.errors import LazarusError
    from lazarus_bench.zoo.replicas import build_replica

    try:
        path = str(build_replica(name))
    except LazarusError as exc:
        pytest.skip(f"real tokenizers unavailable: {exc}")
    hf, info = transformers.AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                                                 output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    model, tok = mlx_lm.load(path)
    model.set_dtype(mx.float32)
    ids = tok.encode(PROMPTS[0])
    ours = np.array(model(mx.array([ids]))[0])
    with torch.no_grad():
        theirs = hf(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
