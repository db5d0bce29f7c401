"""Prompt sets, prompt generators and task vocabularies from the seed writeups (package data, with provenance).

Data lives in ``lazarus_bench/data/prompts.json``; every set carries its seed file, section and origin path.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from .errors import LazarusError

__all__ = [
    "GrpoSpec",
    "PromptItem",
    "PromptSet",
    "Source",
    "TaskVocabulary",
    "UnknownNameError",
    "available",
    "dual_reward_eval",
    "grpo_collapse_lens",
    "grpo_spec",
    "load_set",
    "operation_words",
    "remain_family",
    "seed000_tests",
    "seed001_accuracy",
    "symbol_set",
    "task_vocabulary",
    "two_stage_eval",
    "vocabularies",
    "word_set",
]

OPERATIONS = ("multiply", "add", "subtract", "divide")
_OP_SURFACES = ("multiplied by", "divided by", "times", "plus", "minus", "*", "+", "-", "/", "x")


class UnknownNameError(KeyError, LazarusError):
    """An unknown prompt-set or vocabulary name; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Source:
    """Where a set comes from: seed id, seed file, section, origin path(s) and the seed-methods section."""

    seed: str
    seed_file: str
    section: str
    origin: str
    reference: str

    def cite(self) -> str:
        """One-line citation."""
        return f"seed {self.seed} ({self.seed_file}, {self.section}); origin {self.origin}; {self.reference}"


@dataclass(frozen=True)
class PromptItem:
    """One prompt: text, operation label, operands, expected answer, and grouping keys for CV/control tasks.

    ``template``: surface-template index; ``pair``: operand pair's position within its class (and split);
    ``item``: operand-pair key ``"a,b"`` (word type for Hewitt-Liang control tasks).
    """

    id: str
    text: str
    label: str
    a: int
    b: int
    answer: int
    op: str
    template: int = 0
    pair: int | None = None
    item: str = ""
    split: str | None = None
    category: str | None = None
    in_original: bool = True
    flags: tuple[str, ...] = ()
    note: str | None = None

    @property
    def known_failure(self) -> bool:
        """True when a writeup reports the model answering this prompt wrongly."""
        return "known_failure" in self.flags


@dataclass(frozen=True)
class PromptSet:
    """A named, ordered, immutable collection of prompts with its source and a note."""

    name: str
    items: tuple[PromptItem, ...]
    source: Source
    note: str = ""

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[PromptItem]:
        return iter(self.items)

    def __getitem__(self, i: int) -> PromptItem:
        return self.items[i]

    def texts(self) -> list[str]:
        """Prompt strings in order."""
        return [it.text for it in self.items]

    def labels(self) -> list[str]:
        """Operation labels in order."""
        return [it.label for it in self.items]

    def answers(self) -> list[int]:
        """Expected integer answers in order."""
        return [it.answer for it in self.items]

    def where(self, **fields: Any) -> PromptSet:
        """Subset whose items equal every given field (e.g. ``split="test"``, ``label="add"``)."""
        bad = [k for k in fields if k not in PromptItem.__dataclass_fields__]
        if bad:
            raise TypeError(f"unknown PromptItem field(s): {', '.join(bad)}")
        keep = tuple(it for it in self.items if all(getattr(it, k) == v for k, v in fields.items()))
        return replace(self, items=keep)

    def with_trailing_space(self, flag: bool) -> PromptSet:
        """Copy with exactly one trailing space on every text (``True``) or none (``False``)."""
        items = tuple(replace(it, text=it.text.rstrip(" ") + (" " if flag else "")) for it in self.items)
        return replace(self, items=items)


