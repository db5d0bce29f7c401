"""Real tokenizers and the replicas built on them: llama.cpp's test vectors, and what the claims feed each model.

The expected pieces and ids are the real tokenizers' (Llama-3's "7 * 8 = " ends in a lone 'Ġ' token; SentencePiece
puts a lone '▁' before digits); the vocabularies are fetched from the llama-cpp-python sdist on PyPI once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lazarus_bench.errors import LazarusError


@pytest.fixture(scope="session")
def vocab_root():
    from lazarus_bench.zoo.vocabs import fetch_vocabs

    try:
        return fetch_vocabs()
    except LazarusError as exc:
        pytest.skip(f"real tokenizers unavailable: {exc}")


@pytest.fixture(scope="session")
def replica(vocab_root):
    from lazarus_bench.models import load_model

    cache = {}

    def load(name: str):
        if name not in cache:
            from lazarus_bench.zoo.replicas import build_replica

            build_replica(name)
            cache[name] = load_model(f"replica:{name}")
        return cache[name]

    return load


@pytest.mark.parametrize("name", ["llama-bpe", "llama-spm", "qwen2", "starcoder"])
def test_tokenizer_matches_llama_cpp_vectors(vocab_root, name):
    from lazarus_bench.zoo.vocabs import check_vectors, llama_cpp_cases, load_gguf_tokenizer

    assert len(llama_cpp_cases(name)) > 40
    assert check_vectors(load_gguf_tokenizer(name), name) == []


@pytest.mark.thorough
def test_vector_check_catches_a_wrong_pre_tokenizer(vocab_root):
    """Llama-3's regex swapped for GPT-2's (numbers of any length, a space glued to them) fails llama.cpp's vectors."""
    from lazarus_bench.zoo import vocabs

    fields = vocabs.read_fields(vocab_root / "ggml-vocab-llama-bpe.gguf")
    fields["tokenizer.ggml.pre"] = "default"
    assert vocabs.check_vectors(vocabs.to_tokenizer(fields), "llama-bpe")


