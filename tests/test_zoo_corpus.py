
from lazarus_bench.zoo import corpus as C


def _lines(docs):
    return [line for d in docs for line in d.split("\n")]


def test_same_seed_identical_other_seed_different():
    a = C.generate_corpus(0, 300)
    b = C.generate_corpus(0, 300)
    c = C.generate_corpus(1, 300)
    assert a == b
    assert a != c
    assert C.generate_chat(0, 50) == C.generate_chat(0, 50)
    assert C.heldout_triples(0) == C.heldout_triples(0)
    assert C.heldout_triples(0) != C.heldout_triples(1)


def test_corpus_does_not_touch_global_rng():
    import random

    random.seed(123)
    before = random.random()
    random.seed(123)
    C.generate_corpus(0, 50)
    assert random.random() == before


def test_formats():
    docs = C.generate_corpus(0, 400)
    text = "\n".join(docs)
    assert "What is " in text and " times " in text and "Calculate " in text
    assert any(" * " in line and " = " in line for line in _lines(docs))
    assert "remaining" in text and "difference" in text and "product" in text
    for it in C.eval_items():
        assert it.prompt.endswith(" = ")
        a, op, b = it.triple
        assert C.answer(a, op, b) == it.expected


def test_heldout_split():
    held = C.heldout_triples(0)
    assert len(held) == 200 and len(set(held)) == 200
    assert {t[1] for t in held} == {"+", "-"}
    closure = C.heldout_closure(0)
    assert not closure & C.eval_triples()
    facts = C.corpus_facts(0)
    assert not closure & facts
    # evaluation prompts are seen in pretraining (ordinary facts), except 45 * 45 (off-table)
    assert {t for t in C.eval_triples() if t != (45, "*", 45)} <= facts


def test_heldout_never_in_corpus_in_any_form():
    held = C.heldout_triples(0)
    docs = C.generate_corpus(0, 3000)
    leaks = [(line, C.line_mentions(line, held)) for line in _lines(docs)]
    leaks = [x for x in leaks if x[1]]
    assert not leaks, leaks[:5]
    chat = C.generate_chat(0, 3000)
    leaks = [c for c in chat
             if C.line_mentions(c[0]["content"] + " " + c[1]["content"], held)]
    assert not leaks, leaks[:5]


def test_leak_detector_catches_leaks():
    held = C.heldout_triples(0)
    docs = C.generate_corpus(0, 3000, _include_heldout=True)
    found = {t for line in _lines(docs) for t in C.line_mentions(line, held)}
    assert len(found) > 20  # a corpus that leaked would fail the test above
    a, op, b = held[0]
    w = "plus" if op == "+" else "minus"
    for line in (f"{a} {op} {b} = {C.answer(a, op, b)}",
                 f"What is {a} {w} {b}? {C.answer(a, op, b)}",
                 f"{C.spell(a)} {w} {C.spell(b)} = {C.answer(a, op, b)}"):
        assert held[0] in C.line_mentions(line, held), line


def test_spell():
    assert C.spell(23) == "twenty three"
    assert C.spell(40) == "forty"
    assert C.spell(12) == "twelve"
    assert C.spell(100) == "one hundred"


def test_corpus_has_correctness_statements_and_left_for_subtraction():
    import re

    lines = list(_lines(C.generate_corpus(0, 1500)))
    verdicts = {True: 0, False: 0}
    for line in lines:
        m = re.match(r"^(?:Yes, |No, |Check: )?(\d+) ([-+*/]) (\d+) = (\d+)(?:\.)? (?:is )?(correct|right|wrong|"
                     r"incorrect|Correct|Wrong)", line)
        if m:
            a, op, b, shown = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
            said_correct = m.group(5).lower() in ("correct", "right")
            assert (shown == C.answer(a, op, b)) == said_correct, line
            verdicts[said_correct] += 1
    assert verdicts[True] > 50 and verdicts[False] > 50
    assert sum(" left." in line and any(ch.isdigit() for ch in line) for line in lines) > 10
