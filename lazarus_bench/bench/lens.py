"""Logit lens and probes: one captured forward vs a truncated forward per layer, and probe fitting per layer."""

from __future__ import annotations

import time
from typing import Any, Callable

import mlx.core as mx
import numpy as np

from ..training.timing import median
from .fixtures import fixed_length_texts


def _lens_stats(log_probs: mx.array, top_k: int) -> tuple[mx.array, mx.array, mx.array]:
    """Entropy, top-k ids and top-k log-probs of lens log-probabilities (rows x vocab)."""
    entropy = -mx.sum(mx.exp(log_probs) * log_probs, axis=-1)
    idx = mx.argpartition(-log_probs, kth=top_k - 1, axis=-1)[..., :top_k]
    return entropy, idx, mx.take_along_axis(log_probs, idx, axis=-1)


def _log_softmax(logits: mx.array) -> mx.array:
    logits = logits.astype(mx.float32)
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def lens_one_pass(handle, tokens: mx.array, top_k: int = 5) -> list[tuple[mx.array, ...]]:
    """Lens statistics at the last position for the embedding and every block, from one captured forward."""
    capture = handle.forward(tokens)
    out = [_lens_stats(_log_softmax(handle.lens_logits(h[:, -1])), top_k) for h in capture.hidden]
    mx.eval(out)
    return out


def stacked_lens(handle, top_k: int = 5) -> Callable[[mx.array], tuple[mx.array, ...]]:
    """The statistics of :func:`lens_one_pass` from one compiled pass over the stacked last-position states of every
    layer instead of a round of eager ops per layer: what compiling the API's per-layer statistics would save."""
    compiled = mx.compile(lambda stacked: _lens_stats(_log_softmax(handle.lens_logits(stacked)), top_k))

    def run(tokens: mx.array) -> tuple[mx.array, ...]:
        out = compiled(mx.stack([h[:, -1] for h in handle.forward(tokens).hidden]))
        mx.eval(out)
        return out

    return run


def lens_per_layer(handle, tokens: mx.array, top_k: int = 5) -> list[tuple[mx.array, ...]]:
    """Baseline: for each depth, the model's own forward truncated to that many blocks (its logits are the lens).

    The layer list is cut in place and restored; depth 0 passes a one-entry cache so llama's mask
    code has a cache slot to look at. Each truncated forward computes logits at every position.
    """
    layers = handle.layers
    full = list(layers)
    out = []
    try:
        for depth in range(len(full) + 1):
            layers[:] = full[:depth]
            logits = handle.model(tokens, cache=None if depth else [None])
            out.append(_lens_stats(_log_softmax(logits[:, -1]), top_k))
            mx.eval(out[-1])
    finally:
        layers[:] = full
    return out


def lens_tokens(handle, n_prompts: int, seq_len: int, seed: int = 0) -> mx.array:
    """A batch of ``n_prompts`` equal-length token rows (BOS + fixed-length arithmetic text)."""
    rows = [handle.encode(t) for t in fixed_length_texts(n_prompts, seq_len - 1, seed)]
    width = min(len(r) for r in rows)
    return mx.array([r[:width] for r in rows])


