"""Bad input, table-driven: each case exits non-zero with one line on stderr and writes or replaces nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from errlines import error_lines

from lazarus_bench import outputs
from lazarus_bench.cli import main
from lazarus_bench.cli.common import MAX_ERROR, WHOLE_MESSAGE

TEN_K = "seven times eight is " * 500

# (argv, a phrase the one line must contain); @llama / @moe are tiny saved models, @tmp the test's folder.
CASES = [
    (["lens", "-m", "@llama", "-p", "x", "--layers", ","], "expected comma-separated block indices"),
    (["lens", "-m", "@llama", "-p", "x", "--layers", ""], "expected comma-separated block indices"),
    (["lens", "-m", "@llama", "-p", "x", "--layers", "1,two"], "layer 'two' is not a block index"),
    (["lens", "-m", "@llama", "-p", "x", "--layers", "99"], "out of range"),
    (["lens", "-m", "@llama", "-p", "x", "--json", "/proc/x.json"], "is not writable"),
    (["lens", "-m", "@llama", "-p", "x", "--json", "@tmp"], "it is a folder"),
    (["lens", "-m", "@llama", "-p", "x", "--top-k", "0"], "expected an integer in [1, inf)"),
    (["lens", "-m", "@llama", "-p", TEN_K], "tokens; "),
    (["lens", "-m", "@llama", "-p", ""], "empty prompt"),
    (["lens", "-m", "/nonexistent/model", "-p", "x"], "model path not found"),
    (["lens", "-m", "nobody/no-such-model", "-p", "x"], "HF_HUB_OFFLINE set"),
    (["lens", "-m", "@llama", "--adapter", "@tmp", "-p", "x"], "adapter path has no adapter_config.json"),
    (["probe", "-m", "@llama", "--permutations", "-5"], "expected an integer in [0, inf)"),
    (["router", "-m", "@llama"], "has no MoE router"),
    (["router", "-m", "@moe", "--null", "0"], "expected an integer in [1, inf)"),
    (["run", "--params", "{bad json"], "not valid JSON"),
    (["run", "-m", "@llama", "-m", "@moe", "--claims", "H01", "--population", "a b", "--report-dir", "@tmp/r"],
     "a name of letters, digits"),
    (["run", "--claims", "H01", "--population", "one", "--report-dir", "@tmp/r"], "name the family's models with -m"),
    (["run", "--params", "[1,2]"], "expected a JSON object"),
    (["run", "--params", '{"nonexistent": 1}'], "unknown claim id 'nonexistent'"),
    (["run", "--claims", "H01", "--params", '{"H01": {"nope": 1}}'], "H01: unknown parameter(s) nope"),
    (["run", "--claims", "H01", "--params", '{"H01": {"max_prob": "x"}}'], "should be like its default"),
    (["run", "--claims", "H01", "--params", '{"H02": {"alpha": 0.1}}'], "not among the claims run"),
    (["run", "--claims", "H01", "--params", '{"H01": [1]}'], "must be a JSON object"),
    (["run", "-j", "2", "--claims", "H01", "--params", '{"H01": {"max_prob": {"a": 1}}}'], "like its default"),
    (["run", "--claims", ""], "names no claim"),
    (["run", "--claims", "H99"], "unknown claim id 'H99'"),
    (["run", "--seeds", "0"], "expected an integer in [1, inf)"),
    (["run", "--seeds", "-3"], "expected an integer in [1, inf)"),
    (["run", "-j", "0"], "expected an integer in [1, 256]"),
    (["run", "-j", "-2"], "expected an integer in [1, 256]"),
    (["run", "--protocol", "sloppy"], "invalid choice"),
    (["run", "-m", "@llama", "--claims", "H05a", "--cache-dir", "/proc/cc", "--report-dir", "@tmp/r"],
     "cannot write to '/proc/cc/runs': folder '/proc' is not writable"),
    (["run", "--claims", "H12", "--protocol", "original", "--report-dir", "@tmp/r"], "not a protocol of H12"),
    (["run", "--claims", "H05a", "--tier", "fast", "--protocol", "corrected+optimizer", "--report-dir", "@tmp/r"],
     "not a protocol of H05a on the fast tier"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--data", "@tmp/missing.jsonl"], "no such file"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--data", "@tmp/numbers.jsonl"], "non-empty string"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--data", "@tmp/broken.jsonl"], "not valid JSON"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--data", "@tmp/binary.jsonl"], "a binary file (a NUL byte"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--data", "@tmp"], "is a folder, not a file"),
    (["lens", "-m", "@llama", "--prompts-file", "@tmp/latin1.txt"], "not UTF-8 text (byte 0xe9 at line 2, column 4)"),
    (["lens", "-m", "@llama", "--prompts-file", "@tmp/huge.txt"], "line 1 has 100,001 characters"),
    (["probe", "-m", "@llama", "--prompts-file", "@tmp/latin1.txt"], "--prompts-file"),
    (["lens", "-m", "@llama", "--adapter", "@tmp/bad-adapter", "-p", "x"], "the adapter's config"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--steps", "-1"], "expected an integer in [0, inf)"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--lr", "-1"], "expected a finite number in [0, inf)"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--lr", "nan"], "expected a finite number in [0, inf)"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/numbers.jsonl"], "exists and is not a folder"),
    (["train", "sft", "-m", "@llama", "-o", "@llama"], "holds a model or adapter that training would write"),
    (["train", "two-stage", "-m", "@llama", "-o", "@tmp/o", "--lr", "1e-3"], "unrecognized arguments: --lr"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/zoo-model"], "holds a model or adapter"),
    (["report", "--report-dir", "@tmp/nothing"], "no records folder"),
    (["report", "--report-dir", "@tmp/empty"], "no records in"),
    (["claims", "--why", "because"], "--why applies only with --amend"),
    (["claims", "--basis", "x", "--spec"], "--basis applies only with --freeze"),
    (["claims", "H01", "--lock-file", "@tmp/no-lock.json"], "no such file (only --freeze writes a new one)"),
    (["bench", "--quick", "--report-dir", "/proc/bench"], "is not writable"),
    (["bench", "--quick", "--report-dir", "@tmp/numbers.jsonl"], "is not writable"),
    (["bench", "--claims", "H01"], "--claims picks the claims of --parts MODEL"),
    (["bench", "--parts", "@llama", "--quick"], "--quick shortens the benchmarks"),
    (["bench", "--parts", "@llama", "--claims", "H99"], "unknown claim id 'H99'"),
    (["bench", "--parts", "@llama", "--claims", ","], "names no claim"),
    (["bench", "--parts", "/nonexistent/model"], "model path not found"),
    (["bench", "--parts", "@llama", "--report-dir", "/proc/parts"], "is not writable"),
    (["bench", "--parts", "@llama", "--report-dir", "@tmp/junk-parts"], "parts.json was not written by lazarus-bench"),
    (["bench", "--parts", "@llama", "--report-dir", "@tmp/junk-parts", "--overwrite"],
     "parts.json: unreadable (not a parts.json"),
    (["bench", "--quick", "--report-dir", "@tmp/junk-parts"], "bench.json was not written by lazarus-bench"),
    (["bench", "--records", "--quick"], "it measures nothing, so it takes no --parts, --quick or --claims"),
    (["bench", "--records", "--report-dir", "@tmp/empty"], "bench.json: no benchmark run to refresh"),
    (["bench", "--records", "--report-dir", "/proc/bench"], "is not writable"),
    (["bench", "--records", "--report-dir", "@tmp/junk-parts", "--overwrite"],
     "bench.json: unreadable (not the bench.json"),
    (["bench", "--parts", "@llama", "--report-dir", "@tmp/other-parts", "--overwrite"],
     "holds zoo:base (slow tier), not "),
    (["zoo", "list", "--json", "/proc/zoo.json"], "is not writable"),
    (["zoo", "list", "--dir", "@tmp"], "no zoo model in it"),
    (["zoo", "list", "--write"], "--write does not apply to `zoo list` (only to eval)"),
    (["zoo", "pack", "--models", "base", "--dir", "@tmp"], "--models does not apply to `zoo pack`"),
    (["zoo", "eval", "--weight-decay", "0.1"], "--weight-decay does not apply to `zoo eval` (only to build)"),
    (["zoo", "list", "--builds", "4,99"], "--builds: no build s99 in"),
    (["zoo", "build", "--builds", "2", "--seed", "3", "--dir", "@tmp"], "--seed does not combine with --builds"),
    (["zoo", "eval", "--dir", "@tmp", "--models", "base", "untied"], "no base, untied model in it (available: none)"),
    (["frobnicate"], "unknown command"),
    (["train", "dual-reward", "-m", "@llama", "-o", "@tmp/o", "--cls-weight", "2"], "in [0, 1]"),
    (["train", "dual-reward", "-m", "@llama", "-o", "@tmp/o", "--cls-weight", "-0.1"], "in [0, 1]"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--steps", "5", "--save-at", "1000"], "lies beyond steps = 5"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--seed", "-1"], "in [0, 4294967295]"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--steps=--"], "--steps: expected one argument"),
    (["run", "-m", "zoo:nonexistent", "--claims", "H01"], "zoo model 'zoo:nonexistent' not found"),
    (["run", "-m", "@tmp/no-model", "--claims", "H01"], "model path not found"),
    (["run", "-m", "@tmp", "--claims", "H01"], "has no config.json"),
    (["run", "-m", "nobody/no-such-model", "--claims", "H01"], "not in the Hugging Face cache"),
    (["run", "--claims", "H01", "--params", '{"H01": {"max_prob": 2}}'],
     "max_prob = 2: expected a finite number in [0, 1]"),
    (["run", "--claims", "H10", "--params", '{"H10": {"top_k": 0}}'], "top_k = 0: expected an integer in [1, inf)"),
    (["lens", "-m", "@llama", "-p", "x", "--top-k", "100000"], "exceeds the vocabulary"),
    (["lens", "-m", "@llama", "-p", "x", "--json", "@tmp/" + "n" * 300 + ".json"], "File name too long"),
    (["zoo", "list", "--json", "@tmp/" + "n" * 300 + ".json"], "File name too long"),
    (["run", "--claims", "H02,H10", "--seeds", "3"], "none of H02, H10 trains a model"),
    (["claims", "H01", "--spec"], "show claims in full; --spec acts on every claim"),
    (["claims", "H01", "--freeze", "--lock-file", "@tmp/new-lock.json"], "--freeze acts on every claim"),
    (["claims", "--freeze", "--lock-file", "@tmp"], "is a folder: name the lock file"),
    (["claims", "--include", "@tmp/clash"], "claim H01 registered twice"),
    (["router", "trace", "-m", "@moe", "-p", "7 * 8 = ", "--top-k", "1"], "--top-k: for `router weights`"),
    (["router", "trace", "-m", "@moe", "-p", "7 * 8 = ", "--null", "5", "--seed", "1"], "--null, --seed: for"),
    (["probe", "-m", "@llama", "--set", "symbol", "--classes", "a:1 + 2 = |3 + 4 = ", "--classes",
      "b:1 - 2 = |3 - 4 = "], "exclude each other"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--full", "--rank", "4", "--scale", "3"],
     "--rank, --scale with --full"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--data", "@tmp/good.jsonl", "--n-train", "10"],
     "--n-train with --data"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/o", "--ranks", "2", "--full", "--scale", "3"], "--scale with --full"),
    (["run", "-m", "@notok", "--claims", "H02", "-j", "2", "--report-dir", "@tmp/r"], "its tokenizer does not load"),
    (["run", "-m", "@llama", "--adapter", "@tmp/full-adapter", "--claims", "H01", "--report-dir", "@tmp/r"],
     "is a full fine-tune (fine_tune_type: full)"),
    (["run", "-m", "@llama", "--claims", "H06", "--instruct-pair", "@llama"], "expected BASE=INSTRUCT"),
    (["run", "--claims", "H06", "--instruct-pair", "zoo:base=zoo:instruct"], "'zoo:base' is not a -m model"),
    (["run", "-m", "@llama", "--claims", "H06", "--instruct-pair", "@llama=@tmp/no-model"], "model path not found"),
    (["train", "sft", "-m", "@llama", "-o", "@tmp/earlier"], "earlier: the folder is not empty (adapters.safetensors)"),
    (["run", "-m", "@llama", "--claims", "H01", "--report-dir", "@tmp/user-report"],
     "REPORT.md was not written by lazarus-bench"),
    (["report", "--report-dir", "@tmp/user-report"], "REPORT.md was not written by lazarus-bench"),
]


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "numbers.jsonl").write_text('{"prompt": 7, "completion": 56}\n')
    (tmp_path / "broken.jsonl").write_text('{"prompt": "7 * 8 = ", "completion": "56"\n')
    (tmp_path / "empty" / "records").mkdir(parents=True)
    (tmp_path / "zoo-model").mkdir()
    (tmp_path / "zoo-model" / "manifest.json").write_text("{}")
    for name, text in (("junk-parts", "[1, 2]"), ("other-parts", '{"model": "zoo:base", "tier": "slow", "rows": [], '
                                                                  '"commit": "0", "environment": "x"}')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "parts.json").write_text(text)
    (tmp_path / "junk-parts" / "bench.json").write_text('{"mode": "quick"}')
    (tmp_path / "good.jsonl").write_text('{"prompt": "7 * 8 = ", "completion": "56"}\n')
    (tmp_path / "binary.jsonl").write_bytes(b'{"prompt": "7"}\n\x00\x01\x02')
    (tmp_path / "latin1.txt").write_bytes("7 * 8 = \ncaf\u00e9\n".encode("latin-1"))
    (tmp_path / "huge.txt").write_text("x" * 100_001 + "\n")
    (tmp_path / "bad-adapter").mkdir()
    (tmp_path / "bad-adapter" / "adapter_config.json").write_text("{not json")
    (tmp_path / "full-adapter").mkdir()
    (tmp_path / "full-adapter" / "adapter_config.json").write_text('{"fine_tune_type": "full", "num_layers": 2}')
    (tmp_path / "earlier").mkdir()  # an earlier training run's output
    (tmp_path / "earlier" / "adapters.safetensors").write_bytes(b"weights")
    (tmp_path / "user-report" / "records").mkdir(parents=True)  # a user's own REPORT.md beside a record
    (tmp_path / "user-report" / "REPORT.md").write_text("# my notes\n")
    shutil.copy(next((Path(__file__).resolve().parents[1] / "reports" / "records").glob("H01__*.json")),
                tmp_path / "user-report" / "records")
    (tmp_path / "clash").mkdir()
    (tmp_path / "clash" / "mine.py").write_text(
        (Path(__file__).resolve().parents[1] / "examples" / "claims" / "u01_answer_top1.py").read_text()
        .replace('id="U01"', 'id="H01"'))
    return tmp_path


def _resolve(argv, saved_model, tmp_path):
    def one(a):
        if a == "@llama":
            return str(saved_model("llama"))
        if a == "@moe":
            return str(saved_model("mixtral"))
        if a.startswith("@") and "=" in a:  # BASE=INSTRUCT
            return "=".join(one(part) for part in a.split("=", 1))
        if a == "@notok":  # a checkpoint folder without its tokenizer files
            folder = tmp_path / "notok"
            folder.mkdir(exist_ok=True)
            for name in ("config.json", "model.safetensors"):
                shutil.copy(saved_model("llama") / name, folder / name)
            return str(folder)
        return a.replace("@tmp", str(tmp_path))

    return [one(a) for a in argv]


def _snapshot(folder: Path) -> dict[str, tuple]:
    return {str(p.relative_to(folder)): (p.is_symlink(), p.stat().st_mtime_ns if p.exists() else None)
            for p in sorted(folder.rglob("*"))}


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("argv,phrase", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_is_one_clear_line_nothing_written(argv, phrase, saved_model, bad_files, capfd, monkeypatch):
    from lazarus_bench.harness.registry import INCLUDE_ENV

    monkeypatch.chdir(bad_files)
    monkeypatch.setenv(INCLUDE_ENV, "")  # an --include case must not leave its folder to the next tests' runs
    argv = _resolve(argv, saved_model, bad_files)
    before = _snapshot(bad_files)
    rc = _exit_code(argv)
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert rc == 2, (rc, err)
    logs = [line.split(WHOLE_MESSAGE)[1].strip() for line in err if line.startswith(WHOLE_MESSAGE)]
    err = [line for line in err if not line.startswith(WHOLE_MESSAGE)]
    whole = Path(logs[0]).read_text() if logs else err[0]
    assert len(err) == 1 and len(err[0]) <= MAX_ERROR and "error" in err[0], err
    assert phrase in err[0] or phrase in " ".join(whole.split()), (phrase, err)
    assert _snapshot(bad_files) == before, "a failed command wrote or replaced a file"


@pytest.mark.parametrize("kind", ["symlink", "fifo", "device"])
def test_json_never_replaces_a_link_fifo_or_device(kind, saved_model, tmp_path, capfd):
    target = tmp_path / "out.json"
    if kind == "symlink":
        real = tmp_path / "real.json"
        real.write_text("keep me\n")
        target.symlink_to(real)
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target = Path("/dev/null")
    rc = _exit_code(["lens", "-m", str(saved_model("llama")), "-p", "7 * 8 = ", "--json", str(target)])
    err = capfd.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "refusing to write" in err[0], err
    if kind == "symlink":
        assert target.is_symlink() and (tmp_path / "real.json").read_text() == "keep me\n"
    elif kind == "fifo":
        assert target.is_fifo()
    else:
        assert target.is_char_device()


def test_multi_token_target_shows_its_pieces_and_says_whose_rank(saved_model, capfd, tmp_path):
    """A word the vocabulary splits is measured as the teacher-forced whole word; the table says the rank is the first
    piece's and prints the pieces; a warning says so once."""
    out = tmp_path / "lens.json"
    argv = ["lens", "-m", str(saved_model("llama")), "-p", "7 * 8 = ", "-p", "12 * 5 = ", "-t", "xylophone",
            "--json", str(out)]
    with pytest.warns(UserWarning, match="not a single token") as caught:
        assert main(argv) == 0
    assert len([w for w in caught if "xylophone" in str(w.message)]) == 1
    text = capfd.readouterr().out
    assert "rank(xylophone, 1st piece)" in text and "no single-token spelling" in text
    spelling = json.loads(out.read_text())["results"][0]["targets"]["xylophone"]["spellings"]["with_space"]
    assert len(spelling["pieces"]) == len(spelling["ids"]) > 1 and spelling["rank_of"] == "the first piece"
    assert "".join(spelling["pieces"]) == " xylophone"


