"""A user's family of checkpoints judged as one population (``run -m A -m B ... --population NAME``): several
pretraining seeds of one model, as MultiBERTs or PolyPythia publish, or a recipe's builds given as folders.

Which models form which family is kept beside the records in ``populations.json`` (an output the tool owns); the
report reads it and tags each member's records as a build of the variant ``population:NAME``, so the population
verdict and the per-build tables treat them as draws of one recipe.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from .. import outputs
from ..errors import LazarusError
from ..io import write_text
from .records import Loaded, Record

FILE = "populations.json"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_name(text: str) -> str:
    """A family's name: letters, digits, '.', '_' and '-', at most 64 characters."""
    if not NAME.fullmatch(text):
        raise LazarusError(f"--population {text!r}: a name of letters, digits, '.', '_' or '-' (at most 64), e.g. "
                           "v3-dev")
    return text


def read(report_dir: str | Path) -> dict[str, list[str]]:
    """``{family: [model ids]}`` of a report folder ({} when it has none)."""
    path = Path(report_dir) / FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise LazarusError(f"{path}: not a families file this tool wrote ({e}); move it or remove it") from e
    if not isinstance(data, dict) or not all(isinstance(v, list) and all(isinstance(m, str) for m in v)
                                             for v in data.values()):
        raise LazarusError(f"{path}: expected {{family: [model ids]}}; move it or remove it")
    return data


def add(report_dir: str | Path, name: str, models: list[str], overwrite: bool = False) -> None:
    """Add ``models`` to the family ``name`` in ``report_dir`` (before any claim runs; runs of one seed each build a
    family up): refused when the folder's families file is not the tool's, a model already belongs to another family,
    or no model is named."""
    check_name(name)
    if not models:
        raise LazarusError(f"--population {name}: name the family's models with -m (the zoo's builds are a "
                           "population already)")
    outputs.refuse_foreign(report_dir, [FILE], "--report-dir", overwrite)
    families = read(report_dir)
    for other, members in families.items():
        if other != name and (taken := sorted(set(members) & set(models))):
            raise LazarusError(f"--population {name}: {taken[0]} already belongs to the family {other!r} in "
                               f"{report_dir}; a model is a build of one family")
    families[name] = sorted(set(families.get(name, [])) | set(models))
    Path(report_dir).mkdir(parents=True, exist_ok=True)
    write_text(Path(report_dir) / FILE, json.dumps(families, indent=1, sort_keys=True) + "\n")
    outputs.record(report_dir, [FILE])


def labels(members: list[str]) -> dict[str, str]:
    """Each member's shortest path suffix that no other member shares ('runs/s101/base' -> 's101/base')."""
    parts = {m: m.rstrip("/").split("/") for m in members}
    out = {}
    for m, p in parts.items():
        k = 1
        while k < len(p) and any(o != m and q[-k:] == p[-k:] for o, q in parts.items()):
            k += 1
        out[m] = "/".join(p[-k:])
    return out


def tagged(loaded: Loaded, report_dir: str | Path) -> Loaded:
    """The records with each family member's build set to its family and label (in memory; files unchanged)."""
    families = read(report_dir)
    where = {m: (name, label) for name, members in families.items() for m, label in labels(members).items()}

    def tag(r: Record) -> Record:
        if r.model.id not in where:
            return r
        name, label = where[r.model.id]
        return r.replace(model=replace(r.model, build={**(r.model.build or {}), "population": name, "label": label}))

    return replace(loaded, records=[tag(r) for r in loaded.records], failed=[tag(r) for r in loaded.failed])
