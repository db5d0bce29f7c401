"""``lazarus-bench run``: every claim on every model, result records and REPORT.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..errors import LazarusError
from ..io import check_writable
from ..options import option
from ..protocols import PROTOCOLS
from .common import (
    Parser,
    adapter_dir,
    apply_include,
    check_records_read,
    include_args,
    json_object,
    run_command,
)

HELP = "the main job: every claim on every model, records and REPORT.md (report-only)"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lazarus-bench run", description=HELP)
    p.add_argument("-m", "--model", action="append", help="model (repeatable; default: the zoo)")
    p.add_argument("--claims", action="append", help="claim ids, comma-separated (default: all)")
    p.add_argument("--tier", default="slow", choices=["fast", "slow"], help="slow = full protocol")
    p.add_argument("--seeds", type=option("seeds"), help="seeds per training claim (default: the claim's own)")
    p.add_argument("--protocol", action="append", choices=list(PROTOCOLS),
                   help="default: every protocol of each claim (corrected+<defect> adds one original defect)")
    p.add_argument("--params", type=json_object, help='JSON overrides per claim, e.g. {"H01": {"max_prob": 0.02}}')
    p.add_argument("--adapter", type=adapter_dir,
                   help="an mlx-lm LoRA adapter folder, fused into the one -m model before the claims run")
    p.add_argument("--report-dir", help="where records and REPORT.md go (default: reports/ for the embedded zoo's "
                                        "main job, reports/fast for its fast tier, runs/<model> with -m)")
    p.add_argument("-j", "--jobs", type=option("jobs"),
                   help="claim runs in parallel (default: one per core on CPU, up to 4)")
    p.add_argument("--cache-dir", help="trained fixtures (default: $LAZARUS_CACHE_DIR or ~/.cache/lazarus_bench)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local worker processes (default) or a Ray cluster (pip install 'lazarus-bench[ray]')")
    p.add_argument("--address", help="the Ray cluster's address, e.g. 10.0.0.5:6379 (default: start a local one)")
    p.add_argument("--instruct-pair", action="append", metavar="BASE=INSTRUCT",
                   help="the instruct variant of a -m base model, for H06 (repeatable; default: the zoo's own pairs "
                        "and <id>-Instruct for a Llama-3.2 base)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace report pages in --report-dir that this tool did not write (by default a user's "
                        "REPORT.md there stops the run before it starts)")
    p.add_argument("--fresh", action="store_true", help="measure every record again, even one whose inputs (claim "
                                                         "hash, model hash, parameters, code it calls) are unchanged")
    p.add_argument("--plan", action="store_true",
                   help="print each claim's predicted peak memory and wall time on this machine and exit (reads "
                        "only each model's config.json, never its weights)")
    p.add_argument("--force", action="store_true",
                   help="run claims that the plan predicts will not fit in memory (default: skip them, saying why)")
    p.add_argument("--memory", type=gigabytes, metavar="GB",
                   help="plan against this much memory instead of what is available here (a laptop's 16, say)")
    p.add_argument("--population", metavar="NAME",
                   help="the -m models are builds of one recipe (pretraining seeds of one model): the report gives "
                        "each claim one population verdict over them (5 testable or more)")
    include_args(p)
    return p


def gigabytes(text: str) -> float:
    """A memory size in GB, > 0 and at most 1e5."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1e5:
        raise argparse.ArgumentTypeError(f"expected a memory size in GB between 0 and 100000, got {text!r}")
    return value


def without_unfit_builds(models: list[str], root: Path) -> list[str]:
    """The main job's models less the builds that miss a gate the development build meets (not replicates of
    it), each named on stderr with the gates it missed."""
    from ..zoo.gates import unfit_builds

    unfit = unfit_builds(root)
    for build, misses in unfit.items():
        print(f"zoo build {build} left out: its base misses {'; '.join(misses)}", file=sys.stderr)
    return [m for m in models if m.rpartition("@")[2] not in unfit]


def prepare_report_dir(report_dir: str, args: argparse.Namespace) -> None:
    """Before any claim runs: a folder the run can write to, holding no REPORT.md of the user's, and the family
    ``--population`` names recorded there."""
    from ..suite.populations import add
    from ..suite.report import check_report_dir

    check_writable(Path(report_dir) / "REPORT.md")
    check_report_dir(report_dir, args.overwrite)
    if args.population:
        add(report_dir, args.population, list(dict.fromkeys(args.model or [])), args.overwrite)


