"""The CLI end to end on saved tiny models: numbers match the library, errors are one line and exit 2."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest
from scipy.special import softmax

from lazarus_bench.cli import COMMANDS, main
from lazarus_bench.io import write_json
from lazarus_bench.models import load_model


def test_info_json(tmp_path, capsys):
    assert main(["info", "--no-gemm", "--json", str(tmp_path / "env.json")]) == 0
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["blas"]["status"] in ("preloaded", "not-needed", "disabled", "missing", "too-late")
    assert "mlx" in env["packages"] and "mlx-lm" in env["packages"]
    out = capsys.readouterr().out
    assert "blas" in out
    from lazarus_bench.bench.machine import openblas_core

    assert ("openblas kernel" in out) == (openblas_core() is not None)


def test_lens_cli_matches_independent_computation(saved_model, tmp_path, capsys):
    """Printed and JSON per-layer P(word) equal a numpy lens (final RMSNorm with gain, tied unembedding)."""
    path = saved_model("llama")
    out = tmp_path / "lens.json"
    assert main(["lens", "-m", str(path), "-p", "7 * 8 = ", "-t", "plus", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())["results"][0]
    handle = load_model(str(path))
    ids = handle.encode("7 * 8 = ")
    assert result["token_ids"] == ids
    spellings = result["targets"]["plus"]["spellings"]
    assert all(len(s["ids"]) == 1 for s in spellings.values()), spellings
    capture = handle.forward(mx.array([ids]))
    emb = np.array(handle.embed.weight, dtype=np.float64)
    gain = np.array(handle.final_norm.weight, dtype=np.float64)
    table_rows = [line.split() for line in printed.splitlines() if line.split() and line.split()[0] in
                  ["emb"] + [str(i) for i in range(handle.n_layers)]]
    assert len(table_rows) == handle.n_layers + 1
    for row, hidden in enumerate(capture.hidden):
        h = np.array(hidden[0, -1], dtype=np.float64)
        p = softmax((h / np.sqrt(np.mean(h**2) + 1e-5) * gain) @ emb.T)
        want = sum(p[s["ids"][0]] for s in spellings.values())
        assert result["targets"]["plus"]["full_prob_sum"][row] == pytest.approx(want, rel=1e-3)
        assert any(_close(cell, want) for cell in table_rows[row][1:]), (table_rows[row], want)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _close(text: str, want: float) -> bool:
    return _is_number(text) and abs(float(text) - want) <= 2e-3 * abs(want)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["lens", "-m", "/nonexistent/model", "-p", "x"], "model path not found"),
        (["router", "-m", "@llama"], "has no MoE router"),
        (["lens", "-m", "@llama", "-p", "x", "--layers", "99"], "out of range"),
        (["lens", "-m", "@llama", "-p", ""], "empty prompt"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(argv, message, saved_model, capsys, tmp_path):
    argv = [str(saved_model("llama")) if a == "@llama" else a for a in argv]
    out = tmp_path / "never.json"
    assert main(argv + ["--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("lazarus-bench: error:")
    assert not out.exists()


def test_router_cli_on_moe(saved_model, tmp_path, capsys):
    out = tmp_path / "router.json"
    assert main(["router", "-m", str(saved_model("mixtral")), "--null", "50", "--json", str(out)]) == 0
    layers = json.loads(out.read_text())["layers"]
    assert [entry["layer"] for entry in layers] == [0, 1, 2, 3]
    assert all(len(entry["experts"]) == 4 for entry in layers)


def test_probe_cli_symbol_set(saved_model, tmp_path, capsys):
    out = tmp_path / "probe.json"
    assert main(["probe", "-m", str(saved_model("llama")), "--set", "symbol", "--layers", "0,2",
                 "--permutations", "10", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["group_cv"] == "leave-one-pair-out"
    assert len(payload["held_out"]["prompts"]) == 8


def test_write_json_is_atomic(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.parametrize("method,extra", [("sft", ["--save-at", "2"]), ("dual-reward", ["--protocol", "original"]),
                                          ("grpo", ["--variant", "dual", "--lora-rank", "4", "--batch-size", "2"]),
                                          ("two-stage", ["--stage1-steps", "2", "--stage2-steps", "2"]),
                                          ("engram", ["--variant", "M3", "--batch-size", "4", "--n-train", "12"])])
def test_train_cli_writes_adapters_and_result(method, extra, saved_model, tmp_path):
    out = tmp_path / method
    argv = ["train", method, "-m", str(saved_model("llama")), "-o", str(out), "--seed", "1"]
    if method != "two-stage":
        argv += ["--steps", "3"]
    assert main(argv + extra) == 0
    payload = json.loads((out / "result.json").read_text())
    assert payload["method"] == method and payload["environment"]["blas"]["status"]
    if method == "sft":
        assert (out / "adapters.safetensors").exists() and (out / "step_2" / "adapter_config.json").exists()
        assert len(payload["result"]["train"]["losses"]) == 3
        load_model(str(saved_model("llama")), adapter_path=str(out))
    if method == "dual-reward":
        assert payload["result"]["protocol"] == "original" and payload["result"]["config"]["batch_size"] == 1
    if method == "engram":
        assert payload["result"]["variant"] == "M3" and payload["result"]["engram"] is not None
        assert payload["result"]["n_train"] == 12 and payload["result"]["config"]["n_train"] == 12
    if method == "grpo":
        assert (out / "adapters.safetensors").exists()
        assert "cls_loss" in payload["result"]["train"]["metrics"][0]
    if method == "two-stage":  # --seed seeds both stages and the data, as H14 does
        config = payload["result"]["config"]
        assert config["stage1"]["train"]["seed"] == config["stage2"]["train"]["seed"] == 1
        assert config["data_seed"] == 43


def test_train_cli_bad_data_file(saved_model, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no prompt"}\n')
    assert main(["train", "sft", "-m", str(saved_model("llama")), "-o", str(tmp_path / "o"), "--data", str(bad)]) == 2
    assert "expected a JSON object with non-empty string 'prompt' and 'completion'" in capsys.readouterr().err


def test_git_commit_ignores_written_reports_but_not_code(tmp_path):
    import subprocess

    from lazarus_bench.runinfo import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "REPORT.md").write_text("old")
    (tmp_path / "code.py").write_text("x = 1")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    (tmp_path / "reports" / "REPORT.md").write_text("new")
    assert git_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2")
    assert git_commit(tmp_path) == head + "+dirty"


ALL_COMMANDS = ["info", "lens", "probe", "router", "train", "claims", "run", "bench", "report", "zoo"]


def _listed(text: str) -> list[str]:
    """Commands named at the start of a line of the top-level help, in order."""
    return [line.split()[0] for line in text.splitlines() if line.startswith("    ") and line.split()[0] in COMMANDS]


def test_help_and_no_args_list_every_command(capsys):
    assert list(COMMANDS) == ALL_COMMANDS
    done = subprocess.run([sys.executable, "-m", "lazarus_bench.cli", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    assert _listed(done.stdout) == ALL_COMMANDS
    assert "logit lens over layers for prompts and target words" in done.stdout
    assert main(["-h"]) == 0
    assert capsys.readouterr().out == done.stdout
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and _listed(captured.err) == ALL_COMMANDS


def test_unknown_command_is_one_line_and_exit_2(capsys):
    assert main(["frobnicate", "--json", "x.json"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert captured.out == "" and len(err) == 1
    assert err[0].startswith("lazarus-bench: error:") and "'frobnicate'" in err[0]
    assert all(name in err[0] for name in ALL_COMMANDS)


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_every_command_module_has_its_own_parser_and_help(name, capsys):
    module = importlib.import_module(f"lazarus_bench.cli.{name}")
    assert callable(module.build_parser) and callable(module.main)
    assert module.build_parser().prog == f"lazarus-bench {name}"
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: lazarus-bench {name} ")


def test_run_command_errors_and_interrupts(capsys):
    from lazarus_bench.cli.common import run_command
    from lazarus_bench.errors import LazarusError

    def fail(args):
        raise LazarusError("bad input")

    def interrupt(args):
        raise KeyboardInterrupt

    assert run_command(fail, None) == 2
    assert capsys.readouterr().err == "lazarus-bench: error: bad input\n"
    assert run_command(interrupt, None) == 130
    assert capsys.readouterr().err == "lazarus-bench: interrupted\n"
    assert run_command(lambda args: 0, None) == 0


def test_run_with_an_adapter_writes_to_its_own_folder(saved_model, lora_adapter, tmp_path, monkeypatch, capsys):
    """`run -m MODEL --adapter DIR` runs the claim on the fused checkpoint and, without --report-dir, writes to
    runs/<model+adapter> in the working folder (never reports/); the record names the base, the adapter and its
    hash, and H01's lens reads the adapter's logits, not the base model's."""
    from lazarus_bench.models import model_fingerprint
    from lazarus_bench.suite.records import load_records

    adapter, _ = lora_adapter
    base = str(saved_model("llama"))
    monkeypatch.chdir(tmp_path)
    argv = ["run", "-m", base, "--adapter", str(adapter), "--claims", "H01", "--tier", "fast", "--protocol",
            "corrected", "-j", "1", "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    assert not (tmp_path / "reports").exists()
    (folder,) = (tmp_path / "runs").iterdir()
    (record,) = load_records(folder).records
    assert record.status == "ok" and record.model.base == base
    assert record.model.adapter["path"] == str(adapter) and len(record.model.adapter["hash"]) == 16
    assert record.model.id == f"{base} + adapter {adapter}" and (folder / "REPORT.md").is_file()
    fused, unfused = load_model(record.model.path), load_model(base, adapter_path=str(adapter))
    ids = mx.array([unfused.encode("7 * 8 = ")])
    np.testing.assert_allclose(np.array(fused.model(ids)), np.array(unfused.model(ids)), rtol=1e-4, atol=1e-4)
    assert record.model.hash == model_fingerprint(record.model.path) != model_fingerprint(base)


def test_run_adapter_needs_exactly_one_model(lora_adapter, capsys):
    adapter, _ = lora_adapter
    assert main(["run", "--adapter", str(adapter), "--claims", "H01"]) == 2
    assert "--adapter needs exactly one -m MODEL" in capsys.readouterr().err


def test_claims_id_shows_one_claim_in_full(capsys):
    """`claims H01 H10` prints those claims' sections of the specification (statement, tests, parameters with their
    values, gates, controls) and no other claim's; an unknown id is one line and exit 2."""
    from lazarus_bench.harness.params import SHARED
    from lazarus_bench.harness.registry import get_claim

    assert main(["claims", "H01", "H10"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n## ") + out.startswith("## ") == 2 and "## H01:" in out and "## H10:" in out
    assert get_claim("H01").statement in out and re.search(r"\| `max_cosine` +\| `0.2` +\|", out)
    row = next(line for line in out.splitlines() if line.startswith("| `max_prob`"))
    assert [cell.strip() for cell in row.strip("|").split("|")] == [
        "`max_prob`", "`0.01`", "a finite number in [0, 1]", SHARED["max_prob"].help]
    assert "**Controls:**" in out and "## H02:" not in out
    assert main(["claims", "H99"]) == 2
    err = capsys.readouterr().err
    assert "H99" in err and len(err.strip().splitlines()) == 1


@pytest.mark.thorough
@pytest.mark.parametrize("core", ["Prescott", "Haswell"])
def test_run_warns_once_when_it_measured_with_pre_avx2_kernels(core, saved_model, tmp_path, capsys, monkeypatch):
    """On an AVX2/FMA CPU that OpenBLAS did not recognise, `run` says in one warning line that the records it measured
    came from its fallback kernels (they differ from ones made with another kernel); a rerun that reuses every
    record, or an AVX2 kernel, says nothing."""
    from lazarus_bench import jit
    from lazarus_bench.bench import machine
    from lazarus_bench.cli.run import kernel_warning

    monkeypatch.setattr(machine, "openblas_core", lambda: core)
    monkeypatch.setattr(jit, "cpu_has_fma", lambda: True)
    argv = ["run", "-m", str(saved_model("llama")), "--claims", "H12", "--tier", "fast", "--report-dir",
            str(tmp_path / "r")]
    for reused in (False, True):
        rc = main(argv)
        warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
        assert rc == 0 and (tmp_path / "r" / "records").is_dir()
        if core == "Prescott" and not reused:
            assert len(warned) == 1 and "1 record(s) measured here: " in warned[0], warned
            assert "runs its Prescott kernels" in warned[0] and "unset LAZARUS_BLAS_KERNEL" in warned[0]
        else:
            assert warned == []
    kernel_warning(3, remote=True)  # a Ray cluster's nodes measured them: this host's kernel says nothing of them
    assert capsys.readouterr().err == ""


def test_run_fast_tier_without_models_runs_the_micro_zoos_own(tmp_path, monkeypatch, capsys):
    """`run --tier fast` with no -m: every model of the micro zoo (its builds, not the shipped zoo's renamed), each
    claim named twice run once, and a report in another folder says how to regenerate it there."""
    from lazarus_bench.suite.records import load_records
    from lazarus_bench.zoo.build import ensure_micro_zoo
    from lazarus_bench.zoo.registry import MICRO_ZOO_ENV, default_models

    monkeypatch.setenv(MICRO_ZOO_ENV, str(ensure_micro_zoo()))
    out = tmp_path / "r"
    assert main(["run", "--tier", "fast", "--claims", "H12,h12", "-j", "1", "--report-dir", str(out)]) == 0
    err = capsys.readouterr().err
    models = default_models(micro=True)
    assert sorted(r.model.id for r in load_records(out).records) == sorted(models)
    assert f"[{len(models)}/{len(models)}] H12" in err and f"/{2 * len(models)}]" not in err
    text = (out / "REPORT.md").read_text()
    assert f"by `lazarus-bench report --report-dir {out}`" in text and "BENCH.md" not in text


def test_run_names_each_model_once_and_says_when_a_worker_left_no_record(saved_model, tmp_path, monkeypatch, capfd):
    """A model given twice is one model; a job whose worker died before writing its record is one error line that
    says so (not the "no records folder" of a report that has nothing to render)."""
    from lazarus_bench.suite import runner

    model, out, seen = str(saved_model("llama")), tmp_path / "r", []

    def died(models, claims, **kwargs):
        seen.append(list(models))
        return [{"claim": "H12", "model": models[0], "protocol": "corrected", "status": "error",
                 "reason": "worker failed: BrokenProcessPool: a child process terminated abruptly"}]

    monkeypatch.setattr(runner, "run_suite", died)
    assert main(["run", "-m", model, "-m", model, "--claims", "H12", "--report-dir", str(out)]) == 1
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert seen == [[model]]
    assert len(err) == 1 and "1 of 1 runs ended in an error" in err[0] and "no record was written for it" in err[0]


def test_run_pairs_a_users_base_with_the_instruct_model_it_names(saved_model, tmp_path, monkeypatch, capsys):
    """`run --instruct-pair BASE=INSTRUCT` gives H06 the pair in every worker; without it the base has none."""
    from lazarus_bench.harness.pairs import PAIRS_ENV

    monkeypatch.setenv(PAIRS_ENV, "")  # restored after the run, which names the pair for its workers
    base, instruct = str(saved_model("llama")), str(saved_model("llama", seed=1))
    argv = ["run", "-m", base, "--claims", "H06,H13", "--tier", "fast", "-j", "2", "--report-dir"]
    assert main(argv + [str(tmp_path / "unpaired")]) == 0
    assert main(argv + [str(tmp_path / "paired"), "--instruct-pair", f"{base}={instruct}"]) == 0
    capsys.readouterr()
    unpaired, paired = (json.loads(next((tmp_path / d / "records").glob("H06__*.json")).read_text())
                        for d in ("unpaired", "paired"))
    assert unpaired["status"] == "skipped" and "no instruct variant" in unpaired["reason"]
    assert paired["status"] == "ok" and paired["model"]["info"]["instruct_pair"] == instruct
    assert paired["inputs"]["instruct_pair"][0] == instruct
