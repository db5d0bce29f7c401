"""Graded positive controls and nulls that can fire: the empirical MDE, the calibration labels they give, and the
verdict those labels decide, on canned detections and on a toy measure whose detection probability is known."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import binomtest

from lazarus_bench import stats
from lazarus_bench.errors import LazarusError
from lazarus_bench.harness.base import ClaimContext, ControlRun, ControlUnavailable, ModelInfo, Outcome
from lazarus_bench.harness.controls import GradedControl, GradedRun, NullControl, NullRun, calibrate, measured_verdicts
from lazarus_bench.stats import Verdict
from lazarus_bench.suite import calibration as calibration_section
from lazarus_bench.suite.records import Record


def graded_run(detected, strengths=(0.1, 0.2, 0.3, 0.4), replicates=10, claimed=0.2, built=True):
    return GradedRun(name="g", description="", units="u", strengths=tuple(strengths), replicates=replicates,
                     threshold=0.2, writeup=0.3, claimed=claimed, built=built, reason="", detected=tuple(detected),
                     statistics=tuple(() for _ in detected))


def null_run(flagged, replicates=40, alpha=0.05):
    return NullRun(name="n", description="", replicates=replicates, alpha=alpha, built=True, reason="",
                   flagged=flagged)


@pytest.mark.parametrize("detected, mde", [
    ((0, 3, 8, 10), 0.3),
    ((0, 8, 7, 10), 0.4),  # 0.2 reaches 80% but 0.3 falls back below: the MDE is where detection stays >= 80%
    ((10, 10, 10, 10), 0.1),
    ((0, 0, 2, 7), None),
    ((None, 9, 8, 10), 0.2),  # the weakest strength is below the model's own level: not plantable, not a miss
    ((0, 9, 10, None), 0.2),  # the strongest cannot be reached: the chain starts at the strongest planted one
    ((9, None, 10, 10), 0.3),  # a gap below a measured strength ends the chain: 0.1 is not shown to hold
])
def test_empirical_mde_is_the_smallest_strength_detected_from_there_on(detected, mde):
    assert graded_run(detected).mde == mde


def test_rate_at_reads_a_declared_strength_only():
    run = graded_run((1, 2, 3, 4))
    assert run.rate_at(0.3) == pytest.approx(0.3) and run.rate_at(0.25) is None


def test_calibrate_labels_from_graded_runs_and_nulls():
    positive = ControlRun(name="p", kind="positive", description="", effect_verdict=Verdict.REFUTED, built=True,
                          reason="", verdict=Verdict.REFUTED, detected=True, passed=True)
    assert calibrate([positive], [graded_run((0, 9, 10, 10))], [null_run(2)]) == ("calibrated", "")
    label, why = calibrate([positive], [graded_run((0, 3, 9, 10))])
    assert label == "underpowered" and "empirical MDE 0.3 > the claimed effect 0.2" in why
    label, why = calibrate([positive], [graded_run((0, 0, 1, 2))])
    assert label == "insensitive" and "every strength up to 0.4" in why
    label, why = calibrate([positive], [graded_run((0, 9, 10, 10))], [null_run(8)])
    assert label == "not specific" and "8/40" in why
    assert calibrate([], [graded_run((0, 9, 10, 10))]) == ("positive control only", "")
    assert calibrate([], [graded_run((0, 9, 10, 10))], [null_run(1)]) == ("calibrated", "")


@pytest.mark.parametrize("effect, part, measured, label", [
    ("REFUTED", None, {None: "REFUTED"}, "calibrated"),  # the run found the effect: power does not qualify it
    ("REFUTED", None, {None: "SUPPORTED"}, "underpowered"),  # it did not: an effect below the MDE could be missed
    ("REFUTED", None, {None: "INCONCLUSIVE"}, "underpowered"),
    ("SUPPORTED", "b", {None: "REFUTED", "a": "REFUTED", "b": "INCONCLUSIVE"}, "calibrated"),  # a refuted it
    ("SUPPORTED", "b", {None: "REFUTED", "a": "SUPPORTED", "b": "REFUTED"}, "underpowered"),  # b decided it
    ("SUPPORTED", "b", {None: "INCONCLUSIVE", "a": "SUPPORTED", "b": "INCONCLUSIVE"}, "underpowered"),
    ("SUPPORTED", "b", {None: "INCONCLUSIVE", "a": "INCONCLUSIVE", "b": "INCONCLUSIVE"}, "calibrated"),
    ("", None, {None: "REFUTED"}, "underpowered"),  # a record from before the effect was stored: as it was
])
def test_a_power_label_holds_only_where_seeing_the_effect_would_change_the_verdict(effect, part, measured, label):
    run = replace(graded_run((0, 3, 9, 10)), effect=effect, part=part)  # MDE 0.3 > claimed 0.2
    measured = {k: Verdict(v) for k, v in measured.items()}
    assert calibrate([], [run], [null_run(1)], measured)[0] == label
    assert calibrate([], [run], [null_run(1)])[0] == "underpowered"  # no measurement given: nothing to credit
    never = calibrate([], [replace(run, detected=(0, 0, 1, 2))], [null_run(1)], measured)[0]  # INSENSITIVE alike
    assert never == ("insensitive" if label == "underpowered" else "negative control only")


def test_measured_verdicts_read_the_headline_and_each_part():
    from lazarus_bench.harness.controls import measured_verdicts

    a = stats.threshold_claim([0.5, 0.6, 0.7, 0.8, 0.9], 0.1, "above", 0.05, test="sign", min_n=5, name="a")
    b = stats.threshold_claim([0.5, 0.6, 0.7, 0.8, 0.9], 0.1, "below", 0.05, test="sign", min_n=5, name="b")
    combined = stats.verdicts.combine(a, {"a": a, "b": b}, units=("seeds", 5, 5))
    got = measured_verdicts(combined)
    assert got == {None: Verdict.REFUTED, "a": Verdict.SUPPORTED, "b": Verdict.REFUTED}
    assert measured_verdicts(a) == {None: Verdict.SUPPORTED}


@pytest.mark.parametrize("flagged", [0, 2, 4, 5, 7, 12])
def test_null_excess_p_is_the_exact_binomial_tail(flagged):
    run = null_run(flagged)
    assert run.excess_p() == pytest.approx(binomtest(flagged, 40, 0.05, alternative="greater").pvalue)
    assert run.rate == flagged / 40


def test_underpowered_calibration_makes_the_verdict_inconclusive():
    part = stats.evidence("x", met=True, reason="met")
    decision = stats.final_verdict({"x": part}, calibration=("underpowered", "UNDERPOWERED: MDE 0.7 > 0.2"))
    assert decision.verdict == Verdict.INCONCLUSIVE and decision.measured == Verdict.SUPPORTED
    assert decision.reason.startswith("UNDERPOWERED: MDE 0.7 > 0.2") and decision.by == "calibration"


@pytest.mark.parametrize("kwargs, message", [
    (dict(strengths=(0.1, 0.2, 0.3)), ">= 4 ascending"),
    (dict(strengths=(0.1, 0.3, 0.2, 0.4)), ">= 4 ascending"),
    (dict(strengths=(0.3, 0.4, 0.5, 0.6)), "do not bracket"),
    (dict(claimed="threshold", threshold=None), "claimed is"),
    (dict(replicates=0), "replicates"),
])
def test_graded_declarations_that_cannot_calibrate_are_refused(kwargs, message):
    base = dict(name="g", description="", units="u", strengths=(0.1, 0.2, 0.3, 0.4), replicates=3,
                build=lambda ctx, s, r: ctx, effect=Verdict.REFUTED, threshold=0.2, writeup=0.25)
    with pytest.raises(LazarusError, match=message):
        GradedControl(**{**base, **kwargs})


class _Toy:
    """A claim whose measure detects with a known probability: REFUTED when a seeded uniform draw falls below the
    planted strength (so the detection rate at strength s is s)."""

    id = "TOY"

    @staticmethod
    def measure(ctx):
        draw = np.random.default_rng(ctx.params["draw_seed"]).uniform()
        met = draw < ctx.params["strength"]
        return Outcome(statistic=stats.evidence("draw", value=draw, met=False, against=met, reason="toy"), ours="")

    @classmethod
    def reader(cls, part):
        return cls.measure


def _toy_ctx(tier="slow"):
    info = ModelInfo(model_id="toy", model_type="llama", kind="base", n_layers=1, is_moe=False, tied=True)
    return ClaimContext(_Toy, info, tier=tier, seeds=[], params={"strength": 0.0, "draw_seed": 0, "alpha": 0.05})


def _planted(ctx, strength, replicate):
    return ctx.variant(params={"strength": strength, "draw_seed": 1000 * replicate + int(strength * 100)})


def test_graded_control_runs_each_strength_and_replicate_through_the_measure():
    control = GradedControl(name="toy", description="", units="rate", strengths=(0.0, 0.3, 0.9, 1.0), replicates=50,
                            build=_planted, effect=Verdict.REFUTED, threshold=0.3, writeup=0.9)
    run = control.run(_Toy, _toy_ctx())
    expected = [sum(np.random.default_rng(1000 * r + int(s * 100)).uniform() < s for r in range(50))
                for s in (0.0, 0.3, 0.9, 1.0)]
    assert run.built and list(run.detected) == expected
    assert run.detected[0] == 0 and run.detected[-1] == 50 and run.mde in (0.9, 1.0)
    assert len(run.statistics) == 4 and all(len(row) == 50 for row in run.statistics)
    assert GradedRun.from_dict(run.to_dict()) == run and (run.effect, run.part) == ("REFUTED", None)
    assert control.run(_Toy, _toy_ctx("fast")).replicates == 1


def test_a_strength_that_cannot_be_planted_is_left_out_not_the_curve():
    """A build that cannot plant a strength (e.g. the model is already above it) marks that strength only; a curve
    with no plantable strength is not built, with every reason."""

    def below_own_level(ctx, strength, replicate):
        if strength < 0.3:
            raise ControlUnavailable(f"already >= {strength:g} without a plant")
        return _planted(ctx, strength, replicate)

    control = GradedControl(name="toy", description="", units="rate", strengths=(0.0, 0.3, 0.9, 1.0), replicates=20,
                            build=below_own_level, effect=Verdict.REFUTED, threshold=0.3, writeup=0.9)
    run = control.run(_Toy, _toy_ctx())
    assert run.built and run.detected[0] is None and run.rates[0] is None and run.statistics[0] == ()
    assert all(k is not None for k in run.detected[1:])
    assert run.reason == "not plantable at 0: already >= 0 without a plant"
    assert run.mde in (0.9, 1.0) and GradedRun.from_dict(run.to_dict()) == run

    def never(ctx, strength, replicate):
        raise ControlUnavailable("no direction")

    none = GradedControl(name="toy", description="", units="rate", strengths=(0.0, 0.3, 0.9, 1.0), replicates=20,
                         build=never, effect=Verdict.REFUTED, threshold=0.3, writeup=0.9).run(_Toy, _toy_ctx())
    assert not none.built and none.reason.count("no direction") == 4 and none.detected == ()


def test_the_calibration_table_and_curve_show_an_unplantable_strength(tmp_path):
    run = graded_run((None, 9, 10, 10))
    record = Record.bare("H01", "m", graded=[run])
    [row] = calibration_section._graded_rows([record])
    assert row["detected per strength"] == "0.1: not plantable, 0.2: 9/10, 0.3: 10/10, 0.4: 10/10"
    assert row["empirical MDE"] == "0.2" and row["power"] == "powered"
    assert calibration_section.plot_detection([record], tmp_path) and list(tmp_path.rglob("*.png"))


def test_null_control_counts_false_positives_over_replicates():
    null = NullControl(name="toy null", description="", replicates=200,
                       build=lambda ctx, r: ctx.variant(params={"strength": 0.05, "draw_seed": r}),
                       effect=Verdict.REFUTED)
    run = null.run(_Toy, _toy_ctx())
    expected = sum(np.random.default_rng(r).uniform() < 0.05 for r in range(200))
    assert run.flagged == expected and run.rate == expected / 200 and 0 < run.flagged < 30
    assert NullRun.from_dict(run.to_dict()) == run


def test_every_claim_has_a_graded_control_or_says_why_not():
    from lazarus_bench.harness.registry import all_claims

    for claim in (c for c in all_claims() if c.measure.__module__.startswith("lazarus_bench.claims.")):
        assert bool(claim.graded) != bool(claim.no_graded), claim.id  # the suite's own (a user claim may have none)
        for graded in claim.graded:
            if graded.relative:  # multiples of T': T' is 1, the sesoi 2 - R / T' lies in [1, 2)
                assert graded.strengths[0] < 1 < 2 <= graded.strengths[-1], claim.id
                continue
            claimed = graded.writeup if graded.claimed == "writeup" else graded.threshold
            assert graded.strengths[0] <= claimed <= graded.strengths[-1], claim.id
            if graded.threshold is not None:
                assert graded.strengths[0] < graded.threshold < graded.strengths[-1], claim.id


def test_the_calibration_text_says_how_many_records_it_counts():
    """With every record under the lock it says so; otherwise it names how many are left out (and not "0 others")."""
    assert calibration_section._counted(144, 0) == ("The figures below count all 144 measured records, every one under "
                                                    "the lock in force.")
    assert "the 3 others (marked (†)" in calibration_section._counted(141, 3)


def test_the_null_table_places_each_null_beside_the_threshold_and_pools_rates_per_claim():
    """Each null row gives its draws' median and 5-95% range (numpy's percentiles), the real model's statistic and the
    criterion's threshold with its side; the per-claim rate pools flagged over replicates across models."""
    draws = np.random.default_rng(3).uniform(0.002, 0.014, 40)
    real = stats.threshold_claim([1e-4, 2e-4, 3e-4, 4e-4, 5e-4], 0.01, "below", test="sign", name="p")
    nulls = [replace(null_run(2), statistics=tuple(draws)), null_run(1, replicates=20)]
    records = [Record.bare("H01", "a", statistic=real, nulls=nulls[:1]), Record.bare("H01", "b", nulls=nulls[1:]),
               Record.bare("H10", "c", nulls=[null_run(0)])]
    row = calibration_section._null_rows(records)[0]
    low, mid, high = np.percentile(draws, [5, 50, 95])
    assert row["null's statistic: median [5%, 95%]"] == f"{mid:.3g} [{low:.3g}, {high:.3g}]"
    assert row["threshold"] == "below 0.01" and row["real model's statistic"] == f"{real.statistic:.3g}"
    assert calibration_section._null_rows(records)[1]["threshold"] == "-"  # no headline statistic: nothing to show
    share = calibration_section._share
    assert calibration_section.null_rates_by_claim(records) == f"H01 {share(3, 60)}; H10 {share(0, 40)}"
    assert share(3, 60).startswith("3/60 = 0.05 [")
    rate = stats.proportion_claim(15, 16, 0.95, name="acc")
    assert calibration_section._threshold(Record.bare("H02", "a", statistic=rate)) == "0.95"


