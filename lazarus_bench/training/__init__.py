"""Training methods of the writeups, done right: SFT, dual-reward, GRPO, two-stage, engram models."""
