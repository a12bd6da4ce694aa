"""The ``antiphon demo --provider gemini`` target: the GeminiLive preset against the emulator.

A Gemini Live connection does not just die: the service announces its end with ``goAway``
(``timeLeft``) and the client must move to a new connection, resuming with its newest
handle, before the time runs out. That is what the demo shows by default. The demo faults
map to Gemini failures like this:

* ``drop`` (the default): ``goAway`` with 2 s left, right after the first turn; the session
  rotates at the turn boundary and resumes with the handle.
* ``expire``: ``goAway`` with 2 s left in the middle of a reply; the session lets the reply
  finish, then rotates within the time left.
* ``drop-reply``: the TCP stream is cut (no close frame) in the middle of a reply; the
  session reconnects with the handle and the cut-off reply is asked for again.
* ``stall``: the server stops sending and reading for 3 s after the first turn; the session
  replaces a connection that stays silent for 1 s while it knows a reply is due, and
  otherwise waits the stall out, buffering the user's audio.
* ``none``: no failure.

Faults fire at the same point of every run: "after the first turn" is when the emulator has
issued the first resumable handle (it does so at the end of each completed turn), and
"mid-reply" is a count of reply audio chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import websockets

from .adapters.gemini import GeminiLive
from .emulators._model import DEFAULT_SCRIPT, reply_audio
from .emulators.gemini import GeminiEmulator
from .errors import AntiphonError

__all__ = ["FAULTS", "GO_AWAY_TIME_LEFT_S", "STALL_S", "GeminiDemoTarget", "demo_target"]

FAULTS = ("drop", "drop-reply", "expire", "stall", "none")
GO_AWAY_TIME_LEFT_S = 2.0
"""``goAway.timeLeft`` of the demo's goAway faults."""
STALL_S = 3.0
"""How long the ``stall`` fault holds the connection."""
_MID_REPLY_CHUNKS = 3  # into the second reply, for the mid-reply faults
_POLL_S = 0.005


@dataclasses.dataclass(frozen=True, kw_only=True)
class GeminiDemoTarget:
    """What ``antiphon demo`` reads from a target (the fields of ``_cli_demo.DemoTarget``,
    which this module may not import: nothing imports the command line).

    Attributes:
        provider: The GeminiLive preset pointed at the emulator.
        endpoint: Where the emulator listens, for the progress output.
        received_frames: Every audio chunk the emulator received, across connections.
        connections: Connections the emulator has accepted so far.
    """

    provider: GeminiLive
    endpoint: str
    received_frames: Callable[[], list[bytes]]
    connections: Callable[[], int]


def _first_reply_chunks(emu: GeminiEmulator) -> int:
    """Reply audio chunks the emulator sends for the first turn of the script."""
    text = DEFAULT_SCRIPT.utterances[0].reply
    return len(reply_audio(text, sample_rate=24_000, chunk_ms=emu.chunk_ms))


async def _after_first_turn(emu: GeminiEmulator, act: Callable[[], Awaitable[None]]) -> None:
    """Run ``act`` once the first connection has completed its first turn."""
    # The emulator has no turn-end hook; its record gains a handle at each turn's end.
    while not (emu.records and emu.records[0].handles):  # noqa: ASYNC110
        await asyncio.sleep(_POLL_S)
    await act()


def _received(emu: GeminiEmulator) -> list[bytes]:
    """Every audio chunk the emulator received, across connections, in order."""
    return [chunk for record in emu.records for chunk in record.audio]


@contextlib.asynccontextmanager
async def demo_target(fault: str) -> AsyncIterator[GeminiDemoTarget]:
    """Start a Gemini emulator, schedule ``fault``, and yield the target for the demo.

    Args:
        fault: One of ``drop``, ``drop-reply``, ``expire``, ``stall``, ``none`` (see the
            module docstring for what each means on Gemini).

    Raises:
        AntiphonError: an unknown fault.
    """
    if fault not in FAULTS:
        raise AntiphonError(f"unknown demo fault {fault!r} (choose from {', '.join(FAULTS)})")
    async with GeminiEmulator() as emu:
        provider = GeminiLive(api_key="demo", base_url=emu.base_url, ca_file=emu.ca_pem_path)
        if fault == "stall":
            # Give up on a silent connection well before the stall would end by itself.
            limits = msgspec.structs.replace(provider.limits, stall_timeout_s=1.0)
            provider = GeminiLive(
                api_key="demo", base_url=emu.base_url, ca_file=emu.ca_pem_path, limits=limits
            )
        mid_reply = _first_reply_chunks(emu) + _MID_REPLY_CHUNKS
        scheduled: asyncio.Task[None] | None = None

        async def go_away() -> None:
            # A connection closing at that very moment has nothing left to announce.
            with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                await emu.go_away(GO_AWAY_TIME_LEFT_S)

        async def stall() -> None:
            emu.stall(STALL_S)

        match fault:
            case "drop":
                scheduled = asyncio.create_task(_after_first_turn(emu, go_away))
            case "stall":
                scheduled = asyncio.create_task(_after_first_turn(emu, stall))
            case "expire":
                emu.fault_on_reply_audio(mid_reply, "go_away", time_left_s=GO_AWAY_TIME_LEFT_S)
            case "drop-reply":
                emu.fault_on_reply_audio(mid_reply, "drop")
            case _:
                pass
        try:
            yield GeminiDemoTarget(
                provider=provider,
                endpoint=f"{emu.base_url} (Gemini Live over TLS)",
                received_frames=lambda: _received(emu),
                connections=lambda: len(emu.records),
            )
        finally:
            if scheduled is not None:
                scheduled.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scheduled
