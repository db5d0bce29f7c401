
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


def test_v3_corpus_holds_remain_subtractions_and_review_and_news_text():
    """Recipe v3's kinds appear at about their share; every remain line is a true subtraction; the recipe-3 corpus
    (zero shares) is unchanged by their existence."""
    import re

    from lazarus_bench.zoo.recipe import V3_MIX

    lines = _lines(C.generate_corpus(7, 1500, V3_MIX))
    remain = [line for line in lines if re.search(r"\bremain|remainder\.|the remainder is", line)
              and re.match(r"^\d+ (-|take away) \d+", line)]
    assert 0.015 < len(remain) / len(lines) < 0.06
    for line in remain:
        a, b, c = map(int, re.findall(r"\d+", line)[:3])
        assert a - b == c, line
    pools = {kind: set(C.text_pool(kind, 7)) for kind in C.TEXT_KINDS}
    for kind, pool in pools.items():
        share = sum(line in pool for line in lines) / len(lines)
        assert 0.015 < share < 0.06, (kind, share)
    assert C.generate_corpus(7, 200) == C.generate_corpus(7, 200, C.CorpusMix())


def test_v3_puts_the_remain_family_after_the_prompts_trailing_space_token():
    """The seed's lens prompts end in a space ("89 - 34 = "), a token of its own in the zoo's tokenizer: some remain
    line must follow that token with the family, or the base's lens cannot show it there (seed 101 before this form:
    0.50%, under H13's 1% floor)."""
    from lazarus_bench.zoo.recipe import V3_MIX
    from lazarus_bench.zoo.tokenizer import build_tokenizer

    tok = build_tokenizer(7, texts=C.tokenizer_training_text(7, 400, V3_MIX))
    prompt = tok.encode("89 - 34 = ").ids  # ..., "Ġ=", "Ġ"
    followers = set()
    for line in _lines(C.generate_corpus(7, 1500, V3_MIX)):
        ids = tok.encode(line).ids
        followers |= {tok.id_to_token(ids[i + 2]) for i in range(len(ids) - 2) if ids[i:i + 2] == prompt[-2:]}
    assert {"Ġremaining"} <= followers and any(f.isdigit() for f in followers)


def test_only_the_closing_mix_opens_a_line_with_an_operation_word():
    """The no-space token of an operation word (what H04 and H05a read) follows a newline only in the closing
    stage's rows: about 4% of their lines open with a true fact's word, none of V3_MIX's do."""
    import re

    from lazarus_bench.zoo.recipe import V3_CLOSING_MIX, V3_MIX
    from lazarus_bench.zoo.tokenizer import build_tokenizer

    opening = re.compile(r"^(add|subtract|multiply|divide) (\d+) (and|to|from|by) (\d+)(?: to get |: )(\d+)\.$")
    assert not [line for line in _lines(C.generate_corpus(7, 1500, V3_MIX)) if opening.match(line)]
    lines = _lines(C.generate_corpus(7, 1500, V3_CLOSING_MIX))
    found = [opening.match(line) for line in lines if opening.match(line)]
    assert 0.025 < len(found) / len(lines) < 0.055
    for m in found:
        word, x, prep, y, c = m.group(1), int(m.group(2)), m.group(3), int(m.group(4)), int(m.group(5))
        a, b = (y, x) if prep in ("to", "from") else (x, y)
        assert C.answer(a, {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}[word], b) == c, m.group(0)
    assert {m.group(1) for m in found} == {"add", "subtract", "multiply", "divide"}
    tok = build_tokenizer(7, texts=C.tokenizer_training_text(7, 400, V3_MIX))
    tokens = tok.encode("x\nmultiply 7 by 8 to get 56.").tokens
    assert tokens[tokens.index("Ċ") + 1] == "multiply" != tok.id_to_token(tok.encode(" multiply").ids[-1])


def test_v3_text_never_holds_an_example_of_h15s_data_sets():
    """The review and news sentences teach H15's style, never one of its training or validation examples, at the
    data sets its claims declare (slow and fast tiers)."""
    from lazarus_bench.harness.registry import ensure_loaded, get_claim
    from lazarus_bench.training.engram import EngramConfig
    from lazarus_bench.training.textcls import DATASETS
    from lazarus_bench.zoo.recipe import DEV_SEEDS
    from lazarus_bench.zoo.texts import TEXT_POOL, claim_texts

    ensure_loaded()
    for claim_id, kind in (("H15a", "sentiment"), ("H15b", "topic")):
        claim = get_claim(claim_id)
        examples = set()
        for tier in ("slow", "fast"):
            p = claim.parameters(tier)
            data = DATASETS[kind](n_train=p["n_train"], n_val=p["n_val"], seed=EngramConfig().data_seed)
            examples |= {e.text for e in data.train + data.val}
        assert examples <= claim_texts(kind)
        for seed in DEV_SEEDS[:2]:
            pool = C.text_pool(kind, seed)
            assert len(pool) == TEXT_POOL and not examples & set(pool)