def test_flipped_byte_in_a_zoo_dir_given_by_path_is_caught(tmp_path, capfd):
    """Loading a zoo directory by path verifies its manifest too; the hint repairs that directory, not the cache."""
    import shutil

    from lazarus_bench.zoo.registry import zoo_root

    model = tmp_path / "base"
    shutil.copytree(zoo_root() / "base", model)
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert main(["lens", "-m", str(model), "-p", "7 * 8 = "]) == 2
    err = error_lines(capfd.readouterr().err, whole=True)
    assert len(err) == 1 and "does not match its sha256" in err[0]
    assert f"--dir {tmp_path} --models base --force" in err[0]
    renamed = model.rename(tmp_path / "my-base")  # a rebuild would write <parent>/base and leave this one broken
    assert main(["lens", "-m", str(renamed), "-p", "7 * 8 = "]) == 2
    err = error_lines(capfd.readouterr().err, whole=True)
    assert len(err) == 1 and "restore it from where it came from" in err[0] and "--force" not in err[0]


def test_report_with_a_broken_record_exits_nonzero_and_lists_it(tmp_path, capfd):
    records = tmp_path / "records"
    records.mkdir()
    (records / "H01__x__corrected.json").write_text(json.dumps({"schema_version": 1, "status": "ok"}))
    (records / "H02__x__corrected.json").write_text("{not json")
    assert main(["report", "--report-dir", str(tmp_path)]) == 2
    err = error_lines(capfd.readouterr().err, whole=True)
    assert len(err) == 1 and "2 record(s)" in err[0] and "could not be read" in err[0]
    report = (tmp_path / "REPORT.md").read_text()
    assert "missing claim, model, protocol" in report and "unreadable, not valid JSON" in report


