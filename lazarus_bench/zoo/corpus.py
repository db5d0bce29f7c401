"""Deterministic pretraining corpus for the embedded model zoo.

Everything here is a pure function of an integer seed (``random.Random(seed)`` only; the global RNG is never touched).

The facts
---------
A *fact* is a triple ``(a, op, b)`` with ``op`` in ``"+-*/"`` and answer :func:`answer`:

* ``+``: ``a, b`` in 0..99;
* ``-``: ``0 <= b <= a <= 99`` (non-negative results) plus the ``100 - x`` facts (x in 0..100);
* ``*``: ``a, b`` in 1..12 (the 12 x 12 table);
* ``/``: ``a = b * k`` with ``b, k`` in 1..12 (exact division within the table).

Each fact is written in several surface forms: symbols (``"7 * 8 = 56"``; the prompt is exactly ``"{a} {op} {b} = "``),
word questions, spelled-out numbers, sentences and filler with operation words, correctness statements, and (recipe
v3) remain-family subtractions and lines that open with the operation word. :func:`generate_chat` makes chat turns.

The split (read this before writing another training-data generator)
--------------------------------------------------------------------
* **Held-out triples** (:func:`heldout_triples`): ~200 addition/subtraction facts chosen by seed.
  They never appear in any form (symbol, word, spelled-out, sentence, chat) in anything generated
  here. They test generalisation (the ``heldout`` gate of :mod:`lazarus_bench.zoo.evaluate`).
* **Evaluation prompts** (:func:`eval_items`): the fixed prompts later analyses use (``7 * 8 =``,
  ``48 / 6 =``, ``100 - 43 =`` ...). They ARE seen during pretraining, as ordinary arithmetic
  facts, just as in a real pretrained model (withholding ``7 * 8`` would make the 12 x 12 table
  unlearnable). They are never held out.
* Later generators (SFT, dual-reward, ...) must keep their own *training* sets disjoint from the
  evaluation prompts: :func:`eval_triples` returns those facts and :func:`corpus_facts` returns every
  fact the pretraining corpus may contain, so such generators can assert disjointness explicitly.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

from .texts import TEXT_KINDS, text_pool

OPS = ("+", "-", "*", "/")
OP_NAMES = {"+": "add", "-": "sub", "*": "mul", "/": "div"}

# Operation words that the tokenizer must keep as single tokens (with and without leading space).
OPERATION_WORDS = (
    "multiply", "add", "subtract", "divide", "times", "plus", "minus", "remaining", "remain",
    "remainder", "sum", "product", "difference", "multiplied", "divided",
)

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def spell(n: int) -> str:
    """English words for 0..100 without hyphens: ``23 -> "twenty three"``."""
    if n < 0 or n > 100:
        raise ValueError(f"spell() covers 0..100, got {n}")
    if n == 100:
        return "one hundred"
    if n < 20:
        return _ONES[n]
    t, o = divmod(n, 10)
    return _TENS[t] if o == 0 else f"{_TENS[t]} {_ONES[o]}"


def answer(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0 or a % b:
            raise ValueError(f"{a} / {b} is not an exact division")
        return a // b
    raise ValueError(f"unknown op {op!r}")


def all_facts() -> list[tuple[int, str, int]]:
    """Every fact of the universe (before the held-out split), in a fixed order."""
    facts = [(a, "+", b) for a in range(100) for b in range(100)]
    facts += [(a, "-", b) for a in range(100) for b in range(a + 1)]
    facts += [(100, "-", x) for x in range(101)]
    facts += [(a, "*", b) for a in range(1, 13) for b in range(1, 13)]
    facts += [(b * k, "/", b) for b in range(1, 13) for k in range(1, 13)]
    return facts


# --------------------------------------------------------------------------------------------
# Evaluation prompts (seen in pretraining; see the module docstring)
# --------------------------------------------------------------------------------------------

EVAL_SYMBOL_PROMPTS = (
    "7 * 8 =", "12 * 5 =", "3 * 9 =", "6 * 7 =", "23 + 45 =", "17 + 38 =", "11 + 22 =", "5 + 9 =",
    "50 - 23 =", "89 - 34 =", "77 - 11 =", "40 - 15 =", "48 / 6 =", "81 / 9 =", "36 / 4 =",
    "24 / 3 =",
)
PROBE_PROMPTS = (
    "11 * 12 =", "6 * 9 =", "13 + 14 =", "25 + 17 =", "15 - 6 =", "20 - 8 =", "12 / 4 =", "15 / 3 =",
)
SEED_TEST_PROMPTS = (
    "7 * 8 = ", "12 * 5 = ", "9 * 9 = ", "45 * 45 = ", "23 + 45 = ", "17 + 38 = ", "55 + 27 = ",
    "89 - 34 = ", "65 - 28 = ", "100 - 43 = ",
)
# 45 * 45 is outside the 12 x 12 table: reported but excluded from the quality gate.
GATE_EXCLUDED = ("45 * 45 = ",)

_PROMPT_RE = re.compile(r"^\s*(\d+) ([-+*/]) (\d+) =\s*$")


def parse_prompt(prompt: str) -> tuple[int, str, int]:
    m = _PROMPT_RE.match(prompt)
    if not m:
        raise ValueError(f"not a symbolic prompt: {prompt!r}")
    return int(m.group(1)), m.group(2), int(m.group(3))


@dataclass(frozen=True)
class EvalItem:
    """One evaluation prompt: ``prompt`` is what the model sees (always ending ``"= "``)."""

    prompt: str
    triple: tuple[int, str, int]
    expected: int
    source: str  # "symbol" | "probe" | "seed_test"
    gated: bool


def eval_items() -> list[EvalItem]:
    """The fixed evaluation prompts (symbol set, held-out probe prompts, seed test prompts).

    Prompts are normalised to the training format ``"{a} {op} {b} = "`` (trailing space)."""
    items = []
    for source, prompts in (("symbol", EVAL_SYMBOL_PROMPTS), ("probe", PROBE_PROMPTS),
                            ("seed_test", SEED_TEST_PROMPTS)):
        for p in prompts:
            a, op, b = parse_prompt(p)
            items.append(EvalItem(prompt=f"{a} {op} {b} = ", triple=(a, op, b),
                                  expected=answer(a, op, b), source=source,
                                  gated=f"{a} {op} {b} = " not in GATE_EXCLUDED))
    return items


def eval_triples() -> set[tuple[int, str, int]]:
    """The facts behind every evaluation prompt (including 45 * 45)."""
    return {it.triple for it in eval_items()}


# --------------------------------------------------------------------------------------------
# Held-out split
# --------------------------------------------------------------------------------------------

HELDOUT_PER_OP = 100


def heldout_triples(seed: int = 0, n_per_op: int = HELDOUT_PER_OP) -> list[tuple[int, str, int]]:
    """~200 add/sub facts (``n_per_op`` each, operands in 10..99 for +, 10..99 for - with a > b)
    that never appear in the corpus in any form. Disjoint from :func:`eval_triples`."""
    rng = random.Random(f"lazarus-zoo-heldout-{seed}")
    avoid = eval_triples()
    out: list[tuple[int, str, int]] = []
    for op in ("+", "-"):
        chosen: set[tuple[int, str, int]] = set()
        while len(chosen) < n_per_op:
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            if op == "-" and a < b:
                a, b = b, a
            t = (a, op, b)
            if not any(r in avoid for r in related_triples(t)):
                chosen.add(t)
        out += sorted(chosen)
    return out


def related_triples(t: tuple[int, str, int]) -> list[tuple[int, str, int]]:
    """``t`` and the facts that state the same relation: ``b + a`` for ``a + b``; ``a - (a-b)``
    for ``a - b``. Held-out triples are withheld together with these."""
    a, op, b = t
    if op in "+*":
        return [t, (b, op, a)]
    if op == "-":
        return [t, (a, op, a - b)]
    return [t]


def heldout_closure(seed: int = 0) -> set[tuple[int, str, int]]:
    """Every fact withheld from the corpus: the held-out triples and their related triples."""
    return {r for t in heldout_triples(seed) for r in related_triples(t)}


def corpus_facts(seed: int = 0) -> set[tuple[int, str, int]]:
    """Every fact the corpus (and chat set) for ``seed`` may contain: the universe minus
    :func:`heldout_closure`. Later generators can check ``their_train_set & eval_triples()``."""
    held = heldout_closure(seed)
    return {t for t in all_facts() if t not in held}


# --------------------------------------------------------------------------------------------
# Surface forms
# --------------------------------------------------------------------------------------------

_OP_WORDS = {"+": ["plus"], "-": ["minus"], "*": ["times", "multiplied by"], "/": ["divided by"]}
_QUESTION_TEMPLATES = [
    "What is {A} {W} {B}? {C}",
    "Calculate {A} {W} {B} = {C}",
    "Find {A} {W} {B}. {C}",
    "Compute {A} {W} {B}: {C}",
]
# Canonical word-question prompts used by the evaluation (prefix of the first template).
WORD_QUESTION_PROMPT = "What is {A} {W} {B}?"

_SENTENCES = {
    "+": [
        "The sum of {a} and {b} is {c}.",
        "If we add {a} and {b} we get {c}.",
        "Add {b} to {a} and the total is {c}.",
        "To add {a} and {b}, count on: the sum is {c}.",
        "{a} apples plus {b} apples makes {c} apples.",
        "She had {a} coins and found {b} more, so the sum is {c}.",
    ],
    "-": [
        "The difference of {a} and {b} is {c}.",
        "Subtract {b} from {a} and {c} remain.",
        "We had {a} apples and gave away {b}, so {c} are remaining.",
        "{a} minus {b} leaves {c} remaining.",
        "There were {a} birds and {b} flew away. {c} remain.",
        "Taking {b} away from {a} leaves a remainder of {c}.",
        "To subtract {b} from {a} we get {c}.",
        "{a} take away {b} leaves {c} left.",
        "Tom had {a} marbles and lost {b}. He has {c} left.",
        "Of the {a} seats, {b} were taken and {c} remain empty.",
        "After spending {b} of {a} dollars, {c} dollars remain.",
        "There are {a} pages and we read {b}; {c} pages are left.",
        "If {b} of the {a} eggs break, {c} eggs are remaining.",
    ],
    "*": [
        "To multiply {a} by {b} we get {c}.",
        "The product of {a} and {b} is {c}.",
        "If you multiply {a} by {b}, the product is {c}.",
        "{a} multiplied by {b} is {c}.",
        "{a} rows of {b} chairs make {c} chairs in total.",
        "{a} times {b} gives the product {c}.",
    ],
    "/": [
        "Divide {a} by {b} to get {c}.",
        "When {a} is divided by {b} the result is {c} with no remainder.",
        "To divide {a} into groups of {b} we make {c} groups.",
        "{a} divided by {b} is {c}, and the remainder is 0.",
        "Share {a} sweets among {b} children: each gets {c} and none remain.",
    ],
}


_VERDICT_TEMPLATES = {
    True: ["{s} is correct.", "{s} is right.", "Yes, {s} is correct.", "Check: {s}. Correct."],
    False: ["{s} is wrong.", "{s} is incorrect.", "No, {s} is wrong.", "Check: {s}. Wrong."],
}
_WRONG_OFFSETS = (-10, -2, -1, 1, 2, 10)


def wrong_answer(rng: random.Random, t: tuple[int, str, int]) -> int:
    """A plausible wrong answer (off by 1, 2 or 10), never negative."""
    c = answer(*t)
    return rng.choice([c + d for d in _WRONG_OFFSETS if c + d >= 0])


def render_verdict(rng: random.Random, t: tuple[int, str, int]) -> str:
    """A correctness statement: ``"7 * 8 = 56 is correct."`` or, half the time, ``"7 * 8 = 54 is wrong."``,
    so a correct/incorrect probe has something to find (CLAIMS.md revision 2, H07)."""
    a, op, b = t
    correct = rng.random() < 0.5
    shown = answer(*t) if correct else wrong_answer(rng, t)
    return rng.choice(_VERDICT_TEMPLATES[correct]).format(s=f"{a} {op} {b} = {shown}")


def render_symbol(t: tuple[int, str, int]) -> str:
    a, op, b = t
    return f"{a} {op} {b} = {answer(a, op, b)}"


def render_question(rng: random.Random, t: tuple[int, str, int]) -> str:
    a, op, b = t
    tpl = rng.choice(_QUESTION_TEMPLATES)
    return tpl.format(A=a, B=b, W=rng.choice(_OP_WORDS[op]), C=answer(a, op, b))


def render_spelled(rng: random.Random, t: tuple[int, str, int]) -> str:
    a, op, b = t
    c = answer(a, op, b)
    w = rng.choice(_OP_WORDS[op])
    A, B = spell(a), spell(b)
    form = rng.randrange(3)
    if form == 0:
        return f"{A} {w} {B} = {c}"
    if form == 1:
        return f"What is {A} {w} {B}? {c}"
    return f"{A.capitalize()} {w} {B} is {c}."


def render_sentence(rng: random.Random, t: tuple[int, str, int]) -> str:
    a, op, b = t
    return rng.choice(_SENTENCES[op]).format(a=a, b=b, c=answer(a, op, b))


# The seed's lens prompts end in a space ("89 - 34 = "), which the zoo's tokenizer keeps as a token of its own; only
# digits follow that token elsewhere, so the double-space form is the one that puts the family after it.
_REMAIN_FORMS = (
    "{a} - {b} = remaining {c}.",
    "{a} - {b} =  remaining {c}.",
    "{a} - {b} = {c} remain.",
    "{a} - {b} = {c} remaining.",
    "{a} - {b} = {c}, the remainder.",
    "{a} take away {b}: {c} remain.",
    "{a} - {b} leaves {c} remaining.",
    "{a} - {b}: the remainder is {c}.",
)


def render_remain(rng: random.Random, t: tuple[int, str, int]) -> str:
    """A subtraction whose answer a remain-family word follows (recipe v3): the association H13 reads."""
    a, op, b = t
    if op != "-":
        raise ValueError(f"a remain form states a subtraction, not {a} {op} {b}")
    return rng.choice(_REMAIN_FORMS).format(a=a, b=b, c=a - b)


# Every other kind puts an operation word after a space; these open a line, so the word's no-space token (what H04 and
# H05a read at the lens) follows a newline or the document's start.
_OPWORD_FORMS = {
    "+": ("add {a} and {b} to get {c}.", "add {b} to {a}: {c}."),
    "-": ("subtract {b} from {a} to get {c}.", "subtract {b} from {a}: {c}."),
    "*": ("multiply {a} by {b} to get {c}.", "multiply {a} and {b}: {c}."),
    "/": ("divide {a} by {b} to get {c}.", "divide {a} by {b}: {c}."),
}


def render_opword(rng: random.Random, t: tuple[int, str, int]) -> str:
    """A fact whose line opens with its operation word (recipe v3's closing stage)."""
    a, op, b = t
    return rng.choice(_OPWORD_FORMS[op]).format(a=a, b=b, c=answer(a, op, b))


_SPELLED = sorted(((spell(n), n) for n in range(101)), key=lambda x: -len(x[0]))
_SPELLED_RE = re.compile(r"\b(" + "|".join(re.escape(w) for w, _ in _SPELLED) + r")\b",
                         re.IGNORECASE)
_SPELLED_VAL = {w: n for w, n in _SPELLED}
_OP_KEYWORDS = {
    "+": ("+", "plus", "sum", "add", "total", "more"),
    "-": (" - ", "minus", "difference", "subtract", "remain", "away", "left"),
    "*": ("*", "times", "multipl", "product", "rows of"),
    "/": ("/", "divide", "share", "groups"),
}


def line_mentions(line: str, triples) -> list[tuple[int, str, int]]:
    """Conservative leak detector: the triples ``(a, op, b)`` of ``triples`` that ``line`` may
    state, i.e. the line contains ``a``, ``b`` and the answer (digits or spelled out) and a
    keyword of ``op``. Used by tests to prove held-out facts never occur in the corpus."""
    text = _SPELLED_RE.sub(lambda m: str(_SPELLED_VAL[m.group(1).lower()]), line).lower()
    nums = Counter(int(x) for x in re.findall(r"\d+", text))
    if not nums:
        return []
    ops = {op for op, kws in _OP_KEYWORDS.items() if any(k in text for k in kws)}
    out = []
    for t in triples:
        if t[1] in ops:
            need = Counter((t[0], t[2], answer(*t)))
            if all(nums[n] >= k for n, k in need.items()):
                out.append(t)
    return out


# --------------------------------------------------------------------------------------------
# Filler text
# --------------------------------------------------------------------------------------------

_NAMES = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas",
          "Kate", "Leo", "Mia", "Noah", "Olga", "Paul", "Rosa", "Sam", "Tara", "Victor"]
