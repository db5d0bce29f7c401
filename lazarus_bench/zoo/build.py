"""Build and verify the embedded model zoo.

``build_zoo(out_dir, size="default"|"micro", seed=None)`` generates the corpus, trains the tokenizer,
pretrains ``base`` (tied llama), derives ``instruct`` from it (chat SFT, then DPO with an NLL term on
correct vs wrong answers), ``untied`` (an output head) and ``moe`` (mixtral, 4 experts, top-2, sparsely
upcycled), evaluates each (loaded back with ``mlx_lm.load``) and writes per model a ``manifest.json``
with the sha256 of every file, the build config, corpus seed, metrics, package versions, wall time and
tokens/s. Under :mod:`lazarus_bench.zoo.ranks` the training is data parallel.

``verify(model_dir)`` checks every file against the manifest and raises :class:`ZooIntegrityError`
(one line, naming the file and the rebuild command) on a mismatch or a missing file.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import mlx.core as mx
from tokenizers import Tokenizer

from .. import blas
from ..errors import LazarusError
from ..io import sha256_file
from ..models import save_model
from . import pretrain as P
from .derive import untie, upcycle_moe
from .evaluate import evaluate
from .fitness import fitness_metrics
from .gates import GATES, METRICS, gate_misses
from .recipe import RECIPE, SIZES, SizeSpec, recipe_hash
from .registry import MANIFEST, ZooIntegrityError, verify, zoo_root
from .tokenizer import build_tokenizer, save_tokenizer

KINDS = ("base", "instruct", "untied", "moe")
MANIFEST_VERSION = 1
LOSS_TRACE_EVERY = 100  # every 100th step's loss of the last stage, kept so a rebuild can say where it diverged


def package_versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("mlx", "mlx-lm", "tokenizers", "transformers", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _files(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.iterdir() if p.is_file() and p.name != MANIFEST
                  and not p.name.endswith(".tmp"))


def write_manifest(model_dir: str | os.PathLike, info: dict) -> Path:
    d = Path(model_dir)
    man = dict(info)
    man["manifest_version"] = MANIFEST_VERSION
    man["files"] = {p.name: sha256_file(p) for p in _files(d)}
    tmp = d / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(man, indent=2, sort_keys=True))
    os.replace(tmp, d / MANIFEST)
    return d / MANIFEST


def _arch_config(kind: str, spec: SizeSpec, vocab_size: int) -> dict:
    a = spec.arch
    inter = a.intermediate_size
    if kind == "moe":
        inter = a.moe_intermediate_size or max(1, a.intermediate_size // 2)
    return P.model_config(kind, vocab_size=vocab_size, hidden_size=a.hidden_size,
                          num_hidden_layers=a.num_hidden_layers, intermediate_size=inter,
                          num_attention_heads=a.num_attention_heads,
                          num_key_value_heads=a.num_key_value_heads,
                          num_local_experts=a.num_local_experts,
                          num_experts_per_tok=a.num_experts_per_tok)


def with_weight_decay(spec: SizeSpec, weight_decay: float) -> SizeSpec:
    """``spec`` with the base's weight decay replaced in pretraining, anneal and extensions (instruct and the
    derived models keep theirs): the recipe variant issue 37's seed table measures."""
    def wd(cfg: P.TrainConfig | None) -> P.TrainConfig | None:
        return None if cfg is None else replace(cfg, weight_decay=weight_decay)

    return replace(spec, pretrain=wd(spec.pretrain), anneal=wd(spec.anneal), extension=wd(spec.extension),
                   closing=wd(spec.closing))


def _log(progress: bool, msg: str) -> None:
    if progress and P.world()[1] == 0:
        print(f"[zoo] {msg}", file=sys.stderr, flush=True)


def _skip_if_built(model_dir: Path, build_config: dict) -> dict | None:
    try:
        man = verify(model_dir)
    except ZooIntegrityError:
        return None
    return man if man.get("build_config") == build_config else None


