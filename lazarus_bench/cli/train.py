"""``lazarus-bench train METHOD``: train with one of the writeups' methods (adapters + result JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ..errors import LazarusError
from ..io import write_json
from ..options import check_steps, option
from ..protocols import ONE_FACTOR
from ..userfiles import read_user_text
from .common import (
    Parser,
    _load,
    existing_file,
    fill_defaults,
    model_args,
    output_dir,
    run_command,
)

HELP = "train with one of the writeups' methods (adapters + result JSON)"


def _read_examples(path: str):
    """mlx-lm style JSONL: {"prompt": ..., "completion": ...} per line (``label`` optional)."""
    from ..training.data import Example

    examples = []
    for n, line in enumerate(read_user_text(path, "--data").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LazarusError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        fields = (row.get("prompt"), row.get("completion"), row.get("label", "")) if isinstance(row, dict) else ()
        if not fields or not all(isinstance(v, str) for v in fields) or not fields[0] or not fields[1]:
            raise LazarusError(f"{path}:{n}: expected a JSON object with non-empty string 'prompt' and 'completion' "
                               "(and an optional string 'label')")
        examples.append(Example(*fields))
    if not examples:
        raise LazarusError(f"{path}: no examples")
    return examples


def _train_config(args: argparse.Namespace, base):
    from dataclasses import replace

    changes = {"seed": args.seed}
    for name in ("steps", "lr"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    return replace(base, **changes)


def _train_sft(args: argparse.Namespace, handle) -> dict:
    from dataclasses import replace

    from .. import prompts
    from ..training.data import arithmetic_examples
    from ..training.lora import LoraSpec
    from ..training.sft import SFTConfig, train_sft

    if args.data:
        examples = args.examples
    else:
        evaluation = prompts.seed000_tests().texts() + prompts.dual_reward_eval().texts()
        examples = arithmetic_examples(args.n_train, args.data_seed, exclude=evaluation)
    split = max(1, int(0.9 * len(examples)))
    cfg = SFTConfig()
    cfg = replace(cfg, batch_size=args.batch_size or cfg.batch_size,
                  lora=None if args.full else LoraSpec(rank=args.rank, scale=args.scale),
                  train=replace(_train_config(args, cfg.train), save_at=tuple(args.save_at or ()), name="sft"))
    return train_sft(handle, examples[:split], examples[split:], cfg, out_dir=args.out).to_dict()


SFT_DEFAULTS = {"n_train": 5000, "data_seed": 0, "rank": 8, "scale": 20.0}
SFT_CONFLICTS = (("full", ("rank", "scale"), "--full trains every parameter: no LoRA to size"),
                 ("data", ("n_train", "data_seed"), "--data gives the examples: nothing is generated"))


def check_options(args: argparse.Namespace) -> None:
    """An option the chosen training does not read is an error, not silently dropped; then the defaults."""
    if args.method != "sft":
        return
    for switch, options, why in SFT_CONFLICTS:
        if getattr(args, switch) and (given := [f"--{o.replace('_', '-')}" for o in options
                                                 if getattr(args, o) is not None]):
            raise LazarusError(f"{', '.join(given)} with --{switch}: {why}")
    fill_defaults(args, SFT_DEFAULTS)


def _train_dual_reward(args: argparse.Namespace, handle) -> dict:
    from dataclasses import replace

    from ..training.dual_reward import DualRewardConfig, train_dual_reward

    cfg = DualRewardConfig.for_protocol(args.protocol)
    changes = {"train": _train_config(args, cfg.train)}
    if args.cls_weight is not None:
        changes["cls_weight"] = args.cls_weight
    if args.batch_size:
        changes["batch_size"] = args.batch_size
    return train_dual_reward(handle, replace(cfg, **changes), out_dir=args.out).to_dict()


def _train_two_stage(args: argparse.Namespace, handle) -> dict:
    from dataclasses import replace

    from ..training.two_stage import TwoStageConfig, train_two_stage

    cfg = TwoStageConfig.aggressive() if args.aggressive else TwoStageConfig()
    cfg = cfg.scaled(args.stage1_steps or cfg.stage1.train.steps, args.stage2_steps or cfg.stage2.train.steps)
    cfg = replace(cfg, data_seed=cfg.data_seed + args.seed,  # seeded as H14 seeds it; seed 0 is the default run
                  stage1=replace(cfg.stage1, train=replace(cfg.stage1.train, seed=args.seed)),
                  stage2=replace(cfg.stage2, train=replace(cfg.stage2.train, seed=args.seed)))
    return train_two_stage(handle, cfg, out_dir=args.out).to_dict()


def _train_grpo(args: argparse.Namespace, handle) -> dict:
    from dataclasses import replace

    from ..training.grpo import seed002_configs, train_grpo
    from ..training.lora import LoraSpec

    cfg = seed002_configs(args.seed)[args.variant]
    changes = {"train": _train_config(args, cfg.train)}
    if args.lora_rank:
        changes["lora"] = LoraSpec(rank=args.lora_rank)
    if args.batch_size:
        changes["prompts_per_step"] = args.batch_size
    return train_grpo(handle, replace(cfg, **changes), out_dir=args.out).to_dict()


def _train_engram(args: argparse.Namespace, handle) -> dict:
    from dataclasses import replace

    from ..training.engram import EngramConfig, train_engram

    cfg = EngramConfig()
    changes = {"train": _train_config(args, cfg.train)}
    if args.batch_size:
        changes["batch_size"] = args.batch_size
    if args.n_train:
        changes["n_train"] = args.n_train
    return train_engram(handle, args.variant, args.dataset, replace(cfg, **changes), out_dir=args.out).to_dict()


METHOD_HELP = {
    "sft": "supervised fine-tuning, LoRA (default) or full, on arithmetic or your JSONL",
    "dual-reward": "seed 002's V/O LoRA with a lens classification loss at a middle layer (H05)",
    "grpo": "seed 002's GRPO runs: pure, with dual-reward, and the four collapse fixes (H07-H09)",
    "two-stage": "seed 003's SFT, fuse, then dual-reward stage 2 (H14)",
    "engram": "seed 004's classifiers M1-M3 on the sentiment or topic data (H15)",
}

TRAINERS = {"sft": _train_sft, "dual-reward": _train_dual_reward, "grpo": _train_grpo, "two-stage": _train_two_stage,
            "engram": _train_engram}


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lazarus-bench train", description=HELP)
    tsub = p.add_subparsers(dest="method", required=True)
    for method in TRAINERS:
        q = tsub.add_parser(method, help=METHOD_HELP[method], description=METHOD_HELP[method])
        model_args(q)
        q.add_argument("-o", "--out", required=True, type=output_dir,
                       help="output directory (adapters, checkpoints, result.json): new or empty, unless --overwrite")
        q.add_argument("--overwrite", action="store_true",
                       help="train into an -o folder that is not empty (an earlier run's files there are replaced)")
        if method != "two-stage":  # its two stages have their own steps, learning rates and batches
            q.add_argument("--steps", type=option("steps"), help="optimizer steps (default: the method's own)")
            q.add_argument("--lr", type=option("lr"), help="learning rate (0 trains nothing: the null run)")
            q.add_argument("--batch-size", type=option("batch_size"), help="default: the method's own")
        q.add_argument("--seed", type=option("seed"), default=0, help="seed of the initialisation and data order")
        if method == "sft":
            q.add_argument("--data", type=existing_file,
                           help="JSONL with prompt/completion per line (default: generated arithmetic)")
            q.add_argument("--n-train", type=option("n_train"),
                           help=f"generated examples (default {SFT_DEFAULTS['n_train']}; not with --data)")
            q.add_argument("--data-seed", type=option("data_seed"),
                           help=f"seed of the generated data (default {SFT_DEFAULTS['data_seed']}; not with --data)")
            q.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
            q.add_argument("--rank", type=option("rank"),
                           help=f"LoRA rank (default {SFT_DEFAULTS['rank']}; not with --full)")
            q.add_argument("--scale", type=option("scale"),
                           help=f"LoRA scale (default {SFT_DEFAULTS['scale']:g}; not with --full)")
            q.add_argument("--save-at", type=option("save_at"), nargs="*", help="also save adapters at these steps")
            q.add_argument("--ranks", type=option("ranks"), default=1,
                           help="data-parallel processes on this machine, one BLAS thread each (each takes every "
                                "N-th row of a batch; gradients weighted by response tokens, so the steps are those "
                                "of one process); 2 on a 2-core CPU trains a small model ~1.5x faster")
        if method == "dual-reward":
            q.add_argument("--protocol", default="corrected", choices=["corrected", "original", *ONE_FACTOR])
            q.add_argument("--cls-weight", type=option("cls_weight"),
                           help="w in w * cls + (1 - w) * answer, in [0, 1]")
        if method == "grpo":
            q.add_argument("--variant", default="grpo",
                           choices=["grpo", "dual", "balanced", "entropy", "low_lr", "cls_heavy"],
                           help="seed 002's runs: pure GRPO, GRPO + dual-reward, and the four collapse fixes")
            q.add_argument("--lora-rank", type=option("lora_rank"),
                           help="train LoRA of this rank instead of all parameters")
        if method == "engram":
            q.add_argument("--variant", default="M3", choices=["M1", "M2", "M3"],
                           help="M1 classifier, M2 + LM loss, M3 + engram bottleneck prefix")
            q.add_argument("--dataset", default="sentiment", choices=["sentiment", "topic"])
            q.add_argument("--n-train", type=option("n_train"),
                           help="training examples of the data set (default 400, as H15)")
        if method == "two-stage":
            q.add_argument("--aggressive", action="store_true", help="the writeup's Experiment 1 stage 2")
            q.add_argument("--stage1-steps", type=option("stage1_steps"), help="SFT steps (default: the writeup's)")
            q.add_argument("--stage2-steps", type=option("stage2_steps"),
                           help="dual-reward steps after the fuse (default: the writeup's)")
    return p


def cmd_train(args: argparse.Namespace) -> int:
    import mlx.core as mx

    from ..runinfo import environment

    check_options(args)
    if getattr(args, "data", None):
        args.examples = _read_examples(args.data)  # before anything is loaded or written
    if getattr(args, "save_at", None):
        from ..training.sft import SFTConfig

        check_steps(args.steps or SFTConfig().train.steps, tuple(args.save_at), owner="--save-at: ")
    handle = _load(args)
    out = Path(args.out)
    _check_out(out, handle)
    _check_not_empty(out, args.overwrite)
    with _OutputFolder(out):
        result = TRAINERS[args.method](args, handle)
        peak = fp16_headroom(handle)
        if mx.distributed.init().rank() != 0:
            return 0
        payload = {"method": args.method, "model": handle.describe(), "result": result,
                   "environment": environment(), "max_abs_activation": peak}
        path = write_json(args.json or out / "result.json", payload)
    print(f"{args.method}: wrote {path}")
    return 0


def _check_not_empty(out: Path, overwrite: bool) -> None:
    """An earlier run's adapter (or anything else) in -o is replaced only when the user says so."""
    if not overwrite and out.is_dir() and (found := sorted(p.name for p in out.iterdir())):
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        raise LazarusError(f"-o {out}: the folder is not empty ({found[0]}{more}); name a new folder, or pass "
                           "--overwrite to train into it and replace what this run writes")


