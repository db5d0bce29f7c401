"""The package's import graph: no cycles (function-local imports included) and imports only point downward.

Layers, top to bottom: cli -> suite, bench -> claims -> harness, zoo builder -> training, analysis, stats -> models,
prompts, tiny -> io, cache, runinfo, zoo registry (the tokenization audit sits with analysis, the replicas with
the zoo builder). A module may import its own layer or any layer below.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "lazarus_bench"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

LAYERS = {
    7: ("cli",),
    6: ("suite", "bench"),
    5: ("claims",),
    4: ("harness", "zoo.build", "zoo.pretrain", "zoo.derive", "zoo.evaluate", "zoo.replicas", "zoo.recipe",
        "zoo.fitness"),
    3: ("training", "analysis", "stats", "tokenization"),
    2: ("models", "prompts", "user_prompts", "tiny", "hf_tokenizer"),
    1: ("cache", "runinfo", "zoo.registry", "zoo.corpus", "zoo.tokenizer", "zoo", "training.textcls"),
    0: ("io", "errors", "blas", ""),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The layer of a package module: the longest matching prefix in LAYERS wins."""
    rel = module[len(PACKAGE) + 1:] if module != PACKAGE else ""
    best, rank = -1, None
    for level, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (rel == prefix or rel.startswith(prefix + ".") or prefix == "") and len(prefix) > best:
                best, rank = len(prefix), level
    assert rank is not None, module
    return rank


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Package modules imported anywhere in the file (top level or inside functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: imports_of(path, set(files)) for name, path in files.items()}


def test_imports_point_downward(graph):
    upward = [f"{a} ({layer(a)}) imports {b} ({layer(b)})" for a, targets in graph.items() for b in targets
              if layer(b) > layer(a)]
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles(graph):
    """Tarjan's strongly connected components: every component must be a single module."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_checker_sees_a_function_local_cycle(tmp_path):
    """The graph builder must see imports inside functions, or hidden cycles would pass."""
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text("from . import a\n")
    modules = {f"{PACKAGE}.a", f"{PACKAGE}.b"}
    global ROOT
    saved, ROOT = ROOT, pkg
    try:
        assert imports_of(pkg / "a.py", modules) == {f"{PACKAGE}.b"}
        assert imports_of(pkg / "b.py", modules) == {f"{PACKAGE}.a"}
    finally:
        ROOT = saved


def test_no_module_is_too_long():
    """About 600 lines at most, so a module keeps one job."""
    long = {module_name(p): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 620}
    assert not long, long


def test_one_tokenizer_accessor():
    """mlx-lm's wrapped tokenizer is unwrapped in one place, ``ModelHandle.hf_tokenizer``. H01's measure keeps its
    own spelling: its source is hashed into the frozen lock, and a refactor is no reason for an amendment."""
    uses = sorted(module_name(p) for p in ROOT.rglob("*.py") if '"_tokenizer"' in p.read_text())
    assert uses == [f"{PACKAGE}.claims.h01_lens_op_words", f"{PACKAGE}.models"], uses


VERDICTS = {"SUPPORTED", "REFUTED", "INCONCLUSIVE", "NOT_TESTABLE"}


def verdict_assignments(source: str) -> list[int]:
    """Lines where a ``Verdict.X`` literal becomes a result: assigned, returned, or passed as ``verdict=``. Reading one
    (a comparison) and declaring a control's expected answer (an argument of a ``*control``/``Control`` call) are
    not deciding."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Verdict"
                and node.attr in VERDICTS):
            continue
        child, parent = node, parents.get(node)
        while parent is not None and not isinstance(parent, ast.stmt):
            if isinstance(parent, ast.Compare):
                break
            if isinstance(parent, ast.Call) and "control" in ast.unparse(parent.func).lower():
                break
            if isinstance(parent, ast.keyword) and parent.arg == "verdict":
                found.append(node.lineno)
                break
            child, parent = parent, parents.get(parent)
        else:
            if isinstance(parent, (ast.Assign, ast.AnnAssign, ast.Return)) and child is not getattr(parent, "targets",
                                                                                                      None):
                found.append(node.lineno)
    return found


def test_verdicts_are_decided_only_in_stats():
    """No claim, runner or report writes a verdict: each returns parts decided by their tests, and
    ``stats.final_verdict`` / ``stats.combine`` decide (CONTRIBUTING: the combining logic is written once)."""
    offenders = {str(path.relative_to(ROOT)): lines for path in sorted(ROOT.rglob("*.py"))
                 if path.relative_to(ROOT).parts[0] != "stats"
                 for lines in [verdict_assignments(path.read_text())] if lines}
    assert offenders == {}


def test_the_verdict_checker_sees_each_way_of_writing_one():
    written = ("v = Verdict.REFUTED\n", "def f():\n    return Verdict.SUPPORTED\n",
               "s = replace(s, verdict=Verdict.INCONCLUSIVE)\n", "v = Verdict.SUPPORTED if ok else Verdict.REFUTED\n",
               "x: Verdict = Verdict.NOT_TESTABLE\n")
    for source in written:
        assert verdict_assignments(source), source
    read = ("ok = s.verdict == Verdict.REFUTED\n", "controls = (random_init_control(Verdict.REFUTED),)\n",
            "c = Control('n', 'negative', '', build, Verdict.SUPPORTED)\n", "if v != Verdict.SUPPORTED:\n    pass\n")
    for source in read:
        assert not verdict_assignments(source), source


MAX_MEASURE_LINES = 80


def test_every_measure_reads_at_a_glance():
    """A claim's ``measure_*`` function is at most 80 lines, ``def`` to last line: it reads as the steps of the
    measurement, and each step (the fits, the parts, the details, the sentence) is a named helper beside it."""
    long = {f"{path.name}:{node.name}": node.end_lineno - node.lineno + 1
            for path in sorted((ROOT / "claims").glob("*.py")) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("measure_")
            and node.end_lineno - node.lineno + 1 > MAX_MEASURE_LINES}
    assert not long, long


MAX_COMPLEXITY = 12
COMPLEX = {
    # in the zoo recipe's hash (zoo.recipe.RECIPE_CODE): splitting it would make a new recipe and orphan the shipped
    # builds
    ("zoo/pretrain.py", "train"),
}


def test_no_function_is_more_complex_than_its_peers():
    """ruff's McCabe complexity (C901) is at most 12 for every function of the package but a declared few
    (``COMPLEX``): ``zoo.pretrain.train``, because its module is in the zoo recipe's hash (``zoo.recipe.RECIPE_CODE``),
    so splitting it would make a new recipe and orphan the shipped builds. The list is exact: a function split below
    the bound must leave it."""
    pytest.importorskip("ruff")
    found = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "C901", "--config",
                            f"lint.mccabe.max-complexity={MAX_COMPLEXITY}", "--output-format", "json", "--exit-zero",
                            str(ROOT)], cwd=ROOT.parent, capture_output=True, text=True, check=True).stdout
    over = {}
    for hit in json.loads(found):
        name, score = re.fullmatch(r"`(.+)` is too complex \((\d+) > \d+\)", hit["message"]).groups()
        over[(Path(hit["filename"]).resolve().relative_to(ROOT).as_posix(), name)] = int(score)
    assert not set(over) - COMPLEX, {k: v for k, v in over.items() if k not in COMPLEX}
    assert not COMPLEX - set(over), f"now within {MAX_COMPLEXITY}, drop from COMPLEX: {sorted(COMPLEX - set(over))}"
