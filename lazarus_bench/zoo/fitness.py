"""Is a zoo model fit for each claim? The claims' own before-training gates, measured at build time.

Each gate is the claim's :class:`~lazarus_bench.claims.base.Gate`, read with the claim's declared threshold, so
the figure ``zoo list`` shows is the one the claim will check. H05a's lens ceiling is shown as a recipe target
(>= 36%, so the writeup's absolute figure is reachable); it protects no claim.
"""

from __future__ import annotations

from pathlib import Path

# (claim, gate name): the gates a claim checks on the untrained model, which the organism must pass
CLAIM_GATES = (
    ("H13", "remain presence before SFT"),
    ("H13", "remain association before SFT"),
    ("H15a", "backbone models the data's text"),
    ("H15b", "backbone models the data's text"),
)
TARGETS = (("H05a", "op word reachable by the lens"),)  # shown, never a miss
KINDS = ("base", "untied", "moe")  # the kinds these claims apply to (none runs on an instruct model)


def _context(claim_id: str, handle, overrides: dict | None):
    from ..claims import ensure_loaded
    from ..claims.base import ClaimContext, get_claim, model_info

    ensure_loaded()
    claim = get_claim(claim_id)
    return claim, ClaimContext(claim, model_info(handle), tier="slow", seeds=[],
                               params=claim.parameters("slow", (overrides or {}).get(claim_id)), shared=handle)


def _gate(claim, name: str):
    found = [g for g in claim.gates if g.name == name]
    if not found:
        raise KeyError(f"{claim.id} declares no gate '{name}'")
    return found[0]


def claim_gates(model_dir: str | Path, overrides: dict[str, dict] | None = None) -> dict[str, dict]:
    """``{"H13: remain presence before SFT": {value, threshold, direction, passed, target}, ...}`` for a model, at
    the claims' declared thresholds (or ``overrides``: claim id -> parameters)."""
    from ..models import load_model

    handle = load_model(str(model_dir))
    out = {}
    for (claim_id, name), target in [(g, False) for g in CLAIM_GATES] + [(g, True) for g in TARGETS]:
        claim, ctx = _context(claim_id, handle, overrides)
        result = _gate(claim, name).check(ctx)
        out[f"{claim_id}: {name}"] = {"value": result.value, "threshold": result.threshold,
                                      "direction": result.direction, "passed": result.passed, "target": target}
    return out


def claim_gate_misses(metrics: dict) -> list[str]:
    """The claim gates a model's recorded figures miss, one phrase each (targets aside)."""
    from ..claims.base import bound_text

    return [f"{name} {g['value']:.3g} not {bound_text(g['direction'], g['threshold'])}"
            for name, g in (metrics.get("claim_gates") or {}).items() if not g["target"] and not g["passed"]]