def _train_config(kind: str, spec: SizeSpec, size: str, seed: int, pre: P.TrainConfig, ins: P.TrainConfig,
                  steps: int | None, derived: bool) -> P.TrainConfig:
    """The first training stage of ``kind``: pretraining, instruction tuning, or a derived model's adaptation."""
    own = spec.moe if kind == "moe" and spec.moe is not None else spec.derived  # a derived kind's continuation
    base_train = ins if kind == "instruct" else (own if derived else pre)
    tcfg = replace(base_train, seed=seed + KINDS.index(kind), name=f"{size}/{kind}")
    return replace(tcfg, steps=steps) if derived and steps is not None else tcfg


def _build_configs(kind: str, spec: SizeSpec, size: str, seed: int, arch: dict, tcfg: P.TrainConfig, derived: bool,
                   manifests: dict[str, dict]) -> tuple[dict, dict]:
    """(the model's whole build config, that of its first stage alone): what a rebuild must match to be skipped."""
    init_from = "base" if kind == "instruct" else ("base (derived: " + kind + ")" if derived else None)
    build_config = {"size": size, "kind": kind, "seed": seed, "arch": arch,
                    "train": asdict(tcfg), "init_from": init_from}
    if spec.recipe != "3":  # recipe 3's builds predate the recipe tag; theirs stay as they were built
        mix = {k: v for k, v in asdict(spec.mix).items() if v != 0}  # a kind added later leaves old configs alone
        build_config.update(recipe=spec.recipe, mix=json.loads(json.dumps(mix)))  # as read back
    stage1_config = dict(build_config)
    if kind == "base" and spec.anneal is not None:
        build_config["anneal"] = asdict(replace(spec.anneal, seed=seed, name=f"{size}/base-anneal"))
    if kind == "instruct" and spec.instruct_replay:
        build_config["replay"] = spec.instruct_replay
    if kind == "instruct" and spec.preference is not None:
        build_config["preference"] = {"method": "dpo+nll (RPO)", "beta": spec.dpo_beta,
                                      "nll_weight": spec.dpo_nll_weight, "reference": "the SFT model",
                                      **asdict(replace(spec.preference, seed=seed + 11,
                                                       name=f"{size}/instruct-dpo"))}
    if (kind == "instruct" or derived) and manifests is not None:
        build_config["base_sha256"] = manifests["base"]["files"]["model.safetensors"]
    return build_config, stage1_config


def _derived_kinds(spec: SizeSpec) -> tuple[str, ...]:
    """The kinds adapted from the base by further training (untied, moe), when the size derives them."""
    return ("untied", "moe") if spec.derived is not None else ()


def _kind_configs(kind: str, spec: SizeSpec, size: str, seed: int, pre: P.TrainConfig, ins: P.TrainConfig,
                  steps: int | None, vocab: int, manifests: dict | None) -> tuple[dict, P.TrainConfig, dict, dict]:
    """(architecture, first-stage training config, whole build config, first-stage build config) of ``kind``;
    without ``manifests`` a derived model's config lacks its base's hash (not known before the base is built)."""
    derived = kind in _derived_kinds(spec)
    arch = _arch_config(kind, spec, vocab)
    tcfg = _train_config(kind, spec, size, seed, pre, ins, steps, derived)
    return (arch, tcfg, *_build_configs(kind, spec, size, seed, arch, tcfg, derived, manifests))


def _build_order(kinds: tuple[str, ...], derived_kinds: tuple[str, ...]) -> list[str]:
    """The kinds to build in dependency order, with the base first whenever another kind starts from it."""
    return [k for k in KINDS if k in kinds or (k == "base" and any(d in kinds for d in ("instruct", *derived_kinds)))]


def _recipe(size: str, seed: int | None, weight_decay: float | None, steps: int | None = None,
            instruct_steps: int | None = None) -> tuple[SizeSpec, int, P.TrainConfig, P.TrainConfig]:
    """(size spec, seed, pretraining config, instruction-tuning config) of a build: what ``build_zoo`` trains and
    ``refuse_replacing`` compares with what is already built."""
    spec = SIZES[size] if weight_decay is None else with_weight_decay(SIZES[size], weight_decay)
    seed = spec.seed if seed is None else seed
    pre = replace(spec.pretrain, seed=seed, steps=steps or spec.pretrain.steps)
    ins = replace(spec.instruct, seed=seed + 1, steps=instruct_steps or spec.instruct.steps)
    return spec, seed, pre, ins


