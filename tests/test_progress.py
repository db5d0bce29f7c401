"""Progress lines on long runs: quiet for a minute, then the claim, the part, the step and the time left."""

from __future__ import annotations

import pytest

from lazarus_bench import progress


@pytest.fixture
def clock(monkeypatch):
    now = {"t": 1000.0}
    monkeypatch.setattr(progress, "clock", lambda: now["t"])
    monkeypatch.setitem(progress._state, "enabled", True)
    return now


def test_quiet_for_the_first_minute_then_one_line_per_interval(clock, capsys):
    progress.job("H01", "zoo:base")
    progress.part("graded control 'plant'")
    clock["t"] += 30
    progress.step("strength 0.01, replicate 1/10; runs", 1, 70)
    assert capsys.readouterr().err == ""
    clock["t"] += 40  # 70 s into the job, 70 s into the part, 7 of 70 done: 630 s left
    progress.step("strength 0.01, replicate 7/10; runs", 7, 70)
    line = capsys.readouterr().err.strip()
    assert line == ("[H01 on zoo:base] graded control 'plant': strength 0.01, replicate 7/10; runs 7/70, "
                    "about 10m30s left in this part")
    clock["t"] += 10
    progress.step("runs", 8, 70)
    assert capsys.readouterr().err == ""  # 10 s after the last line
    clock["t"] += 3600  # 3,680 s for 69 runs: 53 s for the last
    progress.step("runs", 69, 70)
    assert capsys.readouterr().err.strip().endswith("runs 69/70, about 0m53s left in this part")
    progress.part("null 'random-init models'")
    clock["t"] += 7200
    progress.step("replicates", 1, 40)
    assert "about 78h00m left" in capsys.readouterr().err


def test_a_closed_stream_silences_progress(clock, monkeypatch):
    class Closed:
        def write(self, _):
            raise BrokenPipeError

        def flush(self):
            pass

    monkeypatch.setattr("sys.stderr", Closed())
    progress.job("H01", "m")
    clock["t"] += 100
    progress.step("runs", 1, 2)
    assert progress._state["enabled"] is False


@pytest.mark.thorough
def test_controls_report_their_strengths_and_replicates(saved_model, tmp_path, monkeypatch, capsys):
    """Through the real runner: a graded control names its strength and replicate, a null its replicates, each with
    the claim, the model and a time left."""
    from lazarus_bench.harness.registry import get_claim
    from lazarus_bench.suite.runner import run_claim

    monkeypatch.setattr(progress, "QUIET_S", 0.0)
    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    monkeypatch.setitem(progress._state, "enabled", True)
    model = str(saved_model("llama"))
    for claim in ("H03", "H01"):
        run_claim(get_claim(claim), model, tier="fast", report_dir=tmp_path, log=lambda m: None)
    lines = capsys.readouterr().err.splitlines()
    graded = [line for line in lines if line.startswith("[H03 on") and "graded control" in line]
    assert graded and all("left in this part" in line for line in graded)
    assert any("strength" in line and "replicate 1/" in line for line in graded)
    nulls = [line for line in lines if line.startswith("[H01 on") and "null 'random-init models'" in line]
    assert nulls and all("replicates" in line for line in nulls)


def test_a_command_starts_with_no_job(clock, capsys):
    """A claim job an earlier command left in the same process (tests call the CLI in-process) prints no progress
    line in a later command's training: a stray line broke the one-line error of a diverged run under load."""
    import argparse

    from lazarus_bench.cli.common import run_command

    progress.job("H01", "zoo:base")
    clock["t"] += 3600
    progress.step("runs", 1, 10)
    assert "[H01 on zoo:base]" in capsys.readouterr().err, "the stale job prints without the reset"
    progress.job("H01", "zoo:base")
    clock["t"] += 3600
    assert run_command(lambda _args: progress.step("sft steps", 1, 10) or 0, argparse.Namespace()) == 0
    assert capsys.readouterr().err == ""