def test_detection_at_the_threshold_is_split_by_the_claims_side_and_pooled_per_claim():
    """A run whose verdict rests on the threshold is a claim that an effect is absent; one resting on the writeup's
    effect, a claim that it is present. At the threshold (0.2 here, the second strength) each side is pooled per claim,
    and a run whose threshold is not one of its strengths is left out."""
    share = calibration_section._share
    absent = graded_run((0, 9, 10, 10), claimed=0.2)
    present = graded_run((0, 1, 6, 10), claimed=0.3)
    off_grid = graded_run((0, 0, 0, 0), strengths=(0.1, 0.25, 0.3, 0.4), claimed=0.3)
    records = [Record.bare("H01", "a", graded=[absent]), Record.bare("H01", "b", graded=[absent]),
               Record.bare("H05a", "a", graded=[present, off_grid]),
               Record.bare("H14", "a", graded=[replace(present, built=False)])]
    assert calibration_section.absence_claim(absent) and not calibration_section.absence_claim(present)
    assert calibration_section.threshold_detection_by_claim(records, True) == f"H01 {share(18, 20)}"
    assert calibration_section.threshold_detection_by_claim(records, False) == f"H05a {share(1, 10)}"


def test_size_at_the_boundary_pools_the_threshold_replicates_of_the_listed_claims_only():
    """Only claims whose plant is in the units of the statistic their verdict reads count: H11 (a mean-scaled plant)
    and H01 (another conjunct sees the plant) stay out however they fare, and an unbuilt run is not counted. Every
    listed claim but H03 (its peak part is met by a point estimate, so a plant on 75% is no test of size) has its
    threshold among its strengths."""
    from lazarus_bench.harness.registry import get_claim

    share = calibration_section._share
    records = [Record.bare("H07", "a", graded=[graded_run((0, 1, 3, 3), replicates=3, claimed=0.2)]),
               Record.bare("H05a", "a", graded=[graded_run((0, 0, 9, 10), claimed=0.3)]),
               Record.bare("H14", "a", graded=[graded_run((0, 5, 9, 10), built=False)]),
               Record.bare("H11", "a", graded=[graded_run((3, 3, 3, 3), replicates=3)]),
               Record.bare("H01", "a", graded=[graded_run((10, 10, 10, 10))])]
    k, n, by_claim = calibration_section.boundary_size(records)
    assert (k, n) == (1, 13)
    assert by_claim == f"H05a {share(0, 10)}; H07 {share(1, 3)}"
    on_threshold = {c for c in calibration_section.IN_STATISTIC_UNITS
                    if any(g.threshold in g.strengths for g in get_claim(c).graded)}
    assert on_threshold == set(calibration_section.IN_STATISTIC_UNITS) - {"H03"}


