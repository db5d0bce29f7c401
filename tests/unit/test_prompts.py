"""Prompt sets: counts, arithmetic recomputed from the text, labels vs operators, provenance, loader API."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from importlib import resources

import pytest

from lazarus_bench import prompts as P
from lazarus_bench.errors import LazarusError

# Independent of the package: operator surface -> label, and how to compute it.
OP_LABEL = {
    "*": "multiply", "x": "multiply", "times": "multiply", "multiplied by": "multiply",
    "+": "add", "plus": "add",
    "-": "subtract", "minus": "subtract",
    "/": "divide", "divided by": "divide",
}
CALC = {"multiply": lambda a, b: a * b, "add": lambda a, b: a + b, "subtract": lambda a, b: a - b}
_OPS_RE = "|".join(re.escape(o) for o in sorted(OP_LABEL, key=len, reverse=True))
_NUM = r"-?\d+"
ARITH_RE = re.compile(
    rf"^(?:What is |Calculate: |Calculate |Find |Compute )?(?P<a>{_NUM}) (?P<op>{_OPS_RE}) (?P<b>{_NUM})(?: =|\?)? ?$"
)
_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                        "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i >= 2}
SEMANTIC_RE = re.compile(rf"^(?P<a>[a-z ]+?) (?P<op>{_OPS_RE}) (?P<b>[a-z ]+?) = $")


def words_to_int(s: str) -> int:
    total = 0
    for w in s.split():
        total += _TENS[w] if w in _TENS else _UNITS[w]
    return total


def parse(text: str) -> tuple[int, str, int]:
    """(a, label, b) from a prompt text, without using the package."""
    m = ARITH_RE.match(text)
    if m:
        return int(m["a"]), OP_LABEL[m["op"]], int(m["b"])
    m = SEMANTIC_RE.match(text)
    assert m, f"unparseable prompt {text!r}"
    return words_to_int(m["a"]), OP_LABEL[m["op"]], words_to_int(m["b"])


def evaluate(a: int, label: str, b: int) -> int:
    if label == "divide":
        assert b != 0 and a % b == 0, f"{a} / {b} is not exact"
        return a // b
    return CALC[label](a, b)


ALL_SETS = P.available()


def test_available_sets():
    assert set(ALL_SETS) == {"symbol", "word", "seed000_tests", "seed001_accuracy", "dual_reward_eval",
                             "grpo_collapse_lens", "two_stage_eval"}


@pytest.mark.parametrize(
    "name,n", [("symbol", 24), ("word", 64), ("seed000_tests", 10), ("seed001_accuracy", 7),
               ("dual_reward_eval", 8), ("grpo_collapse_lens", 6), ("two_stage_eval", 8)],
)
def test_counts(name, n):
    assert len(P.load_set(name)) == n


def test_split_and_category_counts():
    assert len(P.symbol_set("train")) == 16 and len(P.symbol_set("test")) == 8
    assert Counter(P.symbol_set("train").labels()) == {op: 4 for op in P.OPERATIONS}
    assert Counter(P.symbol_set("test").labels()) == {op: 2 for op in P.OPERATIONS}
    assert len(P.two_stage_eval("symbolic")) == 4 and len(P.two_stage_eval("semantic")) == 4
    assert len(P.word_set(original_only=True)) == 16
    assert Counter(P.dual_reward_eval().labels()) == {op: 2 for op in P.OPERATIONS}


@pytest.mark.parametrize("name", ALL_SETS)
def test_answers_operands_and_labels_recomputed_from_text(name):
    for it in P.load_set(name):
        a, label, b = parse(it.text)
        assert (a, b) == (it.a, it.b), it
        assert label == it.label, f"label {it.label!r} does not match operator in {it.text!r}"
        assert OP_LABEL[it.op] == it.label, it
        assert evaluate(a, label, b) == it.answer, it
        assert it.item == f"{a},{b}"


@pytest.mark.parametrize("name", ALL_SETS)
def test_ids_unique_and_texts_unique(name):
    ps = P.load_set(name)
    assert len({it.id for it in ps}) == len(ps)
    assert len(set(ps.texts())) == len(ps)


def test_symbol_exact_texts():
    train = {
        "multiply": ["7 * 8 =", "12 * 5 =", "3 * 9 =", "6 * 7 ="],
        "add": ["23 + 45 =", "17 + 38 =", "11 + 22 =", "5 + 9 ="],
        "subtract": ["50 - 23 =", "89 - 34 =", "77 - 11 =", "40 - 15 ="],
        "divide": ["48 / 6 =", "81 / 9 =", "36 / 4 =", "24 / 3 ="],
    }
    tr = P.symbol_set("train")
    for op, texts in train.items():
        assert tr.where(label=op).texts() == texts
        assert [it.pair for it in tr.where(label=op)] == [0, 1, 2, 3]
    assert P.symbol_set("test").texts() == ["11 * 12 =", "6 * 9 =", "13 + 14 =", "25 + 17 =",
                                            "15 - 6 =", "20 - 8 =", "12 / 4 =", "15 / 3 ="]


def test_symbol_train_test_disjoint():
    tr, te = P.symbol_set("train"), P.symbol_set("test")
    assert not set(tr.texts()) & set(te.texts())
    assert not {it.item for it in tr} & {it.item for it in te}


def test_symbol_trailing_space_option():
    assert all(not t.endswith(" ") for t in P.symbol_set().texts())
    spaced = P.symbol_set(trailing_space=True).texts()
    assert all(t.endswith(" = ") and not t.endswith("  ") for t in spaced)
    assert [t.rstrip() for t in spaced] == P.symbol_set().texts()
    assert P.load_set("seed000_tests", trailing_space=False).texts()[0] == "7 * 8 ="
    assert P.load_set("symbol") is P.load_set("symbol")  # cached


def test_word_set_fully_crossed_once():
    ws = P.word_set()
    keys = Counter((it.template, it.item, it.label) for it in ws)
    assert all(c == 1 for c in keys.values())
    pairs = {(it.item, it.label) for it in P.symbol_set("train")}
    assert set(keys) == {(t, item, lab) for t in range(4) for item, lab in pairs}
    assert Counter(it.template for it in ws) == {t: 16 for t in range(4)}
    assert Counter(it.item for it in ws) == {item: 4 for item, _ in pairs}


def test_word_set_templates_and_no_symbols():
    expected_prefix = {0: "What is ", 1: "Calculate ", 2: "Find ", 3: "Compute "}
    for it in P.word_set():
        assert it.text.startswith(expected_prefix[it.template])
        assert it.text.endswith("?") == (it.template == 0)
        assert not re.search(r"[*+/=]| - ", it.text), it.text
    assert "What is 7 times 8?" in P.word_set().texts()
    assert "Calculate 81 divided by 9" in P.word_set().texts()


def test_word_set_original_subset_matches_committed_run():
    # chuk-mlx results/granite_word_classifier.json: template k paired with the k-th operand pair per class
    orig = P.word_set(original_only=True).texts()
    assert orig == ["What is 7 times 8?", "Calculate 12 times 5", "Find 3 times 9", "Compute 6 times 7",
                    "What is 23 plus 45?", "Calculate 17 plus 38", "Find 11 plus 22", "Compute 5 plus 9",
                    "What is 50 minus 23?", "Calculate 89 minus 34", "Find 77 minus 11", "Compute 40 minus 15",
                    "What is 48 divided by 6?", "Calculate 81 divided by 9", "Find 36 divided by 4",
                    "Compute 24 divided by 3"]


def test_word_set_generated_not_stored_literally():
    raw = json.loads(resources.files("lazarus_bench").joinpath("data", "prompts.json").read_text("utf-8"))
    assert "items" not in raw["sets"]["word"]
    assert len(raw["sets"]["word"]["templates"]) == 4


def test_seed000_tests():
    ps = P.seed000_tests()
    assert ps.texts() == ["7 * 8 = ", "12 * 5 = ", "9 * 9 = ", "45 * 45 = ", "23 + 45 = ", "17 + 38 = ",
                          "55 + 27 = ", "89 - 34 = ", "65 - 28 = ", "100 - 43 = "]
    assert ps.answers() == [56, 60, 81, 2025, 68, 55, 82, 55, 37, 57]
    assert [it.text for it in ps if it.known_failure] == ["45 * 45 = "]


def test_dual_reward_eval_and_collapse_prompts():
    dr = P.dual_reward_eval()
    assert dr.texts() == ["7 * 8 = ", "12 * 5 = ", "23 + 45 = ", "17 + 38 = ", "50 - 23 = ", "89 - 34 = ",
                          "48 / 6 = ", "81 / 9 = "]
    assert dr.labels() == ["multiply"] * 2 + ["add"] * 2 + ["subtract"] * 2 + ["divide"] * 2
    assert {it.text for it in dr if "train_leak" in it.flags} == {"12 * 5 = ", "48 / 6 = ", "81 / 9 = "}
    col = P.grpo_collapse_lens()
    assert col.texts() == dr.texts()[:6]
    assert set(col.labels()) == {"multiply", "add", "subtract"}


def test_two_stage_eval():
    sym, sem = P.two_stage_eval("symbolic"), P.two_stage_eval("semantic")
    assert sym.texts() == ["7 * 8 = ", "12 * 5 = ", "23 + 45 = ", "89 - 34 = "]
    assert sem.texts() == ["seven times eight = ", "twelve multiplied by five = ",
                           "twenty three plus forty five = ", "eighty nine minus thirty four = "]
    assert sym.answers() == sem.answers() == [56, 60, 68, 55]
    assert sym.labels() == sem.labels()


def test_grpo_spec_ranges_and_sampling():
    g = P.grpo_spec()
    assert g.template == "Calculate: {a} {op} {b} = " and g.batch_size == 32
    ranges = {lab: (op, ra, rb) for lab, op, ra, rb in g.operations}
    assert ranges == {"multiply": ("*", (2, 12), (2, 12)), "add": ("+", (10, 99), (10, 99)),
                      "subtract": ("-", (10, 99), (10, 99))}
    s = g.sample(seed=3)
    assert len(s) == 32 and s.texts() == g.sample(seed=3).texts() and s.texts() != g.sample(seed=4).texts()
    big = g.sample(n=600, seed=0)
    assert set(big.labels()) == {"multiply", "add", "subtract"}
    assert any(it.answer < 0 for it in big)  # negatives allowed
    for it in big:
        _, ra, rb = ranges[it.label]
        assert ra[0] <= it.a <= ra[1] and rb[0] <= it.b <= rb[1]
        a, label, b = parse(it.text)
        assert (a, label, b, evaluate(a, label, b)) == (it.a, it.label, it.b, it.answer)


def test_vocabularies():
    assert set(P.vocabularies()) == {"seed000", "seed003", "dual_reward", "seed001_remain"}
    v0 = P.task_vocabulary("seed000")
    assert dict(v0.classes) == {
        "multiplication": ("multiply", "times", "product", "*", "\u00d7"),
        "addition": ("add", "plus", "sum", "+"),
        "subtraction": ("subtract", "minus", "difference", "-"),
    }
    assert v0.for_label("add") == ("add", "plus", "sum", "+")
    v3 = P.task_vocabulary("seed003")
    assert dict(v3.classes) == {"multiply": ("multiply", "times", "product", "*"),
                                "add": ("add", "plus", "sum", "+"),
                                "subtract": ("subtract", "minus", "difference", "-")}
    assert P.operation_words() == ("multiply", "add", "subtract", "divide")
    assert P.operation_words(include_divide=False) == ("multiply", "add", "subtract")
    fam = P.remain_family()
    assert {"remaining", "remainder", "remain", "reste", "Remaining", "Remain"} <= set(fam)
    obs = P.task_vocabulary("seed001_remain").observed_tokens
    assert all(t.strip() in fam for t in obs) and " remaining" in obs
    # every vocabulary's labels are operation labels
    for name in P.vocabularies():
        assert set(P.task_vocabulary(name).labels.values()) <= set(P.OPERATIONS)


@pytest.mark.parametrize("name", ALL_SETS)
def test_every_set_has_provenance(name):
    ps = P.load_set(name)
    src = ps.source
    assert src.seed in {"000", "001", "002", "003"}
    assert re.fullmatch(rf"shared/seeds/{src.seed}_[0-9a-f]{{16}}\.txt", src.seed_file)
    assert src.section and src.origin and src.reference.startswith("seed-methods.md section")
    assert ps.note
    assert src.seed_file in src.cite()


def test_grpo_and_vocab_provenance():
    assert "arithmetic_rewards.py" in P.grpo_spec().source.origin
    for name in P.vocabularies():
        assert P.task_vocabulary(name).source.seed_file.startswith("shared/seeds/")


def test_seed_files_exist_if_shared_present():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2].parent / "shared"  # the checkout's ../shared, as CI lays it out
    if not root.is_dir():
        pytest.skip(f"the seed writeups are read from {root}: put the project's shared/ folder beside the checkout")
    files = {P.load_set(n).source.seed_file for n in ALL_SETS}
    files |= {P.task_vocabulary(n).source.seed_file for n in P.vocabularies()}
    for f in files:
        assert (root / f.removeprefix("shared/")).is_file(), f


def test_unknown_names_raise_keyerror_listing_available():
    with pytest.raises(KeyError) as ei:
        P.load_set("nope")
    msg = str(ei.value)
    assert "nope" in msg and all(n in msg for n in ALL_SETS)
    assert isinstance(ei.value, LazarusError)
    with pytest.raises(KeyError, match="seed000"):
        P.task_vocabulary("nope")
    with pytest.raises(ValueError):
        P.symbol_set("valid")
    with pytest.raises(TypeError):
        P.symbol_set().where(nope=1)


def test_items_are_immutable():
    it = P.symbol_set()[0]
    with pytest.raises(Exception):
        it.text = "x"  # type: ignore[misc]
    assert isinstance(P.symbol_set().items, tuple)


def test_eval_sets_disjoint_from_symbol_probe_test_split():
    # held-out probe prompts never appear in any other evaluation list
    held = {t.rstrip() for t in P.symbol_set("test").texts()}
    for name in ALL_SETS:
        if name == "symbol":
            continue
        assert not held & {t.rstrip() for t in P.load_set(name).texts()}, name


def test_all_parses_cover_all_operation_labels():
    labels = set(itertools.chain.from_iterable(P.load_set(n).labels() for n in ALL_SETS))
    assert labels == set(P.OPERATIONS)


def test_deconfounded_word_set_balances_pairs_and_templates():
    ds = P.word_set_deconfounded()
    assert len(ds) == 64
    by_class = {}
    for it in ds:
        by_class.setdefault(it.label, set()).add((it.item, it.template))
        assert not it.text.endswith(("?", ".", "!"))
        assert eval(f"{it.a} {it.op} {it.b}") == it.answer  # noqa: S307 (our own arithmetic)
    assert len({frozenset(v) for v in by_class.values()}) == 1, "every class has the same pairs x templates"
    assert len(by_class) == 4
    first_words = {label: {it.text.split()[0] for it in ds if it.label == label} for label in by_class}
    assert len({frozenset(v) for v in first_words.values()}) == 1


def test_the_extended_symbol_set_keeps_the_writeups_prompts_and_adds_exact_ones_of_its_form():
    """H02's 64 prompts (CLAIMS.md revision 4): the writeup's 16 first and unchanged, then 12 generated operand pairs
    per class of the form '{a} {op} {b} =', each answer exact (checked with Python's own arithmetic), no prompt twice
    and none from the held-out test split; pair j of every class is cluster j."""
    extended, writeup = P.symbol_set_extended(16), P.symbol_set("train")
    assert len(extended) == 64 and extended.items[:16] == writeup.items
    assert Counter(it.label for it in extended) == {"multiply": 16, "add": 16, "subtract": 16, "divide": 16}
    assert all(sorted(it.pair for it in extended if it.label == w) == list(range(16)) for w in P.operation_words())
    texts = [it.text for it in extended]
    assert len(set(texts)) == 64 and not set(texts) & {it.text for it in P.symbol_set("test")}
    ops = {"*": lambda a, b: a * b, "+": lambda a, b: a + b, "-": lambda a, b: a - b, "/": lambda a, b: a / b}
    for it in extended.items[16:]:
        a, op, b, eq = it.text.split(" ")
        assert eq == "=" and (int(a), int(b)) == (it.a, it.b) and ops[op](it.a, it.b) == it.answer >= 0, it.text
        assert not it.in_original and it.split == "train"
    assert P.symbol_set_extended(16) == extended and P.symbol_set_extended(16, seed=3) != extended
    with pytest.raises(LazarusError, match="would drop"):
        P.symbol_set_extended(3)


@pytest.mark.parametrize("seed, n", [(-1, 8), (-1, 96), (7, 96), (-1, 400)])
def test_the_extended_dual_reward_set_adds_distinct_true_prompts_of_the_form(seed, n):
    """The writeup's 8 (or 8 drawn by the seed) first, then n - 8 more, as many per operation, none repeated; every
    answer recomputed from the text; the corrected dual-reward training never sees one of them."""
    from lazarus_bench.training.dual_reward import DualRewardConfig, training_examples

    s = P.dual_reward_extended(seed, n)
    first = P.dual_reward_eval() if seed < 0 else P.resampled_dual_reward_eval(seed)
    assert s.texts()[:8] == first.texts() and len(s) == n == len(set(s.texts()))
    assert Counter(s.labels()) == {label: n // 4 for label in ("multiply", "add", "subtract", "divide")}
    for it in s:
        a, op, b = re.fullmatch(r"(\d+) ([-+*/]) (\d+) = ", it.text).groups()
        assert OP_LABEL[op] == it.label and it.answer == eval(f"{a} {op} {b}".replace("/", "//"))
    if (seed, n) == (-1, 96):
        train = training_examples(DualRewardConfig.for_protocol("corrected", n_train=2000, data_seed=42))
        assert not {e.prompt.strip() for e in train} & {t.strip() for t in s.texts()}
    with pytest.raises(ValueError, match="multiple of 4"):
        P.dual_reward_extended(seed, n + 2)