def test_divergent_lora_stops_with_one_line(saved_model, tmp_path, capfd):
    """LoRA at lr 1e9 blows the adapter up: the run stops with one line instead of writing garbage and exiting 0."""
    out = tmp_path / "o"
    rc = main(["train", "sft", "-m", str(saved_model("llama")), "-o", str(out), "--steps", "30", "--lr", "1e9",
               "--n-train", "64"])
    err = error_lines(capfd.readouterr().err, whole=True)
    assert rc == 2 and len(err) == 1 and "diverged" in err[0], err
    assert f"removed {out}, which this run had made" in err[0] and not out.exists()


def test_a_failed_training_run_into_an_existing_folder_removes_only_what_it_added(saved_model, tmp_path, capfd):
    """With --overwrite into a folder holding an earlier run: a run that fails takes out only its own new files."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    rc = main(["train", "sft", "-m", str(saved_model("llama")), "-o", str(out), "--overwrite", "--steps", "30",
               "--lr", "1e9", "--n-train", "64"])
    err = error_lines(capfd.readouterr().err, whole=True)
    assert rc == 2 and len(err) == 1 and "entries this run had added" in err[0], err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_report_pages_replace_only_what_the_tool_wrote(tmp_path, capfd):
    """A user's REPORT.md is kept byte for byte unless --overwrite; the tool's own pages (its output manifest) are
    replaced freely after that, its stale claim page is removed, and a user's page beside them is left alone; a
    user's claims/H02.md is refused like their REPORT.md."""
    from lazarus_bench.outputs import MANIFEST, owned

    records = Path(__file__).resolve().parents[1] / "reports" / "records"
    (tmp_path / "records").mkdir()
    shutil.copy(next(records.glob("H01__*.json")), tmp_path / "records")
    (tmp_path / "REPORT.md").write_bytes(b"# mine\r\n")
    assert main(["report", "--report-dir", str(tmp_path)]) == 2
    assert (tmp_path / "REPORT.md").read_bytes() == b"# mine\r\n" and not (tmp_path / MANIFEST).exists()
    assert main(["report", "--report-dir", str(tmp_path), "--overwrite"]) == 0
    assert "Generated from 1 records" in (tmp_path / "REPORT.md").read_text() and "claims/H01.md" in owned(tmp_path)
    (tmp_path / "claims" / "notes.md").write_text("mine")
    (tmp_path / "claims" / "H02.md").write_text("mine")
    shutil.copy(next(records.glob("H02__*.json")), tmp_path / "records")
    assert main(["report", "--report-dir", str(tmp_path)]) == 2
    assert (tmp_path / "claims" / "H02.md").read_text() == "mine"
    (tmp_path / "claims" / "H02.md").unlink()
    assert main(["report", "--report-dir", str(tmp_path)]) == 0  # the tool's own pages: no --overwrite needed
    (tmp_path / "records" / next(records.glob("H01__*.json")).name).unlink()
    assert main(["report", "--report-dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in (tmp_path / "claims").iterdir()) == ["H02.md", "notes.md"]
    assert "claims/H01.md" not in owned(tmp_path) and capfd.readouterr()


def test_report_plots_replace_only_what_the_tool_wrote(tmp_path, capfd):
    """Plots follow the pages' rule: a user's file at a plot's name is refused (kept byte for byte), a user's other
    file in plots/ is left alone, and the tool's plot of a record that is gone is removed with its manifest entry."""
    from lazarus_bench.outputs import owned

    records = Path(__file__).resolve().parents[1] / "reports" / "records"
    (tmp_path / "records").mkdir()
    chosen = {claim: sorted(records.glob(f"{claim}__zoo_base-*.json"))[0] for claim in ("H01", "H02")}
    for path in chosen.values():
        shutil.copy(path, tmp_path / "records")
    assert main(["report", "--report-dir", str(tmp_path)]) == 0
    plots = {n for n in owned(tmp_path) if n.startswith("plots/")}
    on_disk = {f"plots/{p.name}" for p in (tmp_path / "plots").iterdir()}
    assert "plots/verdict_map.png" in plots and any(n.startswith("plots/H02__") for n in plots) and plots == on_disk
    h01 = sorted(n for n in plots if n.startswith("plots/H01__"))
    (tmp_path / h01[0]).write_bytes(b"mine")
    (tmp_path / "plots" / "mine.png").write_bytes(b"mine too")
    assert main(["report", "--report-dir", str(tmp_path)]) == 2
    err = capfd.readouterr().err
    assert "--report-dir" in err and "to replace it" in err and (tmp_path / h01[0]).read_bytes() == b"mine"
    (tmp_path / h01[0]).unlink()
    (tmp_path / "records" / chosen["H01"].name).unlink()
    assert main(["report", "--report-dir", str(tmp_path)]) == 0
    left = {f"plots/{p.name}" for p in (tmp_path / "plots").iterdir()}
    assert not any(n.startswith("plots/H01__") for n in left | set(owned(tmp_path))) and "plots/mine.png" in left
    assert (tmp_path / "plots" / "mine.png").read_bytes() == b"mine too"


def test_failed_rerun_keeps_the_finished_record(tmp_path):
    from lazarus_bench.suite.records import ModelRef, Record, failed_path, load_records, record_path, save_record
    from lazarus_bench.suite.report import failed_reruns

    def record(status, value):
        return Record(claim={"id": "H01"}, model=ModelRef(id="m", slug="m", hash="", info={}), protocol="corrected",
                      tier="slow", params={}, seeds=(), prereg={}, timestamp="", status=status, reason=value)

    good = save_record(tmp_path, record("ok", "first run"))
    assert save_record(tmp_path, record("error", "boom")) == failed_path(tmp_path, "H01", "m", "corrected")
    assert json.loads(good.read_text())["reason"] == "first run"
    loaded = load_records(tmp_path)
    assert [r.reason for r in loaded.records] == ["first run"] and [r.reason for r in loaded.failed] == ["boom"]
    section = "\n".join(failed_reruns(loaded.failed))
    assert "earlier finished record" in section and "H01 on m (corrected)" in section and "error: boom" in section
    save_record(tmp_path, record("ok", "second run"))
    assert json.loads(record_path(tmp_path, "H01", "m", "corrected").read_text())["reason"] == "second run"
    assert not failed_path(tmp_path, "H01", "m", "corrected").exists()
    # with no finished record before it, a failed run is the record
    assert save_record(tmp_path, record("error", "x").replace(protocol="original")) == \
        record_path(tmp_path, "H01", "m", "original")


def test_stale_cache_build_dirs_are_removed(tmp_path):
    from lazarus_bench.cache import FixtureCache

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".{'a' * 24}.{dead.pid}.x1y2z3"
    live = tmp_path / f".{'b' * 24}.{os.getpid()}.x1y2z3"
    stale.mkdir()
    live.mkdir()
    entry = FixtureCache(tmp_path).get_or_build({"k": 1}, lambda d: (d / "f.txt").write_text("x"))
    assert not stale.exists() and live.exists() and (entry / "f.txt").read_text() == "x"


# ----- signals and pipes, as subprocesses -----

def _children(pid: int) -> set[int]:
    out = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        if f"PPid:\t{pid}" in lines:
            out.add(int(status.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _start_run(model: str, tmp_path: Path) -> subprocess.Popen:
    # the slow tier: minutes of training, so the signal always lands mid-run
    argv = [sys.executable, "-m", "lazarus_bench.cli", "run", "-m", model, "--claims", "H05a,H12", "--tier", "slow",
            "-j", "2", "--report-dir", str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "cache"),
            "--params", '{"H05a": {"min_ceiling_over_floor": 0}}']  # a tiny model's lens ceiling is 1.6 T'
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _workers(proc: subprocess.Popen, n: int = 2, timeout: float = 120) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = {pid for pid in _children(proc.pid) if "spawn_main" in _cmdline(pid)}
        if len(workers) >= n:
            return workers
        time.sleep(0.2)
    proc.kill()
    _, err = proc.communicate()
    raise AssertionError(f"the run never started its workers: {err[-2000:]}")


def _gone(pids: set[int], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.thorough
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig,rc,line", [(signal.SIGTERM, 143, "lazarus-bench: terminated"),
                                         (signal.SIGINT, 130, "lazarus-bench: interrupted")])
def test_signal_stops_the_run_and_its_workers(sig, rc, line, saved_model, tmp_path):
    proc = _start_run(str(saved_model("llama")), tmp_path)
    workers = _workers(proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == rc, err
    assert err.strip().splitlines()[-1] == line and "Traceback" not in err
    assert _gone(workers), "workers outlived their parent"


def _spawn_pool_with_running_jobs():
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    executor = ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn"))
    futures = [executor.submit(time.sleep, 60) for _ in range(3)]
    deadline = time.monotonic() + 60
    while not any(f.running() for f in futures) and time.monotonic() < deadline:
        time.sleep(0.05)
    return executor, futures


@pytest.mark.parametrize("exc,rc", [("interrupt", 130), ("terminate", 143), ("error", 2)])
def test_a_command_that_stops_its_pool_waits_for_the_pools_manager_thread(exc, rc):
    """Ctrl-C, SIGTERM or an error kill the workers, then the command waits for the pool's manager thread: one left
    running races CPython 3.11's exit hook on its wakeup pipe, and the last stderr line becomes an EBADF traceback."""
    from lazarus_bench.cli.common import Terminated, run_command
    from lazarus_bench.errors import LazarusError
    from lazarus_bench.suite.runner import _stop_workers

    executor, futures = _spawn_pool_with_running_jobs()
    processes = list(executor._processes.values())
    manager, wakeup = executor._executor_manager_thread, executor._executor_manager_thread_wakeup

    def stopped(args):
        try:
            raise {"interrupt": KeyboardInterrupt(), "terminate": Terminated(), "error": LazarusError("x")}[exc]
        finally:
            _stop_workers(executor)

    assert run_command(stopped, None) == rc
    assert processes and not any(p.is_alive() for p in processes)
    assert not manager.is_alive() and wakeup._closed
    assert all(f.done() for f in futures)


def test_a_command_leaves_a_pool_still_in_use_alone():
    from lazarus_bench.cli.common import run_command

    executor, futures = _spawn_pool_with_running_jobs()
    joined = []
    executor._executor_manager_thread.join = lambda *a, **k: joined.append(a)
    try:
        assert run_command(lambda args: 0, None) == 0
        assert joined == [] and executor._executor_manager_thread.is_alive()
    finally:
        for f in futures:
            f.cancel()
        for process in executor._processes.values():
            process.kill()
        del executor._executor_manager_thread.join
        executor.shutdown(wait=True)


@pytest.mark.thorough
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_sigkill_of_the_parent_takes_the_workers_down(saved_model, tmp_path):
    proc = _start_run(str(saved_model("llama")), tmp_path)
    workers = _workers(proc)
    proc.kill()
    proc.wait()
    assert _gone(workers), "workers outlived a SIGKILLed parent"


@pytest.mark.thorough
def test_a_closed_pipe_does_not_fail_the_run(saved_model, tmp_path):
    """``lazarus-bench run ... 2>&1 | head -1``: progress stops, the run's records are still written and finished."""
    argv = [sys.executable, "-m", "lazarus_bench.cli", "run", "-m", str(saved_model("llama")), "--claims", "H02",
            "--tier", "fast", "-j", "1", "--report-dir", str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "c")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=300) in (0, 141)
    records = [json.loads(p.read_text()) for p in (tmp_path / "reports" / "records").glob("*.json")]
    assert records and all(r["status"] == "ok" for r in records), [r.get("reason") for r in records]


def test_library_api_gives_the_same_messages(handle_of, tmp_path):
    """A script calling the library meets the checks the CLI makes at its boundary."""
    from lazarus_bench.analysis.lens import logit_lens
    from lazarus_bench.errors import LazarusError
    from lazarus_bench.io import write_json
    from lazarus_bench.suite.runner import run_suite

    handle = handle_of("llama")
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "real.json")
    calls = [
        (lambda: logit_lens(handle, ["7 * 8 = "], layers=[]), "non-empty list"),
        (lambda: logit_lens(handle, ["7 * 8 = "], layers="3"), "non-empty list"),
        (lambda: logit_lens(handle, [TEN_K]), "max_position_embeddings"),
        (lambda: write_json(link, {}), "symbolic link"),
        (lambda: run_suite(["m"], [], report_dir=tmp_path), "no claim ids"),
        (lambda: run_suite(["m"], ["H01"], n_seeds=0, report_dir=tmp_path), "seeds must be >= 1"),
        (lambda: run_suite(["m"], ["H01"], jobs=0, report_dir=tmp_path), "jobs must be >= 1"),
        (lambda: run_suite(["m"], ["H01"], overrides={"H01": {"max_prob": "x"}}, report_dir=tmp_path), "default"),
    ]
    for call, phrase in calls:
        with pytest.raises(LazarusError, match=phrase.replace("(", r"\(")):
            call()
    assert not link.exists() and not (tmp_path / "records").exists()


def test_fp16_overflow_is_reported_with_its_maximum(saved_model, capfd):
    """A model whose activations pass float16's 65,504 gets a warning with the measured maximum."""
    import mlx.core as mx

    from lazarus_bench.cli.train import FP16_MAX, fp16_headroom
    from lazarus_bench.models import load_model

    handle = load_model(str(saved_model("llama")))
    assert fp16_headroom(handle) < FP16_MAX and "warning" not in capfd.readouterr().err
    embed = handle.model.model.embed_tokens
    embed.weight = embed.weight * 1e6
    peak = fp16_headroom(handle)
    reference = max(float(mx.max(mx.abs(h)).item()) for h in handle.forward([handle.encode("7 * 8 = ")]).hidden)
    assert peak >= reference > FP16_MAX
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "beyond float16" in err[0] and f"{peak:,.0f}" in err[0]


@pytest.fixture
def small_fs(tmp_path):
    """A 256 KiB tmpfs mounted for the test (root only; skipped with the reason elsewhere), unmounted after."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"needs root: cannot mount a small tmpfs here ({done.stderr.strip() or done.returncode}); the "
                    "full and read-only filesystem cases run as root (sudo .venv/bin/python -m pytest ...)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> None:
    """Write a filler file until the filesystem has no space left."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def _finished_record_dir(folder: Path) -> dict[str, bytes]:
    """An earlier run's report folder: a finished record, REPORT.md and the output manifest, as bytes to compare."""
    (folder / "records").mkdir(parents=True)
    (folder / "records" / "H02__m__corrected.json").write_text('{"schema_version": 1, "status": "ok"}\n')
    (folder / "REPORT.md").write_text("# the earlier report\n")
    outputs.record(folder, ["REPORT.md"])  # written by the tool, as its output manifest says
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _one_error_line(capfd) -> str:
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in error_lines(err, whole=True) if "error" in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("state", ["full", "read-only"])
def test_lens_json_on_a_full_or_read_only_filesystem_is_one_line(state, small_fs, saved_model, capfd):
    """No space / read-only: exit 2, the path and the cause in one line, no temporary file, the old file kept."""
    target = small_fs / "lens.json"
    target.write_text("old\n")
    _fill(small_fs) if state == "full" else subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    rc = _exit_code(["lens", "-m", str(saved_model("llama")), "-p", "7 * 8 = ", "--json", str(target)])
    line = _one_error_line(capfd)
    cause = "No space left on device" if state == "full" else "is not writable"
    assert rc == 2 and str(target) in line and cause in line, line
    assert sorted(p.name for p in small_fs.iterdir()) == sorted(["lens.json"] + (["filler"] if state == "full" else []))
    assert target.read_text() == "old\n"


@pytest.mark.parametrize("state", ["full", "read-only"])
def test_run_report_dir_on_a_full_or_read_only_filesystem_keeps_finished_records(state, small_fs, saved_model,
                                                                                 tmp_path, capfd):
    """`run --report-dir` on a full disk stops at the first record it cannot write, in one line naming the file and
    the cause, leaving no temporary file; a read-only folder is refused before any claim runs. The earlier records
    and REPORT.md are unchanged."""
    before = _finished_record_dir(small_fs)
    if state == "full":
        _fill(small_fs)
        before["filler"] = (small_fs / "filler").read_bytes()
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    rc = _exit_code(["run", "-m", str(saved_model("llama")), "--claims", "H01", "--tier", "fast", "--protocol",
                     "corrected", "-j", "1", "--report-dir", str(small_fs), "--cache-dir", str(tmp_path / "cache")])
    line = _one_error_line(capfd)
    assert rc == 2 and str(small_fs) in line, line
    assert ("No space left on device" if state == "full" else "is not writable") in line, line
    after = {str(p.relative_to(small_fs)): p.read_bytes() for p in small_fs.rglob("*") if p.is_file()}
    assert after == before


def test_permission_denied_is_one_line(saved_model, tmp_path):
    """A folder the user may not write (run as an unprivileged user): exit 2, one line, nothing written."""
    import shutil

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the command as another user (sudo .venv/bin/python -m pytest ...)")
    locked = Path(tempfile.mkdtemp(prefix="lazarus-locked-"))
    try:
        locked.chmod(0o755)
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
               "lazarus_bench.cli", "info", "--no-gemm", "--json", str(locked / "env.json")]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/")
        if "Permission denied" in done.stderr and "lazarus-bench" not in done.stderr:
            pytest.skip(f"the unprivileged user cannot run this interpreter: {done.stderr.strip()[:200]}")
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and str(locked) in lines[0], done.stderr
        assert "not writable" in lines[0] and not list(locked.iterdir())
    finally:
        shutil.rmtree(locked, ignore_errors=True)