def test_false_positives_below_the_threshold_pool_the_null_side_strengths_of_the_listed_claims():
    """Replicates planted strictly below the threshold (0.2 here: only the first strength) are the criterion's null:
    pooled per claim with the strengths they were planted at; a strength on the threshold, an unplantable strength,
    an unbuilt run and an unlisted claim (H01, H11) stay out. Every listed claim declares a strength below its
    threshold, so the line cannot go empty."""
    from lazarus_bench.harness.registry import get_claim

    share = calibration_section._share
    records = [Record.bare("H03", "a", graded=[graded_run((1, 7, 10, 10))]),
               Record.bare("H03", "b", graded=[graded_run((0, 0, 10, 10), strengths=(0.05, 0.2, 0.3, 0.4))]),
               Record.bare("H07", "a", graded=[graded_run((None, 2, 3, 3), replicates=3)]),
               Record.bare("H14", "a", graded=[graded_run((5, 5, 9, 10), built=False)]),
               Record.bare("H11", "a", graded=[graded_run((3, 3, 3, 3), replicates=3)]),
               Record.bare("H01", "a", graded=[graded_run((10, 10, 10, 10))])]
    k, n, by_claim = calibration_section.null_side(records)
    assert (k, n) == (1, 20)
    assert by_claim == f"H03 at 0.05, 0.1: {share(1, 20)}"
    for claim_id in calibration_section.IN_STATISTIC_UNITS:
        graded = get_claim(claim_id).graded
        assert graded and any(min(g.strengths) < g.threshold for g in graded), claim_id


