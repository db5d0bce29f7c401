"""The writeups' CLI for a user's own experiments: probe classes and held-out prompts, prompts files, router trace."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from lazarus_bench.cli import main
from lazarus_bench.models import load_model


def test_probe_on_the_users_classes_matches_an_independent_fit(saved_model, tmp_path, capsys):
    """--classes and --test: the held-out prediction is what scikit-learn gives on the same features."""
    from lazarus_bench.analysis.features import last_token_states
    from lazarus_bench.analysis.probes import make_classifier

    model = str(saved_model("llama"))
    mul, add = ["7 * 8 = ", "12 * 5 = ", "3 * 4 = "], ["7 + 8 = ", "12 + 5 = ", "3 + 4 = "]
    out = tmp_path / "probe.json"
    argv = ["probe", "-m", model, "--classes", "multiply:" + "|".join(mul), "--classes", "add:" + "|".join(add),
            "--test", "6 * 9 = ", "--test", "6 + 9 = ", "--permutations", "0", "--json", str(out)]
    assert main(argv) == 0
    payload = json.loads(out.read_text())
    assert payload["set"] == "user" and payload["group_cv"] == "leave-one-pair-out"
    held = payload["held_out"]
    handle = load_model(model)
    X, labels = last_token_states(handle, mul + add, [held["layer"]])
    X_test, _ = last_token_states(handle, ["6 * 9 = ", "6 + 9 = "], [held["layer"]])
    expected = make_classifier(seed=0).fit(X[0], ["multiply"] * 3 + ["add"] * 3).predict(X_test[0])
    assert held["labels"] == list(expected) and held["accuracy"] is None
    assert "held-out prompts at best layer" in capsys.readouterr().out


def test_probe_prompts_file_and_its_bad_rows(saved_model, tmp_path, capsys):
    rows = [{"text": t, "label": "multiply"} for t in ("7 * 8 = ", "12 * 5 = ")]
    rows += [{"text": t, "label": "add"} for t in ("7 + 8 = ", "12 + 5 = ")]
    rows += [{"text": "6 * 9 = ", "label": "multiply", "split": "test"}]
    good = tmp_path / "p.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "probe.json"
    assert main(["probe", "-m", str(saved_model("llama")), "--prompts-file", str(good), "--permutations", "0",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["held_out"]["accuracy"] in (0.0, 1.0)
    one_class = tmp_path / "one.jsonl"
    one_class.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n")
    capsys.readouterr()
    assert main(["probe", "-m", str(saved_model("llama")), "--prompts-file", str(one_class)]) == 2
    assert "at least 2 classes" in capsys.readouterr().err


def test_lens_prompts_file_adds_to_dash_p(saved_model, tmp_path):
    file = tmp_path / "prompts.txt"
    file.write_text("7 * 8 = \n\n12 * 5 = \n")
    out = tmp_path / "lens.json"
    assert main(["lens", "-m", str(saved_model("llama")), "-p", "3 + 4 = ", "--prompts-file", str(file),
                 "--json", str(out)]) == 0
    assert [r["prompt"] for r in json.loads(out.read_text())["results"]] == ["3 + 4 = ", "7 * 8 = ", "12 * 5 = "]


def test_router_trace_matches_the_routers_recomputed_by_hand(saved_model, tmp_path):
    """Each MoE layer's router logits are recomputed from the residual entering the block (attention, then the
    pre-router norm, then the router): the traced experts are their top-k, the probabilities their softmax."""
    from mlx_lm.models.base import create_attention_mask

    from lazarus_bench.analysis.routes import route_trace

    handle = load_model(str(saved_model("mixtral")))
    text = "7 * 8 = 56"
    routes = route_trace(handle, text)
    ids = handle.encode(text)
    hidden = handle.forward([ids]).hidden
    for router in handle.routers():
        layer = handle.layers[router.layer]
        x = hidden[router.layer]
        h = x + layer.self_attn(layer.input_layernorm(x), create_attention_mask(x, None), None)
        logits = np.array((layer.post_attention_layernorm(h) @ router.weight.T).astype(mx.float32))[0]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        mine = [r for r in routes if r.layer == router.layer]
        assert [r.position for r in mine] == list(range(len(ids)))
        for r in mine:
            assert r.experts == list(np.argsort(-logits[r.position], kind="stable")[: router.top_k])
            np.testing.assert_allclose(r.probs, probs[r.position], rtol=1e-4, atol=1e-6)
    assert handle.routers()[0].path.endswith("gate") and type(handle.router_linear(handle.routers()[0])).__name__ \
        != "_Recorder", "the trace must put the router back"


def test_router_trace_cli(saved_model, tmp_path, capsys):
    out = tmp_path / "trace.json"
    assert main(["router", "trace", "-m", str(saved_model("mixtral")), "-p", "7 * 8 = ", "--json", str(out)]) == 0
    traces = json.loads(out.read_text())["traces"]
    assert traces[0]["prompt"] == "7 * 8 = " and traces[0]["routes"]
    assert "experts: the router's top-k" in capsys.readouterr().out
    assert main(["router", "trace", "-m", str(saved_model("mixtral"))]) == 2
    assert "needs at least one -p" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["router", "sideways", "-m", str(saved_model("mixtral"))])


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "claims"


@pytest.fixture
def registry_restored(monkeypatch):
    """Included claims live in the process-wide registry: put it back as it was after the test."""
    from lazarus_bench.harness import registry

    registry.all_claims()
    before, included = dict(registry.REGISTRY), set(registry._INCLUDED)
    # setenv, not delenv: delenv of an unset variable records nothing, so the folder include() puts there outlived
    # the test, and a later get_claim in the same worker re-imported its files (a bad one failed another test)
    monkeypatch.setenv(registry.INCLUDE_ENV, "")
    yield
    registry.REGISTRY.clear()
    registry.REGISTRY.update(before)
    registry._INCLUDED.clear()
    registry._INCLUDED.update(included)


def test_included_claim_runs_and_matches_an_independent_count(registry_restored, saved_model, tmp_path):
    """The example user claim registers, runs through the same runner and report, and its k is the number of
    held-out symbol prompts whose argmax next token is the answer's first token, recounted here with numpy."""
    from lazarus_bench import prompts
    from lazarus_bench.harness.registry import get_claim, include
    from lazarus_bench.suite.report import read_all, render
    from lazarus_bench.suite.runner import run_claim

    include([str(EXAMPLES)])
    model = str(saved_model("llama"))
    record = run_claim(get_claim("U01"), model, tier="fast", report_dir=tmp_path)
    assert record.status == "ok" and record.tokenization["prompt"]["pieces"]
    handle = load_model(model)
    k = 0
    for item in prompts.symbol_set("test", trailing_space=True):
        logits = np.array(handle.model(mx.array([handle.encode(item.text)]))[0, -1])
        k += int(np.argmax(logits) == handle.continuation(str(item.answer), after=item.text)[0])
    assert record.statistic.details["k"] == k
    assert "## U01: The next token after an arithmetic prompt is the answer" in read_all(render(tmp_path).parent)