def cmd_run(args: argparse.Namespace) -> int:
    apply_include(args)
    from ..harness.registry import get_claim
    from ..suite.report import render
    from ..suite.runner import default_jobs, run_suite
    from ..zoo.registry import default_models

    _check_adapter_options(args)
    claim_ids = _claim_ids_of(args.claims)
    claim_ids = _check_claims(claim_ids, args.protocol, args.tier)  # before the fast tier builds its micro zoo
    if args.seeds is not None and claim_ids and not any(get_claim(c).training for c in claim_ids):
        raise LazarusError(f"--seeds {args.seeds}: none of {', '.join(claim_ids)} trains a model; --seeds sets the "
                           "training claims' seeds")
    if args.plan:
        return print_plan(args.model or default_models(), claim_ids, args.tier, args.jobs, args.memory)
    report_dir = args.report_dir or default_report_dir(args.model, args.adapter, args.tier)
    prepare_report_dir(report_dir, args)
    if args.cache_dir:  # the trained runs go there: an unwritable one would turn every training claim into an ERROR
        check_writable(Path(args.cache_dir) / "runs")
    jobs = args.jobs if args.jobs is not None else default_jobs()
    summaries = []
    for chosen, group in _model_groups(args, claim_ids, jobs).items():
        summaries += run_suite(group, list(chosen) or None, tier=args.tier, n_seeds=args.seeds,
                               report_dir=report_dir, protocols=args.protocol, overrides=args.params,
                               cache_dir=args.cache_dir, jobs=jobs, adapter=args.adapter, fresh=args.fresh,
                               engine=args.engine, address=args.address)
    if any((Path(report_dir) / "records").glob("*.json")):  # none when every job failed before writing its record
        print(f"report: {render(report_dir, overwrite=args.overwrite)}")
        check_records_read(report_dir)
    kernel_warning(sum(not s.get("reused") for s in summaries), remote=args.engine == "ray" and bool(args.address))
    return _error_status(summaries)


def _check_adapter_options(args: argparse.Namespace) -> None:
    """--address only with the Ray engine, and --adapter only with one -m model and only as LoRA layers to fuse:
    refused before anything else runs."""
    from ..harness.base import ZOO_PREFIXES
    from ..zoo.registry import resolve_zoo

    if args.address and args.engine != "ray":
        raise LazarusError("--address names a Ray cluster: use it with --engine ray")
    if args.adapter and len(args.model or []) != 1:
        raise LazarusError("--adapter needs exactly one -m MODEL: the checkpoint the adapter was trained on")
    if args.adapter and full_fine_tune(args.adapter):
        base = str(resolve_zoo(args.model[0])) if args.model[0].startswith(ZOO_PREFIXES) else args.model[0]
        raise LazarusError(f"--adapter {args.adapter} is a full fine-tune (fine_tune_type: full), not LoRA layers to "
                           f"fuse: its file is the whole model; write it out with `python -m mlx_lm fuse --model "
                           f"{base} --adapter-path {args.adapter} --save-path OUT` and run with -m OUT")


def _claim_ids_of(given: Sequence[str] | None) -> list[str]:
    """The ids the --claims values name (comma-separated, repeatable); a --claims that names none is refused."""
    claim_ids = [c.strip() for part in (given or []) for c in part.split(",") if c.strip()]
    if given is not None and not claim_ids:
        raise LazarusError(f"--claims {','.join(given)!r} names no claim; leave it out to run every claim")
    return claim_ids


def _model_groups(args: argparse.Namespace, claim_ids: list[str], jobs: int) -> dict[tuple, list]:
    """{claims: models} the run measures: the -m models (checked, and without the claims that do not fit unless
    --force) or the zoo's; the --instruct-pair variants are registered on the way."""
    if args.model:
        groups = _given_model_groups(args, claim_ids, jobs)
    else:
        groups = {tuple(claim_ids): _zoo_models(args.tier)}
    if args.instruct_pair:
        from ..harness.pairs import add_instruct_pairs

        pairs = instruct_pair_args(args.instruct_pair, args.model or [])
        preflight(list(pairs.values()))
        add_instruct_pairs(pairs)
    return groups


