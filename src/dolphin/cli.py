"""The one `dolphin` command. Each subcommand lives in `dolphin.commands.<name>`.

A command module exposes ``register(subparsers)``; it adds its parser and sets ``func`` to a
handler taking the parsed namespace and returning an exit code. Handlers import heavy modules
lazily so ``dolphin --help`` stays fast. Typed DOLPHIN errors become one line on stderr and the
error's exit code; nothing else is caught, except the two ways a user ends a command early:

- Ctrl-C (SIGINT): exit 130 with one line saying what was saved and how to resume. A command
  module may define ``interrupt_note(args, command) -> str`` for that line (``command`` is the
  command line to re-run); the default says nothing resumable was saved.
- A closed stdout (``dolphin ... | head``): exit 141 (128 + SIGPIPE, like other Unix tools) in
  silence, with stdout pointed at /dev/null so the interpreter's last flush cannot fail again
  (the recipe of the Python docs, "Note on SIGPIPE").

``-v/--verbose`` (debug) and ``-q/--quiet`` (warnings only, no progress bars) are taken from
anywhere on the command line (``dolphin sweep ... -v`` as well as ``dolphin -v sweep ...``),
up to a ``--`` (``log_level``); every subcommand's ``--help`` shows each option's default.

Before a handler runs, temporary files a SIGKILLed earlier run left beside its outputs
(``--out``, ``--log-dir``, ``--state-dir``) are removed (``core.io.remove_stale_temps``). Run as
the console command (no ``argv`` given), every child process it forks (``--workers``) ignores
Ctrl-C and dies with it, even when it is SIGKILLed (``core.procs.guard_forked_children``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from dolphin import __version__
from dolphin.core.errors import DolphinError

log = logging.getLogger(__name__)

INTERRUPTED_EXIT = 130
BROKEN_PIPE_EXIT = 141
#: Arguments naming where a command writes; their stale temporary files are removed first.
OUTPUT_ARGS = ("out", "log_dir", "state_dir")

COMMAND_MODULES = (
    "run", "data", "config", "scan", "hz", "backtest", "mc", "paper",
    "sweep", "walkforward", "optimize", "study", "ledger", "replay_session", "book",
    "exchange", "factors", "obf", "mesh", "runs", "tui", "edge",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="dolphin",
        description="DOLPHIN: correlation-structure crypto perpetual-futures trading system.",
    )
    parser.add_argument("--version", action="version", version=f"dolphin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging (anywhere on the command line)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="warnings and errors only, no progress bars (anywhere)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"dolphin.commands.{name}").register(sub)
    return parser


class _DefaultsFormatter(argparse.HelpFormatter):
    """Append ``(default: X)`` to an option's help unless it says its default already, the
    default is None or it is a flag (``store_true``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default in (None, False, argparse.SUPPRESS)
                or not action.option_strings
                or (isinstance(default, bool) and action.nargs == 0)):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class _Parser(argparse.ArgumentParser):
    """The subcommands' parser: help with defaults (nested subcommands inherit the class)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        super().__init__(*args, **kwargs)


LOG_FLAGS = {"-v": "verbose", "--verbose": "verbose", "-q": "quiet", "--quiet": "quiet"}


def log_flags(argv: Sequence[str]) -> tuple[list[str], set[str]]:
    """Return ``argv`` without its ``-v/-q`` flags (before a ``--``) and the flags' names.

    ``-vq``-style bundles of only these letters count too; anything else is left to argparse.
    """
    rest, seen, args = [], set(), list(argv)
    for i, tok in enumerate(args):
        if tok == "--":
            return rest + args[i:], seen
        if tok in LOG_FLAGS:
            seen.add(LOG_FLAGS[tok])
        elif len(tok) > 2 and tok[0] == "-" and tok[1] != "-" and set(tok[1:]) <= {"v", "q"}:
            seen.update(LOG_FLAGS[f"-{c}"] for c in tok[1:])
        else:
            rest.append(tok)
    return rest, seen


def log_level(flags: set[str]) -> int:
    """Return the logging level of the ``-v/-q`` flags given (``-v`` wins over ``-q``)."""
    if "verbose" in flags:
        return logging.DEBUG
    return logging.WARNING if "quiet" in flags else logging.INFO


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dolphin` console script."""
    console = argv is None  # the real command, not a test calling main([...]) in-process
    ctrl_c = _CtrlC()
    if console:
        from dolphin.core.procs import guard_forked_children

        guard_forked_children()
        ctrl_c.install()
    argv = list(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        rest, flags = log_flags(argv)
        args = parser.parse_args(rest)
        args.verbose, args.quiet = "verbose" in flags, "quiet" in flags and "verbose" not in flags
        args.argv = list(argv)  # what the run index records
        args.command_line = "dolphin " + shlex.join(argv)  # for "re-run with: ..." lines
        code = _dispatch(parser, args)
        if not ctrl_c.pending:
            return code
        raise KeyboardInterrupt  # a Ctrl-C Python dropped, and the command ran to its end
    except KeyboardInterrupt:
        ctrl_c.settle()
        if console:  # a second Ctrl-C during the exit must not print a traceback either
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGINT, lambda *_: os._exit(INTERRUPTED_EXIT))
        return _interrupted(args, argv)
    except BrokenPipeError:
        return _broken_pipe()


