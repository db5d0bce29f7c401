"""Real tokenizers offline: llama.cpp's vocab-only GGUF files, rebuilt as Hugging Face ``tokenizers`` objects.

The files come from the ``llama-cpp-python`` source distribution on PyPI (fetched once into the cache with pip, or
read from ``$LAZARUS_VOCAB_SDIST``); no tokenizer file is committed here. Each GGUF's ``.inp``/``.out`` test
vectors (llama.cpp's own tokenizer tests) check the rebuilt tokenizer: :func:`check_vectors`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from ..cache import default_root
from ..errors import LazarusError

LLAMA_CPP_PYTHON = "0.3.36"
SDIST_ENV = "LAZARUS_VOCAB_SDIST"
VOCABS = ("llama-bpe", "llama-spm", "qwen2", "starcoder", "gpt-neox")
TEST_SEPARATOR = "\n__ggml_vocab_test__\n"

# llama.cpp's pre-tokenizer regexes (llama-vocab.cpp), by the GGUF's ``tokenizer.ggml.pre``.
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
PRE_REGEX = {
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+",
    "starcoder": _GPT2,
    "default": _GPT2,
}
SPLIT_DIGITS = {"starcoder"}  # StarCoder (and Granite) split every digit before the GPT-2 regex
IGNORE_MERGES = {"llama-bpe"}  # a word that is itself a token is taken whole (Llama-3's tokenizer.json)
CONTROL, USER_DEFINED, BYTE = 3, 4, 6  # llama.cpp token types


def vocab_root() -> Path:
    return default_root() / "tokenizers" / f"llama.cpp-{LLAMA_CPP_PYTHON}"


def _members(names: list[str]) -> list[str]:
    wanted = []
    for name in names:
        if "/vendor/llama.cpp/models/ggml-vocab-" in name:
            stem = name.rsplit("ggml-vocab-", 1)[1].split(".gguf")[0]
            if stem in VOCABS:
                wanted.append(name)
        elif name.endswith("/vendor/llama.cpp/LICENSE"):
            wanted.append(name)
    return wanted


def _download_sdist(into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
           f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", str(into)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(into.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode != 0 or not found:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LazarusError(f"could not download the llama-cpp-python {LLAMA_CPP_PYTHON} sdist with pip ({tail}); "
                           f"download it yourself and set {SDIST_ENV}=PATH")
    return found[0]


def fetch_vocabs() -> Path:
    """The folder holding ``ggml-vocab-NAME.gguf`` (+ ``.inp``/``.out``) for every name of :data:`VOCABS`,
    extracted once from the sdist (downloaded with pip unless ``$LAZARUS_VOCAB_SDIST`` names it)."""
    root = vocab_root()
    if all((root / f"ggml-vocab-{n}.gguf").is_file() for n in VOCABS):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".fetch-") as tmp:
        tmp = Path(tmp)
        sdist = Path(os.environ[SDIST_ENV]) if os.environ.get(SDIST_ENV) else _download_sdist(tmp)
        if not sdist.is_file():
            raise LazarusError(f"{SDIST_ENV}={sdist} is not a file")
        out = tmp / "vocabs"
        out.mkdir()
        with tarfile.open(sdist) as tar:
            names = _members(tar.getnames())
            for name in names:
                member = tar.getmember(name)
                if not member.isfile():
                    continue
                with tar.extractfile(member) as src, open(out / Path(name).name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        missing = [n for n in VOCABS if not (out / f"ggml-vocab-{n}.gguf").is_file()]
        if missing:
            raise LazarusError(f"{sdist.name} has no ggml-vocab file for {', '.join(missing)}")
        if root.exists():
            shutil.rmtree(root)
        os.replace(out, root)
    return root


def read_fields(path: str | os.PathLike) -> dict:
    """The ``tokenizer.*`` metadata of a GGUF file as Python values."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items() if k.startswith("tokenizer.")}


