"""The one reader of user files: whatever bytes a file holds, its text or one line naming the file and the place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazarus_bench.errors import LazarusError
from lazarus_bench.userfiles import read_user_json, read_user_text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=200).map(lambda t: t.encode("utf-8")),
                      st.text(max_size=100).map(lambda t: ("\ufeff" + t).encode("utf-8")),
                      st.text(alphabet=st.characters(max_codepoint=255), max_size=100).map(
                          lambda t: t.encode("latin-1"))))
def test_any_bytes_give_the_text_or_one_line(tmp_path, data):
    path = tmp_path / "f.txt"
    path.write_bytes(data)
    try:
        text = read_user_text(path, "--prompts-file", max_line=50)
    except LazarusError as exc:
        message = str(exc)
        assert "\n" not in message and str(path) in message and len(message) < 300
        assert b"\x00" in data or "UTF-8" in message or "characters" in message
        return
    assert text == data.decode("utf-8-sig") and b"\x00" not in data
    assert all(len(line) <= 50 for line in text.splitlines())


def test_the_place_of_a_bad_byte_is_its_line_and_column(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"ok\nab\xffc\n")
    with pytest.raises(LazarusError, match=r"byte 0xff at line 2, column 3"):
        read_user_text(path, "x")
    with pytest.raises(LazarusError, match="a folder, not a file"):
        read_user_text(tmp_path, "x")
    with pytest.raises(LazarusError, match="cannot read it"):
        read_user_text(tmp_path / "missing", "x")


@pytest.mark.parametrize("text,phrase", [("[1, 2]", "expected a JSON object, got list"),
                                         ("{oops", "not valid JSON (Expecting property name"),
                                         ('"s"', "got str")])
def test_json_of_the_wrong_shape_is_one_line(tmp_path, text, phrase):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(LazarusError, match=phrase.replace("(", r"\(")):
        read_user_json(path, "the adapter's config")
    path.write_text(json.dumps({"a": 1}))
    assert read_user_json(path, "c") == {"a": 1}


def test_a_long_error_is_one_short_line_and_a_log_with_the_whole(tmp_path, monkeypatch, capsys):
    from lazarus_bench.cli.common import MAX_ERROR, say_error

    monkeypatch.setenv("LAZARUS_CACHE_DIR", str(tmp_path))
    message = "shapes differ: " + ", ".join(f"layer {i} (128, 64)" for i in range(600))
    say_error(message)
    first, second = capsys.readouterr().err.splitlines()
    assert len(first) <= MAX_ERROR and first.startswith("lazarus-bench: error: shapes differ")
    assert first.endswith("layer 599 (128, 64)")  # the end of a message (what to do) is kept too
    log = second.split("the whole message: ", 1)[1]
    assert open(log).read().strip() == f"lazarus-bench: error: {message}"
    say_error("short")
    assert capsys.readouterr().err == "lazarus-bench: error: short\n"


# Every file read in the package outside the one reader, by module and function, with why it is not a user's file.
# A new read of a file a user names fails this test until it goes through lazarus_bench.userfiles.
OWN_DATA = "the package's own data or source, or /proc"
TOOL_WROTE = "a file the tool wrote: a manifest, record, cache entry, lock or benchmark it made"
CHECKED_FIRST = "a user's file that the command checked with the reader first (same path)"
READS = {
    "analysis/fitness.py:heldout_texts": OWN_DATA, "prompts.py:_raw": OWN_DATA, "jit.py:cpu_has_fma": OWN_DATA,
    "bench/machine.py:cpu_model": OWN_DATA, "bench/machine.py:_proc_cpu_seconds": OWN_DATA,
    "bench/machine.py:_proc_peak_rss": OWN_DATA, "bench/plan.py:available_memory": OWN_DATA,
    "blas.py:_mlx_dependency_blas": OWN_DATA, "blas.py:resolved_library": OWN_DATA, "codehash.py:_imports": OWN_DATA,
    "codehash.py:_meaning": OWN_DATA, "cache.py:code_version": OWN_DATA, "zoo/vocabs.py:fetch_vocabs": OWN_DATA,
    "harness/lock2.py:environment": OWN_DATA,
    "zoo/vocabs.py:llama_cpp_cases": OWN_DATA,
    "cache.py:valid": TOOL_WROTE, "cache.py:_locked": TOOL_WROTE, "io.py:sha256_file": TOOL_WROTE,
    "outputs.py:owned": TOOL_WROTE, "outputs.py:_sha": TOOL_WROTE, "cli/common.py:run_command": TOOL_WROTE,
    "harness/fixtures.py:dual_run": TOOL_WROTE, "harness/grpo_run.py:grpo_run": TOOL_WROTE,
    "harness/two_stage_run.py:stage_one": TOOL_WROTE, "claims/h11_sft_task_tokens.py:h11_seed": TOOL_WROTE,
    "claims/h06_base_vs_instruct.py:_zoo_pair_change": TOOL_WROTE,
    "claims/h06_base_vs_instruct.py:post_trained": TOOL_WROTE, "suite/records.py:_status": TOOL_WROTE,
    "claims/h10_router_alignment.py:_router_figure": TOOL_WROTE,
    "suite/runner.py:_previous_wall": TOOL_WROTE, "suite/runner.py:reused_record": TOOL_WROTE,
    "suite/runner.py:say": TOOL_WROTE, "suite/report.py:_zoo_quality": TOOL_WROTE,
    "suite/report.py:read_all": TOOL_WROTE,
    "suite/populations.py:read": TOOL_WROTE, "bench/costs.py:main_job_costs": TOOL_WROTE,
    "bench/costs.py:zoo_build_costs": TOOL_WROTE, "bench/engines.py:_run": TOOL_WROTE,
    "bench/parts.py:_corrected_record": TOOL_WROTE, "bench/run.py:read_fullsize": TOOL_WROTE,
    "bench/run.py:refresh_from_records": TOOL_WROTE, "bench/run.py:run_bench": TOOL_WROTE,
    "bench/worker.py:read": TOOL_WROTE, "cli/bench.py:read_parts": TOOL_WROTE, "cli/zoo.py:_build_title": TOOL_WROTE,
    "cli/zoo.py:_print_built": TOOL_WROTE, "cli/zoo.py:_replicas": TOOL_WROTE, "cli/zoo.py:_root_seed": TOOL_WROTE,
    "cli/zoo.py:_shipped_base": TOOL_WROTE, "cli/zoo.py:_zoo_rows": TOOL_WROTE,
    "zoo/build.py:_train_to_criterion": TOOL_WROTE, "zoo/build.py:_train_kind": TOOL_WROTE,
    "zoo/build.py:_close": TOOL_WROTE,
    "zoo/build.py:ensure_micro_zoo": TOOL_WROTE, "zoo/build.py:is_current": TOOL_WROTE,
    "zoo/evaluate.py:evaluate_dir": TOOL_WROTE, "zoo/fitness.py:router_fitness": TOOL_WROTE,
    "zoo/gates.py:base_misses": TOOL_WROTE, "zoo/pack.py:_manifest_sha": TOOL_WROTE,
    "zoo/pack.py:is_packed": TOOL_WROTE,
    "zoo/pack.py:pack": TOOL_WROTE, "zoo/pack.py:unpack": TOOL_WROTE, "zoo/pretrain.py:load_model": TOOL_WROTE,
    "zoo/registry.py:_base_weight_decay": TOOL_WROTE, "zoo/registry.py:build_info": TOOL_WROTE,
    "zoo/registry.py:_of_recipe": TOOL_WROTE,
    "zoo/registry.py:repair_hint": TOOL_WROTE, "zoo/registry.py:verify": TOOL_WROTE,
    "zoo/replicas.py:_current": TOOL_WROTE, "zoo/replicas.py:build_replica": TOOL_WROTE,
    "user_prompts.py:read_prompts_file": CHECKED_FIRST, "harness/prereg.py:read_lock_file": CHECKED_FIRST,
}


def _file_reads() -> set[str]:
    """``module:function`` of every read_text/read_bytes/open/json.load call in the package, but the reader's."""
    import ast

    root = Path(__file__).resolve().parents[2] / "lazarus_bench"
    found = set()

    def visit(node, where: str, rel: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            if isinstance(child, ast.Call):
                func = child.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                on = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
                if name in ("read_text", "read_bytes", "open") or (name, on) == ("load", "json"):
                    found.add(f"{rel}:{inner}")
            visit(child, inner, rel)

    for path in root.rglob("*.py"):
        if path.name != "userfiles.py":
            visit(ast.parse(path.read_text()), "<module>", str(path.relative_to(root)))
    return found


def test_no_file_is_read_outside_the_reader_unless_the_tool_owns_it():
    """A stray `read_text`/`open(` of a user's file fails here: each read names why it is not one (or is checked)."""
    reads = _file_reads()
    assert reads <= set(READS), sorted(reads - set(READS))
    assert set(READS) <= reads, sorted(set(READS) - reads)  # a read that moved: keep the list true
