"""Where zoo models live and whether they are intact: resolve ``zoo:NAME`` ids, verify manifests.

Kept free of mlx and of ``models`` so that ``models`` can resolve zoo ids without an import cycle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..cache import default_root
from ..errors import LazarusError
from ..io import sha256_file

MANIFEST = "manifest.json"
REBUILD_COMMAND = "lazarus-bench zoo build"


class ZooIntegrityError(LazarusError):
    """A zoo file is missing or does not match its manifest."""


ZOO_ENV = "LAZARUS_ZOO_DIR"
MICRO_ZOO_ENV = "LAZARUS_MICRO_ZOO_DIR"
RECIPE = "v3"  # the current zoo recipe's tag in every manifest (zoo/recipe.py declares the recipe itself)
DEFAULT_MODELS = ("zoo:base", "zoo:instruct", "zoo:untied", "zoo:moe")  # the main job's models and the slow tier's
PREFIXES = ("zoo:", "zoo-micro:", "replica:")  # ids resolved here: the zoo, the micro zoo, real-checkpoint replicas


def zoo_root(micro: bool = False) -> Path:
    """Where zoo models live: the shipped weights (or $LAZARUS_ZOO_DIR); the micro zoo is built into a cache."""
    if micro:
        default = default_root() / "zoo-micro"
        return Path(os.environ.get(MICRO_ZOO_ENV) or default)
    return Path(os.environ.get(ZOO_ENV) or Path(__file__).parent / "weights")


BUILDS = "builds"  # other builds of a zoo live in <root>/builds/s<SEED>/<kind>, named zoo:<kind>@s<SEED>


def split_build(name: str) -> tuple[str, str | None]:
    """'base@s2' -> ('base', 's2'); 'base' -> ('base', None): the zoo's own (development) build."""
    kind, _, build = name.partition("@")
    if build and not (build.startswith("s") and build[1:].isdigit()):
        raise LazarusError(f"zoo model '{name}': a build is named s<SEED>, e.g. {kind}@s2")
    return kind, build or None


def build_dir(root: Path, seed: int) -> Path:
    """Where the build of ``seed`` lives under a zoo root."""
    return root / BUILDS / f"s{seed}"


def zoo_builds(root: Path) -> dict[str, Path]:
    """Every build under a zoo root: '' (the development build at the root) and 's<SEED>' for the others."""
    found = {"": root} if root.is_dir() else {}
    found.update({d.name: d for d in sorted((root / BUILDS).glob("s*"), key=lambda d: int(d.name[1:] or 0))
                  if d.name[1:].isdigit() and d.is_dir()})
    return found


def with_build(model_id: str, kind: str) -> str:
    """The ``kind`` model of the same zoo build as ``model_id`` ('zoo:base@s2', 'instruct' -> 'zoo:instruct@s2')."""
    prefix, _, name = model_id.rpartition(":")
    _, build = split_build(name)
    return f"{prefix}:{kind}" + (f"@{build}" if build else "")


def default_models(micro: bool = False) -> list[str]:
    """The main job's models: the builds of the current recipe, the root build's four models and each other build's
    base and moe (its instruct model is the base's pair for H06; the claims about other kinds need only those).
    Builds of an older recipe (the shipped zoo's root and s4-s15) stay shipped and run when named with -m."""
    prefix = "zoo-micro:" if micro else "zoo:"
    models = []
    for build, path in zoo_builds(zoo_root(micro)).items():
        if not _of_recipe(path / "base", RECIPE):
            continue
        kinds = [m.removeprefix("zoo:") for m in DEFAULT_MODELS] if not build else [f"{k}@{build}" for k in
                                                                                   ("base", "moe")]
        models += [prefix + kind for kind in kinds if zoo_model_exists(prefix + kind)]
    return models


def _of_recipe(model_dir: Path, recipe: str) -> bool:
    """Whether the model at ``model_dir`` was built by ``recipe`` (its manifest's tag)."""
    try:
        return json.loads((model_dir / MANIFEST).read_text()).get("recipe") == recipe
    except (OSError, ValueError):
        return False


