"""``lazarus-bench claims``: list the claim registry."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .common import _table, run_command

HELP = "list the claim registry"


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="lazarus-bench claims", description=HELP)


def cmd_claims(args: argparse.Namespace) -> int:
    from ..claims.base import all_claims

    rows = [{"id": c.id, "title": c.title, "source": c.source, "protocols": ", ".join(c.protocols),
             "training": "yes" if c.training else "no"} for c in all_claims()]
    print(_table(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(cmd_claims, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
