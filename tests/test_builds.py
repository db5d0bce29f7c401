"""Zoo builds as replicates: build ids and folders, which claims a build runs, the verdict across builds, the
between- and within-build variance (against scipy's one-way ANOVA), and a micro zoo with a second build end to end:
`zoo build --builds`, `zoo list`, the main job's models and REPORT.md's summary and across-builds tables."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as st

from lazarus_bench.errors import LazarusError
from lazarus_bench.harness.base import GateResult, ModelInfo, build_scope
from lazarus_bench.harness.registry import get_claim
from lazarus_bench.models import model_fingerprint
from lazarus_bench.stats import ClaimStatistic, EffectSize, build_variance
from lazarus_bench.suite import report
from lazarus_bench.suite.records import ModelRef, Record
from lazarus_bench.suite.summary import _effect as effect_text
from lazarus_bench.suite.summary import (
    across_builds,
    by_recipe,
    groups,
    interval,
    model_key,
    pooled,
    robust,
    role,
    variant_build,
)
from lazarus_bench.zoo import registry as R
from lazarus_bench.zoo.gates import GATES
from lazarus_bench.zoo.registry import MANIFEST, resolve_zoo


def test_build_ids_name_folders_under_the_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv(R.ZOO_ENV, str(tmp_path))
    assert R.split_build("base@s2") == ("base", "s2") and R.split_build("moe") == ("moe", None)
    assert R.with_build("zoo:base@s12", "instruct") == "zoo:instruct@s12"
    assert R.with_build("zoo-micro:base", "instruct") == "zoo-micro:instruct"
    with pytest.raises(LazarusError, match="a build is named s<SEED>"):
        R.resolve_zoo("zoo:base@two")
    with pytest.raises(LazarusError, match=r"builds/s3.*zoo build --builds 3"):
        R.resolve_zoo("zoo:base@s3")
    from lazarus_bench.zoo.recipe import RECIPE

    for seed, recipe in ((3, RECIPE), (2, "recipe3")):
        (tmp_path / "builds" / f"s{seed}" / "base").mkdir(parents=True)
        (tmp_path / "builds" / f"s{seed}" / "base" / "config.json").write_text("{}")
        (tmp_path / "builds" / f"s{seed}" / "base" / MANIFEST).write_text(json.dumps({"recipe": recipe}))
    assert R.zoo_model_exists("zoo:base@s3") and not R.zoo_model_exists("zoo:moe@s3")
    assert list(R.zoo_builds(tmp_path)) == ["", "s2", "s3"]
    assert R.default_models() == ["zoo:base@s3"], "the current recipe's builds only: no moe, no older recipe"


def test_a_build_missing_a_gate_the_development_build_meets_is_left_out(tmp_path, monkeypatch, capsys):
    """A build whose base misses a quality gate is not a replicate of a development build that meets them all: the
    main job leaves it out and says why; when the development build misses gates too (the micro zoo), none is."""
    monkeypatch.setenv(R.ZOO_ENV, str(tmp_path))
    from lazarus_bench.zoo.recipe import RECIPE

    good = {"eval_prompts": 0.97, "heldout": 0.98, "word": 0.68, "grpo_start_reward": {"rate": 0.42}}
    for path, metrics in ((tmp_path, good), (R.build_dir(tmp_path, 3), dict(good, heldout=0.72)),
                          (R.build_dir(tmp_path, 4), good)):
        (path / "base").mkdir(parents=True)
        (path / "base" / "config.json").write_text("{}")
        (path / "base" / "manifest.json").write_text(json.dumps({"metrics": metrics, "recipe": RECIPE}))
    from lazarus_bench.cli.run import without_unfit_builds
    from lazarus_bench.zoo.gates import unfit_builds

    assert unfit_builds(tmp_path) == {"s3": ["heldout 72.0% < 80%"]}
    assert without_unfit_builds(R.default_models(), tmp_path) == ["zoo:base", "zoo:base@s4"]
    assert "zoo build s3 left out: its base misses heldout 72.0% < 80%" in capsys.readouterr().err
    (tmp_path / "base" / "manifest.json").write_text(json.dumps({"metrics": dict(good, word=0.1), "recipe": RECIPE}))
    assert unfit_builds(tmp_path) == {}


def _info(model_id: str, kind: str) -> ModelInfo:
    return ModelInfo(model_id=model_id, model_type="mixtral" if kind == "moe" else "llama", kind=kind, n_layers=4,
                     is_moe=kind == "moe", tied=True)


def test_a_build_runs_the_corrected_protocol_and_derived_variants_only_their_kind():
    h01, h10 = get_claim("H01"), get_claim("H10")
    assert build_scope(h01, "corrected", _info("zoo:base@s2", "base")) is None
    assert "not a replicate" in build_scope(h01, "corrected", _info("zoo:moe@s2", "moe"))
    assert build_scope(h10, "corrected", _info("zoo:moe@s2", "moe")) is None
    assert "corrected protocol" in build_scope(get_claim("H05a"), "original", _info("zoo:base@s2", "base"))
    assert "not a replicate" in build_scope(h01, "corrected", _info("zoo:moe", "moe"))  # the development build too
    assert build_scope(h10, "corrected", _info("zoo:moe", "moe")) is None
    assert build_scope(get_claim("H05a"), "original", _info("zoo:base", "base")) is None  # its ablations run there
    for build, runs in (("s101", True), ("s102", False), ("s105", False)):  # and on recipe v3's first dev seed
        reason = build_scope(get_claim("H05a"), "corrected+optimizer", _info(f"zoo:base@{build}", "base"))
        assert (reason is None) == runs, (build, reason)
    assert build_scope(h01, "original", _info("my/checkpoint", "base")) is None


def _record(model_id: str, verdict: str, values=None, seed=None) -> Record:
    stat = ClaimStatistic(name="s", statistic=float(np.mean(values or [0])), ci_low=0.0, ci_high=1.0,
                          confidence=0.9, effect_size=None, p_value=0.01, n=len(values or []), verdict=verdict,
                          reason="", details={"values": values} if values else {})
    r = Record.bare("H05a", model_id, verdict=verdict, statistic=stat)
    return r.replace(model=ModelRef(id=model_id, slug=model_id, hash="", info={"kind": "base"},
                                    build={"seed": seed, "role": "development"} if seed is not None else None))


def test_the_verdict_across_builds_is_robust_only_when_every_build_agrees():
    rows = [_record("zoo:base", "REFUTED", [0.1, 0.2], seed=1), _record("zoo:base@s2", "REFUTED", [0.3, 0.2]),
            _record("zoo:base@s3", "REFUTED", [0.1, 0.4])]
    assert [variant_build(r) for r in rows] == [("zoo:base", "s1"), ("zoo:base", "s2"), ("zoo:base", "s3")]
    v = robust(rows)
    assert (v["verdict"], v["agreement"]) == ("REFUTED", "REFUTED 3/3")
    assert pooled(rows)["build_means"] == pytest.approx([0.15, 0.25, 0.25])
    split = robust(rows[:2] + [_record("zoo:base@s3", "SUPPORTED", [0.9, 0.8])])
    assert split["verdict"] == "INCONCLUSIVE" and split["agreement"] == "split: REFUTED 2, SUPPORTED 1 of 3"
    assert "build-dependent" in split["reason"] and "s3: SUPPORTED" in split["reason"]
    one = robust(rows[:1])
    assert one["verdict"] == "REFUTED" and "one build" in one["reason"] and pooled(rows[:1]) is None
    assert pooled([rows[0], _record("zoo:base@s2", "NOT TESTABLE")]) is None
    older = _record("zoo:base", "REFUTED")  # a root-build record from before records carried build info
    assert variant_build(older) == ("zoo:base", "root") and role(older) == "development"  # not the shipped weights
    shipped = older.replace(model=replace(older.model, hash=model_fingerprint("zoo:base")))
    seed = json.loads((resolve_zoo("zoo:base") / MANIFEST).read_text())["corpus_seed"]
    assert variant_build(shipped) == ("zoo:base", f"s{seed}") and role(shipped) == "development"
    assert [variant_build(r)[1] for r in groups([_record("zoo:base@s0", "REFUTED"), shipped])[("H05a", "zoo:base")]] \
        == [f"s{seed}", "s0"]  # the development build leads even when another build has a lower seed
    assert role(rows[1]) == "-" and variant_build(_record("my/ckpt", "REFUTED")) == ("my/ckpt", "")
    variant = rows[1].replace(model=replace(rows[1].model, build={"seed": 2, "role": "confirmatory",
                                                                  "weight_decay": 0.01}))
    assert role(variant) == "confirmatory, weight decay 0.01"  # a recipe variant is named beside its verdict
    assert role(variant.replace(model=replace(variant.model, build={"role": "confirmatory", "weight_decay": 0.1}))) \
        == "confirmatory"
    mixed = [_record("zoo:base@s10", "REFUTED"), _record("zoo:base@s2", "REFUTED"), older]
    assert [variant_build(r)[1] for r in groups(mixed)[("H05a", "zoo:base")]] == ["root", "s2", "s10"]


def test_agreement_within_one_recipe_is_reported_apart():
    """Builds that differ only in their seed agree or not among themselves, whatever builds of another recipe say."""
    def built(model_id, label, decay=None):
        r = _record(model_id, label)
        return r.replace(model=replace(r.model, build={"role": "confirmatory", **({"weight_decay": decay} if decay
                                                                                   else {})}))

    rows = [built("zoo:base", "SUPPORTED", 0.01), built("zoo:base@s4", "SUPPORTED", 0.01),
            built("zoo:base@s8", "REFUTED"), built("zoo:base@s9", "REFUTED", 0.1),
            built("zoo:base@s12", "REFUTED", 0.1)]
    assert robust(rows)["verdict"] == "INCONCLUSIVE"  # across recipes: build-dependent
    assert by_recipe(rows) == ("weight decay 0.01 (root, s4): SUPPORTED (SUPPORTED 2/2); "
                               "weight decay 0.1 (s8, s9, s12): REFUTED (REFUTED 3/3)")
    assert by_recipe(rows[:3]) == "weight decay 0.01 (root, s4): SUPPORTED (SUPPORTED 2/2)"  # one draw: no agreement
    split = by_recipe(rows[2:4] + [built("zoo:base@s12", "SUPPORTED", 0.1)])
    assert split == "weight decay 0.1 (s8, s9, s12): INCONCLUSIVE (split: REFUTED 2, SUPPORTED 1 of 3)"
    assert "| weight decay 0.01 (root, s4): SUPPORTED" in "\n".join(across_builds(rows))


def test_a_not_testable_build_shows_its_gate_not_an_effect():
    """A NOT TESTABLE record's statistic is the gate that stopped it: the across-builds effect leaves it out and its
    per-build entry names the gate, so a gate value is never read as the claim's effect."""
    measured = [_record("zoo:base", "SUPPORTED", seed=1), _record("zoo:base@s4", "SUPPORTED")]
    measured = [r.replace(statistic=replace(r.statistic, name="P(op word)", statistic=v))
                for r, v in zip(measured, (0.85, 0.92))]
    gate = ClaimStatistic(name="op word reachable by the lens", statistic=0.271, ci_low=0.271, ci_high=0.271,
                          confidence=0.9, effect_size=None, p_value=None, n=0, verdict="NOT TESTABLE", reason="",
                          details={})
    stopped = Record.bare("H05a", "zoo:base@s8", verdict="NOT TESTABLE", statistic=gate).replace(
        model=ModelRef(id="zoo:base@s8", slug="zoo:base@s8", hash="", info={"kind": "base"}))
    rows = measured + [stopped]
    text = effect_text(rows)
    assert text.startswith("P(op word) = 0.85") and "0.92" in text and "0.271" not in text
    table = "\n".join(across_builds(rows))
    assert "s8 (-): NOT TESTABLE (op word reachable by the lens 0.271)" in table
    assert "s4 (-): SUPPORTED 0.92" in table
    assert effect_text([stopped]) == "-"
    valued = [r.replace(statistic=replace(r.statistic, details={"values": v}))
              for r, v in zip(measured, ([0.8, 0.9], [0.9, 0.95]))]
    floored = stopped.replace(statistic=replace(gate, name="P(op word)", details={"values": [0.1, 0.2]}))
    # a build stopped by a floor after measuring: its values are no effect either
    assert pooled(valued + [floored])["build_means"] == pytest.approx([0.85, 0.925])
    assert effect_text(valued + [floored]).endswith("over 2 builds")
    assert "| s1, s4 " in "\n".join(across_builds(valued + [floored]))
    assert pooled(valued[:1] + [floored]) is None


