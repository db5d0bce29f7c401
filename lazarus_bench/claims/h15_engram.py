"""H15 (seed 004): a dual objective beats classification alone, and an engram bottleneck clusters by label."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import stats
from ..stats import Verdict
from ..training.engram import EngramConfig, check_backbone, train_engram
from ..training.textcls import make_dataset
from .base import ClaimContext, Gate, Outcome, claim, not_instruct

DATASETS = ("sentiment", "topic")
VARIANTS = ("M1", "M2", "M3")


def _config(p: dict, seed: int) -> EngramConfig:
    cfg = EngramConfig()
    return replace(cfg, n_train=p["n_train"], n_val=p["n_val"], batch_size=p["batch_size"],
                   train=replace(cfg.train, steps=p["steps"], seed=seed, log_every=max(1, p["steps"] // 4)))


def _applies(info) -> str | None:
    if info.model_type not in ("llama", "qwen2", "mixtral"):
        return f"engram prefixes need a decoder taking input_embeddings; '{info.model_type}' is not supported here"
    return not_instruct(info)


@claim(
    id="H15",
    title="Dual objective beats classification alone; engrams cluster by label",
    statement="A dual objective (classification + LM) beats classification alone, and an unsupervised bottleneck "
               "(engram) clusters by label.",
    source="seed 004 (engram dual-objective; MikeyBeez/sentiment)",
    criterion="M2 >= M1 accuracy with a larger gain on 4 classes; engram KMeans ARI >= 0.8, cluster accuracy >= 95%, "
               "within-class cosine > between-class; an untrained compressor scores clearly lower",
    writeup="7B: SST-2 and AG News gains for M2 over M1; engram clusters 'separate' (small-scale ARI 0.236)",
    params={"steps": 150, "n_train": 400, "n_val": 100, "batch_size": 16, "min_ari": 0.8,
            "min_cluster_accuracy": 0.95, "control_margin": 0.2, "alpha": 0.05, "min_n": 3,
            "min_m1_above_chance": 0.20},
    fast={"steps": 3, "n_train": 32, "n_val": 16, "batch_size": 8},
    applies=_applies,
    gates=(Gate("M1 above chance", "the classifier-only model's validation accuracy minus chance, worst data set "
                "(mean over seeds): a backbone that cannot classify cannot show a dual-objective gain", None,
                "min_m1_above_chance"),),
    training=True,
    default_seeds={"fast": 1, "slow": 2},
)
def measure_h15(ctx: ClaimContext) -> Outcome:
    p = ctx.params
    check_backbone(ctx.handle())
    runs: list[dict] = []
    curves: dict[str, list[float]] = {}
    for seed in ctx.seeds:
        for dataset in DATASETS:
            for variant in VARIANTS:
                ctx.log(f"seed {seed} {dataset} {variant}")
                res = train_engram(ctx.fresh_handle(), variant, dataset, _config(p, seed), progress=False)
                runs.append({"seed": seed, "dataset": dataset, "variant": variant, "val_accuracy": res.val_accuracy,
                             "initial_val_accuracy": res.initial_val_accuracy,
                             "engram": res.engram.to_dict() if res.engram else None,
                             "untrained_compressor": res.untrained_compressor.to_dict(),
                             "tokens_per_s": res.tokens_per_s})
                if seed == ctx.seeds[0]:
                    curves[f"{dataset} {variant}"] = res.losses
    acc = {(r["seed"], r["dataset"], r["variant"]): r["val_accuracy"] for r in runs}
    gains = {d: [acc[(s, d, "M2")] - acc[(s, d, "M1")] for s in ctx.seeds] for d in DATASETS}
    all_gains = gains["sentiment"] + gains["topic"]
    m3 = [r for r in runs if r["variant"] == "M3"]
    ari = [r["engram"]["ari"] for r in m3]
    cluster_acc = [r["engram"]["cluster_accuracy"] for r in m3]
    separated = [r["engram"]["cos_within"] > r["engram"]["cos_between"] for r in m3]
    control_margin = [r["engram"]["ari"] - r["untrained_compressor"]["ari"] for r in m3]

    gain_test = stats.threshold_claim(all_gains, 0.0, "above", alpha=p["alpha"], min_n=p["min_n"],
                                      name="accuracy gain M2 - M1")
    ari_test = stats.threshold_claim(ari, p["min_ari"], "above", alpha=p["alpha"], min_n=p["min_n"], name="engram ARI")
    bigger_on_4 = float(np.mean(gains["topic"])) > float(np.mean(gains["sentiment"]))
    engram_ok = (ari_test.verdict == Verdict.SUPPORTED and min(cluster_acc) >= p["min_cluster_accuracy"]
                 and all(separated) and min(control_margin) >= p["control_margin"])
    if gain_test.verdict == Verdict.REFUTED or ari_test.verdict == Verdict.REFUTED:
        verdict = Verdict.REFUTED
        reason = ("M2 is not better than M1" if gain_test.verdict == Verdict.REFUTED
                  else f"engram ARI below {p['min_ari']}: {ari_test.reason}")
    elif gain_test.verdict == Verdict.SUPPORTED and bigger_on_4 and engram_ok:
        verdict, reason = Verdict.SUPPORTED, "dual objective helps (more on 4 classes) and engrams cluster by label"
    else:
        missing = [name for name, ok in (("M2 > M1", gain_test.verdict == Verdict.SUPPORTED),
                                         ("larger gain on 4 classes", bigger_on_4), ("engram clustering", engram_ok))
                   if not ok]
        verdict, reason = Verdict.INCONCLUSIVE, "not shown: " + ", ".join(missing)
    statistic = replace(gain_test, verdict=verdict, reason=reason, details={
        **gain_test.details, "gain_sentiment": gains["sentiment"], "gain_topic": gains["topic"],
        "ari": ari, "ari_verdict": str(ari_test.verdict), "cluster_accuracy": cluster_acc,
        "within_gt_between": separated, "ari_minus_untrained": control_margin,
    })
    ours = (
        f"M2 - M1 accuracy: sentiment {np.mean(gains['sentiment']):+.3f}, topic {np.mean(gains['topic']):+.3f} "
        f"({len(ctx.seeds)} seeds); M3 engram ARI {np.mean(ari):.3f} (untrained compressor "
        f"{np.mean([r['untrained_compressor']['ari'] for r in m3]):.3f}), cluster accuracy {np.mean(cluster_acc):.3f}"
    )
    length = max(len(v) for v in curves.values())
    curve = {"x": [str(i + 1) for i in range(length)], "series": curves, "xlabel": "step", "ylabel": "loss"}
    m1 = {d: float(np.mean([r["val_accuracy"] for r in runs if r["dataset"] == d and r["variant"] == "M1"]))
          - 1.0 / make_dataset(d).n_classes for d in DATASETS}
    return Outcome(statistic=statistic, ours=ours, samples=runs, curves={"training_loss": curve},
                   fitness={"M1 above chance": min(m1.values())}, extra={"m1_above_chance": m1})
