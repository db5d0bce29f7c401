"""A claim is data (id, source, statement, parameters, criterion, applicability) plus one measure function.

The hypothesis tests, the runner and the report all read the registry; nothing about a claim is
written twice. A measure function gets a ``ClaimContext`` and returns an ``Outcome`` whose
statistic carries the verdict.
"""

from __future__ import annotations

import copy
import hashlib
import re
import time
from dataclasses import asdict, dataclass, field, fields, make_dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from .. import progress
from ..errors import LazarusError
from ..stats import ClaimStatistic, Verdict, combine
from ..zoo.registry import split_build, with_build
from .pairs import ZOO_PREFIXES, instruct_pair_of
from .params import SHARED, Param

TIERS = ("fast", "slow")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry needs to know about a model to decide whether a claim applies."""

    model_id: str
    model_type: str
    kind: str
    n_layers: int
    is_moe: bool
    tied: bool
    instruct_pair: str | None = None


@dataclass(frozen=True)
class Curve:
    """One plot of a record: x labels and named series of y values (None where a value is undefined)."""

    x: tuple[str, ...]  # the x axis labels (layers, steps, thresholds)
    series: dict[str, list[float | None]]  # label -> one y value per x label (a series may stop early)
    xlabel: str | None = None  # the report's default: "layer"
    ylabel: str | None = None  # the report's default: the curve's name

    def __post_init__(self):
        long = [name for name, ys in self.series.items() if len(ys) > len(self.x)]
        if long:
            raise LazarusError(f"curve series {', '.join(long)} longer than its {len(self.x)} x labels")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"x": list(self.x), "series": dict(self.series)}
        out.update({k: v for k, v in (("xlabel", self.xlabel), ("ylabel", self.ylabel)) if v is not None})
        return out

    @classmethod
    def of(cls, value: "Curve | dict[str, Any]") -> "Curve":
        """A curve, or one from its dict form (what claims and records hold)."""
        if isinstance(value, Curve):
            return value
        unknown = set(value) - {"x", "series", "xlabel", "ylabel"}
        if unknown:
            raise LazarusError(f"curve: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(x=tuple(str(v) for v in value["x"]), series=dict(value["series"]), xlabel=value.get("xlabel"),
                   ylabel=value.get("ylabel"))


@dataclass
class Outcome:
    """What a measure returns: the statistic, its named parts and their combining rule (the framework decides the
    verdict: ``stats.final_verdict``), per-item samples, curves for plots, extras and the gates it measured.

    A measure with one criterion returns its statistic alone (decided by the stats helper of its declared test);
    one with several returns ``parts`` (each decided by its own test) and the headline ``statistic`` they combine
    into under ``rule``."""

    statistic: ClaimStatistic
    ours: str
    samples: list[dict] = field(default_factory=list)
    curves: dict[str, Curve | dict] = field(default_factory=dict)  # checked as Curve, kept in the record's dict form
    extra: dict[str, Any] = field(default_factory=dict)
    fitness: dict[str, float] = field(default_factory=dict)  # values of the claim's gates measured by the measure
    parts: dict[str, ClaimStatistic] = field(default_factory=dict)
    rule: str = "all"

    def __post_init__(self):
        if self.parts:
            self.statistic = combine(self.statistic, self.parts, rule=self.rule)
        self.curves = {name: Curve.of(curve).to_dict() for name, curve in self.curves.items()}

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.statistic.verdict)

    def named_parts(self) -> dict[str, ClaimStatistic]:
        """The parts the verdict combines: the declared ones, or the statistic itself."""
        return self.parts or {self.statistic.name: self.statistic}


@dataclass(frozen=True)
class GateResult:
    """A fitness gate measured on one model: its value, the threshold it had to meet, and whether it did."""

    name: str
    value: float
    threshold: float | list[float]
    direction: str
    passed: bool
    description: str

    def line(self) -> str:
        return (f"fitness gate '{self.name}': {self.value:.4g} {'' if self.passed else 'not '}"
                f"{bound_text(self.direction, self.threshold)} ({self.description})")


def bound_text(direction: str, threshold: float | Sequence[float]) -> str:
    """'>= 0.5', '<= 0.5' or 'in [0.1, 0.9]'."""
    if direction == "within":
        return f"in [{threshold[0]:.4g}, {threshold[1]:.4g}]"
    return f"{'>=' if direction == 'above' else '<='} {threshold:.4g}"


@dataclass(frozen=True, kw_only=True)
class Gate:
    """A prerequisite the model must meet for the claim to be testable (CLAIMS.md revision 2, fitness column).

    ``value(ctx)`` measures it on the model before the claim's measurement; a gate without ``value`` is a fact of
    the measurement itself (did training learn, was the reward rate in range), which the measure reports in
    ``Outcome.fitness[name]``. The threshold is the claim parameter ``threshold_param`` (overridable like every
    other; a [low, high] pair for ``direction="within"``). A failed gate turns the verdict into NOT TESTABLE.
    """

    name: str
    description: str
    value: Callable[["ClaimContext"], float] | None
    threshold_param: str
    direction: str = "above"

    def check(self, ctx: "ClaimContext", outcome: "Outcome | None" = None) -> GateResult:
        if self.value is not None:
            value = float(self.value(ctx))
        elif outcome is None or self.name not in outcome.fitness:
            raise LazarusError(f"{ctx.claim.id}: the measure did not report fitness gate '{self.name}'")
        else:
            value = float(outcome.fitness[self.name])
        return self.evaluate(value, ctx.params)

    def evaluate(self, value: float, params: dict[str, Any]) -> GateResult:
        raw = params[self.threshold_param]
        if self.direction == "within":
            threshold = [float(raw[0]), float(raw[1])]
            passed = threshold[0] <= value <= threshold[1]
        else:
            threshold = float(raw)
            passed = value >= threshold if self.direction == "above" else value <= threshold
        return GateResult(self.name, value, threshold, self.direction, passed, self.description)


class NotTestable(Exception):
    """A fitness gate failed, so nothing after it can be tested: raised before the measure (a gate measured up front)
    or inside it (``ClaimContext.require``, a gate the measure reaches first, e.g. stage 1 before stage 2), with the
    descriptive numbers measured so far. The claim's controls are not run on such a model."""

    def __init__(self, gates: list[GateResult], details: dict[str, Any] | None = None):
        super().__init__("; ".join(g.line() for g in gates if not g.passed))
        self.gates, self.details = gates, details or {}


