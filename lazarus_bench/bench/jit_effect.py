"""The JIT flags' effect (``jit``): the same measurements in fresh processes with ``LAZARUS_JIT=plain`` and ``fma``,
interleaved: a compiled zoo training step, where its time goes per primitive (each timed alone at the step's shapes,
forward and backward, compiled as the step is), and the ``logit_lens()`` API. Each process also reports the step's
losses bit for bit, so the comparison shows the numbers did not move."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable

JSON_TAG = "JIT-EFFECT-JSON:"
BATCH, SEQ = 16, 40  # the step measured: 16 rows x 40 tokens of the zoo base (the profile shape)


def _timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``fn`` (evaluated) after two warm-up calls (the first builds its kernels)."""
    import mlx.core as mx

    for _ in range(2):
        mx.eval(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mx.eval(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _primitives(config: dict, repeats: int) -> dict[str, dict]:
    """Each primitive of a llama block at the step's shapes, forward+backward compiled, times its calls per step."""
    import mlx.core as mx
    from mlx_lm.models.activations import swiglu

    d, f, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    heads, n_layers = config["num_attention_heads"], config["num_hidden_layers"]
    kv = config.get("num_key_value_heads", heads)
    hd, n = d // heads, BATCH * SEQ
    mx.random.seed(0)
    r = partial(mx.random.normal, scale=0.1)
    x, w_d, w_f, w_df, w_v = r((n, d)), r((d, d)), r((d, f)), r((f, d)), r((d, v))
    g, u, norm_w = r((n, f)), r((n, f)), mx.ones((d,))
    q, k = r((BATCH, heads, SEQ, hd)), r((BATCH, kv, SEQ, hd))
    targets = mx.random.randint(0, v, (n,))

    def attention(q, k, vv):
        return mx.fast.scaled_dot_product_attention(q, k, vv, scale=hd ** -0.5, mask="causal")

    def ce(logits):
        return mx.logsumexp(logits, axis=-1) - mx.take_along_axis(logits, targets[:, None], axis=-1)[:, 0]

    cases = {  # name: (function, arguments, calls per step)
        "GEMM d x d (q, k, v, o)": (lambda a, b: a @ b, (x, w_d), 4 * n_layers),
        "GEMM d x F (gate, up)": (lambda a, b: a @ b, (x, w_f), 2 * n_layers),
        "GEMM F x d (down)": (lambda a, b: a @ b, (g, w_df), n_layers),
        "GEMM d x V (head)": (lambda a, b: a @ b, (x, w_v), 1),
        "SwiGLU (silu(gate) * up)": (swiglu, (g, u), n_layers),
        "RMSNorm": (lambda a, w: mx.fast.rms_norm(a, w, 1e-5), (x, norm_w), 2 * n_layers + 1),
        "attention (SDPA, causal)": (attention, (q, k, k), n_layers),
        "cross-entropy over V": (ce, (x @ w_v,), 1),
    }
    out = {}
    for name, (fn, args, calls) in cases.items():
        fwd = mx.compile(fn)
        both = mx.compile(mx.value_and_grad(lambda *a, fn=fn: fn(*a).sum(), argnums=list(range(len(args)))))
        out[name] = {"calls": calls, "forward_s": _timed(lambda: fwd(*args), repeats) * calls,
                     "forward_backward_s": _timed(lambda: both(*args), repeats) * calls}
    return out


def _worker(repeats: int) -> dict:
    """One process's measurements (its JIT mode was fixed at import from ``LAZARUS_JIT``)."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    import numpy as np

    from .. import jit
    from ..analysis.lens import logit_lens
    from ..models import load_model

    handle = load_model("zoo:base")
    model, config = handle.model, dict(handle.config)
    mx.random.seed(0)
    tokens = mx.random.randint(0, config["vocab_size"], (BATCH, SEQ + 1))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    def loss_fn(m, a, b):
        return nn.losses.cross_entropy(m(a), b, reduction="mean")

    opt = optim.AdamW(learning_rate=1e-4)
    state = [model.state, opt.state]
    value_grad = nn.value_and_grad(model, loss_fn)

    @partial(mx.compile, inputs=state, outputs=state)
    def step(a, b):
        loss, grads = value_grad(model, a, b)
        opt.update(model, grads)
        return loss

    forward = mx.compile(lambda a, b: loss_fn(model, a, b), inputs=state)
    losses = []
    for _ in range(6):
        loss = step(inputs, targets)
        mx.eval(state, loss)
        losses.append(np.float32(loss.item()).tobytes().hex())
    step_s = _timed(lambda: step(inputs, targets), repeats)
    forward_s = _timed(lambda: forward(inputs, targets), repeats)
    prompts = [f"{a} * {b} = " for a in range(2, 10) for b in range(2, 10)][:64]
    handle = load_model("zoo:base")
    logit_lens(handle, prompts, ["multiply"])
    lens_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        logit_lens(handle, prompts, ["multiply"])
        lens_times.append(time.perf_counter() - t0)
    return {"mode": jit.mode(), "losses_hex": losses, "step_s": step_s, "forward_s": forward_s,
            "lens_prompts_per_s": len(prompts) / statistics.median(lens_times),
            "primitives": _primitives(config, repeats)}


def _run(mode: str, repeats: int) -> dict:
    """One worker process in ``mode``: this process's FMA wrapper is taken off PATH, and each mode keeps its own
    kernel cache (MLX caches kernels by source alone)."""
    env = {**os.environ, "LAZARUS_JIT": mode}
    root = env.pop("LAZARUS_JIT_ROOT", None)
    base = Path(root).parent if root else Path(tempfile.gettempdir())
    if root:
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != str(Path(root) / "bin"))
    env["TMPDIR"] = str(base / "lazarus-jit-plain") if mode == "plain" else str(base)
    Path(env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", __name__, str(repeats)], env=env, capture_output=True, text=True,
                          timeout=1200, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(JSON_TAG)), None)
    if done.returncode or line is None:
        raise RuntimeError(f"JIT worker ({mode}) failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
    return json.loads(line[len(JSON_TAG):])


def measure_jit(rounds: int = 3, repeats: int = 10) -> dict:
    """Plain and FMA workers, interleaved ``rounds`` times: medians per mode and fma/plain speed-ups."""
    runs: dict[str, list[dict]] = {"plain": [], "fma": []}
    for _ in range(rounds):
        for mode in ("plain", "fma"):
            runs[mode].append(_run(mode, repeats))
    if runs["fma"][0]["mode"] != "fma":
        return {"available": False, "reason": "this CPU or compiler has no FMA path (plain only)"}

    def med(mode: str, get: Callable[[dict], float]) -> float:
        return statistics.median(get(r) for r in runs[mode])

    names = list(runs["plain"][0]["primitives"])
    primitives = {name: {"calls": runs["plain"][0]["primitives"][name]["calls"],
                         **{f"{mode}_{part}": med(mode, lambda r, p=part, n=name: r["primitives"][n][p])
                            for mode in runs for part in ("forward_s", "forward_backward_s")}} for name in names}
    same = len({tuple(r["losses_hex"]) for rs in runs.values() for r in rs}) == 1
    return {"available": True, "rounds": rounds, "repeats": repeats, "batch": BATCH, "seq_len": SEQ,
            "step_s": {m: med(m, lambda r: r["step_s"]) for m in runs},
            "forward_s": {m: med(m, lambda r: r["forward_s"]) for m in runs},
            "lens_prompts_per_s": {m: med(m, lambda r: r["lens_prompts_per_s"]) for m in runs},
            "primitives": primitives, "losses_bitwise_equal": same, "losses_hex": runs["fma"][0]["losses_hex"]}


if __name__ == "__main__":
    print(JSON_TAG + json.dumps(_worker(int(sys.argv[1]) if len(sys.argv) > 1 else 10)))
