"""``lazarus-bench bench``: benchmarks (tokens/s, memory, ratios, MFU, scaling) written to BENCH.md."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from .. import outputs
from ..errors import LazarusError
from .common import Parser, run_command

HELP = "benchmarks: tokens/s, memory, ratios, MFU, scaling -> BENCH.md"
BENCH_FILES = ("BENCH.md", "bench.json")
PARTS_FILES = ("PARTS.md", "parts.json")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lazarus-bench bench", description=HELP)
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats (about 2 minutes)")
    p.add_argument("--report-dir", default="reports", help="folder of the records and BENCH.md (default: reports)")
    p.add_argument("--parts", metavar="MODEL",
                   help="instead: where each claim's time goes on MODEL (gates, measure, controls, graded controls, "
                        "nulls), one claim after another in this process -> PARTS.md, parts.json (rows of MODEL's "
                        "other claims already there are kept)")
    p.add_argument("--claims", metavar="IDS", help="with --parts: these claims only (comma-separated; default all)")
    p.add_argument("--records", action="store_true",
                   help="instead: re-read what BENCH.md draws from the records and the zoo's manifests (the main job, "
                        "ratio (g), the zoo build) into the last run's bench.json and BENCH.md, measuring nothing")
    p.add_argument("--overwrite", action="store_true",
                   help="replace BENCH.md, bench.json, PARTS.md or parts.json in --report-dir though this tool did "
                        "not write them (by default such a file stops the command before it measures)")
    return p


def _own_outputs(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """Writable, and the tool's own (or --overwrite), before minutes of measurements rather than after."""
    from ..io import check_writable

    for name in names:
        check_writable(Path(args.report_dir) / name)
    outputs.refuse_foreign(args.report_dir, names, "--report-dir", args.overwrite)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.records:
        if args.parts is not None or args.quick or args.claims is not None:
            raise LazarusError("--records re-reads the records into the last run's BENCH.md; it measures nothing, so "
                               "it takes no --parts, --quick or --claims")
        from ..bench.run import refresh_from_records

        _own_outputs(args, BENCH_FILES)  # both are rewritten, as a run rewrites them
        print(refresh_from_records(args.report_dir))
        outputs.record(args.report_dir, BENCH_FILES)
        return 0
    if args.parts is None:
        if args.claims is not None:
            raise LazarusError("--claims picks the claims of --parts MODEL; the benchmarks run no claim")
        from ..bench.run import run_bench

        _own_outputs(args, BENCH_FILES)
        print(run_bench(args.report_dir, quick=args.quick))
        outputs.record(args.report_dir, BENCH_FILES)
        return 0
    if args.quick:
        raise LazarusError("--quick shortens the benchmarks; --parts runs each claim's slow tier as the main job does")
    return cmd_parts(args)


def read_parts(out: Path) -> dict | None:
    """The folder's earlier ``parts.json`` (its other claims' rows are kept), None when there is none."""
    path = out / "parts.json"
    if not path.is_file():
        return None
    try:
        previous = json.loads(path.read_text())
        if not {"model", "tier", "rows", "commit", "environment"} <= set(previous):
            raise ValueError("not a parts.json of `bench --parts`")
    except (ValueError, TypeError) as exc:
        raise LazarusError(f"{path}: unreadable ({exc}); move it away or use another --report-dir") from None
    return previous


def cmd_parts(args: argparse.Namespace) -> int:
    from ..bench.parts import measure_parts, render_parts
    from ..harness.registry import get_claim
    from ..io import write_json

    claim_ids = [get_claim(c).id for c in (args.claims or "").split(",") if c.strip()] or None
    if args.claims is not None and not claim_ids:
        raise LazarusError(f"--claims {args.claims!r} names no claim; leave it out to run every claim")
    out = Path(args.report_dir)
    _own_outputs(args, PARTS_FILES)

    def save(result: dict) -> None:  # after every claim: a run stopped part-way keeps what it measured
        write_json(out / "parts.json", result)
        (out / "PARTS.md").write_text(render_parts(result))
        outputs.record(out, PARTS_FILES)

    measure_parts(args.parts, claim_ids, records_dir=out / "records", on_row=save, previous=read_parts(out))
    print(f"parts: {out / 'PARTS.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(cmd_bench, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
