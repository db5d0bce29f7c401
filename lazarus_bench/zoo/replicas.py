"""Scaled-down random-weight replicas of the writeups' checkpoints, with their real tokenizers and chat templates.

Each replica keeps what the claims meet on the real model: architecture and its options (tied or untied head, rope
scaling, Granite's multipliers, Qwen's qkv bias, GPT-OSS's sinks, sliding window and router bias, OLMoE's experts),
vocabulary size, special tokens, BOS handling and chat template; width and depth are small. Verdicts on random
weights mean nothing: replicas check that prompts, targets, answers, templates and layer fractions are right.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import AddedToken

from ..models import save_model
from ..tiny import build_model
from .registry import replica_root
from .vocabs import fetch_vocabs, load_gguf_tokenizer, with_bos

LLAMA3_CHAT = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: 26 Jul 2024\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
    "'<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
ZEPHYR_CHAT = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)
GRANITE_CHAT = (
    "{%- for message in messages %}"
    "{{- '<|start_of_role|>' + message['role'] + '<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_of_role|>assistant<|end_of_role|>' }}{%- endif %}"
)
CHATML_CHAT = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
HARMONY_CHAT = (
    "{{- '<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
    "Reasoning: medium\n\n# Valid channels: analysis, commentary, final.<|end|>' }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|start|>assistant<|channel|>final<|message|>' + message['content'] + '<|end|>' }}"
    "{%- else %}{{- '<|start|>' + message['role'] + '<|message|>' + message['content'] + '<|end|>' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start|>assistant' }}{%- endif %}"
)
HARMONY_TOKENS = ("<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>", "<|start|>",
                  "<|end|>", "<|message|>", "<|call|>")
GRANITE_TOKENS = ("<|start_of_role|>", "<|end_of_role|>", "<|tool_call|>")

RECIPE = 2  # bump when a replica's config, tokenizer or layout changes: cached replicas of another recipe are rebuilt
_SMALL = dict(hidden_size=64, num_hidden_layers=6, intermediate_size=128, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=2048)


@dataclass(frozen=True)
class Replica:
    """One checkpoint: its hub id, real config values (scaled-down width and depth), and its tokenizer."""
    hub_id: str
    vocab: str  # a name of vocabs.VOCABS
    config: dict
    bos: str | None  # the token encode() prepends, None when the tokenizer adds none
    eos: str
    chat_template: str | None = None
    extra_tokens: tuple[str, ...] = ()  # special tokens the GGUF vocabulary lacks, appended
    rename: dict = field(default_factory=dict)  # token id -> the real model's name for it
    stand_in: str = ""  # what differs from the real tokenizer, said in the manifest

    @property
    def name(self) -> str:
        return self.hub_id.split("/")[-1]


def _llama(**kw) -> dict:
    return {"model_type": "llama", "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": True,
            "vocab_size": 128256, "bos_token_id": 128000, "eos_token_id": 128001, **_SMALL, "head_dim": 16,
            "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                             "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "max_position_embeddings": 131072, **kw}


REPLICAS: dict[str, Replica] = {r.name: r for r in (
    Replica("meta-llama/Llama-3.2-1B", "llama-bpe", _llama(), bos="<|begin_of_text|>", eos="<|end_of_text|>"),
    Replica("meta-llama/Llama-3.2-1B-Instruct", "llama-bpe", _llama(eos_token_id=[128001, 128008, 128009]),
            bos="<|begin_of_text|>", eos="<|eot_id|>", chat_template=LLAMA3_CHAT),
    Replica("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "llama-spm",
            {"model_type": "llama", "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
             "vocab_size": 32000, "bos_token_id": 1, "eos_token_id": 2, **_SMALL, "num_key_value_heads": 1},
            bos="<s>", eos="</s>", chat_template=ZEPHYR_CHAT),
    Replica("ibm-granite/granite-3.1-2b-base", "starcoder",
            {"model_type": "granite", "rms_norm_eps": 1e-5, "rope_theta": 5000000.0, "tie_word_embeddings": True,
             "vocab_size": 49155, "bos_token_id": 0, "eos_token_id": 0, "embedding_multiplier": 12.0,
             "residual_multiplier": 0.22, "attention_multiplier": 0.015625, "logits_scaling": 8.0,
             "attention_bias": False, "mlp_bias": False, **_SMALL},
            bos=None, eos="<|end_of_text|>", chat_template=GRANITE_CHAT, extra_tokens=GRANITE_TOKENS,
            rename={0: "<|end_of_text|>"}),
    Replica("Qwen/Qwen2.5-7B", "qwen2",
            {"model_type": "qwen2", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": False,
             "vocab_size": 152064, "bos_token_id": 151643, "eos_token_id": 151643, **_SMALL},
            bos=None, eos="<|endoftext|>", chat_template=CHATML_CHAT,
            stand_in="Qwen2's vocabulary file: ids 151646-151664 are its [PAD] filler tokens where Qwen2.5 has "
                     "tool and vision tokens"),
    Replica("openai/gpt-oss-20b", "llama-bpe",
            {"model_type": "gpt_oss", "rms_norm_eps": 1e-5, "rope_theta": 150000, "vocab_size": 201088,
             "hidden_size": 64, "num_hidden_layers": 6, "intermediate_size": 64, "head_dim": 16,
             "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 8, "num_experts_per_tok": 4,
             "sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"] * 3,
             "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
                              "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": False},
             "tie_word_embeddings": False, "max_position_embeddings": 131072, "bos_token_id": 199998,
             "eos_token_id": 200002},
            bos=None, eos="<|return|>", chat_template=HARMONY_CHAT, extra_tokens=HARMONY_TOKENS,
            stand_in="Llama-3's BPE (cl100k family) stands in for o200k_harmony, which no package registry ships; "
                     "the harmony special tokens and chat format are real"),
    Replica("allenai/OLMoE-1B-7B-0924", "gpt-neox",
            {"model_type": "olmoe", "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
             "vocab_size": 50304, "bos_token_id": None, "eos_token_id": 50279, "num_experts": 8,
             "num_experts_per_tok": 2, **_SMALL, "intermediate_size": 32, "num_key_value_heads": 4},
            bos=None, eos="<|endoftext|>"),
)}


# The real width and depth of the writeups' two dense checkpoints (their hub config.json), for measurements at full
# size: random weights, saved in bfloat16 as the hub ships them. Ids ``replica:NAME-full``.
FULL = {
    "Llama-3.2-1B": dict(hidden_size=2048, num_hidden_layers=16, intermediate_size=8192, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=64),
    "TinyLlama-1.1B-Chat-v1.0": dict(hidden_size=2048, num_hidden_layers=22, intermediate_size=5632,
                                     num_attention_heads=32, num_key_value_heads=4, head_dim=64,
                                     max_position_embeddings=2048),
}
FULL_SUFFIX = "-full"


def full_config(name: str) -> dict:
    """The replica's config at the real checkpoint's width and depth."""
    return {**REPLICAS[name].config, **FULL[name]}


def build_tokenizer_dir(rep: Replica, out: Path) -> Path:
    """Write the replica's tokenizer (tokenizer.json, tokenizer_config.json, special_tokens_map.json) to ``out``."""
    tok = load_gguf_tokenizer(rep.vocab)
    if rep.rename:
        vocab = json.loads(tok.to_str())
        for i, new in rep.rename.items():
            old = tok.id_to_token(i)
            vocab["model"]["vocab"] = {(new if k == old else k): v for k, v in vocab["model"]["vocab"].items()}
            for added in vocab["added_tokens"]:
                if added["id"] == i:
                    added["content"] = new
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(json.dumps(vocab))
    if rep.extra_tokens:
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in rep.extra_tokens
                                if tok.token_to_id(t) is None])
    with_bos(tok, rep.bos)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": rep.bos, "eos_token": rep.eos,
              "add_bos_token": rep.bos is not None, "add_eos_token": False, "clean_up_tokenization_spaces": False,
              "model_max_length": rep.config.get("max_position_embeddings", 2048)}
    if rep.chat_template:
        config["chat_template"] = rep.chat_template
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps({"bos_token": rep.bos, "eos_token": rep.eos}) + "\n")
    return out