_NOUNS = ["cat", "dog", "river", "garden", "teacher", "farmer", "city", "forest", "ship", "bird",
          "house", "market", "child", "doctor", "train", "mountain", "village", "book", "song",
          "kitchen", "window", "school", "road", "tree", "baker", "painter", "storm", "island"]
_ADJS = ["small", "old", "quiet", "bright", "green", "busy", "cold", "warm", "tall", "happy",
         "dark", "gentle", "heavy", "quick", "strange", "famous", "empty", "young"]
_VERBS = ["walked to", "looked at", "painted", "visited", "cleaned", "found", "watched", "left",
          "crossed", "opened", "built", "followed", "remembered", "carried"]
_PLACES = ["the park", "the station", "the library", "the harbour", "the hill", "the old bridge",
           "the market square", "the museum", "the farm", "the beach"]
_TIMES = ["in the morning", "after lunch", "at night", "on Sunday", "in the spring",
          "during the storm", "before dinner", "last winter"]
_TOPIC_LINES = [
    "Cells multiply quickly in warm water.",
    "Rabbits multiply fast when food is plentiful.",
    "Please add a little salt to the soup.",
    "Add the flour slowly and stir.",
    "The teacher will divide the class into two teams.",
    "A river can divide a city in two.",
    "Only a few seats remain in the hall.",
    "The remaining cake was eaten by the children.",
    "The sum of their efforts was a great success.",
    "The new product was sold in every store.",
    "The factory makes a product that people love.",
    "What is the difference between a cat and a dog?",
    "The difference in weather between the two towns is large.",
    "Subtract the cost of the trip from the budget.",
    "Those were happy times for the whole family.",
    "Some times the road is closed.",
    "The plus side of the plan is that it is cheap.",
    "It was minus ten degrees outside.",
    "The remainder of the day was quiet.",
    "We spent the remainder of the evening reading.",
    "Please remain seated until the train stops.",
    "The problems multiplied as the project grew.",
    "The country was divided by a long wall.",
    "The remaining guests went home late.",
    "A large sum of money was found in the old house.",
    "They had to subtract one player from each team.",
]
_FILLER_TEMPLATES = [
    "The {adj} {noun} {verb} {place} {time}.",
    "{name} {verb} the {adj} {noun} {time}.",
    "{name} and {name2} {verb} {place}.",
    "{time_c}, the {noun} was {adj}.",
    "Everyone in the {noun} knew that {name} liked the {adj} {noun2}.",
    "The {noun} near {place} is very {adj}.",
    "{name} wrote a book about a {adj} {noun}.",
]


