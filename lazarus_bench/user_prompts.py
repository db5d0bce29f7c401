"""A user's own prompts: a prompts file (JSONL rows or one prompt per line) and ``--classes`` specs, as a labelled
prompt set for ``lens`` and ``probe``."""

from __future__ import annotations

import json

from .errors import LazarusError
from .prompts import PromptItem, PromptSet, Source

USER_SOURCE = Source(seed="user", seed_file="-", section="-", origin="command line or prompts file", reference="-")


def read_prompts_file(path: str) -> list[dict]:
    """A user's prompts: JSONL rows ``{"text": ..., "label": ..., "split": "train"|"test"}`` (label and split
    optional), or plain text with one prompt per line."""
    from pathlib import Path

    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise LazarusError(f"cannot read prompts file {path!r}: {exc.strerror or exc}") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not line.lstrip().startswith("{"):
            rows.append({"text": line})
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LazarusError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"]:
            raise LazarusError(f"{path}:{n}: expected an object with a non-empty string 'text'")
        if not all(isinstance(row.get(k, ""), str) for k in ("label", "split")) or row.get("split") not in (
                None, "train", "test"):
            raise LazarusError(f"{path}:{n}: 'label' must be a string and 'split' 'train' or 'test'")
        rows.append(row)
    if not rows:
        raise LazarusError(f"prompts file {path!r} has no prompts")
    return rows


def user_set(classes: list[str] | None = None, rows: list[dict] | None = None, test: list[str] | None = None,
             name: str = "user") -> PromptSet:
    """A labelled prompt set from ``--classes "LABEL:prompt|prompt"`` and/or prompts-file rows, plus unlabelled
    ``test`` prompts (split "test"); ``pair`` numbers each class's prompts, for leave-one-pair-out CV."""
    entries = []
    for spec in classes or []:
        label, sep, texts = spec.partition(":")
        prompts = [t for t in texts.split("|") if t.strip()]
        if not sep or not label.strip() or not prompts:
            raise LazarusError(f"--classes {spec!r}: expected LABEL:prompt|prompt|...")
        entries += [{"text": t, "label": label.strip()} for t in prompts]
    entries += rows or []
    entries += [{"text": t, "label": "?", "split": "test"} for t in test or []]
    counts: dict[str, int] = {}
    items = []
    for i, row in enumerate(entries):
        split = row.get("split") or ("test" if not row.get("label") else "train")
        label = row.get("label") or "?"
        pair = counts.get(label, 0) if split == "train" else None
        counts[label] = counts.get(label, 0) + (split == "train")
        items.append(PromptItem(id=f"{name}-{i}", text=row["text"], label=label, a=0, b=0, answer=0, op="",
                                pair=pair, item=row["text"], split=split))
    train = [it for it in items if it.split == "train"]
    per_class = {label: n for label, n in counts.items() if n}
    if train and (len(per_class) < 2 or min(per_class.values()) < 2):
        raise LazarusError(f"a probe needs at least 2 classes of at least 2 labelled prompts each, got {per_class}")
    return PromptSet(name=name, items=tuple(items), source=USER_SOURCE, note="the user's prompts")