def refuse_replacing(out_dir: str | os.PathLike, size: str = "default", seed: int | None = None,
                     weight_decay: float | None = None, kinds: tuple[str, ...] = KINDS, force: bool = False) -> None:
    """Raise, naming the differing settings, when ``build_zoo`` with these arguments would replace a verified model
    in ``out_dir`` built from another config (its first stage alone counts as the same: the build resumes it). A
    derived model's base hash and architecture are left out: a rebuilt base makes it stale, and it is rebuilt too.
    ``force`` lets the named ``kinds`` be replaced, not the base they start from."""
    spec, seed, pre, ins = _recipe(size, seed, weight_decay)
    size = spec.name
    for kind in _build_order(kinds, _derived_kinds(spec)):
        if force and kind in kinds:
            continue
        try:
            old = verify(Path(out_dir) / kind).get("build_config") or {}
        except ZooIntegrityError:
            continue
        old = _comparable(old, kind)
        new = [_comparable(c, kind) for c in _kind_configs(kind, spec, size, seed, pre, ins, None, spec.vocab_size,
                                                           None)[2:]]
        if old not in new:
            diff = "; ".join(_differences(old, new[0])[:4])
            raise LazarusError(f"{Path(out_dir) / kind} was built from another config ({diff}) and would be replaced: "
                               "build with its settings (those named; `zoo list` shows each build's seed and weight "
                               "decay) to add models beside it, "
                               "or pass --force to rebuild it")


def _comparable(config: dict, kind: str) -> dict:
    """A build config without what a rebuilt base changes in a model derived from it (base hash, architecture)."""
    return {k: v for k, v in config.items() if k != "base_sha256" and (k != "arch" or kind == "base")}


def _differences(old: dict, new: dict) -> list[str]:
    """'train.weight_decay: 0.1 -> 0.01' for each setting that differs (one level into nested configs)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k}.{kk}: {a.get(kk)} -> {b.get(kk)}" for kk in sorted(set(a) | set(b)) if a.get(kk) != b.get(kk)]
        elif a != b:
            out.append(f"{k}: {a} -> {b}")
    return out


def _starting_point(kind: str, spec: SizeSpec, out: Path, arch: dict, tcfg: P.TrainConfig, tok, seed: int,
                    pre: P.TrainConfig, pdata, derived: bool) -> tuple:
    """(model, architecture, data) the first stage starts from: the base for instruct (chat data, corpus replay),
    the base untied or upcycled for a derived kind, a fresh model otherwise."""
    if kind == "instruct":
        model, _ = P.load_model(out / "base")
        data = P.chat_data(tok, seed, tcfg.steps * tcfg.batch_size, tcfg.seq_len)
        if spec.instruct_replay:
            n_replay = int(round(data.n_rows * spec.instruct_replay / (1 - spec.instruct_replay)))
            data = _concat(data, _tail(pdata(pre.steps * pre.batch_size + n_replay, tcfg.seq_len), n_replay))
        return model, arch, data
    if derived:
        base_model, base_arch = P.load_model(out / "base")
        model, arch = (untie(base_model, base_arch) if kind == "untied" else
                       upcycle_moe(base_model, base_arch, num_experts=spec.arch.num_local_experts,
                                   top_k=spec.arch.num_experts_per_tok, noise=0.01, seed=seed))
        return model, arch, pdata(tcfg.steps * tcfg.batch_size, tcfg.seq_len)
    model = P.build_model(arch)
    mx.eval(model.parameters())
    return model, arch, pdata(tcfg.steps * tcfg.batch_size, tcfg.seq_len)


def _training_figures(result: P.TrainResult) -> dict:
    """The manifest's figures of a model's training: time, speed, tokens, final loss and a sparse loss trace."""
    return {"train_seconds": round(result.seconds, 2), "tokens_per_s": round(result.tokens_per_s, 1),
            "train_tokens": result.tokens,
            "final_loss": float(sum(result.losses[-20:]) / max(1, len(result.losses[-20:]))),
            "loss_trace": [round(float(x), 6) for x in result.losses[::LOSS_TRACE_EVERY]]}


def _train_tokenizer(tok_dir: Path, spec: SizeSpec, seed: int, writer: bool) -> tuple[Tokenizer, float]:
    """The zoo's tokenizer, trained on rank 0 and read by every rank; (tokenizer, seconds)."""
    t0 = time.perf_counter()
    if writer:
        from .corpus import tokenizer_training_text

        texts = tokenizer_training_text(seed, spec.tokenizer_docs, spec.mix)
        save_tokenizer(build_tokenizer(seed, spec.vocab_size, texts), tok_dir)
    P.barrier()
    return Tokenizer.from_file(str(tok_dir / "tokenizer.json")), time.perf_counter() - t0


