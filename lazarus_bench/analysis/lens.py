"""Logit lens over every layer from one forward pass: top-k, target-word probabilities, rank, entropy, KL.

A target word is measured in both spellings ("multiply" and " multiply"), separately and summed,
by its first-token probability and by its teacher-forced full-word probability (the product of
the lens probabilities of each of its tokens, fed the previous ones).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import mlx.core as mx
import numpy as np

from ..errors import LazarusError
from ..models import ModelHandle

EMB = "emb"
SPELLINGS = ("without_space", "with_space")


@dataclass
class Spelling:
    """One spelling of a target word and its per-layer lens statistics at the prediction position (``rank`` is the
    first piece's for a word of several tokens; ``full_prob`` is the teacher-forced whole word)."""

    text: str
    ids: list[int]
    first_prob: np.ndarray
    full_prob: np.ndarray
    rank: np.ndarray
    pieces: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "ids": self.ids,
            "pieces": self.pieces,
            "rank_of": "the token" if len(self.ids) == 1 else "the first piece",
            "first_prob": self.first_prob.tolist(),
            "full_prob": self.full_prob.tolist(),
            "rank": self.rank.astype(int).tolist(),
        }


@dataclass
class TargetLens:
    """A word in both spellings; the sums add the two spellings' probabilities."""

    word: str
    spellings: dict[str, Spelling]

    @property
    def first_prob_sum(self) -> np.ndarray:
        return sum(s.first_prob for s in self._distinct())

    @property
    def full_prob_sum(self) -> np.ndarray:
        return sum(s.full_prob for s in self._distinct())

    def _distinct(self) -> list[Spelling]:
        seen, out = set(), []
        for s in self.spellings.values():
            if tuple(s.ids) not in seen:
                seen.add(tuple(s.ids))
                out.append(s)
        return out

    def to_dict(self) -> dict:
        return {
            "word": self.word,
            "spellings": {k: v.to_dict() for k, v in self.spellings.items()},
            "first_prob_sum": self.first_prob_sum.tolist(),
            "full_prob_sum": self.full_prob_sum.tolist(),
        }


@dataclass
class PromptLens:
    """Lens of one prompt: rows are layers (``emb`` then blocks 0..L-1), columns are positions."""

    prompt: str
    token_ids: list[int]
    tokens: list[str]
    layers: list
    positions: list[int]
    top: list[list[list[tuple[str, int, float]]]]
    entropy: np.ndarray
    kl_to_final: np.ndarray
    targets: dict[str, TargetLens] = field(default_factory=dict)

    def row(self, layer: int | str) -> int:
        """Row index of a layer label (block index or ``"emb"``)."""
        return self.layers.index(layer)

    def to_dict(self) -> dict:
        return {
            "prompt": self.prompt,
            "token_ids": self.token_ids,
            "tokens": self.tokens,
            "layers": self.layers,
            "positions": self.positions,
            "top": [[[{"token": t, "id": i, "prob": p} for t, i, p in pos] for pos in row] for row in self.top],
            "entropy": self.entropy.tolist(),
            "kl_to_final": self.kl_to_final.tolist(),
            "targets": {k: v.to_dict() for k, v in self.targets.items()},
        }


def resolve_layers(handle: ModelHandle, layers: Sequence[int | str] | None, include_embeddings: bool = True) -> list:
    """Validated layer labels in depth order; None means the embedding output and every block."""
    if layers is None:
        return ([EMB] if include_embeddings else []) + list(range(handle.n_layers))
    if isinstance(layers, (str, int)) or not len(layers):
        raise LazarusError(f"layers must be a non-empty list of block indices and/or '{EMB}', got {layers!r}")
    out = []
    for layer in layers:
        if layer == EMB:
            out.append(EMB)
            continue
        try:
            index = int(layer)
        except (TypeError, ValueError):
            raise LazarusError(f"layer '{layer}' is not a block index or '{EMB}'") from None
        if not 0 <= index < handle.n_layers:
            raise LazarusError(f"layer {index} out of range: this model has blocks 0..{handle.n_layers - 1}")
        out.append(index)
    return sorted(set(out), key=lambda x: -1 if x == EMB else x)


WORD_CONTEXT = "\n"  # spellings are read as continuations of a line break: SentencePiece's bare encode adds a '▁'


