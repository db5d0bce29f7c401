"""U01 (an example user claim, loaded with ``--include examples/claims``): the model answers arithmetic prompts.

A user claim is one file like a packaged one: its data in ``@claim(...)``, its measure below, from the package's
public pieces (prompt sets, the model handle, the statistics). It lands in the same registry and the same report.
"""

from __future__ import annotations

import mlx.core as mx

from lazarus_bench import prompts, stats
from lazarus_bench.harness.base import ClaimContext, Outcome
from lazarus_bench.harness.params import Param
from lazarus_bench.harness.registry import claim
from lazarus_bench.options import PROB


@claim(
    id="U01",
    title="The next token after an arithmetic prompt is the answer",
    statement="After '7 * 8 = ' the model's top-1 next token is the answer's first token.",
    source="user example (examples/claims/u01_answer_top1.py)",
    criterion="top-1 next token equals the answer's first token (as it follows the prompt) on >= 80% of the held-out "
              "symbol prompts, exact binomial test",
    writeup="-",
    params={"min_accuracy": Param(0.8, PROB, help="smallest share (0-1) of prompts whose top-1 token is the answer"),
            "alpha": 0.05},
)
def measure_u01(ctx: ClaimContext) -> Outcome:
    p, handle = ctx.params, ctx.handle()
    samples = []
    for item in prompts.symbol_set("test", trailing_space=True):
        logits = handle.model(mx.array([handle.encode(item.text)]))[0, -1]
        target = handle.continuation(str(item.answer), after=item.text)[0]
        top = int(mx.argmax(logits).item())
        samples.append({"prompt": item.text, "answer": item.answer, "target_id": target, "top1_id": top,
                        "correct": top == target})
    k, n = sum(s["correct"] for s in samples), len(samples)
    statistic = stats.proportion_claim(k, n, p["min_accuracy"], p["alpha"], name="top-1 answer accuracy")
    return Outcome(statistic=statistic, ours=f"{k}/{n} prompts answered at top-1", samples=samples)
