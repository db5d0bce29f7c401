"""The zoo's quality gates: thresholds, the judgement, and which builds miss them; free of mlx (the CLI reads them)."""

from __future__ import annotations

GATES = {"eval_prompts": 0.90, "heldout": 0.80, "word": 0.60}  # the base's absolute thresholds
METRICS = ("eval_prompts", "heldout", "word", "chat")
DERIVED_MARGIN = 0.10  # untied and moe: within 10 points of base on each base gate
GRPO_FRONTIER = (0.1, 0.9)  # every model: GRPO's start reward rate, as H07-H09's gate (CLAIMS.md)


def gate_misses(kind: str, metrics: dict, base: dict) -> list[str]:
    """The zoo quality gates (issue 13) a model misses, one phrase each; empty when all are met.

    base: the absolute thresholds of :data:`GATES` on eval prompts, held-out add/sub and word form;
    untied, moe: within :data:`DERIVED_MARGIN` of base on each; instruct: chat format at least the base's and the
    evaluation prompts within :data:`DERIVED_MARGIN` of base (a post-training that breaks the skills fails); every
    model: GRPO's start reward rate within :data:`GRPO_FRONTIER` (when measured)."""
    out = []
    if kind == "base":
        out = [f"{g} {metrics[g]:.1%} < {GATES[g]:.0%}" for g in GATES if metrics[g] < GATES[g]]
    elif kind in ("untied", "moe"):
        out = [f"{g} {metrics[g]:.1%} < base {base[g]:.1%} - 10" for g in GATES
               if metrics[g] < base[g] - DERIVED_MARGIN]
    elif kind == "instruct":
        if metrics["chat"] < base["chat"]:
            out = [f"chat {metrics['chat']:.1%} < base {base['chat']:.1%}"]
        if "eval_prompts" in metrics and metrics["eval_prompts"] < base["eval_prompts"] - DERIVED_MARGIN:
            out.append(f"eval_prompts {metrics['eval_prompts']:.1%} < base {base['eval_prompts']:.1%} - 10")
    rate = (metrics.get("grpo_start_reward") or {}).get("rate")
    low, high = GRPO_FRONTIER
    if rate is not None and not low <= rate <= high:
        out.append(f"GRPO start reward {rate:.2f} outside [{low:g}, {high:g}]")
    return out


def unfit_builds(root) -> dict[str, list[str]]:
    """The other builds under a zoo root whose base misses a quality gate while the development build's base meets
    them all, with the gates missed: such a build is not a replicate of the development build."""
    import json

    from .registry import MANIFEST, zoo_builds

    def base_misses(path) -> list[str] | None:
        try:
            metrics = json.loads((path / "base" / MANIFEST).read_text()).get("metrics")
        except (OSError, ValueError):
            return None
        return gate_misses("base", metrics, {}) if metrics else None

    if base_misses(root) != []:
        return {}
    builds = {build: base_misses(path) for build, path in zoo_builds(root).items() if build}
    return {build: misses for build, misses in builds.items() if misses}
