"""Command line: a thin layer over the library; tables for people, ``--json PATH`` for machines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import lazarus_bench  # noqa: F401  (BLAS preload before mlx.core)

from .cli_io import write_json
from .errors import LazarusError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def _table(rows: list[dict], headers: str | Sequence[str] = "keys") -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, floatfmt=".4g")


def _parse_layers(text: str | None) -> list | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _load(args: argparse.Namespace):
    from .models import load_model

    return load_model(args.model, adapter_path=getattr(args, "adapter", None))


def command(name: str):
    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return register


@command("info")
def cmd_info(args: argparse.Namespace) -> int:
    from .runinfo import environment

    env = environment(measure_gemm=not args.no_gemm)
    blas = env["blas"]
    rows = [
        ("python", env["python"]),
        ("platform", env["platform"]),
        ("device", env["device"]),
        ("blas", f"{blas['status']}: {blas['library'] or 'platform default'}"),
    ]
    if "gemm_gflops_1024" in blas:
        rows.append(("gemm float32 1024^3", f"{blas['gemm_gflops_1024']} GFLOP/s"))
    rows += [(name, version) for name, version in env["packages"].items()]
    rows.append(("git commit", env["git_commit"] or "-"))
    print(_table([{"item": k, "value": v} for k, v in rows]))
    if not blas["status"] in ("preloaded", "not-needed"):
        print(f"\nWARNING: {blas['detail']}", file=sys.stderr)
    if args.json:
        write_json(args.json, env)
    return 0


@command("lens")
def cmd_lens(args: argparse.Namespace) -> int:
    from .lens import logit_lens

    handle = _load(args)
    results = logit_lens(
        handle,
        args.prompt,
        args.targets or (),
        layers=_parse_layers(args.layers),
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
                row[f"rank({word})"] = int(min(s.rank[r] for s in target.spellings.values()))
            row["entropy"] = float(res.entropy[r, -1])
            row["KL(final||layer)"] = float(res.kl_to_final[r, -1])
            rows.append(row)
        print(_table(rows))
    if res.targets:
        print("\nP(word): probability of the full word, both spellings summed (with and without leading space).")
    if args.json:
        write_json(args.json, {"model": handle.describe(), "results": [r.to_dict() for r in results]})
    return 0


@command("probe")
def cmd_probe(args: argparse.Namespace) -> int:
    import numpy as np

    from . import prompts
    from .features import last_token_states
    from .probes import fit_predict, probe_layers

    prompt_set = prompts.load_set(args.set)
    train = prompt_set.where(split="train") if any(it.split == "test" for it in prompt_set) else prompt_set
    test = prompt_set.where(split="test")
    handle = _load(args)
    X, labels = last_token_states(handle, train.texts(), _parse_layers(args.layers))
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
        pred = fit_predict(X[row], np.array(train.labels()), X_test[0], y_test=np.array(test.labels()), seed=args.seed)
        print(f"\nheld-out prompts at best layer {labels[row]} (accuracy {pred.accuracy:.3f}):")
        rows = [
            {"prompt": text, "label": true, "predicted": p, "P(predicted)": float(np.max(proba))}
            for text, true, p, proba in zip(test.texts(), test.labels(), pred.labels, pred.proba)
        ]
        print(_table(rows))
        payload["held_out"] = {"layer": labels[row], **pred.to_dict(), "prompts": test.texts()}
    if args.json:
        write_json(args.json, payload)
    return 0


@command("router")
def cmd_router(args: argparse.Namespace) -> int:
    import numpy as np

    from .projections import router_vocab_alignment

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


def _read_examples(path: str):
    """mlx-lm style JSONL: {"prompt": ..., "completion": ...} per line (``label`` optional)."""
    from .training.data import Example

    examples = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            examples.append(Example(row["prompt"], row["completion"], row.get("label", "")))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise LazarusError(f"{path}:{n}: expected a JSON object with 'prompt' and 'completion'") from None
    if not examples:
        raise LazarusError(f"{path}: no examples")
    return examples


def _train_config(args: argparse.Namespace, base):
    from dataclasses import replace

    changes = {"seed": args.seed}
    for name in ("steps", "lr"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    return replace(base, **changes)


def _train_sft(args: argparse.Namespace, handle) -> dict:
    from dataclasses import replace

    from . import prompts
    from .training.data import arithmetic_examples
    from .training.lora import LoraSpec
    from .training.sft import SFTConfig, train_sft

    if args.data:
        examples = _read_examples(args.data)
    else:
        evaluation = prompts.seed000_tests().texts() + prompts.dual_reward_eval().texts()
        examples = arithmetic_examples(args.n_train, args.data_seed, exclude=evaluation)
    split = max(1, int(0.9 * len(examples)))
    cfg = SFTConfig()
    cfg = replace(cfg, batch_size=args.batch_size or cfg.batch_size,
                  lora=None if args.full else LoraSpec(rank=args.rank, scale=args.scale),
                  train=replace(_train_config(args, cfg.train), save_at=tuple(args.save_at or ()), name="sft"))
    return train_sft(handle, examples[:split], examples[split:], cfg, out_dir=args.out).to_dict()


def _train_dual_reward(args: argparse.Namespace, handle) -> dict:
    from dataclasses import replace

    from .training.dual_reward import DualRewardConfig, train_dual_reward

    cfg = DualRewardConfig.for_protocol(args.protocol)
    changes = {"train": _train_config(args, cfg.train)}
    if args.cls_weight is not None:
        changes["cls_weight"] = args.cls_weight
    if args.batch_size:
        changes["batch_size"] = args.batch_size
    return train_dual_reward(handle, replace(cfg, **changes), out_dir=args.out).to_dict()


def _train_two_stage(args: argparse.Namespace, handle) -> dict:
    from .training.two_stage import TwoStageConfig, train_two_stage

    cfg = TwoStageConfig.aggressive() if args.aggressive else TwoStageConfig()
    cfg = cfg.scaled(args.stage1_steps or cfg.stage1.train.steps, args.stage2_steps or cfg.stage2.train.steps)
    return train_two_stage(handle, cfg, out_dir=args.out).to_dict()


def _train_grpo(args: argparse.Namespace, handle) -> dict:
    from dataclasses import replace

    from .training.grpo import seed002_configs, train_grpo
    from .training.lora import LoraSpec

    cfg = seed002_configs(args.seed)[args.variant]
    changes = {"train": _train_config(args, cfg.train)}
    if args.lora_rank:
        changes["lora"] = LoraSpec(rank=args.lora_rank)
    if args.batch_size:
        changes["prompts_per_step"] = args.batch_size
    return train_grpo(handle, replace(cfg, **changes), out_dir=args.out).to_dict()


def _train_engram(args: argparse.Namespace, handle) -> dict:
    from dataclasses import replace

    from .training.engram import EngramConfig, train_engram

    cfg = EngramConfig()
    changes = {"train": _train_config(args, cfg.train)}
    if args.batch_size:
        changes["batch_size"] = args.batch_size
    return train_engram(handle, args.variant, args.dataset, replace(cfg, **changes), out_dir=args.out).to_dict()


TRAINERS = {"sft": _train_sft, "dual-reward": _train_dual_reward, "grpo": _train_grpo, "two-stage": _train_two_stage,
            "engram": _train_engram}


@command("train")
def cmd_train(args: argparse.Namespace) -> int:
    from .runinfo import environment

    handle = _load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = TRAINERS[args.method](args, handle)
    payload = {"method": args.method, "model": handle.describe(), "result": result, "environment": environment()}
    path = write_json(args.json or out / "result.json", payload)
    print(f"{args.method}: wrote {path}")
    return 0


@command("claims")
def cmd_claims(args: argparse.Namespace) -> int:
    from .claims.base import all_claims

    rows = [{"id": c.id, "title": c.title, "source": c.source, "protocols": ", ".join(c.protocols),
             "training": "yes" if c.training else "no"} for c in all_claims()]
    print(_table(rows))
    return 0


@command("run")
def cmd_run(args: argparse.Namespace) -> int:
    from .report import render
    from .runner import run_suite

    models = args.model or ["zoo:base", "zoo:instruct", "zoo:untied", "zoo:moe"]
    if args.tier == "fast" and not args.model:
        from .zoo.build import ensure_micro_zoo

        models = [m.replace("zoo:", "zoo-micro:") for m in models]
        ensure_micro_zoo(progress=True)
    claim_ids = [c for part in (args.claims or []) for c in part.split(",") if c]
    overrides = json.loads(args.params) if args.params else None
    from .runner import default_jobs

    run_suite(models, claim_ids or None, tier=args.tier, n_seeds=args.seeds, report_dir=args.report_dir,
              protocols=args.protocol, overrides=overrides, cache_dir=args.cache_dir,
              jobs=args.jobs if args.jobs is not None else default_jobs())
    print(f"report: {render(args.report_dir)}")
    return 0


@command("bench")
def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    print(run_bench(args.report_dir, quick=args.quick))
    return 0


@command("report")
def cmd_report(args: argparse.Namespace) -> int:
    from .report import render

    print(render(args.report_dir))
    return 0


def _zoo_rows(root: Path) -> list[dict]:
    from .zoo.build import KINDS, verify

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


@command("zoo")
def cmd_zoo(args: argparse.Namespace) -> int:
    from .models import zoo_root

    micro = args.size == "micro"
    if args.action == "list":
        root = Path(args.dir) if args.dir else zoo_root(micro)
        print(f"zoo ({args.size}) at {root}")
        print(_table(_zoo_rows(root)))
        return 0
    if args.action == "eval":
        from .zoo.evaluate import GATES, evaluate_dir

        root = Path(args.dir) if args.dir else zoo_root(micro)
        rows, payload = [], {}
        for kind in args.models or ["base", "instruct", "untied", "moe"]:
            from .models import resolve_zoo

            model_dir = root / kind if args.dir else resolve_zoo(("zoo-micro:" if micro else "zoo:") + kind)
            metrics = evaluate_dir(model_dir)
            payload[kind] = metrics
            rows.append({"model": kind, **{g: f"{metrics[g]:.1%} ({'pass' if metrics[g] >= t else 'FAIL'} >= {t:.0%})"
                                           for g, t in GATES.items() if g in metrics}})
        print(_table(rows))
        if args.json:
            write_json(args.json, payload)
        return 0
    from .zoo.build import build_zoo

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
                row[gate] = f"{now:.1%}" + (f" (shipped {before[gate]:.1%})" if isinstance(before.get(gate), float) else "")
        rows.append(row)
    print(f"zoo ({args.size}) built at {out}")
    print(_table(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lazarus-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("-m", "--model", required=True, help="checkpoint dir, hub id, or zoo:NAME")
        p.add_argument("--adapter", help="mlx-lm adapter directory (adapters.safetensors + adapter_config.json)")
        p.add_argument("--json", metavar="PATH", help="also write the full result as JSON")

    p = sub.add_parser("info", help="environment, active BLAS and a measured GEMM rate")
    p.add_argument("--no-gemm", action="store_true", help="skip the GEMM measurement")
    p.add_argument("--json", metavar="PATH")

    p = sub.add_parser("lens", help="logit lens over layers for prompts and target words")
    model_args(p)
    p.add_argument("-p", "--prompt", action="append", required=True, help="prompt (repeatable)")
    p.add_argument("-t", "--targets", nargs="+", help="target words (both spellings measured)")
    p.add_argument("--layers", help="comma-separated block indices and/or 'emb' (default: all)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--all-positions", action="store_true", help="top-k/entropy at every position")

    from . import prompts

    p = sub.add_parser("probe", help="per-layer linear probes for the operation class")
    model_args(p)
    p.add_argument("--set", default="word", choices=["word", "symbol"], help="prompt set (package data)")
    p.add_argument("--layers", help="comma-separated block indices and/or 'emb' (default: all)")
    p.add_argument("--permutations", type=int, default=100, help="label permutations for the p-value")
    p.add_argument("--seed", type=int, default=0)
    assert set(prompts.available()) >= {"word", "symbol"}

    p = sub.add_parser("router", help="MoE router rows against the vocabulary, with a random-direction null")
    model_args(p)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--null", type=int, default=1000, help="random directions in the null distribution")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("zoo", help="the embedded model zoo: build, list, eval")
    p.add_argument("action", choices=["build", "list", "eval"])
    p.add_argument("--size", default="default", choices=["default", "micro"])
    p.add_argument("--dir", help="zoo directory (default: shipped zoo; builds go to the cache)")
    p.add_argument("--models", nargs="+", choices=["base", "instruct", "untied", "moe"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rebuild models that already verify")
    p.add_argument("--json", metavar="PATH")

    p = sub.add_parser("claims", help="list the claim registry")

    p = sub.add_parser("run", help="the main job: every claim on every model, records and REPORT.md (report-only)")
    p.add_argument("-m", "--model", action="append", help="model (repeatable; default: the zoo)")
    p.add_argument("--claims", action="append", help="claim ids, comma-separated (default: all)")
    p.add_argument("--tier", default="slow", choices=["fast", "slow"], help="slow = full protocol")
    p.add_argument("--seeds", type=int, help="seeds per training claim (default: the claim's own)")
    p.add_argument("--protocol", action="append", choices=["corrected", "original"], help="default: every protocol")
    p.add_argument("--params", help='JSON overrides per claim, e.g. {"H01": {"max_prob": 0.02}}')
    p.add_argument("--report-dir", default="reports")
    p.add_argument("-j", "--jobs", type=int, help="claim runs in parallel (default: one per core on CPU, up to 4)")
    p.add_argument("--cache-dir", help="trained fixtures (default: $LAZARUS_CACHE_DIR or ~/.cache/lazarus_bench)")

    p = sub.add_parser("bench", help="benchmarks: tokens/s, memory, ratios, MFU, scaling -> BENCH.md")
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats (about 2 minutes)")
    p.add_argument("--report-dir", default="reports")

    p = sub.add_parser("report", help="render REPORT.md from the result records")
    p.add_argument("--report-dir", default="reports")

    p = sub.add_parser("train", help="train with one of the writeups' methods (adapters + result JSON)")
    tsub = p.add_subparsers(dest="method", required=True)
    for method in TRAINERS:
        q = tsub.add_parser(method)
        model_args(q)
        q.add_argument("-o", "--out", required=True, help="output directory (adapters, checkpoints, result.json)")
        q.add_argument("--steps", type=int)
        q.add_argument("--lr", type=float)
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--batch-size", type=int)
        if method == "sft":
            q.add_argument("--data", help="JSONL with prompt/completion per line (default: generated arithmetic)")
            q.add_argument("--n-train", type=int, default=5000)
            q.add_argument("--data-seed", type=int, default=0)
            q.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
            q.add_argument("--rank", type=int, default=8)
            q.add_argument("--scale", type=float, default=20.0)
            q.add_argument("--save-at", type=int, nargs="*", help="also save adapters at these steps")
        if method == "dual-reward":
            q.add_argument("--protocol", default="corrected", choices=["corrected", "original"])
            q.add_argument("--cls-weight", type=float)
        if method == "grpo":
            q.add_argument("--variant", default="grpo",
                           choices=["grpo", "dual", "balanced", "entropy", "low_lr", "cls_heavy"],
                           help="seed 002's runs: pure GRPO, GRPO + dual-reward, and the four collapse fixes")
            q.add_argument("--lora-rank", type=int, help="train LoRA of this rank instead of all parameters")
        if method == "engram":
            q.add_argument("--variant", default="M3", choices=["M1", "M2", "M3"],
                           help="M1 classifier, M2 + LM loss, M3 + engram bottleneck prefix")
            q.add_argument("--dataset", default="sentiment", choices=["sentiment", "topic"])
        if method == "two-stage":
            q.add_argument("--aggressive", action="store_true", help="the writeup's Experiment 1 stage 2")
            q.add_argument("--stage1-steps", type=int)
            q.add_argument("--stage2-steps", type=int)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except LazarusError as exc:
        print(f"lazarus-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lazarus-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
