"""Worker entry point: ``python -m lazarus_bench.bench.worker worker {blas,sft} ...`` runs one measurement in
this process and prints its JSON after ``JSON_TAG``; ``... run`` runs ``run_bench``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from .. import blas
from ..io import jsonable
from ..training.lora import LoraSpec
from .fixtures import llama_config, load_handle
from .machine import gemm_rate
from .mlx_lm import JSON_TAG, WORKER_MODULE, MlxLmOrder, global_cblas, text_rows
from .run import run_bench
from .training import measure_pretrain, measure_train_loop, train_config


def _blas_worker(args: argparse.Namespace) -> dict:
    config = llama_config(args.hidden, args.layers, args.vocab)
    gemm = gemm_rate()
    m = measure_pretrain(config, batch=args.batch, seq_len=args.seq_len, steps=args.steps, gemm_gflops=gemm)
    return {"blas": blas.state().status, "library": global_cblas(), "gemm_gflops": gemm, "train": m.summary()}


def _sft_worker(args: argparse.Namespace) -> dict:
    """Our SFT LoRA step on an mlx-lm data directory, with mlx-lm's rows (and order, with ``--order mlx-lm``)."""
    from ..training.data import Batches, Encoded
    from ..training.sft import SFTConfig, prepare, sft_loss

    handle = load_handle(args.model)

    def read(name: str) -> list[str]:
        return [json.loads(ln)["text"] for ln in (Path(args.data) / name).read_text().splitlines() if ln]

    rows = [Encoded(ids, 1) for ids in text_rows(handle.tokenizer, read("train.jsonl"))]
    n_val = len(read("valid.jsonl")) // args.batch
    cfg = SFTConfig(train=train_config(args.iters, args.lr, name="sft-lora"), batch_size=args.batch,
                    lora=LoraSpec(num_layers=args.num_layers))
    prepare(handle, cfg)
    batch_at = (MlxLmOrder(rows, args.batch, args.seed, n_val, tight=args.order == "mlx-lm-tight")
                if args.order.startswith("mlx-lm") else Batches(rows, args.batch, args.seed))
    m = measure_train_loop("sft-lora", handle, sft_loss, batch_at, cfg.train, lora_rank=8)
    return {**m.to_dict(), "blas": blas.state().status, "library": blas.resolved_library()}


def _worker_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lazarus_bench.bench.worker")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker").add_subparsers(dest="kind", required=True)
    b = worker.add_parser("blas", help="GEMM rate and a zoo training step in this process")
    for name, default in (("hidden", 128), ("layers", 8), ("vocab", 1024), ("batch", 8), ("seq-len", 64), ("steps", 4)):
        b.add_argument(f"--{name}", type=int, default=default)
    s = worker.add_parser("sft", help="our SFT LoRA step on an mlx-lm data directory")
    s.add_argument("--model", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--iters", type=int, default=20)
    s.add_argument("--lr", type=float, default=2e-4)
    s.add_argument("--num-layers", type=int, default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--order", choices=["mlx-lm", "mlx-lm-tight", "ours"], default="mlx-lm")
    s.add_argument("--ranks", type=int, default=1, help="data-parallel ranks (rank 0 prints the JSON)")
    r = sub.add_parser("run", help="run_bench: write BENCH.md and bench.json")
    r.add_argument("--out", default="reports")
    r.add_argument("--quick", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import mlx.core as mx

    from ..zoo.ranks import is_rank, launch

    argv = list(sys.argv[1:] if argv is None else argv)
    args = _worker_parser().parse_args(argv)
    if args.command == "run":
        print(run_bench(args.out, quick=args.quick))
        return 0
    if getattr(args, "ranks", 1) > 1 and not is_rank():
        return launch(["-m", WORKER_MODULE, *argv], args.ranks)
    payload = _blas_worker(args) if args.kind == "blas" else _sft_worker(args)
    if mx.distributed.init().rank() == 0:
        print(JSON_TAG + json.dumps(jsonable(payload)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
