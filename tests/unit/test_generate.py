"""Greedy decoding (the zoo gates, answer accuracy and GRPO evaluation use it) against a loop without a KV cache."""

from __future__ import annotations

import mlx.core as mx

from lazarus_bench.analysis.generate import eos_ids, first_int, greedy_ids
from lazarus_bench.tiny import build_model, tiny_config


def _recompute(model, ids, stop, n):
    """Greedy decoding that re-runs the whole sequence for every token (no cache, one prompt at a time)."""
    seq, out = list(ids), []
    for _ in range(n):
        token = int(mx.argmax(model(mx.array([seq]))[0, -1]).item())
        if token in stop:
            break
        out.append(token)
        seq.append(token)
    return out


def test_greedy_ids_match_an_uncached_loop_and_stop_at_eos():
    model = build_model(tiny_config("llama", vocab_size=64), seed=1)
    prompts = [[1, 5, 9], [1, 7, 3], [1, 2, 3, 4, 5], [1, 60]]
    free = greedy_ids(model, prompts, set(), 6)
    assert free == [_recompute(model, p, set(), 6) for p in prompts]
    assert all(len(o) == 6 for o in free)
    token = free[2][3]
    stopped = greedy_ids(model, prompts, {token}, 6)
    assert stopped == [_recompute(model, p, {token}, 6) for p in prompts]
    assert stopped[2] == free[2][:free[2].index(token)]
    assert all(token not in o for o in stopped)


def test_first_int_and_eos_ids():
    assert first_int(" 56\n7") == 56 and first_int("= -12 apples") == -12 and first_int("none") is None

    class Tok:
        eos_token_id = 2
        eos_token_ids = [2, 7]

    assert eos_ids(Tok()) == {2, 7}
