"""``lazarus-bench claims``: list the claim registry."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .common import Parser, _table, apply_include, include_args, run_command

HELP = "list the claim registry; --lock pre-registers every claim's criteria, parameters and measure"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lazarus-bench claims", description=HELP)
    parser.add_argument("--lock", action="store_true",
                        help="write the pre-registration lock (hash of each claim's criteria, parameters and measure "
                             "source); commit it before a run")
    parser.add_argument("--lock-file", default=None, help="lock file (default: the one shipped beside the claims)")
    include_args(parser)
    return parser


def cmd_claims(args: argparse.Namespace) -> int:
    apply_include(args)
    from ..claims import prereg
    from ..claims.base import all_claims

    path = args.lock_file or prereg.LOCK
    if args.lock:
        hashes = prereg.write_lock(path)
        print(f"locked {len(hashes)} claims in {path}")
        return 0
    lock = prereg.read_lock(path)
    rows = [{"id": c.id, "title": c.title, "source": c.source, "protocols": ", ".join(c.protocols),
             "training": "yes" if c.training else "no", "lock": prereg.check(c, lock)["status"]}
            for c in all_claims()]
    print(_table(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(cmd_claims, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
