"""Packed zoo weights: a pack unpacks to the very bytes its manifest hashes, byte planes beat plain xz, every shipped
model travels packed, and the shipped zoo stays under its limit (200 MB)."""

from __future__ import annotations

import hashlib
import json
import lzma
import shutil
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lazarus_bench.zoo import pack as P

WEIGHTS = Path(P.__file__).resolve().parent / "weights"
DTYPES = {"F16": np.float16, "F32": np.float32, "I8": np.int8, "F64": np.float64}


def _safetensors(tensors: list[tuple[str, np.ndarray]]) -> bytes:
    """A safetensors file written by hand (header, then the tensors' bytes in order)."""
    header, body, offset = {}, b"", 0
    for i, (dtype, arr) in enumerate(tensors):
        raw = arr.tobytes()
        header[f"t{i}"] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        body, offset = body + raw, offset + len(raw)
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + body


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(DTYPES)), st.integers(0, 40), st.integers(0, 2**31 - 1)),
                min_size=1, max_size=4))
def test_a_pack_unpacks_to_the_same_bytes_whatever_the_dtypes(specs):
    tensors = [(d, np.random.default_rng(s).normal(size=n).astype(DTYPES[d])) for d, n, s in specs]
    data = _safetensors(tensors)
    assert P.unpack_bytes(P.pack_bytes(data)) == data


def test_planes_follow_the_one_element_size_and_fall_back_to_bytes_when_sizes_differ():
    half = np.arange(6, dtype=np.float16)
    assert P._split(_safetensors([("F16", half)]))[2] == 2
    assert P._split(_safetensors([("F32", half.astype(np.float32))]))[2] == 4
    assert P._split(_safetensors([("F16", half), ("F32", half.astype(np.float32))]))[2] == 1


def test_byte_planes_pack_a_trained_model_smaller_than_xz_of_the_file():
    data = P.unpack_bytes((WEIGHTS / "base" / f"model.safetensors{P.SUFFIX}").read_bytes())
    plain = len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    assert len(P.pack_bytes(data)) < 0.97 * plain


def test_every_shipped_pack_unpacks_to_the_bytes_its_manifest_hashes():
    packs = P.packed_files(WEIGHTS)
    assert len(packs) >= 18
    for pack in packs:
        files = json.loads((pack.parent / "manifest.json").read_text())["files"]
        data = P.unpack_bytes(pack.read_bytes())
        assert hashlib.sha256(data).hexdigest() == files[P.target(pack).name], pack


def test_no_shipped_model_travels_unpacked_and_the_zoo_ships_under_its_limit():
    assert P.unpacked_models(WEIGHTS) == []  # git ignores model.safetensors here: without its pack it would not ship
    assert P.shipped_bytes(WEIGHTS) <= P.SHIP_LIMIT == 200e6


def test_the_v3_development_builds_ship_verified_and_named_development():
    """Recipe v3's development builds travel in the repository (a build outside it is lost with its machine): each
    model verifies against its manifest, is a development seed's, and met its gates."""
    from lazarus_bench.zoo.recipe import DEV_SEEDS, RECIPE
    from lazarus_bench.zoo.registry import verify, zoo_builds

    builds = {name: path for name, path in zoo_builds(WEIGHTS).items()
              if name and json.loads((path / "base" / "manifest.json").read_text())["recipe"] == RECIPE}
    assert builds and {int(name[1:]) for name in builds} <= set(DEV_SEEDS)
    for name, path in builds.items():
        for kind in ("base", "instruct", "moe"):
            manifest = verify(path / kind)
            assert manifest["role"] == "development" and manifest["recipe"] == RECIPE, (name, kind)
            assert all(v >= manifest["gates"][k] for k, v in manifest["metrics"].items() if k in manifest["gates"])


