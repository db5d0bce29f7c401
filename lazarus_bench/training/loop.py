"""One training loop for every method: seeded, compiled, checkpointed, resumable, NaN-safe, data-parallel.

Randomness inside a step (dropout, sampling) is seeded from (seed, step), so resuming is exact.
A method supplies ``loss_fn(model, *batch) -> (loss, n_tokens, aux)`` (aux: a dict of scalars to log)
and ``batch_at(step, rank, world)``,
a pure function of the step (so a resumed run sees exactly the data of an uninterrupted one).
Gradients are averaged across ``mx.distributed`` ranks, so ``mlx.launch -n N`` scales the same code; a loss
that is a mean over a varying count (response tokens) puts that count in ``aux[LOSS_WEIGHT]``, and ranks are
then weighted by it, so N ranks take the same step as one process on the whole batch.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from .. import flops, options
from .. import progress as progress_lines
from ..errors import LazarusError
from ..io import write_safetensors

CHECKPOINT = "checkpoint.safetensors"
LOSS_WEIGHT = "loss_weight"


class TrainingDiverged(LazarusError):
    """The loss became NaN or infinite; ``result`` holds everything finished before that step."""

    def __init__(self, message: str, result: "TrainResult"):
        super().__init__(message)
        self.result = result


@dataclass
class TrainConfig:
    """Optimiser, schedule and bookkeeping shared by every trainer."""

    steps: int = 500
    lr: float = 1e-4
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    warmup: int = 0
    schedule: str = "constant"
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    seed: int = 0
    compile: bool = True
    checkpoint_every: int = 0
    save_at: tuple[int, ...] = ()
    log_every: int = 10
    eval_every: int = 0
    name: str = "train"

    def __post_init__(self) -> None:
        """Each field in its declared range (``options``), every save step within the run."""
        for name in ("steps", "lr", "seed", "warmup", "save_at"):
            options.check(options.OPTIONS, name, getattr(self, name), owner=f"{self.name}: ")
        options.check_steps(self.steps, self.save_at, owner=f"{self.name}: ")

    def learning_rate(self) -> Any:
        """Constant, or linear warm-up then constant / cosine decay to ``min_lr_ratio * lr``."""
        if self.schedule not in ("constant", "cosine"):
            raise LazarusError(f"unknown schedule '{self.schedule}' (constant or cosine)")
        if self.schedule == "constant" and self.warmup == 0:
            return self.lr
        warm = max(1, min(self.warmup, self.steps))
        rest = max(1, self.steps - warm)
        main = (
            optim.cosine_decay(self.lr, rest, self.lr * self.min_lr_ratio)
            if self.schedule == "cosine"
            else (lambda _step: mx.array(self.lr))
        )
        if self.warmup == 0:
            return main
        return optim.join_schedules([optim.linear_schedule(self.lr / warm, self.lr, warm), main], [warm])

    def make_optimizer(self) -> optim.Optimizer:
        lr = self.learning_rate()
        if self.optimizer == "adamw":
            return optim.AdamW(learning_rate=lr, weight_decay=self.weight_decay)
        if self.optimizer == "adam":
            return optim.Adam(learning_rate=lr)
        if self.optimizer == "sgd":
            return optim.SGD(learning_rate=lr, weight_decay=self.weight_decay)
        raise LazarusError(f"unknown optimizer '{self.optimizer}' (adamw, adam or sgd)")


@dataclass
class TrainResult:
    """What a run did: per-step losses and metrics, evaluations, speed and memory."""

    name: str
    config: dict
    steps_done: int = 0
    losses: list[float] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    peak_memory_gb: float = 0.0
    trainable_params: int = 0
    total_params: int = 0
    resumed_from: int = 0
    world_size: int = 1
    stopped: str | None = None
    until_met: int | None = None  # the step at which the stopping rule (``train_loop(until=...)``) ended the run
    checkpoints: dict[int, str] = field(default_factory=dict)
    param_change: float = 0.0  # L2 norm of (trainable parameters after - before) over this call: the manipulation check
    param_change_relative: float = 0.0  # the same over the L2 norm of the trainable parameters before

    def to_dict(self) -> dict:
        return asdict(self)


def count_params(model: nn.Module, trainable: bool = False) -> int:
    params = model.trainable_parameters() if trainable else model.parameters()
    return int(sum(v.size for _, v in tree_flatten(params)))


class Progress:
    """A one-line progress report on stderr: step, loss, tokens/s, ETA (rewritten in place on a terminal)."""

    def __init__(self, name: str, total: int, enabled: bool = True, stream=None):
        self.name, self.total, self.enabled = name, total, enabled
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, step: int, loss: float, tokens_per_s: float, elapsed: float, done: int, extra: str = "") -> None:
        if not self.enabled:
            return
        eta = elapsed / max(done, 1) * (self.total - step)
        line = (f"[{self.name}] step {step}/{self.total} loss {loss:.4f} {tokens_per_s:,.0f} tok/s "
                f"ETA {int(eta) // 60}m{int(eta) % 60:02d}s{(' ' + extra) if extra else ''}")
        end = "\n" if (not self.tty or step >= self.total) else ""
        try:
            print(("\r" if self.tty else "") + line, end=end, file=self.stream, flush=True)
        except (BrokenPipeError, ValueError):
            self.enabled = False  # the reader went away (``| head``): progress is not worth failing a run for


def _save_checkpoint(path: Path, model: nn.Module, opt: optim.Optimizer, result: TrainResult) -> None:
    arrays = {f"model.{k}": v for k, v in tree_flatten(model.trainable_parameters())}
    arrays.update({f"opt.{k}": v for k, v in tree_flatten(opt.state) if isinstance(v, mx.array)})
    meta = {"result": json.dumps(result.to_dict())}
    write_safetensors(path, arrays, metadata=meta)


def _load_checkpoint(path: Path, model: nn.Module, opt: optim.Optimizer) -> dict:
    try:
        arrays, meta = mx.load(str(path), return_metadata=True)
        saved = json.loads(meta["result"])
    except Exception as exc:  # noqa: BLE001  (any unreadable checkpoint is the same problem)
        raise LazarusError(f"checkpoint {path} is unreadable ({type(exc).__name__}); delete it to start over") from None
    model.update(tree_unflatten([(k[6:], v) for k, v in arrays.items() if k.startswith("model.")]))
    opt_items = [(k[4:], v) for k, v in arrays.items() if k.startswith("opt.")]
    if opt_items:
        opt.state = tree_unflatten(opt_items)
    mx.eval(model.parameters(), opt.state)
    return saved


def _resume(result: TrainResult, ckpt: Path, model: nn.Module, opt: optim.Optimizer) -> int:
    """Restore model, optimizer and the logs so far from ``ckpt``; the step to go on from."""
    saved = _load_checkpoint(ckpt, model, opt)
    start = int(saved["steps_done"])
    for key in ("losses", "metrics", "evals", "tokens", "checkpoints"):
        setattr(result, key, saved[key])
    result.checkpoints = {int(k): v for k, v in result.checkpoints.items()}
    result.resumed_from = start
    return start


def _step_function(model: nn.Module, loss_fn: Callable, opt: optim.Optimizer, cfg: TrainConfig,
                   world: int) -> Callable:
    """One optimizer step (gradients averaged over ranks, weighted by each rank's share; clipped), compiled
    when ``cfg.compile``."""
    value_and_grad = nn.value_and_grad(model, loss_fn)

    def step_fn(*batch):
        (loss, ntok, aux), grads = value_and_grad(model, *batch)
        weight = aux.pop(LOSS_WEIGHT, None)
        if world > 1:
            if weight is not None:  # this rank's share of the global mean: sum_r w_r g_r / sum_r w_r
                weight = weight.astype(mx.float32)
                share = weight * world / mx.distributed.all_sum(weight)
                grads = tree_map(lambda g: g * share, grads)
                loss = loss * share
            grads = nn.average_gradients(grads)
        if cfg.grad_clip:
            grads, _ = optim.clip_grad_norm(grads, cfg.grad_clip)
        opt.update(model, grads)
        return loss, ntok, aux

    if not cfg.compile:
        return step_fn
    state = [model.state, opt.state, mx.random.state]
    return mx.compile(step_fn, inputs=state, outputs=state)


def _counted_step(step_fn: Callable, batch: Sequence[mx.array], counting: flops.Training, replays: dict,
                  compiled: bool) -> tuple:
    """Run one step and count its FLOPs; a replay of a compiled trace runs no Python, so it counts what its trace
    counted (``replays``: batch shapes -> FLOPs)."""
    before = flops.totals()
    with counting:
        out = step_fn(*batch)
    shapes, counted = tuple(tuple(getattr(a, "shape", ())) for a in batch), flops.since(before)
    if counted["flops"]:
        replays[shapes] = counted
    elif compiled:
        flops.add(replays.get(shapes, counted))
    return out


def _diverged(name: str, result: TrainResult, out_dir: str | os.PathLike | None) -> "TrainingDiverged":
    last = f"{result.losses[-1]:.4g}" if result.losses else "none"
    where = f"; finished checkpoints kept in {out_dir}" if out_dir is not None else ""
    return TrainingDiverged(f"{name} diverged: {result.stopped} (last finite loss {last}); lower the "
                            f"learning rate{where}", result)


def train_loop(
    model: nn.Module,
    loss_fn: Callable[..., tuple[mx.array, mx.array, dict]],
    batch_at: Callable[[int, int, int], Sequence[mx.array]],
    cfg: TrainConfig,
    *,
    out_dir: str | os.PathLike | None = None,
    resume: bool = True,
    eval_fn: Callable[[nn.Module], dict] | None = None,
    save_fn: Callable[[int, nn.Module], str] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    uniform_loss: float | None = None,
    until: Callable[[int, TrainResult], bool] | None = None,
) -> TrainResult:
    """Train the model's trainable parameters in place for ``cfg.steps`` optimizer steps.

    ``loss_fn(model, *batch)`` returns ``(loss, n_tokens, aux)``; the aux scalars are logged per step
    in ``result.metrics``. With ``out_dir`` a checkpoint
    is written every ``checkpoint_every`` steps (atomically) and resumed from; ``save_fn(step, model)``
    is called at each step in ``save_at``. ``stop_after`` ends this call early (an interruption).
    The run stops with :class:`TrainingDiverged` (finished checkpoints kept) on a non-finite loss, on a trainable
    parameter norm grown ``NORM_BLOWUP`` fold, or on a loss stuck at ``uniform_loss`` (ln V for a token
    cross-entropy) while that norm grew ``STUCK_BLOWUP`` fold. ``until(done, result)``, asked after every step with
    the model in eval mode, ends the run early when it returns True (``result.until_met``): the same run, cut there.
    """
    group = mx.distributed.init()
    world, rank = group.size(), group.rank()
    mx.random.seed(cfg.seed)
    opt = cfg.make_optimizer()
    result = TrainResult(name=cfg.name, config=asdict(cfg), world_size=world,
                         trainable_params=count_params(model, trainable=True), total_params=count_params(model))
    ckpt = Path(out_dir) / CHECKPOINT if out_dir is not None else None
    start = _resume(result, ckpt, model, opt) if ckpt is not None and resume and ckpt.exists() else 0
    step_fn = _step_function(model, loss_fn, opt, cfg, world)

    bar = Progress(cfg.name, cfg.steps, enabled=progress and rank == 0)
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    initial = _host_copy(model)
    initial_norm = math.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in initial.values()))
    mx.reset_peak_memory()
    tokens_at_start = result.tokens
    model.train()
    t0 = time.perf_counter()
    window_tokens, window_t = 0, t0
    counting, replays = flops.Training(model), {}  # replays: batch shapes -> FLOPs counted when the step traced
    for step in range(start, end):
        mx.random.seed(cfg.seed * 1_000_003 + step)
        batch = batch_at(step, rank, world)
        loss, ntok, aux = _counted_step(step_fn, batch, counting, replays, cfg.compile)
        mx.eval(loss, ntok, aux, model.state, opt.state)
        value = float(mx.distributed.all_sum(loss, stream=mx.cpu).item()) / world if world > 1 else float(loss.item())
        ntokens = int(mx.distributed.all_sum(ntok, stream=mx.cpu).item()) if world > 1 else int(ntok.item())
        problem = None if math.isfinite(value) else f"loss became {value} at step {step + 1}"
        if problem is None and ((step + 1) % cfg.log_every == 0 or step + 1 == end):
            problem = divergence_reason(model, initial_norm, (result.losses + [value])[-cfg.log_every:], uniform_loss,
                                  step + 1)
        if problem is not None:
            result.stopped = problem
            _finish(result, model, t0, tokens_at_start, initial)
            raise _diverged(cfg.name, result, out_dir)
        result.losses.append(value)
        result.metrics.append({k: float(v) for k, v in aux.items()})
        result.tokens += ntokens
        window_tokens += ntokens
        done = step + 1
        progress_lines.step(f"{cfg.name} steps", done, end)
        if eval_fn is not None and cfg.eval_every and done % cfg.eval_every == 0 and done != end:
            result.evals.append({"step": done, **_evaluate(model, eval_fn)})
        if save_fn is not None and done in cfg.save_at and rank == 0:
            result.checkpoints[done] = save_fn(done, model)
        if done % cfg.log_every == 0 or done == end:
            now = time.perf_counter()
            recent = result.losses[-cfg.log_every:]
            rate = window_tokens / max(now - window_t, 1e-9)
            bar.update(done, sum(recent) / len(recent), rate, now - t0, done - start)
            window_tokens, window_t = 0, now
        if ckpt is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and rank == 0:
            result.steps_done = done
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            _save_checkpoint(ckpt, model, opt, result)
        if until is not None and _stop(model, until, done, result):
            result.until_met = done
            break
    if eval_fn is not None and end == cfg.steps:
        result.evals.append({"step": end, **_evaluate(model, eval_fn)})
    _finish(result, model, t0, tokens_at_start, initial)
    return result


NORM_BLOWUP = 1e3
STUCK_BLOWUP = 30.0
STUCK_TOLERANCE = 0.02


def divergence_reason(model: nn.Module, initial_norm: float, recent: list[float], uniform_loss: float | None,
                step: int) -> str | None:
    """Why the run has diverged, or None: the trainable norm grew by orders of magnitude, or the loss sits at the
    uniform value while the norm explodes (the model outputs noise it can no longer leave)."""
    if initial_norm <= 0:
        return None
    squares = [mx.sum(mx.square(v.astype(mx.float32))) for _, v in tree_flatten(model.trainable_parameters())]
    norm = math.sqrt(float(sum(squares).item())) if squares else 0.0
    ratio = norm / initial_norm
    if not math.isfinite(ratio) or ratio >= NORM_BLOWUP:
        return f"trainable parameter norm grew {ratio:.3g}x (to {norm:.3g}) by step {step}"
    mean = sum(recent) / len(recent)
    if uniform_loss and ratio >= STUCK_BLOWUP and abs(mean - uniform_loss) <= STUCK_TOLERANCE * uniform_loss:
        return (f"loss stuck at the uniform value ln V = {uniform_loss:.3f} (mean {mean:.3f} over the last "
                f"{len(recent)} steps) while the trainable parameter norm grew {ratio:.3g}x by step {step}")
    return None


def _evaluate(model: nn.Module, eval_fn: Callable[[nn.Module], dict]) -> dict:
    model.eval()
    out = eval_fn(model)
    model.train()
    return out


def _stop(model: nn.Module, until: Callable[[int, TrainResult], bool], done: int, result: TrainResult) -> bool:
    model.eval()
    stop = bool(until(done, result))
    model.train()
    return stop


def _host_copy(model: nn.Module) -> dict[str, np.ndarray]:
    """The trainable parameters as float32 numpy arrays (outside MLX's allocator, so peak-memory figures hold)."""
    return {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(model.trainable_parameters())}


def _finish(result: TrainResult, model: nn.Module, t0: float, tokens_at_start: int,
            initial: dict[str, np.ndarray]) -> None:
    """Speed and memory of this call (a resumed run reports its own part), the step count, and how far the trainable
    parameters moved."""
    model.eval()
    now = _host_copy(model)
    delta = sum(float(np.sum((now[k].astype(np.float64) - v) ** 2)) for k, v in initial.items() if k in now)
    norm = sum(float(np.sum(v.astype(np.float64) ** 2)) for v in initial.values())
    result.param_change = math.sqrt(delta)
    result.param_change_relative = math.sqrt(delta / norm) if norm > 0 else (math.inf if delta > 0 else 0.0)
    result.seconds = time.perf_counter() - t0
    result.tokens_per_s = (result.tokens - tokens_at_start) / max(result.seconds, 1e-9)
    result.peak_memory_gb = mx.get_peak_memory() / 1e9
    result.steps_done = len(result.losses)