@dataclass(frozen=True)
class TaskVocabulary:
    """Task words per class (seed class names), the class -> operation-label map, and the matching rule."""

    name: str
    classes: Mapping[str, tuple[str, ...]]
    labels: Mapping[str, str]
    matching: str
    source: Source
    note: str = ""
    observed_tokens: tuple[str, ...] = ()

    def words(self) -> tuple[str, ...]:
        """All words of all classes, in order."""
        return tuple(w for ws in self.classes.values() for w in ws)

    def for_label(self, label: str) -> tuple[str, ...]:
        """Words of the class whose operation label is ``label`` (e.g. ``"multiply"``)."""
        for cls, lab in self.labels.items():
            if lab == label:
                return self.classes[cls]
        raise UnknownNameError(
            f"vocabulary {self.name!r} has no class for label {label!r}; labels: {sorted(self.labels.values())}")


@dataclass(frozen=True)
class GrpoSpec:
    """Seed 002's GRPO prompt generator: template, per-operation operand ranges (inclusive), batch size."""

    template: str
    operations: tuple[tuple[str, str, tuple[int, int], tuple[int, int]], ...]  # (label, op, a-range, b-range)
    batch_size: int
    source: Source
    note: str = ""

    def sample(self, n: int | None = None, seed: int = 0) -> PromptSet:
        """Draw ``n`` (default ``batch_size``) prompts like ``arithmetic_rewards.get_prompts``, seeded."""
        rng = random.Random(seed)
        items = []
        for i in range(self.batch_size if n is None else n):
            label, op, (alo, ahi), (blo, bhi) = rng.choice(self.operations)
            a, b = rng.randint(alo, ahi), rng.randint(blo, bhi)
            items.append(
                PromptItem(
                    id=f"grpo/{i}",
                    text=self.template.format(a=a, op=op, b=b),
                    label=label,
                    a=a,
                    b=b,
                    answer=_apply(label, a, b),
                    op=op,
                    item=f"{a},{b}",
                )
            )
        return PromptSet(name=f"grpo(seed={seed})", items=tuple(items), source=self.source, note=self.note)


def _apply(label: str, a: int, b: int) -> int:
    if label == "multiply":
        return a * b
    if label == "add":
        return a + b
    if label == "subtract":
        return a - b
    if label == "divide":
        if b == 0 or a % b:
            raise ValueError(f"{a} / {b} is not an exact integer division")
        return a // b
    raise ValueError(f"unknown operation label {label!r}")


@lru_cache(maxsize=1)
def _raw() -> Mapping[str, Any]:
    text = resources.files("lazarus_bench").joinpath("data", "prompts.json").read_text(encoding="utf-8")
    return json.loads(text)


def _source(d: Mapping[str, str]) -> Source:
    return Source(**{k: d[k] for k in ("seed", "seed_file", "section", "origin", "reference")})


def available() -> tuple[str, ...]:
    """Names accepted by :func:`load_set`."""
    return tuple(_raw()["sets"])


def vocabularies() -> tuple[str, ...]:
    """Names accepted by :func:`task_vocabulary`."""
    return tuple(_raw()["vocabularies"])


def _literal_items(name: str, spec: Mapping[str, Any]) -> tuple[PromptItem, ...]:
    out = []
    for d in spec["items"]:
        label = d["label"]
        op = next(w for w in _OP_SURFACES if f" {w} " in d["text"])
        split = d.get("split")
        tag = "/".join(p for p in (split, label, f"{d['a']},{d['b']}", d.get("category")) if p)
        out.append(
            PromptItem(
                id=f"{name}/{tag}",
                text=d["text"],
                label=label,
                a=d["a"],
                b=d["b"],
                answer=d["answer"],
                op=op,
                template=0,
                pair=d.get("pair"),
                item=f"{d['a']},{d['b']}",
                split=split,
                category=d.get("category"),
                flags=tuple(d.get("flags", ())),
                note=d.get("note"),
            )
        )
    return tuple(out)


