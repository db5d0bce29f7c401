"""Lock v2 (CLAIMS.md revision 4): a claim's hash covers the meaning of every file that feeds its records, and the
frozen lock also holds the verdict rules, the pinned environment, the zoo recipe and the confirmatory builds' number.

The hash itself (``prereg.lock_hash``) lives in :mod:`.prereg`, whose ``check`` stamps every record with it once v2
is in force; the freeze, amendments and the seed draw are here, read only by ``lazarus-bench claims``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from .. import codehash
from ..codehash import python_tag
from ..errors import LazarusError
from ..io import write_json
from ..stats.population import MIN_CONFIRMATORY
from ..userfiles import read_user_json
from .base import Claim
from .prereg import LOCK, NOTE, _today, claim_hash, effective_hashes, lock_hash, lock_version, read_lock_file
from .registry import all_claims

REQUIREMENTS = codehash.PACKAGE.parent / "requirements.lock"  # the dependency lock the freeze pins
RULES = "lazarus_bench.stats.population"  # the population verdict over builds: one rules hash beside the claims'
CONFIRMATORY = "CONFIRMATORY.json"  # the drawn seeds, written once beside the lock file
SEED_RULE = ("seed i is the first 8 hex digits of sha256('<freeze commit>:<i>') as an integer, i = 0, 1, ..., "
             "skipping development seeds and repeats, until the confirmatory number is drawn")


def rules_hash() -> str:
    """The meaning of the population verdict's rules: its module and what it imports."""
    return codehash.digest(codehash.closure(codehash.module_file(RULES)))


def version_of(data: dict) -> int:
    """The frozen version a lock holds (0: none, or the old unversioned form)."""
    return int(data["frozen"].get("version", 0)) if data else 0


def hash_of(claim: Claim, version: int) -> str:
    """The claim's hash as lock ``version`` computes it."""
    return lock_hash(claim) if version >= 2 else claim_hash(claim)


def status(claim: Claim, data: dict) -> str:
    """``matches``, ``differs`` or ``not locked``: the claim against the lock in force, hashed as its version does."""
    locked = effective_hashes(data).get(claim.id)
    return "not locked" if locked is None else "matches" if locked == hash_of(claim, version_of(data)) else "differs"


def freeze(path: str | Path | None = None, *, basis: str, confirmatory: int | None, power: str, recipe: dict,
           date: str | None = None) -> dict:
    """Freeze lock v2 over a lock at v1 (closed when stage 1 began), which it keeps under ``closed``. Refused without
    ``confirmatory`` (>= 8) and the ``power`` analysis that fixed it, and at v2: a later change is an amendment, so a
    lock can never be rewritten to follow the results."""
    path = Path(path or LOCK)
    data = read_lock_file(path)
    if version_of(data) >= 2:
        raise LazarusError(f"{path} is frozen at {lock_version(data)}; change a claim with "
                           "'lazarus-bench claims --amend ID --why TEXT' instead")
    if confirmatory is None or confirmatory < MIN_CONFIRMATORY or not power.strip():
        raise LazarusError(f"{path} is frozen at v1, closed when stage 1 began: lock v2 needs --confirmatory N "
                           f"(>= {MIN_CONFIRMATORY}, from the power analysis) and --power TEXT")
    frozen = {"version": 2, "date": date or _today(), "basis": basis,
              "claims": {c.id: lock_hash(c) for c in all_claims()}, "confirmatory": confirmatory, "power": power,
              "recipe": recipe, "seed_rule": SEED_RULE, **environment()}
    write_json(path, {"note": NOTE, "frozen": frozen, "amendments": [], "closed": [data]})
    return read_lock_file(path)