def test_build_info_names_the_base_weight_decay_of_the_recipe(tmp_path, monkeypatch):
    """Every build's records carry its base's weight decay (read from the base manifest, also for a derived moe), and
    the summary's recipe default is the zoo recipe's."""
    from lazarus_bench.suite.summary import RECIPE_WEIGHT_DECAY
    from lazarus_bench.zoo.build import SIZES, write_manifest

    assert RECIPE_WEIGHT_DECAY == SIZES["default"].pretrain.weight_decay == SIZES["default"].anneal.weight_decay
    monkeypatch.setenv(R.ZOO_ENV, str(tmp_path))
    for kind, train in (("base", {"weight_decay": 0.1}), ("moe", {"weight_decay": 0.01})):
        folder = R.build_dir(tmp_path, 8) / kind
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        write_manifest(folder, {"corpus_seed": 8, "lock": {"version": "v1"}, "build_config": {"train": train}})
    for model_id in ("zoo:base@s8", "zoo:moe@s8"):
        assert R.build_info(model_id) == {"seed": 8, "role": "confirmatory", "lock": {"version": "v1"},
                                          "weight_decay": 0.1}, model_id


def test_build_variance_matches_one_way_anova():
    rng = np.random.default_rng(3)
    groups = [rng.normal(mu, 1.0, size=6) for mu in (0.0, 2.0, 5.0, 1.0)]
    out = build_variance(groups, n_resamples=2000, seed=1)
    f, _ = st.f_oneway(*groups)
    msw = np.mean([np.var(g, ddof=1) for g in groups])
    assert out["within"] == pytest.approx(msw)
    assert out["between"] == pytest.approx(msw * (f - 1) / 6)  # (MSB - MSW) / n with MSB = F * MSW
    assert out["ci_low"] < out["grand_mean"] < out["ci_high"]
    assert build_variance(groups, n_resamples=2000, seed=1) == out
    same = build_variance([[1.0, 2.0, 3.0], [1.5, 2.5, 1.0]], n_resamples=500)
    assert same["between"] == 0.0  # means closer than their sampling explains: floored, never negative
    with pytest.raises(ValueError, match="two builds"):
        build_variance([[1.0, 2.0]])


