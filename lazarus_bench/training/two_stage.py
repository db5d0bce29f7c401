"""Two-stage training (seed 003): SFT, fuse the adapter, then a light dual-reward LoRA on the fused model.

The writeup's stage 2 at a very low learning rate kept computation; its "Experiment 1" settings
(w 0.2, 200 steps, lr 1e-4, rank 32) destroyed it. Both are configurations here; metrics are taken
at baseline, after stage 1 and after stage 2 with the correct (causal, real-unembedding) lens.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

from .. import prompts as prompt_sets
from ..analysis.generate import answer_accuracy
from ..analysis.lens import logit_lens
from ..models import ModelHandle, save_model
from .data import arithmetic_examples, assert_disjoint
from .dual_reward import DualRewardConfig, train_dual_reward
from .loop import TrainConfig
from .lora import VO, LoraSpec, fuse_lora
from .sft import SFTConfig, train_sft

TWO_STAGE_OPS = ("*", "+", "-")


def _stage1() -> SFTConfig:
    return SFTConfig(train=TrainConfig(steps=500, lr=2e-4, optimizer="adam", grad_clip=None, name="stage1-sft"),
                     batch_size=4, lora=LoraSpec(rank=16, scale=2.0))


def _stage2() -> DualRewardConfig:
    return DualRewardConfig(cls_weight=0.5, lora=LoraSpec(rank=8, scale=2.0, keys=VO), ops=TWO_STAGE_OPS,
                            train=TrainConfig(steps=500, lr=5e-5, optimizer="adamw", grad_clip=1.0, name="stage2-dual"))


@dataclass
class TwoStageConfig:
    """Stage 1 SFT and stage 2 dual-reward settings; ``aggressive()`` is the writeup's Experiment 1."""

    stage1: SFTConfig = field(default_factory=_stage1)
    stage2: DualRewardConfig = field(default_factory=_stage2)
    n_train: int = 4500
    data_seed: int = 42
    mul_range: tuple[int, int] = (2, 12)
    add_range: tuple[int, int] = (1, 50)

    @classmethod
    def aggressive(cls) -> "TwoStageConfig":
        cfg = cls()
        stage2 = replace(cfg.stage2, cls_weight=0.2, lora=replace(cfg.stage2.lora, rank=32),
                         train=replace(cfg.stage2.train, steps=200, lr=1e-4))
        return replace(cfg, stage2=stage2)

    def scaled(self, stage1_steps: int, stage2_steps: int) -> "TwoStageConfig":
        """The same configuration with other step counts (for fast tiers)."""
        return replace(self, stage1=replace(self.stage1, train=replace(self.stage1.train, steps=stage1_steps)),
                       stage2=replace(self.stage2, train=replace(self.stage2.train, steps=stage2_steps)))


def eval_prompt_texts() -> list[str]:
    """Every prompt the stages are evaluated on: kept out of the training data."""
    return (prompt_sets.two_stage_eval().texts() + prompt_sets.two_stage_extra().texts()
            + prompt_sets.dual_reward_eval().texts())


def stage_metrics(handle: ModelHandle) -> dict:
    """Symbolic and semantic answer accuracy, and the classifier probability, on seed 003's prompts; ``*_all``
    adds the 20 + 20 generated prompts of ``two_stage_extra`` (24 per category) for resolution.

    Classifier = per symbolic prompt, the maximum over layers of the lens probability of its class
    words (seed 003's vocabulary, both spellings of each word summed), averaged over prompts.
    """
    symbolic = prompt_sets.two_stage_eval("symbolic")
    semantic = prompt_sets.two_stage_eval("semantic")
    extra = prompt_sets.two_stage_extra()
    vocab = prompt_sets.task_vocabulary("seed003")
    words = sorted({w for label in set(symbolic.labels()) for w in vocab.for_label(label) if w.isalpha()})
    lens = logit_lens(handle, symbolic.texts(), words, top_k=1)
    peaks = []
    for res, label in zip(lens, symbolic.labels()):
        mine = [w for w in vocab.for_label(label) if w in res.targets]
        peaks.append(float(max(sum(res.targets[w].full_prob_sum for w in mine))))
    return {
        "symbolic": answer_accuracy(handle, symbolic.texts(), symbolic.answers()).to_dict(),
        "semantic": answer_accuracy(handle, semantic.texts(), semantic.answers()).to_dict(),
        **{f"{category}_all": answer_accuracy(handle, [*base.texts(), *more.texts()],
                                              [*base.answers(), *more.answers()]).to_dict()
           for category, base, more in (("symbolic", symbolic, extra.where(category="symbolic")),
                                        ("semantic", semantic, extra.where(category="semantic")))},
        "classifier_prob": sum(peaks) / len(peaks),
        "classifier_prob_per_prompt": peaks,
    }


@dataclass
class TwoStageResult:
    baseline: dict
    stage1: dict
    stage2: dict
    stage1_train: dict
    stage2_train: dict
    config: dict

    def to_dict(self) -> dict:
        return asdict(self)


def train_two_stage(
    handle: ModelHandle,
    cfg: TwoStageConfig | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> TwoStageResult:
    """Run both stages in place on ``handle`` (its model ends fused with stage 1 plus the stage-2 LoRA)."""
    cfg = cfg or TwoStageConfig()
    eval_texts = eval_prompt_texts()
    examples = arithmetic_examples(cfg.n_train, cfg.data_seed, TWO_STAGE_OPS, mul_range=cfg.mul_range,
                                   add_range=cfg.add_range, exclude=eval_texts)
    assert_disjoint(examples, eval_texts)
    split = int(0.9 * len(examples))
    out = Path(out_dir) if out_dir is not None else None
    baseline = stage_metrics(handle)
    s1 = train_sft(handle, examples[:split], examples[split:], cfg.stage1,
                   out_dir=out / "stage1" if out else None, progress=progress)
    fuse_lora(handle.model)
    if out is not None:
        save_model(handle.model, handle.config, out / "fused_stage1", tokenizer_dir=handle.path)
    after1 = stage_metrics(handle)
    s2 = train_dual_reward(handle, cfg.stage2, examples=examples[:split],
                           out_dir=out / "stage2" if out else None, progress=progress)
    return TwoStageResult(baseline=baseline, stage1=after1, stage2=stage_metrics(handle),
                          stage1_train=s1.to_dict(), stage2_train=s2.to_dict(), config=asdict(cfg))


def accuracy_drop(result: TwoStageResult, key: str = "symbolic") -> float:
    """Points of accuracy lost from stage 1 to stage 2 (positive = lost)."""
    return 100.0 * (result.stage1[key]["accuracy"] - result.stage2[key]["accuracy"])


__all__: Sequence[str] = ("TwoStageConfig", "TwoStageResult", "train_two_stage", "stage_metrics", "accuracy_drop")
