"""What several commands share: the model arguments, tables, layer lists, model loading and error handling."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from ..errors import LazarusError


def model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", required=True, help="checkpoint dir, hub id, or zoo:NAME")
    p.add_argument("--adapter", help="mlx-lm adapter directory (adapters.safetensors + adapter_config.json)")
    p.add_argument("--json", metavar="PATH", help="also write the full result as JSON")


def _table(rows: list[dict], headers: str | Sequence[str] = "keys") -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, floatfmt=".4g")


def _parse_layers(text: str | None) -> list | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _load(args: argparse.Namespace):
    from ..models import load_model

    return load_model(args.model, adapter_path=getattr(args, "adapter", None))


def run_command(fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one command: a ``LazarusError`` is one line on stderr and exit 2, Ctrl-C is exit 130."""
    try:
        return fn(args)
    except LazarusError as exc:
        print(f"lazarus-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lazarus-bench: interrupted", file=sys.stderr)
        return 130
