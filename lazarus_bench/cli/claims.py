"""``lazarus-bench claims``: list the claim registry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..errors import LazarusError
from ..options import Interval
from ..userfiles import read_user_json
from .common import Parser, _table, apply_include, include_args, run_command

HELP = ("list the claim registry; --freeze pre-registers every claim's criteria, tests, parameters and measure; "
        "--amend logs a change after the freeze")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lazarus-bench claims", description=HELP)
    parser.add_argument("ids", nargs="*", metavar="ID",
                        help="show these claims in full: statement, criterion and tests, parameters, gates, controls")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--freeze", action="store_true",
                        help="write the confirmatory version of the lock (hash of each claim's criteria, tests, "
                             "parameters and measure source); refused once a version is frozen")
    action.add_argument("--amend", nargs="+", metavar="ID",
                        help="log an amendment for these claims (their hash changed since the lock in force)")
    action.add_argument("--open-stage1", action="store_true",
                        help="close lock v1 for stage 1 of the registered report (with --why): claims change until v2")
    action.add_argument("--draw-seeds", metavar="TAG",
                        help="draw the confirmatory seeds once, from the freeze commit TAG names (CONFIRMATORY.json)")
    action.add_argument("--spec", action="store_true",
                        help="print the claims specification the registry implements as markdown (docs/claims.md is "
                             "this output; a test keeps it current)")
    parser.add_argument("--why", default="", help="the reason (required with --amend and --open-stage1)")
    parser.add_argument("--what", default="", help="what the amendment changes (default: the claims' ids)")
    parser.add_argument("--basis", default="", help="what the frozen version implements (with --freeze)")
    parser.add_argument("--confirmatory", type=_confirmatory, default=None,
                        help="lock v2: the confirmatory builds to draw (>= 8), from the power analysis (--freeze)")
    parser.add_argument("--power", default="", help="lock v2: the power analysis that fixed --confirmatory (--freeze)")
    parser.add_argument("--records", default="reports",
                        help="report directory whose records give the verdicts before an amendment (default: reports)")
    parser.add_argument("--after", default=None, metavar="DIR",
                        help="lock v2: report directory of records made by the amended code (--amend)")
    parser.add_argument("--post-hoc", choices=("yes", "no"), default=None,
                        help="lock v2: had the results the amendment changes been seen? (--amend)")
    parser.add_argument("--lock-file", default=None, help="lock file (default: the one shipped beside the claims)")
    include_args(parser)
    return parser


def _confirmatory(text: str) -> int:
    """--confirmatory parsed: an integer of at least 8 (declared here, not in options.py, which records read)."""
    from ..stats.population import MIN_CONFIRMATORY

    try:
        return Interval(int, MIN_CONFIRMATORY).parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_claims(args: argparse.Namespace) -> int:
    apply_include(args)
    from ..harness import lock2, prereg
    from ..harness.registry import all_claims, get_claim

    path = args.lock_file or prereg.LOCK
    _check_options(args)
    if args.freeze:
        if not prereg.read_lock_file(path) and (args.confirmatory is not None or args.power):
            raise LazarusError("--confirmatory and --power belong to lock v2, frozen over a lock at v1")
        data = (lock2.freeze(path, basis=args.basis or "the registry as committed", confirmatory=args.confirmatory,
                             power=args.power, recipe=_recipe()) if prereg.read_lock_file(path)
                else prereg.freeze(path, basis=args.basis or "the registry as committed"))
        print(f"froze {len(data['frozen']['claims'])} claims as version {data['frozen']['version']} in {path}")
        return 0
    if args.amend:
        ids = [get_claim(i).id for i in args.amend]
        from ..suite.summary import population_verdicts

        records = _records(args.records, ids)
        before = _verdicts(records)
        if lock2.version_of(prereg.read_lock_file(path)) >= 2:
            if args.after is None or args.post_hoc is None:
                raise LazarusError("an amendment to lock v2 needs --after DIR (records made by the amended code) "
                                   "and --post-hoc yes|no")
            after = _records(args.after, ids, required="--after")
            verdicts = _verdicts(after)
            made_by = {_key(r): ((r.prereg or {}).get("hash", ""), verdicts[_key(r)]) for r in after}
            entry = lock2.amend(ids, why=args.why, what=args.what or f"changed {', '.join(ids)}",
                                post_hoc=args.post_hoc == "yes", before=before, after=made_by,
                                populations=(population_verdicts(records, ids), population_verdicts(after, ids)),
                                path=path)
            print(f"amendment {entry['number']} for {', '.join(ids)} in {path} "
                  f"({'post hoc' if entry['post_hoc'] else 'declared before the results'})")
            return 0
        entry = prereg.amend(ids, why=args.why, what=args.what or f"changed {', '.join(ids)}", verdicts_before=before,
                             records_touched=list(before), path=path)
        print(f"amendment {entry['number']} for {', '.join(ids)} in {path} ({len(before)} records touched)")
        return 0
    if args.open_stage1:
        data = prereg.open_stage1(path, why=args.why)
        print(f"stage 1 open in {path} since {data['stage1']['date']}: lock v1 closed until lock v2 is frozen")
        return 0
    if args.draw_seeds:
        drawn = lock2.draw(args.draw_seeds, path)
        print(f"drew {len(drawn['seeds'])} confirmatory seeds from {args.draw_seeds} ({drawn['commit'][:12]}): "
              + ", ".join(map(str, drawn["seeds"])))
        return 0
    if args.spec:
        print(spec_markdown(all_claims(), prereg.read_lock_file(path)), end="")
        return 0
    if args.ids:
        hashes = prereg.effective_hashes(prereg.read_lock_file(path))
        print("\n".join(line for i in args.ids for line in claim_markdown(get_claim(i), hashes)), end="")
        return 0
    data = prereg.read_lock_file(path)
    rows = [{"id": c.id, "title": c.title, "source": c.source, "protocols": ", ".join(c.protocols),
             "training": "yes" if c.training else "no", "lock": lock2.status(c, data)} for c in all_claims()]
    print(_table(rows))
    print(f"lock {prereg.lock_version(data)}"
          + "".join(f"\n  no longer holds here: {line}" for line in lock2.drift(data, _recipe()["hash"])))
    drawn = lock2.read_drawn(path)
    if drawn:
        print(f"confirmatory seeds drawn from {drawn['tag']} ({drawn['commit'][:12]}): "
              + ", ".join(map(str, drawn["seeds"])))
    elif lock2.version_of(data) >= 2:
        print("confirmatory seeds: not drawn yet (commit the freeze, tag it, then --draw-seeds TAG)")
    return 0


def _recipe() -> dict:
    """The zoo recipe lock v2 holds: its name, hash and development seeds."""
    from ..zoo.recipe import DEV_SEEDS, RECIPE, SIZES, recipe_hash

    return {"name": RECIPE, "hash": recipe_hash(SIZES["default"]), "development_seeds": list(DEV_SEEDS)}


def _check_options(args: argparse.Namespace) -> None:
    """An option the chosen action does not read is an error, not silently ignored; so is a --lock-file that does
    not exist, except for --freeze (which writes it)."""
    if args.why and not (args.amend or args.open_stage1):
        raise LazarusError("--why applies only with --amend or --open-stage1")
    for name, given, action in (("--what", args.what, "--amend"),
                                ("--records", args.records != "reports", "--amend"),
                                ("--after", args.after, "--amend"), ("--post-hoc", args.post_hoc, "--amend"),
                                ("--basis", args.basis, "--freeze"),
                                ("--confirmatory", args.confirmatory is not None, "--freeze"),
                                ("--power", args.power, "--freeze")):
        if given and not getattr(args, action[2:]):
            raise LazarusError(f"{name} applies only with {action}")
    if args.ids and (args.freeze or args.amend or args.spec or args.draw_seeds or args.open_stage1):
        chosen = ("--freeze" if args.freeze else "--spec" if args.spec else "--draw-seeds" if args.draw_seeds
                  else "--open-stage1" if args.open_stage1 else "--amend")
        raise LazarusError(f"claim ids ({' '.join(args.ids)}) show claims in full; {chosen} acts on "
                           f"{'the ids it names itself' if args.amend else 'every claim'}, so give one or the other")
    if args.lock_file and Path(args.lock_file).is_dir():
        raise LazarusError(f"--lock-file {args.lock_file} is a folder: name the lock file")
    if args.lock_file and not args.freeze and not Path(args.lock_file).is_file():
        raise LazarusError(f"--lock-file {args.lock_file}: no such file (only --freeze writes a new one)")
    if args.lock_file and Path(args.lock_file).is_file():  # a bad file is one line with its position
        read_user_json(args.lock_file, "--lock-file")


def spec_markdown(claims, lock: dict) -> str:
    """The claims specification as the registry implements it: per claim its statement, source, criterion with each
    criterion's declared test, the writeup's numbers, parameters, fitness gates, controls, protocols, seeds and its
    locked hash. Generated, so it cannot drift from the code."""
    from ..harness import prereg
    from ..suite.runner import TRAINED_DEFAULT, TRAINED_ENV, TRAINED_GATE

    lines = ["# The claims lazarus_bench implements", "",
             "Generated from the registry by `lazarus-bench claims --spec` (do not edit; a test checks it is current). "
             "It is what the code runs: the writeups' claims as the project's CLAIMS.md (revision 3) states them, "
             "implemented. Lock "
             f"{prereg.lock_version(lock)}.", "",
             "**Every claim** first checks the trained-model gate (the runner's, not part of any claim's hash): "
             f"{TRAINED_GATE.description}; threshold {TRAINED_DEFAULT} (`${TRAINED_ENV}`). A model that fails it is "
             "NOT TESTABLE for every claim, and nothing else is run on it.", ""]
    hashes = prereg.effective_hashes(lock)
    for c in claims:
        lines += claim_markdown(c, hashes)
    return "\n".join(lines)


def parameter_table(c) -> str:
    """Each field of claim ``c``'s parameter dataclass as a markdown table: default, declared range, what it sets."""
    from dataclasses import fields

    from tabulate import tabulate

    defaults = c.params_type()()
    rows = [{"parameter": f"`{f.name}`", "default": f"`{getattr(defaults, f.name)!r}`",
             "valid": str(f.metadata["range"] or "not checked"), "what it sets": f.metadata["help"]}
            for f in fields(defaults)]
    return tabulate(rows, headers="keys", tablefmt="github")