def target_spellings(handle: ModelHandle, word: str) -> dict[str, list[int]]:
    """Token ids of a word without and with a leading space as it continues a text (see ``continuation``); a word the
    tokenizer cannot spell is an error."""
    bare = word.strip()
    if not bare:
        raise LazarusError("empty target word")
    unk = getattr(handle.hf_tokenizer, "unk_token_id", None)
    out = {}
    for key, text in zip(SPELLINGS, (bare, " " + bare)):
        ids = handle.continuation(text, after=WORD_CONTEXT)
        if not ids or (unk is not None and unk in ids):
            raise LazarusError(f"target word '{bare}' is not in the vocabulary (spelling {text!r} gives {ids})")
        out[key] = ids
    if all(len(ids) > 1 for ids in out.values()) and (handle.model_id, bare) not in _WARNED:
        _WARNED.add((handle.model_id, bare))
        pieces = {text: [handle.decode_token(i) for i in ids] for text, ids in zip((bare, " " + bare), out.values())}
        warnings.warn(f"target word '{bare}' is not a single token in {handle.model_id} in either spelling "
                      f"({'; '.join(f'{t!r} -> {p}' for t, p in pieces.items())}): its probability is the teacher-"
                      "forced full word, its rank is the first piece's", stacklevel=2)
    return out


_WARNED: set[tuple[str, str]] = set()


def _depth(handle: ModelHandle, layer: int | str) -> int:
    return 0 if layer == EMB else int(layer) + 1


@mx.compile
def _shifted_exp(x: mx.array, shift: mx.array) -> mx.array:
    return mx.exp(x - shift)


def log_softmax(logits: mx.array) -> mx.array:
    """``logits - logsumexp(logits)`` over the last axis, with MLX's CPU LogSumExp spelled out (max, exp of the
    shifted logits, a sequential sum, log) so that the exp runs in one fused kernel the JIT vectorizes, ~5x faster.
    On the Linux CPU wheel this is LogSumExp's own arithmetic in its own order, so the bits are the same."""
    top = mx.max(logits, axis=-1, keepdims=True)
    total = mx.sum(_shifted_exp(logits, top), axis=-1, keepdims=True)
    return logits - mx.where(mx.isinf(top), top, mx.log(total) + top)


