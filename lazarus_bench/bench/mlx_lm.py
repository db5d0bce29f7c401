"""Subprocess runs: OpenBLAS vs reference BLAS in fresh processes, and our SFT LoRA step vs ``mlx_lm lora``.

The worker side of these runs is :mod:`lazarus_bench.bench.worker`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import blas
from ..training.timing import median
from .fixtures import arithmetic_texts, fixed_length_texts, load_handle
from .formulas import dims_of, parse_mlx_lm_report, window_means, window_rates
from .machine import _proc_cpu_seconds, _proc_peak_rss
from .training import describe_dims

JSON_TAG = "BENCH_JSON "
WORKER_MODULE = "lazarus_bench.bench.worker"


@dataclass
class ProcessRun:
    """A finished subprocess: exit code, output, its peak RSS, wall and CPU seconds, and stamped lines.

    ``stamps`` holds (wall time, process CPU seconds, line) for each output line the caller asked to
    stamp, read the moment the line arrived.
    """

    returncode: int
    output: str
    max_rss_gb: float
    seconds: float
    cpu_seconds: float
    stamps: list[tuple[float, float, str]] = field(default_factory=list)

    def payload(self) -> dict:
        """The JSON a worker printed (the last ``BENCH_JSON`` line)."""
        lines = [ln[len(JSON_TAG):] for ln in self.output.splitlines() if ln.startswith(JSON_TAG)]
        if self.returncode != 0 or not lines:
            raise RuntimeError(f"worker failed (exit {self.returncode}):\n{self.output[-3000:]}")
        return json.loads(lines[-1])


def run_process(cmd: Sequence[str], env: dict | None = None, timeout: float = 3600,
                stamp: Callable[[str], bool] | None = None) -> ProcessRun:
    """Run ``cmd`` to completion, sampling its peak RSS (VmHWM) and stamping the lines ``stamp`` selects."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                            bufsize=1)
    lines: list[str] = []
    stamps: list[tuple[float, float, str]] = []

    def read() -> None:
        for line in proc.stdout:
            if stamp is not None and stamp(line):
                stamps.append((time.perf_counter(), _proc_cpu_seconds(proc.pid) or float("nan"), line))
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peak = 0
    while True:
        peak = max(peak, _proc_peak_rss(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > timeout:
            proc.kill()
        time.sleep(0.05)
    reader.join(timeout=10)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if not peak:
        peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return ProcessRun(proc.returncode, "".join(lines), peak / 1e9, time.perf_counter() - start,
                      usage.ru_utime + usage.ru_stime, stamps)


def openblas_path() -> str | None:
    """The OpenBLAS our preload uses (or would use), for ``LD_PRELOAD`` into processes that do not import us."""
    state = blas.state()
    if state.path:
        return state.path
    return next((p for p in blas.CANDIDATES if os.path.exists(p)), None)


def subprocess_env(*, preload: str = "import", extra: dict | None = None) -> dict:
    """Environment for a subprocess. ``preload``: ``import`` (as inherited: a process that imports
    lazarus_bench preloads OpenBLAS, one that does not, like mlx-lm, keeps the reference BLAS),
    ``none`` (``LAZARUS_NO_BLAS_PRELOAD=1``: reference BLAS everywhere) or ``ld`` (OpenBLAS through
    ``LD_PRELOAD`` for any process, our import hook disabled)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", blas.DISABLE_ENV)}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["NO_COLOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if preload in ("none", "ld"):
        env[blas.DISABLE_ENV] = "1"
    if preload == "ld":
        path = openblas_path()
        if path is None:
            raise RuntimeError("no OpenBLAS to LD_PRELOAD")
        env["LD_PRELOAD"] = path
    return {**env, **(extra or {})}


def worker_command(*args: str) -> list[str]:
    return [sys.executable, "-m", WORKER_MODULE, "worker", *args]


def measure_blas(*, hidden: int = 128, layers: int = 8, vocab: int = 1024, batch: int = 8, seq_len: int = 64,
                 steps: int = 4, modes: Sequence[str] = ("import", "none", "ld")) -> dict:
    """GEMM rate and a zoo training step in fresh processes: our OpenBLAS preload vs MLX's reference BLAS.

    ``ld`` (OpenBLAS by ``LD_PRELOAD`` without our import hook) checks what an mlx-lm subprocess gets.
    """
    out: dict[str, Any] = {"config": {"hidden": hidden, "layers": layers, "batch": batch, "seq_len": seq_len,
                                      "steps": steps}}
    for mode in modes:
        run = run_process(worker_command("blas", "--hidden", str(hidden), "--layers", str(layers), "--vocab",
                                         str(vocab), "--batch", str(batch), "--seq-len", str(seq_len),
                                         "--steps", str(steps)), env=subprocess_env(preload=mode))
        out[mode] = {**run.payload(), "process_max_rss_gb": run.max_rss_gb, "process_seconds": run.seconds}
    if "import" in out and "none" in out:
        out["gemm_ratio"] = out["import"]["gemm_gflops"] / out["none"]["gemm_gflops"]
        out["train_ratio"] = out["import"]["train"]["tokens_per_s"] / out["none"]["train"]["tokens_per_s"]
    return out


def global_cblas() -> str:
    """Where the process-global ``cblas_sgemm`` (the one MLX binds to first) comes from, if anywhere.

    Without one, MLX uses the BLAS it links itself (the wheel's reference BLAS); the library scan of
    ``blas.resolved_library`` would then name any BLAS that happens to be mapped (numpy's, for one).
    """
    import ctypes

    try:
        ctypes.CDLL(None).cblas_sgemm
    except AttributeError:
        return "none global: MLX's own linked BLAS"
    return blas.resolved_library() or "unknown"


def text_rows(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token rows exactly as ``mlx_lm lora`` builds them from ``{"text"}`` lines (its TextDataset: BOS + text + EOS)."""
    from mlx_lm.tuner.datasets import TextDataset

    ds = TextDataset([{"text": t} for t in texts], tokenizer)
    return [list(ds.process(ds[i])[0]) for i in range(len(ds))]


def write_jsonl(path: Path, texts: Sequence[str]) -> None:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


class MlxLmOrder:
    """``batch_at`` that yields mlx-lm's batches in mlx-lm's order (for an equal loss curve).

    Batches are padded to the longest row of the data, or with ``tight`` to the longest row of the
    batch (padding is masked, so the losses are the same either way).

    mlx-lm sorts rows by length (stably), cuts consecutive groups of ``batch_size``, and permutes the
    group order once per epoch with numpy's global RNG seeded by ``--seed``; its validation pass at
    iteration 1 draws one permutation of the validation batches in between epochs 1 and 2.
    """

    def __init__(self, rows: Sequence, batch_size: int, seed: int, n_val_batches: int, pad_id: int = 0,
                 tight: bool = False):
        idx = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))
        self.rows, self.pad_id, self.tight = list(rows), pad_id, tight
        self.groups = [idx[i:i + batch_size] for i in range(0, len(idx) - batch_size + 1, batch_size)]
        self.width = max(len(r.ids) for r in self.rows)
        rng = np.random.RandomState(seed)
        self.order = list(rng.permutation(len(self.groups)))
        rng.permutation(n_val_batches)
        self._rng = rng

    def __call__(self, step: int, rank: int = 0, world: int = 1):
        from ..training.data import pad_batch

        while len(self.order) <= step:
            self.order.extend(self._rng.permutation(len(self.groups)))
        group = self.groups[self.order[step]][rank::world]
        width = max(len(self.rows[i].ids) for i in group) if self.tight else self.width
        return pad_batch([self.rows[i] for i in group], self.pad_id, width).arrays()


@dataclass
class MlxLmRun:
    """One process of the mlx-lm comparison: per-window tokens/s, CPU per step and losses, memory, RSS."""

    label: str
    iters: int
    window_tokens_per_s: list[float]
    window_cpu_s_per_step: list[float]
    window_losses: list[float]
    tokens_per_s: float
    cpu_s_per_step: float
    rows_per_s: float | None
    peak_memory_gb: float | None
    process_max_rss_gb: float
    process_seconds: float
    process_cpu_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _ours_run(label: str, run: ProcessRun, report_every: int) -> MlxLmRun:
    data = run.payload()
    steps, tokens = data["step_seconds"], data["step_tokens"]
    rates = window_rates(steps, tokens, report_every)
    cpu = [1.0 / r for r in window_rates(data["step_cpu_seconds"], [1] * len(steps), report_every)]
    rows_rates = window_rates(steps, [data["batch"]] * len(steps), report_every)
    return MlxLmRun(label, len(steps), rates, cpu, window_means(data["losses"], report_every), median(rates),
                    median(cpu), median(rows_rates), data["peak_memory_gb"], run.max_rss_gb, run.seconds,
                    run.cpu_seconds)


def is_report_line(line: str) -> bool:
    return bool(parse_mlx_lm_report(line))


def _theirs_run(label: str, run: ProcessRun, tokens_per_row: float, report_every: int) -> MlxLmRun:
    """mlx-lm's own report lines for tokens/s and loss; its CPU per step from the process CPU clock read
    as each report line arrived (windows after the first, as for ours)."""
    reports = parse_mlx_lm_report(run.output)
    if run.returncode != 0 or not reports:
        raise RuntimeError(f"mlx_lm lora failed (exit {run.returncode}):\n{run.output[-3000:]}")
    rates = [r["tokens_per_s"] for r in reports][1:]
    cpu_marks = [c for _, c, _ in run.stamps]
    cpu = [(b - a) / report_every for a, b in zip(cpu_marks, cpu_marks[1:])]
    mem = [r["peak_mem_gb"] for r in reports if r["peak_mem_gb"] is not None]
    return MlxLmRun(label, reports[-1]["iter"], rates, cpu, [r["loss"] for r in reports], median(rates),
                    median(cpu), median(rates) / tokens_per_row, max(mem) if mem else None, run.max_rss_gb,
                    run.seconds, run.cpu_seconds)


def mlx_lm_command(model_dir: Path, data_dir: Path, adapter_dir: Path, *, batch: int, iters: int, report_every: int,
                   lr: float, num_layers: int, max_seq_length: int | None, seed: int = 0) -> list[str]:
    """``python -m mlx_lm lora`` for a timing run (validation reduced to one batch, no intermediate saves)."""
    cmd = [sys.executable, "-m", "mlx_lm", "lora", "--model", str(model_dir), "--train", "--data", str(data_dir),
           "--iters", str(iters), "--batch-size", str(batch), "--num-layers", str(num_layers),
           "--learning-rate", str(lr), "--steps-per-report", str(report_every), "--steps-per-eval", str(10**6),
           "--val-batches", "1", "--save-every", str(10**6), "--adapter-path", str(adapter_dir), "--seed", str(seed)]
    if max_seq_length:
        cmd += ["--max-seq-length", str(max_seq_length)]
    return cmd


def compare_mlx_lm(model_dir: str | os.PathLike, work_dir: str | os.PathLike, *, batch: int = 8, seq_len: int = 64,
                   iters: int = 30, report_every: int = 5, lr: float = 2e-4, repeats: int = 1, stock: bool = True,
                   padded: bool = True, ranks: int = 2) -> dict:
    """Our SFT LoRA step vs ``python -m mlx_lm lora`` on the same model (an fp32 copy), rows, batch and length.

    matched: rows of exactly ``seq_len + 1`` tokens, same loss, mlx-lm's batch order, both on OpenBLAS
    (mlx-lm's by ``LD_PRELOAD``), ``repeats`` alternating runs; medians over report windows after the
    first, in tokens/s (wall) and CPU seconds per step. stock: mlx-lm on its reference BLAS. padded:
    short rows (mlx-lm pads to 1 + a multiple of 32, we to the longest row), in rows/s. ranks: ours as
    ``train --ranks`` runs it, data parallel on ``ranks`` single-threaded processes (same batches).
    """
    from ..models import save_model

    work = Path(work_dir)
    source = load_handle(model_dir)
    model_dir = save_model(source.model, source.config, work / "model-fp32", tokenizer_dir=str(model_dir))
    handle = load_handle(model_dir)
    layers = handle.n_layers
    texts = fixed_length_texts(batch * (iters + 2), seq_len - 1, seed=3)
    lengths = {len(r) for r in text_rows(handle.tokenizer, texts)}
    if lengths != {seq_len + 1}:
        raise RuntimeError(f"fixed-length texts tokenise to lengths {sorted(lengths)}, not {seq_len + 1}")
    matched = work / "matched"
    matched.mkdir(parents=True, exist_ok=True)
    write_jsonl(matched / "train.jsonl", texts)
    write_jsonl(matched / "valid.jsonl", texts[:batch])

    def ours(data: Path, order: str, label: str, n: int, ranks: int = 1) -> MlxLmRun:
        run = run_process(worker_command("sft", "--model", str(model_dir), "--data", str(data), "--batch", str(batch),
                                         "--iters", str(n), "--lr", str(lr), "--num-layers", str(layers),
                                         "--order", order, "--ranks", str(ranks)), env=subprocess_env(preload="import"))
        return _ours_run(label, run, report_every)

    def theirs(data: Path, preload: str, label: str, n: int, max_len: int | None, tokens_per_row: float,
               every: int = report_every) -> MlxLmRun:
        cmd = mlx_lm_command(model_dir, data, work / f"adapters-{label}", batch=batch, iters=n,
                             report_every=every, lr=lr, num_layers=layers, max_seq_length=max_len)
        run = run_process(cmd, env=subprocess_env(preload=preload), stamp=is_report_line)
        return _theirs_run(label, run, tokens_per_row, every)

    long_ours, long_theirs, long_ranks = [], [], []
    for _ in range(repeats):
        long_ours.append(ours(matched, "mlx-lm", "ours", iters))
        long_theirs.append(theirs(matched, "ld", "mlx_lm", iters, seq_len + 1, seq_len))
        if ranks > 1:
            long_ranks.append(ours(matched, "mlx-lm", f"ours-{ranks}-ranks", iters, ranks=ranks))
    tokens_per_step = batch * seq_len
    cpu_ours = median([r.cpu_s_per_step for r in long_ours])
    cpu_theirs = median([r.cpu_s_per_step for r in long_theirs])
    ours_rate = median([r.tokens_per_s for r in long_ours])
    theirs_rate = median([r.tokens_per_s for r in long_theirs])
    curve_ours, curve_theirs = long_ours[0].window_losses, long_theirs[0].window_losses
    n = min(len(curve_ours), len(curve_theirs))
    out: dict[str, Any] = {
        "config": {"model": describe_dims(dims_of(handle.config)), "batch": batch, "seq_len": seq_len, "iters": iters,
                   "report_every": report_every, "lr": lr, "lora": "rank 8, scale 20, every linear, all layers",
                   "repeats": repeats},
        "matched": {
            "runs": [r.to_dict() for r in long_ours + long_theirs],
            "ours_tokens_per_s": ours_rate, "mlx_lm_tokens_per_s": theirs_rate, "ratio": ours_rate / theirs_rate,
            "ours_cpu_s_per_step": cpu_ours, "mlx_lm_cpu_s_per_step": cpu_theirs,
            "ours_tokens_per_cpu_s": tokens_per_step / cpu_ours,
            "mlx_lm_tokens_per_cpu_s": tokens_per_step / cpu_theirs,
            "cpu_ratio": cpu_theirs / cpu_ours,
            "loss_curve": {"ours": curve_ours, "mlx_lm": curve_theirs,
                           "max_abs_diff": max(abs(a - b) for a, b in zip(curve_ours[:n], curve_theirs[:n]))},
        },
    }
    if long_ranks:
        rates = [r.tokens_per_s for r in long_ranks]
        curve = long_ranks[0].window_losses
        out["ranks"] = {
            "ranks": ranks, "runs": [r.to_dict() for r in long_ranks], "tokens_per_s": median(rates),
            "ratios": [r / t.tokens_per_s for r, t in zip(rates, long_theirs)], "ratio": median(rates) / theirs_rate,
            "speedup_over_one_process": median(rates) / ours_rate,
            "loss_curve_max_abs_diff_vs_one_process": max(abs(a - b) for a, b in zip(curve, curve_ours)),
        }
    if stock:
        run = theirs(matched, "none", "mlx_lm-stock", 6, seq_len + 1, seq_len, every=2)
        out["stock"] = {"runs": [run.to_dict()], "mlx_lm_tokens_per_s": run.tokens_per_s,
                        "ratio": ours_rate / run.tokens_per_s}
        if long_ranks:
            out["stock"]["ranks_ratio"] = out["ranks"]["tokens_per_s"] / run.tokens_per_s
    if padded:
        short = arithmetic_texts(batch * (iters + 2), seed=5)
        padded_dir = work / "padded"
        padded_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(padded_dir / "train.jsonl", short)
        write_jsonl(padded_dir / "valid.jsonl", short[:batch])
        lens = [len(r) for r in text_rows(handle.tokenizer, short)]
        ours_p = ours(padded_dir, "mlx-lm-tight", "ours-padded", iters)
        theirs_p = theirs(padded_dir, "ld", "mlx_lm-padded", iters, None, float(np.mean(lens)))
        k = min(len(ours_p.window_losses), len(theirs_p.window_losses))
        out["padded"] = {
            "runs": [ours_p.to_dict(), theirs_p.to_dict()], "row_tokens_mean": float(np.mean(lens)),
            "row_tokens_max": max(lens), "mlx_lm_width": 1 + 32 * math.ceil(max(lens) / 32),
            "ratio_rows_per_s": ours_p.rows_per_s / theirs_p.rows_per_s,
            "ratio_tokens_per_s": ours_p.tokens_per_s / theirs_p.tokens_per_s,
            "loss_curve": {"ours": ours_p.window_losses, "mlx_lm": theirs_p.window_losses,
                           "max_abs_diff": max(abs(a - b) for a, b in zip(ours_p.window_losses[:k],
                                                                          theirs_p.window_losses[:k]))},
        }
    return out