def test_a_fresh_folder_is_unpacked_once_and_a_damaged_pack_is_skipped(tmp_path):
    src = WEIGHTS / "base"
    model = tmp_path / "base"
    model.mkdir()
    for name in ("manifest.json", f"model.safetensors{P.SUFFIX}"):
        shutil.copy(src / name, model / name)
    assert P.ensure_unpacked(tmp_path) == [model / "model.safetensors"]
    assert (model / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    assert P.ensure_unpacked(tmp_path) == []

    (model / "model.safetensors").unlink()
    pack = model / f"model.safetensors{P.SUFFIX}"
    data = bytearray(P.unpack_bytes(pack.read_bytes()))
    data[-1] ^= 1
    pack.write_bytes(P.pack_bytes(bytes(data)))
    assert P.ensure_unpacked(tmp_path) == []
    assert not (model / "model.safetensors").exists()


def test_a_damaged_unpacked_file_is_unpacked_again_and_a_touched_one_is_kept(tmp_path):
    import os

    import pytest

    model = tmp_path / "base"
    model.mkdir()
    for name in ("manifest.json", f"model.safetensors{P.SUFFIX}"):
        shutil.copy(WEIGHTS / "base" / name, model / name)
    weights = model / "model.safetensors"
    assert P.ensure_unpacked(tmp_path) == [weights]
    good = weights.read_bytes()

    os.utime(weights, ns=(1, 1))  # same bytes, another mtime: hashed once, re-stamped, not rewritten
    inode = weights.stat().st_ino
    assert P.ensure_unpacked(tmp_path) == []
    assert weights.stat().st_ino == inode and weights.stat().st_mtime_ns != 1

    damaged = bytearray(good)
    damaged[-1] ^= 1
    with weights.open("r+b") as f:  # in place, as a stray write would
        f.write(bytes(damaged))
    with pytest.warns(UserWarning, match="does not match its manifest"):
        assert P.ensure_unpacked(tmp_path) == [weights]
    assert weights.read_bytes() == good
    assert P.ensure_unpacked(tmp_path) == []


def test_zoo_pack_packs_a_new_or_rebuilt_model_and_leaves_packed_ones(tmp_path, capsys):
    from lazarus_bench.cli.zoo import main

    shutil.copytree(WEIGHTS / "base", tmp_path / "base")
    shutil.copytree(WEIGHTS / "untied", tmp_path / "untied")
    (tmp_path / "untied" / f"model.safetensors{P.SUFFIX}").unlink()
    stale = tmp_path / "base" / f"model.safetensors{P.SUFFIX}"
    stale.write_bytes((WEIGHTS / "instruct" / f"model.safetensors{P.SUFFIX}").read_bytes())
    assert main(["pack", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "base/model.safetensors" in out and "untied/model.safetensors" in out
    assert all(P.is_packed(tmp_path / kind / "model.safetensors") for kind in ("base", "untied"))
    assert main(["pack", "--dir", str(tmp_path)]) == 0
    assert "model.safetensors " not in capsys.readouterr().out


def test_zoo_list_counts_a_packed_model_once(capsys):
    from lazarus_bench.cli.zoo import main

    assert main(["list"]) == 0
    base = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("base "))
    shipped = P.shipped_bytes(WEIGHTS / "base") / 1e6
    assert float(base.split()[5]) == round(shipped, 1) and shipped < 3.2  # the pack and the tokenizer, not the file


def test_zoo_list_titles_each_build_and_counts_its_variants(capsys):
    from lazarus_bench.cli.zoo import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    builds = sorted((WEIGHTS / "builds").glob("s*"), key=lambda d: int(d.name[1:]))
    for d in builds:
        manifest = json.loads((d / "base" / "manifest.json").read_text())
        role = (f"confirmatory under lock {manifest['lock']['version']}" if "lock" in manifest
                else f"development, recipe {manifest['recipe']}")
        assert f"zoo (default) build {d.name} (seed {d.name[1:]}, {role}) at {d}" in out
    seed = json.loads((WEIGHTS / "base" / "manifest.json").read_text())["corpus_seed"]
    assert out[0].startswith(f"zoo (default) development build (seed {seed}; ")
    have = {kind: sum((d / kind / "config.json").is_file() for d in [WEIGHTS, *builds])
            for kind in ("instruct", "untied", "moe")}
    assert out[-1].startswith(f"{len(builds) + 1} builds; base meets its gates in {len(builds) + 1} of "
                              f"{len(builds) + 1}; instruct in {have['instruct']}, untied in {have['untied']}, "
                              f"moe in {have['moe']}. ")
    assert sum(line.split()[1:] == ["absent"] for line in out) == 3 * (len(builds) + 1) - sum(have.values())


def test_zoo_commands_on_a_missing_dir_say_so_in_one_line(tmp_path, capsys):
    from lazarus_bench.cli.zoo import main

    for action in ("list", "pack", "eval"):
        assert main([action, "--dir", str(tmp_path / "nope")]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"lazarus-bench: error: --dir {tmp_path / 'nope'}: no such zoo directory"