@mx.compile
def _probs_and_terms(lp: mx.array, final_lp: mx.array, final_p: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    """Lens probabilities and the summands of entropy and KL to the final layer, in one fused kernel."""
    p = mx.exp(lp)
    return p, p * lp, final_p * (final_lp - lp)


def _log_probs(handle: ModelHandle, hidden: mx.array) -> mx.array:
    return log_softmax(handle.lens_logits(hidden).astype(mx.float32))


def logit_lens(
    handle: ModelHandle,
    prompts: Sequence[str],
    targets: Sequence[str] = (),
    *,
    layers: Sequence[int | str] | None = None,
    top_k: int = 5,
    all_positions: bool = False,
    add_special_tokens: bool = True,
) -> list[PromptLens]:
    """Logit lens of each prompt at every requested layer (last position unless ``all_positions``).

    Prompts are batched in groups of equal token length (no padding, so no padding errors).
    Target statistics are taken at the last position, where the next token is predicted.
    """
    if not prompts:
        raise LazarusError("no prompts given")
    if top_k > handle.vocab_size:
        raise LazarusError(f"top_k = {top_k} exceeds the vocabulary of {handle.vocab_size:,} tokens")
    labels = resolve_layers(handle, layers)
    spellings = {w.strip(): target_spellings(handle, w) for w in targets}
    encoded = [handle.encode(p, add_special_tokens=add_special_tokens) for p in prompts]
    groups: dict[int, list[int]] = defaultdict(list)
    for i, ids in enumerate(encoded):
        groups[len(ids)].append(i)
    results: list[PromptLens | None] = [None] * len(prompts)
    for length, members in groups.items():
        batch = mx.array([encoded[i] for i in members])
        for j, lens in zip(members, _lens_batch(handle, batch, labels, top_k, all_positions, spellings)):
            lens.prompt = prompts[j]
            results[j] = lens
    return results  # type: ignore[return-value]


def top_k_indices(scores: mx.array, k: int) -> mx.array:
    """Indices of the ``k`` largest scores along the last axis, largest first: a partition and a sort of k, not a
    sort of the whole vocabulary (10x faster at 1,024 tokens, more at 128k)."""
    part = mx.argpartition(-scores, kth=k - 1, axis=-1)[..., :k] if k < scores.shape[-1] else mx.argsort(-scores)
    order = mx.argsort(-mx.take_along_axis(scores, part, axis=-1), axis=-1)
    return mx.take_along_axis(part, order, axis=-1)


def _lens_batch(handle, batch, labels, top_k, all_positions, spellings) -> list[PromptLens]:
    n, length = batch.shape
    positions = list(range(length)) if all_positions else [length - 1]
    capture = handle.forward(batch)
    final_lp = _log_probs(handle, capture.hidden[-1][:, positions])
    final_p = mx.exp(final_lp)
    tops, entropies, kls = [], [], []
    first = {w: {k: [] for k in s} for w, s in spellings.items()}
    ranks = {w: {k: [] for k in s} for w, s in spellings.items()}
    for layer in labels:
        lp = _log_probs(handle, capture.hidden[_depth(handle, layer)][:, positions])
        p, p_log_p, kl_terms = _probs_and_terms(lp, final_lp, final_p)
        entropies.append(-mx.sum(p_log_p, axis=-1))
        kls.append(mx.sum(kl_terms, axis=-1))
        k = min(top_k, lp.shape[-1])
        idx = top_k_indices(lp, k)
        tops.append((idx, mx.take_along_axis(p, idx, axis=-1)))
        last = lp[:, -1]
        for word, forms in spellings.items():
            for key, ids in forms.items():
                target_lp = last[:, ids[0]]
                first[word][key].append(mx.exp(target_lp))
                ranks[word][key].append(mx.sum(last > target_lp[:, None], axis=-1) + 1)
    mx.eval(entropies, kls, tops, first, ranks)
    full = _full_word_probs(handle, batch, labels, spellings, first)
    ent = np.stack([np.array(e) for e in entropies], axis=0)
    kl = np.maximum(np.stack([np.array(x) for x in kls], axis=0), 0.0)
    # one conversion per layer, not per prompt: per-prompt slices of MLX arrays cost more than the forward pass
    tops_np = [(np.array(idx), np.array(probs)) for idx, probs in tops]
    first_np = {w: {k: np.stack([np.array(v) for v in vs]) for k, vs in f.items()} for w, f in first.items()}
    ranks_np = {w: {k: np.stack([np.array(v) for v in vs]) for k, vs in f.items()} for w, f in ranks.items()}
    batch_ids = np.array(batch).tolist()
    vocab: dict[int, str] = {}

    def text(t: int) -> str:
        if t not in vocab:
            vocab[t] = handle.decode_token(t)
        return vocab[t]

    out = []
    for b in range(n):
        ids = batch_ids[b]
        top_rows = [[[(text(t), t, q) for t, q in zip(idx_np[b, pi].tolist(), p_np[b, pi].tolist())]
                     for pi in range(len(positions))] for idx_np, p_np in tops_np]
        target_results = {}
        for word, forms in spellings.items():
            target_results[word] = TargetLens(
                word=word,
                spellings={
                    key: Spelling(
                        text=(" " if key == "with_space" else "") + word,
                        ids=forms[key],
                        first_prob=first_np[word][key][:, b].astype(np.float64),
                        full_prob=full[word][key][:, b],
                        rank=ranks_np[word][key][:, b].astype(np.int64),
                        pieces=[handle.decode_token(i) for i in forms[key]],
                    )
                    for key in forms
                },
            )
        out.append(
            PromptLens(
                prompt="",
                token_ids=ids,
                tokens=[text(t) for t in ids],
                layers=list(labels),
                positions=positions,
                top=top_rows,
                entropy=ent[:, b],
                kl_to_final=kl[:, b],
                targets=target_results,
            )
        )
    return out


def _full_word_probs(handle, batch, labels, spellings, first) -> dict:
    """Teacher-forced probability of each spelling's full token sequence, per layer: (n_layers, batch)."""
    full: dict = {w: {} for w in spellings}
    length = batch.shape[1]
    for word, forms in spellings.items():
        for key, ids in forms.items():
            if len(ids) == 1:
                full[word][key] = np.stack([np.array(v) for v in first[word][key]], axis=0)
                continue
            extended = mx.concatenate(
                [batch, mx.broadcast_to(mx.array(ids[:-1]), (batch.shape[0], len(ids) - 1))], axis=1
            )
            capture = handle.forward(extended)
            positions = list(range(length - 1, length - 1 + len(ids)))
            rows = []
            for layer in labels:
                lp = _log_probs(handle, capture.hidden[_depth(handle, layer)][:, positions])
                picked = mx.take_along_axis(
                    lp, mx.broadcast_to(mx.array(ids)[None, :, None], (lp.shape[0], len(ids), 1)), axis=-1
                )
                rows.append(mx.exp(mx.sum(picked[..., 0], axis=-1)))
            mx.eval(rows)
            full[word][key] = np.stack([np.array(r) for r in rows], axis=0)
    return full