def test_claims_with_a_verdict_but_no_false_positive_rate_are_named_with_their_single_checks():
    """A claim is listed when it has a verdict, no built null and no plant on or below its threshold in the statistic's
    units; its single negative runs are counted per name (a sanity check marked as such), and a claim with none says
    so. NOT TESTABLE records, claims with a null and those with such plants stay out (H03 has only plants below its
    threshold, H05a only one on it); an unbuilt graded run gives no rate."""
    def negative(name, flagged, sanity=False):
        return ControlRun(name=name, kind="negative", description="", effect_verdict=Verdict.SUPPORTED, built=True,
                          reason="", verdict=Verdict.SUPPORTED if flagged else Verdict.REFUTED, detected=flagged,
                          passed=not flagged, sanity=sanity)

    ok = Verdict.REFUTED
    records = [Record.bare("H15b", "a", verdict=ok, controls=(negative("random-init model", False),)),
               Record.bare("H15b", "b", verdict=ok, controls=(negative("random-init model", True),)),
               Record.bare("H06", "a", verdict=ok, controls=(negative("self pair", False, sanity=True),)),
               Record.bare("H11", "a", verdict=ok),
               Record.bare("H01", "a", verdict=ok, nulls=(null_run(1),), controls=(negative("x", True),)),
               Record.bare("H01", "b", verdict=ok),
               Record.bare("H03", "a", verdict=ok, graded=[graded_run((0, 0, 10, 10))]),
               Record.bare("H03", "b", verdict=ok, graded=[graded_run((0, 0, 10, 10), built=False)]),
               Record.bare("H05a", "a", verdict=ok, graded=[graded_run((0, 0, 10, 10), strengths=(0.2, 0.3, 0.4, 1))]),
               Record.bare("H07", "a", verdict=ok, graded=[graded_run((0, 0, 10, 10), built=False)]),
               Record.bare("H08", "a", verdict=Verdict.NOT_TESTABLE)]
    assert calibration_section.without_rate(records) == (
        "H06 (1 record; 'self pair' (a sanity check) flagged 0/1); H07 (1 record; no negative control); H11 (1 record; "
        "no negative control); H15b (2 records; 'random-init model' flagged 1/2)")
    assert calibration_section.without_rate(records[4:9] + records[10:]) == ""