HYPOTHESIS_SUITE = ["-m", "pytest", "hypotheses/", "-q", "-p", "no:cacheprovider"]


@pytest.mark.parametrize("args,phrase", [
    (["--seeds", "0"], "argument --seeds: expected an integer in [1, inf), got '0'"),
    (["--report-dir", "/proc/lazarus"], "folder '/proc' is not writable"),
    (["--include", "@tmp/none"], "not a folder of claim files"),
    (["--report-dir", "@tmp"], "REPORT.md was not written by lazarus-bench"),
])
def test_a_bad_hypothesis_suite_option_is_a_usage_error(args, phrase, tmp_path):
    """`pytest hypotheses/` with a bad suite option: pytest's usage error (exit 4) naming it, before collection."""
    argv = [a.replace("@tmp", str(tmp_path)) for a in args]
    (tmp_path / "REPORT.md").write_text("a user's own report")
    out = subprocess.run([sys.executable, *HYPOTHESIS_SUITE, "--co", *argv], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 4 and phrase in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]


def test_a_hypothesis_session_without_records_says_so(tmp_path):
    """Every claim test failing before it could record (an unknown model) ends with a line, not a traceback."""
    argv = ["-m", "slow", "-k", "H12", "--model", "zoo:nonexistent", "--report-dir", str(tmp_path / "r")]
    out = subprocess.run([sys.executable, *HYPOTHESIS_SUITE, *argv], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "zoo model 'zoo:nonexistent' not found" in out.stdout
    assert f"lazarus_bench report: none written, no record in {tmp_path / 'r' / 'records'}" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr and not (tmp_path / "r" / "REPORT.md").exists()


# (variable, value, a phrase the one line must contain): every setting is checked before a command works
ENV_CASES = [
    ("LAZARUS_CACHE_DIR", "/proc/cache", "LAZARUS_CACHE_DIR='/proc/cache' (the cache of trained fixtures): not a "),
    ("LAZARUS_CACHE_DIR", "@tmp/numbers.jsonl", "exists and is not a folder"),
    ("LAZARUS_ZOO_DIR", "@tmp/nowhere", "LAZARUS_ZOO_DIR='"),
    ("LAZARUS_DATA_DIR", "@tmp/nowhere", "no such folder"),
    ("LAZARUS_INCLUDE", "@tmp/nowhere", "is not a folder of claim files"),
    ("LAZARUS_INSTRUCT_PAIRS", "[1]", "expected a JSON object of base -> instruct"),
    ("LAZARUS_MAX_HELDOUT_LOSS_RATIO", "-1", "expected a positive number"),
    ("LAZARUS_MAX_HELDOUT_LOSS_RATIO", "inf", "expected a positive number"),
    ("LAZARUS_BLAS_KERNEL", "Has well", "expected an OpenBLAS core name"),
    ("LAZARUS_BLAS_PATH", "@tmp/nowhere.so", "no such file"),
    ("LAZARUS_NO_BLAS_PRELOAD", "yes", "expected one of"),
    ("LAZARUS_JIT", "fast", "expected one of 'auto', 'fma', 'plain'"),
    ("LAZARUS_JIT_ROOT", "/proc/jit", "not a folder this user can write to"),
    ("LAZARUS_VOCAB_SDIST", "@tmp", "no such file"),
    ("LAZARUS_CACHEDIR", "/tmp", "LAZARUS_CACHEDIR is not a lazarus_bench setting (did you mean LAZARUS_CACHE_DIR?)"),
    ("LAZARUS_FOO", "1", "is not a lazarus_bench setting; known: LAZARUS_CACHE_DIR"),
]


@pytest.mark.parametrize("name,value,phrase", ENV_CASES, ids=[f"{c[0]}={c[1]}"[:50] for c in ENV_CASES])
def test_a_bad_setting_stops_a_command_before_it_works(name, value, phrase, bad_files, capfd, monkeypatch):
    """A `LAZARUS_*` variable out of range (or misspelt) is one line naming it, exit 2, before anything is measured
    or written (before, an unwritable cache turned every training claim into an ERROR record)."""
    monkeypatch.chdir(bad_files)
    monkeypatch.setenv(name, value.replace("@tmp", str(bad_files)))
    before = _snapshot(bad_files)
    rc = _exit_code(["run", "--claims", "H01", "-m", "zoo:base", "--report-dir", str(bad_files / "r")])
    err = error_lines(capfd.readouterr().err)
    assert rc == 2 and len(err) == 1 and phrase in err[0], (rc, err)
    assert _snapshot(bad_files) == before


def test_every_setting_the_package_reads_is_checked_up_front():
    """A new `LAZARUS_*` variable cannot be read without a declared check (the table `check_environment` uses)."""
    import re

    from lazarus_bench.cli.settings import SETTINGS

    root = Path(__file__).resolve().parents[1] / "lazarus_bench"
    read = {name for p in root.rglob("*.py") if p.name != "settings.py"
            for name in re.findall(r"\"(LAZARUS_[A-Z_]+)\"", p.read_text())}
    assert read == set(SETTINGS)