def amend(claim_ids: list[str], *, why: str, what: str, post_hoc: bool, before: dict[str, str],
          after: dict[str, tuple[str, str]], populations: tuple[dict, dict] = ({}, {}),
          path: str | Path | None = None, date: str | None = None) -> dict:
    """Append an amendment to lock v2 with the verdicts before and after it as measured now: ``after`` maps each
    record's key to (its claim hash, its verdict), and each must come from the amended code; ``populations`` holds
    each claim's population verdict before and after. ``post_hoc`` says whether the results it changes had been
    seen. Refused for an unchanged claim, without a reason, or before v2."""
    path = Path(path or LOCK)
    data = read_lock_file(path)
    if version_of(data) < 2:
        raise LazarusError(f"{path} is not at lock v2: amend it with 'lazarus-bench claims --amend ID --why TEXT'")
    if not why.strip():
        raise LazarusError("an amendment needs its reason (--why)")
    claims = {c.id: c for c in all_claims()}
    unknown = [i for i in claim_ids if i not in claims]
    if unknown:
        raise LazarusError(f"unknown claim id(s) {', '.join(unknown)} (known: {', '.join(sorted(claims))})")
    hashes = {i: lock_hash(claims[i]) for i in claim_ids}
    unchanged = [i for i, h in hashes.items() if effective_hashes(data).get(i) == h]
    if unchanged:
        raise LazarusError(f"nothing to amend for {', '.join(unchanged)}: the hash equals the lock's")
    other = sorted(k for k, (h, _) in after.items() if h != hashes[k.split()[0]])
    missing = sorted(set(claim_ids) - {k.split()[0] for k in after})
    if other or missing:
        raise LazarusError("--after must hold records made by the amended code: "
                           + (f"{other[0]} was made by other code" if other else f"no record of {missing[0]}"))
    entry = {"number": len(data["amendments"]) + 1, "date": date or _today(), "claims": hashes, "what": what,
             "why": why, "post_hoc": post_hoc, "records_touched": sorted(set(before) | set(after)),
             "verdicts_before": dict(sorted(before.items())),
             "verdicts_after": {k: v for k, (_, v) in sorted(after.items())},
             "population_before": dict(sorted(populations[0].items())),
             "population_after": dict(sorted(populations[1].items()))}
    data["amendments"].append(entry)
    write_json(path, data)
    return entry


def environment() -> dict:
    """What lock v2 pins beside the code: the verdict rules' hash, the Python tag and the dependency lock's sha256."""
    if not REQUIREMENTS.is_file():
        raise LazarusError(f"{REQUIREMENTS}: no dependency lock to pin; freeze from a checkout of the project")
    return {"rules": rules_hash(), "python": python_tag(),
            "requirements": hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()}


def drift(data: dict, recipe_hash: str | None = None) -> list[str]:
    """What lock v2 pins that no longer holds here (the rules, the Python tag, the dependency lock, the recipe)."""
    if version_of(data) < 2:
        return []
    frozen = data["frozen"]
    now = {**environment(), "recipe": recipe_hash or frozen["recipe"]["hash"]}
    then = {**{k: frozen[k] for k in ("rules", "python", "requirements")}, "recipe": frozen["recipe"]["hash"]}
    return [f"{k}: locked {then[k]}, here {now[k]}" for k in then if then[k] != now[k]]


def _git(cwd: Path, *args: str) -> str:
    """A git command's output, or one line saying why it failed."""
    try:
        return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise LazarusError("git is not installed: the confirmatory seeds are drawn from the freeze commit") from None
    except subprocess.CalledProcessError as exc:
        reason = (exc.stderr.strip().splitlines() or ["failed"])[-1]
        raise LazarusError(f"git {' '.join(args)}: {reason}") from None


def draw(tag: str, path: str | Path | None = None) -> dict:
    """Draw the confirmatory seeds from the commit ``tag`` names, which must hold the lock v2 in force, into
    CONFIRMATORY.json beside the lock: once, so no seed can be redrawn after a build is seen."""
    from ..zoo.recipe import draw_seeds

    path = Path(path or LOCK).resolve()
    data, out = read_lock_file(path), path.with_name(CONFIRMATORY)
    if version_of(data) < 2:
        raise LazarusError(f"{path} holds no lock v2: freeze it ('lazarus-bench claims --freeze --confirmatory N "
                           "--power TEXT'), commit, tag the commit, then draw")
    if out.exists():
        raise LazarusError(f"{out} exists: the confirmatory seeds are drawn once")
    top = Path(_git(path.parent, "rev-parse", "--show-toplevel").strip()).resolve()
    try:
        commit = _git(top, "rev-parse", "--verify", f"{tag}^{{commit}}").strip()
    except LazarusError:
        raise LazarusError(f"{tag}: no such tag or commit in {top}") from None
    try:
        then = json.loads(_git(top, "show", f"{commit}:{path.relative_to(top).as_posix()}"))
    except ValueError:
        then = {}
    if version_of(then) < 2 or then.get("frozen") != data["frozen"]:
        raise LazarusError(f"{tag} ({commit[:12]}) does not hold the lock v2 frozen in {path}: tag its freeze commit")
    frozen = data["frozen"]
    seeds = draw_seeds(commit, frozen["confirmatory"], skip=tuple(frozen["recipe"]["development_seeds"]))
    write_json(out, {"tag": tag, "commit": commit, "rule": frozen["seed_rule"], "recipe": frozen["recipe"],
                     "seeds": seeds})
    return read_drawn(path)


def read_drawn(path: str | Path | None = None) -> dict:
    """The drawn confirmatory seeds beside the lock file (``{}`` before the draw)."""
    out = Path(path or LOCK).with_name(CONFIRMATORY)
    return read_user_json(out, "the confirmatory seeds") if out.exists() else {}