def test_build_variance_recovers_known_components():
    rng = np.random.default_rng(0)
    groups = [rng.normal(rng.normal(0.0, 2.0), 0.5, size=40) for _ in range(400)]
    out = build_variance(groups, n_resamples=200)
    assert out["between"] == pytest.approx(4.0, rel=0.2) and out["within"] == pytest.approx(0.25, rel=0.05)


@pytest.mark.thorough
def test_a_second_micro_build_runs_and_reports_across_builds(tmp_path, monkeypatch, capsys):
    from lazarus_bench.cli.zoo import main as zoo_main
    from lazarus_bench.suite.report import read_all, render
    from lazarus_bench.suite.runner import run_suite
    from lazarus_bench.zoo.build import build_zoo

    root = tmp_path / "zoo"
    monkeypatch.setenv(R.MICRO_ZOO_ENV, str(root))
    build_zoo(root, size="micro", seed=0, progress=False, steps=6, instruct_steps=3, kinds=("base", "instruct"))
    assert zoo_main(["build", "--size", "micro", "--builds", "0", "--dir", str(root)]) == 2
    assert "seed 0 is the build at" in capsys.readouterr().err
    build_zoo(R.build_dir(root, 2), size="micro", seed=2, progress=False, steps=6, instruct_steps=3,
              kinds=("base", "instruct"), stamp={"lock": {"version": "v1+5", "frozen": True}})
    assert zoo_main(["list", "--size", "micro"]) == 0
    listed = capsys.readouterr().out
    assert "development build (seed 0; " in listed and "build s2 (seed 2, confirmatory under lock v1+5) at" in listed
    assert listed.splitlines()[-1].startswith("2 builds; base meets its gates in 0 of 2; instruct in 2, untied in 0, ")
    evaluate = ["eval", "--size", "micro", "--builds", "2", "--models", "base", "--json", str(tmp_path / "e.json")]
    assert zoo_main(evaluate) == 0
    assert "zoo (micro) build s2 (seed 2, confirmatory under lock v1+5)" in capsys.readouterr().out
    evaluated = json.loads((tmp_path / "e.json").read_text())
    recorded = json.loads((R.build_dir(root, 2) / "base" / "manifest.json").read_text())["metrics"]
    assert list(evaluated) == ["s2"] and list(evaluated["s2"]) == ["base"]
    assert {g: evaluated["s2"]["base"][g] for g in GATES} == {g: recorded[g] for g in GATES}  # the build's model
    assert zoo_main(["list", "--size", "micro", "--builds", "2", "--json", str(tmp_path / "l.json")]) == 0
    assert list(json.loads((tmp_path / "l.json").read_text())) == ["s2"]
    assert "development" not in capsys.readouterr().out
    assert R.build_info("zoo-micro:base@s2") == {"seed": 2, "role": "confirmatory", "weight_decay": 0.01,
                                                  "lock": {"version": "v1+5", "frozen": True}}
    assert R.build_info("zoo-micro:base")["role"] == "development"

    report = tmp_path / "report"
    run_suite(["zoo-micro:base", "zoo-micro:base@s2"], ["H01"], tier="fast", report_dir=report,
              cache_dir=tmp_path / "cache", log=lambda m: None)
    saved = [json.loads(p.read_text()) for p in sorted((report / "records").glob("*.json"))]
    assert sorted(r["model"]["build"]["seed"] for r in saved) == [0, 2]
    assert {r["model"]["info"]["instruct_pair"] for r in saved} == {"zoo-micro:instruct", "zoo-micro:instruct@s2"}
    text = read_all(render(report).parent)
    assert text.index("## Verdict per claim, across builds") < text.index("## Replication summary")
    assert "![verdict map](plots/verdict_map.png)" in text and (report / "plots" / "verdict_map.png").is_file()
    row = next(line for line in text.splitlines() if line.startswith("| H01") and "s0 (development)" in line)
    assert "s2 (confirmatory)" in row
    assert "**Across builds** of zoo-micro:base (2)" in text and "between-build var" in text


