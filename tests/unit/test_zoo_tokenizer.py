
import pytest

from lazarus_bench.zoo import tokenizer as T
from lazarus_bench.zoo.corpus import OPERATION_WORDS, tokenizer_training_text


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    tok = T.build_tokenizer(0, texts=tokenizer_training_text(0, 1500))
    T.save_tokenizer(tok, d)
    return d


@pytest.fixture(scope="module")
def hf(tok_dir):
    return T.load_hf_tokenizer(tok_dir)


def test_digits_one_per_token(hf):
    for text in ("0123456789", "7 * 8 = 56", "100 - 43 = 57", "What is 12 times 11? 132"):
        toks = hf.convert_ids_to_tokens(hf.encode(text, add_special_tokens=False))
        assert all(sum(c.isdigit() for c in t) <= 1 for t in toks), toks
        assert sum(any(c.isdigit() for c in t) for t in toks) == sum(c.isdigit() for c in text)


@pytest.mark.parametrize("word", OPERATION_WORDS)
def test_operation_words_single_token(hf, word):
    assert len(hf.encode(word, add_special_tokens=False)) == 1
    assert len(hf.encode(" " + word, add_special_tokens=False)) == 1


def test_round_trip_and_bos(hf):
    for text in ("7 * 8 = 56", "What is seven times eight? 56\nThe cat sat.", "Größe 3 ½ !"):
        ids = hf.encode(text)
        assert ids[0] == hf.bos_token_id
        assert hf.decode(ids, skip_special_tokens=True) == text
        assert hf.decode(hf.encode(text, add_special_tokens=False)) == text
    assert hf.eos_token == T.EOS and hf.bos_token == T.BOS


def test_chat_template(hf):
    msgs = [{"role": "user", "content": "What is 7 times 8?"}]
    text = hf.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text == T.BOS + T.chat_prompt("What is 7 times 8?")
    full = hf.apply_chat_template(msgs + [{"role": "assistant", "content": "56"}], tokenize=False)
    assert full == f"{T.BOS}<|user|>What is 7 times 8?<|assistant|>56<|end|>"


def test_mlx_lm_wrapper_prepends_bos(tok_dir):
    from mlx_lm.tokenizer_utils import load as load_wrapper

    w = load_wrapper(tok_dir)
    ids = w.encode("7 * 8 = ")
    assert ids[0] == w.bos_token_id
    assert w.eos_token_id == w.convert_tokens_to_ids(T.EOS)


def test_check_fails_loudly_when_words_are_split():
    with pytest.raises(T.TokenizerCheckError):
        T.build_tokenizer(0, vocab_size=300, texts=["hello world"] * 10)
