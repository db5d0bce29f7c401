"""Uniform access to any mlx-lm model: loading, unembedding, norms, routers, and all-layer capture.

Hidden states of every layer come from ONE forward pass of the model's own ``__call__``: its
layer objects are temporarily wrapped by taps, so each architecture keeps its own masks,
embedding scaling and per-layer logic (the original code's hand-written ``mask=None`` loops
were non-causal).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .errors import LazarusError
from .flops import counted
from .io import sha256_file, write_safetensors, write_text
from .zoo.registry import MANIFEST, resolve_zoo, verify
from .zoo.registry import PREFIXES as ZOO_PREFIXES

_INNER_CANDIDATES = ("model", "language_model.model", "language_model", "transformer", "backbone")
_EMBED_NAMES = ("embed_tokens", "wte", "tok_embeddings", "embeddings")
_NORM_NAMES = ("norm", "final_layernorm", "ln_f", "norm_f", "final_norm")
_MOE_BLOCK_NAMES = ("block_sparse_moe", "mlp", "moe", "feed_forward")
_ROUTER_NAMES = ("gate", "router", "router.layer")
_PRE_ROUTER_NORMS = ("post_attention_layernorm", "pre_feedforward_layernorm", "ffn_norm")


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
    return obj


def dense_weight(layer: nn.Module) -> mx.array:
    """The float32 weight matrix of a Linear, QuantizedLinear, Embedding or QuantizedEmbedding."""
    if "scales" in layer:
        return mx.dequantize(
            layer["weight"],
            layer["scales"],
            layer.get("biases"),
            group_size=layer.group_size,
            bits=layer.bits,
            mode=getattr(layer, "mode", "affine"),
        ).astype(mx.float32)
    return layer["weight"].astype(mx.float32)


def norm_gain(norm: nn.Module, dim: int) -> mx.array:
    """The elementwise gain of a final or pre-router norm, whatever its parametrisation.

    RMSNorm-like layers (including Gemma's ``1 + w``) map a unit-RMS vector of ones to their gain
    (up to the ``1/sqrt(1 + eps)`` factor, removed here); LayerNorm's gain is its weight.
    """
    if isinstance(norm, nn.LayerNorm):
        return norm.weight.astype(mx.float32) if "weight" in norm else mx.ones((dim,))
    eps = float(getattr(norm, "eps", 0.0) or 0.0)
    return norm(mx.ones((1, dim), dtype=mx.float32))[0].astype(mx.float32) * math.sqrt(1.0 + eps)


@dataclass
class Router:
    """The router of one MoE layer: rows score experts from the pre-router-normed residual."""

    layer: int
    weight: mx.array
    bias: mx.array | None
    norm_gain: mx.array
    top_k: int | None
    path: str

    @property
    def num_experts(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class Capture:
    """Everything one forward pass produced: hidden[0] = embedding output, hidden[i+1] = after block i."""

    hidden: list[mx.array]
    logits: mx.array


class _Tap:
    """Stands in for a model's layer during a capture and records its output (block 0: its input too)."""

    def __init__(self, layer: nn.Module, store: list, record_input: bool):
        object.__setattr__(self, "_layer", layer)
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_record_input", record_input)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    def __call__(self, x: mx.array, *args: Any, **kwargs: Any) -> Any:
        if self._record_input:
            self._store.append(x)
        out = self._layer(x, *args, **kwargs)
        self._store.append(out[0] if isinstance(out, tuple) else out)
        return out


@dataclass
class ModelHandle:
    """A loaded model with the parts that interpretability methods need, named uniformly."""

    model: nn.Module
    tokenizer: Any
    model_id: str
    adapter_path: str | None = None
    config: dict = field(default_factory=dict)
    path: str | None = None

    def __post_init__(self) -> None:
        self.model_type = str(self.config.get("model_type") or getattr(self.model, "model_type", "unknown"))
        self.inner, self.inner_path = self._find_inner()
        self.layers: list = self.inner.layers
        self.embed = next(self.inner[n] for n in _EMBED_NAMES if n in self.inner)
        self.final_norm = next(self.inner[n] for n in _NORM_NAMES if n in self.inner)
        self.lm_head = self.model["lm_head"] if "lm_head" in self.model else None
        args = getattr(self.model, "args", None)
        self.softcap = _first_attr(args, ("final_logit_softcapping",))
        self.logits_divisor = _first_attr(args, ("logits_scaling",))
        self.logits_multiplier = _first_attr(args, ("logit_scale",)) if self.model_type.startswith("cohere") else None
        self._anchor: tuple[int, str] | None = None  # decode_token's context token and its text

    def _find_inner(self) -> tuple[nn.Module, str]:
        missing = []
        for path in _INNER_CANDIDATES:
            inner = _get(self.model, path)
            if not isinstance(inner, nn.Module):
                continue
            have_layers = isinstance(inner.get("layers"), list) and len(inner["layers"]) > 0
            have_embed = any(n in inner for n in _EMBED_NAMES)
            have_norm = any(n in inner for n in _NORM_NAMES)
            if have_layers and have_embed and have_norm:
                return inner, path
            missing.append(
                f"{path}: "
                + ", ".join(
                    n
                    for n, ok in (("layers", have_layers), ("embedding", have_embed), ("final norm", have_norm))
                    if not ok
                )
            )
        detail = "; ".join(missing) or f"no inner module among {', '.join(_INNER_CANDIDATES)}"
        raise LazarusError(
            f"unsupported architecture '{getattr(self.model, 'model_type', type(self.model).__name__)}': "
            f"cannot find a decoder with layers, embedding and final norm ({detail})"
        )

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return int(self.embed.weight.shape[-1]) if "scales" not in self.embed else int(self.unembedding().shape[1])

    @property
    def vocab_size(self) -> int:
        return int(self.unembedding().shape[0])

    @property
    def tied(self) -> bool:
        return self.lm_head is None

    def layer_at_depth(self, fraction: float) -> int:
        """Block index ``int(fraction * L)`` (the writeups' convention: 0.55 of 16 layers -> block 8)."""
        return min(int(fraction * self.n_layers), self.n_layers - 1)

    def unembed(self, normed: mx.array) -> mx.array:
        """Logits from final-normed hidden states, with the architecture's own scaling or soft-capping."""
        logits = self.embed.as_linear(normed) if self.lm_head is None else self.lm_head(normed)
        if self.logits_divisor:
            logits = logits / self.logits_divisor
        if self.logits_multiplier:
            logits = logits * self.logits_multiplier
        if self.softcap:
            logits = mx.tanh(logits / self.softcap) * self.softcap
        return logits

    def lens_logits(self, hidden: mx.array) -> mx.array:
        """Logit lens: the model's final norm, then its real unembedding."""
        return self.unembed(self.final_norm(hidden))

    def unembedding(self) -> mx.array:
        """The dense (V, D) float32 unembedding matrix (lm_head when untied, embeddings when tied)."""
        if not hasattr(self, "_unembedding"):
            self._unembedding = dense_weight(self.embed if self.lm_head is None else self.lm_head)
        return self._unembedding

    def set_unembedding_rows(self, ids: Sequence[int], rows: np.ndarray) -> None:
        """Overwrite unembedding rows in place (the embedding rows too when tied), for planted controls."""
        module = self.embed if self.lm_head is None else self.lm_head
        if "scales" in module:
            raise LazarusError("quantized unembedding: rows can be set on dense weights only")
        weight = np.array(module.weight.astype(mx.float32))
        weight[list(ids)] = rows
        module.weight = mx.array(weight).astype(module.weight.dtype)
        self.__dict__.pop("_unembedding", None)

    def final_norm_gain(self) -> mx.array:
        return norm_gain(self.final_norm, int(self.unembedding().shape[1]))

    def embedding_scale(self) -> float:
        """Factor between the raw embedding lookup and what block 0 receives (Gemma: sqrt(D), Granite: multiplier)."""
        ids = mx.array([[0, 1]])
        capture = self.forward(ids)
        raw = self.embed(ids).astype(mx.float32)
        got = capture.hidden[0].astype(mx.float32)
        return float(mx.sum(got * raw) / mx.maximum(mx.sum(raw * raw), 1e-30))

    @contextmanager
    def _taps(self) -> Iterator[list]:
        store: list = []
        originals = list(self.layers)
        for i, layer in enumerate(originals):
            self.layers[i] = _Tap(layer, store, record_input=(i == 0))
        try:
            yield store
        finally:
            self.layers[:] = originals

    def forward(self, tokens: mx.array | Sequence[Sequence[int]]) -> Capture:
        """One forward pass of the model's own ``__call__``, capturing the residual after every block."""
        tokens = tokens if isinstance(tokens, mx.array) else mx.array(tokens)
        if tokens.ndim == 1:
            tokens = tokens[None]
        with self._taps() as store:
            logits = self.model(tokens)
        if len(store) != self.n_layers + 1:
            raise LazarusError(
                f"{self.model_type}: expected {self.n_layers + 1} captured states, got {len(store)} "
                "(the model does not call its layers once each in order)"
            )
        return Capture(hidden=store, logits=logits)

    @property
    def hf_tokenizer(self) -> Any:
        """The Hugging Face tokenizer inside mlx-lm's ``TokenizerWrapper`` (the tokenizer itself when not wrapped)."""
        return getattr(self.tokenizer, "_tokenizer", self.tokenizer)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text`` as the model sees it (BOS added where the tokenizer adds one)."""
        if not text:
            raise LazarusError("empty prompt: give at least one character of text")
        tok = self.hf_tokenizer
        try:  # verbose=False: the length check below says it in one line, not transformers' logger
            ids = list(tok.encode(text, add_special_tokens=add_special_tokens, verbose=False))
        except TypeError:
            ids = list(tok.encode(text, add_special_tokens=add_special_tokens))
        limit = self.max_positions
        if limit is not None and len(ids) > limit:
            raise LazarusError(f"text of {len(text):,} characters is {len(ids):,} tokens; {self.model_id} takes at "
                               f"most {limit:,} (its max_position_embeddings, else its tokenizer's model_max_length): "
                               "shorten it")
        return ids

    def continuation(self, text: str, after: str) -> list[int]:
        """Token ids that ``text`` adds when it follows ``after``: what the model has to predict there.

        Not ``encode(text)``: SentencePiece prepends a lone '▁' ('56' -> ['▁', '5', '6'] after '= ' is ['5', '6']).
        Falls back to ``encode(text)`` when the two merge across the boundary."""
        head = self.encode(after, add_special_tokens=False) if after else []
        whole = self.encode(after + text, add_special_tokens=False)
        if whole[:len(head)] == head and len(whole) > len(head):
            return whole[len(head):]
        return self.encode(text, add_special_tokens=False)

    @property
    def max_positions(self) -> int | None:
        """The longest sequence the checkpoint was configured for: ``max_position_embeddings``, else the tokenizer's
        ``model_max_length`` (None when neither says; Hugging Face writes a huge number for "unset")."""
        for value in (self.config.get("max_position_embeddings"), getattr(self.tokenizer, "model_max_length", None)):
            if isinstance(value, int) and 0 < value < 10**9:
                return value
        return None

    def decode_token(self, token_id: int) -> str:
        """The text one token adds after other text. A bare ``decode([id])`` is not: SentencePiece's decoder drops the
        first token's leading space, so '▁multiply' would print as 'multiply' and a lone '▁' as ''."""
        tok = self.hf_tokenizer
        if self._anchor is None:
            ids = tok.encode("a", add_special_tokens=False)
            self._anchor = (int(ids[-1]), tok.decode(ids[-1:])) if ids else (-1, "")
        anchor, text = self._anchor
        if anchor >= 0:
            both = tok.decode([anchor, int(token_id)])
            if both.startswith(text):
                return both[len(text):]
        return tok.decode([int(token_id)])

    def routers(self) -> list[Router]:
        """The router of every MoE layer (dense layers of hybrid models are skipped)."""
        found = []
        for i, layer in enumerate(self.layers):
            router = self._router_of(i, layer)
            if router is not None:
                found.append(router)
        return found

    def router_linear(self, router: Router) -> nn.Module:
        """The module holding ``router``'s weight (to edit it for a control); raises when it cannot be found."""
        module = _get(self.layers[router.layer], ".".join(router.path.split(".")[2:]))
        if not isinstance(module, nn.Module) or "weight" not in module:
            raise LazarusError(f"router module {router.path} not found in {self.model_type}")
        return module

    @property
    def is_moe(self) -> bool:
        return bool(self.routers())

    def _router_of(self, index: int, layer: nn.Module) -> Router | None:
        for block_name in _MOE_BLOCK_NAMES:
            block = _get(layer, block_name)
            if not isinstance(block, nn.Module):
                continue
            for router_name in _ROUTER_NAMES:
                lin = _get(block, router_name)
                if isinstance(lin, nn.Module) and "weight" in lin and _is_router_shape(lin, block, self):
                    norm = next((_get(layer, n) for n in _PRE_ROUTER_NORMS if _get(layer, n) is not None), None)
                    if norm is None:
                        raise LazarusError(
                            f"{self.model_type} layer {index}: router found at {block_name}.{router_name} "
                            f"but no preceding norm among {', '.join(_PRE_ROUTER_NORMS)}"
                        )
                    weight = dense_weight(lin)
                    bias = lin["bias"].astype(mx.float32) if "bias" in lin else None
                    top_k = _first_attr(block, ("num_experts_per_tok", "top_k")) or _first_attr(
                        _get(block, "router"), ("top_k",)
                    )
                    return Router(
                        layer=index,
                        weight=weight,
                        bias=bias,
                        norm_gain=norm_gain(norm, int(weight.shape[1])),
                        top_k=int(top_k) if top_k else None,
                        path=f"layers.{index}.{block_name}.{router_name}",
                    )
        return None

    def describe(self) -> dict:
        """Identity and shape of the model, for result records."""
        return {
            "model_id": self.model_id,
            "path": self.path,
            "adapter_path": self.adapter_path,
            "model_type": self.model_type,
            "n_layers": self.n_layers,
            "hidden_size": self.hidden_size,
            "vocab_size": self.vocab_size,
            "tied_embeddings": self.tied,
            "moe": self.is_moe,
        }


def _first_attr(obj: Any, names: Sequence[str]) -> Any:
    for name in names:
        value = getattr(obj, name, None) if obj is not None else None
        if value:
            return value
    return None


def _is_router_shape(lin: nn.Module, block: nn.Module, handle: ModelHandle) -> bool:
    """A router maps the hidden size to a small number of experts (not a gated MLP's gate_proj)."""
    n_experts = _first_attr(block, ("num_experts", "num_local_experts")) or _first_attr(
        getattr(handle.model, "args", None), ("num_local_experts", "num_experts", "n_routed_experts")
    )
    out_dim = int(lin["weight"].shape[0])
    return n_experts is not None and out_dim == int(n_experts)


def _upcast(model: nn.Module) -> None:
    """Half-precision checkpoints are computed in float32 on CPU (quantized tensors stay as they are)."""
    from mlx.utils import tree_flatten, tree_unflatten

    params = tree_flatten(model.parameters())
    cast = [(k, v.astype(mx.float32)) for k, v in params if v.dtype in (mx.float16, mx.bfloat16)]
    if cast:
        model.update(tree_unflatten(cast))


def load_model(
    path_or_id: str,
    adapter_path: str | None = None,
    *,
    float32: bool | None = None,
    check_lens: bool = True,
) -> ModelHandle:
    """Load a checkpoint directory or hub id (with an optional mlx-lm adapter) through ``mlx_lm.load``.

    ``float32`` defaults to True on CPU. MoE layers stay mlx-lm's gathered experts (see ``experts`` for why).
    ``check_lens`` verifies once that the lens at the last
    layer reproduces the model's own logits, so unsupported logit post-processing fails loudly.
    """
    import mlx_lm
    from mlx_lm.utils import load_config

    requested = path_or_id
    if path_or_id.startswith(ZOO_PREFIXES):
        path_or_id = str(resolve_zoo(path_or_id))
    local = Path(path_or_id).expanduser()
    looks_local = local.exists() or path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") != 1
    if looks_local and not local.is_dir():
        raise LazarusError(f"model path not found: {path_or_id}")
    if looks_local and (local / MANIFEST).is_file() and not requested.startswith(ZOO_PREFIXES):
        verify(local)
    if adapter_path is not None and not (Path(adapter_path) / "adapter_config.json").is_file():
        raise LazarusError(f"adapter path has no adapter_config.json: {adapter_path}")
    try:
        model, tokenizer = mlx_lm.load(str(local) if looks_local else path_or_id, adapter_path=adapter_path)
    except Exception as exc:  # noqa: BLE001  (hub, IO and config errors all become one line)
        hint = "" if looks_local else _hub_hint()
        raise LazarusError(f"could not load model '{path_or_id}': {type(exc).__name__}: {exc}{hint}") from None
    config = load_config(local) if looks_local else _hub_config(model)
    if float32 if float32 is not None else mx.default_device().type == mx.cpu:
        _upcast(model)
    model.eval()
    handle = ModelHandle(model=counted(model), tokenizer=tokenizer, model_id=requested, adapter_path=adapter_path,
                         config=config, path=str(local) if looks_local else None)
    if check_lens:
        verify_lens(handle)
    return handle


def check_model_id(model_id: str) -> None:
    """Raise a one-line ``LazarusError`` for a model id that cannot load, without loading it: a zoo name that is not
    built (listing those that are), a local path that is not a checkpoint folder, or a hub id not in the cache while
    offline. A hub id with network access is only checked by loading it."""
    if model_id.startswith(ZOO_PREFIXES):
        resolve_zoo(model_id)
        return
    local = Path(model_id).expanduser()
    if local.exists() or model_id.startswith((".", "/", "~")) or model_id.count("/") != 1:
        if not local.is_dir():
            raise LazarusError(f"model path not found: {model_id}")
        if not (local / "config.json").is_file():
            raise LazarusError(f"model folder {model_id} has no config.json: not a Hugging Face / mlx-lm checkpoint")
        return
    if _hub_hint():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model_id, "config.json"), str):
            raise LazarusError(f"could not load model '{model_id}': not in the Hugging Face cache{_hub_hint()}")


