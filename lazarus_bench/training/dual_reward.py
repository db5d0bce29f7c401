"""Dual-reward training (seed 002): a lens-classification loss at a middle layer plus the answer loss.

loss = w * CE(lens logits at block int(0.55 L), last prompt position, operation word)
     + (1 - w) * shifted next-token CE on the answer tokens.

``protocol="original"`` reproduces the writeup's code for ablation (seed-methods.md section 4 and
section 12 items 1, 2 and 10): unshifted answer loss, plain SGD, classification at the last answer
token, no BOS in training, batch size 1, LoRA scale 2 (alpha 16 / rank 8), and training data that
contains the evaluation prompts. Every other choice is shared, so the two differ exactly there.
``protocol="corrected+<defect>"`` adds one of those defects alone (the one-factor ablation).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import mlx.core as mx
import mlx.nn as nn

from .. import options
from .. import prompts as prompt_sets
from ..analysis.generate import answer_accuracy
from ..models import ModelHandle
from ..protocols import ORIGINAL_DIFFERENCES, PROTOCOLS, protocol_defects  # noqa: F401
from .data import Example, arithmetic_examples, assert_disjoint, class_token_ids
from .loop import TrainConfig, TrainResult, train_loop
from .lora import VO, LoraSpec, apply_lora, save_adapter
from .sft import encoded_batches


@dataclass
class DualRewardConfig:
    """Dual-reward settings; ``for_protocol`` fills in the original code's choices."""

    protocol: str = "corrected"
    cls_weight: float = 0.4
    layer_fraction: float = 0.55
    lora: LoraSpec = field(default_factory=lambda: LoraSpec(rank=8, scale=20.0, keys=VO))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=500, lr=5e-4, optimizer="adamw",
                                                                   grad_clip=1.0, name="dual-reward"))
    batch_size: int = 8
    n_train: int = 2000
    data_seed: int = 42
    ops: tuple[str, ...] = ("*", "+", "-", "/")
    mul_range: tuple[int, int] = (1, 12)
    add_range: tuple[int, int] = (0, 99)

    def __post_init__(self) -> None:
        options.check(options.OPTIONS, "cls_weight", self.cls_weight, owner="dual reward: ")
        options.check(options.OPTIONS, "batch_size", self.batch_size, owner="dual reward: ")

    @property
    def defects(self) -> frozenset[str]:
        return protocol_defects(self.protocol)

    @classmethod
    def for_protocol(cls, protocol: str, **overrides) -> "DualRewardConfig":
        cfg = cls(protocol=protocol)
        defects = cfg.defects
        if "batch_size" in defects:
            cfg = replace(cfg, batch_size=1)
        if "lora_scale" in defects:
            cfg = replace(cfg, lora=LoraSpec(rank=8, scale=2.0, keys=VO))
        if "optimizer" in defects:
            cfg = replace(cfg, train=replace(cfg.train, lr=1e-3, optimizer="sgd", grad_clip=None))
        return replace(cfg, **overrides)


def make_loss(handle: ModelHandle, cfg: DualRewardConfig):
    """The dual-reward loss over a padded batch; returns (loss, tokens, {cls_loss, answer_loss})."""
    depth = handle.layer_at_depth(cfg.layer_fraction) + 1
    w = cfg.cls_weight
    unshifted = "answer_loss" in cfg.defects
    at_answer = "classification_position" in cfg.defects

    def loss_fn(model, inputs, targets, mask, valid, last_prompt, last_token, labels):
        full = mx.concatenate([inputs, targets[:, -1:]], axis=1)
        capture = handle.forward(full)
        logits = capture.logits.astype(mx.float32)
        answer_ce = nn.losses.cross_entropy(logits[:, 1:] if unshifted else logits[:, :-1], targets) * mask
        position = last_token + 1 if at_answer else last_prompt
        answer = answer_ce.sum() / mx.maximum(mask.sum(), 1.0)
        rows = mx.arange(full.shape[0])
        hidden = capture.hidden[depth][rows, position]
        cls = nn.losses.cross_entropy(handle.lens_logits(hidden).astype(mx.float32), labels).mean()
        return w * cls + (1 - w) * answer, valid.sum(), {"cls_loss": cls, "answer_loss": answer}

    return loss_fn


@dataclass
class ClassifierEval:
    """Lens at the classification layer on evaluation prompts: restricted argmax over the class words."""

    layer: int
    correct: int
    n: int
    restricted_prob: list[float]
    vocab_prob: list[float]
    predicted: list[str]
    labels: list[str]

    @property
    def mean_restricted_prob(self) -> float:
        return sum(self.restricted_prob) / max(self.n, 1)

    @property
    def mean_vocab_prob(self) -> float:
        return sum(self.vocab_prob) / max(self.n, 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "mean_restricted_prob": self.mean_restricted_prob,
                "mean_vocab_prob": self.mean_vocab_prob}


