"""``lazarus-bench lens``: logit lens over layers for prompts and target words."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import LazarusError
from ..io import write_json
from ..options import option
from ..userfiles import read_user_text
from .common import Parser, _load, _table, existing_file, layer_list, model_args, run_command

HELP = "logit lens over layers for prompts and target words"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lazarus-bench lens", description=HELP)
    model_args(p)
    p.add_argument("-p", "--prompt", action="append", default=[], help="prompt (repeatable)")
    p.add_argument("--prompts-file", type=existing_file,
                   help="more prompts: one per line, or JSONL with a 'text' field per line")
    p.add_argument("-t", "--targets", nargs="+", help="target words (both spellings measured)")
    p.add_argument("--layers", type=layer_list, help="comma-separated block indices and/or 'emb' (default: all)")
    p.add_argument("--top-k", type=option("top_k"), default=5)
    p.add_argument("--all-positions", action="store_true", help="top-k/entropy at every position")
    return p


def cmd_lens(args: argparse.Namespace) -> int:
    from ..analysis.lens import logit_lens
    from ..user_prompts import read_prompts_file

    if args.prompts_file:
        read_user_text(args.prompts_file, "--prompts-file")  # a bad file: one line naming it, before any model loads
    texts = args.prompt + ([row["text"] for row in read_prompts_file(args.prompts_file)]
                           if args.prompts_file else [])
    if not texts:
        raise LazarusError("no prompts: give -p PROMPT and/or --prompts-file FILE")
    handle = _load(args)
    results = logit_lens(
        handle,
        texts,
        args.targets or (),
        layers=args.layers,
        top_k=args.top_k,
        all_positions=args.all_positions,
    )
    for res in results:
        print(f"\nprompt {res.prompt!r}  tokens {res.tokens}")
        rows = []
        for r, layer in enumerate(res.layers):
            top = res.top[r][-1]
            row = {"layer": layer, f"top-{len(top)}": "  ".join(f"{t!r} {p:.3f}" for t, _, p in top)}
            for word, target in res.targets.items():
                row[f"P({word})"] = float(target.full_prob_sum[r])
                single = [s for s in target.spellings.values() if len(s.ids) == 1]
                if single:
                    row[f"rank({word})"] = int(min(s.rank[r] for s in single))
                else:
                    row[f"rank({word}, 1st piece)"] = int(min(s.rank[r] for s in target.spellings.values()))
            row["entropy"] = float(res.entropy[r, -1])
            row["KL(final||layer)"] = float(res.kl_to_final[r, -1])
            rows.append(row)
        print(_table(rows))
    if res.targets:
        print("\nP(word): probability of the full word, both spellings summed (with and without leading space).")
        for word, target in res.targets.items():
            spelled = "; ".join(f"{s.text!r} -> {s.pieces}" for s in target.spellings.values())
            single = any(len(s.ids) == 1 for s in target.spellings.values())
            print(f"{word}: {spelled}" + ("" if single else " (no single-token spelling: rank is the first piece's, "
                                                          "P the teacher-forced whole word)"))
    if args.json:
        write_json(args.json, {"model": handle.describe(), "results": [r.to_dict() for r in results]})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(cmd_lens, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