def _given_model_groups(args: argparse.Namespace, claim_ids: list[str], jobs: int) -> dict[tuple, list]:
    """The -m models, each once, grouped by the claims that fit in memory on each (all of them with --force or a
    Ray engine), and their tokenizers loaded once here."""
    models = list(dict.fromkeys(args.model))  # a model named twice is one model: its jobs run once
    groups = {tuple(claim_ids): models}
    if not args.force and args.engine == "local":  # from the configs, before any tokenizer or weights load
        groups = fitting_groups(models, claim_ids, args.tier, jobs, args.memory)
        if not groups:
            raise LazarusError("no claim fits in memory on any model given (see the lines above); --force runs "
                               "them")
    preflight(models)
    return groups


def _zoo_models(tier: str) -> list[str]:
    """The zoo's models when no -m is given: the micro zoo's own builds on the fast tier (built when missing), else
    the shipped zoo's less the builds that miss a gate."""
    from ..zoo.registry import default_models, zoo_root

    if tier == "fast":  # the micro zoo's own builds, not the shipped zoo's renamed
        from ..zoo.build import ensure_micro_zoo

        ensure_micro_zoo(progress=True)
        return default_models(micro=True)
    return without_unfit_builds(default_models(), zoo_root())


def _error_status(summaries: list[dict]) -> int:
    """The exit status: 1 when any run ended in an error (a crash is not a verdict), naming the first on stderr;
    else 0."""
    if errors := [s for s in summaries if s.get("status") == "error"]:
        first, n = errors[0], len(errors)
        why = " ".join(str(first.get("reason", "")).split())[:300]
        where = ("no record was written for it" if why.startswith(WORKER_FAILED) else
                 "their records and the report give the cause")
        print(f"lazarus-bench: error: {n} of {len(summaries)} runs ended in an error (first: {first['claim']} on "
              f"{first['model']} ({first['protocol']}): {why}); {where}", file=sys.stderr)
        return 1
    return 0


WORKER_FAILED = ("worker failed", "Ray task failed")


