"""Run an emulator in its own process: ``python -m antiphon.emulators <provider> [options]``.

Prints one JSON line (``{"url": ..., "port": ...}``) on stdout once listening, then runs
until SIGTERM or SIGINT. Each provider is one subcommand: a function that adds its options
to a subparser and an async runner registered in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

Announce = Callable[[dict[str, Any]], None]
Runner = Callable[[argparse.Namespace, Announce, asyncio.Event], Coroutine[Any, Any, None]]
"""Starts an emulator, announces it once listening, and runs until the event is set."""


def _announce(info: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()


async def _run(run: Runner, args: argparse.Namespace) -> None:
    # Handlers go in before the emulator starts, so a SIGTERM sent as soon as the URL is
    # printed still stops it cleanly.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run(args, _announce, stop)


def _openai_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", choices=["openai", "xai"], default="openai")
    parser.add_argument("--session-duration", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--reply-pacing", type=float, default=0.0)


async def _run_openai(args: argparse.Namespace, announce: Announce, stop: asyncio.Event) -> None:
    from antiphon.emulators.openai import OpenAIEmulator

    async with OpenAIEmulator(
        variant=args.variant,
        session_duration_s=args.session_duration,
        reply_pacing=args.reply_pacing,
        host=args.host,
        port=args.port,
    ) as emu:
        announce({"provider": "openai", "variant": args.variant, "url": emu.url, "port": emu.port})
        await stop.wait()


def _gemini_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--realtime-factor",
        type=float,
        default=0.0,
        help="reply pacing: 0 = as fast as possible, 1 = real time",
    )


async def _run_gemini(args: argparse.Namespace, announce: Announce, stop: asyncio.Event) -> None:
    from antiphon.emulators.gemini import GeminiEmulator

    async with GeminiEmulator(
        host=args.host, port=args.port, realtime_factor=args.realtime_factor
    ) as emu:
        announce(
            {
                "provider": "gemini",
                "url": emu.base_url,
                "port": emu.port,
                "ca_file": emu.ca_pem_path,
            }
        )
        await stop.wait()


def _nova_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stream-limit", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--idle-reset", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--reply-speed", type=float, default=1.0)


async def _run_nova(args: argparse.Namespace, announce: Announce, stop: asyncio.Event) -> None:
    from antiphon.emulators.nova import NovaEmulator

    async with NovaEmulator(
        stream_limit_s=args.stream_limit,
        idle_reset_s=args.idle_reset,
        reply_speed=args.reply_speed,
        host=args.host,
        port=args.port,
    ) as emu:
        port = int(emu.endpoint_uri.rsplit(":", 1)[1])
        announce(
            {"provider": "nova", "url": emu.endpoint_uri, "port": port, "ca_file": emu.ca_pem_path}
        )
        await stop.wait()


def _phonic_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grace-window", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument(
        "--reply-pacing",
        type=float,
        default=1.0,
        help="reply pacing: 0 = as fast as possible, 1 = real time",
    )
    parser.add_argument(
        "--no-idle-audio",
        action="store_true",
        help="send no silent audio_chunk messages between turns",
    )


async def _run_phonic(args: argparse.Namespace, announce: Announce, stop: asyncio.Event) -> None:
    from antiphon.emulators.phonic import PhonicEmulator

    async with PhonicEmulator(
        grace_window_s=args.grace_window,
        reply_pacing=args.reply_pacing,
        idle_audio=not args.no_idle_audio,
        host=args.host,
        port=args.port,
    ) as emu:
        announce({"provider": "phonic", "url": emu.url, "port": emu.port})
        await stop.wait()


COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Runner]] = {
    "gemini": (_gemini_options, _run_gemini),
    "nova": (_nova_options, _run_nova),
    "openai": (_openai_options, _run_openai),
    "phonic": (_phonic_options, _run_phonic),
}
"""Subcommand name -> (add its options, run it). Other emulators register here."""


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen emulator until signalled."""
    parser = argparse.ArgumentParser(prog="python -m antiphon.emulators")
    sub = parser.add_subparsers(dest="provider", required=True)
    for name, (add_options, _) in COMMANDS.items():
        p = sub.add_parser(name, help=f"run the {name} emulator")
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=0)
        add_options(p)
    args = parser.parse_args(argv)
    _, run = COMMANDS[args.provider]
    asyncio.run(_run(run, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