def _spm_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """BPE merges implied by a SentencePiece-BPE vocabulary: every split of a piece into two pieces, the pieces of
    higher score merged first (ties by the pieces' ids)."""
    ids = {t: i for i, t in enumerate(tokens) if types[i] == 1}
    found = []
    for piece, i in ids.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in ids and right in ids:
                found.append((-scores[i], ids[left], ids[right], left, right))
    found.sort()
    return [(left, right) for *_, left, right in found]


def to_tokenizer(fields: dict) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` equal to llama.cpp's for this GGUF vocabulary (BOS handling is set separately)."""
    kind = fields["tokenizer.ggml.model"]
    tokens = list(fields["tokenizer.ggml.tokens"])
    types = list(fields["tokenizer.ggml.token_type"])
    vocab = {t: i for i, t in enumerate(tokens)}
    if kind == "gpt2":
        pre = fields.get("tokenizer.ggml.pre", "default")
        if pre not in PRE_REGEX:
            raise LazarusError(f"no pre-tokenizer known for GGUF pre '{pre}'")
        merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"]]
        tok = Tokenizer(models.BPE(vocab, merges, ignore_merges=pre in IGNORE_MERGES))
        steps = [pre_tokenizers.Digits(individual_digits=True)] if pre in SPLIT_DIGITS else []
        steps += [pre_tokenizers.Split(Regex(PRE_REGEX[pre]), behavior="isolated"),
                  pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
        tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
        tok.decoder = decoders.ByteLevel()
    elif kind == "llama":
        unk = tokens[int(fields.get("tokenizer.ggml.unknown_token_id", 0))]
        merges = _spm_merges(tokens, list(fields["tokenizer.ggml.scores"]), types)
        tok = Tokenizer(models.BPE(vocab, merges, unk_token=unk, fuse_unk=True, byte_fallback=True))
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    else:
        raise LazarusError(f"GGUF tokenizer model '{kind}' is not supported (gpt2 BPE and llama SentencePiece are)")
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i, t in enumerate(types) if t == CONTROL])
    tok.add_tokens([AddedToken(tokens[i], special=False, normalized=False)
                    for i, t in enumerate(types) if t == USER_DEFINED])
    return tok


def with_bos(tok: Tokenizer, bos: str | None) -> Tokenizer:
    """Prepend ``bos`` on ``encode`` (as Llama's post-processor does); None leaves the text as it is."""
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    return tok


def load_gguf_tokenizer(name: str) -> Tokenizer:
    """The tokenizer of ``ggml-vocab-NAME.gguf`` (fetched if needed), converted once and kept beside the file."""
    if name not in VOCABS:
        raise LazarusError(f"unknown vocabulary '{name}' (known: {', '.join(VOCABS)})")
    root = fetch_vocabs()
    converted = root / f"converted-{name}.json"
    if not converted.is_file():
        tmp = converted.with_name(f".{converted.name}.{os.getpid()}")
        to_tokenizer(read_fields(root / f"ggml-vocab-{name}.gguf")).save(str(tmp))
        os.replace(tmp, converted)
    return Tokenizer.from_file(str(converted))


def llama_cpp_cases(name: str) -> list[tuple[str, list[int]]]:
    """llama.cpp's tokenizer test cases for a vocabulary: (text, ids without BOS)."""
    root = fetch_vocabs()
    texts = (root / f"ggml-vocab-{name}.gguf.inp").read_text(encoding="utf-8").split(TEST_SEPARATOR)
    outs = (root / f"ggml-vocab-{name}.gguf.out").read_text(encoding="utf-8").split("\n")
    texts[-1] = texts[-1].removesuffix(TEST_SEPARATOR.rstrip("\n")).removesuffix("\n")
    return [(t, [int(x) for x in o.split()]) for t, o in zip(texts, outs)]


def check_vectors(tok: Tokenizer, name: str) -> list[tuple[str, list[int], list[int]]]:
    """The test cases this tokenizer gets wrong: (text, expected ids, ids given)."""
    wrong = []
    for text, expected in llama_cpp_cases(name):
        got = tok.encode(text, add_special_tokens=False).ids
        if got != expected:
            wrong.append((text, expected, got))
    return wrong
