"""``lazarus-bench bench``: benchmarks (tokens/s, memory, ratios, MFU, scaling) written to BENCH.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .common import Parser, run_command

HELP = "benchmarks: tokens/s, memory, ratios, MFU, scaling -> BENCH.md"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lazarus-bench bench", description=HELP)
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats (about 2 minutes)")
    p.add_argument("--report-dir", default="reports")
    return p


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench.run import run_bench
    from ..io import check_writable

    for name in ("BENCH.md", "bench.json"):  # before minutes of measurements, not after
        check_writable(Path(args.report_dir) / name)
    print(run_bench(args.report_dir, quick=args.quick))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(cmd_bench, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