def test_the_first_page_gives_each_builds_empirical_mde():
    """The summary's MDE cell names every build's empirical MDE (not the first two), to 4 digits beside the writeup's
    effect, and says where a graded control detected nothing."""
    from lazarus_bench.harness.controls import GradedRun
    from lazarus_bench.suite.summary import _mde

    def graded(detected):
        return GradedRun(name="cells", description="", units="peak accuracy", strengths=(0.72, 0.78, 0.8125, 0.91),
                         replicates=4, threshold=0.75, writeup=0.8125, claimed=0.8125, built=True, reason="",
                         detected=detected)

    rows = [_record("zoo:base", "REFUTED", seed=1).replace(graded=(graded((0, 0, 4, 4)),)),
            _record("zoo:base@s4", "REFUTED").replace(graded=(graded((0, 1, 2, 4)),)),
            _record("zoo:base@s8", "REFUTED").replace(graded=(graded((0, 0, 0, 0)),))]
    assert _mde(rows) == "s1 0.8125, s4 0.91, s8 none found vs writeup 0.8125 (peak accuracy)"
    same = [r.replace(graded=(graded((0, 0, 4, 4)),)) for r in rows]  # builds that agree read once
    assert _mde(same) == "0.8125 on all 3 builds vs writeup 0.8125 (peak accuracy)"
    four = same[:2] + [rows[2], _record("zoo:base@s9", "REFUTED").replace(graded=(graded((0, 0, 0, 0)),))]
    assert _mde(four) == "0.8125 on s1, s4; none found on s8, s9 vs writeup 0.8125 (peak accuracy)"
    assert _mde(rows + four[3:]).startswith("s1 0.8125, s4 0.91, s8 none found, s9 none found vs")  # 3 values of 4
    assert _mde(rows[:1] + [_record("zoo:base@s9", "REFUTED")]) == "s1 0.8125 vs writeup 0.8125 (peak accuracy)"
    assert _mde([_record("zoo:base@s9", "REFUTED")]) == "no graded control"
    absence = replace(graded((0, 0, 4, 4)), writeup=0.5, claimed=0.75)
    assert _mde([_record("zoo:base", "SUPPORTED", seed=1).replace(graded=(absence,))]) == (
        "s1 0.8125 vs writeup 0.5, the verdict rests on the threshold 0.75 (peak accuracy)")


