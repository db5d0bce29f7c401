"""Generated text-classification sets for the engram models (seed 004): 2-class sentiment, 4-class topic.

Stand-ins for SST-2 and AG News that need no download: short lower-case English sentences from
templates and word lists, a pure function of an integer seed (``random.Random(seed)`` only).
Labels are not a bag of keywords: sentiment uses negation ("not good" is negative) and contrast
("dull, but the ending was moving" takes the clause after "but"); a topic sentence may have a
generic subject or event (one topic cue left), and 30% end with an event of another topic
("..., days after the striker won the cup"), so the label depends on which clause is the main one.
Train and validation texts are distinct strings; classes are balanced in both.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import LazarusError

SENTIMENT_CLASSES = ("negative", "positive")
TOPIC_CLASSES = ("world", "sports", "business", "science")

_SUBJECTS = (
    "the film", "this movie", "the plot", "the acting", "the story", "the ending", "the music", "the cast",
    "this book", "the meal", "the service", "the show", "the hotel", "the game", "the album", "the script",
    "the trip", "the concert", "the dialogue", "the visit",
)
_NOUNS = ("film", "movie", "story", "book", "meal", "show", "evening", "trip", "song", "day", "read", "ride")
_POSITIVE = (
    "good", "great", "wonderful", "brilliant", "charming", "delightful", "moving", "clever", "superb", "fresh",
    "lovely", "warm", "funny", "gripping", "beautiful", "smart", "solid", "fun", "excellent", "pleasant",
)
_NEGATIVE = (
    "bad", "awful", "dull", "boring", "weak", "terrible", "clumsy", "flat", "tedious", "messy",
    "poor", "bland", "stale", "silly", "painful", "lazy", "ugly", "slow", "cheap", "forgettable",
)
_POS_VERBS = ("loved", "enjoyed", "liked", "adored", "admired", "savoured")
_NEG_VERBS = ("hated", "disliked", "regretted", "endured", "resented", "dreaded")
_INTENSIFIERS = ("", "very ", "really ", "quite ", "so ", "truly ", "rather ", "pretty ")
_OPENERS = ("", "honestly, ", "in the end, ", "overall, ", "to be fair, ", "sadly, ", "frankly, ", "all in all, ")

_TOPICS: dict[str, dict[str, tuple[str, ...]]] = {
    "world": {
        "subjects": ("the president", "the prime minister", "the embassy", "rebel forces", "the united nations",
                     "voters", "the parliament", "diplomats", "the foreign minister", "the army"),
        "events": ("signed a peace treaty", "called for new elections", "condemned the attack", "held border talks",
                   "imposed sanctions", "sent troops to the region", "agreed to a ceasefire",
                   "expelled the ambassador", "opened an inquiry into the coup", "met refugees at the border"),
    },
    "sports": {
        "subjects": ("the striker", "the home team", "the coach", "the champions", "the goalkeeper", "the captain",
                     "the tennis star", "the relay team", "the young sprinter", "the visiting side"),
        "events": ("won the cup", "scored twice in the second half", "lost the final on penalties",
                   "broke the world record", "reached the semifinal", "missed the match with an injury",
                   "beat the league leaders", "took gold in the relay", "was sent off", "drew with their rivals"),
    },
    "business": {
        "subjects": ("the company", "shares of the bank", "investors", "the central bank", "the retailer",
                     "the airline", "the startup", "the carmaker", "the oil giant", "the chief executive"),
        "events": ("reported higher quarterly profits", "cut two thousand jobs", "raised interest rates",
                   "announced a merger", "missed sales forecasts", "rose sharply on wall street",
                   "filed for bankruptcy", "agreed a takeover deal", "lowered its earnings outlook",
                   "issued new bonds"),
    },
    "science": {
        "subjects": ("researchers", "the space agency", "scientists", "the software maker", "astronomers",
                     "engineers", "the chip designer", "the lab", "biologists", "the telescope team"),
        "events": ("launched a rocket to the moon", "discovered a new species of frog", "released a faster chip",
                   "published a study on gene editing", "tested a new vaccine", "detected a distant planet",
                   "built a walking robot", "patched a browser flaw", "mapped the human genome",
                   "measured melting glaciers"),
    },
}
_GENERIC_SUBJECTS = ("officials", "a spokesperson", "the group", "local media", "critics", "the committee",
                     "sources", "the organisers")
_GENERIC_EVENTS = ("made headlines", "faced fresh criticism", "held a press conference", "announced new plans",
                   "drew wide attention", "denied the rumours")
_AFTER = ("a week after", "days after", "hours after", "a month after", "shortly after")
_TIMES = ("on monday", "on friday", "last week", "this year", "after months of delay", "in a statement",
          "according to reports", "late on sunday", "earlier today", "for the first time")
_PLACES = ("london", "tokyo", "paris", "cairo", "sydney", "new york", "berlin", "lagos", "lima", "seoul")


@dataclass(frozen=True)
class TextExample:
    """One labelled sentence (``label`` indexes the data set's ``classes``)."""

    text: str
    label: int


@dataclass
class TextDataset:
    """A generated classification set: class names, train and validation examples, and how it was made."""

    name: str
    classes: tuple[str, ...]
    train: list[TextExample]
    val: list[TextExample]
    seed: int
    meta: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        return asdict(self)


def _sentiment_text(rng: random.Random, label: int) -> str:
    good, bad = (_POSITIVE, _NEGATIVE) if label == 1 else (_NEGATIVE, _POSITIVE)
    verbs = _POS_VERBS if label == 1 else _NEG_VERBS
    subj, subj2 = rng.sample(_SUBJECTS, 2)
    form = rng.randrange(7)
    if form == 0:
        return f"{rng.choice(_OPENERS)}{subj} was {rng.choice(_INTENSIFIERS)}{rng.choice(good)}."
    if form == 1:
        return f"{rng.choice(_OPENERS)}{subj} was not {rng.choice(_INTENSIFIERS)}{rng.choice(bad)}."
    if form == 2:
        return f"{subj} was {rng.choice(bad)}, but {subj2} was {rng.choice(_INTENSIFIERS)}{rng.choice(good)}."
    if form == 3:
        a, b = rng.sample(good, 2)
        return f"i found {subj} {rng.choice(_INTENSIFIERS)}{a} and {b}."
    if form == 4:
        return f"what a {rng.choice(good)} {rng.choice(_NOUNS)}!"
    if form == 5:
        return f"{rng.choice(_OPENERS)}we {rng.choice(verbs)} {subj}."
    return f"{subj} felt {rng.choice(bad)} at first, yet {rng.choice(_INTENSIFIERS)}{rng.choice(good)} by the end."


def _topic_text(rng: random.Random, label: int) -> str:
    topic = _TOPICS[TOPIC_CLASSES[label]]
    generic_subject = rng.random() < 0.3
    subj = rng.choice(_GENERIC_SUBJECTS if generic_subject else topic["subjects"])
    event = rng.choice(_GENERIC_EVENTS if not generic_subject and rng.random() < 0.3 else topic["events"])
    when = rng.choice(_TIMES)
    form = rng.randrange(4)
    if form == 0:
        text = f"{subj} {event} {when}"
    elif form == 1:
        text = f"{when}, {subj} {event}"
    elif form == 2:
        text = f"{rng.choice(_PLACES)}: {subj} {event} {when}"
    else:
        text = f"reports say {subj} {event} in {rng.choice(_PLACES)}"
    if rng.random() < 0.3:
        other = _TOPICS[rng.choice([t for i, t in enumerate(TOPIC_CLASSES) if i != label])]
        text += f", {rng.choice(_AFTER)} {rng.choice(other['subjects'])} {rng.choice(other['events'])}"
    return text + "."


def _generate(name: str, classes: tuple[str, ...], make: Callable[[random.Random, int], str],
              n_train: int, n_val: int, seed: int) -> TextDataset:
    """Balanced distinct texts per class, shuffled, then split (so no text is in both splits)."""
    n_classes = len(classes)
    if n_train < n_classes or n_val < n_classes:
        raise LazarusError(f"{name}: need at least {n_classes} train and validation examples (one per class)")
    rng = random.Random(f"{name}:{seed}")
    per_train = [n_train // n_classes + (c < n_train % n_classes) for c in range(n_classes)]
    per_val = [n_val // n_classes + (c < n_val % n_classes) for c in range(n_classes)]
    seen: set[str] = set()
    train: list[TextExample] = []
    val: list[TextExample] = []
    for c in range(n_classes):
        need = per_train[c] + per_val[c]
        texts: list[str] = []
        attempts = 0
        while len(texts) < need:
            attempts += 1
            if attempts > 200 * need + 1000:
                raise LazarusError(f"{name}: cannot draw {need} distinct texts of class '{classes[c]}'")
            text = make(rng, c)
            if text not in seen:
                seen.add(text)
                texts.append(text)
        train += [TextExample(t, c) for t in texts[: per_train[c]]]
        val += [TextExample(t, c) for t in texts[per_train[c]:]]
    rng.shuffle(train)
    rng.shuffle(val)
    return TextDataset(name=name, classes=classes, train=train, val=val, seed=seed,
                       meta={"n_train": n_train, "n_val": n_val})


def sentiment_dataset(n_train: int = 400, n_val: int = 100, seed: int = 0) -> TextDataset:
    """2-class sentiment (negative, positive) with negation and contrast clauses; an SST-2 stand-in."""
    return _generate("sentiment", SENTIMENT_CLASSES, _sentiment_text, n_train, n_val, seed)


def topic_dataset(n_train: int = 400, n_val: int = 100, seed: int = 0) -> TextDataset:
    """4-class news topic (world, sports, business, science) with cross-topic distractors; an AG News stand-in."""
    return _generate("topic", TOPIC_CLASSES, _topic_text, n_train, n_val, seed)


DATASETS: dict[str, Callable[..., TextDataset]] = {"sentiment": sentiment_dataset, "topic": topic_dataset}


REAL = {  # name -> (hub id, folder under $LAZARUS_DATA_DIR, text column, validation split): seed 004's data sets
    "sentiment": ("stanfordnlp/sst2", "sst2", "sentence", "validation"),
    "topic": ("fancyzhx/ag_news", "ag_news", "text", "test"),
}
DATA_DIR_ENV = "LAZARUS_DATA_DIR"
SOURCES = ("generated", "real", "auto")
_LOADED: dict[str, tuple | str] = {}


def _balanced(split, text_column: str, n: int, n_classes: int, rng: np.random.Generator) -> list[TextExample]:
    labels = np.asarray(split["label"])
    per = [n // n_classes + (c < n % n_classes) for c in range(n_classes)]
    picked = []
    for c in range(n_classes):
        pool = np.flatnonzero(labels == c)
        if pool.size < per[c]:
            raise LazarusError(f"the data set has {pool.size} examples of class {c}, {per[c]} needed")
        picked += [int(i) for i in rng.permutation(pool)[:per[c]]]
    rng.shuffle(picked)
    texts = split[text_column]
    return [TextExample(str(texts[i]).strip(), int(labels[i])) for i in picked]


def real_dataset(name: str, n_train: int, n_val: int, seed: int) -> TextDataset:
    """SST-2 (sentiment) or AG News (topic), balanced and seeded, from ``$LAZARUS_DATA_DIR/{sst2,ag_news}``
    (``datasets.save_to_disk`` folders) or the Hugging Face datasets cache; LazarusError when neither has it."""
    hub, folder, text_column, val_split = REAL[name]
    local = Path(os.environ[DATA_DIR_ENV]) / folder if os.environ.get(DATA_DIR_ENV) else None
    key = f"{hub}|{local}"
    if key not in _LOADED:  # a failed hub lookup costs ~25 s of retries: try once per process
        try:
            import datasets

            if local is not None and local.is_dir():
                _LOADED[key] = (datasets.load_from_disk(str(local)), str(local))
            else:
                _LOADED[key] = (datasets.load_dataset(hub), f"{hub} (Hugging Face datasets)")
        except ImportError:
            _LOADED[key] = "the datasets package is not installed"
        except Exception as exc:  # noqa: BLE001  (offline, not cached, unreadable: all mean "not available here")
            _LOADED[key] = f"{hub} is not available here ({type(exc).__name__})"
    if isinstance(_LOADED[key], str):
        raise LazarusError(_LOADED[key])
    data, origin = _LOADED[key]
    classes = SENTIMENT_CLASSES if name == "sentiment" else TOPIC_CLASSES
    rng = np.random.default_rng(seed)
    train = _balanced(data["train"], text_column, n_train, len(classes), rng)
    val = _balanced(data[val_split], text_column, n_val, len(classes), rng)
    return TextDataset(name=name, classes=classes, train=train, val=val, seed=seed,
                       meta={"n_train": n_train, "n_val": n_val, "source": origin})


def make_dataset(name: str, n_train: int = 400, n_val: int = 100, seed: int = 0,
                 source: str = "generated") -> TextDataset:
    """The set called ``name`` (``sentiment`` or ``topic``): generated, real (SST-2 / AG News, else an error), or
    auto (real where available here, else generated, saying why in ``meta["source"]``)."""
    if name not in DATASETS:
        raise LazarusError(f"unknown data set '{name}' ({' or '.join(DATASETS)})")
    if source not in SOURCES:
        raise LazarusError(f"data source must be one of {', '.join(SOURCES)}, got {source!r}")
    if source != "generated":
        try:
            return real_dataset(name, n_train, n_val, seed)
        except LazarusError as exc:
            if source == "real":
                raise
            why = str(exc)
    data = DATASETS[name](n_train=n_train, n_val=n_val, seed=seed)
    data.meta["source"] = "generated" + (f" (real data: {why})" if source == "auto" else "")
    return data
