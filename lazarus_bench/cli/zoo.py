"""``lazarus-bench zoo ACTION``: the embedded model zoo (build, list, eval) and the real-checkpoint replicas."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from ..errors import LazarusError
from ..io import write_json
from ..options import option
from .common import Parser, _table, output_file, run_command

HELP = ("the embedded model zoo: build, list, eval, pack (the weights to ship); `replicas` builds scaled-down "
        "random-weight replicas of the writeups' checkpoints with their real tokenizers (ids replica:NAME)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lazarus-bench zoo", description=HELP)
    p.add_argument("action", choices=["build", "list", "eval", "pack", "replicas"])
    p.add_argument("--size", default="default", choices=["default", "micro", "recipe3"],
                   help="default: recipe v3; micro: v3 at test size; recipe3: the recipe of the builds before v3")
    p.add_argument("--dir", help="zoo directory (default: shipped zoo; builds go to the cache)")
    p.add_argument("--models", nargs="+", choices=["base", "instruct", "untied", "moe"])
    p.add_argument("--seed", type=option("seed"), default=None,
                   help="build seed (default: the one its zoo was built with); replicas: init seed (default 0)")
    p.add_argument("--builds", type=_seeds, metavar="SEEDS",
                   help="build: other builds of the zoo, one per seed (e.g. 2,3,4), each into <zoo>/builds/s<SEED> "
                        "(base, instruct, moe), stamped with the lock in force; list, eval: only these builds "
                        "(list's default: every build); 'confirmatory': the seeds lock v2 drew")
    p.add_argument("--force", action="store_true",
                   help="rebuild the named models (all without --models) even where they verify")
    p.add_argument("--full", action="store_true",
                   help="replicas: Llama-3.2-1B and TinyLlama-1.1B at their real size (random weights, bfloat16, "
                        "2.5 GB and 2.2 GB on disk; about 5 GB of memory while each is made), ids replica:NAME-full")
    p.add_argument("--ranks", type=option("ranks"), default=None,
                   help="data-parallel training processes for a build (default: 2 on 2+ cores, 1 for micro)")
    p.add_argument("--weight-decay", type=option("weight_decay"), default=None,
                   help="build: the base's AdamW weight decay in pretraining, anneal and extensions (recipe v3: 0.1)")
    p.add_argument("--json", metavar="PATH", type=output_file,
                   help="eval: the metrics per model (per build with --builds); list: the table's rows per build")
    p.add_argument("--write", action="store_true",
                   help="eval: store the fresh metrics in each model's manifest (the weights are checked first)")
    return p


def _seeds(text: str) -> list[int]:
    """'2,3,4' -> [2, 3, 4]: non-negative build seeds; 'confirmatory': those lock v2 drew (CONFIRMATORY.json)."""
    if text == "confirmatory":
        from ..harness.lock2 import read_drawn

        drawn = read_drawn()
        if not drawn:
            raise argparse.ArgumentTypeError("no confirmatory seeds drawn yet (lazarus-bench claims --draw-seeds TAG)")
        return list(drawn["seeds"])
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated seeds like 2,3,4, got {text!r}")
    return seeds


def _zoo_rows(root: Path) -> list[dict]:
    from ..zoo.build import KINDS
    from ..zoo.pack import shipped_bytes
    from ..zoo.registry import verify

    rows = []
    for kind in KINDS:
        model_dir = root / kind
        if not (model_dir / "config.json").is_file():
            rows.append({"model": kind, "status": "absent"})
            continue
        try:
            manifest = verify(model_dir)
            status = "verified"
        except LazarusError as exc:
            manifest, status = json.loads((model_dir / "manifest.json").read_text()) if (
                model_dir / "manifest.json").is_file() else {}, f"BAD: {exc}"
        config = json.loads((model_dir / "config.json").read_text())
        metrics = manifest.get("metrics") or {}
        size_mb = shipped_bytes(model_dir) / 1e6  # a packed model counts its pack, not the unpacked file beside it
        row = {"model": kind, "type": config.get("model_type"), "params": manifest.get("params"),
               "layers": config.get("num_hidden_layers"), "vocab": config.get("vocab_size"),
               "MB": round(size_mb, 1), "status": status}
        row.update({gate: f"{metrics[gate]:.1%}" for gate in ("eval_prompts", "heldout", "word", "chat")
                    if isinstance(metrics.get(gate), float)})
        row.update(_claim_gate_cells(metrics))
        if kind == "base":  # the recipe's weight decay, and how many extensions the base needed to meet its gates
            row["weight decay"] = (manifest.get("build_config") or {}).get("train", {}).get("weight_decay")
            row["extensions"] = len(manifest.get("extensions") or [])
        row["metrics"] = metrics
        rows.append(row)
    base = next((r["metrics"] for r in rows if r["model"] == "base" and "metrics" in r), {})
    for row in rows:
        metrics = row.pop("metrics", None)
        if metrics is not None:
            row["gates"] = _gates_cell(row["model"], metrics, base)
    return rows


CLAIM_GATE_COLUMNS = {"H13: remain presence before SFT": ("H13 remain", "{:.2%}"),
                      "H15a: backbone models the data's text": ("H15a loss/lnV", "{:.2f}"),
                      "H15b: backbone models the data's text": ("H15b loss/lnV", "{:.2f}"),
                      "H05a: lens ceiling over H01's T'": ("H05a ceiling/T' (target)", "{:.1f}x")}


def _claim_gate_cells(metrics: dict) -> dict:
    """The claim gates' figures a model's manifest records, one column each (absent where not measured)."""
    gates, router = metrics.get("claim_gates") or {}, metrics.get("router")
    cells = {column: form.format(gates[name]["value"]) for name, (column, form) in CLAIM_GATE_COLUMNS.items()
             if name in gates}
    if router:
        cells["router moved / loss fall"] = f"{router['moved']:.2f} / {router['loss_fall']:.1%}"
    return cells


def _build_title(build: str, path: Path) -> str:
    """'development build (seed 1; ...)', or 'build s4 (seed 4, confirmatory under lock v1+9)': a confirmatory build
    was built under a frozen lock, another is the role its manifest names (development seeds of recipe v3), else
    exploratory (the rule of ``zoo.registry.build_info``); builds of the current recipe say so."""
    try:
        manifest = json.loads((path / "base" / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    seed, lock = manifest.get("corpus_seed", build[1:] or "?"), manifest.get("lock")
    if not build:
        return f"development build (seed {seed}; criteria and controls were tuned on it)"
    role = (f"confirmatory under lock {lock.get('version')}" if isinstance(lock, dict)
            else manifest.get("role", "exploratory"))
    from ..zoo.recipe import RECIPE

    recipe = f", recipe {RECIPE}" if manifest.get("recipe") == RECIPE else ""
    return f"build {build} (seed {seed}, {role}{recipe})"


def _builds_summary(listed: dict[str, list[dict]]) -> str:
    """One line under the tables: how many builds, how many bases meet their gates, and how many builds have each
    derived variant (a build ships its base and only the variants its claims use that met their gates)."""
    from ..zoo.build import KINDS

    def count(kind: str, met: bool = False) -> int:
        return sum(any(r["model"] == kind and r["status"] == "verified" and (not met or r.get("gates") == "met")
                       for r in rows) for rows in listed.values())

    n, variants = len(listed), ", ".join(f"{kind} in {count(kind)}" for kind in KINDS[1:])
    return (f"{n} build{'s' * (n > 1)}; base meets its gates in {count('base', met=True)} of {n}; {variants}. "
            "An absent variant was not derived for that build or missed its gates; docs/zoo.md lists every seed tried.")


def _gates_cell(kind: str, metrics: dict, base: dict) -> str:
    """'met', or the gates the model misses (see ``zoo.evaluate.gate_misses``)."""
    from ..zoo.evaluate import gate_misses
    from ..zoo.fitness import claim_gate_misses, router_misses

    try:
        misses = gate_misses(kind, metrics, base) + claim_gate_misses(metrics) + router_misses(metrics)
    except KeyError as exc:
        misses = [f"metric {exc} not measured"]
    return "met" if not misses else "MISSED: " + "; ".join(misses)


def _shipped_base(root: Path) -> dict:
    """The base's recorded metrics (the reference for the relative gates when base is not re-evaluated)."""
    try:
        return json.loads((root / "base" / "manifest.json").read_text()).get("metrics") or {}
    except (OSError, ValueError):
        return {}