def evaluate_classifier(handle: ModelHandle, prompt_texts: Sequence[str], labels: Sequence[str],
                        words: Sequence[str] | None = None, layer_fraction: float = 0.55) -> ClassifierEval:
    """Encode with BOS; lens logits at block int(fraction L), last prompt position; argmax over the class ids.

    ``restricted_prob`` is the softmax over the class ids only (the writeup's "Prob" column);
    ``vocab_prob`` is the full-vocabulary probability of the true class's id.
    """
    words = list(words or prompt_sets.operation_words())
    ids = class_token_ids(handle, words)
    layer = handle.layer_at_depth(layer_fraction)
    id_list = mx.array([ids[w] for w in words])
    out = ClassifierEval(layer=layer, correct=0, n=len(prompt_texts), restricted_prob=[], vocab_prob=[],
                         predicted=[], labels=list(labels))
    for text, label in zip(prompt_texts, labels):
        capture = handle.forward(mx.array([handle.encode(text)]))
        logits = handle.lens_logits(capture.hidden[layer + 1][0, -1]).astype(mx.float32)
        vocab = mx.softmax(logits)
        restricted = mx.softmax(logits[id_list])
        best = int(mx.argmax(restricted).item())
        out.predicted.append(words[best])
        out.correct += int(words[best] == label)
        out.restricted_prob.append(float(restricted[words.index(label)].item()))
        out.vocab_prob.append(float(vocab[ids[label]].item()))
    return out


@dataclass
class DualRewardResult:
    protocol: str
    train: TrainResult
    before: dict
    after: dict
    adapter_path: str | None
    config: dict

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "train": self.train.to_dict(), "before": self.before,
                "after": self.after, "adapter_path": self.adapter_path, "config": self.config}


def training_examples(cfg: DualRewardConfig) -> list[Example]:
    """Seeded arithmetic examples; the corrected protocol excludes every evaluation prompt (those of the answers
    too)."""
    eval_texts = prompt_sets.dual_reward_extended().texts()
    leak = "eval_prompts_in_training" in cfg.defects
    examples = arithmetic_examples(cfg.n_train, cfg.data_seed, cfg.ops, mul_range=cfg.mul_range,
                                   add_range=cfg.add_range, exclude=() if leak else eval_texts)
    if not leak:
        assert_disjoint(examples, eval_texts)
    return examples


def snapshot(handle: ModelHandle, cfg: DualRewardConfig) -> dict:
    """Classifier metrics on the 8 dual-reward evaluation prompts (as the writeup read them); answer accuracy on 96
    of their form, those 8 first (on 8, a seed's accuracy moves in steps of 12.5 points)."""
    evalset, answerset = prompt_sets.dual_reward_eval(), prompt_sets.dual_reward_extended()
    cls = evaluate_classifier(handle, evalset.texts(), evalset.labels(), layer_fraction=cfg.layer_fraction)
    answers = answer_accuracy(handle, answerset.texts(), answerset.answers())
    return {"classifier": cls.to_dict(), "answers": answers.to_dict()}


def train_dual_reward(
    handle: ModelHandle,
    cfg: DualRewardConfig | None = None,
    *,
    examples: Sequence[Example] | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> DualRewardResult:
    """Train LoRA adapters with the dual-reward loss in place; evaluate before and after."""
    cfg = cfg or DualRewardConfig()
    examples = list(examples) if examples is not None else training_examples(cfg)
    before = snapshot(handle, cfg)
    words = prompt_sets.operation_words()
    label_ids = class_token_ids(handle, words)
    adapter_config = apply_lora(handle.model, cfg.lora, handle.n_layers, seed=cfg.train.seed)
    batches = encoded_batches(handle, examples, cfg.batch_size, cfg.train.seed,
                              add_bos="bos_in_training" not in cfg.defects, add_eos=False, label_ids=label_ids)
    out = Path(out_dir) if out_dir is not None else None
    extra = {"lazarus": {"method": "dual-reward", "config": asdict(cfg)}}
    save = (lambda step, model: str(save_adapter(model, out / f"step_{step}", adapter_config, extra))) if out else None
    result = train_loop(handle.model, make_loss(handle, cfg), batches, cfg.train, out_dir=out, save_fn=save,
                        progress=progress)
    path = str(save_adapter(handle.model, out, adapter_config, extra)) if out is not None else None
    return DualRewardResult(protocol=cfg.protocol, train=result, before=before, after=snapshot(handle, cfg),
                            adapter_path=path, config=asdict(cfg))