class ControlUnavailable(LazarusError):
    """A control that cannot be built for this model or claim; the report states the reason."""


POSITIVE, NEGATIVE = "positive", "negative"


@dataclass(frozen=True)
class ControlRun:
    """One control measured on one model, as a record stores it."""

    name: str  # the control's name in the claim
    kind: Literal["positive", "negative"]  # planted effect (must be detected) or removed effect (must not be)
    description: str  # what the construction does
    effect_verdict: Verdict  # the verdict that reads "the effect is present"
    built: bool  # False when the control could not be built for this model (``reason`` says why)
    reason: str  # why it was not built, or the reason of the verdict it gave
    verdict: Verdict | None = None  # the verdict the claim's measure gave on the control
    detected: bool | None = None  # the verdict equals ``effect_verdict``
    passed: bool | None = None  # gave its known answer (detected for a positive, not for a negative control)
    statistic: dict[str, Any] | None = None  # name, value, ci_low, ci_high, n of the control's statistic
    ours: str | None = None  # the measure's one-line summary on the control
    part: str | None = None  # the part of a compound claim the control reads, if not the whole claim
    sanity: bool = False  # cannot fail by construction: a sanity check, never counted in sensitivity or FP rate

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "kind": self.kind, "description": self.description,
               "effect_verdict": str(self.effect_verdict)}
        out.update({k: v for k, v in (("part", self.part), ("sanity", self.sanity)) if v})
        if not self.built:
            return {**out, "built": False, "reason": self.reason}
        return {**out, "built": True, "verdict": str(self.verdict), "detected": self.detected, "passed": self.passed,
                "reason": self.reason, "statistic": self.statistic, "ours": self.ours}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ControlRun":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"control run: unknown field(s) {', '.join(unknown)}")
        verdict = data.get("verdict")
        return cls(**{**data, "effect_verdict": Verdict(data["effect_verdict"]),
                      "verdict": None if verdict is None else Verdict(verdict)})