def test_the_first_page_lists_what_could_not_be_tested_without_noise():
    """The last summary cell names NOT TESTABLE runs and real skips, cut at a word with an ellipsis, and leaves out
    the skips of derived variants of replicate builds (they run only the claims about their kind)."""
    from lazarus_bench.suite.summary import _clip, _untestable

    gate = "fitness gate 'op word reachable by the lens': 0.2712 not >= 0.36 (certified upper bound from the norm)"
    nt = _record("zoo:base@s8", "NOT TESTABLE").replace(reason=gate)
    scope = "a derived moe variant is not a replicate of its base: it runs only claims about its kind"
    moe = Record.bare("H05a", "zoo:moe@s4", status="skipped", reason=scope)
    moe = moe.replace(model=ModelRef(id="zoo:moe@s4", slug="m", hash="", info={"kind": "moe"}))
    pair = Record.bare("H05a", "zoo:base@s12", status="skipped", reason="no instruct variant of this model is known")
    pair = pair.replace(model=ModelRef(id="zoo:base@s12", slug="b", hash="", info={"kind": "base"}))
    cell = _untestable("H05a", {("H05a", "zoo:base"): [nt]}, {"H05a": [moe, pair]}, "zoo:base")
    assert cell == ("zoo:base@s8: fitness gate 'op word reachable by the lens': 0.2712 not >= 0.36 (certified upper "
                    "bound…; n/a (no instruct variant of this model is known): base@s12")
    reach = GateResult("op word reachable by the lens", 0.2712, 0.36, "above", False, "bound")
    size = GateResult("model size", 1.7e6, 1e8, "above", False, "parameters")
    s8, s12, s4 = (_record(m, "NOT TESTABLE").replace(fitness=(g,)) for m, g in (
        ("zoo:base@s8", reach), ("zoo:base@s12", replace(reach, value=0.1994)), ("zoo:base@s4", size)))
    many = [s12, s8, s4, _record("zoo:base", "NOT TESTABLE").replace(fitness=(replace(size, passed=True), size))]
    assert _untestable("H05a", {("H05a", "zoo:base"): many}, {}, "zoo:base") == (  # each gate once, builds in order
        "'model size' >= 1e+08: 1.7e+06 on base, base@s4; "
        "'op word reachable by the lens' >= 0.36: base@s8 0.271, base@s12 0.199")
    from lazarus_bench.suite.summary import _values_on

    assert _values_on([("a", "1"), ("b", "1"), ("c", "2")]) == "a 1, b 1, c 2"  # 2 values for 3 models: as they are
    assert _values_on([("a", "1"), ("b", "1"), ("c", "1"), ("d", "2")]) == "1 on a, b, c; 2 on d"
    assert _untestable("H05a", {}, {"H05a": [moe]}, "zoo:moe").endswith("): moe@s4")  # the claim's own variant: shown
    assert _untestable("H05a", {}, {"H05a": [moe]}, "zoo:base") == "-"
    assert _clip("one two three", 13) == "one two three" and _clip("one two three", 12) == "one two…"
    assert _clip("abcdefghij", 5) == "abcd…" and len(_clip(gate, 40)) <= 40


