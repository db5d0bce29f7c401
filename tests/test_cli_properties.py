"""Property-based tests of the command line (hypothesis): values generated across and around each option's declared
range (``lazarus_bench.options``) give exit 0 with output, or exit 2 with exactly one stderr line, never a traceback
and never a file the user did not name. Training options are checked at parse time; lens runs end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from errlines import error_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazarus_bench import options
from lazarus_bench.cli import main
from lazarus_bench.cli.train import build_parser as train_parser
from lazarus_bench.errors import LazarusError
from lazarus_bench.harness.registry import all_claims, get_claim

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# (command argv before the option, option flag, declared name): every numeric option of the fast commands and train.
TRAIN = [("sft", "--steps", "steps"), ("sft", "--lr", "lr"), ("sft", "--seed", "seed"), ("sft", "--rank", "rank"),
         ("sft", "--scale", "scale"), ("sft", "--n-train", "n_train"), ("sft", "--data-seed", "data_seed"),
         ("sft", "--batch-size", "batch_size"), ("sft", "--ranks", "ranks"), ("sft", "--save-at", "save_at"),
         ("dual-reward", "--cls-weight", "cls_weight"), ("grpo", "--lora-rank", "lora_rank"),
         ("two-stage", "--stage1-steps", "stage1_steps"), ("two-stage", "--stage2-steps", "stage2_steps")]


def _bounds(declared) -> options.Interval:
    return declared.item if isinstance(declared, options.Each) else declared


def _texts(interval: options.Interval):
    """Text near and across the interval's ends, special floats, and junk."""
    ends = [e for e in (interval.low, interval.high) if math.isfinite(e)]
    near = st.sampled_from(ends).flatmap(lambda e: st.integers(-3, 3).map(lambda d: e + d)) if ends else st.nothing()
    numbers = st.one_of(near, st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                        st.sampled_from([0.0, -0.0, 0.5, 1e-300, 1e308]))
    as_text = numbers.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() and interval.kind is int
                          else str(v))
    return st.one_of(as_text, st.text(min_size=0, max_size=6))


def _accepts(interval: options.Interval, text: str) -> bool:
    """Whether ``text`` names a value of the interval, decided here without ``options``' own parser."""
    try:
        value = int(text) if interval.kind is int else float(text)
    except ValueError:
        return False
    if not math.isfinite(value):
        return False
    low_ok = value > interval.low or (interval.low_closed and value == interval.low)
    high_ok = value < interval.high or (interval.high_closed and value == interval.high)
    return low_ok and high_ok


def _parse(argv: list[str], capsys) -> tuple[int, object, str]:
    try:
        args = train_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code), None, capsys.readouterr().err
    return 0, args, capsys.readouterr().err


@pytest.mark.parametrize("method,flag,name", TRAIN, ids=[f"{m} {f}" for m, f, _ in TRAIN])
@FAST
@given(data=st.data())
def test_train_options_accept_exactly_their_declared_range(method, flag, name, data, capsys, tmp_path):
    interval = _bounds(options.OPTIONS[name])
    text = data.draw(_texts(interval))
    argv = [method, "-m", "zoo:base", "-o", str(tmp_path / "out"), f"{flag}={text}"]
    rc, args, err = _parse(argv, capsys)
    if _accepts(interval, text):
        assert rc == 0, err
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        assert (value[0] if isinstance(value, list) else value) == (int if interval.kind is int else float)(text)
    else:
        lines = error_lines(err, whole=True)
        assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert str(interval) in lines[0] or "expected one argument" in lines[0], lines
    assert not (tmp_path / "out").exists()


@FAST
@given(data=st.data())
def test_zoo_build_weight_decay_accepts_exactly_its_declared_range(data, capsys):
    """`zoo build --weight-decay`: a value in [0, 1] parses to itself; anything else is one line and exit 2."""
    from lazarus_bench.cli.zoo import build_parser as zoo_parser

    interval = options.OPTIONS["weight_decay"]
    text = data.draw(_texts(interval))
    try:
        args, rc = zoo_parser().parse_args(["build", f"--weight-decay={text}"]), 0
    except SystemExit as exc:
        args, rc = None, int(exc.code)
    err = capsys.readouterr().err
    if _accepts(interval, text):
        assert rc == 0 and args.weight_decay == float(text), err
    else:
        assert rc == 2 and len(error_lines(err)) == 1 and str(interval) in error_lines(err, whole=True)[0], err


