"""Runner: every measurement in one run (full or quick) into BENCH.md and bench.json."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import LazarusError
from ..zoo.registry import resolve_zoo, zoo_root
from .costs import main_job_costs, zoo_build_costs
from .engines import measure_engines
from .experts import measure_experts
from .fixtures import bench_tokenizer, llama_config, load_handle, save_bench_model, tokenizer_vocab
from .jit_effect import measure_jit
from .lens import measure_lens, measure_probes
from .machine import machine_info
from .mlx_lm import compare_mlx_lm, measure_blas
from .render import summarise_ratios, write_bench
from .scaling import ZOO_BASE, ZOO_VOCAB, measure_scaling
from .training import TrainMeasurement, bracket_gemm, measure_dual_reward, measure_grpo, measure_pretrain, measure_sft


@dataclass(frozen=True)
class Plan:
    """How much of each measurement a run does."""

    train_steps: int = 12
    sft_batch: int = 8
    grpo_steps: int = 4
    pretrain_batch: int = 64
    lens_prompts: int = 64
    lens_repeats: int = 9
    probe_permutations: int = 50
    mlx_lm_iters: int = 40
    mlx_lm_report: int = 5
    mlx_lm_repeats: int = 3
    mlx_lm_padded: bool = True
    blas_steps: int = 4
    blas_batch: int = 8
    blas_modes: tuple[str, ...] = ("import", "none", "ld")
    scaling_batch: int = 8
    scaling_steps: int = 6
    batch_sweep: tuple[int, ...] = (4, 16, 64)
    experts_repeats: int = 3
    jit_rounds: int = 3
    jit_repeats: int = 10
    engine_rounds: int = 2


FULL = Plan()
QUICK = Plan(train_steps=6, grpo_steps=2, pretrain_batch=16, lens_prompts=16, lens_repeats=5, probe_permutations=5,
             mlx_lm_iters=20, mlx_lm_repeats=1, mlx_lm_padded=False, blas_steps=3, blas_batch=4,
             blas_modes=("import", "none"), scaling_steps=4, batch_sweep=(4, 16), experts_repeats=1,
             jit_rounds=1, jit_repeats=5, engine_rounds=1)


def bench_model(work: Path) -> tuple[Path, str]:
    """``zoo:base`` when it is built, else a random-init model of its architecture (the bench tokenizer's ids
    use the first rows of the zoo's 1024-entry vocabulary)."""
    try:
        return resolve_zoo("zoo:base"), "zoo:base"
    except Exception:  # noqa: BLE001  (absent or unverifiable zoo: build a stand-in)
        tok = bench_tokenizer(work / "tokenizer")
        _, hidden, layers, inter = ZOO_BASE
        config = llama_config(hidden, layers, max(ZOO_VOCAB, tokenizer_vocab(tok)), intermediate=inter)
        path = save_bench_model(work / "zoo-base-arch", config, tok)
        return path, f"random-init zoo base architecture (h{hidden} x {layers}L, F {inter}, V {config['vocab_size']})"


def run_bench(out_dir: str | os.PathLike = "reports", quick: bool = False, progress: bool = True) -> Path:
    """Run every measurement (``quick``: fewer steps and repeats) and write BENCH.md + bench.json to ``out_dir``."""
    from ..training.data import arithmetic_examples

    plan = QUICK if quick else FULL
    start = time.perf_counter()
    log = (lambda msg: print(f"[bench {time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)) \
        if progress else (lambda msg: None)
    results: dict[str, Any] = {"mode": "quick" if quick else "full", "plan": asdict(plan), "errors": {},
                               "stage_seconds": {}}
    log("machine info and GEMM rate")
    results["machine"] = machine_info()

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        log(name)
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001  (a failed stage is reported, the rest still runs)
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
            value = None
        results["stage_seconds"][name] = time.perf_counter() - t0
        return value

    with tempfile.TemporaryDirectory(prefix="lazarus-bench-") as tmp:
        work = Path(tmp)
        model_dir, source = bench_model(work)
        results["model_source"] = source
        config = json.loads((model_dir / "config.json").read_text())
        vocab = int(config["vocab_size"])
        examples = arithmetic_examples(512, seed=0)
        training: list[dict] = []
        results["training"] = training

        def train_case(name: str, fn: Callable[[Any], TrainMeasurement]) -> None:
            m = stage(name, lambda: fn(load_handle(model_dir)))
            if m is not None:
                training.append(m.summary())

        steps, batch = plan.train_steps, plan.sft_batch
        train_case("sft-lora", lambda h: bracket_gemm(lambda: measure_sft(h, examples, batch_size=batch, steps=steps)))
        train_case("sft-full", lambda h: bracket_gemm(lambda: measure_sft(h, examples, lora=None, batch_size=batch,
                                                                          steps=steps, lr=1e-5)))
        train_case("dual-reward", lambda h: measure_dual_reward(h, batch_size=batch, steps=steps))
        pre = stage("zoo-pretrain", lambda: bracket_gemm(lambda: measure_pretrain(
            config, batch=plan.pretrain_batch, seq_len=64, steps=steps)))
        if pre is not None:
            training.append(pre.summary())
        results["grpo"] = stage("grpo", lambda: measure_grpo(load_handle(model_dir), steps=plan.grpo_steps))
        results["lens"] = stage("lens", lambda: measure_lens(load_handle(model_dir), n_prompts=plan.lens_prompts,
                                                             repeats=plan.lens_repeats, model_dir=str(model_dir)))
        results["probes"] = stage("probes", lambda: measure_probes(load_handle(model_dir),
                                                                   n_permutations=plan.probe_permutations))
        results["experts"] = stage("experts", lambda: measure_experts(load_handle(resolve_zoo("zoo:moe")).model,
                                                                      repeats=plan.experts_repeats))
        results["jit"] = stage("jit", lambda: measure_jit(rounds=plan.jit_rounds, repeats=plan.jit_repeats))
        results["blas"] = stage("blas", lambda: measure_blas(vocab=vocab, batch=plan.blas_batch, steps=plan.blas_steps,
                                                             modes=plan.blas_modes))
        results["mlx_lm"] = stage("mlx_lm", lambda: compare_mlx_lm(
            model_dir, work / "mlx_lm", batch=batch, iters=plan.mlx_lm_iters, report_every=plan.mlx_lm_report,
            repeats=plan.mlx_lm_repeats, padded=plan.mlx_lm_padded))
        results["scaling"] = stage("scaling", lambda: measure_scaling(
            vocab, batch=plan.scaling_batch, steps=plan.scaling_steps, batches=plan.batch_sweep,
            on_case=lambda c: log(f"scaling {c}")))
    results["engines"] = stage("engines", lambda: measure_engines(rounds=plan.engine_rounds))
    results["main_job"] = stage("main job", lambda: main_job_costs(Path(out_dir) / "records"))
    results["zoo_build"] = stage("zoo build", lambda: zoo_build_costs(zoo_root()))
    results["ratios"] = summarise_ratios(results)
    results["wall_s"] = time.perf_counter() - start
    path = write_bench(results, out_dir)
    log(f"wrote {path}")
    return path


def read_fullsize(folder: Path) -> list[dict]:
    """The full-size checks committed in ``folder`` (``bench.fullsize --json``), each with the plan's predictions."""
    from .fullsize import with_predictions

    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            found.append({"file": path.name, **with_predictions(json.loads(path.read_text()))})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LazarusError(f"{path}: not a full-size check ({type(exc).__name__})") from None
    return found


def refresh_from_records(out_dir: str | os.PathLike = "reports") -> Path:
    """Re-read what BENCH.md draws from the records and the zoo's manifests (the main job's costs, ratio (g), the zoo
    build) into the last run's ``bench.json`` and BENCH.md, measuring nothing: the benchmarks stay that run's, and
    the page says when the records were read."""
    from datetime import datetime, timezone

    path = Path(out_dir) / "bench.json"
    if not path.is_file():
        raise LazarusError(f"{path}: no benchmark run to refresh; `lazarus-bench bench` writes one")
    try:
        results = json.loads(path.read_text())
        if not isinstance(results, dict) or "machine" not in results:
            raise ValueError("not the bench.json of `lazarus-bench bench`")
    except (ValueError, TypeError) as exc:
        raise LazarusError(f"{path}: unreadable ({exc}); move it away or use another --report-dir") from None
    results["main_job"] = main_job_costs(Path(out_dir) / "records")
    results["zoo_build"] = zoo_build_costs(zoo_root())
    results["fullsize"] = read_fullsize(Path(out_dir) / "fullsize")
    results["ratios"] = summarise_ratios(results)
    results["records_read"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return write_bench(results, out_dir)