def _metrics(kind: str, model_dir: Path, spec: SizeSpec, seed: int, stages: dict[str, dict], evaluate: bool,
             progress: bool) -> dict | None:
    """The saved model's quality-gate figures (and those of its earlier stages), or None when not evaluated."""
    metrics = None
    if evaluate:
        _log(progress, f"{kind}: evaluating")
        metrics = _evaluate_saved(model_dir, seed, chat=True, n_heldout=spec.eval_heldout)
        metrics.update(fitness_metrics(kind, model_dir, spec.name, seed))
        _log(progress, f"{kind}: " + ", ".join(f"{g} {metrics[g]:.1%}" for g in METRICS if g in metrics))
    if stages:
        metrics = dict(metrics or {}, stages={name: {g: m[g] for g in METRICS if g in m}
                                              for name, m in stages.items()})
    return metrics


def build_zoo(out_dir: str | os.PathLike, size: str = "default", seed: int | None = None,
              progress: bool = True, *, kinds: tuple[str, ...] = KINDS,
              steps: int | None = None, instruct_steps: int | None = None,
              evaluate_models: bool = True, keep_checkpoints: bool = False,
              force: bool = False, stamp: dict | None = None, weight_decay: float | None = None) -> dict:
    """Build the zoo into ``out_dir/<kind>`` and return ``{kind: manifest}``.

    ``steps``/``instruct_steps`` override the size's step counts (tests use tiny values); ``stamp`` is written
    into every manifest (the lock a confirmatory build was made under); ``weight_decay`` replaces the base's
    in pretraining, anneal and extensions (a recipe variant; the build configs record it); a verified model
    built from another config is rebuilt (the CLI first asks :func:`refuse_replacing`).
    Interrupted builds resume from the per-model checkpoints in ``out_dir/.checkpoints``; models
    whose manifest verifies with the same build config are skipped unless ``force`` names them. Under
    :func:`lazarus_bench.zoo.ranks.launch` every rank runs this function: training is data parallel,
    rank 0 alone writes files and evaluates, and the others wait for it at each barrier."""
    if size not in SIZES:
        raise ValueError(f"unknown zoo size {size!r}; choose one of {sorted(SIZES)}")
    spec, seed, pre, ins = _recipe(size, seed, weight_decay, steps, instruct_steps)
    size = spec.name  # recipe3's builds were named "default"
    ranks, rank = P.world()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

    _log(progress, f"training tokenizer (seed {seed}) on {ranks} rank(s)")
    tok, tok_seconds = _train_tokenizer(out / "tokenizer", spec, seed, rank == 0)
    run = _ZooBuild(spec=spec, size=size, seed=seed, pre=pre, ins=ins, steps=steps, out=out, tok=tok,
                    vocab=tok.get_vocab_size(), tok_seconds=tok_seconds, ranks=ranks, writer=rank == 0,
                    progress=progress, evaluate_models=evaluate_models, keep_checkpoints=keep_checkpoints,
                    stamp=stamp, t_all=t_all)
    manifests: dict[str, dict] = {}
    for kind in _build_order(kinds, _derived_kinds(spec)):
        forced = force and kind in kinds  # --force rebuilds the named models, not the base they start from
        manifests[kind] = _build_kind(run, kind, manifests, forced)
    if not keep_checkpoints and run.writer:
        shutil.rmtree(run.ckpt_root, ignore_errors=True)
    _log(progress, f"zoo built in {time.perf_counter() - t_all:.0f}s at {out}")
    return manifests


