"""Graded positive controls and nulls that can fire (CLAIMS.md revision 3, "Calibration").

A graded control plants the claim's effect at several strengths, frozen in the lock, that bracket the criterion's
threshold and include the writeup's effect, each replicated; the empirical MDE is the smallest strength detected in
>= 80% of replicates (and at every stronger one). A null control removes the effect with the variance of the real
measurement (permuted labels, random directions of matched norm, random-init seeds), run often enough to estimate the
false-positive rate. Controls that cannot fail by construction are ``Control(sanity=True)``: kept, never counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .. import progress
from ..errors import LazarusError
from ..stats import Verdict, binomial_test
from ..stats.verdicts import rule_verdict
from .base import NEGATIVE, POSITIVE, ClaimContext, ControlRun, ControlUnavailable, NotTestable

DETECTION_POWER = 0.8  # a strength counts as detectable when this share of its replicates is detected
NULL_LEVEL = 0.05  # a null whose false-positive count exceeds its nominal alpha at this level is "not specific"
FAST_REPLICATES = 1  # the fast tier is a pipeline check: at most this many replicates of each graded or null control


def replicates(ctx: ClaimContext, declared: int) -> int:
    """The declared replicates in the slow tier; at most ``FAST_REPLICATES`` in the fast tier."""
    return declared if ctx.tier == "slow" else min(declared, FAST_REPLICATES)


def measured_verdicts(statistic) -> dict[str | None, Verdict]:
    """A measurement's verdicts: the headline's (key None) and each named part's."""
    parts = statistic.details.get("parts") or statistic.details.get("criteria", {})
    return {None: Verdict(statistic.verdict), **{k: Verdict(v["verdict"]) for k, v in parts.items()}}


def decides(effect: str, part: str | None, measured: dict[str | None, Verdict]) -> bool:
    """Whether the measured verdict (``measured_verdicts``) would change had the measurement seen a control's effect
    in the part it reads: only then can a missed control say the verdict is blind. A run that saw the effect, or whose
    verdict another part decides (one refuted conjunct refutes the claim), does not rest on that control."""
    if not effect or None not in measured or (part is not None and part not in measured):
        return True  # a record from before the effect was stored, or no measurement: as it was
    if part is None:
        return measured[None] != Verdict(effect)
    parts = {**{k: v for k, v in measured.items() if k is not None}, part: Verdict(effect)}
    return rule_verdict(parts)[0] != measured[None]


def _verdict_of(claim, ctx: ClaimContext, part: str | None) -> tuple[Verdict, float]:
    """The claim's measure (its reader of ``part``, where it has one) on ``ctx``: the verdict (of ``part``, if named)
    and the headline statistic of what ran."""
    s = claim.reader(part)(ctx).statistic
    verdicts = measured_verdicts(s)
    if part not in verdicts:
        raise LazarusError(f"{claim.id}: control reads part '{part}', which the measure did not report")
    return verdicts[part], float(s.statistic)


