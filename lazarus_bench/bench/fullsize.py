"""The plan checked at full size: each part measured in its own process (wall, peak RSS) beside its prediction.

Parts: the measures of H01-H04 at their full prompt sets (the lens, probe and projection code the claims run, their
random-init comparison included), training steps of the LoRA setups of H05a (dual reward, rank 8 on v/o), H11 (SFT,
rank 8 on every linear) and H14 (stage 1, rank 16), and one replicate of a control each: H01's graded plant (with
its calibration), H01's and H04's random-init nulls. The trained-model gate would stop a random-weight model before
any claim runs, so the parts are called directly. Run it on a quiet machine:
``python -m lazarus_bench.bench.fullsize --model DIR --json OUT``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MEASURES = ("H01", "H02", "H03", "H04")
CONTROLS = ("H01:graded", "H01:null", "H04:null")  # one replicate each: what a control costs at full size
TRAINING = ("H05a", "H11", "H14")
STEPS = (5, 25)  # timed runs after a warm-up one: the difference is 20 steps, their batch shapes mostly compiled


def peak_rss() -> int:
    """This process's peak resident set in bytes (VmHWM)."""
    from .machine import max_rss_bytes

    return max_rss_bytes()


def _measure_part(part: str, model_dir: str) -> dict:
    """``H01``: the claim's measurement; ``H01:graded``: one replicate of its first graded control at its middle
    strength (the plant, its calibration and the measurement); ``H01:null``: one replicate of its first null."""
    from ..harness.base import ClaimContext, model_info
    from ..harness.registry import get_claim
    from ..models import load_model

    claim_id, _, control = part.partition(":")
    claim = get_claim(claim_id)
    handle = load_model(model_dir)
    ctx = ClaimContext(claim, model_info(handle), tier="slow", seeds=[], params=claim.parameters("slow", None),
                       shared=handle)
    start = time.perf_counter()
    if control == "graded":
        graded = claim.graded[0]
        ctx = graded.build(ctx, graded.strengths[len(graded.strengths) // 2], 0)
    elif control == "null":
        ctx = claim.nulls[0].build(ctx, 0)
    claim.measure(ctx)
    return {"seconds": time.perf_counter() - start}


def _trainer(claim_id: str, steps: int):
    """A function that trains a fresh copy of the model ``steps`` steps in ``claim_id``'s setup: (seconds, tokens)."""
    from dataclasses import replace

    from .. import prompts
    from ..harness.common import arithmetic_split
    from ..harness.sft_checkpoints import SEED000_DATA
    from ..training.data import arithmetic_examples
    from ..training.dual_reward import DualRewardConfig, train_dual_reward
    from ..training.sft import SFTConfig, train_sft
    from ..training.two_stage import TWO_STAGE_OPS, TwoStageConfig

    def run(handle) -> tuple[float, int]:
        if claim_id == "H05a":
            cfg = DualRewardConfig()
            result = train_dual_reward(handle, replace(cfg, train=replace(cfg.train, steps=steps)), progress=False)
            return result.train.seconds, result.train.tokens
        if claim_id == "H11":
            cfg = SFTConfig()
            train, _ = arithmetic_split(SEED000_DATA, 400, 0, 0, list(prompts.seed000_tests().texts()))
            result = train_sft(handle, train, (), replace(cfg, train=replace(cfg.train, steps=steps)), progress=False)
            return result.train.seconds, result.train.tokens
        stage1 = TwoStageConfig().stage1
        examples = arithmetic_examples(400, 42, TWO_STAGE_OPS, mul_range=(2, 12), add_range=(1, 50))
        result = train_sft(handle, examples, (), replace(stage1, train=replace(stage1.train, steps=steps)),
                           progress=False)
        return result.train.seconds, result.train.tokens
    return run


def _training_part(claim_id: str, model_dir: str) -> dict:
    """A warm-up run (kernels compiled and cached), then the timed runs, each on a freshly loaded model."""
    import gc

    from ..models import load_model

    _trainer(claim_id, STEPS[0])(load_model(model_dir))
    timed = []
    for steps in STEPS:
        gc.collect()
        timed.append(_trainer(claim_id, steps)(load_model(model_dir)))
    (short_s, short_t), (long_s, long_t) = timed
    extra = STEPS[1] - STEPS[0]
    return {"seconds": (long_s - short_s) / extra, "tokens": (long_t - short_t) / extra, "runs": timed}


def run_part(part: str, model_dir: str, steps: int = 0) -> dict:
    """One part in this process: its figures, this process's peak RSS and MLX's peak allocation (the GPU's memory
    on a GPU, where RSS holds only the host's side)."""
    import mlx.core as mx

    figures = _training_part(part, model_dir) if steps else _measure_part(part, model_dir)
    gpu = mx.default_device() != mx.cpu
    return {"part": part, **figures, "peak_rss": mx.get_peak_memory() if gpu else peak_rss(),
            "host_rss": peak_rss(), "mlx_peak": mx.get_peak_memory()}


def _in_child(part: str, model_dir: str, steps: int = 0) -> dict:
    cmd = [sys.executable, "-m", "lazarus_bench.bench.fullsize", "--child", part, "--model", model_dir,
           "--steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{part} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


SETUPS = {"H05a": (8, 8, 8), "H11": (8, 8, 8), "H14": (4, 8, 16)}  # as the plan prices them: batch, seq, rank


def predicted(part: str, w, tokens_per_step: float = 0.0):
    """The plan's part for a measured one: a claim's measurement, or one training step of its setup at the tokens
    per step measured (the plan's own sequence length is an assumption about the tokenizer; this checks the cost
    per token)."""
    from ..harness.registry import get_claim
    from .plan import Part, claim_parts

    if tokens_per_step:
        batch, _, rank = SETUPS[part]
        return Part("one step", w.train(1, batch, max(1, round(tokens_per_step / batch)), lora_rank=rank))
    claim_id, _, control = part.partition(":")
    claim = get_claim(claim_id)
    parts = claim_parts(claim, w)
    prefix = {"": "measurement", "graded": "graded:", "null": "null:"}[control]
    found = next(p for p in parts if p.name.startswith(prefix))
    return Part(found.name, found.cost, 1, found.resident, found.random)  # one run of it


def label(row: dict) -> str:
    """How a measured part reads in a table."""
    if row["training"]:
        return f"{row['part']} training step"
    claim_id, _, control = row["part"].partition(":")
    return claim_id + {"": " measurement", "graded": " graded control, 1 replicate",
                       "null": " null, 1 replicate"}[control]


def measure(model_dir: str, parts: tuple[str, ...] = MEASURES + TRAINING + CONTROLS,
            out: Path | None = None) -> dict:
    """Every part measured in its own process, and this machine's rates (measured first, here); with ``out``, the
    result so far is written there after each part."""
    from .plan import measure_rates, read_config

    rates = measure_rates()
    config = read_config(model_dir)
    rows: list[dict] = []
    result = {"model": model_dir, "config": config, "rates": rates.to_dict(), "rows": rows}
    for part in parts:
        if part in TRAINING:
            got = _in_child(part, model_dir, steps=1)
            row = {"part": part, "training": True, "measured_s": got["seconds"], "tokens_per_step": got["tokens"],
                   "peak_rss_gb": got["peak_rss"] / 1e9, "steps": list(STEPS)}
        else:
            got = _in_child(part, model_dir)
            row = {"part": part, "training": False, "measured_s": got["seconds"], "peak_rss_gb": got["peak_rss"] / 1e9}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        if out is not None:
            out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def with_predictions(result: dict) -> dict:
    """The measured rows with the plan's predictions, from the rates and config stored beside them."""
    from .plan import PROCESS_BYTES, Rates, workload

    w = workload(result["config"], Rates(**result["rates"]))
    rows = []
    for row in result["rows"]:
        plan = predicted(row["part"], w, row.get("tokens_per_step", 0.0) if row["training"] else 0.0)
        seconds = plan.seconds
        host = PROCESS_BYTES if w.rates.device == "cpu" else 0  # a GPU's peak is MLX's allocation alone
        gb = (host + plan.held(w)) / 1e9
        rows.append({**row, "predicted_s": seconds, "predicted_gb": gb, "time_ratio": row["measured_s"] / seconds,
                     "memory_ratio": row["peak_rss_gb"] / gb})
    return {**result, "rows": rows}


def render(result: dict) -> str:
    """The predicted-vs-measured table for BENCH.md."""
    from tabulate import tabulate

    rows = [[label(r), f"{r['predicted_s']:.3g}",
             f"{r['measured_s']:.3g}", f"{r['time_ratio']:.2f}",
             f"{r['predicted_gb']:.1f}", f"{r['peak_rss_gb']:.1f}", f"{r['memory_ratio']:.2f}",
             "yes" if 0.75 <= r["time_ratio"] <= 1.25 and 0.75 <= r["memory_ratio"] <= 1.25 else "no"]
            for r in result["rows"]]
    return tabulate(rows, headers=["part", "plan s", "measured s", "ratio", "plan GB", "measured peak GB", "ratio",
                                   "within 25%"], tablefmt="github", disable_numparse=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lazarus_bench.bench.fullsize", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a full-size checkpoint folder (zoo replicas --full)")
    p.add_argument("--parts", default=",".join(MEASURES + TRAINING + CONTROLS),
                   help="comma-separated claim ids (H01: its measurement; H01:graded, H01:null: one control replicate)")
    p.add_argument("--json", help="write the result here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(run_part(args.child, args.model, args.steps)))
        return 0
    result = measure(args.model, tuple(x for x in args.parts.split(",") if x), Path(args.json) if args.json else None)
    print(render(with_predictions(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