@dataclass(frozen=True)
class _ZooBuild:
    """What every model of one ``build_zoo`` call shares: its recipe, tokenizer, corpus rows, ranks and output."""
    spec: SizeSpec
    size: str
    seed: int
    pre: P.TrainConfig
    ins: P.TrainConfig
    steps: int | None
    out: Path
    tok: Tokenizer
    vocab: int
    tok_seconds: float
    ranks: int
    writer: bool
    progress: bool
    evaluate_models: bool
    keep_checkpoints: bool
    stamp: dict | None
    t_all: float
    data_cache: dict[tuple, P.PackedData] = field(default_factory=dict)

    @property
    def ckpt_root(self) -> Path:
        """Where interrupted trainings resume from."""
        return self.out / ".checkpoints"

    def pdata(self, n_rows: int, seq_len: int) -> P.PackedData:
        """``n_rows`` corpus rows of ``seq_len`` + 1 tokens, generated once per shape and shared by the stages."""
        key = ("pre", n_rows, seq_len)
        if key not in self.data_cache:
            _log(self.progress, f"generating {n_rows}x{seq_len + 1} tokens of corpus (seed {self.seed})")
            self.data_cache[key] = P.pretrain_data(self.tok, self.seed, n_rows, seq_len, self.spec.mix)
        return self.data_cache[key]

    def save(self, model, arch: dict, model_dir: Path) -> None:
        """Replace ``model_dir`` with the model in float16 and the tokenizer (rank 0 writes, every rank waits)."""
        if self.writer:
            if model_dir.exists():
                shutil.rmtree(model_dir)
            save_model(model, arch, model_dir, dtype=mx.float16)
            save_tokenizer(self.tok, model_dir)
        P.barrier()


def _build_kind(run: _ZooBuild, kind: str, manifests: dict[str, dict], forced: bool) -> dict:
    """The manifest of ``kind``: skipped when built and verified with the same config (unless ``forced``), else
    trained; a base evaluated is then extended until it meets its gates."""
    model_dir = run.out / kind
    arch, tcfg, build_config, stage1_config = _kind_configs(kind, run.spec, run.size, run.seed, run.pre, run.ins,
                                                            run.steps, run.vocab, manifests)
    man = None if forced else _skip_if_built(model_dir, build_config)
    if man is not None:
        _log(run.progress, f"{kind}: already built and verified, skipping")
    else:
        man = _train_kind(run, kind, model_dir, arch, tcfg, build_config, stage1_config, forced)
    if kind == "base" and run.evaluate_models:  # also a base built before its extensions: it resumes with them
        man = _train_to_criterion(run.spec, man, model_dir, arch, run.seed, run.pre, run.pdata, run.save,
                                  run.ckpt_root, run.writer, run.progress)
    if kind == "base" and run.spec.closing is not None:  # ... and before its closing stage
        man = _close(run, man, model_dir, arch)
    return man


def _train_kind(run: _ZooBuild, kind: str, model_dir: Path, arch: dict, tcfg: P.TrainConfig, build_config: dict,
                stage1_config: dict, forced: bool) -> dict:
    """Train ``kind`` (its first stage resumed or skipped when already built), evaluate it, write its manifest and
    return it as read back."""
    t_model = time.perf_counter()
    mx.random.seed(run.seed + KINDS.index(kind))
    second_stage = "anneal" in build_config or "preference" in build_config
    stage1_done = second_stage and not forced and _skip_if_built(model_dir, stage1_config) is not None
    model, arch, data = _starting_point(kind, run.spec, run.out, arch, tcfg, run.tok, run.seed, run.pre, run.pdata,
                                        kind in _derived_kinds(run.spec))
    build_config["arch"] = arch
    n_params = P.count_params(model)
    stages: dict[str, dict] = {}
    result = _first_stage(run, kind, model, arch, data, tcfg, model_dir, n_params, stage1_done)
    if second_stage:
        result, stages = _then_second_stage(run, kind, model_dir, arch, result)
    metrics = _metrics(kind, model_dir, run.spec, run.seed, stages, run.evaluate_models and run.writer, run.progress)
    info = _manifest_info(run, kind, build_config, n_params, metrics, result, t_model)
    if run.writer:
        write_manifest(model_dir, info)
        if not run.keep_checkpoints:
            shutil.rmtree(run.ckpt_root / kind, ignore_errors=True)
    P.barrier()
    return json.loads((model_dir / MANIFEST).read_text())