def build_info(model_id: str) -> dict | None:
    """Which build of the zoo a zoo model is: its seed and role. The root build is the development build (criteria
    and controls were tuned on it); another is confirmatory when its manifest says it was built under a frozen lock,
    else the role its manifest names (recipe v3's development seeds), else exploratory.
    None for a model outside the zoo."""
    if not model_id.startswith(("zoo:", "zoo-micro:")):
        return None
    _, build = split_build(model_id.split(":", 1)[1])
    try:
        manifest = json.loads((resolve_zoo(model_id) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    lock = manifest.get("lock")
    role = "development" if build is None else "confirmatory" if lock else manifest.get("role", "exploratory")
    return {"seed": manifest.get("corpus_seed"), "role": role, **({"lock": lock} if lock else {}),
            **_base_weight_decay(resolve_zoo(model_id).parent / "base")}


def _base_weight_decay(base_dir: Path) -> dict:
    """{"weight_decay": w} of the build's base pretraining (``zoo build --weight-decay`` varies it), or {}."""
    try:
        train = json.loads((base_dir / MANIFEST).read_text())["build_config"]["train"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {"weight_decay": train["weight_decay"]} if "weight_decay" in train else {}


def replica_root() -> Path:
    """Where the real-checkpoint replicas (``replica:NAME``) are built: the cache."""
    return default_root() / "replicas"


def _zoo_path(model_id: str) -> tuple[Path, str | None]:
    """Where a zoo or replica id's folder would be (not checked), and its build ('s2') if not the root build."""
    name = model_id.split(":", 1)[1] if ":" in model_id else model_id
    if model_id.startswith("replica:"):
        return replica_root() / name, None
    kind, seed = split_build(name)
    root = zoo_root(model_id.startswith("zoo-micro:"))
    return (build_dir(root, int(seed[1:])) if seed else root) / kind, seed


def zoo_model_exists(model_id: str) -> bool:
    """Whether a zoo id names a built model (not verified)."""
    return (_zoo_path(model_id)[0] / "config.json").is_file()


def resolve_zoo(model_id: str) -> Path:
    """Directory of ``zoo:NAME``, ``zoo-micro:NAME`` or ``replica:NAME`` (a bare NAME means ``zoo:``), checked
    against its manifest."""
    micro = model_id.startswith("zoo-micro:")
    path, seed = _zoo_path(model_id)
    root = path.parent
    if not (path / "config.json").is_file():
        known = sorted(p.name for p in root.glob("*") if (p / "config.json").is_file()) if root.is_dir() else []
        build = ("lazarus-bench zoo replicas" if model_id.startswith("replica:")
                 else "lazarus-bench zoo build" + (" --size micro" if micro else "")
                 + (f" --builds {seed[1:]}" if seed else ""))
        raise LazarusError(
            f"zoo model '{model_id}' not found in {root} (available: {', '.join(known) or 'none'}); "
            f"build it with: {build}"
        )
    verify(path)
    return path


def repair_hint(model_dir: str | os.PathLike) -> str:
    """How to repair this particular zoo directory: the shipped weights are restored, a built one is rebuilt in
    place (a plain ``zoo build`` would write to the cache and leave the named folder broken), a copied or renamed
    one is restored from its source (a rebuild writes ``<parent>/<kind>``, not the named folder)."""
    d = Path(model_dir).resolve()
    if d.parent == (Path(__file__).parent / "weights").resolve():
        return "restore the shipped weights: `git checkout -- lazarus_bench/zoo/weights` (or reinstall lazarus_bench)"
    size = "micro" if d.parent == zoo_root(micro=True).resolve() else None
    try:
        man = json.loads((d / MANIFEST).read_text())
        kind, size = man["kind"], size or man.get("size", "default")
    except (OSError, ValueError, KeyError, TypeError):
        kind = d.name if d.name in ("base", "instruct", "untied", "moe") else None
    if kind == "replica":
        return "rebuild it: `lazarus-bench zoo replicas --force`"
    if kind is None or d.name != kind:  # a copied or renamed folder: a rebuild would write <parent>/<kind>
        return "restore it from where it came from"
    return (f"rebuild it in place: `{REBUILD_COMMAND} --dir {d.parent} --models {kind} --force"
            + (" --size micro`" if size == "micro" else "`"))


def verify(model_dir: str | os.PathLike) -> dict:
    """Check every file of a zoo model against its manifest; return the manifest.

    Raises :class:`ZooIntegrityError` with a one-line message naming the file and how to repair that directory on
    a missing manifest, a missing file or a sha256 mismatch."""
    d = Path(model_dir)
    man_path = d / MANIFEST
    if not man_path.is_file():
        raise ZooIntegrityError(f"zoo model {d}: {MANIFEST} is missing; {repair_hint(d)}")
    try:
        man = json.loads(man_path.read_text())
        files = man["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise ZooIntegrityError(f"zoo model {d}: {MANIFEST} is unreadable ({e}); {repair_hint(d)}") from None
    for name, digest in sorted(files.items()):
        p = d / name
        if not p.is_file():
            raise ZooIntegrityError(f"zoo model {d}: file {name} is missing; {repair_hint(d)}")
        if sha256_file(p) != digest:
            raise ZooIntegrityError(
                f"zoo model {d}: file {name} does not match its sha256 in {MANIFEST} (corrupt or modified); "
                f"{repair_hint(d)}"
            )
    return man