def _word_items(name: str, spec: Mapping[str, Any]) -> tuple[PromptItem, ...]:
    src = _build(spec["pairs_from"]["set"]).where(split=spec["pairs_from"]["split"])
    out = []
    for label in OPERATIONS:
        word = spec["op_words"][label]
        pairs = [it for it in src if it.label == label]
        for t, tmpl in enumerate(spec["templates"]):
            for p in pairs:
                out.append(
                    PromptItem(
                        id=f"{name}/{label}/t{t}/{p.a},{p.b}",
                        text=tmpl.format(a=p.a, op=word, b=p.b),
                        label=label,
                        a=p.a,
                        b=p.b,
                        answer=p.answer,
                        op=word,
                        template=t,
                        pair=p.pair,
                        item=p.item,
                        in_original=(t == p.pair),
                    )
                )
    return tuple(out)


@lru_cache(maxsize=None)
def _build(name: str) -> PromptSet:
    sets = _raw()["sets"]
    if name not in sets:
        raise UnknownNameError(f"unknown prompt set {name!r}; available: {', '.join(sets)}")
    spec = sets[name]
    items = _word_items(name, spec) if spec["kind"] == "generated" else _literal_items(name, spec)
    return PromptSet(name=name, items=items, source=_source(spec["source"]), note=spec.get("note", ""))


def load_set(name: str, *, trailing_space: bool | None = None) -> PromptSet:
    """Load a prompt set by name; ``trailing_space`` None keeps the stored texts, True/False forces one/none."""
    ps = _build(name)
    return ps if trailing_space is None else ps.with_trailing_space(trailing_space)


def symbol_set(split: str | None = None, *, trailing_space: bool = False) -> PromptSet:
    """Seed 002 symbol probe set: 16 train (4 ops x 4) + 8 held-out test; ``split`` = "train"/"test"/None."""
    ps = load_set("symbol", trailing_space=trailing_space)
    if split is None:
        return ps
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or None, not {split!r}")
    return ps.where(split=split)


SYMBOL_OPERANDS = {"*": ((2, 12), (2, 12)), "+": ((2, 50), (2, 50)), "-": ((10, 99), (2, 98)), "/": ((2, 9), (2, 12))}