def _first_stage(run: _ZooBuild, kind: str, model, arch: dict, data: P.PackedData, tcfg: P.TrainConfig,
                 model_dir: Path, n_params: int, done: bool) -> P.TrainResult:
    """Train and save the first stage of ``kind``, or nothing when it is ``done`` (built and verified before)."""
    if done:
        _log(run.progress, f"{kind}: stage 1 already built and verified, continuing with stage 2")
        return P.TrainResult()
    _log(run.progress, f"{kind}: {arch['model_type']} {n_params / 1e6:.2f}M params, "
                       f"{tcfg.steps} steps x {tcfg.batch_size}x{tcfg.seq_len} tokens")
    result = P.train(model, data, tcfg, ckpt_dir=run.ckpt_root / kind, progress=run.progress)
    run.save(model, arch, model_dir)
    return result


def _then_second_stage(run: _ZooBuild, kind: str, model_dir: Path, arch: dict,
                       first: P.TrainResult) -> tuple[P.TrainResult, dict[str, dict]]:
    """(both stages' training, the SFT model's figures for an instruct evaluated) after the second stage (anneal or
    DPO) has trained the saved first stage and saved it again."""
    stages: dict[str, dict] = {}
    model, _ = P.load_model(model_dir)
    if kind == "instruct" and run.evaluate_models and run.writer:
        stages["sft"] = _evaluate_saved(model_dir, run.seed, chat=True, n_heldout=run.spec.eval_heldout)
    second = _second_stage(kind, run.spec, model, model_dir, run.tok, run.seed, run.pre, run.pdata, run.ckpt_root,
                           run.progress)
    result = P.TrainResult(losses=first.losses + second.losses, steps=first.steps + second.steps,
                           tokens=first.tokens + second.tokens, seconds=first.seconds + second.seconds,
                           tokens_per_s=second.tokens_per_s)
    run.save(model, arch, model_dir)
    return result, stages


def _manifest_info(run: _ZooBuild, kind: str, build_config: dict, n_params: int, metrics: dict | None,
                   result: P.TrainResult, t_model: float) -> dict:
    """The manifest of a model just trained, less its files' hashes (``write_manifest`` adds them)."""
    return {
        "name": f"zoo-{run.size}-{kind}", "kind": kind, "size": run.size, "corpus_seed": run.seed,
        "build_config": build_config, "params": n_params,
        "metrics": metrics, "gates": GATES, "packages": package_versions(),
        "ranks": run.ranks, "recipe": run.spec.recipe, "recipe_sha256": recipe_hash(run.spec),
        "build_seconds": round(time.perf_counter() - t_model, 2),
        **_training_figures(result),
        "blas": blas.fingerprint(),
        "tokenizer_seconds": round(run.tok_seconds, 2),
        "wall_seconds_total_so_far": round(time.perf_counter() - run.t_all, 2),
        **(run.stamp or {}),
        **({"post_training": ["sft"] + (["dpo"] if "preference" in build_config else [])}
           if kind == "instruct" else {}),  # what H06's fitness gate reads: a reward-based stage after SFT
    }


