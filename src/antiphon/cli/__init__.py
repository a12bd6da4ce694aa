"""The ``antiphon`` command line.

The package: :mod:`.journal` (``antiphon journal ...``), :mod:`.run` (``antiphon run``) and
:mod:`.demo` (``antiphon demo``). Top-level commands register themselves through
``_COMMANDS``: each entry adds its subparser (and sets ``func``, the handler returning the
exit code). To add a command, write its module's ``add_<name>_command(subparsers)`` and append
it to ``_COMMANDS``. Nothing in the library imports this package.

Exit codes: 0 success; 1 the command ran and failed or found a problem (a corrupt journal,
an unreachable service, a journal with a live writer to repair); 2 usage errors (bad
arguments, a missing or unusable input, not a journal). Both are reported as one
``antiphon: error: ...`` line saying what is wrong and what to do, never a traceback
(:mod:`._errors` decides which is which).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ._errors import EXIT_PROBLEM, EXIT_USAGE, explain
from .demo import add_demo_command
from .journal import add_journal_commands
from .run import add_run_command

__all__ = ["EXIT_OK", "EXIT_PROBLEM", "EXIT_USAGE", "main"]

EXIT_OK = 0


_COMMANDS: list[Callable[[Any], None]] = [add_demo_command, add_run_command, add_journal_commands]
"""Registration functions of the top-level commands, in help order."""


def build_parser() -> argparse.ArgumentParser:
    """The ``antiphon`` argument parser, with every command registered."""
    parser = argparse.ArgumentParser(
        prog="antiphon", description="antiphon: realtime speech-to-speech sessions."
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in _COMMANDS:
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on bad usage (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return func(args)
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # ours are explained; anything else is a bug: re-raised
        explained = explain(exc)
        if explained is None:
            raise
        message, code = explained
        print(f"antiphon: error: {message}", file=sys.stderr)
        return code