def _hub_hint() -> str:
    """What to try for a hub id that did not load, given the offline switches actually set."""
    offline = [name for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(name, "") not in ("", "0")]
    if offline:
        return (f" ({' and '.join(offline)} set: the model must already be in the Hugging Face cache; unset it with "
                "network access, or give a local path)")
    return " (check the id and your network access, or give a local checkpoint path)"


def _hub_config(model: nn.Module) -> dict:
    args = getattr(model, "args", None)
    return dict(vars(args)) if args is not None else {}


def verify_lens(handle: ModelHandle, atol: float = 1e-3) -> None:
    """Raise if the lens at the last layer does not reproduce the model's output logits."""
    ids = mx.array([[1, 2, 3]]) % max(handle.vocab_size, 1)
    capture = handle.forward(ids)
    lens = handle.lens_logits(capture.hidden[-1]).astype(mx.float32)
    out = capture.logits.astype(mx.float32)
    scale = float(mx.max(mx.abs(out))) + 1.0
    err = float(mx.max(mx.abs(lens - out)))
    if not err <= atol * scale:
        raise LazarusError(
            f"unsupported architecture '{handle.model_type}': the logit lens at the last layer differs from the "
            f"model's logits by {err:.3g} (unknown logit post-processing)"
        )


HF_EXPERT_NAMES = {"gate_proj": "w1", "down_proj": "w2", "up_proj": "w3"}
HF_EXPERTS = {  # model_type -> (mlx-lm's stacked block, transformers' per-expert names)
    "mixtral": (".block_sparse_moe.switch_mlp.", HF_EXPERT_NAMES),
    "olmoe": (".mlp.switch_mlp.", {name: name for name in HF_EXPERT_NAMES}),
}