def test_h03_plant_is_right_on_each_prompt_with_the_strengths_probability():
    """H03's graded plant draws, prompt by prompt, the class it writes: over many draws the share written with their
    own class is the strength (within a 99.9% binomial interval, scipy), the draws at a lower strength stay right at a
    higher one, and a strength outside [25%, 100%] is refused. Its strengths bracket the 75% threshold and hold the
    writeup's 81.25%, and it reads the peak part alone."""
    from lazarus_bench.claims.h03_word_probe_emergence import written_classes
    from lazarus_bench.harness.registry import get_claim

    labels = ["add", "div", "mul", "sub"] * 16
    for strength in (0.25, 0.6875, 0.8125, 1.0):
        right = sum(sum(a == b for a, b in zip(written_classes(labels, strength, np.random.default_rng(i)), labels))
                    for i in range(400))
        ci = binomtest(right, 400 * len(labels)).proportion_ci(0.999)
        assert ci.low <= strength <= ci.high, (strength, right)
    for seed in range(20):
        low = written_classes(labels, 0.6875, np.random.default_rng(seed))
        high = written_classes(labels, 0.875, np.random.default_rng(seed))
        assert all(h == lab for lo, h, lab in zip(low, high, labels) if lo == lab)
    with pytest.raises(LazarusError, match="outside"):
        written_classes(labels, 0.2, np.random.default_rng(0))
    (graded,) = get_claim("H03").graded
    assert graded.strengths[0] < graded.threshold < graded.strengths[-1] and graded.writeup in graded.strengths
    assert graded.part == "peak" and graded.replicates >= 8 and graded.threshold not in graded.strengths


