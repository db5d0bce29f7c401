"""``lazarus-bench info``: environment, active BLAS and a measured GEMM rate."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ..io import write_json
from .common import Parser, _table, output_file, run_command

HELP = "environment, active BLAS and a measured GEMM rate"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lazarus-bench info", description=HELP)
    p.add_argument("--no-gemm", action="store_true", help="skip the GEMM measurement")
    p.add_argument("--json", metavar="PATH", type=output_file)
    return p


def cmd_info(args: argparse.Namespace) -> int:
    from ..bench.machine import kernel_fallback, openblas_core
    from ..blas import KERNEL_ENV, pinned_kernel
    from ..jit import cpu_has_fma
    from ..runinfo import environment

    env = environment(measure_gemm=not args.no_gemm)
    blas = env["blas"]
    rows = [
        ("python", env["python"]),
        ("platform", env["platform"]),
        ("device", env["device"]),
        ("blas", f"{blas['status']}: {blas['library'] or 'platform default'}"),
    ]
    core = openblas_core()
    if core:
        how = f" (pinned by {KERNEL_ENV})" if os.environ.get(KERNEL_ENV) else " (pinned)"
        rows.append(("openblas kernel", core + (how if core.lower() == (pinned_kernel() or "").lower() else "")))
    if "gemm_gflops_1024" in blas:
        rows.append(("gemm float32 1024^3", f"{blas['gemm_gflops_1024']} GFLOP/s"))
    rows += [(name, version) for name, version in env["packages"].items()]
    rows.append(("git commit", env["git_commit"] or "-"))
    print(_table([{"item": k, "value": v} for k, v in rows]))
    if blas["status"] not in ("preloaded", "not-needed"):
        print(f"\nWARNING: {blas['detail']}", file=sys.stderr)
    if fallback := kernel_fallback(core, cpu_has_fma()):
        print(f"\nWARNING: {fallback}", file=sys.stderr)
    if args.json:
        write_json(args.json, env)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(cmd_info, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