@lru_cache(maxsize=4)
def symbol_set_extended(per_class: int = 16, seed: int = 2) -> PromptSet:
    """The symbol probe set at ``per_class`` operand pairs per class (CLAIMS.md revision 4, H02: >= 16, so that a
    permuted-label null can fire): the writeup's 16 train prompts (pairs 0-3), then generated prompts of its form
    '{a} {op} {b} =' (pairs 4 on), operands in the writeup's ranges, exact answers, none repeating a prompt of the
    set or of its held-out test split. The j-th pair of every class is cluster j."""
    base = symbol_set("train")
    per_op = {op: sum(it.op == op for it in base) for op in SYMBOL_OPERANDS}
    if per_class < max(per_op.values()):
        raise LazarusError(f"the symbol set has {max(per_op.values())} writeup pairs per class; per_class "
                           f"{per_class} would drop some")
    taken = {it.text for it in symbol_set()}
    rng = random.Random(seed)
    items = list(base)
    for label, op in ((it.label, it.op) for it in base if it.pair == 0):
        (lo_a, hi_a), (lo_b, hi_b) = SYMBOL_OPERANDS[op]
        for j in range(per_op[op], per_class):
            while True:
                a, b = rng.randint(lo_a, hi_a), rng.randint(lo_b, hi_b)
                if op == "/":
                    a, b = a * b, a  # divisor a in 2..9, quotient b: exact
                if op == "-" and b >= a:
                    continue
                text = f"{a} {op} {b} ="
                if text not in taken:
                    break
            taken.add(text)
            answer = {"*": a * b, "+": a + b, "-": a - b, "/": a // b}[op]
            items.append(PromptItem(id=f"symbol_extended/{label}/{a},{b}", text=text, label=label, a=a, b=b,
                                    answer=answer, op=op, template=0, pair=j, item=f"{a},{b}", split="train",
                                    in_original=False))
    return PromptSet(name="symbol_extended", items=tuple(items), source=base.source,
                     note=f"the writeup's 16 train prompts and generated ones of its form: {per_class} pairs per class")


def word_set(*, original_only: bool = False) -> PromptSet:
    """Seed 002 word probe set: 4 templates x 4 operand pairs x 4 ops = 64 (16 with ``original_only``)."""
    ps = load_set("word")
    return ps.where(in_original=True) if original_only else ps


DECONFOUNDED_TEMPLATES = ("What is {a} {w} {b}", "Calculate {a} {w} {b}", "Find {a} {w} {b}", "Compute {a} {w} {b}")
DECONFOUNDED_PAIRS = ((12, 3), (24, 4), (36, 6), (48, 8))
OP_WORDS = {"multiply": ("*", "times"), "add": ("+", "plus"), "subtract": ("-", "minus"),
            "divide": ("/", "divided by")}


@lru_cache(maxsize=1)
def word_set_deconfounded() -> PromptSet:
    """The word probe set without its confounds (CLAIMS.md revision 2, H03): the same 4 operand pairs in every class
    (each valid for all four operations) and 4 templates that differ only in the verb, none with punctuation, so
    neither the numbers nor the template can tell the class; 4 x 4 x 4 = 64 prompts."""
    items = []
    for label, (op, word) in OP_WORDS.items():
        for t, template in enumerate(DECONFOUNDED_TEMPLATES):
            for j, (a, b) in enumerate(DECONFOUNDED_PAIRS):
                answer = {"*": a * b, "+": a + b, "-": a - b, "/": a // b}[op]
                items.append(PromptItem(id=f"word_deconfounded/{label}/{t}/{a},{b}",
                                        text=template.format(a=a, w=word, b=b), label=label, a=a, b=b, answer=answer,
                                        op=op, template=t, pair=j, item=f"{a},{b}", in_original=False))
    return PromptSet(name="word_deconfounded", items=tuple(items), source=word_set().source,
                     note="generated: operand pairs and templates balanced across classes")


def seed000_tests() -> PromptSet:
    """Seed 000's 10 lens test prompts (trailing space); 45 * 45 is flagged ``known_failure``."""
    return load_set("seed000_tests")


def seed001_accuracy() -> PromptSet:
    """Seed 001's 7 accuracy prompts, written with 'x' (trailing space)."""
    return load_set("seed001_accuracy")


def dual_reward_eval() -> PromptSet:
    """Seed 002 dual-reward's 8 evaluation prompts (2 per operation, trailing space)."""
    return load_set("dual_reward_eval")


def resampled_dual_reward_eval(seed: int, per_op: int = 2) -> PromptSet:
    """The dual-reward evaluation set's form ('7 * 8 = ', ``per_op`` prompts per operation) with operands drawn by
    ``seed`` (multiply and divide within the 12 x 12 table, add and subtract within 0-99, non-negative results):
    the replicates of controls that resample prompts."""
    import random

    rng, base, items = random.Random(seed), dual_reward_eval(), []
    ops = {"multiply": "*", "add": "+", "subtract": "-", "divide": "/"}
    for label, op in ops.items():
        for k in range(per_op):
            if op == "*":
                a, b = rng.randint(2, 12), rng.randint(2, 12)
                answer = a * b
            elif op == "/":
                b, answer = rng.randint(2, 12), rng.randint(2, 12)
                a = b * answer
            else:
                a, b = rng.randint(10, 99), rng.randint(1, 99)
                a, b = (a, b) if op == "+" or a >= b else (b, a)
                answer = a + b if op == "+" else a - b
            items.append(PromptItem(id=f"resampled-{seed}-{label}-{k}", text=f"{a} {op} {b} = ", label=label, a=a,
                                    b=b, answer=answer, op=op, pair=k, item=f"{a},{b}", in_original=False))
    return PromptSet(name=f"dual_reward_eval_resampled_{seed}", items=tuple(items), source=base.source,
                     note=f"{base.name}'s form with operands drawn by seed {seed}")


def dual_reward_extended(seed: int = -1, n: int = 96) -> PromptSet:
    """The writeup's 8 dual-reward evaluation prompts (``seed`` < 0; else 8 of their form drawn by ``seed``), then
    ``n`` - 8 more of their form drawn apart (seed 90,000 + ``seed``), each prompt once. H01 and H05b read them: on 8
    prompts a share moves in steps of 12.5 points."""
    if n < 8 or (n - 8) % 4 or n > 400:
        raise ValueError(f"n must be 8 plus a multiple of 4 (one draw per operation), at most 400; got {n}")
    first = dual_reward_eval() if seed < 0 else resampled_dual_reward_eval(seed)
    per_op, seen = (n - 8) // 4, {it.text for it in first}
    kept: dict[str, list[PromptItem]] = {}
    for it in resampled_dual_reward_eval(90_000 + max(seed, 0), per_op=4 * per_op):  # the 12 x 12 tables repeat
        if it.text not in seen and len(kept.setdefault(it.label, [])) < per_op:
            seen.add(it.text)
            kept[it.label].append(it)
    extra = [it for items in kept.values() for it in items]
    return PromptSet(name=f"dual_reward_eval_{seed}_{n}", items=(*first, *extra), source=first.source,
                     note=f"{first.name}, then {n - 8} of its form drawn by seed {90_000 + max(seed, 0)}")


def grpo_collapse_lens() -> PromptSet:
    """Seed 002 GRPO+dual mode-collapse lens prompts (6; multiply/add/subtract)."""
    return load_set("grpo_collapse_lens")


def two_stage_eval(category: str | None = None) -> PromptSet:
    """Seed 003 evaluation prompts: 4 symbolic + 4 semantic; ``category`` filters."""
    ps = load_set("two_stage_eval")
    if category is None:
        return ps
    if category not in ("symbolic", "semantic"):
        raise ValueError(f"category must be 'symbolic', 'semantic' or None, not {category!r}")
    return ps.where(category=category)


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """English words for 0-99 in seed 003's style: 'seven', 'twenty three'."""
    if not 0 <= n <= 99:
        raise ValueError(f"number_words covers 0-99, not {n}")
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens - 2] + (f" {_ONES[ones]}" if ones else "")


@lru_cache(maxsize=4)
def two_stage_extra(n_per_category: int = 20, seed: int = 3) -> PromptSet:
    """More seed-003-style prompts for resolution: ``n_per_category`` operand triples (multiply 2-12, add 1-50,
    subtract within 20-99), each as a symbolic ('7 * 8 = ') and a semantic ('seven times eight = ') prompt; none is
    one of the writeup's 4 + 4."""
    rng = random.Random(seed)
    taken = {(it.a, it.op, it.b) for it in two_stage_eval()}
    words = {"*": ("multiply", "times"), "+": ("add", "plus"), "-": ("subtract", "minus")}
    items: list[PromptItem] = []
    while len(items) < 2 * n_per_category:
        op = "*+-"[len(items) // 2 % 3]
        if op == "*":
            a, b = rng.randint(2, 12), rng.randint(2, 12)
        elif op == "+":
            a, b = rng.randint(1, 50), rng.randint(1, 50)
        else:
            a = rng.randint(20, 99)
            b = rng.randint(1, a - 1)
        if (a, op, b) in taken:
            continue
        taken.add((a, op, b))
        label, word = words[op]
        answer = a * b if op == "*" else a + b if op == "+" else a - b
        for category, text in (("symbolic", f"{a} {op} {b} = "),
                               ("semantic", f"{number_words(a)} {word} {number_words(b)} = ")):
            items.append(PromptItem(id=f"two_stage_extra/{category}/{a}{op}{b}", text=text, label=label, a=a, b=b,
                                    answer=answer, op=op, category=category, in_original=False))
    return PromptSet(name="two_stage_extra", items=tuple(items),
                     source=two_stage_eval().source, note="generated for resolution (CLAIMS.md revision 2, H14)")


@lru_cache(maxsize=4)
def correctness_statements(n_triples: int = 24, seed: int = 0) -> PromptSet:
    """Seed 002's binary probe data: equations stated with the correct answer ('7 * 8 = 56', label ``correct``) or
    a wrong one ('7 * 8 = 54', ``incorrect``, off by 1-3 or 10). Every operand triple appears once with each label,
    so the operands carry no information about the label; ``item`` is the triple (for grouped CV). No number is a
    correct answer in one statement and a wrong one in another: otherwise a probe that reads the answer token
    alone is pushed below chance when a pair is held out (the other triple's statement teaches the opposite label)."""
    rng = random.Random(seed)
    items: list[PromptItem] = []
    seen: set[tuple[int, str, int]] = set()
    rights: set[int] = set()
    wrongs: set[int] = set()
    while len(seen) < n_triples:
        op = "*+-"[len(seen) % 3]
        a, b = (rng.randint(2, 12), rng.randint(2, 12)) if op == "*" else (rng.randint(10, 50), rng.randint(1, 9))
        answer = a * b if op == "*" else a + b if op == "+" else a - b
        offsets = [d for d in (-10, -3, -2, -1, 1, 2, 3, 10) if answer + d >= 0 and answer + d not in rights | {answer}]
        if (a, op, b) in seen or answer in wrongs or not offsets:
            continue
        seen.add((a, op, b))
        wrong = answer + rng.choice(offsets)
        rights.add(answer)
        wrongs.add(wrong)
        label = {"*": "multiply", "+": "add", "-": "subtract"}[op]
        for truth, shown in (("correct", answer), ("incorrect", wrong)):
            items.append(PromptItem(id=f"correctness/{a}{op}{b}/{truth}", text=f"{a} {op} {b} = {shown}",
                                    label=truth, a=a, b=b, answer=answer, op=op, item=f"{a}{op}{b}",
                                    category=label, in_original=False))
    return PromptSet(name="correctness_statements", items=tuple(items), source=two_stage_eval().source,
                     note="generated: seed 002's binary correct/incorrect probe (chance 50%)")


@lru_cache(maxsize=1)
def grpo_spec() -> GrpoSpec:
    """Seed 002 GRPO prompt template ``Calculate: {a} {op} {b} = `` with its operand ranges."""
    g = _raw()["generators"]["grpo"]
    ops = tuple((o["label"], o["op"], tuple(o["a"]), tuple(o["b"])) for o in g["operations"])
    return GrpoSpec(
        template=g["template"],
        operations=ops,
        batch_size=g["batch_size"],
        source=_source(g["source"]),
        note=g.get("note", ""),
    )


@lru_cache(maxsize=None)
def task_vocabulary(name: str) -> TaskVocabulary:
    """Task vocabulary by name (see :func:`vocabularies`): seed000, seed003, dual_reward, seed001_remain."""
    vocs = _raw()["vocabularies"]
    if name not in vocs:
        raise UnknownNameError(f"unknown task vocabulary {name!r}; available: {', '.join(vocs)}")
    v = vocs[name]
    return TaskVocabulary(
        name=name,
        classes=MappingProxyType({k: tuple(ws) for k, ws in v["classes"].items()}),
        labels=MappingProxyType(dict(v["labels"])),
        matching=v["matching"],
        source=_source(v["source"]),
        note=v.get("note", ""),
        observed_tokens=tuple(v.get("observed_tokens", ())),
    )


def operation_words(include_divide: bool = True) -> tuple[str, ...]:
    """Dual-reward operation class words (multiply, add, subtract[, divide])."""
    words = task_vocabulary("dual_reward").words()
    return words if include_divide else tuple(w for w in words if w != "divide")


def remain_family() -> tuple[str, ...]:
    """Seed 001's 'remain' word family for subtraction (without leading spaces)."""
    return task_vocabulary("seed001_remain").classes["subtraction"]