def filler_sentence(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(_TOPIC_LINES)
    tpl = rng.choice(_FILLER_TEMPLATES)
    time = rng.choice(_TIMES)
    return tpl.format(adj=rng.choice(_ADJS), noun=rng.choice(_NOUNS), noun2=rng.choice(_NOUNS),
                      verb=rng.choice(_VERBS), place=rng.choice(_PLACES), time=time,
                      time_c=time[0].upper() + time[1:], name=rng.choice(_NAMES),
                      name2=rng.choice(_NAMES))


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CorpusMix:
    """Per-line probabilities of each kind of line in a document, and op weights for facts."""

    symbol: float = 0.62
    question: float = 0.15
    spelled: float = 0.05
    sentence: float = 0.09
    verdict: float = 0.04
    filler: float = 0.05
    op_weights: tuple[float, float, float, float] = (0.36, 0.34, 0.15, 0.15)  # + - * /
    hundred_minus: float = 0.08  # share of subtractions drawn from the 100 - x facts
    # operand digit-length buckets for + and - (1 = one digit, 2 = two digits) and their weights:
    # over-sampling short operands teaches the digit tables that 2-digit arithmetic composes.
    add_buckets: tuple[tuple[tuple[int, int], float], ...] = (
        ((1, 1), 0.12), ((1, 2), 0.14), ((2, 1), 0.14), ((2, 2), 0.60))
    sub_buckets: tuple[tuple[tuple[int, int], float], ...] = (
        ((1, 1), 0.12), ((2, 1), 0.28), ((2, 2), 0.60))
    lines_per_doc: tuple[int, int] = (4, 10)
    # recipe v3's kinds (zero here, so the recipe-3 corpus is unchanged): what H13 and H15 read
    remain: float = 0.0  # subtraction stated with the remain family ("89 - 34 = 55 remain")
    sentiment: float = 0.0  # short review sentences in the style of H15a's data
    topic: float = 0.0  # short news sentences in the style of H15b's data
    opword: float = 0.0  # a fact opened by its operation word, no space before it ("multiply 7 by 8 to get 56.")


class FactSampler:
    """Samples facts from :func:`corpus_facts` (never a held-out triple)."""

    def __init__(self, seed: int, mix: CorpusMix, include_heldout: bool = False):
        held = set() if include_heldout else heldout_closure(seed)
        self.held = sorted(held)
        self.mix = mix
        self.by_op: dict[str, list[tuple[int, str, int]]] = {op: [] for op in OPS}
        self.hundred: list[tuple[int, str, int]] = []
        self.buckets: dict[tuple[str, int, int], list[tuple[int, str, int]]] = {}
        for t in all_facts():
            if t in held:
                continue
            if t[1] == "-" and t[0] == 100:
                self.hundred.append(t)
            else:
                self.by_op[t[1]].append(t)
                if t[1] in "+-":
                    key = (t[1], len(str(t[0])), len(str(t[2])))
                    self.buckets.setdefault(key, []).append(t)
        self.bucket_keys = {
            op: ([(op, *k) for k, _ in bk], [w for _, w in bk])
            for op, bk in (("+", mix.add_buckets), ("-", mix.sub_buckets))}

    def sample(self, rng: random.Random, op: str | None = None) -> tuple[int, str, int]:
        """A fact; of operation ``op`` when given, else of an operation drawn by the mix's weights."""
        op = op or rng.choices(OPS, weights=self.mix.op_weights)[0]
        if op == "-" and rng.random() < self.mix.hundred_minus:
            return rng.choice(self.hundred)
        if op in self.bucket_keys:
            keys, weights = self.bucket_keys[op]
            return rng.choice(self.buckets[rng.choices(keys, weights=weights)[0]])
        return rng.choice(self.by_op[op])


_KINDS = ("symbol", "question", "spelled", "sentence", "verdict", "filler", "remain", "sentiment", "topic", "opword")


def _doc(rng: random.Random, sampler: FactSampler, mix: CorpusMix, pools: dict[str, list[str]]) -> str:
    weights = [getattr(mix, kind) for kind in _KINDS]
    lines = []
    for _ in range(rng.randint(*mix.lines_per_doc)):
        kind = rng.choices(_KINDS, weights=weights)[0]
        if kind == "filler":
            lines.append(filler_sentence(rng))
            continue
        if kind in pools:
            lines.append(rng.choice(pools[kind]))
            continue
        t = sampler.sample(rng, "-" if kind == "remain" else None)
        if kind == "symbol":
            lines.append(render_symbol(t))
        elif kind == "question":
            lines.append(render_question(rng, t))
        elif kind == "spelled":
            if max(t[0], t[2]) > 100:
                lines.append(render_question(rng, t))
            else:
                lines.append(render_spelled(rng, t))
        elif kind == "verdict":
            line = render_verdict(rng, t)
            lines.append(line if not line_mentions(line, sampler.held) else render_symbol(t))
        elif kind == "remain":
            lines.append(render_remain(rng, t))
        elif kind == "opword":
            lines.append(render_opword(rng, t))
        else:
            lines.append(render_sentence(rng, t))
    return "\n".join(lines)


def iter_corpus(seed: int, mix: CorpusMix | None = None, *, _include_heldout: bool = False):
    """Endless deterministic stream of documents for ``seed``. (``_include_heldout`` exists only
    so tests can check that the leak detector notices a leak.)"""
    mix = mix or CorpusMix()
    rng = random.Random(f"lazarus-zoo-corpus-{seed}")
    sampler = FactSampler(seed, mix, include_heldout=_include_heldout)
    pools = {name: text_pool(name, seed) for name in TEXT_KINDS if getattr(mix, name) > 0}
    while True:
        yield _doc(rng, sampler, mix, pools)


def generate_corpus(seed: int, n_docs: int, mix: CorpusMix | None = None, *,
                    _include_heldout: bool = False) -> list[str]:
    """The first ``n_docs`` documents of the corpus stream for ``seed`` (plain text, no BOS/EOS)."""
    it = iter_corpus(seed, mix, _include_heldout=_include_heldout)
    return [next(it) for _ in range(n_docs)]


# --------------------------------------------------------------------------------------------
# Chat / instruct data
# --------------------------------------------------------------------------------------------

_CHAT_QUESTIONS = {
    "+": ["What is {a} plus {b}?", "Calculate {a} plus {b}", "{a} + {b} =", "Add {a} and {b}.",
          "What is the sum of {a} and {b}?"],
    "-": ["What is {a} minus {b}?", "Calculate {a} minus {b}", "{a} - {b} =",
          "Subtract {b} from {a}.", "What is the difference of {a} and {b}?"],
    "*": ["What is {a} times {b}?", "Calculate {a} times {b}", "{a} * {b} =",
          "Multiply {a} by {b}.", "What is the product of {a} and {b}?"],
    "/": ["What is {a} divided by {b}?", "Calculate {a} divided by {b}", "{a} / {b} =",
          "Divide {a} by {b}."],
}


def chat_question(rng: random.Random, t: tuple[int, str, int]) -> str:
    a, op, b = t
    return rng.choice(_CHAT_QUESTIONS[op]).format(a=a, b=b)


def generate_chat(seed: int, n: int, mix: CorpusMix | None = None) -> list[list[dict]]:
    """``n`` single-turn conversations ``[{"role": "user", ...}, {"role": "assistant", ...}]``
    whose answers are the bare integer. Never contains a held-out triple."""
    mix = mix or CorpusMix()
    rng = random.Random(f"lazarus-zoo-chat-{seed}")
    sampler = FactSampler(seed, mix)
    out = []
    for _ in range(n):
        t = sampler.sample(rng)
        out.append([{"role": "user", "content": chat_question(rng, t)},
                    {"role": "assistant", "content": str(answer(*t))}])
    return out


def word_question_items(seed: int = 0) -> list[EvalItem]:
    """Word-form evaluation questions ``"What is 7 times 8?"`` for the gated symbolic facts."""
    items = []
    for it in eval_items():
        if not it.gated or it.source == "probe":
            continue
        a, op, b = it.triple
        items.append(EvalItem(prompt=WORD_QUESTION_PROMPT.format(A=a, B=b, W=_OP_WORDS[op][0]),
                              triple=it.triple, expected=it.expected, source="word", gated=True))
    return items


def tokenizer_training_text(seed: int, n_docs: int = 4000, mix: CorpusMix | None = None) -> list[str]:
    """Text to train the BPE tokenizer on: corpus documents, chat turns, and every operation word
    many times with and without a leading space (so each becomes a single token)."""
    docs = generate_corpus(seed, n_docs, mix)
    docs += ["\n".join(f"{m[0]['content']} {m[1]['content']}" for m in generate_chat(seed, 50))
             for _ in range(1)]
    extra = []
    for w in OPERATION_WORDS:
        for v in (w, w.capitalize()):
            extra.append("\n".join([v] * 400))
            extra.append(" ".join([v] * 400))
    return docs + extra