def hf_layout(weights: dict[str, mx.array], config: dict) -> dict[str, mx.array]:
    """Weights under the names transformers expects: mlx-lm's stacked experts (Mixtral's
    ``block_sparse_moe.switch_mlp.gate_proj`` -> ``block_sparse_moe.experts.{e}.w1``, OLMoE's
    ``mlp.switch_mlp.gate_proj`` -> ``mlp.experts.{e}.gate_proj``), the inverse of mlx-lm's ``sanitize``; other
    architectures pass unchanged."""
    if config.get("model_type") not in HF_EXPERTS:
        return weights
    stacked, names = HF_EXPERTS[config["model_type"]]
    out = {}
    for name, value in weights.items():
        if stacked not in name:
            out[name] = value
            continue
        prefix, rest = name.split(".switch_mlp.")
        proj, leaf = rest.split(".", 1)
        for e in range(value.shape[0]):
            out[f"{prefix}.experts.{e}.{names[proj]}.{leaf}"] = value[e]
    return out


def save_model(model: nn.Module, config: dict, out_dir: str | os.PathLike, tokenizer_dir: str | None = None,
               dtype: mx.Dtype | None = None) -> Path:
    """Write a model in Hugging Face layout (config.json + model.safetensors [+ tokenizer files]).

    Weights and config are written to temporary files and renamed, so an interrupted save never
    leaves a half-written file under the final name.
    """
    import shutil

    from mlx.utils import tree_flatten

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = hf_layout(dict(tree_flatten(model.parameters())), config)
    if dtype is not None:
        weights = {k: v.astype(dtype) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in weights.items()}
    write_safetensors(out / "model.safetensors", weights, metadata={"format": "pt"})
    write_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    if tokenizer_dir is not None:
        for name in os.listdir(tokenizer_dir):
            if name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "chat_template")):
                shutil.copy(Path(tokenizer_dir) / name, out / name)
    return out