def test_a_missed_control_holds_a_verdict_back_only_where_its_part_decides_it():
    """INSENSITIVE only where seeing the missed effect would change the verdict: a missed control of part b is set
    aside when part a refutes the claim whatever b reads, not when b decides, nor when it reads the whole claim. A
    graded control never detected is treated alike, and a flagged negative control still halts the verdict."""
    values = [0.5, 0.6, 0.7, 0.8, 0.9]
    refuted = stats.threshold_claim(values, 0.1, "below", 0.05, test="sign", min_n=5, name="r")
    supported = stats.threshold_claim(values, 0.1, "above", 0.05, test="sign", min_n=5, name="s")
    both = measured_verdicts(stats.verdicts.combine(refuted, {"a": refuted, "b": refuted}, units=("seeds", 5, 5)))
    only_b = measured_verdicts(stats.verdicts.combine(refuted, {"a": supported, "b": refuted}, units=("seeds", 5, 5)))

    def control(kind, part, detected):
        return ControlRun(name=kind[:3], kind=kind, description="", effect_verdict=Verdict.SUPPORTED, built=True,
                          reason="", verdict=Verdict.SUPPORTED if detected else Verdict.REFUTED, detected=detected,
                          passed=detected == (kind == "positive"), part=part)

    never = replace(graded_run((0, 0, 1, 2)), effect=str(Verdict.SUPPORTED), part="b")
    negative = control("negative", None, False)
    assert calibrate([control("positive", "b", False), negative], (), (), both) == ("negative control only", "")
    assert calibrate([control("positive", "b", False), negative], (), (), only_b)[0] == "insensitive"
    assert calibrate([control("positive", None, False), negative], (), (), both)[0] == "insensitive"
    assert calibrate([control("positive", "b", False), negative])[0] == "insensitive"  # nothing measured: as it was
    assert calibrate([negative], [never], [null_run(1)], both) == ("negative control only", "")
    assert calibrate([negative], [replace(never, part="a")], [null_run(1)], both)[0] == "negative control only"
    assert calibrate([negative], [never], [null_run(1)], only_b)[0] == "insensitive"
    flagged = calibrate([control("positive", "b", False), control("negative", None, True)], (), (), both)
    assert flagged[0] == "not specific" and "'neg' flagged" in flagged[1]


def test_shares_print_the_95_percent_wilson_interval():
    """The calibration section's pooled rates: k/n with scipy's 95% Wilson interval, two decimals."""
    from scipy.stats import binomtest

    from lazarus_bench.suite.calibration import _share

    for k, n in ((3, 60), (0, 231), (44, 46)):
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert _share(k, n) == f"{k}/{n} = {k / n:.2f} [{ci.low:.2f}, {ci.high:.2f}]"
    assert _share(3, 60) == "3/60 = 0.05 [0.02, 0.14]" and _share(0, 0) == "none run"


def test_h03_looks_for_its_peak_after_the_base_block_and_says_when_there_is_none():
    """The full measure and the peak reader share the candidate blocks: every block after the base one (never the
    embedding row); a model with none is one line, not an empty maximum."""
    from lazarus_bench.claims.h03_word_probe_emergence import later_blocks
    from lazarus_bench.harness.common import EMB

    assert later_blocks([EMB, 0, 1, 2], 0) == [2, 3] and later_blocks([EMB, 0, 1, 2], 1) == [3]
    with pytest.raises(LazarusError, match="needs a block after block 0; this model has 1 block"):
        later_blocks([EMB, 0], 0)