# name -> (prompt "7 * 8 = " ids with BOS as encode adds it, pieces of "56" after it, multiply bare / spaced, class
# token piece, layer at 55% depth)
KNOWN = {
    "Llama-3.2-1B": ([128000, 22, 353, 220, 23, 284, 220], ["56"], (["multiply"], ["Ġmultiply"]), "multiply"),
    "TinyLlama-1.1B-Chat-v1.0": ([1, 29871, 29955, 334, 29871, 29947, 353, 29871], ["5", "6"],
                                 (["multip", "ly"], ["▁multiply"]), "▁multiply"),
    "granite-3.1-2b-base": ([60, 338, 244, 61, 299, 244], ["5", "6"], (["multiply"], ["Ġmultiply"]), "multiply"),
    "Qwen2.5-7B": ([22, 353, 220, 23, 284, 220], ["5", "6"], (["multiply"], ["Ġmultiply"]), "multiply"),
    "gpt-oss-20b": ([22, 353, 220, 23, 284, 220], ["56"], (["multiply"], ["Ġmultiply"]), "multiply"),
    "OLMoE-1B-7B-0924": ([24, 475, 854, 426, 209], ["56"], (["mult", "iply"], ["Ġmultiply"]), "mult"),
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_what_the_claims_feed_each_replica(replica, name):
    """Prompt ids (lens, probes), the answer target after the prompt (GRPO, answer accuracy), the lens target word in
    both spellings (H01, H04, H11, H13), the dual-reward class token (H05, H06, H14) and an SFT row (H11-H14)."""
    from lazarus_bench.analysis.lens import target_spellings
    from lazarus_bench.training.data import Example
    from lazarus_bench.training.dual_reward import class_token_ids
    from lazarus_bench.training.sft import encoded_batches

    prompt_ids, answer, (bare, spaced), cls_piece = KNOWN[name]
    h = replica(name)
    pieces = h.tokenizer._tokenizer.convert_ids_to_tokens
    assert h.encode("7 * 8 = ") == prompt_ids
    assert pieces(h.continuation("56", after="7 * 8 = ")) == answer
    spell = target_spellings(h, "multiply")
    assert (pieces(spell["without_space"]), pieces(spell["with_space"])) == (bare, spaced)
    assert pieces([class_token_ids(h, ["multiply"])["multiply"]]) == [cls_piece]
    row = encoded_batches(h, [Example("7 * 8 = ", "56")], 1, 0, add_eos=False).rows[0]
    assert row.ids == prompt_ids + h.continuation("56", after="7 * 8 = ")
    assert row.prompt_len == len(prompt_ids)


def test_sentencepiece_bare_encode_would_target_a_lone_space(replica):
    """The bug the continuation fixes: on SentencePiece ``encode('56')[0]`` is '▁', the same for every answer."""
    h = replica("TinyLlama-1.1B-Chat-v1.0")
    lone = h.encode("56", add_special_tokens=False)[0]
    assert h.tokenizer._tokenizer.convert_ids_to_tokens([lone]) == ["▁"]
    assert h.encode("71", add_special_tokens=False)[0] == lone
    assert h.continuation("56", after="7 * 8 = ")[0] != lone


def test_replica_configs_are_the_real_ones(replica):
    from lazarus_bench.zoo.replicas import REPLICAS

    expect = {"Llama-3.2-1B": ("llama", 128256, True), "TinyLlama-1.1B-Chat-v1.0": ("llama", 32000, False),
              "granite-3.1-2b-base": ("granite", 49155, True), "Qwen2.5-7B": ("qwen2", 152064, False),
              "gpt-oss-20b": ("gpt_oss", 201088, False), "OLMoE-1B-7B-0924": ("olmoe", 50304, False)}
    for name, (model_type, vocab, tied) in expect.items():
        h = replica(name)
        assert (h.model_type, h.vocab_size, h.tied) == (model_type, vocab, tied), name
        assert h.is_moe == (model_type in ("gpt_oss", "olmoe")), name
        assert h.tokenizer._tokenizer.get_vocab()  # loaded through mlx_lm with the lens check passed
    assert set(expect) | {"Llama-3.2-1B-Instruct"} == set(REPLICAS)
    config = json.loads((Path(replica("Llama-3.2-1B").path) / "config.json").read_text())
    assert config["rope_scaling"]["rope_type"] == "llama3" and config["tie_word_embeddings"] is True


def test_chat_templates_render_the_real_formats(replica):
    from lazarus_bench.tokenization import audit

    llama = audit(replica("Llama-3.2-1B-Instruct"))["chat"]
    assert llama["rendered"].startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
    assert llama["rendered"].endswith("What is 7 * 8?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert llama["bos_doubled_by_encode"] is True  # the template writes BOS itself: encode it without special tokens
    tiny = audit(replica("TinyLlama-1.1B-Chat-v1.0"))["chat"]
    assert tiny["rendered"] == "<|user|>\nWhat is 7 * 8?</s>\n<|assistant|>\n"
    oss = audit(replica("gpt-oss-20b"))["chat"]
    assert oss["rendered"].endswith("<|start|>user<|message|>What is 7 * 8?<|end|><|start|>assistant")
    assert "<|start|>" in oss["pieces"] and "<|message|>" in oss["pieces"]


def test_audit_reaches_the_record_and_the_report(replica, tmp_path):
    from lazarus_bench.harness.registry import get_claim
    from lazarus_bench.suite.report import read_all, render
    from lazarus_bench.suite.runner import run_claim

    replica("TinyLlama-1.1B-Chat-v1.0")
    record = run_claim(get_claim("H02"), "replica:TinyLlama-1.1B-Chat-v1.0", tier="fast", report_dir=tmp_path)
    assert record.status == "ok", record.reason
    audit = record.tokenization
    assert audit["bos_added"] and audit["prompt"]["pieces"][:3] == ["<s>", "▁", "7"]
    assert audit["answer"]["pieces"] == ["5", "6"] and audit["answer"]["bare_encode_pieces"] == ["▁", "5", "6"]
    text = read_all(render(tmp_path).parent)
    section = text.split("## Tokenization audit", 1)[1].split("\n## ", 1)[0]
    assert "replica:TinyLlama-1.1B-Chat-v1.0" in section and "`▁ 5 6`" in section and "<s> added" in section


def test_decoded_tokens_keep_their_sentencepiece_space(replica):
    """The lens prints tokens as the text they add: '▁multiply' is ' multiply' and a lone '▁' is ' ' (a bare
    decode([id]) gave 'multiply' and ''); on the zoo's byte-level BPE it is decode([id]) for every token."""
    from lazarus_bench.models import load_model

    h = replica("TinyLlama-1.1B-Chat-v1.0")
    spaced = h.continuation(" multiply", after="\n")
    assert [h.decode_token(i) for i in (29871, *spaced, 1, 13)] == [" ", " multiply", "<s>", "\n"]
    zoo = load_model("zoo:base")
    tok = zoo.tokenizer._tokenizer
    assert all(zoo.decode_token(i) == tok.decode([i]) for i in range(zoo.vocab_size))