def interleaved_times(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                      clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds per call of each function on ``clock``, calls interleaved (a, b, a, b ...) so load changes hit both."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = clock()
            fn()
            times[key].append(clock() - start)
    return times


def measure_lens(handle, *, n_prompts: int = 32, seq_len: int = 16, repeats: int = 5, top_k: int = 5,
                 model_dir: str | None = None) -> dict:
    """Logit lens over all layers: one captured forward vs one truncated forward per layer, the public API, and
    (with ``model_dir`` and torch installed) plain transformers on torch, all timed interleaved in one run.

    The ratio is the median of per-repeat ratios (adjacent calls), on the wall clock and on the process
    CPU clock; both give the same statistics (``max_entropy_diff``).
    """
    from ..analysis.lens import logit_lens

    tokens = lens_tokens(handle, n_prompts, seq_len)
    texts = fixed_length_texts(n_prompts, seq_len - 1, 0)
    one, per = lens_one_pass(handle, tokens, top_k), lens_per_layer(handle, tokens, top_k)
    diff = max(float(mx.max(mx.abs(a[0] - b[0]))) for a, b in zip(one, per))
    stacked = stacked_lens(handle, top_k)
    stacked_diff = float(mx.max(mx.abs(stacked(tokens)[0] - mx.stack([a[0] for a in one]))))
    fns = {
        "one_pass": lambda: lens_one_pass(handle, tokens, top_k),
        "per_layer": lambda: lens_per_layer(handle, tokens, top_k),
        "stacked": lambda: stacked(tokens),
        "api": lambda: logit_lens(handle, texts, top_k=top_k),
        "forward": lambda: mx.eval(handle.forward(tokens).hidden),
        "encode": lambda: [handle.encode(t) for t in texts],
    }
    agreement = None
    try:
        if model_dir is not None:
            run_torch = lens_torch(model_dir, np.array(tokens), top_k, texts)
            fns["torch"], fns["torch_1"] = (lambda: run_torch(2)), (lambda: run_torch(1))
            fns["torch_forward_1"] = lambda: run_torch(1, "forward")
            fns["torch_same_1"] = lambda: run_torch(1, "same")
            agreement = same_work_agreement(logit_lens(handle, texts, top_k=top_k), run_torch(1, "same"))
    except ImportError:
        pass
    times = interleaved_times(fns, repeats)
    cpu = interleaved_times({
        "one_pass": lambda: lens_one_pass(handle, tokens, top_k),
        "per_layer": lambda: lens_per_layer(handle, tokens, top_k),
    }, repeats, warmup=0, clock=time.process_time)
    ratios = [p / o for p, o in zip(times["per_layer"], times["one_pass"])]
    silu = measure_silu(handle, tokens, repeats)
    n = int(tokens.shape[0])
    return {
        "prompts": n, "seq_len": int(tokens.shape[1]), "layers": handle.n_layers + 1,
        "one_pass_prompts_per_s": n / median(times["one_pass"]),
        "per_layer_prompts_per_s": n / median(times["per_layer"]),
        "api_prompts_per_s": n / median(times["api"]),
        "torch_prompts_per_s": n / median(times["torch"]) if "torch" in times else None,
        "torch_1_prompts_per_s": n / median(times["torch_1"]) if "torch_1" in times else None,
        "torch_same_1_prompts_per_s": n / median(times["torch_same_1"]) if "torch_same_1" in times else None,
        "api_over_torch": speed_ratios(times, "api", "torch"),
        "api_over_torch_1": speed_ratios(times, "api", "torch_1"),
        "api_over_torch_same_1": speed_ratios(times, "api", "torch_same_1"), "torch_same_agreement": agreement,
        "one_pass_over_torch_1": speed_ratios(times, "one_pass", "torch_1"),
        "forward_over_torch_forward_1": speed_ratios(times, "forward", "torch_forward_1"),
        "stacked_over_one_pass": speed_ratios(times, "stacked", "one_pass"), "stacked_max_entropy_diff": stacked_diff,
        "split_s": {k: median(v) for k, v in times.items() if k in ("api", "forward", "encode", "torch_1",
                                                                    "torch_forward_1", "torch_same_1")},
        "ratio": median(ratios), "ratios": ratios,
        "ratio_cpu": median([p / o for p, o in zip(cpu["per_layer"], cpu["one_pass"])]),
        "max_entropy_diff": diff, "times": times, "cpu_times": cpu, "silu": silu,
    }


def measure_silu(handle, tokens: mx.array, repeats: int = 5) -> dict:
    """Where the captured forward's time goes on CPU: the MLP's SiLU (gate * up) at the forward's shape, once per
    block, against the whole forward, interleaved; and MLX's elementwise exp and multiply per element beside numpy's."""
    import mlx.nn as nn

    n, length = tokens.shape
    width = int(handle.config.get("intermediate_size") or 4 * handle.hidden_size)
    gate, up = (mx.random.normal((n, length, width), key=mx.random.key(seed)) for seed in (0, 1))
    mx.eval(gate, up)
    host = np.array(gate)
    times = interleaved_times({
        "forward": lambda: lens_one_pass(handle, tokens),
        "silu": lambda: mx.eval(nn.silu(gate) * up),
        "exp": lambda: mx.eval(mx.exp(gate)),
        "mul": lambda: mx.eval(gate * up),
        "numpy_exp": lambda: np.exp(host),
    }, repeats)
    ns = {k: 1e9 * median(times[k]) / host.size for k in ("exp", "mul", "numpy_exp")}
    silu = median(times["silu"]) * handle.n_layers
    return {"layers": handle.n_layers, "shape": [int(n), int(length), width], "silu_s": silu,
            "forward_s": median(times["forward"]), "silu_share": silu / median(times["forward"]),
            "exp_ns": ns["exp"], "mul_ns": ns["mul"], "numpy_exp_ns": ns["numpy_exp"]}


def same_work_agreement(ours: list, theirs: list[dict]) -> dict:
    """How far the API's lens and torch's same-work script disagree: token strings equal, the share of (prompt,
    layer) cells with the same top-k ids in order, the largest entropy and KL differences (nats). Evidence that the
    two timed scripts compute the same thing."""
    return {
        "tokens_equal": all(o.tokens == t["tokens"] for o, t in zip(ours, theirs)) and len(ours) == len(theirs),
        "top_ids_equal_share": float(np.mean([[e[1] for e in o.top[i][0]] == [e[1] for e in t["top"][i]]
                                              for o, t in zip(ours, theirs) for i in range(len(t["top"]))])),
        "max_entropy_diff": max(float(np.max(np.abs(o.entropy[:, -1] - t["entropy"]))) for o, t in zip(ours, theirs)),
        "max_kl_diff": max(float(np.max(np.abs(o.kl_to_final[:, -1] - t["kl"]))) for o, t in zip(ours, theirs)),
    }


def speed_ratios(times: dict[str, list[float]], ours: str, theirs: str) -> list[float] | None:
    """Per-repeat speed of ``ours`` over ``theirs`` (their seconds / ours, adjacent calls); None if not timed."""
    return [t / o for o, t in zip(times[ours], times[theirs])] if theirs in times else None


def measure_probes(handle, *, n_permutations: int = 20) -> dict:
    """Probe fitting per layer on the word prompt set: feature extraction, then ``probe_layers`` (CV + permutations)."""
    from .. import prompts
    from ..analysis.features import last_token_states
    from ..analysis.probes import probe_layers

    ps = prompts.word_set()
    start = time.perf_counter()
    features, labels = last_token_states(handle, ps.texts())
    extract = time.perf_counter() - start
    start = time.perf_counter()
    report = probe_layers(features, ps.labels(), layer_labels=labels, n_permutations=n_permutations)
    fit = time.perf_counter() - start
    return {
        "prompts": len(ps.texts()), "layers": len(labels), "hidden": int(features.shape[-1]),
        "n_permutations": n_permutations, "extract_s": extract, "fit_s": fit,
        "fit_s_per_layer": fit / len(labels), "best_layer": report.best_layer,
    }


def lens_torch(model_dir: str, tokens: np.ndarray, top_k: int = 5, texts: list[str] | None = None
               ) -> Callable[..., Any]:
    """What a user would write instead with Hugging Face transformers on torch (CPU): ``output_hidden_states``, the
    final norm and ``lm_head`` at the last position of every layer, a full-vocabulary softmax, top-k and entropy.
    Returns the function to time, called with torch's thread count and ``work``: ``"forward"`` (the forward alone),
    ``"stats"`` (from token ids: top-k and entropy) or ``"same"`` (the API's work: from ``texts`` through the
    tokenizer, top-k, entropy and KL to the final layer, top-k decoded to strings, one result per prompt). Needs torch
    (the ``hf`` extra). Our BLAS is pinned to one thread, so one torch thread is the like-for-like run."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir) if texts is not None else None
    ids = torch.tensor(np.asarray(tokens))
    norm, head = model.model.norm, model.lm_head

    def layer_log_probs(hidden) -> list:
        """Log-probabilities at the last position per layer (transformers' last hidden state is already normed)."""
        return [torch.log_softmax(head(h[:, -1] if i == len(hidden) - 1 else norm(h[:, -1])), dim=-1)
                for i, h in enumerate(hidden)]

    def same_work() -> list[dict]:
        batch = torch.tensor(tokenizer(texts)["input_ids"])
        logps = layer_log_probs(model(batch, output_hidden_states=True).hidden_states)
        final = logps[-1]
        tops = [torch.topk(lp, top_k, dim=-1) for lp in logps]
        entropy = torch.stack([-(lp.exp() * lp).sum(-1) for lp in logps])
        kl = torch.stack([(final.exp() * (final - lp)).sum(-1) for lp in logps])
        vocab: dict[int, str] = {}

        def text(t: int) -> str:
            if t not in vocab:
                vocab[t] = tokenizer.decode([t])
            return vocab[t]

        top_ids = [t.indices.tolist() for t in tops]
        top_p = [t.values.exp().tolist() for t in tops]
        return [{"tokens": [text(t) for t in row], "entropy": entropy[:, b].numpy(), "kl": kl[:, b].numpy(),
                 "top": [[(text(t), t, q) for t, q in zip(ti[b], tp[b])] for ti, tp in zip(top_ids, top_p)]}
                for b, row in enumerate(batch.tolist())]

    def run(threads: int, work: str = "stats"):
        torch.set_num_threads(threads)
        with torch.no_grad():
            if work == "same":
                return same_work()
            hidden = model(ids, output_hidden_states=True).hidden_states
            if work == "forward":
                return hidden
            return [(torch.topk(lp, top_k, dim=-1), -(lp.exp() * lp).sum(-1)) for lp in layer_log_probs(hidden)]

    return run
