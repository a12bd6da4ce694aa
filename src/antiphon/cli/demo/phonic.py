"""``antiphon demo --provider phonic``: the Phonic preset against
:class:`~antiphon.emulators.phonic.PhonicEmulator`, through antiphon's ``websockets``
connector.

Phonic keeps a conversation for a grace window after an abnormal close and lets the client
dial back into it (``reconnect_conv_id``); past the window the conversation is gone and the
session starts a new one, re-seeded from its journal. The default fault shows both: an
abnormal close mid-reply (resumed inside the window), then, on the resumed connection as the
user starts speaking, a close whose window has passed (4800 on the way back, then a
re-seeded conversation reported with ``state_restored=False``).

The faults, in the shared vocabulary (:mod:`antiphon.emulators._base`):

* ``drop`` (default): ``drop`` after the 3rd reply audio chunk of the first connection, then
  ``expire`` at the first start of user speech on the resumed connection.
* ``drop-reply``: ``drop`` after the 3rd reply audio chunk (resumed inside the window).
* ``expire``: ``expire`` as the user starts the second utterance (re-seeded).
* ``stall``: the server goes silent for 3 s as the user starts the second utterance; the
  session's stall timeout (1 s here) replaces the connection.
* ``none``: no failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

from ...adapters.phonic import Phonic
from ...emulators._base import Fault, Trigger
from ...emulators.phonic import PhonicEmulator
from ._target import DemoTarget

__all__ = ["STALL_TIMEOUT_S", "open_target", "schedule"]

STALL_TIMEOUT_S = 1.0
"""The session's stall timeout in the ``stall`` demo: well inside the 3 s stall."""
REPLY_PACING = 0.25
"""Reply audio at four times real time: every reply ends before the user speaks again."""


def schedule(emu: PhonicEmulator, fault: str) -> None:
    """Schedule the demo's ``fault`` on ``emu`` (see the module docstring)."""
    match fault:
        case "drop":
            emu.fault(Fault.drop(), at=Trigger.reply_audio(3), connection=0)
            emu.fault(Fault.expire(), at=Trigger.user_speech(), connection=1)
        case "drop-reply":
            emu.fault(Fault.drop(), at=Trigger.reply_audio(3))
        case "expire":
            emu.fault(Fault.expire(), at=Trigger.user_speech(2))
        case "stall":
            emu.fault(Fault.stall(3.0), at=Trigger.user_speech(2))
        case "none":
            pass
        case _:
            raise ValueError(f"unknown demo fault {fault!r}")


@asynccontextmanager
async def open_target(fault: str) -> AsyncIterator[DemoTarget]:
    """Start a Phonic emulator with ``fault`` scheduled; yield the preset for it."""
    async with PhonicEmulator(reply_pacing=REPLY_PACING) as emu:
        schedule(emu, fault)
        provider = Phonic(url=emu.url, api_key="demo")
        if fault == "stall":
            limits = msgspec.structs.replace(provider.limits, stall_timeout_s=STALL_TIMEOUT_S)
            provider = provider.replace(limits=limits)
        yield DemoTarget(
            emulator=emu,
            provider=provider,
            endpoint=emu.url,
            received_frames=emu.received_audio,
            connections=lambda: len(emu.records),
        )