@dataclass(frozen=True, kw_only=True)
class Control:
    """A known-answer run of the claim's own measure (CLAIMS.md revision 2, "Calibration").

    ``build(ctx)`` returns the context to measure instead: another model (``ctx.variant(handle=...)``) or other
    parameters. ``effect`` is the verdict the measure gives when the effect is present: a positive control (effect
    planted by construction) must give it, a negative control (effect absent by construction) must not. ``part``
    names one part of a compound claim (``details["parts"][part]``, or ``combine``'s ``details["criteria"][part]``,
    each with its verdict and reason) when the construction plants or removes that part alone.
    """

    name: str
    kind: str
    description: str
    build: Callable[["ClaimContext"], "ClaimContext"]
    effect: Verdict
    part: str | None = None
    sanity: bool = False  # detected (or quiet) by construction: kept as a sanity check, not counted

    def run(self, claim: "Claim", ctx: "ClaimContext") -> ControlRun:
        """Measure the control: whether the effect was detected and whether that was the known answer."""
        head = dict(name=self.name, kind=self.kind, description=self.description, effect_verdict=self.effect,
                    sanity=self.sanity)
        progress.part(f"{self.kind} control '{self.name}'")
        try:
            control_ctx = self.build(ctx)
            outcome = claim.reader(self.part)(control_ctx)
        except ControlUnavailable as exc:
            return ControlRun(**head, built=False, reason=str(exc))
        except NotTestable as exc:
            return ControlRun(**head, built=False, reason=f"the control's own run is not testable: {exc}")
        s = outcome.statistic
        verdict, reason = outcome.verdict, s.reason
        if self.part is not None:
            parts = s.details.get("parts") or s.details.get("criteria", {})
            if self.part not in parts:
                raise LazarusError(f"{claim.id}: control '{self.name}' reads part '{self.part}', which the measure "
                                   f"did not report (parts: {', '.join(parts) or 'none'})")
            verdict, reason = Verdict(parts[self.part]["verdict"]), parts[self.part].get("reason", reason)
        detected = verdict == self.effect
        return ControlRun(**head, built=True, reason=reason, verdict=verdict, detected=detected,
                          passed=detected if self.kind == POSITIVE else not detected,
                          statistic={"name": s.name, "value": s.statistic, "ci_low": s.ci_low, "ci_high": s.ci_high,
                                     "n": s.n},
                          ours=outcome.ours, part=self.part)