_FINGERPRINTS: dict[str, str] = {}


def local_path(model_id: str) -> Path | None:
    """The directory behind a model id (zoo ids resolved and verified), or None for a hub id."""
    if model_id.startswith(ZOO_PREFIXES):
        return resolve_zoo(model_id)
    path = Path(model_id).expanduser()
    return path if path.is_dir() else None


def model_fingerprint(model_id: str) -> str:
    """16 hex of sha256 over a local checkpoint's config and weights files, else over the hub id.

    The one model hash: records carry it and every cached fixture's key includes it.
    """
    if model_id not in _FINGERPRINTS:
        digest = hashlib.sha256()
        root = local_path(model_id)
        if root is not None:
            for p in sorted(p for p in root.iterdir() if p.suffix in (".json", ".safetensors") and p.is_file()):
                digest.update(p.name.encode())
                digest.update(sha256_file(p).encode())
        else:
            digest.update(f"hub:{model_id}".encode())
        _FINGERPRINTS[model_id] = digest.hexdigest()[:16]
    return _FINGERPRINTS[model_id]


def adapter_fingerprint(adapter_path: str | os.PathLike) -> str:
    """16 hex of sha256 over an mlx-lm adapter folder's config and weights files."""
    root = Path(adapter_path).expanduser()
    if not (root / "adapter_config.json").is_file():
        raise LazarusError(f"adapter path has no adapter_config.json: {adapter_path}")
    digest = hashlib.sha256()
    for p in sorted(p for p in root.iterdir() if p.suffix in (".json", ".safetensors") and p.is_file()):
        digest.update(p.name.encode())
        digest.update(sha256_file(p).encode())
    return digest.hexdigest()[:16]


def fuse_adapter(model_id: str, adapter_path: str, cache_root: str | os.PathLike | None = None) -> Path:
    """A checkpoint with an mlx-lm LoRA adapter fused into its weights, cached by both hashes: every claim (its
    own training runs and cached fixtures included) then sees one plain checkpoint with a hash of its own."""
    from mlx.utils import tree_unflatten
    from mlx_lm.utils import save

    from .cache import FixtureCache

    parts = {"method": "models.fuse_adapter", "model": model_fingerprint(model_id),
             "adapter": adapter_fingerprint(adapter_path)}

    def build(out: Path) -> None:
        handle = load_model(model_id, adapter_path, float32=False, check_lens=False)
        fused = [(name, module.fuse()) for name, module in handle.model.named_modules() if hasattr(module, "fuse")]
        if not fused:
            raise LazarusError(f"adapter {adapter_path} adds no LoRA layer to {model_id}: nothing to fuse")
        handle.model.update_modules(tree_unflatten(fused))
        save(out, handle.path or model_id, handle.model, handle.tokenizer, dict(handle.config), donate_model=False)

    return FixtureCache(cache_root).get_or_build(parts, build)