def _second_stage(kind: str, spec: SizeSpec, model, model_dir: Path, tok, seed: int, pre: P.TrainConfig,
                  pdata, ckpt_root: Path, progress: bool) -> P.TrainResult:
    """The base's anneal on fresh corpus rows, or the instruct's DPO against its own SFT model."""
    if kind == "base":
        acfg = replace(spec.anneal, seed=seed, name=f"{spec.name}/base-anneal")
        fresh = _tail(pdata(pre.steps * pre.batch_size + acfg.steps * acfg.batch_size, acfg.seq_len),
                      acfg.steps * acfg.batch_size)
        _log(progress, f"{kind}: anneal {acfg.steps} steps at lr {acfg.lr:g} on fresh corpus rows")
        return P.train(model, fresh, acfg, ckpt_dir=ckpt_root / "base-anneal", progress=progress)
    dcfg = replace(spec.preference, seed=seed + 11, name=f"{spec.name}/instruct-dpo")
    ref, _ = P.load_model(model_dir)
    ref.freeze()
    pairs = P.preference_data(tok, seed, dcfg.steps * dcfg.batch_size, dcfg.seq_len)
    _log(progress, f"{kind}: DPO+NLL {dcfg.steps} steps x {dcfg.batch_size} pairs (beta {spec.dpo_beta:g}, "
                   f"NLL weight {spec.dpo_nll_weight:g})")
    return P.train(model, pairs, dcfg, ckpt_dir=ckpt_root / "instruct-dpo", progress=progress,
                   loss_fn=P.dpo_loss(ref, spec.dpo_beta, spec.dpo_nll_weight))


def _train_to_criterion(spec: SizeSpec, man: dict, model_dir: Path, arch: dict, seed: int, pre: P.TrainConfig,
                        pdata, save, ckpt_root: Path, writer: bool, progress: bool) -> dict:
    """The base's recipe ends when it meets its gates: while it misses one, one more anneal of
    ``spec.extension`` on corpus rows no stage has read, up to ``spec.max_extensions``. Every extension is
    logged in the manifest with the gate figures that triggered it, so a reader sees each build's path."""
    ext = list(man.get("extensions") or [])
    while spec.extension is not None and man.get("metrics") and len(ext) < spec.max_extensions \
            and gate_misses("base", man["metrics"], {}):
        k = len(ext) + 1
        ecfg = replace(spec.extension, seed=seed + 100 * k, name=f"{spec.name}/base-extend{k}")
        read = pre.steps * pre.batch_size + spec.anneal.steps * spec.anneal.batch_size \
            + k * ecfg.steps * ecfg.batch_size
        misses = gate_misses("base", man["metrics"], {})
        _log(progress, f"base: misses {'; '.join(misses)}: extension {k} of at most {spec.max_extensions}, "
                       f"{ecfg.steps} steps at lr {ecfg.lr:g} on fresh corpus rows")
        t0 = time.perf_counter()
        model, _ = P.load_model(model_dir)
        result = P.train(model, _tail(pdata(read, ecfg.seq_len), ecfg.steps * ecfg.batch_size), ecfg,
                         ckpt_dir=ckpt_root / f"base-extend{k}", progress=progress)
        save(model, arch, model_dir)
        ext.append({"steps": ecfg.steps, "lr": ecfg.lr, "min_lr_ratio": ecfg.min_lr_ratio, "seed": ecfg.seed,
                    "weight_decay": ecfg.weight_decay,
                    "misses_before": misses, "metrics_before": {g: man["metrics"][g] for g in GATES}})
        if writer:
            figures = _training_figures(result)
            metrics = _metrics("base", model_dir, spec, seed, {}, True, progress)
            write_manifest(model_dir, dict(
                man, metrics=metrics, extensions=ext, final_loss=figures["final_loss"],
                loss_trace=figures["loss_trace"], train_tokens=man["train_tokens"] + result.tokens,
                train_seconds=round(man["train_seconds"] + result.seconds, 2),
                build_seconds=round(man["build_seconds"] + time.perf_counter() - t0, 2)))
        P.barrier()
        man = json.loads((model_dir / MANIFEST).read_text())
    return man


def _closing_record(run: _ZooBuild, man: dict) -> dict:
    """What the base's manifest records of its closing stage (as read back): the config, the mix of its rows and the
    extensions before it (an extension made later calls for the stage again: it stays the last)."""
    ccfg = replace(run.spec.closing, seed=run.seed + 1000, name=f"{run.size}/base-closing")
    return json.loads(json.dumps({"train": asdict(ccfg), "mix": asdict(run.spec.closing_mix),
                                  "after_extensions": len(man.get("extensions") or [])}))


