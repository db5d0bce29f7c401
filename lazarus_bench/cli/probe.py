"""``lazarus-bench probe``: per-layer linear probes for the operation class."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from ..errors import LazarusError
from ..io import write_json
from ..options import option
from ..userfiles import read_user_text
from .common import (
    Parser,
    _load,
    _table,
    existing_file,
    layer_list,
    model_args,
    run_command,
)

HELP = "per-layer linear probes for the operation class"


def build_parser() -> argparse.ArgumentParser:
    from .. import prompts

    p = Parser(prog="lazarus-bench probe", description=HELP)
    model_args(p)
    p.add_argument("--set", choices=["word", "symbol"],
                   help="prompt set (package data; default word); not with --classes or --prompts-file")
    p.add_argument("--classes", action="append", metavar="LABEL:PROMPT|PROMPT",
                   help="your own class of prompts instead of --set, e.g. \"multiply:7 * 8 = |12 * 5 = \" "
                        "(repeatable, one per class)")
    p.add_argument("--prompts-file", type=existing_file,
                   help="your own prompts instead of --set: JSONL with text, label and optional split (train/test)")
    p.add_argument("--test", action="append", metavar="PROMPT",
                   help="a held-out prompt to classify at the best layer (repeatable)")
    p.add_argument("--layers", type=layer_list, help="comma-separated block indices and/or 'emb' (default: all)")
    p.add_argument("--permutations", type=option("permutations"), default=100,
                   help="label permutations for the p-value")
    p.add_argument("--seed", type=option("seed"), default=0, help="seed of the folds, permutations and control task")
    assert set(prompts.available()) >= {"word", "symbol"}
    return p


def cmd_probe(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import numpy as np

    from .. import prompts
    from ..analysis.features import last_token_states
    from ..analysis.probes import fit_predict, probe_layers
    from ..user_prompts import read_prompts_file, user_set

    if (args.classes or args.prompts_file) and args.set:
        raise LazarusError(f"--set {args.set} and your own prompts (--classes / --prompts-file) exclude each other: "
                           "give one")
    if args.classes or args.prompts_file:
        if args.prompts_file:
            read_user_text(args.prompts_file, "--prompts-file")  # a bad file: one line naming it
        rows = read_prompts_file(args.prompts_file) if args.prompts_file else None
        prompt_set = user_set(args.classes, rows, args.test)
        if not len(prompt_set.where(split="train")):
            raise LazarusError("no labelled prompts to train the probe on: give --classes or labelled file rows")
        args.set = "user"
    else:
        args.set = args.set or "word"
        prompt_set = prompts.load_set(args.set)
        if args.test:
            prompt_set = prompts.PromptSet(prompt_set.name, prompt_set.items + user_set(
                test=args.test).items, prompt_set.source, prompt_set.note)
    train = replace(prompt_set, items=tuple(it for it in prompt_set if it.split != "test"))
    test = prompt_set.where(split="test")
    handle = _load(args)
    X, labels = last_token_states(handle, train.texts(), args.layers)
    templates = {it.template for it in train}
    groups = [it.template if len(templates) > 1 else it.pair for it in train]
    report = probe_layers(
        X,
        train.labels(),
        groups,
        layer_labels=labels,
        n_permutations=args.permutations,
        control_keys=[it.item for it in train],
        seed=args.seed,
    )
    group_name = "leave-one-template-out" if len(templates) > 1 else "leave-one-pair-out"
    print(f"probe on {args.set!r}: {len(train)} prompts, {len(set(train.labels()))} classes; group CV = {group_name}")
    print(_table(report.table_rows()))
    payload: dict[str, Any] = {"model": handle.describe(), "set": args.set, "group_cv": group_name,
                               "report": report.to_dict()}
    if len(test):
        row = report.best_index
        X_test, _ = last_token_states(handle, test.texts(), [labels[row]])
        known = "?" not in test.labels()
        pred = fit_predict(X[row], np.array(train.labels()), X_test[0],
                           y_test=np.array(test.labels()) if known else None, seed=args.seed)
        accuracy = f" (accuracy {pred.accuracy:.3f})" if pred.accuracy is not None else ""
        print(f"\nheld-out prompts at best layer {labels[row]}{accuracy}:")
        rows = [
            {"prompt": text, "label": true, "predicted": p, "P(predicted)": float(np.max(proba))}
            for text, true, p, proba in zip(test.texts(), test.labels(), pred.labels, pred.proba)
        ]
        print(_table(rows))
        payload["held_out"] = {"layer": labels[row], **pred.to_dict(), "prompts": test.texts()}
    if args.json:
        write_json(args.json, payload)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(cmd_probe, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
