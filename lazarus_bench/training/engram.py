"""Engram dual-objective models (seed 004) on a causal mlx-lm backbone with LoRA, and their clustering tests.

* M1: classification head on the masked mean of the final hidden states (real tokens only, after the
  final norm, before the unembedding): ``Linear(D, h) -> GELU -> Dropout -> Linear(h, C)``; loss CE_cls.
* M2: M1 + the backbone's own next-token loss over real tokens; loss ``w * LM + (1 - w) * CE_cls``
  (w = 0.5). The backbone is causal, so this is a real LM objective (the seed's small model put its
  "LM" head on a bidirectional encoder that could see the next token).
* M3: M2 + compressor ``Linear(D, k) -> Tanh`` on the pooled vector (the engram) and projector
  ``Linear(k, D)`` whose output is prepended as one prefix embedding. Half-batch feedback as in the
  seed's 7B code: the first half runs with a zero engram (prefix = projector bias), its engrams, not
  detached, are the prefixes of the second, unrelated half; loss = mean of both halves. The
  compressor's output therefore enters the loss and is trained (the seed's small model computed it
  and never used it, so its "engram" was a random Tanh projection; ``feedback=False`` reproduces that).

Evaluation runs M3 with a zero engram and clusters the compressor outputs (KMeans, ARI, Hungarian
cluster accuracy, within/between-class cosine); the same metrics for the compressor's initial
(untrained) weights on the same features, and for the pooled features themselves, are the controls.

The prefix enters through the decoder's ``input_embeddings`` argument (mlx-lm llama, qwen2, mixtral
... accept it), so the model keeps its own causal mask and RoPE positions (the prefix is position 0).
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from ..errors import LazarusError
from ..io import write_safetensors, write_text
from ..models import ModelHandle
from .data import Batches, Encoded
from .loop import TrainConfig, TrainResult, train_loop
from .lora import LoraSpec, apply_lora
from .textcls import TextDataset, TextExample, make_dataset

VARIANTS = ("M1", "M2", "M3")
RESULT_FILE = "engram_result.json"
WEIGHTS_FILE = "engram_weights.safetensors"
KMEANS_SEED = 42


@dataclass
class EngramConfig:
    """Settings of one engram run; defaults follow the seed's 7B recipe scaled to small backbones.

    LoRA: rank 8 on every linear of every block (mlx-lm's default keys: q, k, v, o, gate, up, down,
    the seed's PEFT targets) with scale 2.0 (the seed's alpha / r = 32 / 16); ``lora=None`` freezes
    the backbone (heads only). ``engram_dim=None`` means ``min(128, D // 4)`` (the seed: 3584 -> 128).
    ``cluster_weight`` > 0 (M3) adds a supervised clustering term on the engram (the positive control).
    """

    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=200, lr=2e-4, optimizer="adamw", weight_decay=0.01, warmup=10, schedule="cosine",
        min_lr_ratio=0.0, grad_clip=1.0, seed=42, name="engram"))
    batch_size: int = 16
    lora: LoraSpec | None = field(default_factory=lambda: LoraSpec(rank=8, scale=2.0, dropout=0.0))
    head_hidden: int = 256
    head_dropout: float = 0.1
    engram_dim: int | None = None
    lm_weight: float = 0.5
    feedback: bool = True
    cluster_weight: float = 0.0
    max_length: int = 128
    n_train: int = 400
    n_val: int = 100
    data_seed: int = 0
    eval_batch_size: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClusterMetrics:
    """How well vectors cluster by label: KMeans(k = #classes) ARI, Hungarian accuracy, cosines, purity."""

    ari: float
    cluster_accuracy: float
    cos_within: float
    cos_between: float
    purity: list[float]
    n: int
    dim: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EngramResult:
    """One trained variant: accuracy, losses, speed, and clustering of engrams and of the controls."""

    variant: str
    dataset: str
    classes: list[str]
    val_accuracy: float
    initial_val_accuracy: float
    train: TrainResult
    engram: ClusterMetrics | None
    untrained_compressor: ClusterMetrics
    pooled_features: ClusterMetrics
    engram_dim: int
    config: dict
    backbone: dict
    n_train: int
    n_val: int
    sequence_width: int

    @property
    def losses(self) -> list[float]:
        return self.train.losses

    @property
    def tokens_per_s(self) -> float:
        return self.train.tokens_per_s

    def to_dict(self) -> dict:
        return {
            "variant": self.variant, "dataset": self.dataset, "classes": self.classes,
            "val_accuracy": self.val_accuracy, "initial_val_accuracy": self.initial_val_accuracy,
            "tokens_per_s": self.tokens_per_s, "train": self.train.to_dict(),
            "engram": self.engram.to_dict() if self.engram is not None else None,
            "untrained_compressor": self.untrained_compressor.to_dict(),
            "pooled_features": self.pooled_features.to_dict(), "engram_dim": self.engram_dim,
            "config": self.config, "backbone": self.backbone, "n_train": self.n_train, "n_val": self.n_val,
            "sequence_width": self.sequence_width,
        }


def check_backbone(handle: ModelHandle, atol: float = 1e-4) -> None:
    """Raise unless the decoder takes ``input_embeddings`` and returns final-normed states (the prefix needs both)."""
    params = inspect.signature(handle.inner.__call__).parameters
    if "input_embeddings" not in params:
        raise LazarusError(
            f"engram models need a decoder that accepts input_embeddings (mlx-lm llama, qwen2, mixtral ...); "
            f"the inner model of '{handle.model_type}' does not"
        )
    ids = mx.array([[1, 2, 3, 4]]) % max(handle.vocab_size, 1)
    plain = handle.inner(ids)
    embedded = handle.inner(ids, input_embeddings=handle.embed(ids))
    logits = handle.model(ids)
    scale = float(mx.max(mx.abs(logits))) + 1.0
    if float(mx.max(mx.abs(plain - embedded))) > atol * (float(mx.max(mx.abs(plain))) + 1.0):
        raise LazarusError(f"'{handle.model_type}': input_embeddings is not the embedding lookup "
                           "(the model rescales embeddings itself); engram prefixes are unsupported")
    if float(mx.max(mx.abs(handle.unembed(plain) - logits))) > atol * scale:
        raise LazarusError(f"'{handle.model_type}': the decoder's output is not the final-normed hidden state")


def masked_mean(hidden: mx.array, valid: mx.array) -> mx.array:
    """Mean of ``hidden`` (B, T, D) over positions where ``valid`` (B, T) is 1."""
    weights = valid.astype(hidden.dtype)[..., None]
    return (hidden * weights).sum(axis=1) / mx.maximum(weights.sum(axis=1), 1.0)


def lm_loss_terms(logits: mx.array, tokens: mx.array, valid: mx.array) -> tuple[mx.array, mx.array]:
    """Summed next-token cross-entropy (position t predicts token t+1, both real) and the count of targets."""
    mask = (valid[:, 1:] * valid[:, :-1]).astype(mx.float32)
    ce = nn.losses.cross_entropy(logits[:, :-1].astype(mx.float32), tokens[:, 1:]) * mask
    return ce.sum(), mask.sum()


def make_compressor(hidden_size: int, engram_dim: int, seed: int) -> nn.Sequential:
    """The engram compressor ``Linear(D, k) -> Tanh`` with weights drawn from ``seed``."""
    mx.random.seed(seed)
    comp = nn.Sequential(nn.Linear(hidden_size, engram_dim), nn.Tanh())
    mx.eval(comp.parameters())
    return comp


class EngramModel(nn.Module):
    """Backbone (base frozen, LoRA trainable) + classification head, and for M3 compressor and projector.

    ``feedback`` (M3): whether the first half's engrams become the second half's prefixes; False is
    the seed's small-model defect (engram computed, never used, so the compressor gets no gradient).
    """

    def __init__(self, handle: ModelHandle, n_classes: int, variant: str = "M1", *, head_hidden: int = 256,
                 head_dropout: float = 0.1, engram_dim: int = 32, lm_weight: float = 0.5, feedback: bool = True,
                 cluster_weight: float = 0.0, seed: int = 0):
        super().__init__()
        if variant not in VARIANTS:
            raise LazarusError(f"unknown engram variant '{variant}' ({', '.join(VARIANTS)})")
        dim = handle.hidden_size
        self.variant, self.lm_weight, self.feedback, self.engram_dim = variant, lm_weight, feedback, engram_dim
        if cluster_weight and variant != "M3":
            raise LazarusError(f"the clustering term acts on the engram: it needs M3, not {variant}")
        self.cluster_weight = cluster_weight
        codes = np.random.default_rng([seed, 4]).choice([-0.9, 0.9], size=(n_classes, engram_dim))
        self._codes = mx.array(codes.astype(np.float32))  # one fixed engram code per class (not a parameter)
        self._handle = handle
        self.backbone = handle.model
        mx.random.seed(seed + 1)
        self.head = nn.Sequential(nn.Linear(dim, head_hidden), nn.GELU(), nn.Dropout(head_dropout),
                                  nn.Linear(head_hidden, n_classes))
        if variant == "M3":
            self.compressor = make_compressor(dim, engram_dim, seed + 2)
            mx.random.seed(seed + 3)
            self.projector = nn.Linear(engram_dim, dim)
        mx.eval(self.parameters())

    @property
    def uses_prefix(self) -> bool:
        return self.variant == "M3"

    def hidden(self, tokens: mx.array, prefix: mx.array | None = None) -> mx.array:
        """Final-normed hidden states (B, T, D) of the real token positions; ``prefix`` (B, D) sits before them."""
        handle = self._handle
        embeds = handle.embed(tokens)
        if prefix is None:
            return handle.inner(tokens, input_embeddings=embeds)
        embeds = mx.concatenate([prefix[:, None, :].astype(embeds.dtype), embeds], axis=1)
        ids = mx.concatenate([mx.zeros((tokens.shape[0], 1), dtype=tokens.dtype), tokens], axis=1)
        return handle.inner(ids, input_embeddings=embeds)[:, 1:]

    def zero_prefix(self, n: int) -> mx.array:
        """Projector output for an all-zero engram (its bias), for ``n`` examples."""
        return self.projector(mx.zeros((n, self.engram_dim)))

    def features(self, tokens: mx.array, valid: mx.array, prefix: mx.array | None = None) -> tuple[mx.array, mx.array]:
        """Hidden states and their masked mean pool (M3 with a zero engram unless ``prefix`` is given)."""
        if prefix is None and self.uses_prefix:
            prefix = self.zero_prefix(tokens.shape[0])
        hidden = self.hidden(tokens, prefix)
        return hidden, masked_mean(hidden, valid)

    def part_loss(self, tokens: mx.array, valid: mx.array, labels: mx.array,
                  prefix: mx.array | None = None) -> tuple[mx.array, dict, mx.array]:
        """Loss of one (half-)batch, its parts, and the pooled features."""
        hidden, pooled = self.features(tokens, valid, prefix)
        logits = self.head(pooled)
        cls = nn.losses.cross_entropy(logits.astype(mx.float32), labels).mean()
        parts = {"cls_loss": cls, "accuracy": (mx.argmax(logits, axis=-1) == labels).astype(mx.float32).mean()}
        if self.variant == "M1":
            return cls, parts, pooled
        total, count = lm_loss_terms(self._handle.unembed(hidden), tokens, valid)
        lm = total / mx.maximum(count, 1.0)
        parts["lm_loss"] = lm
        return self.lm_weight * lm + (1.0 - self.lm_weight) * cls, parts, pooled


def engram_loss(model: EngramModel, tokens: mx.array, valid: mx.array, labels: mx.array):
    """The training loss of ``model.variant`` (``loss_fn`` for :func:`train_loop`): (loss, real tokens, parts)."""
    ntok = valid.sum()
    if not model.uses_prefix:
        loss, parts, _ = model.part_loss(tokens, valid, labels)
        return loss, ntok, parts
    half = tokens.shape[0] // 2
    first, parts1, pooled1 = model.part_loss(tokens[:half], valid[:half], labels[:half], model.zero_prefix(half))
    engram = model.compressor(pooled1)
    prefix = model.projector(engram) if model.feedback else model.zero_prefix(tokens.shape[0] - half)
    second, parts2, _ = model.part_loss(tokens[half:], valid[half:], labels[half:], prefix)
    parts = {k: (parts1[k] + parts2[k]) / 2 for k in parts1}
    parts["engram_abs"] = mx.abs(engram).mean()
    loss = (first + second) / 2
    if model.cluster_weight:
        parts["cluster_loss"] = mx.mean(mx.square(engram - model._codes[labels[:half]]))
        loss = loss + model.cluster_weight * parts["cluster_loss"]
    return loss, ntok, parts


def hungarian_accuracy(labels: Sequence[int], clusters: Sequence[int]) -> float:
    """Share of examples whose cluster maps to their label under the best one-to-one cluster->label assignment."""
    from scipy.optimize import linear_sum_assignment

    labels, clusters = np.asarray(labels, dtype=np.int64), np.asarray(clusters, dtype=np.int64)
    size = int(max(labels.max(), clusters.max())) + 1
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (clusters, labels), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(labels))


def cosine_within_between(x: np.ndarray, labels: Sequence[int]) -> tuple[float, float]:
    """Mean cosine of L2-normalised rows over same-label pairs (diagonal excluded) and different-label pairs."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    z = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sims = z @ z.T
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    within = sims[same & off]
    between = sims[~same]
    return (float(within.mean()) if within.size else float("nan"),
            float(between.mean()) if between.size else float("nan"))


def kmeans_clusters(x: np.ndarray, n_clusters: int, seed: int = KMEANS_SEED) -> np.ndarray:
    """KMeans(k, random_state=42, n_init=10) labels of the raw vectors (as in the seed's evaluation)."""
    from sklearn.cluster import KMeans

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return KMeans(n_clusters=n_clusters, random_state=seed, n_init=10).fit_predict(np.asarray(x, np.float64))


def cluster_metrics(x: np.ndarray, labels: Sequence[int], n_classes: int, seed: int = KMEANS_SEED) -> ClusterMetrics:
    """ARI and Hungarian accuracy of KMeans clusters against the labels, cosines, and per-class purity."""
    from sklearn.metrics import adjusted_rand_score

    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    clusters = kmeans_clusters(x, n_classes, seed)
    within, between = cosine_within_between(x, labels)
    purity = [float(np.bincount(clusters[labels == c], minlength=n_classes).max() / max((labels == c).sum(), 1))
              for c in range(n_classes)]
    return ClusterMetrics(ari=float(adjusted_rand_score(labels, clusters)),
                          cluster_accuracy=hungarian_accuracy(labels, clusters), cos_within=within,
                          cos_between=between, purity=purity, n=int(len(labels)), dim=int(x.shape[1]))


@dataclass
class EncodedSet:
    """Right-padded token ids, real-token masks and labels of one split (a fixed width, so steps compile once)."""

    tokens: np.ndarray
    valid: np.ndarray
    labels: np.ndarray

    def batch(self, index: np.ndarray | slice) -> tuple[mx.array, mx.array, mx.array]:
        return mx.array(self.tokens[index]), mx.array(self.valid[index]), mx.array(self.labels[index])


def encode_texts(handle: ModelHandle, examples: Sequence[TextExample], max_length: int, width: int | None = None,
                 pad_id: int | None = None) -> EncodedSet:
    """Token ids (BOS where the tokenizer adds one, cut to ``max_length``), right-padded to ``width``."""
    ids = [handle.encode(e.text)[:max_length] for e in examples]
    width = width or max(len(r) for r in ids)
    pad = pad_id if pad_id is not None else (getattr(handle.tokenizer, "pad_token_id", None) or 0)
    tokens = np.full((len(ids), width), pad, dtype=np.int32)
    valid = np.zeros((len(ids), width), dtype=np.float32)
    for i, row in enumerate(ids):
        tokens[i, : len(row)] = row
        valid[i, : len(row)] = 1.0
    return EncodedSet(tokens, valid, np.array([e.label for e in examples], dtype=np.int32))


def extract(model: EngramModel, data: EncodedSet, batch_size: int = 64,
            baseline: nn.Module | None = None) -> dict[str, np.ndarray]:
    """Predictions, pooled features, engrams (M3, zero engram prefix) and ``baseline(pooled)`` of every example.

    Runs in eval mode (no dropout) and restores the model's mode afterwards.
    """
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {"predictions": [], "pooled": [], "engrams": [], "baseline": []}
    for start in range(0, len(data.labels), batch_size):
        tokens, valid, _ = data.batch(slice(start, start + batch_size))
        _, pooled = model.features(tokens, valid)
        outs = {"predictions": mx.argmax(model.head(pooled), axis=-1), "pooled": pooled}
        if model.uses_prefix:
            outs["engrams"] = model.compressor(pooled)
        if baseline is not None:
            outs["baseline"] = baseline(pooled)
        mx.eval(outs)
        for key, value in outs.items():
            parts[key].append(np.array(value))
    model.train(was_training)
    return {key: np.concatenate(value) for key, value in parts.items() if value}


def _has_lora(model: nn.Module) -> bool:
    return any(hasattr(m, "lora_a") for _, m in model.named_modules())


def build_engram_model(handle: ModelHandle, n_classes: int, variant: str, cfg: EngramConfig) -> EngramModel:
    """Add LoRA to a fresh handle's model (in place) and wrap it with the heads of ``variant``."""
    if variant not in VARIANTS:
        raise LazarusError(f"unknown engram variant '{variant}' ({', '.join(VARIANTS)})")
    if variant == "M3" and (cfg.batch_size < 2 or cfg.batch_size % 2):
        raise LazarusError(f"M3 splits each batch in halves: batch_size must be even, not {cfg.batch_size}")
    check_backbone(handle)
    if _has_lora(handle.model):
        raise LazarusError("the model already has LoRA layers: load a fresh handle for every engram run")
    if cfg.lora is not None:
        apply_lora(handle.model, cfg.lora, handle.n_layers, seed=cfg.train.seed)
    else:
        handle.model.freeze()
    return EngramModel(handle, n_classes, variant, head_hidden=cfg.head_hidden, head_dropout=cfg.head_dropout,
                       engram_dim=resolve_engram_dim(handle, cfg), lm_weight=cfg.lm_weight, feedback=cfg.feedback,
                       cluster_weight=cfg.cluster_weight, seed=cfg.train.seed)


def resolve_engram_dim(handle: ModelHandle, cfg: EngramConfig) -> int:
    return cfg.engram_dim or max(2, min(128, handle.hidden_size // 4))


def train_engram(
    handle: ModelHandle,
    variant: str = "M1",
    dataset: str | TextDataset = "sentiment",
    cfg: EngramConfig | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> EngramResult:
    """Train one variant on a generated data set and evaluate it; ``handle`` must be fresh (LoRA is added in place).

    With ``out_dir``: the loop's checkpoint (resumable), the trainable weights and ``engram_result.json``.
    """
    cfg = cfg or EngramConfig()
    data = dataset if isinstance(dataset, TextDataset) else make_dataset(dataset, cfg.n_train, cfg.n_val,
                                                                        cfg.data_seed)
    model = build_engram_model(handle, data.n_classes, variant, cfg)
    k = model.engram_dim
    width = max(min(len(handle.encode(e.text)), cfg.max_length) for e in data.train + data.val)
    train_set = encode_texts(handle, data.train, cfg.max_length, width)
    val_set = encode_texts(handle, data.val, cfg.max_length, width)
    order = Batches([Encoded(ids=[0], prompt_len=0)] * len(train_set.labels), cfg.batch_size, cfg.train.seed)

    def batch_at(step: int, rank: int, world: int) -> tuple[mx.array, ...]:
        return train_set.batch(order.indices(step, rank, world))

    untrained = make_compressor(handle.hidden_size, k, cfg.train.seed + 2)
    initial = extract(model, val_set, cfg.eval_batch_size)
    initial_acc = float((initial["predictions"] == val_set.labels).mean())

    def eval_fn(m: nn.Module) -> dict:
        preds = extract(m, val_set, cfg.eval_batch_size)["predictions"]
        return {"val_accuracy": float((preds == val_set.labels).mean())}

    train_cfg = TrainConfig(**{**asdict(cfg.train), "name": f"{cfg.train.name}-{variant}-{data.name}"})
    out = Path(out_dir) if out_dir is not None else None
    result = train_loop(model, engram_loss, batch_at, train_cfg, out_dir=out,
                        eval_fn=eval_fn if train_cfg.eval_every else None, progress=progress)
    final = extract(model, val_set, cfg.eval_batch_size, baseline=untrained)
    labels = val_set.labels
    engram_metrics = cluster_metrics(final["engrams"], labels, data.n_classes) if model.uses_prefix else None
    res = EngramResult(
        variant=variant, dataset=data.name, classes=list(data.classes),
        val_accuracy=float((final["predictions"] == labels).mean()), initial_val_accuracy=initial_acc,
        train=result, engram=engram_metrics,
        untrained_compressor=cluster_metrics(final["baseline"], labels, data.n_classes),
        pooled_features=cluster_metrics(final["pooled"], labels, data.n_classes),
        engram_dim=k, config=cfg.to_dict(), backbone=handle.describe(), n_train=len(data.train),
        n_val=len(data.val), sequence_width=width,
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_safetensors(out / WEIGHTS_FILE, dict(tree_flatten(model.trainable_parameters())))
        write_text(out / RESULT_FILE, json.dumps(res.to_dict(), indent=2) + "\n")
    return res