def _current(out: Path, seed: int) -> bool:
    from .registry import MANIFEST

    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("recipe") == RECIPE and manifest.get("seed", 0) == seed


def build_replica(name: str, root: str | os.PathLike | None = None, seed: int = 0, force: bool = False,
                  full: bool = False) -> Path:
    """Build (once per recipe) the replica ``name`` of :data:`REPLICAS` into ``root``/NAME and return its directory;
    ``full``: at the real checkpoint's size (:data:`FULL`) into ``root``/NAME-full.

    Concurrent builders (pytest-xdist workers) take turns on a lock file, so none replaces a folder another reads."""
    import fcntl

    import mlx.core as mx

    from .build import write_manifest

    rep = REPLICAS[name]
    root = Path(root or replica_root())
    out = root / (rep.name + (FULL_SUFFIX if full else ""))
    config = full_config(name) if full else dict(rep.config)
    if _current(out, seed) and not force:
        return out
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _current(out, seed) and not force:
            return out
        fetch_vocabs()
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            build_tokenizer_dir(rep, tmp)
            save_model(build_model(dict(config), seed=seed), dict(config), tmp, dtype=mx.bfloat16 if full else None)
            write_manifest(tmp, {"kind": "replica", "recipe": RECIPE, "hub_id": rep.hub_id, "vocab": rep.vocab,
                                 "seed": seed, "full_size": full, "stand_in": rep.stand_in,
                                 "note": "random weights: verdicts mean nothing"})
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    return out


def build_replicas(root: str | os.PathLike | None = None) -> dict[str, Path]:
    return {name: build_replica(name, root) for name in REPLICAS}


def build_full_replicas(root: str | os.PathLike | None = None, seed: int = 0,
                        force: bool = False) -> dict[str, Path]:
    """The full-size replicas, one at a time (each holds about 5 GB in float32 while it is made)."""
    return {name + FULL_SUFFIX: build_replica(name, root, seed=seed, force=force, full=True) for name in FULL}