class _CtrlC:
    """Ctrl-C that is not lost.

    Python drops an exception raised where it cannot propagate (a weakref callback such as the
    import system's module-lock ``cb``, a ``__del__``): a KeyboardInterrupt landing there prints
    "Exception ignored in ..." and the command runs on to exit 0. So SIGINT marks the interrupt
    pending and arms a repeating SIGALRM that raises KeyboardInterrupt again until ``main``
    has it, but never while an exception is already being handled (cleanup in ``finally`` or
    ``__exit__`` runs undisturbed). A timer is not inherited by forked workers.
    """

    RETRY_S = 0.25

    def __init__(self) -> None:
        self.pending = False

    def install(self) -> None:
        with contextlib.suppress(ValueError):  # not the main thread: Python's default stays
            signal.signal(signal.SIGALRM, self._on_alarm)
            signal.signal(signal.SIGINT, self._on_sigint)

    def settle(self) -> None:
        self.pending = False
        with contextlib.suppress(ValueError):
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _on_sigint(self, signum, frame) -> None:
        self.pending = True
        signal.setitimer(signal.ITIMER_REAL, self.RETRY_S, self.RETRY_S)
        raise KeyboardInterrupt

    def _on_alarm(self, signum, frame) -> None:
        if self.pending and sys.exc_info()[0] is None:
            raise KeyboardInterrupt


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    level = log_level({n for n in ("verbose", "quiet") if getattr(args, n, False)})
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(level)  # basicConfig is a no-op once a handler exists
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        remove_stale_outputs(args)
        code = int(func(args) or 0)
        sys.stdout.flush()  # a closed pipe must fail here, inside the handler, not at exit
        return code
    except DolphinError as exc:
        print(f"dolphin: error: {exc}", file=sys.stderr)
        return exc.exit_code


def remove_stale_outputs(args: argparse.Namespace) -> list[Path]:
    """Remove stale temporary files of the command's outputs; return what was removed."""
    from dolphin.core.io import remove_stale_temps

    removed: list[Path] = []
    for name in OUTPUT_ARGS:
        value = getattr(args, name, None)
        if value is None:
            continue
        path = Path(value)
        if path.is_dir():
            removed += remove_stale_temps(path, depth=2)
        else:
            removed += remove_stale_temps(path.parent, prefix=path.stem)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted earlier run: %s",
                 len(removed), ", ".join(str(p) for p in removed[:5]))
    return removed


def _interrupted(args: argparse.Namespace | None, argv: list[str]) -> int:
    command = "dolphin " + shlex.join(argv)
    note = f"nothing resumable was saved (no output is ever half-written); re-run: {command}"
    func = getattr(args, "func", None)
    hook = getattr(sys.modules.get(getattr(func, "__module__", "")), "interrupt_note", None)
    if callable(hook):
        try:
            note = hook(args, command)
        except Exception as exc:  # the note must never turn an interrupt into a traceback
            log.debug("interrupt note failed: %s", exc)
    with contextlib.suppress(OSError, ValueError):
        print(f"dolphin: interrupted: {note}", file=sys.stderr, flush=True)
    return INTERRUPTED_EXIT


def _broken_pipe() -> int:
    with contextlib.suppress(OSError, ValueError):  # no real stdout (e.g. captured in tests)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return BROKEN_PIPE_EXIT