@dataclass(frozen=True)
class Claim:
    """One claim of the writeups: data plus the function that measures it on a model."""

    id: str
    title: str
    statement: str
    source: str
    criterion: str
    writeup: str
    params: dict[str, Any]
    measure: Callable[["ClaimContext"], Outcome]
    applies: Callable[[ModelInfo], str | None] = lambda info: None
    fast: dict[str, Any] = field(default_factory=dict)
    training: bool = False
    protocols: tuple[str, ...] = ("corrected",)
    default_seeds: dict[str, int] = field(default_factory=lambda: {"fast": 1, "slow": 3})
    after: tuple[str, ...] = ()  # claims whose cached training runs this one reuses: the runner schedules it later
    gates: tuple[Gate, ...] = ()  # fitness prerequisites: a model that fails one makes the claim NOT TESTABLE
    controls: tuple[Control, ...] = ()  # negative and positive controls the runner measures with the claim
    layer_curve: tuple[str, str | None] | None = None  # (curve, series or None = last): statistic at every layer
    tests: dict[str, str] = field(default_factory=dict)  # criterion -> its test ("sign", "t"), declared before data
    graded: tuple = ()  # GradedControl: the effect planted at strengths frozen in the lock (harness.controls)
    nulls: tuple = ()  # NullControl: the effect absent with the measurement's variance, replicated (harness.controls)
    no_graded: str = ""  # why the claim has no graded positive control, where it has none
    readers: dict[str, Callable[["ClaimContext"], Outcome]] = field(default_factory=dict)  # part -> a cheaper measure
    declared: dict[str, Param] = field(default_factory=dict, repr=False, compare=False)  # filled from params

    def __post_init__(self):
        """Split ``params`` into plain defaults (what measures, the lock and records read) and each parameter's
        declaration: a ``Param`` given here, or a shared parameter's range and help (``harness.params.SHARED``)."""
        defaults, declared = {}, {}
        for name, value in self.params.items():
            if isinstance(value, Param):
                declared[name] = value
            elif name in self.declared:  # dataclasses.replace(claim, params=...): a new default, same declaration
                declared[name] = replace(self.declared[name], default=value)
            elif name in SHARED:
                declared[name] = Param(value, SHARED[name].range, help=SHARED[name].help)
            else:
                raise LazarusError(f"{self.id}: parameter {name} has no declaration: give it as "
                                   f"Param(default, range, help=...) (harness/params.py)")
            defaults[name] = declared[name].default
        unknown = sorted(set(self.readers) - set(self.tests))
        if unknown:
            raise LazarusError(f"{self.id}: readers for {', '.join(unknown)}, which are not among its criteria")
        for name, value in {**defaults, **self.fast}.items():
            if name not in declared:
                raise LazarusError(f"{self.id}: fast-tier parameter {name} is not one of its parameters")
            if not declared[name].range.contains(value):
                raise LazarusError(f"{self.id}: parameter {name} = {value!r}: expected {declared[name].range}")
        object.__setattr__(self, "params", defaults)
        object.__setattr__(self, "declared", declared)

    def reader(self, part: str | None) -> Callable[["ClaimContext"], Outcome]:
        """What a control reading ``part`` runs: the claim's reader for that part, which computes that part alone
        (the verdict the full measure would give it, at a fraction of the cost), else the full measure."""
        return self.readers.get(part, self.measure) if part is not None else self.measure

    def tier_protocols(self, tier: str) -> tuple[str, ...]:
        """The protocols a tier runs: all in the slow tier; the fast tier (a pipeline check) skips the one-factor
        ablations (``corrected+<defect>``), which tests/test_protocols.py covers."""
        return self.protocols if tier == "slow" else tuple(p for p in self.protocols if "+" not in p)

    def parameters(self, tier: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The writeup's parameters, reduced for the fast tier, then the user's overrides (unknown keys rejected)."""
        merged = {**self.params, **(self.fast if tier == "fast" else {})}
        if overrides is not None and not isinstance(overrides, dict):
            raise LazarusError(f"{self.id}: parameters must be a JSON object of name: value, got {overrides!r}")
        unknown = sorted(set(overrides or {}) - set(merged))
        if unknown:
            raise LazarusError(f"{self.id}: unknown parameter(s) {', '.join(unknown)} (known: {', '.join(merged)})")
        for name, value in (overrides or {}).items():
            if not _same_kind(merged[name], value):
                raise LazarusError(f"{self.id}: parameter {name} = {value!r} should be like its default "
                                   f"{merged[name]!r} ({type(merged[name]).__name__})")
            declared = self.declared[name].range
            if not declared.contains(value):
                raise LazarusError(f"{self.id}: parameter {name} = {value!r}: expected {declared}")
        typed = self.params_type()(**{**merged, **(overrides or {})})
        return {f.name: getattr(typed, f.name) for f in fields(typed)}

    def params_type(self) -> type:
        """The claim's parameters as a frozen dataclass, ``<ID>Params``: one field per parameter with its default,
        and its declared range and line of help in the field's metadata (mlx-lm's ``field(metadata=...)`` style)."""
        specs = []
        for name, p in self.declared.items():
            meta = {"range": p.range, "help": p.help}
            value = (field(default_factory=partial(copy.deepcopy, p.default), metadata=meta)
                     if isinstance(p.default, (list, dict)) else field(default=p.default, metadata=meta))
            specs.append((name, Any if p.default is None else type(p.default), value))
        return make_dataclass(f"{self.id}Params", specs, frozen=True)


def _same_kind(default: Any, value: Any) -> bool:
    """An override may replace a default of the same kind: numbers by numbers (an integer default by an integer),
    flags by flags, text by text, lists by lists; a default of None takes anything."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


