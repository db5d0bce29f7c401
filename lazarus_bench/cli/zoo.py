"""``lazarus-bench zoo ACTION``: the embedded model zoo: build, list, eval."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ..errors import LazarusError
from ..io import write_json
from .common import Parser, _table, output_file, run_command

HELP = "the embedded model zoo: build, list, eval"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lazarus-bench zoo", description=HELP)
    p.add_argument("action", choices=["build", "list", "eval"])
    p.add_argument("--size", default="default", choices=["default", "micro"])
    p.add_argument("--dir", help="zoo directory (default: shipped zoo; builds go to the cache)")
    p.add_argument("--models", nargs="+", choices=["base", "instruct", "untied", "moe"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rebuild models that already verify")
    p.add_argument("--json", metavar="PATH", type=output_file)
    return p


def _zoo_rows(root: Path) -> list[dict]:
    from ..zoo.build import KINDS
    from ..zoo.registry import verify

    rows = []
    for kind in KINDS:
        model_dir = root / kind
        if not (model_dir / "config.json").is_file():
            rows.append({"model": kind, "status": "missing"})
            continue
        try:
            manifest = verify(model_dir)
            status = "verified"
        except LazarusError as exc:
            manifest, status = json.loads((model_dir / "manifest.json").read_text()) if (
                model_dir / "manifest.json").is_file() else {}, f"BAD: {exc}"
        config = json.loads((model_dir / "config.json").read_text())
        metrics = manifest.get("metrics") or {}
        size_mb = sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file()) / 1e6
        row = {"model": kind, "type": config.get("model_type"), "params": manifest.get("params"),
               "layers": config.get("num_hidden_layers"), "vocab": config.get("vocab_size"),
               "MB": round(size_mb, 1), "status": status}
        row.update({gate: f"{metrics[gate]:.1%}" for gate in ("eval_prompts", "heldout", "word", "chat")
                    if isinstance(metrics.get(gate), float)})
        rows.append(row)
    return rows


def cmd_zoo(args: argparse.Namespace) -> int:
    from ..zoo.registry import zoo_root

    micro = args.size == "micro"
    if args.action == "list":
        root = Path(args.dir) if args.dir else zoo_root(micro)
        print(f"zoo ({args.size}) at {root}")
        print(_table(_zoo_rows(root)))
        return 0
    if args.action == "eval":
        from ..zoo.evaluate import GATES, evaluate_dir

        root = Path(args.dir) if args.dir else zoo_root(micro)
        rows, payload = [], {}
        for kind in args.models or ["base", "instruct", "untied", "moe"]:
            from ..zoo.registry import resolve_zoo

            model_dir = root / kind if args.dir else resolve_zoo(("zoo-micro:" if micro else "zoo:") + kind)
            metrics = evaluate_dir(model_dir)
            payload[kind] = metrics
            rows.append({"model": kind, **{g: f"{metrics[g]:.1%} ({'pass' if metrics[g] >= t else 'FAIL'} >= {t:.0%})"
                                           for g, t in GATES.items() if g in metrics}})
        print(_table(rows))
        if args.json:
            write_json(args.json, payload)
        return 0
    from ..zoo.build import build_zoo

    default_out = zoo_root(True) if micro else Path(zoo_root(True)).parent / "zoo-rebuilt"
    out = Path(args.dir) if args.dir else default_out
    manifests = build_zoo(out, size=args.size, seed=args.seed, force=args.force)
    shipped = zoo_root(micro)
    rows = []
    for kind, manifest in manifests.items():
        row = {"model": kind, "build s": manifest.get("build_seconds"), "tok/s": manifest.get("tokens_per_s")}
        old = shipped / kind / "manifest.json"
        before = json.loads(old.read_text()).get("metrics") or {} if old.is_file() and shipped != out else {}
        for gate in ("eval_prompts", "heldout", "word", "chat"):
            now = (manifest.get("metrics") or {}).get(gate)
            if isinstance(now, float):
                shipped_note = f" (shipped {before[gate]:.1%})" if isinstance(before.get(gate), float) else ""
                row[gate] = f"{now:.1%}" + shipped_note
        rows.append(row)
    print(f"zoo ({args.size}) built at {out}")
    print(_table(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(cmd_zoo, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