def _record_metrics(model_dir: Path, metrics: dict) -> None:
    """Replace the metrics in a verified model's manifest (after the evaluation changed); stages are kept."""
    from ..zoo.build import write_manifest
    from ..zoo.evaluate import GATES
    from ..zoo.registry import verify

    manifest = verify(model_dir)
    stages = (manifest.get("metrics") or {}).get("stages")
    manifest["metrics"] = dict(metrics, **({"stages": stages} if stages else {}))
    manifest["gates"] = GATES
    manifest.pop("files", None)
    write_manifest(model_dir, manifest)


# the options each action reads: given to another, they would be silently ignored
APPLIES = {"models": ("build", "eval"), "seed": ("build", "replicas"), "builds": ("build", "eval", "list"),
           "force": ("build", "replicas"), "ranks": ("build",), "weight_decay": ("build",), "json": ("eval", "list"),
           "write": ("eval",), "full": ("replicas",)}


def cmd_zoo(args: argparse.Namespace) -> int:
    from ..zoo.registry import zoo_root

    _check_applies(args)
    micro = args.size == "micro"
    if args.action == "replicas":
        return _replicas(args)
    if args.action in ("list", "pack", "eval") and args.dir and not Path(args.dir).is_dir():
        raise LazarusError(f"--dir {args.dir}: no such zoo directory")
    if args.action == "list":
        return _list(args, Path(args.dir) if args.dir else zoo_root(micro))
    if args.action == "pack":
        return _pack(Path(args.dir) if args.dir else zoo_root(micro))
    if args.action == "eval":
        return _eval(args, Path(args.dir) if args.dir else zoo_root(micro))
    return _build(args)


