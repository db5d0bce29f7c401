"""Which instruct model pairs with a base model (H06): named ones, a zoo build's own, Llama-3.2's ``-Instruct``."""

from __future__ import annotations

import json
import os
import re

from ..errors import LazarusError
from ..zoo.registry import split_build, with_build, zoo_model_exists

ZOO_PREFIXES = ("zoo:", "zoo-micro:")


def instruct_pair_of(model_id: str) -> str | None:
    """A model's instruct variant from its id alone (a reused record checks it unloaded): explicit, zoo, Llama-3.2."""
    pair = instruct_pairs().get(model_id)
    if pair is None and model_id.startswith(ZOO_PREFIXES) and split_build(model_id.split(":", 1)[1])[0] == "base":
        pair = twin if zoo_model_exists(twin := with_build(model_id, "instruct")) else None
    if pair is None and re.search(r"llama-3\.2-\d+b$", model_id.lower()):
        return model_id + "-Instruct"
    return pair


INSTRUCT_PAIRS: dict[str, str] = {}  # explicit base -> instruct pairs of this process, over the environment's
PAIRS_ENV = "LAZARUS_INSTRUCT_PAIRS"  # JSON {base: instruct} (`run --instruct-pair`), seen by worker processes too


def instruct_pairs() -> dict[str, str]:
    """The explicit base -> instruct pairs: ``$LAZARUS_INSTRUCT_PAIRS`` (a JSON object), then ``INSTRUCT_PAIRS``."""
    raw = os.environ.get(PAIRS_ENV, "").strip()
    try:
        named = json.loads(raw) if raw else {}
    except ValueError:
        named = None
    if not isinstance(named, dict) or not all(isinstance(v, str) for v in [*named, *named.values()]):
        raise LazarusError(f"{PAIRS_ENV}={raw!r}: expected a JSON object of base -> instruct model ids")
    return {**named, **INSTRUCT_PAIRS}


def add_instruct_pairs(pairs: dict[str, str]) -> None:
    """Name base -> instruct pairs for this process and the workers it starts."""
    os.environ[PAIRS_ENV] = json.dumps({**instruct_pairs(), **pairs}, sort_keys=True)
