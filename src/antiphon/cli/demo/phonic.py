"""``antiphon demo --provider phonic``: the Phonic preset against
:class:`~antiphon.emulators.phonic.PhonicEmulator`, through antiphon's ``websockets``
connector.

Phonic keeps a conversation for a grace window after an abnormal close and lets the client
dial back into it (``reconnect_conv_id``); past the window the conversation is gone and the
session starts a new one, re-seeded from its journal. The default fault shows both: an
abnormal close mid-reply (resumed inside the window), then, on the resumed connection as the
user starts speaking, a close whose window has passed (4800 on the way back, then a
re-seeded conversation reported with ``state_restored=False``).

The faults (scheduled from the shared table in :mod:`._faults`):

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
from ...emulators.phonic import PhonicEmulator
from ._faults import STALL_TIMEOUT_S, schedule_faults
from ._target import DemoTarget

__all__ = ["open_target"]

REPLY_PACING = 0.25
"""Reply audio at four times real time: every reply ends before the user speaks again."""


@asynccontextmanager
async def open_target(fault: str) -> AsyncIterator[DemoTarget]:
    """Start a Phonic emulator with ``fault`` scheduled; yield the preset for it."""
    async with PhonicEmulator(reply_pacing=REPLY_PACING) as emu:
        schedule_faults(emu, "phonic", fault)
        provider = Phonic(url=emu.url, api_key="demo")
        if fault == "stall":
            limits = msgspec.structs.replace(
                provider.limits, stall_timeout_s=STALL_TIMEOUT_S["phonic"]
            )
            provider = provider.replace(limits=limits)
        yield DemoTarget(
            emulator=emu,
            provider=provider,
            endpoint=emu.url,
            received_frames=emu.received_audio,
            connections=lambda: len(emu.records),
        )