class ClaimContext:
    """Everything a measure may use: the model (fresh copies for training), parameters, seeds, cache, log."""

    def __init__(self, claim: Claim, info: ModelInfo, *, tier: str, seeds: list[int], params: dict[str, Any],
                 protocol: str = "corrected", cache_dir: str | Path | None = None,
                 log: Callable[[str], None] | None = None, shared: Any = None):
        if tier not in TIERS:
            raise LazarusError(f"unknown tier '{tier}' ({' or '.join(TIERS)})")
        self.claim, self.info, self.tier, self.seeds = claim, info, tier, seeds
        self.params, self.protocol = params, protocol
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._log = log or (lambda message: None)
        self._shared = shared
        self.is_variant = False  # a control's or a graded plant's run: floors do not stop it (``floor``)

    @property
    def model_id(self) -> str:
        return self.info.model_id

    def log(self, message: str) -> None:
        self._log(f"{self.claim.id} {self.model_id}: {message}")

    def variant(self, *, handle: Any = None, params: dict[str, Any] | None = None,
                info: ModelInfo | None = None) -> "ClaimContext":
        """The same claim run on a control: another model, parameters or model facts (the claim's own otherwise)."""
        ctx = ClaimContext(self.claim, info or self.info, tier=self.tier, seeds=self.seeds,
                           params={**self.params, **(params or {})}, protocol=self.protocol,
                           cache_dir=self.cache_dir, log=self._log,
                           shared=handle if handle is not None else self._shared)
        ctx.is_variant = True
        return ctx

    def test(self, criterion: str) -> str:
        """The test the claim declared for ``criterion`` (hashed into the lock): a measure never picks one itself."""
        if criterion not in self.claim.tests:
            raise LazarusError(f"{self.claim.id}: criterion '{criterion}' has no declared test (declared: "
                               f"{', '.join(sorted(self.claim.tests)) or 'none'})")
        return self.claim.tests[criterion]

    def require(self, gate_name: str, value: float, details: dict[str, Any] | None = None) -> GateResult:
        """Check one of the claim's gates as soon as the measure has its value; raise :class:`NotTestable` (with the
        descriptive ``details`` so far) when it fails, so no further compute goes into an untestable model."""
        gate = next((g for g in self.claim.gates if g.name == gate_name), None)
        if gate is None:
            raise LazarusError(f"{self.claim.id}: no fitness gate named '{gate_name}'")
        result = gate.evaluate(float(value), self.params)
        if not result.passed:
            raise NotTestable([result], details)
        return result

    def floor(self, gate_name: str, value: float, details: dict[str, Any] | None = None) -> None:
        """A gate that is the smallest value over runs, checked on one run as soon as it ends: a run below the floor
        decides it (the smallest cannot pass), so the claim's own run stops there (``require``). A control's run is
        measured to its end: the runner checks no gate on it, and a learning-rate-0 control fails floors by design."""
        if not self.is_variant:
            self.require(gate_name, value, details)

    def handle(self):
        """The model for analysis (shared within this claim run; never train it in place)."""
        if self._shared is None:
            self._shared = self.fresh_handle()
        return self._shared

    def fresh_handle(self, model_id: str | None = None):
        """A newly loaded copy of the model (or of ``model_id``), safe to train in place."""
        from ..models import load_model

        return load_model(model_id or self.model_id)

    def random_control(self, seed: int = 0):
        """A random-init model of the same architecture and tokenizer: the negative control."""
        from ..models import ModelHandle
        from ..tiny import build_model

        handle = self.handle()
        model = build_model(dict(handle.config), seed=seed, randomise_norms=False)
        return ModelHandle(model=model, tokenizer=handle.tokenizer, model_id=f"random-init({self.model_id})",
                           config=handle.config)


