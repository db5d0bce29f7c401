"""The claim registry (H01-H15): import this package to register every claim."""

from __future__ import annotations

import importlib

MODULES = ("lens_claims", "probe_claims", "router_claims", "dual_reward_claims", "grpo_claims", "sft_claims",
           "engram_claims")


def ensure_loaded() -> None:
    """Import every claim module once (each registers its claims on import)."""
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
