"""options: the declared ranges' membership, text parsing and messages, against values written out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lazarus_bench import options
from lazarus_bench.errors import LazarusError
from lazarus_bench.options import Choice, Each, Interval, OrNone


@pytest.mark.parametrize("interval,inside,outside", [
    (Interval(int, 1), [1, 2, 10**9, np.int64(3), 4.0], [0, -1, 1.5, True, math.inf, math.nan, "2", None]),
    (Interval(float, 0.0, 1.0), [0, 0.0, 0.5, 1, np.float32(0.25)], [-1e-12, 1.0000001, math.nan, math.inf]),
    (Interval(float, 0.0, 1.0, low_closed=False, high_closed=False), [1e-300, 0.5, 0.999], [0.0, 1.0, -0.0]),
    (Interval(int, 0, 2**32 - 1), [0, 2**32 - 1], [-1, 2**32]),
    (Interval(int, 8, 400, step=4), [8, 12, 96, 400, np.int64(100)], [9, 10, 95, 404, 4, 8.5]),
])
def test_interval_membership(interval, inside, outside):
    assert all(interval.contains(v) for v in inside), [v for v in inside if not interval.contains(v)]
    assert not any(interval.contains(v) for v in outside), [v for v in outside if interval.contains(v)]


def test_interval_text_and_messages():
    assert str(Interval(int, 1)) == "an integer in [1, inf)"
    assert str(Interval(float, 0.0, 1.0, low_closed=False)) == "a finite number in (0, 1]"
    assert str(Interval(int, 0, 2**32 - 1)) == "an integer in [0, 4294967295]"
    assert str(Interval(int, 8, 400, step=4)) == "an integer in [8, 400], 8 plus a multiple of 4"
    assert Interval(int, 1).parse("7") == 7
    for text in ("0", "1.5", "x", "", "nan"):
        with pytest.raises(ValueError, match=r"expected an integer in \[1, inf\)"):
            Interval(int, 1).parse(text)


def test_choice_each_and_or_none_are_strict_about_kinds():
    flag = Choice((True, False))
    assert flag.contains(True) and not flag.contains(1) and not flag.contains("True")
    pair = Each(Interval(float, 0.0, 1.0), min_len=2, max_len=2)
    assert pair.contains([0.1, 0.9]) and not pair.contains([0.1]) and not pair.contains([0.1, 2.0])
    assert not pair.contains("ab") and OrNone(pair).contains(None)


def test_check_and_relations_are_one_line():
    with pytest.raises(LazarusError, match=r"^dual: cls_weight = 2: expected a finite number in \[0, 1\]$"):
        options.check(options.OPTIONS, "cls_weight", 2, owner="dual: ")
    with pytest.raises(LazarusError, match="no declared range"):
        options.check(options.OPTIONS, "nonexistent", 1)
    with pytest.raises(LazarusError, match=r"save_at \[6, 9\] lies beyond steps = 5"):
        options.check_steps(5, (1, 6, 9))
    options.check_steps(5, (1, 5))


def test_every_claim_parameter_has_a_range_and_a_line_of_help():
    """`lazarus-bench claims ID` prints each parameter's range and help: none may be missing, none left over; a
    parameter only one claim file reads is declared in that file, a shared one once in harness/params.py."""
    import inspect
    from collections import defaultdict

    from lazarus_bench.harness.params import SHARED
    from lazarus_bench.harness.registry import all_claims

    files = defaultdict(set)
    for c in all_claims():
        assert set(c.declared) == set(c.params) and all(c.declared[n].default == v for n, v in c.params.items())
        for name, p in c.declared.items():
            assert 0 < len(p.help) <= 90 and not p.help.endswith("."), (c.id, name)
            assert p.range.contains(p.default), (c.id, name)
            files[name].add(inspect.getsourcefile(c.measure))
    assert set(SHARED) == {n for n, f in files.items() if len(f) > 1}, "a shared declaration no two files read"


def test_a_parameter_without_a_declaration_is_refused_at_registration():
    import pytest

    from lazarus_bench.errors import LazarusError
    from lazarus_bench.harness.base import Claim
    from lazarus_bench.harness.params import Param
    from lazarus_bench.options import PROB

    def make(params, fast=None):
        return Claim(id="T98", title="t", statement="s", source="s", criterion="c", writeup="w", params=params,
                     measure=lambda ctx: None, fast=fast or {})

    with pytest.raises(LazarusError, match="T98: parameter min_share has no declaration"):
        make({"min_share": 0.5})
    with pytest.raises(LazarusError, match=r"T98: parameter min_share = 1.5: expected a finite number in \[0, 1\]"):
        make({"min_share": Param(1.5, PROB, help="share")})
    with pytest.raises(LazarusError, match="min_share = 2"):
        make({"min_share": Param(0.5, PROB, help="share")}, fast={"min_share": 2})
    claim = make({"min_share": Param(0.5, PROB, help="share"), "alpha": 0.05})
    assert claim.params == {"min_share": 0.5, "alpha": 0.05} and claim.declared["alpha"].range.contains(0.05)


def test_every_gate_threshold_is_a_parameter_of_its_claim():
    """A gate reads its threshold from the claim's parameters (so --params can move it): a gate whose parameter is
    missing would be a KeyError at run time, so the registry refuses it up front."""
    import pytest

    from lazarus_bench.errors import LazarusError
    from lazarus_bench.harness.base import Claim, Gate
    from lazarus_bench.harness.registry import all_claims, register

    assert all(g.threshold_param in c.params for c in all_claims() for g in c.gates)
    gate = Gate(name="depth", description="layers", value=None, threshold_param="min_layers")
    with pytest.raises(LazarusError, match="gate 'depth' reads parameter 'min_layers'"):
        register(Claim(id="T99", title="t", statement="s", source="s", criterion="c", writeup="w", params={},
                       measure=lambda ctx: None, gates=(gate,)))


def test_claim_parameters_are_a_frozen_dataclass_with_range_and_help():
    import dataclasses

    import pytest

    from lazarus_bench.harness.registry import get_claim

    claim = get_claim("H14")
    typed = claim.params_type()
    defaults = typed()
    assert dataclasses.is_dataclass(defaults) and typed.__name__ == "H14Params"
    assert {f.name: getattr(defaults, f.name) for f in dataclasses.fields(defaults)} == claim.params
    with pytest.raises(dataclasses.FrozenInstanceError):
        defaults.alpha = 0.1
    meta = {f.name: f.metadata for f in dataclasses.fields(typed)}
    assert meta["stage1_steps"]["range"] == claim.declared["stage1_steps"].range and meta["stage1_steps"]["help"]
    assert claim.parameters("slow", {"alpha": 0.01})["alpha"] == 0.01
    h15 = get_claim("H15a").params_type()()
    assert h15.variants == get_claim("H15a").params["variants"], "a list default is copied, never shared"
    assert h15.variants is not get_claim("H15a").params["variants"]


def test_gates_and_controls_take_keyword_arguments_only():
    """Seven positional arguments are unreadable at the call site: every gate and control names its fields."""
    import pytest

    from lazarus_bench.harness.base import POSITIVE, Control, Gate
    from lazarus_bench.harness.controls import GradedControl, NullControl
    from lazarus_bench.stats import Verdict

    with pytest.raises(TypeError):
        Gate("depth", "layers", None, "min_layers")
    with pytest.raises(TypeError):
        Control("c", POSITIVE, "d", lambda ctx: ctx, Verdict.SUPPORTED)
    with pytest.raises(TypeError):
        NullControl("n", "d", 20, lambda ctx, r: ctx, Verdict.REFUTED)
    with pytest.raises(TypeError):
        GradedControl("g", "d", "u", (0.1, 0.2, 0.3, 0.4), 5, lambda ctx, s, r: ctx, Verdict.SUPPORTED, 0.2, 0.3)
    assert Gate(name="depth", description="layers", value=None, threshold_param="min_layers").direction == "above"
