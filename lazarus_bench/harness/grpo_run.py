"""H07's pure-GRPO runs, cached by content and keyed by this module's code (the training), not by the claim's
read-out: a change to how H07 reads its runs reuses them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..cache import FixtureCache, default_root
from ..io import write_json
from ..models import ModelHandle, load_model, model_fingerprint
from ..prompts import GrpoSpec
from ..training.grpo import GRPOConfig, train_grpo
from .base import ClaimContext
from .common import at_round_ends, reward_rise


@dataclass(frozen=True)
class RecordingSpec(GrpoSpec):
    """A GRPO prompt generator that records every prompt it hands to training (to assert disjointness)."""

    seen: list = field(default_factory=list, compare=False, repr=False)

    def sample(self, n: int | None = None, seed: int = 0):
        drawn = super().sample(n, seed)
        self.seen.extend(drawn.texts())
        return drawn


def grpo_run(ctx: ClaimContext, cfg: GRPOConfig, spec: GrpoSpec, round_steps: int,
             min_reward_rise: float) -> tuple[ModelHandle, dict]:
    """One pure-GRPO run of this model within its budget (``cfg.train.steps``), ended at the first round of
    ``round_steps`` whose run meets the reward floor; trained once and cached by content (weights, per-step metrics
    and every prompt it trained on), so the graded control re-reads the same trained models."""
    until = at_round_ends(round_steps, lambda metrics: reward_rise(metrics) >= min_reward_rise)

    def build(d: Path) -> None:
        ctx.log(f"GRPO on {ctx.model_id}, seed {cfg.seed}, rounds of {round_steps} steps, at most {cfg.train.steps}")
        handle = ctx.fresh_handle()
        recorder = RecordingSpec(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(GrpoSpec)})
        result = train_grpo(handle, cfg, out_dir=d / "model", progress=False, spec=recorder, until=until)
        write_json(d / "run.json", {"metrics": result.train.metrics, "seen": recorder.seen,
                                    "param_change": result.train.param_change_relative,
                                    "until_met": result.train.until_met})

    parts = {"method": "claims.grpo_run", "model": model_fingerprint(ctx.model_id), "config": cfg.to_dict(),
             "spec": dataclasses.asdict(spec), "round_steps": round_steps, "min_reward_rise": min_reward_rise}
    entry = FixtureCache(ctx.cache_dir or default_root(), code=__name__).get_or_build(parts, build)
    return load_model(str(entry / "model")), json.loads((entry / "run.json").read_text())