@pytest.mark.parametrize("content, phrase", [
    ("def broken(:\n", "failed to import: SyntaxError"),
    ("x = 1\n", "registers no claim"),
    ("from lazarus_bench.harness.registry import claim\n"
     "claim(id='H01', title='t', statement='s', source='s', criterion='c', writeup='w', params={})(lambda ctx: None)\n",
     "registered twice"),
])
def test_bad_claim_files_give_one_line(registry_restored, tmp_path, content, phrase):
    from lazarus_bench.errors import LazarusError
    from lazarus_bench.harness.registry import include

    (tmp_path / "mine.py").write_text(content)
    with pytest.raises(LazarusError, match=phrase) as exc:
        include([str(tmp_path)])
    assert "\n" not in str(exc.value) and "mine.py" in str(exc.value)


def test_include_cli_and_pytest(registry_restored, tmp_path, capsys):
    import subprocess
    import sys

    collected = subprocess.run([sys.executable, "-m", "pytest", "hypotheses", "--include", str(EXAMPLES),
                                "--model", "zoo:base", "--collect-only", "-q", "-p", "no:cacheprovider"],
                               capture_output=True, text=True, cwd=EXAMPLES.parents[1])
    assert "hypotheses/test_claims.py::test_U01[fast-zoo:base]" in collected.stdout, collected.stdout[-2000:]
    assert main(["claims", "--include", str(EXAMPLES)]) == 0
    assert "U01" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--include", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such folder" in err[0]