def _check_applies(args: argparse.Namespace) -> None:
    """Refuse an option the action does not read (see ``APPLIES``): it would be silently ignored."""
    for name, actions in APPLIES.items():
        if getattr(args, name) not in (None, False) and args.action not in actions:
            raise LazarusError(f"--{name.replace('_', '-')} does not apply to `zoo {args.action}` (only to "
                               f"{', '.join(actions)})")


def _list(args: argparse.Namespace, root: Path) -> int:
    """``zoo list``: one table per build of the zoo at ``root`` (only --builds' when given), a summary line, and the
    rows as JSON with --json."""
    from ..zoo.registry import zoo_builds

    builds = zoo_builds(root)
    _check_listed(args, root, builds)
    listed = {}
    for build, path in builds.items():
        if args.builds and build not in {f"s{seed}" for seed in args.builds}:
            continue
        listed[build] = _zoo_rows(path)
        print(f"zoo ({args.size}) {_build_title(build, path)} at {path}")
        print(_table(listed[build]))
    print(_builds_summary(listed))
    if args.json:
        write_json(args.json, {build or "development": rows for build, rows in listed.items()})
    return 0


def _check_listed(args: argparse.Namespace, root: Path, builds: dict[str, Path]) -> None:
    """Refuse a ``zoo list`` of a folder holding no zoo model, or of --builds that are not among its builds."""
    from ..zoo.build import KINDS

    if not any((path / kind / "config.json").is_file() for path in builds.values() for kind in KINDS):
        raise LazarusError(f"{root}: no zoo model in it (a zoo has <dir>/base/config.json); see `zoo build --help`")
    if args.builds and (unknown := [f"s{seed}" for seed in args.builds if f"s{seed}" not in builds]):
        raise LazarusError(f"--builds: no build {', '.join(unknown)} in {root} (builds: "
                           f"{', '.join(b for b in builds if b) or 'none'})")


def _build(args: argparse.Namespace) -> int:
    """``zoo build``: the rebuilt zoo (or --dir), or with --builds one build per seed; rank 0 prints what it built."""
    from ..zoo.build import build_zoo

    if args.builds:
        return _builds(args)
    from ..zoo.pretrain import world

    ((out, _, kinds),) = _build_targets(args)
    manifests = build_zoo(out, size=args.size, seed=args.seed, force=args.force, weight_decay=args.weight_decay,
                          kinds=kinds)
    if world()[1] != 0:
        return 0
    _print_built(args, out, manifests)
    return 0


