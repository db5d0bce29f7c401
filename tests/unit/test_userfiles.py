"""The one reader of user files: whatever bytes a file holds, its text or one line naming the file and the place."""

from __future__ import annotations

import json

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