@FAST
@given(k=st.integers(-3, 400))
def test_lens_top_k_exit_zero_inside_the_vocabulary_two_outside(k, saved_model, handle_of, tmp_path_factory,
                                                               capsys, monkeypatch):
    """End to end on the tiny model: a top-k within the vocabulary prints a table (exit 0); outside it, one line and
    exit 2; nothing is written in the working folder either way."""
    folder = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(folder)
    vocab = handle_of("llama").vocab_size
    try:
        rc = main(["lens", "-m", str(saved_model("llama")), "-p", "7 * 8 = ", "--top-k", str(k), "--layers", "1"])
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    if 1 <= k <= vocab:
        assert rc == 0 and "7 * 8 = " in out and not err.strip(), err
    else:
        lines = error_lines(err, whole=True)
        assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert ("exceeds the vocabulary" if k > vocab else "in [1, inf)") in lines[0]
    assert list(Path(folder).iterdir()) == []


CLAIM_PARAMS = sorted((c.id, name) for c in all_claims() for name in c.params)


def _param_values(declared):
    """Values in, on and around a claim parameter's declared range, and of other JSON kinds."""
    inner = declared.inner if isinstance(declared, options.OrNone) else declared
    if isinstance(inner, options.Interval):
        ends = [e for e in (inner.low, inner.high) if math.isfinite(e)]
        near = st.sampled_from(ends).flatmap(lambda e: st.sampled_from([-1, -1e-9, 0, 1e-9, 1]).map(lambda d: e + d))
        core = st.one_of(near, st.integers(-10**6, 10**6), st.floats(-1e6, 1e6))
    elif isinstance(inner, options.Choice):
        core = st.one_of(st.sampled_from(inner.values), st.text(max_size=5))
    else:
        core = st.lists(st.one_of(st.integers(-5, 600), st.floats(-1, 2), st.sampled_from(["M1", "M4"])), max_size=4)
    return st.one_of(core, st.none(), st.booleans())


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_claim_parameters_accept_exactly_their_declared_range(data):
    """Every claim parameter has a declared range and every default lies in it; an override is accepted by the
    library exactly when it lies in the range (and is of its default's kind), else one LazarusError line."""
    claim_id, name = data.draw(st.sampled_from(CLAIM_PARAMS))
    claim = get_claim(claim_id)
    declared = claim.declared[name].range
    assert declared is not None and declared.contains(claim.params[name]), (claim_id, name)
    value = data.draw(_param_values(declared))
    try:
        merged = claim.parameters("slow", {name: value})
    except LazarusError as exc:
        assert "\n" not in str(exc) and name in str(exc)
        assert not declared.contains(value) or type(value) is not type(claim.params[name])
    else:
        assert declared.contains(value) and merged[name] == value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_run_params_outside_their_range_are_one_line_before_anything_runs(data, tmp_path_factory, capfd,
                                                                         monkeypatch):
    """`run --claims ID --params JSON` with a value outside the declared range: exit 2, one line naming the
    parameter, nothing written (the check comes before any model is loaded)."""
    claim_id, name = data.draw(st.sampled_from(CLAIM_PARAMS))
    declared = get_claim(claim_id).declared[name].range
    value = data.draw(_param_values(declared).filter(lambda v: not declared.contains(v)))
    folder = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(folder)
    rc = main(["run", "--claims", claim_id, "--params", json.dumps({claim_id: {name: value}})])
    err = error_lines(capfd.readouterr().err, whole=True)
    assert rc == 2 and len(err) == 1 and name in err[0], err
    assert list(Path(folder).iterdir()) == []


def test_every_numeric_cli_option_reads_its_declared_range():
    """No command declares a number with a bare int/float type: each goes through ``options.option``."""
    root = Path(__file__).resolve().parents[1] / "lazarus_bench" / "cli"
    bare = [f"{p.name}:{n}" for p in sorted(root.glob("*.py"))
            for n, line in enumerate(p.read_text().splitlines(), 1) if "type=int" in line or "type=float" in line]
    assert not bare, bare
