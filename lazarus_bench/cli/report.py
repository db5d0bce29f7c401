"""``lazarus-bench report``: render REPORT.md from the result records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .common import Parser, apply_include, check_records_read, include_args, run_command

HELP = "render REPORT.md from the result records"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lazarus-bench report", description=HELP)
    p.add_argument("--report-dir", default="reports", help="folder holding records/ (default: reports)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace report pages this tool did not write (by default such a page stops the command)")
    include_args(p)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    apply_include(args)
    from ..errors import LazarusError
    from ..suite.records import RECORDS_DIR
    from ..suite.report import has_records, render

    folder = Path(args.report_dir) / RECORDS_DIR
    if folder.is_dir() and not has_records(args.report_dir):  # a wrong folder, not an empty report
        raise LazarusError(f"no records in {str(folder)!r}: run `lazarus-bench run --report-dir {args.report_dir}` "
                           "first")
    print(render(args.report_dir, overwrite=args.overwrite))
    check_records_read(args.report_dir)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(cmd_report, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
