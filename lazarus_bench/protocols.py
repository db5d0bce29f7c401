"""Protocols: the corrected method, the original code's (seed-methods.md section 12), and each original defect
alone on top of the corrected one (one-factor ablations). Light on purpose: the CLI reads it to build parsers."""

from __future__ import annotations

from .errors import LazarusError

ORIGINAL_DIFFERENCES = {
    "answer_loss": ("shifted next-token CE", "unshifted (logit t scored against token t: a copy objective)"),
    "optimizer": ("AdamW", "plain SGD (the Adam it built was never used)"),
    "classification_position": ("last prompt token (where it is evaluated)", "last answer token"),
    "bos_in_training": ("yes, as at evaluation", "no"),
    "batch_size": ("config (default 8)", "1 (batch_size ignored)"),
    "lora_scale": ("mlx-lm default 20", "2.0 (alpha 16 / rank 8)"),
    "eval_prompts_in_training": ("excluded and asserted", "allowed (48 / 6, 81 / 9, 12 * 5 leaked)"),
}
ONE_FACTOR = tuple(f"corrected+{defect}" for defect in ORIGINAL_DIFFERENCES)
PROTOCOLS = ("corrected", "original", *ONE_FACTOR)


def protocol_defects(protocol: str) -> frozenset[str]:
    """The original code's defects a protocol has: none (corrected), all (original) or one (corrected+<defect>)."""
    if protocol == "corrected":
        return frozenset()
    if protocol == "original":
        return frozenset(ORIGINAL_DIFFERENCES)
    defect = protocol.removeprefix("corrected+")
    if protocol.startswith("corrected+") and defect in ORIGINAL_DIFFERENCES:
        return frozenset({defect})
    raise LazarusError(f"unknown protocol '{protocol}' ({', '.join(PROTOCOLS)})")