def _eval(args: argparse.Namespace, root: Path) -> int:
    """``zoo eval``: re-measure the gates of the named models, in the development build or in each of --builds."""
    from ..zoo.build import KINDS
    from ..zoo.evaluate import METRICS, evaluate_dir
    from ..zoo.fitness import fitness_metrics
    from ..zoo.recipe import SIZES
    from ..zoo.registry import build_dir, resolve_zoo

    prefix = "zoo-micro:" if args.size == "micro" else "zoo:"
    folders = {f"s{seed}": build_dir(root, seed) for seed in args.builds} if args.builds else {"": root}
    kinds = args.models or list(KINDS)
    dirs = {}
    for build, folder in folders.items():  # every named model is found before any is evaluated
        dirs[build] = {k: folder / k if args.dir else resolve_zoo(prefix + k + (f"@{build}" if build else ""))
                       for k in kinds}
        if absent := [k for k, d in dirs[build].items() if not (d / "config.json").is_file()]:
            have = ", ".join(k for k in KINDS if (folder / k / "config.json").is_file()) or "none"
            raise LazarusError(f"--dir {folder}: no {', '.join(absent)} model in it (available: {have})")
    payload = {}
    for build, models in dirs.items():
        rows, payload[build] = [], {}
        for kind, model_dir in models.items():
            metrics = evaluate_dir(model_dir, n_heldout=SIZES[args.size].eval_heldout)
            metrics.update(fitness_metrics(kind, model_dir, args.size))
            if args.write:
                _record_metrics(model_dir, metrics)
            payload[build][kind] = metrics
            rows.append({"model": kind, **{g: f"{metrics[g]:.1%}" for g in METRICS if g in metrics},
                         "GRPO start reward": f"{metrics['grpo_start_reward']['rate']:.2f}",
                         "statements": f"{metrics['statements']['accuracy']:.1%}", **_claim_gate_cells(metrics)})
        for row in rows:
            base = payload[build].get("base") or _shipped_base(folders[build])
            row["gates"] = _gates_cell(row["model"], payload[build][row["model"]], base)
        if build:
            print(f"zoo ({args.size}) {_build_title(build, folders[build])}")
        print(_table(rows))
    if args.json:
        write_json(args.json, payload if args.builds else payload[""])
    return 0


def _build_targets(args: argparse.Namespace) -> list[tuple[Path, int | None, tuple[str, ...]]]:
    """(directory, seed, kinds) of each zoo `zoo build` writes: the rebuilt zoo (or --dir), or with --builds one
    build per seed beside the development build."""
    from ..zoo.build import KINDS
    from ..zoo.registry import build_dir, zoo_root

    micro = args.size == "micro"
    if not args.builds:
        out = Path(args.dir) if args.dir else zoo_root(True) if micro else Path(zoo_root(True)).parent / "zoo-rebuilt"
        return [(out, args.seed, tuple(args.models) if args.models else KINDS)]
    root = Path(args.dir) if args.dir else zoo_root(micro)
    if args.seed is not None:
        raise LazarusError("--seed does not combine with --builds: --builds names each build's seed")
    root_seed = _root_seed(root)
    if root_seed in args.builds:
        raise LazarusError(f"--builds: seed {root_seed} is the build at {root} itself; name the other builds' seeds")
    kinds = tuple(args.models) if args.models else ("base", "instruct", "moe")
    return [(build_dir(root, seed), seed, kinds) for seed in args.builds]


def _root_seed(root: Path) -> int | None:
    """The seed of the build at a zoo's root (its base's manifest), or None where there is none."""
    try:
        return json.loads((root / "base" / "manifest.json").read_text()).get("corpus_seed")
    except (OSError, ValueError):
        return None


def _refuse_replacing(args: argparse.Namespace) -> int:
    """Before anything is built (and before ranks start): no verified model is replaced by one from another config
    (a build's other weight decay, say), whichever zoo the command writes, unless --force names it."""
    from ..zoo.build import refuse_replacing

    for out, seed, kinds in _build_targets(args):
        refuse_replacing(out, size=args.size, seed=seed, weight_decay=args.weight_decay, kinds=kinds, force=args.force)
    return 0