def _check_out(out: Path, handle) -> None:
    """The output folder is never the trained model's folder, its adapter's, or a zoo model's: training writes
    adapters, checkpoints and result.json there (and, fine-tuning in full, the model's own file names)."""
    own = [Path(p).resolve() for p in (handle.path, handle.adapter_path) if p]
    if out.resolve() in own or (out / "manifest.json").is_file():
        raise LazarusError(f"-o {out}: that folder holds a model or adapter that training would write beside or over; "
                           "name a new folder for the training output")


class _OutputFolder:
    """Make -o; if training then fails, rank 0 removes what this run added (the folder itself if it made it) and
    says so in the error's one line: a failed command leaves nothing new behind."""

    def __init__(self, out: Path):
        self.out, self.existed = out, out.is_dir()
        self.before = set(out.iterdir()) if self.existed else set()

    def __enter__(self) -> "_OutputFolder":
        self.out.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        import shutil

        import mlx.core as mx

        if exc is None or mx.distributed.init().rank() != 0:
            return False
        if not self.existed:
            shutil.rmtree(self.out, ignore_errors=True)
            removed = f"removed {self.out}, which this run had made"
        else:
            added = [p for p in self.out.iterdir() if p not in self.before]
            for p in added:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
            removed = f"removed the {len(added)} entries this run had added to {self.out}"
        if isinstance(exc, LazarusError):
            raise LazarusError(f"{exc} ({removed})") from None
        return False