@dataclass(frozen=True)
class GradedRun:
    """A graded control measured on one model: detections per strength and the empirical MDE."""

    name: str
    description: str
    units: str  # what a strength measures
    strengths: tuple[float, ...]  # as frozen in the lock, ascending
    replicates: int  # runs per strength
    threshold: float | None  # the criterion's threshold in these units (None: the criterion is in other units)
    writeup: float  # the writeup's effect in these units
    claimed: float  # the strength the verdict must be able to see (the writeup's effect or the threshold)
    built: bool
    reason: str  # why it was not built, or which strengths could not be planted, else ""
    detected: tuple[int | None, ...] = ()  # replicates detected at each strength (None: not plantable on this model)
    statistics: tuple[tuple[float, ...], ...] = ()  # the measure's headline statistic per strength and replicate
    effect: str = ""  # the verdict that reads "present" ("" in records made before it was stored)
    part: str | None = None  # the part of the verdict it reads (None: the headline)

    @property
    def rates(self) -> list[float | None]:
        return [None if k is None else k / self.replicates for k in self.detected]

    @property
    def mde(self) -> float | None:
        """Smallest strength detected in >= 80% of replicates there and at every stronger plantable strength (None:
        none); the chain stops at a strength that could not be planted below a measured one."""
        best = None
        for strength, rate in reversed(list(zip(self.strengths, self.rates))):
            if rate is None and best is None:
                continue
            if rate is None or rate < DETECTION_POWER:
                break
            best = strength
        return best

    def decides(self, measured: dict[str | None, Verdict]) -> bool:
        """``decides`` asked of this control."""
        return decides(self.effect, self.part, measured)

    def rate_at(self, strength: float) -> float | None:
        """Detection rate at a declared strength (None when it is not one of them)."""
        for s, rate in zip(self.strengths, self.rates):
            if abs(s - strength) <= 1e-12 * max(1.0, abs(s)):
                return rate
        return None

    def to_dict(self) -> dict[str, Any]:
        stored = {k: v for k, v in self.__dict__.items() if self.effect or k not in ("effect", "part")}  # as read
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in stored.items()} | {
            "statistics": [list(s) for s in self.statistics], "mde": self.mde}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GradedRun":
        body = {k: v for k, v in data.items() if k != "mde"}
        return cls(**{**body, "strengths": tuple(body["strengths"]), "detected": tuple(body.get("detected", ())),
                      "statistics": tuple(tuple(s) for s in body.get("statistics", ()))})


@dataclass(frozen=True, kw_only=True)
class GradedControl:
    """The claim's effect planted at ``strengths`` (in ``units``), ``replicates`` times each:
    ``build(ctx, strength, replicate)`` returns the context to measure. ``effect`` is the verdict that reads
    "present". ``claimed`` is the strength the verdict rests on: the writeup's effect for a claim that an effect
    exists, the criterion's threshold for a claim that none does (the smallest effect it rules out). ``"sesoi"``: a
    threshold that depends on the model (CLAIMS.md revision 4): ``scale_free(ctx)`` gives its forms (``scale.py``), the
    run takes T' as the threshold and R + 2 (T' - R), an effect twice as far from the random level as T', as the
    strength the verdict must see; never T' itself, where any valid test detects at about alpha. ``relative``: the
    strengths are multiples of the model's T' (sesoi only), so one grid brackets the effect on every build."""

    name: str
    description: str
    units: str
    strengths: tuple[float, ...]
    replicates: int
    build: Callable[[ClaimContext, float, int], ClaimContext]
    effect: Verdict
    threshold: float | None
    writeup: float
    claimed: str = "writeup"
    part: str | None = None
    scale_free: Callable[[ClaimContext], dict] | None = None
    relative: bool = False

    def __post_init__(self):
        if len(self.strengths) < 4 or list(self.strengths) != sorted(self.strengths):
            raise LazarusError(f"graded control '{self.name}': >= 4 ascending strengths, got {self.strengths}")
        if self.relative and self.claimed != "sesoi":
            raise LazarusError(f"graded control '{self.name}': relative strengths are multiples of a sesoi's T'")
        if self.claimed == "sesoi":
            if self.scale_free is None:
                raise LazarusError(f"graded control '{self.name}': claimed 'sesoi' needs its scale_free threshold")
            return
        if self.claimed not in ("writeup", "threshold") or (self.claimed == "threshold" and self.threshold is None):
            raise LazarusError(f"graded control '{self.name}': claimed is 'writeup', 'threshold' (with one) or 'sesoi'")
        claimed = self.writeup if self.claimed == "writeup" else self.threshold
        if not self.strengths[0] <= claimed <= self.strengths[-1]:
            raise LazarusError(f"graded control '{self.name}': strengths {self.strengths} do not bracket the claimed "
                               f"effect {claimed}")
        if self.replicates < 1:
            raise LazarusError(f"graded control '{self.name}': replicates must be >= 1")

    def targets(self, ctx: ClaimContext) -> tuple[float | None, float, float]:
        """This model's threshold and the strength the verdict must see, in the strengths' units, and what one unit
        is in the build's (T' when relative, else 1)."""
        if self.claimed == "sesoi":
            forms = self.scale_free(ctx)
            t_prime, level = forms["scale_free"], forms["random_level"]
            unit = t_prime if self.relative else 1.0
            return t_prime / unit, (level + 2 * (t_prime - level)) / unit, unit
        return self.threshold, self.writeup if self.claimed == "writeup" else self.threshold, 1.0

    def run(self, claim, ctx: ClaimContext) -> GradedRun:
        n = replicates(ctx, self.replicates)
        threshold, claimed, unit = self.targets(ctx)
        head = dict(name=self.name, description=self.description, units=self.units, strengths=self.strengths,
                    replicates=n, threshold=threshold, writeup=self.writeup, claimed=claimed, effect=str(self.effect),
                    part=self.part)
        detected, values, unplantable = [], [], []
        progress.part(f"graded control '{self.name}'")
        try:
            for strength in self.strengths:
                try:
                    hits, row = 0, []
                    for replicate in range(n):
                        verdict, value = _verdict_of(claim, self.build(ctx, strength * unit, replicate), self.part)
                        hits += verdict == self.effect
                        row.append(value)
                        progress.step(f"strength {strength:g}, replicate {replicate + 1}/{n}; runs",
                                      self.strengths.index(strength) * n + replicate + 1, len(self.strengths) * n)
                except ControlUnavailable as exc:  # this strength only: e.g. below the model's own level
                    hits, row = None, []
                    unplantable.append(f"{strength:g}: {exc}")
                detected.append(hits)
                values.append(tuple(row))
        except NotTestable as exc:
            return GradedRun(**head, built=False, reason=f"the control's own run is not testable: {exc}")
        if len(unplantable) == len(self.strengths):
            return GradedRun(**head, built=False, reason="; ".join(unplantable))
        reason = "not plantable at " + "; ".join(unplantable) if unplantable else ""
        return GradedRun(**head, built=True, reason=reason, detected=tuple(detected), statistics=tuple(values))

    def declaration(self) -> dict[str, Any]:
        """What the lock hashes: everything but the construction's code (hashed with the claim's source)."""
        return {"name": self.name, "units": self.units, "strengths": list(self.strengths),
                "replicates": self.replicates, "effect_verdict": str(self.effect), "threshold": self.threshold,
                "writeup": self.writeup, "claimed": self.claimed, "part": self.part, "relative": self.relative}