def _builds(args: argparse.Namespace) -> int:
    """``zoo build --builds 2,3,4``: one build per seed beside the development build, stamped with the lock."""
    import time

    from ..harness import prereg
    from ..zoo.build import build_zoo
    from ..zoo.pretrain import world
    from ..zoo.recipe import DEV_SEEDS

    lock = prereg.read_lock_file()
    frozen = {"lock": {"version": prereg.lock_version(lock), "frozen": True}} if lock.get("frozen") else {}
    drawn = _confirmatory_seeds(args)
    for out, seed, kinds in _build_targets(args):
        start = time.perf_counter()
        stamp = {"role": "development"} if args.size == "default" and seed in DEV_SEEDS else frozen
        if drawn and seed in drawn["seeds"]:
            stamp = {"lock": {**frozen["lock"], "drawn_from": drawn["commit"]}}
        manifests = build_zoo(out, size=args.size, seed=seed, force=args.force, stamp=stamp,
                              weight_decay=args.weight_decay, kinds=kinds)
        if world()[1] == 0:
            print(f"build s{seed}: {time.perf_counter() - start:.0f} s")
            _print_built(args, out, manifests)
    return 0


def _confirmatory_seeds(args: argparse.Namespace) -> dict:
    """The draw when --builds names a confirmatory seed, checked: recipe v3 at its default size, and the recipe
    the lock froze is the one here (a confirmatory build of another recipe would answer another question)."""
    from ..harness import lock2
    from ..zoo.recipe import SIZES, recipe_hash

    drawn = lock2.read_drawn()
    if not set(args.builds) & set(drawn.get("seeds", [])):
        return {}
    if args.size != "default":
        raise LazarusError(f"--builds: confirmatory seeds are built with recipe v3 (--size default), not {args.size}")
    if drawn["recipe"]["hash"] != recipe_hash(SIZES["default"]):
        raise LazarusError("--builds: the zoo recipe here is not the one lock v2 froze; build from the freeze commit")
    return {**drawn, "seeds": set(drawn["seeds"])}


def _print_built(args: argparse.Namespace, out: Path, manifests: dict) -> None:
    from ..zoo.registry import zoo_root

    micro = args.size == "micro"
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


def _replicas(args: argparse.Namespace) -> int:
    from ..bench.formulas import dims_of, param_count
    from ..zoo.registry import replica_root
    from ..zoo.replicas import FULL, REPLICAS, build_replica

    root = Path(args.dir) if args.dir else replica_root()
    rows = []
    for name, rep in REPLICAS.items():
        if args.full and name not in FULL:
            continue
        path = build_replica(name, root, seed=0 if args.seed is None else args.seed, force=args.force, full=args.full)
        config = json.loads((path / "config.json").read_text())
        rows.append({"id": f"replica:{path.name}", "model_type": config["model_type"], "vocab": config["vocab_size"],
                     "parameters": f"{param_count(dims_of(config)):,}", "tokenizer": rep.vocab,
                     "chat": "yes" if rep.chat_template else "no", "stand-in": rep.stand_in})
    print(f"replicas at {root} (random weights: their verdicts mean nothing)")
    print(_table(rows))
    return 0


def _pack(root: Path) -> int:
    """Pack every model in ``root`` whose pack is missing or stale (a rebuilt model; git ships only the packs) and
    print what the folder ships."""
    from ..zoo.pack import SHIP_LIMIT, pack, shipped_bytes, unpacked_models

    rows = [{"weights": str(w.relative_to(root)), "bytes": w.stat().st_size, "packed": pack(w).stat().st_size}
            for w in unpacked_models(root)]
    if rows:
        print(_table(rows))
    print(f"{root} ships {shipped_bytes(root) / 1e6:.1f} MB (limit {SHIP_LIMIT / 1e6:.0f} MB)")
    return 0


def default_ranks(size: str) -> int:
    """Two data-parallel ranks on a machine with two or more cores (1.6-1.7x one process); micro builds in one."""
    return 1 if size == "micro" else min(2, os.cpu_count() or 1)


def main(argv: Sequence[str] | None = None) -> int:
    from ..zoo.ranks import is_rank, launch

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    ranks = args.ranks or default_ranks(args.size)
    if args.action == "build" and not is_rank() and (status := run_command(_refuse_replacing, args)):
        return status
    if args.action == "build" and ranks > 1 and not is_rank():
        return launch(["-m", "lazarus_bench.cli.zoo", *argv], ranks)
    return run_command(cmd_zoo, args)


if __name__ == "__main__":
    sys.exit(main())
