"""Tokenization audit: what the claims feed a model and read from it, on its own tokenizer (every record carries it).

Real tokenizers differ exactly where the writeups' bugs were: a separate trailing-space token, a lone SentencePiece
'▁' before digits, BOS added or not, multi-piece target words, the chat template.
"""

from __future__ import annotations

import hashlib

from . import prompts
from .analysis.lens import WORD_CONTEXT
from .errors import LazarusError
from .models import ModelHandle

PROMPT = "7 * 8 = "
ANSWER = "56"
QUESTION = "What is 7 * 8?"


def _pieces(handle: ModelHandle, ids: list[int]) -> list[str]:
    tok = handle.hf_tokenizer
    return list(tok.convert_ids_to_tokens(ids))


def _word(handle: ModelHandle, word: str) -> dict:
    out = {}
    for key, text in (("bare", word), ("spaced", " " + word)):
        ids = handle.continuation(text, after=WORD_CONTEXT)
        out[key] = _pieces(handle, ids)
    return out


def _chat(handle: ModelHandle) -> dict:
    tok = handle.hf_tokenizer
    template = getattr(tok, "chat_template", None)
    if not template:
        return {"template": None}
    try:
        rendered = tok.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True,
                                           tokenize=False)
    except Exception as exc:  # noqa: BLE001  (a template that does not render is what the audit reports)
        return {"template": hashlib.sha256(template.encode()).hexdigest()[:12], "error": f"{type(exc).__name__}: {exc}"}
    ids = handle.encode(rendered, add_special_tokens=False)
    bos = getattr(tok, "bos_token_id", None)
    doubled = bos is not None and handle.encode(rendered)[:2] == [bos, bos]
    return {"template": hashlib.sha256(template.encode()).hexdigest()[:12], "rendered": rendered,
            "pieces": _pieces(handle, ids), "bos_doubled_by_encode": doubled}


def audit(handle: ModelHandle) -> dict:
    """Pieces of the arithmetic prompt and its answer, of every operation and remain-family word in both spellings,
    whether BOS is added, and the chat prompt the template renders."""
    tok = handle.hf_tokenizer
    ids = handle.encode(PROMPT)
    bos = getattr(tok, "bos_token_id", None)
    words = {}
    for word in (*prompts.operation_words(), *prompts.remain_family()):
        try:
            words[word] = _word(handle, word)
        except LazarusError as exc:
            words[word] = {"error": str(exc)}
    answer = handle.continuation(ANSWER, after=PROMPT)
    return {
        "bos_added": bos is not None and bool(ids) and ids[0] == bos,
        "bos_token": getattr(tok, "bos_token", None),
        "prompt": {"text": PROMPT, "ids": ids, "pieces": _pieces(handle, ids)},
        "answer": {"text": ANSWER, "after": PROMPT, "ids": answer, "pieces": _pieces(handle, answer),
                   "bare_encode_pieces": _pieces(handle, handle.encode(ANSWER, add_special_tokens=False))},
        "words": words,
        "chat": _chat(handle),
    }