@dataclass(frozen=True)
class NullRun:
    """A null control measured on one model: how often the measure flagged an effect that is absent."""

    name: str
    description: str
    replicates: int
    alpha: float  # the nominal false-positive rate of the claim's tests
    built: bool
    reason: str
    flagged: int = 0
    statistics: tuple[float, ...] = field(default_factory=tuple)

    @property
    def rate(self) -> float | None:
        return self.flagged / self.replicates if self.built else None

    def excess_p(self) -> float | None:
        """One-sided exact binomial p of ``flagged`` against the nominal alpha."""
        return binomial_test(self.flagged, self.replicates, self.alpha, "greater").p_value if self.built else None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "statistics": list(self.statistics), "rate": self.rate}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NullRun":
        body = {k: v for k, v in data.items() if k != "rate"}
        return cls(**{**body, "statistics": tuple(body.get("statistics", ()))})


@dataclass(frozen=True, kw_only=True)
class NullControl:
    """The effect absent by construction, with the real measurement's variance: ``build(ctx, replicate)`` gives one
    draw (a permutation, a random direction, a random-init seed). ``effect`` is the verdict that reads "present"."""

    name: str
    description: str
    replicates: int
    build: Callable[[ClaimContext, int], ClaimContext]
    effect: Verdict
    part: str | None = None

    def run(self, claim, ctx: ClaimContext) -> NullRun:
        n = replicates(ctx, self.replicates)
        head = dict(name=self.name, description=self.description, replicates=n,
                    alpha=float(ctx.params.get("alpha", 0.05)))
        flagged, values = 0, []
        progress.part(f"null '{self.name}'")
        try:
            for replicate in range(n):
                verdict, value = _verdict_of(claim, self.build(ctx, replicate), self.part)
                flagged += verdict == self.effect
                values.append(value)
                progress.step("replicates", replicate + 1, n)
        except ControlUnavailable as exc:
            return NullRun(**head, built=False, reason=str(exc))
        except NotTestable as exc:
            return NullRun(**head, built=False, reason=f"the control's own run is not testable: {exc}")
        return NullRun(**head, built=True, reason="", flagged=flagged, statistics=tuple(values))

    def declaration(self) -> dict[str, Any]:
        return {"name": self.name, "replicates": self.replicates, "effect_verdict": str(self.effect),
                "part": self.part}


