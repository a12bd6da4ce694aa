"""``antiphon demo``: a scripted conversation against a local emulator, with a provider failure.

The demo plays a scripted conversation through the real client of a provider against its
local emulator, injects one provider failure mid-turn, and shows the session carry on: live
progress, a journal, a WAV of the assistant's side, and a summary of what the emulator
received (user frames lost or duplicated).

How it is cut: :mod:`._target` is the shared demo target (the conversation, the summary, the
journal and WAV output), :mod:`._faults` the fault schedule of every emulator, and one module
per provider (:mod:`.openai` for OpenAI and xAI, :mod:`.gemini`, :mod:`.nova`,
:mod:`.phonic`) starts its emulator and points its preset at it; :mod:`.failover` runs
one call on two of them (OpenAI, then Gemini). A provider module is
imported only when that provider is chosen, so a provider whose extra is not installed does
not stop the others.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TextIO

import anyio

from ...errors import AntiphonError
from .._errors import UsageError
from ._faults import DEFAULT_FAULT, FAULTS
from ._target import DemoReport, DemoTarget, play

__all__ = ["FAULTS", "PROVIDERS", "DemoReport", "add_demo_command", "open_target", "run_demo"]

_Target = AbstractAsyncContextManager[DemoTarget]


def _openai(fault: str) -> _Target:
    from .openai import open_target

    return open_target(fault, variant="openai")


def _xai(fault: str) -> _Target:
    from .openai import open_target

    return open_target(fault, variant="xai")


def _gemini(fault: str) -> _Target:
    from .gemini import open_target

    return open_target(fault)


def _nova(fault: str) -> _Target:
    from .nova import open_target

    return open_target(fault)


def _phonic(fault: str) -> _Target:
    from .phonic import open_target

    return open_target(fault)


def _failover(fault: str) -> _Target:
    from .failover import open_target

    return open_target(fault)


_TARGETS: dict[str, Callable[[str], _Target]] = {
    "openai": _openai,
    "xai": _xai,
    "gemini": _gemini,
    "nova": _nova,
    "phonic": _phonic,
    "failover": _failover,
}
PROVIDERS = tuple(_TARGETS)
"""The ``--provider`` choices."""


def open_target(provider: str, fault: str) -> _Target:
    """The demo target of ``provider`` (one of :data:`PROVIDERS`): its emulator started with
    ``fault`` (one of :data:`FAULTS`) scheduled, and its preset pointed at it. Its provider
    module (and SDK) loads only now."""
    return _TARGETS[provider](fault)


async def run_demo(
    *,
    provider: str = "openai",
    fault: str = DEFAULT_FAULT,
    journal_dir: Path | None = None,
    speed: float = 1.0,
    progress: TextIO | None = sys.stdout,
) -> DemoReport:
    """Run the scripted demo conversation and return its report.

    Args:
        provider: One of :data:`PROVIDERS`.
        fault: The provider failure to inject (one of :data:`FAULTS`; ``none`` for none).
        journal_dir: Where to write the journal and the assistant WAV (default: a temp dir).
        speed: User audio pacing: 1.0 is real time, 0 sends as fast as possible.
        progress: Where to print live progress (None: quiet).

    Raises:
        AntiphonError: an unknown provider or fault.
    """
    if provider not in _TARGETS:
        raise AntiphonError(f"unknown provider {provider!r} (choose from {', '.join(PROVIDERS)})")
    if fault not in FAULTS:
        raise AntiphonError(f"unknown fault {fault!r} (choose from {', '.join(FAULTS)})")
    return await play(
        open_target(provider, fault),
        provider=provider,
        fault=fault,
        journal_dir=journal_dir,
        speed=speed,
        progress=progress,
    )


def _journal_dir(value: str | None) -> Path | None:
    """The ``--journal`` directory, created now: a path that cannot hold a journal is the
    command line's mistake, said before any emulator starts."""
    if not value:
        return None
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--journal {path} exists and is not a directory; pass a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--journal {path}: cannot create it ({exc.strerror or exc}); pass a writable directory"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--journal {path} is not writable; pass a writable directory")
    return path


def _demo_command(args: argparse.Namespace) -> int:
    progress = sys.stderr if args.json else sys.stdout
    journal_dir = _journal_dir(args.journal)
    report = anyio.run(
        lambda: run_demo(
            provider=args.provider,
            fault=args.fault,
            journal_dir=journal_dir,
            speed=args.speed,
            progress=None if args.quiet else progress,
        )
    )
    if args.json:
        print(json.dumps(report.__dict__, indent=2))
    return 0 if report.user_frames_lost == 0 else 1


def add_demo_command(subparsers: Any) -> None:
    """Register ``antiphon demo``."""
    demo = subparsers.add_parser(
        "demo", help="a scripted conversation against a local emulator, with a provider failure"
    )
    demo.add_argument("--provider", choices=sorted(PROVIDERS), default="openai")
    demo.add_argument(
        "--fault",
        choices=FAULTS,
        default=DEFAULT_FAULT,
        help=f"provider failure injected mid-turn (default: {DEFAULT_FAULT})",
    )
    demo.add_argument("--journal", metavar="DIR", help="journal directory (default: a temp dir)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="user audio pacing: 1 = real time, 0 = as fast as possible",
    )
    demo.add_argument("--quiet", action="store_true", help="no live progress")
    demo.set_defaults(func=_demo_command)