CRASHING_CLAIM = '''
from lazarus_bench.harness.registry import claim


@claim(id="U09", title="A measure that crashes", statement="-", source="test", criterion="-", writeup="-",
       params={"alpha": 0.05})
def measure_u09(ctx):
    raise ValueError("boom in the measure")
'''


def test_a_run_whose_claim_crashes_exits_nonzero(registry_restored, saved_model, tmp_path, capfd):
    """A crash is recorded (status error) and the report rendered, but the run exits 1 with one line naming it: a
    script or CI job sees it. The other claim's verdict is still recorded."""
    folder = tmp_path / "claims"
    folder.mkdir()
    (folder / "u09_crash.py").write_text(CRASHING_CLAIM)
    out = tmp_path / "report"
    rc = main(["run", "--include", str(folder), "--include", str(EXAMPLES), "-m", str(saved_model("llama")),
               "--claims", "U01,U09", "--tier", "fast", "-j", "1", "--report-dir", str(out),
               "--cache-dir", str(tmp_path / "cache")])
    err = [line for line in capfd.readouterr().err.splitlines() if "error" in line]
    assert rc == 1 and len(err) == 1 and "1 of 2 runs ended in an error (first: U09 on " in err[0], err
    assert "ValueError: boom in the measure" in err[0]
    statuses = {json.loads(p.read_text())["claim"]["id"]: json.loads(p.read_text())["status"]
                for p in (out / "records").glob("*.json")}
    assert statuses == {"U01": "ok", "U09": "error"} and (out / "REPORT.md").is_file()


def test_a_report_without_the_claims_registered_names_them_from_their_records(registry_restored, saved_model,
                                                                              tmp_path, monkeypatch):
    """`report` on records of a user's claim without --include: the verdict matrix takes the title from the record
    and says how to register it, not an empty title."""
    from lazarus_bench.harness import registry
    from lazarus_bench.suite.report import read_all, render

    out = tmp_path / "report"
    assert main(["run", "--include", str(EXAMPLES), "-m", str(saved_model("llama")), "--claims", "U01", "--tier",
                 "fast", "-j", "1", "--report-dir", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    title = registry.REGISTRY.pop("U01").title
    monkeypatch.setenv(registry.INCLUDE_ENV, "")
    matrix = read_all(render(out).parent).split("## Verdict matrix")[1]
    row = next(line for line in matrix.splitlines() if line.startswith("| U01"))
    assert f"{title} (not in the registry: --include its folder)" in row


ORIGINAL_CRASHES = '''
from lazarus_bench.harness.base import GateResult, NotTestable
from lazarus_bench.harness.registry import claim


@claim(id="U08", title="Only its original protocol crashes", statement="-", source="test", criterion="-",
       writeup="-", params={"alpha": 0.05}, protocols=("corrected", "original"))
def measure_u08(ctx):
    if ctx.protocol == "original":
        raise ValueError("boom in the original protocol")
    raise NotTestable([GateResult("never met", 0.0, 1.0, "above", False, "the corrected protocol stops here")])
'''


def test_the_fast_tier_fails_when_any_protocol_crashes(saved_model, tmp_path):
    """The hypothesis test fails on an error record of a protocol after the first, even when the corrected
    protocol's record is a skip (NOT TESTABLE)."""
    import subprocess
    import sys

    folder = tmp_path / "claims"
    folder.mkdir()
    (folder / "u08_original_crashes.py").write_text(ORIGINAL_CRASHES)
    done = subprocess.run([sys.executable, "-m", "pytest", "hypotheses/test_claims.py", "--include", str(folder),
                           "--model", str(saved_model("llama")), "-k", "test_U08 and fast", "-q", "-p",
                           "no:cacheprovider", "--report-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=EXAMPLES.parents[1], timeout=300)
    assert done.returncode == 1, done.stdout[-2000:]
    assert "U08 on " in done.stdout and "(original): error:" in done.stdout and "boom in the original" in done.stdout