def _close(run: _ZooBuild, man: dict, model_dir: Path, arch: dict) -> dict:
    """The base after its closing stage: ``spec.closing`` on rows of ``spec.closing_mix`` past every row the earlier
    stages read. It runs after the gates and their extensions; the manifest records it with the gate figures before
    it, and a base that already has it is returned as it is."""
    record = _closing_record(run, man)
    if man.get("closing", {}).get("config") == record:
        return man
    ccfg = P.TrainConfig(**record["train"])
    spec, n = run.spec, ccfg.steps * ccfg.batch_size
    read = run.pre.steps * run.pre.batch_size + spec.anneal.steps * spec.anneal.batch_size \
        + sum(e["steps"] for e in man.get("extensions") or []) * (spec.extension.batch_size if spec.extension else 0)
    _log(run.progress, f"base: closing stage, {ccfg.steps} steps at lr {ccfg.lr:g} on fresh rows of its own mix")
    t0 = time.perf_counter()
    data = _tail(P.pretrain_data(run.tok, run.seed, read + n, ccfg.seq_len, spec.closing_mix), n)
    model, _ = P.load_model(model_dir)
    result = P.train(model, data, ccfg, ckpt_dir=run.ckpt_root / "base-closing", progress=run.progress)
    run.save(model, arch, model_dir)
    if run.writer:
        figures = _training_figures(result)
        metrics = _metrics("base", model_dir, spec, run.seed, {}, run.evaluate_models, run.progress)
        before = {g: man["metrics"][g] for g in GATES} if man.get("metrics") else None
        write_manifest(model_dir, dict(
            man, metrics=metrics, closing={"config": record, "metrics_before": before},
            recipe_sha256=recipe_hash(spec), final_loss=figures["final_loss"], loss_trace=figures["loss_trace"],
            train_tokens=man["train_tokens"] + result.tokens,
            train_seconds=round(man["train_seconds"] + result.seconds, 2),
            build_seconds=round(man["build_seconds"] + time.perf_counter() - t0, 2)))
    P.barrier()
    return json.loads((model_dir / MANIFEST).read_text())


def _tail(data: P.PackedData, n_rows: int) -> P.PackedData:
    """The last ``n_rows`` rows: corpus rows that an earlier stage (which read the first ones) never saw."""
    return P.PackedData(data.tokens[-n_rows:], data.mask[-n_rows:])


def _concat(a: P.PackedData, b: P.PackedData) -> P.PackedData:
    import numpy as np

    return P.PackedData(np.concatenate([a.tokens, b.tokens]), np.concatenate([a.mask, b.mask]))


def _evaluate_saved(model_dir: Path, seed: int, chat: bool, n_heldout: int | None = None) -> dict:
    """Load with ``mlx_lm.load`` (as users will), upcast to float32, evaluate."""
    import mlx_lm

    model, tok = mlx_lm.load(str(model_dir))
    model.set_dtype(mx.float32)
    return evaluate(model, tok, seed=seed, chat=chat, n_heldout=n_heldout)


def zoo_paths(out_dir: str | os.PathLike) -> dict[str, Path]:
    return {k: Path(out_dir) / k for k in KINDS}


def verify_zoo(out_dir: str | os.PathLike) -> dict[str, dict]:
    return {k: verify(p) for k, p in zoo_paths(out_dir).items()}


def is_current(root: str | os.PathLike) -> bool:
    """Every model of the zoo at ``root`` is present and was built by this :data:`RECIPE` as its size declares it
    now (the recipe's hash: a changed corpus mix or step count makes a cached zoo stale)."""
    for kind in KINDS:
        try:
            man = json.loads((Path(root) / kind / MANIFEST).read_text())
        except (OSError, ValueError):
            return False
        spec = SIZES.get(man.get("size")) if isinstance(man, dict) else None
        if spec is None or man.get("recipe") != RECIPE or man.get("recipe_sha256") != recipe_hash(spec):
            return False
    return True


def ensure_micro_zoo(progress: bool = False) -> Path:
    """The micro zoo (the fast tier's models), built into the cache the first time it is needed and rebuilt
    when it came from an older recipe (a corpus change leaves every build config equal). Concurrent callers
    (pytest-xdist workers) take turns on a lock file: one builds, the others find it current."""
    root = zoo_root(micro=True)
    if is_current(root):
        return root
    root.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_current(root):
            build_zoo(root, size="micro", progress=progress, force=True)
    return root