def test_an_unpooled_effect_names_its_statistic_once():
    """Builds whose statistic cannot be pooled are listed one by one after the statistic's name, which is not
    repeated per build."""
    rows = [_record("zoo:base", "SUPPORTED", seed=1), _record("zoo:base@s4", "INCONCLUSIVE")]
    rows = [r.replace(statistic=replace(r.statistic, name="probe accuracy", statistic=v, ci_low=lo, ci_high=hi))
            for r, v, lo, hi in zip(rows, (0.875, 1.0), (0.75, float("nan")), (1.0, float("nan")))]
    assert effect_text(rows) == "probe accuracy = 0.875 [0.75, 1] (s1); 1 [no interval] (s4)"
    assert effect_text(rows[:1]) == "probe accuracy = 0.875 [0.75, 1]"
    more = [_record(f"zoo:base@s{k}", "SUPPORTED") for k in (8, 9)]
    more = [r.replace(statistic=replace(r.statistic, name="probe accuracy", statistic=1.0, ci_low=float("nan"),
                                        ci_high=float("nan"))) for r in more]
    assert effect_text(rows + more) == "probe accuracy = 0.875 [0.75, 1] on s1; 1 [no interval] on s4, s8, s9"
    assert effect_text(rows[1:] + more) == "probe accuracy = 1 [no interval] on all 3 builds"


