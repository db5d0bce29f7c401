"""Is a zoo model fit for each claim? The claims' own before-training gates, measured at build time.

Each gate is the claim's :class:`~lazarus_bench.harness.base.Gate`, read with the claim's declared threshold, so
the figure ``zoo list`` shows is the one the claim will check. H05a's lens ceiling, in multiples of H01's T', is shown
as a recipe target (>= 2, or H05a is NOT TESTABLE on the model); it protects no other claim.
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
TARGETS = (("H05a", "lens ceiling over H01's T'"),)  # shown, never a miss
KINDS = ("base", "untied", "moe")  # the kinds these claims apply to (none runs on an instruct model)
# the moe variant's router was trained (H10 reads it): it moved from its random start by at least a fifth of its
# norm, it lowers the LM loss by at least 1% against the start's router (same experts), and no expert is idle
# (each holds at least a quarter of a uniform share of the routed slots)
ROUTER_FLOORS = {"moved": 0.2, "loss_fall": 0.01, "min_expert_share": 0.0625}
# the micro zoo serves the fast tier: its gates are read at that tier's parameters, on fewer router documents
TIER = {"micro": "fast"}
ROUTER_DOCS = {"fast": 64, "slow": 256}


def _context(claim_id: str, handle, overrides: dict | None, tier: str):
    from ..harness.base import ClaimContext, model_info
    from ..harness.registry import ensure_loaded, get_claim

    ensure_loaded()
    claim = get_claim(claim_id)
    return claim, ClaimContext(claim, model_info(handle), tier=tier, seeds=[],
                               params=claim.parameters(tier, (overrides or {}).get(claim_id)), shared=handle)


def _gate(claim, name: str):
    found = [g for g in claim.gates if g.name == name]
    if not found:
        raise KeyError(f"{claim.id} declares no gate '{name}'")
    return found[0]


def claim_gates(model_dir: str | Path, overrides: dict[str, dict] | None = None,
                tier: str = "slow") -> dict[str, dict]:
    """``{"H13: remain presence before SFT": {value, threshold, direction, passed, target}, ...}`` for a model, at
    the claims' declared parameters for ``tier`` (or ``overrides``: claim id -> parameters)."""
    from ..models import load_model

    handle = load_model(str(model_dir))
    out, contexts = {}, {}
    for (claim_id, name), target in [(g, False) for g in CLAIM_GATES] + [(g, True) for g in TARGETS]:
        if claim_id not in contexts:  # one context per claim: H13's two gates share its one lens pass
            contexts[claim_id] = _context(claim_id, handle, overrides, tier)
        claim, ctx = contexts[claim_id]
        result = _gate(claim, name).check(ctx)
        out[f"{claim_id}: {name}"] = {"value": result.value, "threshold": result.threshold,
                                      "direction": result.direction, "passed": result.passed, "target": target}
    return out


def claim_gate_misses(metrics: dict) -> list[str]:
    """The claim gates a model's recorded figures miss, one phrase each (targets aside)."""
    from ..harness.base import bound_text

    return [f"{name} {g['value']:.3g} not {bound_text(g['direction'], g['threshold'])}"
            for name, g in (metrics.get("claim_gates") or {}).items() if not g["target"] and not g["passed"]]


def _gates(model) -> list:
    return [layer.block_sparse_moe.gate for layer in model.model.layers]


def start_router(config: dict, seed: int) -> list:
    """The router weights ``upcycle_moe`` drew for a build of ``seed`` (per layer), rebuilt from its config."""
    from ..tiny import build_model

    return [gate.weight for gate in _gates(build_model(config, seed=seed, randomise_norms=False))]


def _loss_and_shares(model, batches, k: int) -> tuple[float, list[float]]:
    """Mean next-token loss over ``batches`` and each expert's share of the routed slots, over every layer (the
    router logits recorded in the model's own causal forward pass)."""
    import mlx.core as mx
    import mlx.nn as nn

    class Recorder(nn.Module):
        def __init__(self, linear):
            super().__init__()
            self.linear, self.seen = linear, []

        def __call__(self, x):
            y = self.linear(x)
            self.seen.append(y)
            return y

    moes = [layer.block_sparse_moe for layer in model.model.layers]
    for moe in moes:
        moe.gate = Recorder(moe.gate)
    total, count = 0.0, 0
    try:
        for tokens in batches:
            x = mx.array(tokens)
            logits = model(x[:, :-1]).astype(mx.float32)
            total += float(nn.losses.cross_entropy(logits, x[:, 1:], reduction="sum"))
            count += x[:, 1:].size
        n = moes[0].gate.linear.weight.shape[0]
        counts = sum(mx.sum(mx.eye(n)[mx.argpartition(-y, kth=k - 1, axis=-1)[..., :k].reshape(-1)], axis=0)
                     for moe in moes for y in moe.gate.seen)
    finally:
        for moe in moes:
            moe.gate = moe.gate.linear
    return total / count, (counts / mx.sum(counts)).tolist()


def router_fitness(model_dir: str | Path, seed: int | None = None, n_docs: int = 256) -> dict:
    """How far the moe's router moved from its random start, the LM loss on unseen corpus text with the trained
    router and with the start's (experts as trained), and each expert's share of the routed slots (``seed``: the
    build's, else its manifest's)."""
    import json

    import mlx.core as mx
    import numpy as np

    from ..models import load_model
    from .corpus import generate_corpus

    d = Path(model_dir)
    config = json.loads((d / "config.json").read_text())
    seed = json.loads((d / "manifest.json").read_text())["corpus_seed"] if seed is None else seed
    handle = load_model(str(d))
    model = handle.model
    trained = [g.weight.astype(mx.float32) for g in _gates(model)]
    start = start_router(config, seed)
    moved = float(np.sqrt(sum(float(mx.sum((a - b) ** 2)) for a, b in zip(trained, start)))
                  / np.sqrt(sum(float(mx.sum(b ** 2)) for b in start)))
    ids = [handle.encode(doc)[:65] for doc in generate_corpus(seed + 1_000_000, n_docs)]
    batches = [np.array([row for row in ids[i:i + 32] if len(row) == 65]) for i in range(0, len(ids), 32)]
    batches = [b for b in batches if len(b)]
    k = config["num_experts_per_tok"]
    loss, shares = _loss_and_shares(model, batches, k)
    for gate, weight in zip(_gates(model), start):
        gate.weight = weight.astype(gate.weight.dtype)
    start_loss, _ = _loss_and_shares(model, batches, k)
    fall = (start_loss - loss) / start_loss
    return {"moved": moved, "loss": loss, "start_router_loss": start_loss, "loss_fall": fall,
            "min_expert_share": min(shares), "expert_shares": shares, "floors": ROUTER_FLOORS}


def router_misses(metrics: dict) -> list[str]:
    """The router floors a moe's recorded figures miss, one phrase each."""
    router = metrics.get("router")
    if not router:
        return []
    return [f"router {name} {router[name]:.3g} < {floor:g}" for name, floor in ROUTER_FLOORS.items()
            if router[name] < floor]


def fitness_metrics(kind: str, model_dir: str | Path, size: str, seed: int | None = None) -> dict:
    """What a build records beside its quality gates: the claim gates (base, untied, moe) and the moe's router gate,
    at the tier the zoo ``size`` serves."""
    tier = TIER.get(size, "slow")
    out = {}
    if kind in KINDS:
        out["claim_gates"] = claim_gates(model_dir, tier=tier)
    if kind == "moe":
        out["router"] = router_fitness(model_dir, seed, n_docs=ROUTER_DOCS[tier])
    return out
