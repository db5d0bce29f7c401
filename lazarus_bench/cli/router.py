"""``lazarus-bench router``: MoE router rows against the vocabulary, with a random-direction null."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import LazarusError
from ..io import write_json
from ..options import option
from .common import Parser, _load, _table, fill_defaults, model_args, run_command

HELP = "MoE router rows against the vocabulary, with a random-direction null"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lazarus-bench router", description=HELP)
    p.add_argument("action", nargs="?", default="weights", choices=["weights", "trace"],
                   help="weights: router rows against the vocabulary (default); trace: the experts each token of "
                        "-p goes to at every MoE layer, with router probabilities")
    model_args(p)
    p.add_argument("-p", "--prompt", action="append", help="prompt to trace (repeatable; trace only)")
    p.add_argument("--top-k", type=option("top_k"),
                   help=f"tokens listed per expert, by cosine (weights only; default {WEIGHTS_DEFAULTS['top_k']})")
    p.add_argument("--null", type=option("null"), help="random directions in the null distribution (weights only; "
                                                       f"default {WEIGHTS_DEFAULTS['null']})")
    p.add_argument("--seed", type=option("seed"),
                   help=f"seed of the null's random directions (weights only; default {WEIGHTS_DEFAULTS['seed']})")
    return p


WEIGHTS_DEFAULTS = {"top_k": 20, "null": 1000, "seed": 0}


def cmd_trace(args: argparse.Namespace) -> int:
    from ..analysis.routes import route_trace

    if not args.prompt:
        raise LazarusError("router trace needs at least one -p PROMPT")
    if given := [f"--{k.replace('_', '-')}" for k in WEIGHTS_DEFAULTS if getattr(args, k) is not None]:
        raise LazarusError(f"{', '.join(given)}: for `router weights`; `router trace` shows each token's experts as "
                           "the router picks them (its own top-k)")
    handle = _load(args)
    payload = []
    for text in args.prompt:
        routes = route_trace(handle, text)
        print(f"\nprompt {text!r}")
        rows = [{"layer": r.layer, "pos": r.position, "token": repr(r.token),
                 "experts": " ".join(f"{e} ({r.probs[e]:.3f})" for e in r.experts)} for r in routes]
        print(_table(rows))
        payload.append({"prompt": text, "routes": [r.to_dict() for r in routes]})
    print("\nexperts: the router's top-k by logit (k = experts per token), each with its softmax probability")
    if args.json:
        write_json(args.json, {"model": handle.describe(), "traces": payload})
    return 0


def cmd_router(args: argparse.Namespace) -> int:
    import numpy as np

    from ..analysis.projections import router_vocab_alignment

    if args.action == "trace":
        return cmd_trace(args)
    if args.prompt:
        raise LazarusError("-p is for `router trace`; `router weights` reads the router rows only")
    fill_defaults(args, WEIGHTS_DEFAULTS)
    handle = _load(args)
    routers = handle.routers()
    if not routers:
        raise LazarusError(f"model '{args.model}' ({handle.model_type}) has no MoE router: it is a dense model")
    unembedding = np.array(handle.unembedding())
    final_gain = np.array(handle.final_norm_gain())
    rows, layers = [], []
    for router in routers:
        result = router_vocab_alignment(
            np.array(router.weight),
            unembedding,
            router_gain=np.array(router.norm_gain),
            unembed_gain=final_gain,
            top_k=args.top_k,
            n_null=args.null,
            seed=args.seed,
        )
        layers.append({"layer": router.layer, "path": router.path, "has_bias": router.bias is not None,
                       **result.to_dict()})
        for expert in result.experts:
            rows.append({
                "layer": router.layer,
                "expert": expert.expert,
                "max cos": expert.max_cosine,
                "null p95": result.null.p95,
                "p": expert.p_value,
                "top tokens": " ".join(repr(handle.decode_token(t)) for t in expert.top_token_ids[:8]),
            })
    print(_table(rows))
    print(f"\nnull: max cosine of {args.null} random directions with the (gain-folded) unembedding rows")
    if args.json:
        write_json(args.json, {"model": handle.describe(), "layers": layers})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(cmd_router, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
