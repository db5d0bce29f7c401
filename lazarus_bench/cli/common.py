"""What several commands share: the parser, argument types, tables, layer lists, model loading and error handling."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from .. import progress
from ..errors import LazarusError
from ..userfiles import read_user_json
from .settings import check_environment


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``lazarus-bench CMD: error: ... (see --help)`` and exit 2."""

    def error(self, message: str) -> NoReturn:
        say_error(f"{message} (see {self.prog} --help)", prefix=f"{self.prog}: error:")
        self.exit(2)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        """Python 3.11's argparse drops a '--' given as an option's value (``--steps=--``) and returns [] without
        calling the option's type: refuse it as a missing value instead."""
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
        return super()._get_values(action, arg_strings)


def layer_list(text: str) -> list[str]:
    """``3,5,emb``: at least one block index or 'emb' (ranges are checked against the model when it is loaded)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated block indices and/or 'emb', got {text!r}")
    for part in parts:
        if part != "emb" and not part.lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(f"layer {part!r} is not a block index or 'emb'")
    return parts


def json_object(text: str) -> dict[str, Any]:
    """A JSON object given on the command line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg} at character {exc.pos}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object {{...}}, got {type(value).__name__}: {text!r}")
    return value


def output_file(text: str) -> str:
    """A path a result file may be written to: a new or regular file in a writable folder (never a link, folder,
    FIFO or device, which writing would replace)."""
    from ..io import check_writable

    try:
        check_writable(text)
    except LazarusError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def output_dir(text: str) -> str:
    """A folder to write into: new, or an existing folder (never a file or a link to one)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a folder")
    return text


def existing_file(text: str) -> str:
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return text


def existing_dir(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {text!r}")
    return text


def adapter_dir(text: str) -> str:
    """An mlx-lm LoRA adapter folder: adapter_config.json beside its weights."""
    config = Path(text).expanduser() / "adapter_config.json"
    if not config.is_file():
        raise argparse.ArgumentTypeError(f"adapter path has no adapter_config.json: {text!r}")
    try:
        read_user_json(config, "the adapter's config")
    except LazarusError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def include_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--include", action="append", type=existing_dir, metavar="DIR",
                   help="also register the claims defined in DIR/*.py (repeatable; see CONTRIBUTING.md)")


def fill_defaults(args: argparse.Namespace, defaults: dict) -> None:
    """Options left out take these defaults: they default to None in the parser, so that a command can first refuse
    one given where its action would ignore it."""
    for key, default in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, default)


def apply_include(args: argparse.Namespace) -> None:
    """Load the ``--include`` folders' claims into the registry (and into every worker started later)."""
    if getattr(args, "include", None):
        from ..harness.registry import ensure_loaded, include

        ensure_loaded()  # the packaged claims first, so that a user's file reusing one of their ids is the one named
        include(args.include)


def model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", required=True, help="checkpoint dir, hub id, or zoo:NAME")
    p.add_argument("--adapter", type=adapter_dir,
                   help="mlx-lm adapter directory (adapters.safetensors + adapter_config.json)")
    p.add_argument("--json", metavar="PATH", type=output_file, help="also write the full result as JSON")


def _table(rows: list[dict], headers: str | Sequence[str] = "keys") -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, floatfmt=".4g")


def _load(args: argparse.Namespace):
    from ..models import load_model

    return load_model(args.model, adapter_path=getattr(args, "adapter", None))


def check_records_read(report_dir: str) -> None:
    """Raise when the report had to leave records out (unreadable, another schema, incomplete)."""
    from ..errors import LazarusError
    from ..suite.records import load_records

    skipped = load_records(report_dir).skipped
    if skipped:
        name, why = skipped[0]
        raise LazarusError(f"{len(skipped)} record(s) in {report_dir}/records could not be read and are left out of "
                           f"the report (first: {name}: {why}); re-run or remove them")



class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C (workers stopped, temp files removed)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _join_pool_threads(timeout: float = 30.0) -> None:
    """Wait, bounded, for the manager threads of process pools being shut down to finish closing their pipes: one
    still running when the interpreter exits races CPython 3.11's exit hook on its wakeup pipe (a stray EBADF
    traceback). Pools still in use are left alone."""
    pools = sys.modules.get("concurrent.futures.process")
    for thread in list(getattr(pools, "_threads_wakeups", {})):
        executor = getattr(thread, "executor_reference", lambda: None)()
        if executor is None or getattr(executor, "_shutdown_thread", True):
            try:
                thread.join(timeout)
            except (KeyboardInterrupt, Terminated):  # a second Ctrl-C while it winds down: exit all the same
                return


MAX_ERROR = 300  # characters of an error line; a longer message goes whole to a log file the line names
WHOLE_MESSAGE = "lazarus-bench: the whole message:"


def say_error(message: str, prefix: str = "lazarus-bench: error:") -> None:
    """One line on stderr; a message too long for one line is cut there and written whole to a log file."""
    text = " ".join(message.split())
    line = f"{prefix} {text}"
    if len(line) <= MAX_ERROR:
        print(line, file=sys.stderr)
        return
    log = error_log(f"{prefix} {message}")
    half = (MAX_ERROR - 3) // 2  # the start says what failed, the end usually what to do: keep both
    print(f"{line[:half]} … {line[-half:]}", file=sys.stderr)
    print(f"{WHOLE_MESSAGE} {log}", file=sys.stderr)


def error_log(message: str) -> Path:
    """Write ``message`` to a new file under the cache's ``logs/`` (or the temp folder) and return its path."""
    import tempfile
    import time

    from ..cache import default_root

    for folder in (default_root() / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            path.write_text(message + "\n")
            return path
        except OSError:
            continue
    return Path("(no writable folder for the log)")


def run_command(fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one command: a ``LazarusError`` is one line on stderr and exit 2; Ctrl-C exits 130 and SIGTERM 143, both
    with one line; a closed output pipe (``| head``) ends quietly."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C interrupts even where SIGINT was inherited as ignored (commands started with & by a script)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    progress.reset()  # a claim job an earlier command left in this process is not this command's
    try:
        check_environment()
        return fn(args)
    except LazarusError as exc:
        say_error(str(exc))
        return 2
    except KeyboardInterrupt:
        print("lazarus-bench: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("lazarus-bench: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # no space, read-only, permission, name too long: the path and the cause, one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"lazarus-bench: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        _join_pool_threads()  # on every way out: an error, like Ctrl-C, leaves a pool stopped without waiting
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
