"""Command line: a thin layer over the library; tables for people, ``--json PATH`` for machines.

``lazarus-bench COMMAND ...`` imports ``lazarus_bench.cli.COMMAND`` (one module per command, each with its own
``build_parser()`` and ``main(argv)``, as in mlx-lm) and hands it the remaining arguments.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# command name -> module in this package (each has HELP, build_parser() and main(argv))
COMMANDS: dict[str, str] = {
    "info": "info",
    "lens": "lens",
    "probe": "probe",
    "router": "router",
    "train": "train",
    "claims": "claims",
    "run": "run",
    "bench": "bench",
    "report": "report",
    "zoo": "zoo",
}


def _module(name: str):
    return importlib.import_module(f"{__name__}.{COMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser, for ``--help``: every command with its one-line help (no heavy imports)."""
    parser = argparse.ArgumentParser(prog="lazarus-bench", description=__doc__.splitlines()[0],
                                     epilog="Run 'lazarus-bench COMMAND --help' for a command's own arguments.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        sub.add_parser(name, help=_module(name).HELP, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        build_parser().print_help(sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"lazarus-bench: error: unknown command {name!r} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    return _module(name).main(rest)


if __name__ == "__main__":
    sys.exit(main())
