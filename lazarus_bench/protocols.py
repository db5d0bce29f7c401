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
LENS_DIFFERENCES = {
    "noncausal_mask": ("causal attention mask", "mask=None: every position attends to every other"),
    "input_unembedding": ("the model's real unembedding (lm_head when untied)", "the input embedding matrix"),
}
DEFECTS = {"dual_reward": ORIGINAL_DIFFERENCES, "lens": LENS_DIFFERENCES}
# Claims whose original protocol is the corrected one plus a single defect (CLAIMS.md: H14 runs the writeup's plain
# SGD stage 2 beside AdamW): there the original run is that defect's one-factor ablation, with nothing to add.
SINGLE_DEFECT_ORIGINAL = {"H14": "optimizer"}


def one_factor(family: str) -> tuple[str, ...]:
    """``corrected+<defect>`` for every original defect of ``family`` (dual_reward: H05a; lens: H11)."""
    return tuple(f"corrected+{defect}" for defect in DEFECTS[family])


ONE_FACTOR = one_factor("dual_reward")
PROTOCOLS = ("corrected", "original", *(p for family in DEFECTS for p in one_factor(family)))


def protocol_defects(protocol: str, family: str = "dual_reward") -> frozenset[str]:
    """The original code's defects of ``family`` a protocol has: none (corrected), all (original) or one
    (corrected+<defect>)."""
    defects = DEFECTS[family]
    if protocol == "corrected":
        return frozenset()
    if protocol == "original":
        return frozenset(defects)
    defect = protocol.removeprefix("corrected+")
    if protocol.startswith("corrected+") and defect in defects:
        return frozenset({defect})
    known = ", ".join(("corrected", "original", *one_factor(family)))
    raise LazarusError(f"unknown protocol '{protocol}' for {family} ({known})")
