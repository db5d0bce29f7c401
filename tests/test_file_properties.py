"""Property-based tests of every command that reads a file a user names (hypothesis): generated contents that are
not text, or not the text's shape, give exit 2 with one stderr line naming the file and no traceback, and leave the
output location as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from errlines import error_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazarus_bench.cli import main

FILES = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _inserted(data: bytes, bad: bytes, at: int) -> bytes:
    at = at % (len(data) + 1)
    return data[:at] + bad + data[at:]


# never text: a NUL byte, or a byte no UTF-8 sequence has, anywhere in otherwise random bytes; or one huge line
NOT_TEXT = st.one_of(
    st.builds(_inserted, st.binary(max_size=200), st.just(b"\x00"), st.integers(0, 200)),
    st.builds(_inserted, st.binary(max_size=200), st.sampled_from([b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80"]),
              st.integers(0, 200)).filter(lambda b: b"\x00" not in b),
    st.builds(lambda n, bom: bom + b"x" * n, st.integers(100_001, 120_000), st.sampled_from([b"", b"\xef\xbb\xbf"])),
)
# valid UTF-8 (with or without a BOM) that is no JSON object: junk, or JSON of another shape
NOT_AN_OBJECT = st.one_of(
    st.text(max_size=60).filter(lambda t: not t.lstrip().startswith("{") and "\x00" not in t).map(str.encode),
    st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=10), st.none(), st.booleans())
    .map(lambda v: json.dumps(v).encode()),
).flatmap(lambda b: st.sampled_from([b, b"\xef\xbb\xbf" + b]))


def _command(kind: str, path: Path, model: Path, out: Path) -> list[str]:
    """The argv that reads ``path`` (an adapter's or model's config is written into its folder first)."""
    if kind == "lens --prompts-file":
        return ["lens", "-m", str(model), "--prompts-file", str(path)]
    if kind == "probe --prompts-file":
        return ["probe", "-m", str(model), "--prompts-file", str(path)]
    if kind == "train sft --data":
        return ["train", "sft", "-m", str(model), "-o", str(out), "--data", str(path)]
    if kind == "claims --lock-file":
        return ["claims", "--lock-file", str(path)]
    if kind == "--adapter config":
        return ["lens", "-m", str(model), "--adapter", str(path.parent), "-p", "7 * 8 = "]
    if kind == "run --plan config":
        return ["run", "--plan", "-m", str(path.parent)]
    raise KeyError(kind)


TEXT_READERS = ["lens --prompts-file", "probe --prompts-file", "train sft --data"]
JSON_READERS = ["claims --lock-file", "--adapter config", "run --plan config"]
NAMES = {"--adapter config": "adapter_config.json", "run --plan config": "config.json"}


def _check(kind: str, content: bytes | None, saved_model, root: Path, capfd) -> None:
    folder = root / "in"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    path = folder / NAMES.get(kind, "input")
    if content is None:  # a folder where the file should be
        path.mkdir()
    else:
        path.write_bytes(content)
    out = root / "out"
    before = sorted(root.rglob("*"))
    capfd.readouterr()
    try:
        rc = main(_command(kind, path, saved_model("llama"), out))
    except SystemExit as exc:
        rc = exc.code
    captured = capfd.readouterr()
    err = error_lines(captured.err)
    assert rc == 2 and len(err) == 1 and "Traceback" not in captured.err, (kind, content[:80] if content else None,
                                                                           captured.err[-600:])
    assert not out.exists() and sorted(root.rglob("*")) == before


@pytest.mark.parametrize("kind", TEXT_READERS + JSON_READERS)
@FILES
@given(content=NOT_TEXT)
def test_a_file_that_is_not_text_is_one_line(kind, content, saved_model, tmp_path_factory, capfd):
    _check(kind, content, saved_model, tmp_path_factory.mktemp("f"), capfd)


@pytest.mark.parametrize("kind", JSON_READERS)
@FILES
@given(content=NOT_AN_OBJECT)
def test_json_of_the_wrong_shape_is_one_line(kind, content, saved_model, tmp_path_factory, capfd):
    _check(kind, content, saved_model, tmp_path_factory.mktemp("j"), capfd)


@pytest.mark.parametrize("kind", TEXT_READERS + JSON_READERS)
def test_a_folder_in_place_of_the_file_is_one_line(kind, saved_model, tmp_path, capfd):
    _check(kind, None, saved_model, tmp_path, capfd)