def claim_markdown(c, hashes: dict[str, str]) -> list[str]:
    """One claim's section of the specification, as lines."""
    lines = [f"## {c.id}: {c.title}", "", f"**Claim.** {c.statement}", "", f"**Source.** {c.source}", "",
             f"**Criterion.** {c.criterion}", "", f"**Writeup.** {c.writeup}", "",
             "**Declared tests.** " + ("; ".join(f"`{k}`: {v}" for k, v in c.tests.items()) or "none"), "",
             f"**Parameters** (override with `--params '{{\"{c.id}\": {{\"name\": value}}}}'`; the fast tier "
             f"sets {', '.join(f'`{k}` = {v!r}' for k, v in c.fast.items()) or 'none'}):", "",
             parameter_table(c), ""]
    if c.gates:
        lines += ["**Fitness gates** (a failed one makes the verdict NOT TESTABLE):", ""]
        lines += [f"- {g.name} (`{g.threshold_param}` = {c.params.get(g.threshold_param)!r}, {g.direction}): "
                  f"{g.description}" for g in c.gates] + [""]
    if c.controls:
        lines += ["**Controls:**", ""]
        lines += [f"- {k.name} ({k.kind}{', sanity check: by construction, not counted' if k.sanity else ''}; the "
                  f"effect reads {k.effect}): {k.description}" for k in c.controls]
        lines += [""]
    lines += ["**Graded positive controls** (strengths frozen in the lock; empirical MDE = smallest strength detected "
              "in >= 80% of replicates):", ""]
    for g in c.graded:  # the construction, then its strengths as a paragraph of their own
        lines += [f"- {g.name}: {g.description}.", "",
                  f"  Strengths: {g.units} at {', '.join(f'{s:g}' for s in g.strengths)}, {g.replicates} replicates "
                  f"each; threshold {g.threshold if g.threshold is not None else '-'}, writeup {g.writeup:g}, the "
                  f"verdict rests on the {g.claimed}'s value; the effect reads {g.effect}.", ""]
    if not c.graded:
        lines += [f"- none: {c.no_graded or 'none declared yet'}"]
    lines += [""]
    if c.nulls:
        lines += ["**Null controls** (effect absent, the measurement's variance; false-positive rate):", ""]
        lines += [f"- {n.name}: {n.description}; {n.replicates} replicates; a flag reads {n.effect}" for n in c.nulls]
        lines += [""]
    seeds = (f"{c.default_seeds['slow']} (fast tier {c.default_seeds['fast']})" if c.training
             else "none (an analysis of the model as it is)")
    lines += [f"**Protocols** {', '.join(c.protocols)}; **training seeds** {seeds}; **runs after** "
              f"{', '.join(c.after) or '-'}; **locked hash** `{hashes.get(c.id, 'not locked')[:16]}`.", ""]
    return lines


def _records(report_dir: str, ids: list[str], required: str = "") -> list:
    """The records of ``ids`` in ``report_dir``, read once; none without a records folder, or an error naming the
    ``required`` option that must point at one."""
    from ..suite.records import load_records

    if not (Path(report_dir) / "records").is_dir():
        if required:
            raise LazarusError(f"{required} {report_dir}: no records folder there; run the claims into it first")
        return []
    return [r for r in load_records(report_dir).records if r.claim_id in ids]


def _key(record) -> str:
    return f"{record.claim_id} {record.model.id} {record.protocol}"


def _verdicts(records: list) -> dict[str, str]:
    """Each record's verdict (or status), keyed 'ID model protocol'."""
    return {_key(r): str(r.verdict or r.status) for r in records}


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(cmd_claims, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