def model_info(handle) -> ModelInfo:
    """Kind of a loaded model: moe, instruct (chat template or name), untied or base."""
    model_id, name = handle.model_id, handle.model_id.lower()
    chat = bool(getattr(handle.tokenizer, "chat_template", None))
    if handle.is_moe:
        kind = "moe"
    elif chat and ("instruct" in name or "chat" in name):
        kind = "instruct"
    elif not handle.tied:
        kind = "untied"
    else:
        kind = "base"
    pair = None if kind == "instruct" else instruct_pair_of(model_id)
    return ModelInfo(model_id=model_id, model_type=handle.model_type, kind=kind, n_layers=handle.n_layers,
                     is_moe=handle.is_moe, tied=handle.tied, instruct_pair=pair)




def not_instruct(info: ModelInfo) -> str | None:
    return "the claim is about base models; this is an instruct model" if info.kind == "instruct" else None


def ablation_scope(protocol: str, info: ModelInfo) -> str | None:
    """One-factor ablations (``corrected+<defect>``) explain the writeups' failures on base models; elsewhere they
    would repeat that diagnosis at the cost of a training run per defect, so they run on base models only."""
    if "+" in protocol and info.kind != "base":
        return f"one-factor ablations run on base models only; this is a {info.kind} model"
    return None


def build_scope(claim: "Claim", protocol: str, info: ModelInfo) -> str | None:
    """A zoo build's derived variant runs only the claims a base model cannot test (the MoE router): the others are
    measured on the builds' base models. The other protocols (the writeup's, the one-factor ablations) run on one
    build, the root or the current recipe's first development seed; the other builds replicate the corrected one."""
    from ..zoo.recipe import DEV_SEEDS

    name = info.model_id.split(":", 1)[-1]
    if not info.model_id.startswith(ZOO_PREFIXES):
        return None
    if protocol != "corrected" and split_build(name)[1] not in (None, f"s{DEV_SEEDS[0]}"):
        return (f"builds replicate the corrected protocol; the other protocols run on the root build and on "
                f"s{DEV_SEEDS[0]}")
    if info.kind != "base":
        as_base = ModelInfo(model_id=info.model_id, model_type="llama", kind="base", n_layers=info.n_layers,
                            is_moe=False, tied=True, instruct_pair=with_build(info.model_id, "instruct"))
        if claim.applies(as_base) is None:
            return f"a derived {info.kind} variant is not a replicate of its base: it runs only claims about its kind"
    return None


def needs_moe(info: ModelInfo) -> str | None:
    return None if info.is_moe else f"dense model ({info.model_type}): no MoE router"


def needs_instruct_pair(info: ModelInfo) -> str | None:
    if info.kind == "instruct":
        return "run on the base model of the pair"
    return None if info.instruct_pair else "no instruct variant of this model is known"


def timed(fn: Callable[[], Outcome]) -> tuple[Outcome, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def slug(text: str) -> str:
    """A filename-safe name for a model id (with a short hash so distinct ids never collide)."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[-60:] + "-" + digest


def outcome_dict(outcome: Outcome) -> dict:
    """The record fields an outcome fills."""
    return {"statistic": outcome.statistic, "ours": outcome.ours, "samples": outcome.samples,
            "curves": outcome.curves, "extra": outcome.extra}


def claim_dict(claim: Claim) -> dict:
    data = {k: v for k, v in asdict(claim).items() if k not in ("measure", "applies", "gates", "controls", "graded",
                                                                 "nulls", "no_graded", "declared", "readers")}
    if claim.readers:
        data["readers"] = sorted(claim.readers)
    if claim.no_graded:
        data["no_graded"] = claim.no_graded
    data["gates"] = [{"name": g.name, "description": g.description, "threshold_param": g.threshold_param,
                      "direction": g.direction} for g in claim.gates]
    data["controls"] = [{"name": c.name, "kind": c.kind, "description": c.description,
                         "effect_verdict": str(c.effect), **({"sanity": True} if c.sanity else {})}
                        for c in claim.controls]
    if claim.graded or claim.nulls:
        data["graded"] = [g.declaration() for g in claim.graded]
        data["nulls"] = [n.declaration() for n in claim.nulls]
    return data