def test_an_undefined_interval_reads_as_such_in_every_table(tmp_path):
    """A CI the claim leaves undefined (NaN: every resampled cell equal) is "[no interval]", never "[nan, nan]",
    in the replication summary and the claim's own table; an undefined effect size reads "undefined"."""
    r = _record("zoo:base", "REFUTED", seed=1)
    r = r.replace(statistic=replace(r.statistic, ci_low=float("nan"), ci_high=float("nan"),
                                    effect_size=EffectSize(name="one_sample_d", value=float("nan"), ci_low=float("nan"),
                                                            ci_high=float("nan"), confidence=0.9, ci_method="none",
                                                            se=float("nan"), n1=16, degenerate=True)),
                  claim={"id": "H05a", "title": "t", "statement": "s", "source": "src", "criterion": "c",
                         "writeup": "w"})
    text = "\n".join(report._replication_summary([r], {}) + report._claim_section("H05a", None, [r], tmp_path))
    assert "[no interval]" in text and "one_sample_d = undefined" in text and "nan" not in text
    assert interval(0.5, float("nan")) == "[no interval]" and interval(0.25, 1.0) == "[0.25, 1]"


def test_builds_are_listed_in_seed_order_in_every_table():
    """zoo:base, then @s4, @s12, @s13: string order (s12, s13, s4) would scatter one recipe's builds."""
    ids = ["zoo:base@s12", "zoo:moe", "zoo:base@s4", "zoo:base", "zoo:base@s13", "zoo:moe@s4"]
    assert sorted(ids, key=model_key) == ["zoo:base", "zoo:base@s4", "zoo:base@s12", "zoo:base@s13", "zoo:moe",
                                          "zoo:moe@s4"]
    claim = {"id": "H05a", "title": "t", "statement": "s", "source": "src", "criterion": "c", "writeup": "w"}
    rows = [_record(m, "REFUTED", [0.2]).replace(claim=claim) for m in ids if m.startswith("zoo:base")]
    text = "\n".join(report._replication_summary(rows, {}))
    order = [text.index(f"| {m} ") for m in ("zoo:base", "zoo:base@s4", "zoo:base@s12", "zoo:base@s13")]
    assert order == sorted(order)