FP16_MAX = 65504.0


def fp16_headroom(handle) -> float:
    """The largest |activation| (residual stream and logits) of the trained model on the evaluation prompts; warns
    when it is beyond float16's range, where a float16 copy (mlx_lm.load of a fused fp16 checkpoint) gives NaN."""
    import mlx.core as mx

    from .. import prompts

    peak = 0.0
    for text in prompts.seed000_tests().texts() + prompts.dual_reward_eval().texts():
        capture = handle.forward([handle.encode(text)])
        peak = max([peak, float(mx.max(mx.abs(capture.logits)).item())]
                   + [float(mx.max(mx.abs(h)).item()) for h in capture.hidden])
    if peak > FP16_MAX:
        print(f"lazarus-bench: warning: activations on the evaluation prompts reach {peak:,.0f}, beyond float16's "
              f"{FP16_MAX:,.0f}: keep this model in float32 or bfloat16 (a float16 copy gives inf/NaN)",
              file=sys.stderr)
    return peak


def check_before_launch(args: argparse.Namespace) -> int:
    """What the launcher can check before it starts the ranks (so a bad input is one line, not one per rank)."""
    check_options(args)
    if args.data:
        _read_examples(args.data)
    if args.batch_size is not None and args.batch_size < args.ranks:
        raise LazarusError(f"--batch-size {args.batch_size} is smaller than --ranks {args.ranks}")
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    """``cmd_train`` in a launched rank: only rank 0 reports a bad input (the others would repeat it)."""
    import mlx.core as mx

    try:
        return cmd_train(args)
    except LazarusError:
        if mx.distributed.init().rank() == 0:
            raise
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    from ..zoo.ranks import is_rank, launch

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if getattr(args, "ranks", 1) > 1:
        if is_rank():
            return run_command(cmd_rank, args)
        return run_command(check_before_launch, args) or launch(["-m", "lazarus_bench.cli.train", *argv], args.ranks)
    return run_command(cmd_train, args)


if __name__ == "__main__":
    sys.exit(main())