def calibration(controls: Sequence[ControlRun]) -> tuple[str, str]:
    """What the controls say about the measurement: (label, reason) with label ``calibrated`` (a positive and a
    negative control built, each gave its known answer), ``insensitive`` (a positive control was missed), ``not
    specific`` (a negative control was flagged), ``negative control only`` / ``positive control only`` (the other
    kind could not be built) or ``uncalibrated`` (no control was built)."""
    built = [c for c in controls if c.built]
    missed = [c for c in built if c.kind == POSITIVE and not c.detected]
    flagged = [c for c in built if c.kind == NEGATIVE and c.detected]
    if missed:
        return "insensitive", "INSENSITIVE: positive control " + ", ".join(
            f"'{c.name}' not detected (it gave {c.verdict}, the effect reads {c.effect_verdict})" for c in missed)
    if flagged:
        return "not specific", "negative control " + ", ".join(f"'{c.name}' flagged (it gave {c.verdict})"
                                                                for c in flagged)
    kinds = {c.kind for c in built}
    if not kinds:
        return "uncalibrated", "no control was built"
    if kinds != {POSITIVE, NEGATIVE}:
        return f"{kinds.pop()} control only", ""
    return "calibrated", ""


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def calibrate(controls: Sequence[ControlRun], graded: Sequence[GradedRun] = (),
              nulls: Sequence[NullRun] = (), measured: dict[str | None, Verdict] | None = None) -> tuple[str, str]:
    """(label, reason) from every control: the single controls' label (``base.calibration``) unless a graded
    control was never detected at 80% (``insensitive``) or only above the effect the verdict rests on
    (``underpowered``), or a null fired more often than its alpha allows (``not specific``). A missed positive
    control, single or graded, holds the verdict back only where seeing its effect would change the
    ``measured_verdicts`` (``decides``): a conjunct that another part's refutation outvotes decides nothing."""
    measured = measured or {}
    counted = [c for c in controls if not (c.built and c.kind == POSITIVE and not c.detected)
               or decides(str(c.effect_verdict), c.part, measured)]
    label, why = calibration(counted)
    if label in ("insensitive", "not specific"):
        return label, why
    graded = [g for g in graded if g.built and (g.mde is not None or g.decides(measured))]  # set aside: idle misses
    for run in (g for g in graded if g.decides(measured)):
        if run.mde is None:
            return "insensitive", (f"INSENSITIVE: graded control '{run.name}' detected in < 80% of replicates at "
                                   f"every strength up to {_fmt(run.strengths[-1])} {run.units}")
        if run.mde > run.claimed:
            return "underpowered", (f"UNDERPOWERED: empirical MDE {_fmt(run.mde)} > the claimed effect "
                                    f"{_fmt(run.claimed)} {run.units} (graded control '{run.name}')")
    for run in (n for n in nulls if n.built):
        p = run.excess_p()
        if p is not None and p < NULL_LEVEL:
            return "not specific", (f"null control '{run.name}' flagged {run.flagged}/{run.replicates} "
                                    f"(> alpha {run.alpha:g}, binomial p={p:.3g})")
    built_graded = bool(graded)
    built_nulls = any(n.built for n in nulls)
    if label in ("uncalibrated", "negative control only", "positive control only") and (built_graded or built_nulls):
        kinds = {c.kind for c in counted if c.built} | ({POSITIVE} if built_graded else set()) | (
            {NEGATIVE} if built_nulls else set())
        return ("calibrated", "") if kinds == {POSITIVE, NEGATIVE} else (f"{kinds.pop()} control only", "")
    return label, why
