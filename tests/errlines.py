"""A command's error lines as a reader sees them: the log-file line (named after a cut line) set aside."""

from __future__ import annotations

from pathlib import Path

from lazarus_bench.cli.common import MAX_ERROR, WHOLE_MESSAGE


def error_lines(stderr: str, whole: bool = False) -> list[str]:
    """The non-empty stderr lines but the one naming the log; each at most MAX_ERROR characters. ``whole``: a line
    that was cut is replaced by the whole message its log holds."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    logs = [line.split(WHOLE_MESSAGE, 1)[1].strip() for line in lines if line.startswith(WHOLE_MESSAGE)]
    lines = [line for line in lines if not line.startswith(WHOLE_MESSAGE)]
    assert all(len(line) <= MAX_ERROR for line in lines), lines
    if whole and logs:
        return [" ".join(Path(logs[0]).read_text().split())] + lines[1:]
    return lines
