"""Byte-level BPE tokenizer for the model zoo (trained with Hugging Face ``tokenizers``).

Properties (checked by :func:`check_tokenizer`, which fails loudly):

* digits tokenise one per token (``Digits(individual_digits=True)`` before ``ByteLevel``);
* every operation word of :data:`lazarus_bench.zoo.corpus.OPERATION_WORDS` is a single token both
  with and without a leading space;
* ``encode(text)`` prepends ``<|bos|>`` by default (like Llama-3); ``<|end|>`` is EOS and ends
  documents and assistant answers;
* the chat template (Jinja, in ``tokenizer_config.json``) is
  ``<|bos|><|user|>QUESTION<|assistant|>ANSWER<|end|>``.

Saved in Hugging Face layout (``tokenizer.json`` + ``tokenizer_config.json`` +
``special_tokens_map.json``) so ``transformers.AutoTokenizer`` and ``mlx_lm.load`` load it offline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from .corpus import OPERATION_WORDS, tokenizer_training_text

BOS = "<|bos|>"
EOS = "<|end|>"
PAD = "<|pad|>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
SYSTEM = "<|system|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, USER, ASSISTANT, SYSTEM]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|>{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}<|user|>{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}<|assistant|>{{ message['content'] }}<|end|>"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

DEFAULT_VOCAB_SIZE = 1024


class TokenizerCheckError(RuntimeError):
    pass


def chat_prompt(question: str) -> str:
    """The rendered chat prompt for one user question (what ``apply_chat_template`` gives with
    ``add_generation_prompt=True``), without the BOS token."""
    return f"{USER}{question}{ASSISTANT}"


def build_tokenizer(seed: int = 0, vocab_size: int = DEFAULT_VOCAB_SIZE,
                    texts: list[str] | None = None) -> Tokenizer:
    """Train the byte-level BPE on the zoo corpus for ``seed`` and check its properties."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts if texts is not None else tokenizer_training_text(seed),
                            trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    check_tokenizer(tok)
    return tok


def check_tokenizer(tok) -> None:
    """Raise :class:`TokenizerCheckError` unless the zoo's tokenizer properties hold.

    ``tok`` is a ``tokenizers.Tokenizer`` or a transformers tokenizer."""

    def ids(text: str) -> list[int]:
        if isinstance(tok, Tokenizer):
            return tok.encode(text, add_special_tokens=False).ids
        return tok.encode(text, add_special_tokens=False)

    bad = []
    for w in OPERATION_WORDS:
        for v in (w, " " + w):
            if len(ids(v)) != 1:
                bad.append(repr(v))
    if bad:
        raise TokenizerCheckError(f"operation words are not single tokens: {', '.join(bad)}")
    for text in ("0123456789", "7 * 8 = 56", "100 - 43 = 57"):
        digits = sum(ch.isdigit() for ch in text)
        pieces = ids(text)
        if isinstance(tok, Tokenizer):
            toks = [tok.id_to_token(i) for i in pieces]
        else:
            toks = tok.convert_ids_to_tokens(pieces)
        if sum(1 for t in toks if any(c.isdigit() for c in t)) != digits or any(
                sum(c.isdigit() for c in t) > 1 for t in toks):
            raise TokenizerCheckError(f"digits are not one per token in {text!r}: {toks}")


def tokenizer_config() -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": None,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 2048,
        "chat_template": CHAT_TEMPLATE,
        "additional_special_tokens": [USER, ASSISTANT, SYSTEM],
    }


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_tokenizer(tok: Tokenizer, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "tokenizer.json.tmp"
    tok.save(str(tmp))
    os.replace(tmp, out / "tokenizer.json")
    _atomic_write_text(out / "tokenizer_config.json", json.dumps(tokenizer_config(), indent=2))
    _atomic_write_text(out / "special_tokens_map.json", json.dumps(
        {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD,
         "additional_special_tokens": [USER, ASSISTANT, SYSTEM]}, indent=2))
    return [out / "tokenizer.json", out / "tokenizer_config.json", out / "special_tokens_map.json"]


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """The raw ``tokenizers.Tokenizer`` from a directory (or a ``tokenizer.json`` file)."""
    p = Path(path)
    return Tokenizer.from_file(str(p / "tokenizer.json" if p.is_dir() else p))


def load_hf_tokenizer(path: str | os.PathLike):
    """The ``transformers`` tokenizer (offline)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