def _plans(models: Sequence[str], claim_ids: Sequence[str], tier: str, jobs: int | None, memory_gb: float | None):
    """(model, config, plans, rates) per model, with the memory each of ``jobs`` parallel workers can have (of
    ``memory_gb`` when given, else of what is available)."""
    from dataclasses import replace

    from ..bench.plan import GB, has_chat_template, measure_rates, plan_run, read_config
    from ..harness.registry import all_claims, get_claim
    from ..models import check_model_id

    claims = [get_claim(c) for c in claim_ids] if claim_ids else all_claims()
    for model in models:
        check_model_id(model)  # a missing path or a malformed hub id: the same line as a run without the plan
    configs = {m: read_config(m) for m in models}  # every config first: a bad one fails before the timing
    rates = measure_rates()
    total = int(memory_gb * GB) if memory_gb is not None else rates.memory_bytes
    rates = replace(rates, memory_bytes=total // max(1, jobs or 1))
    return [(m, cfg, plan_run(cfg, claims, rates, tier, m, has_chat_template(m)), rates) for m, cfg in configs.items()]


def print_plan(models: Sequence[str], claim_ids: Sequence[str], tier: str, jobs: int | None,
               memory_gb: float | None = None) -> int:
    """``run --plan``: each model's per-claim plan (one worker unless -j says otherwise)."""
    from ..bench.plan import render

    for model, config, plans, rates in _plans(models, claim_ids, tier, jobs, memory_gb):
        print(render(model, config, plans, rates) + "\n")
    return 0


def fitting_groups(models: Sequence[str], claim_ids: Sequence[str], tier: str, jobs: int,
                   memory_gb: float | None = None) -> dict[tuple, list]:
    """{claims: models}: each model with the claims the plan says fit in memory (the others skipped, one line each
    on stderr); models that keep the same claims share a group."""
    from ..bench.plan import too_big

    groups: dict[tuple, list] = {}
    for model, _config, plans, rates in _plans(models, claim_ids, tier, jobs, memory_gb):
        skipped = too_big(plans, rates)
        for claim, why in skipped.items():
            print(f"lazarus-bench: {claim} on {model} skipped: {why}"
                  + (f" (memory shared by -j {jobs} workers)" if jobs > 1 else ""), file=sys.stderr)
        kept = tuple(p.claim for p in plans if p.claim not in skipped)
        if kept:
            groups.setdefault(kept if claim_ids or skipped else (), []).append(model)
    return groups  # the engines' reasons for a job that wrote no record


def instruct_pair_args(given: Sequence[str], models: Sequence[str]) -> dict[str, str]:
    """``--instruct-pair BASE=INSTRUCT`` values as {base: instruct}: each BASE one of the -m models."""
    pairs = {}
    for text in given:
        base, sep, instruct = text.partition("=")
        if not sep or not base or not instruct:
            raise LazarusError(f"--instruct-pair {text!r}: expected BASE=INSTRUCT, e.g. my-base=my-base-instruct")
        if base not in models:
            raise LazarusError(f"--instruct-pair {text!r}: {base!r} is not a -m model of this run")
        pairs[base] = instruct
    return pairs


def full_fine_tune(adapter: str) -> bool:
    """Whether an adapter folder holds a full fine-tune (mlx-lm's and `train sft --full`'s adapter_config.json)."""
    from ..userfiles import read_user_json

    return read_user_json(Path(adapter) / "adapter_config.json", "the adapter's config").get("fine_tune_type") == "full"


def preflight(models: Sequence[str]) -> None:
    """Load each local checkpoint folder's tokenizer here, before any worker starts: a folder that cannot load then
    fails with one line, not as one failed worker per job reported after the run. Zoo models are checked by their
    manifests and hub ids by the download."""
    from mlx_lm.utils import load_tokenizer

    from ..harness.base import ZOO_PREFIXES
    from ..models import check_model_id

    for model in models:
        check_model_id(model)
        local = Path(model).expanduser()
        if model.startswith(ZOO_PREFIXES) or not local.is_dir():
            continue
        try:
            load_tokenizer(local)
        except Exception as exc:  # noqa: BLE001  (any tokenizer error is one line naming the folder)
            why = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            raise LazarusError(f"could not load model '{model}': its tokenizer does not load ({why})") from None


def kernel_warning(measured: int, remote: bool = False) -> None:
    """One warning line when this run measured records with OpenBLAS's fallback kernels on a CPU it did not
    recognise: they differ from records made with another kernel (reused records are as they were; ``remote``: a Ray
    cluster at an address measured them, not this host)."""
    from ..bench.machine import kernel_fallback, openblas_core
    from ..jit import cpu_has_fma

    if measured and not remote and (fallback := kernel_fallback(openblas_core(), cpu_has_fma())):
        print(f"lazarus-bench: warning: {measured} record(s) measured here: {fallback}", file=sys.stderr)


def _check_claims(claim_ids: list[str], protocols: list[str] | None, tier: str) -> list[str]:
    """Every named claim exists and, with --protocol, has a chosen protocol on this tier (naming none: at least one
    claim has one); else the run would do nothing for it and say nothing. Returns the ids as registered, each once."""
    from ..harness.registry import all_claims, get_claim

    chosen = list({c.id: c for c in (get_claim(i) for i in claim_ids)}.values()) if claim_ids else all_claims()
    lacking = [c for c in chosen if protocols and not set(protocols) & set(c.tier_protocols(tier))]
    if lacking and (claim_ids or len(lacking) == len(chosen)):
        has = "; ".join(f"{c.id}: {', '.join(c.tier_protocols(tier))}" for c in lacking[:4])
        raise LazarusError(f"--protocol {', '.join(protocols)}: not a protocol of {', '.join(c.id for c in lacking)} "
                           f"on the {tier} tier (theirs: {has}{'; ...' if len(lacking) > 4 else ''})")
    return [c.id for c in chosen] if claim_ids else []


def default_report_dir(models: Sequence[str] | None, adapter: str | None, tier: str) -> str:
    """The committed ``reports/`` only for the embedded zoo's main job; a user's models get ``runs/<model>``."""
    if not models:
        return "reports" if tier == "slow" else "reports/fast"
    from ..harness.base import slug

    name = "+".join(models) + (f"+{adapter}" if adapter else "")
    return str(Path("runs") / slug(name))


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(cmd_run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
